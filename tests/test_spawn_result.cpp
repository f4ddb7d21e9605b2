// Tests for TaskMonitor::try_spawn(), spawn_numbered() and try_spawn_numbered(), and SpawnResult
// (taskmon/spawn_result.hpp): a refusal reported as a value, names made from a prefix and the task's id. In
// virtual time.
#include <taskmon/spawn_result.hpp>
#include <taskmon/task_monitor.hpp>

#include "monitor_harness.hpp"

#include <fmt/format.h>

#include <chrono>
#include <stdexcept>
#include <string>
#include <utility>

using namespace std::chrono_literals;
using taskmon::MonitorEventKind;
using taskmon::RestartPolicy;
using taskmon::SpawnResult;
using taskmon::SpawnStatus;
using taskmon_test::Harness;
using taskmon_test::Monitor;
using taskmon_test::Recorder;
using taskmon_test::sleep_for;

namespace {

/// Sets its flag when destroyed: a coroutine parameter, destroyed with the coroutine's frame.
struct Witness {
    bool* destroyed;
    explicit Witness(bool& flag) : destroyed{&flag} {}
    Witness(Witness&& other) noexcept : destroyed{std::exchange(other.destroyed, nullptr)} {}
    Witness(const Witness&) = delete;
    Witness& operator=(const Witness&) = delete;
    Witness& operator=(Witness&&) = delete;
    ~Witness() {
        if (destroyed) {
            *destroyed = true;
        }
    }
};

/// A task that records that it ran, and holds `witness` as a connection's task holds its socket.
asio::awaitable<void> watched_task(bool& ran, Witness witness) {
    ran = true;
    (void)witness;
    co_await sleep_for(1s);
}

asio::awaitable<void> idle() { co_await sleep_for(24h); }

}  // namespace

TEST_CASE("spawn_result: SpawnStatus names and SpawnResult's truth", "[spawn_result]") {
    CHECK(to_string(SpawnStatus::spawned) == "spawned");
    CHECK(to_string(SpawnStatus::monitor_closed) == "monitor_closed");
    CHECK(to_string(SpawnStatus::name_taken) == "name_taken");
    CHECK(fmt::format("{:<15}|", SpawnStatus::name_taken) == "name_taken     |");
    CHECK(static_cast<bool>(SpawnResult{SpawnStatus::spawned, "a"}));
    CHECK_FALSE(static_cast<bool>(SpawnResult{SpawnStatus::monitor_closed, ""}));
    CHECK_FALSE(static_cast<bool>(SpawnResult{SpawnStatus::name_taken, "a"}));
}

TEST_CASE("try_spawn: a taken name is reported, the task destroyed unrun, and nothing changes",
          "[spawn_result][task_monitor][spawn]") {
    Harness h;
    Recorder recorder;
    Monitor monitor{h.io.get_executor(), RestartPolicy{}, h.logger};
    auto subscription = monitor.subscribe(recorder.listener());
    monitor.supervise("svc", [] { return idle(); });
    monitor.set_restart_factories({{"later", taskmon::RestartFactory{[] { return idle(); }}}});
    monitor.supervise_group("pool", {{.name = "worker", .factory = [] { return idle(); }}});
    REQUIRE(monitor.try_spawn("conn", idle()).status == SpawnStatus::spawned);
    h.runner.run_for(1s);
    const auto before = monitor.get_component_stats();
    const auto events_before = recorder.events.size();
    for (const std::string name : {"svc", "later", "pool", "worker", "conn"}) {
        INFO(name);
        bool ran = false;
        bool destroyed = false;
        const auto result = monitor.try_spawn(name, watched_task(ran, Witness{destroyed}));
        CHECK(result.status == SpawnStatus::name_taken);
        CHECK(result.name == name);
        CHECK_FALSE(result);
        CHECK(destroyed);  // before the call returned: a refused connection's socket is closed at once
        h.runner.run_for(1s);
        CHECK_FALSE(ran);
    }
    CHECK(recorder.events.size() == events_before);
    const auto after = monitor.get_component_stats();
    REQUIRE(after.size() == before.size());
    CHECK(after.at("conn").task_id == before.at("conn").task_id);
    // Bad input is a bug, not a refusal: it still throws, and changes nothing either.
    CHECK_THROWS_AS(monitor.try_spawn("", idle()), std::invalid_argument);
    CHECK_THROWS_AS(monitor.try_spawn("conn\n2", idle()), std::invalid_argument);
    CHECK_THROWS_AS(monitor.try_spawn("fresh", asio::awaitable<void>{}), std::invalid_argument);
    CHECK(monitor.get_component_stats().size() == before.size());
    h.close(monitor);
}

