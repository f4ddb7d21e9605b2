// FaultInjector: each kind of fault makes a supervised instance fail as a real one would, at the drawn time, and
// every fault is recorded; one seed draws the same faults; bad rates are refused.
#include <taskmon/task_monitor.hpp>
#include <taskmon/testing/fault_injection.hpp>
#include <taskmon/testing/simulation.hpp>

#include "simulation_rig.hpp"
#include "taskmon_catch.hpp"

#include <asio/co_spawn.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>

#include <chrono>
#include <cstdint>
#include <exception>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

using namespace std::chrono_literals;
using taskmon::MonitorEventKind;
using taskmon::testing::FaultInjector;
using taskmon::testing::FaultKind;
using taskmon::testing::FaultRates;
using taskmon::testing::ManualTimer;
using taskmon::testing::Simulation;
using taskmon_test::beating;
using taskmon_test::steady;
using Rig = taskmon_test::SimulationRig;

namespace {

/// A component that fails after a minute.
asio::awaitable<void> fails_in_a_minute() {
    ManualTimer timer{co_await asio::this_coro::executor, 1min};
    co_await timer.async_wait(asio::use_awaitable);
    throw std::runtime_error("own failure");
}

}  // namespace

TEST_CASE("FaultInjector: throws_later fails each instance at the time drawn for it", "[fault_injection]") {
    Rig rig{11};
    rig.faults.set_rates("c", {.throws_later = 1.0, .max_delay = 10min});
    rig.monitor->supervise("c", rig.faults.wrap("c", taskmon::RestartFactory{steady}));
    rig.sim.run_for(1h);
    const auto failed = rig.of(MonitorEventKind::failed);
    const auto& injected = rig.faults.injected();
    REQUIRE(failed.size() >= 5);  // a failure within 10 minutes, a restart a second later
    REQUIRE(injected.size() >= failed.size());
    for (std::size_t i = 0; i < failed.size(); ++i) {
        CHECK(injected[i].kind == FaultKind::throws_later);
        CHECK(injected[i].instance == i + 1);
        CHECK(failed[i].second == injected[i].drawn_at + injected[i].delay);
        CHECK(failed[i].first.reason == "taskmon::testing::InjectedError: injected fault: throws_later (c)");
    }
    rig.close();
}

TEST_CASE("FaultInjector: throws_at_start fails an instance before any of its code runs", "[fault_injection]") {
    Rig rig{12};
    int starts = 0;
    rig.faults.set_rates("c", {.throws_at_start = 1.0});
    rig.monitor->supervise("c", rig.faults.wrap("c", taskmon::RestartFactory{[&] {
                                                    ++starts;  // the factory runs; its coroutine never does
                                                    return steady();
                                                }}));
    rig.sim.run_for(10s);
    const auto failed = rig.of(MonitorEventKind::failed);
    REQUIRE(failed.size() >= 5);
    CHECK(rig.faults.count(FaultKind::throws_at_start) == static_cast<std::size_t>(starts));
    for (std::size_t i = 0; i < failed.size(); ++i) {
        CHECK(failed[i].second == rig.faults.injected()[i].drawn_at);  // no virtual time passed
    }
    rig.close();
}

TEST_CASE("FaultInjector: a factory that throws is reported as factory_failed, each one recorded",
          "[fault_injection]") {
    Rig rig{13};
    rig.monitor->supervise("c", rig.faults.wrap("c", taskmon::RestartFactory{fails_in_a_minute}));
    rig.faults.set_rates("c", {.factory_throws = 1.0});  // from the first restart on
    rig.sim.run_for(10min);
    const auto factory_failed = rig.of(MonitorEventKind::factory_failed);
    CHECK(factory_failed.size() >= 5);
    CHECK(rig.faults.count(FaultKind::factory_throws) == factory_failed.size());
    CHECK(rig.of(MonitorEventKind::failed).size() == 1);  // the first instance's own failure
    rig.close();
}

TEST_CASE("FaultInjector: a hung instance ignores its stop and is reported after shutdown_timeout",
          "[fault_injection]") {
    Rig rig{14};
    rig.faults.set_rates("c", {.hangs = 1.0, .max_delay = 1h});
    rig.monitor->supervise("c", rig.faults.wrap("c", taskmon::RestartFactory{steady}));
    rig.sim.run_for(1s);
    REQUIRE(rig.faults.injected().size() == 1);
    const auto hang = rig.faults.injected()[0].delay;
    REQUIRE(hang > 10s);  // drawn by seed 14; a shorter hang would end before the stop's deadline
    rig.monitor->disable({"c"});
    rig.sim.run_for(6s);
    const auto timeouts = rig.of(MonitorEventKind::stop_timeout);
    REQUIRE(timeouts.size() == 1);
    CHECK(timeouts[0].second - rig.faults.injected()[0].drawn_at == 1s + 5s);
    rig.close();
}

