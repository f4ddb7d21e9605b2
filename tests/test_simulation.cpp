// Simulation: a seeded choice among ready handlers, virtual time, and a TaskMonitor run replayed from its seed.
#include <taskmon/async_semaphore.hpp>
#include <taskmon/task_monitor.hpp>
#include <taskmon/testing/simulation.hpp>

#include "monitor_harness.hpp"
#include "taskmon_catch.hpp"

#include <asio/bind_cancellation_slot.hpp>
#include <asio/cancellation_signal.hpp>
#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/post.hpp>
#include <asio/strand.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

using namespace std::chrono_literals;
using taskmon::testing::ManualClock;
using taskmon::testing::ManualTimer;
using taskmon::testing::Simulation;

namespace {

/// The order in which eight handlers posted at once run under `seed`.
std::vector<int> order_of_eight(std::uint64_t seed) {
    Simulation sim{seed};
    std::vector<int> order;
    for (int i = 0; i < 8; ++i) {
        asio::post(sim.get_executor(), [&order, i] { order.push_back(i); });
    }
    sim.run();
    return order;
}

/// Two coroutines each read a counter, yield once, and write it back plus one: whether an update is lost depends
/// on the order their halves run in. Returns the final count (2: none lost).
int racy_count(std::uint64_t seed) {
    Simulation sim{seed};
    int counter = 0;
    auto increment = [&]() -> asio::awaitable<void> {
        const int seen = counter;
        co_await asio::post(co_await asio::this_coro::executor, asio::use_awaitable);
        counter = seen + 1;
    };
    asio::co_spawn(sim.get_executor(), increment(), asio::detached);
    asio::co_spawn(sim.get_executor(), increment(), asio::detached);
    sim.run();
    return counter;
}

/// A component that works for a drawn time, then fails (its times come from the simulation's generator).
asio::awaitable<void> flaky(Simulation& sim) {
    ManualTimer timer{co_await asio::this_coro::executor, std::chrono::minutes{1 + sim.random().below(30)}};
    co_await timer.async_wait(asio::use_awaitable);
    throw std::runtime_error("flaky");
}

/// What a simulated hour of a small monitor did, as the simulation's trace hash (scheduling, clock jumps and
/// every event's kind, component, time and count folded in), and how many events it saw.
struct MonitorRun {
    std::uint64_t hash = 0;
    int events = 0;
    int restarts = 0;
};

MonitorRun monitor_hour(std::uint64_t seed) {
    Simulation sim{seed};
    MonitorRun run;
    {
        taskmon::BasicTaskMonitor<ManualClock> monitor{sim.get_executor(),
                                                       {.max_restart_attempts = taskmon::unlimited_restart_attempts,
                                                        .base_backoff = 1s,
                                                        .max_backoff = 10s,
                                                        .jitter = taskmon::JitterKind::full},
                                                       taskmon_test::null_logger(),
                                                       sim.random_source()};
        auto subscription = monitor.subscribe([&](const taskmon::MonitorEvent& e) {
            ++run.events;
            run.restarts += e.kind == taskmon::MonitorEventKind::restarted ? 1 : 0;
            sim.trace()
                .add(std::string{taskmon::to_string(e.kind)})
                .add(e.component)
                .add(static_cast<std::int64_t>(e.restart_count))
                .add(static_cast<std::int64_t>(sim.now().time_since_epoch().count()));
        });
        for (const char* name : {"a", "b", "c"}) {
            monitor.supervise(name, [&sim] { return flaky(sim); });
        }
        sim.run_for(1h);
        bool closed = false;
        asio::co_spawn(sim.get_executor(), monitor.close(), [&](std::exception_ptr) { closed = true; });
        sim.run_until([&] { return closed; });
        REQUIRE(closed);
    }
    run.hash = sim.trace_hash();
    return run;
}

}  // namespace

TEST_CASE("Simulation: a seed fixes the order of ready handlers, and other seeds explore other orders",
          "[simulation]") {
    const auto first = order_of_eight(7);
    CHECK(order_of_eight(7) == first);
    CHECK(std::set<int>(first.begin(), first.end()).size() == 8);  // each ran once
    std::set<std::vector<int>> orders;
    for (std::uint64_t seed = 0; seed < 20; ++seed) {
        orders.insert(order_of_eight(seed));
    }
    CHECK(orders.size() > 10);  // 8! orders: twenty seeds hardly repeat one
}

TEST_CASE("Simulation: a strand keeps its own handlers in order while strands interleave", "[simulation]") {
    bool interleaved = false;
    for (std::uint64_t seed = 0; seed < 5; ++seed) {
        Simulation sim{seed};
        auto a = asio::make_strand(sim.get_executor());
        auto b = asio::make_strand(sim.get_executor());
        std::vector<int> ran;
        for (int i = 0; i < 50; ++i) {
            asio::post(a, [&ran, i] { ran.push_back(i); });
            asio::post(b, [&ran, i] { ran.push_back(100 + i); });
        }
        sim.run();
        REQUIRE(ran.size() == 100);
        std::vector<int> of_a, of_b;
        for (const int v : ran) {
            (v < 100 ? of_a : of_b).push_back(v);
        }
        for (int i = 0; i < 50; ++i) {
            CHECK(of_a[static_cast<std::size_t>(i)] == i);
            CHECK(of_b[static_cast<std::size_t>(i)] == 100 + i);
        }
        int switches = 0;
        for (std::size_t i = 1; i < ran.size(); ++i) {
            switches += (ran[i] < 100) != (ran[i - 1] < 100) ? 1 : 0;
        }
        interleaved = interleaved || switches > 2;
    }
    CHECK(interleaved);
}