TEST_CASE("try_spawn: once close() started, every spawn form refuses as monitor_closed and runs nothing",
          "[spawn_result][task_monitor][spawn][close]") {
    Harness h;
    Recorder recorder;
    Monitor monitor{h.io.get_executor(), RestartPolicy{}, h.logger};
    auto subscription = monitor.subscribe(recorder.listener());
    h.close(monitor);
    const auto events_before = recorder.events.size();
    bool ran = false;
    bool destroyed = false;
    const auto named = monitor.try_spawn("conn", watched_task(ran, Witness{destroyed}));
    CHECK(named.status == SpawnStatus::monitor_closed);
    CHECK(named.name == "conn");
    CHECK(destroyed);
    const auto numbered = monitor.try_spawn_numbered("conn-", watched_task(ran, Witness{destroyed}));
    CHECK(numbered.status == SpawnStatus::monitor_closed);
    CHECK(numbered.name.empty());  // no id was taken
    CHECK_THROWS_AS(monitor.spawn_numbered("conn-", idle()), taskmon::MonitorClosed);
    try {
        (void)monitor.spawn_numbered("conn-", idle());
    } catch (const taskmon::MonitorClosed& e) {
        CHECK(std::string{e.what()} == "spawn_numbered: the TaskMonitor is closed");
    }
    h.runner.run_for(1s);
    CHECK_FALSE(ran);
    CHECK(monitor.get_component_stats().empty());
    CHECK(recorder.events.size() == events_before);
}

TEST_CASE("spawn_numbered: the task's id completes the name, a taken name is skipped, and no name comes twice",
          "[spawn_result][task_monitor][spawn]") {
    Harness h;
    Recorder recorder;
    Monitor monitor{h.io.get_executor(), RestartPolicy{}, h.logger};
    auto subscription = monitor.subscribe(recorder.listener());
    // task_id 1 goes to a component the user named as the next generated name would be.
    monitor.register_task("conn-2", idle());
    const auto short_task = []() -> asio::awaitable<void> { co_await sleep_for(1s); };
    const auto first = monitor.spawn_numbered("conn-", short_task());
    CHECK(first == "conn-3");  // id 2's name is taken: the next id
    const auto started = recorder.of(MonitorEventKind::started);
    REQUIRE(started.size() == 2);
    CHECK(started[1].component == "conn-3");
    CHECK(started[1].task_id == 3);  // the name's number is the task_id of its logs and events
    h.runner.run_for(2s);            // conn-3 ended: its name is free, yet never generated again
    CHECK(monitor.get_component_stats().count("conn-3") == 0);
    const auto second = monitor.try_spawn_numbered("conn-", short_task());
    CHECK(second.status == SpawnStatus::spawned);
    CHECK(second.name == "conn-4");
    CHECK(monitor.spawn_numbered("request #", short_task()) == "request #5");  // ids are the monitor's, not a prefix's
    CHECK(monitor.get_component_stats().at("conn-4").spawned);
    // The prefix obeys the rules of a name; a bad one throws and takes no id.
    CHECK_THROWS_WITH(monitor.spawn_numbered("", short_task()), "spawn_numbered: the name prefix must not be empty");
    CHECK_THROWS_WITH(monitor.try_spawn_numbered("conn\n", short_task()),
                      "try_spawn_numbered: the name prefix \"conn\\n\" contains the control character U+000A at "
                      "byte 4");
    CHECK_THROWS_WITH(monitor.spawn_numbered("conn-", asio::awaitable<void>{}),
                      "spawn_numbered: the coroutine to name conn-<id> is an empty asio::awaitable<void> "
                      "(default-constructed or moved from)");
    CHECK(monitor.spawn_numbered("conn-", short_task()) == "conn-6");
    h.close(monitor);
}