TEST_CASE("FaultInjector: a stalled instance stops heartbeating and its watchdog stops it", "[fault_injection]") {
    Rig rig{16};
    rig.faults.set_rates("c", {.stalls = 1.0, .max_delay = 10min});
    rig.monitor->supervise("c", rig.faults.wrap("c", taskmon::ContextFactory{beating}),
                           taskmon::RestartPolicy{.max_restart_attempts = taskmon::unlimited_restart_attempts,
                                                  .base_backoff = 1s,
                                                  .max_backoff = 1s,
                                                  .watchdog_timeout = 30s});
    rig.sim.run_for(1h);
    const auto trips = rig.of(MonitorEventKind::watchdog_timeout);
    const auto& injected = rig.faults.injected();
    REQUIRE(trips.size() >= 3);
    for (std::size_t i = 0; i < trips.size(); ++i) {
        CHECK(injected[i].kind == FaultKind::stalls);
        const auto stalled_at = injected[i].drawn_at + injected[i].delay;
        CHECK(trips[i].second > stalled_at);         // it beat until it stalled
        CHECK(trips[i].second <= stalled_at + 30s);  // and the watchdog caught it within its timeout
    }
    CHECK(rig.of(MonitorEventKind::failed).empty());  // a stall is not a throw
    rig.close();
}

TEST_CASE("FaultInjector: a slow stop holds close() for the drawn time", "[fault_injection]") {
    Rig rig{15};
    rig.faults.set_rates("c", {.slow_stop = 1.0, .max_delay = 4s});
    rig.monitor->supervise("c", rig.faults.wrap("c", taskmon::RestartFactory{steady}));
    rig.sim.run_for(1s);
    REQUIRE(rig.faults.count(FaultKind::slow_stop) == 1);
    CHECK(rig.close() == rig.faults.injected()[0].delay);  // under the 5 s shutdown_timeout
    CHECK(rig.of(MonitorEventKind::stop_timeout).empty());
}

TEST_CASE("FaultInjector: one seed draws the same faults at the same times", "[fault_injection]") {
    const auto faults_of = [](std::uint64_t seed) {
        Rig rig{seed};
        const FaultRates rates{.throws_at_start = 0.3, .throws_later = 0.6, .slow_stop = 0.5, .max_delay = 5min};
        for (const std::string name : {"a", "b", "c"}) {
            rig.faults.set_rates(name, rates);
            rig.monitor->supervise(name, rig.faults.wrap(name, taskmon::RestartFactory{steady}));
        }
        rig.sim.run_for(2h);
        rig.close();
        std::vector<std::string> out;
        for (const auto& f : rig.faults.injected()) {
            out.push_back(std::string{to_string(f.kind)} + " " + f.component + " #" + std::to_string(f.instance) +
                          " @" + std::to_string(f.drawn_at.time_since_epoch().count()) + " +" +
                          std::to_string(f.delay.count()));
        }
        return out;
    };
    const auto first = faults_of(21);
    CHECK(first.size() > 5);
    CHECK(faults_of(21) == first);
    CHECK(faults_of(22) != first);
}

TEST_CASE("FaultInjector: bad rates and empty factories are refused with the field named", "[fault_injection]") {
    Simulation sim{1};
    FaultInjector faults{sim};
    CHECK_THROWS_WITH(faults.set_rates("db", {.hangs = 1.5}),
                      "FaultInjector::set_rates: hangs of component 'db' is 1.500000, outside [0, 1]");
    CHECK_THROWS_WITH(faults.set_rates("db", {.factory_throws = -0.1}),
                      "FaultInjector::set_rates: factory_throws of component 'db' is -0.100000, outside [0, 1]");
    CHECK_THROWS_WITH(faults.set_rates("db", {.max_delay = 0s}),
                      "FaultInjector::set_rates: max_delay of component 'db' must be positive");
    CHECK_THROWS_WITH(faults.wrap("db", taskmon::RestartFactory{}),
                      "FaultInjector::wrap: factory of component 'db' is empty");
    CHECK(faults.injected().empty());
}

TEST_CASE("FaultInjector: a group's rates apply to its members that have none of their own", "[fault_injection]") {
    Rig rig{21};
    std::vector<taskmon::GroupMember> members;
    for (const auto* name : {"a", "b", "c"}) {
        members.push_back({.name = name, .factory = steady});
    }
    members.push_back({.name = "d", .context_factory = beating});
    rig.faults.set_group_rates("g", {.throws_later = 1.0, .max_delay = 10min});
    rig.faults.set_rates("c", {});  // rates of its own: none
    rig.monitor->supervise_group("g", rig.faults.wrap("g", std::move(members)));
    rig.sim.run_for(1h);
    std::set<std::string> faulted;
    for (const auto& f : rig.faults.injected()) {
        CHECK(f.kind == FaultKind::throws_later);
        faulted.insert(f.component);
    }
    CHECK(faulted == std::set<std::string>{"a", "b", "d"});
    rig.close();
}