TEST_CASE("Simulation: time jumps to the next deadline when nothing is ready", "[simulation]") {
    Simulation sim{1};
    std::vector<std::chrono::nanoseconds> woke;
    auto sleeper = [&](std::chrono::nanoseconds d) -> asio::awaitable<void> {
        ManualTimer timer{co_await asio::this_coro::executor, d};
        co_await timer.async_wait(asio::use_awaitable);
        woke.push_back(sim.now().time_since_epoch());
    };
    asio::co_spawn(sim.get_executor(), sleeper(1h), asio::detached);
    asio::co_spawn(sim.get_executor(), sleeper(10min), asio::detached);
    sim.run_for(30min);
    CHECK(woke == std::vector<std::chrono::nanoseconds>{10min});
    CHECK(sim.now().time_since_epoch() == 30min);
    sim.run();
    CHECK(woke == std::vector<std::chrono::nanoseconds>{10min, 1h});
    CHECK(sim.now().time_since_epoch() == 1h);  // idle: run() stops at the last deadline
}

TEST_CASE("Simulation: seeds find the lost update that one fixed order hides, and each seed replays its outcome",
          "[simulation]") {
    std::set<int> outcomes;
    for (std::uint64_t seed = 0; seed < 32; ++seed) {
        const int count = racy_count(seed);
        CHECK(racy_count(seed) == count);
        outcomes.insert(count);
    }
    CHECK(outcomes == std::set<int>{1, 2});
}

TEST_CASE("Simulation: a TaskMonitor runs on it unchanged, and a seed replays the same run", "[simulation]") {
    const auto first = monitor_hour(3);
    CHECK(first.restarts > 3);  // each component fails within 30 minutes and restarts within 10 s
    const auto again = monitor_hour(3);
    CHECK(again.hash == first.hash);
    CHECK(again.events == first.events);
    CHECK(monitor_hour(4).hash != first.hash);
}

TEST_CASE("Simulation: bad options and durations are refused with the field named", "[simulation]") {
    CHECK_THROWS_WITH(Simulation(Simulation::Options{.poll_chance = 1.5}),
                      "Simulation: poll_chance 1.500000 is outside [0, 1]");
    CHECK_THROWS_WITH(Simulation(Simulation::Options{.max_steps = 0}), "Simulation: max_steps must be positive");
    Simulation sim{1};
    CHECK_THROWS_WITH(sim.run_for(-1s), "Simulation::run_for: duration must not be negative");
    CHECK(sim.handlers_run() == 0);
}

TEST_CASE("Simulation: a program that never goes idle is stopped with its seed named", "[simulation]") {
    Simulation sim{Simulation::Options{.seed = 9, .max_steps = 1000}};
    std::function<void()> again = [&] { asio::post(sim.get_executor(), again); };
    asio::post(sim.get_executor(), again);
    CHECK_THROWS_WITH(sim.run(), "Simulation (seed 9): the program did not go idle within 1000 steps");
}

TEST_CASE(
    "Simulation: a property is checked after every handler, and the first failure names seed, handler and "
    "time",
    "[simulation]") {
    Simulation sim{5};
    int counter = 0;
    sim.add_property("counter below 3",
                     [&] { return counter < 3 ? std::string{} : "counter is " + std::to_string(counter); });
    for (int i = 0; i < 5; ++i) {
        asio::post(sim.get_executor(), [&] { ++counter; });
    }
    CHECK_THROWS_WITH(sim.run(), "seed 5, handler 3, t=0 ns: property 'counter below 3' failed: counter is 3");
    CHECK(counter == 3);  // stopped right after the handler that broke it
    CHECK(sim.ready() == 2);
    CHECK_THROWS_AS(sim.add_property("", [] { return std::string{}; }), std::invalid_argument);
    CHECK_THROWS_AS(sim.add_property("x", {}), std::invalid_argument);
}

TEST_CASE(
    "Simulation: an AsyncSemaphore under seeded interleavings and cancellations never over-admits or leaks a "
    "permit",
    "[simulation]") {
    for (std::uint64_t seed = 1; seed <= 20; ++seed) {
        std::vector<asio::cancellation_signal> signals(10);  // outlive the simulation, which may destroy handlers
        Simulation sim{seed};
        taskmon::AsyncSemaphore semaphore{2};
        int holders = 0;
        int most = 0;
        int done = 0;
        sim.add_property("at most two holders", [&] { return holders <= 2 ? std::string{} : "3 holders"; });
        auto worker = [&](std::chrono::nanoseconds hold) -> asio::awaitable<void> {
            auto permit = co_await semaphore.acquire();
            struct Holding {  // counted while the permit is held, also when cancellation ends the wait below
                int& holders;
                ~Holding() { --holders; }
            } holding{++holders};
            most = std::max(most, holders);
            ManualTimer timer{co_await asio::this_coro::executor, hold};
            co_await timer.async_wait(asio::use_awaitable);
            ++done;
        };
        for (std::size_t i = 0; i < signals.size(); ++i) {
            const auto hold = std::chrono::seconds{1 + sim.random().below(5)};
            asio::co_spawn(sim.get_executor(), worker(hold),
                           asio::bind_cancellation_slot(signals[i].slot(), [](std::exception_ptr) {}));
        }
        // Cancel three of them at a drawn moment: waiting or holding, whichever they are then.
        sim.run_for(std::chrono::seconds{1 + sim.random().below(4)});
        for (std::size_t i = 0; i < 3; ++i) {
            signals[sim.random().below(signals.size())].emit(asio::cancellation_type::terminal);
        }
        sim.run();
        CHECK(most == 2);
        CHECK(semaphore.stats().in_use == 0);  // every permit came back, cancelled holders' too
        CHECK(semaphore.stats().waiting == 0);
        CHECK(done >= 7);
    }
}