TEST_CASE("FaultInjector: a group's members without exactly one factory are refused, nothing wrapped",
          "[fault_injection]") {
    Simulation sim{1};
    FaultInjector faults{sim};
    std::vector<taskmon::GroupMember> members{{.name = "a", .factory = steady}, {.name = "b"}};
    CHECK_THROWS_WITH(faults.wrap("g", members),
                      "FaultInjector::wrap: member 'b' of group 'g' must have exactly one of factory and "
                      "context_factory");
    members[1] = {.name = "b", .factory = steady, .context_factory = beating};
    CHECK_THROWS_AS(faults.wrap("g", members), std::invalid_argument);
    CHECK_THROWS_WITH(faults.set_group_rates("g", {.stalls = 2.0}),
                      "FaultInjector::set_rates: stalls of group 'g' is 2.000000, outside [0, 1]");
}

TEST_CASE("FaultInjector: a replayed plan naming a component the program does not have is refused",
          "[fault_injection]") {
    Simulation sim{1};
    const auto plan = taskmon::testing::FaultPlan::parse("throws_at_start:db#1;fault_point:flush#2");
    FaultInjector faults{sim, plan};
    (void)faults.wrap("cache", taskmon::RestartFactory{steady});
    CHECK_THROWS_WITH(faults.check_plan(),
                      "FaultInjector: the plan names component 'db' (throws_at_start of instance 1), which has no "
                      "wrapped factory");
    (void)faults.wrap("db", taskmon::RestartFactory{steady});
    CHECK_NOTHROW(faults.check_plan());  // a fault point's name is not checked: it is known only when reached
    FaultInjector drawing{sim};
    CHECK_NOTHROW(drawing.check_plan());  // nothing to check when faults are drawn
}

TEST_CASE("FaultInjector: two instances of one component running at once are reported with the seed and both",
          "[fault_injection]") {
    Simulation sim{31};
    FaultInjector faults{sim};
    auto factory = faults.wrap("c", taskmon::RestartFactory{steady});
    asio::co_spawn(sim.get_executor(), factory(), [](std::exception_ptr) {});
    asio::co_spawn(sim.get_executor(), factory(), [](std::exception_ptr) {});  // what a monitor never does
    sim.run_for(1s);
    CHECK(faults.live("c") == 2);
    REQUIRE(faults.violations().size() == 1);
    // Seed 31 runs the second instance first: the first then starts while the second runs.
    CHECK(faults.violations()[0] ==
          "seed 31, t=0 ns, after 2 handlers: instance 1 of component 'c' started while instance 2 was running");
}

namespace {

/// One seed of the campaign: a watched component under quarantine, a one_for_all group of two and a plain
/// component, every kind of fault at moderate rates, two simulated hours, then close(). Returns the trace hash.
std::uint64_t campaign_run(std::uint64_t seed, std::vector<std::string>& violations, std::size_t& faults_injected) {
    Rig rig{seed};
    auto& f = rig.faults;
    const FaultRates rates{.factory_throws = 0.05,
                           .throws_at_start = 0.05,
                           .throws_later = 0.6,
                           .hangs = 0.15,
                           .slow_stop = 0.3,
                           .max_delay = 10min};
    rig.monitor->supervise("db", f.wrap("db", taskmon::ContextFactory{beating}),
                           taskmon::RestartPolicy{.max_restart_attempts = 3,
                                                  .restart_window = 10min,
                                                  .base_backoff = 1s,
                                                  .max_backoff = 30s,
                                                  .jitter = taskmon::JitterKind::full,
                                                  .shutdown_timeout = 5s,
                                                  .watchdog_timeout = 30s,
                                                  .give_up_mode = taskmon::GiveUpMode::quarantine,
                                                  .quarantine_cooldown = 1min});
    rig.monitor->supervise_group("pipeline",
                                 {{.name = "reader", .factory = f.wrap("reader", taskmon::RestartFactory{steady})},
                                  {.name = "writer", .factory = f.wrap("writer", taskmon::RestartFactory{steady})}},
                                 {.strategy = taskmon::RestartStrategy::one_for_all});
    rig.monitor->supervise("cache", f.wrap("cache", taskmon::RestartFactory{steady}));
    for (const std::string name : {"db", "reader", "writer", "cache"}) {
        f.set_rates(name, rates);  // after supervise(), whose first factory call would throw to the caller
    }
    rig.sim.run_for(2h);
    rig.close();
    violations.insert(violations.end(), f.violations().begin(), f.violations().end());
    faults_injected += f.injected().size();
    return rig.sim.trace_hash();
}

}  // namespace

TEST_CASE(
    "FaultInjector campaign: under every kind of fault no component ever runs two instances, and each seed "
    "replays",
    "[fault_injection]") {
    constexpr std::uint64_t seeds = 24;  // ~0.1 s each in a Debug build
    std::vector<std::string> violations;
    std::size_t injected = 0;
    for (std::uint64_t seed = 1; seed <= seeds; ++seed) {
        std::size_t ignored = 0;
        std::vector<std::string> again;
        const auto hash = campaign_run(seed, violations, injected);
        CHECK(campaign_run(seed, again, ignored) == hash);
    }
    CHECK(injected > seeds * 5);
    CHECK(violations == std::vector<std::string>{});
}

// This unit is built without TASKMON_SIMULATION: a fault point is the constant false, its argument unevaluated.
static_assert(!TASKMON_MAYBE_FAIL(throw std::logic_error("never evaluated")));
