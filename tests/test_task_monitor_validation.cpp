// TaskMonitor tests: bad input is rejected, names the problem and changes nothing.
// Everything time-dependent runs in virtual time (ManualClock); the scripted components are in
// support/monitor_harness.hpp.
#include <taskmon/task_monitor.hpp>
#include <taskmon/testing/manual_clock.hpp>

#include "monitor_harness.hpp"
#include "taskmon_catch.hpp"

#include <asio/co_spawn.hpp>
#include <asio/io_context.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>

#include <cstddef>
#include <exception>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

using namespace taskmon_test;  // Harness, Monitor, Script, scripted, factory_of, the common taskmon names ...

TEST_CASE("Invalid policies are rejected naming the field", "[task_monitor]") {
    struct Row {
        RestartPolicy policy;
        const char* field;  // what the message names
    };
    const std::vector<Row> rows{
        {{.max_restart_attempts = -1}, "max_restart_attempts"},
        {{.restart_window = 0s}, "restart_window"},
        {{.restart_window = -1s}, "restart_window"},
        {{.base_backoff = -1ms}, "base_backoff"},
        {{.base_backoff = 10s, .max_backoff = 5s}, "max_backoff"},
        {{.backoff_multiplier = 0.5}, "backoff_multiplier"},
        {{.backoff_multiplier = std::numeric_limits<double>::quiet_NaN()}, "backoff_multiplier"},
        {{.jitter = taskmon::JitterKind::proportional, .jitter_ratio = 1.5}, "jitter_ratio"},
        {{.jitter_ratio = -0.1}, "jitter_ratio"},
        {{.reset_backoff_after = -1s}, "reset_backoff_after"},
        {{.shutdown_timeout = -1s}, "shutdown_timeout"},
    };
    asio::io_context io;
    for (std::size_t i = 0; i < rows.size(); ++i) {
        INFO("row " << i << ": an invalid " << rows[i].field);
        try {
            taskmon::TaskMonitor monitor{io.get_executor(), rows[i].policy};
            FAIL("accepted an invalid " << rows[i].field);
        } catch (const std::invalid_argument& e) {
            CHECK(std::string{e.what()}.find(rows[i].field) != std::string::npos);
        }
    }
    CHECK_NOTHROW(taskmon::TaskMonitor{io.get_executor(), {.base_backoff = 1500ms, .max_backoff = 1500ms}});
}

TEST_CASE("Bad names are rejected and change nothing", "[task_monitor]") {
    Harness h;
    Script a;
    Monitor monitor{h.io.get_executor(), {}, h.logger};
    monitor.supervise("a", factory_of(a));
    const auto before = monitor.get_component_stats();

    CHECK(invalid_argument_message([&] { monitor.register_task("", scripted(a)); }).find("empty") != std::string::npos);
    CHECK(invalid_argument_message([&] {
              monitor.register_task("a", scripted(a));
          }).find("duplicate component name 'a'") != std::string::npos);
    CHECK(invalid_argument_message([&] { monitor.supervise("a", factory_of(a)); }).find("'a'") != std::string::npos);
    CHECK(invalid_argument_message([&] { monitor.supervise("b", taskmon::RestartFactory{}); }).find("factory") !=
          std::string::npos);
    CHECK(invalid_argument_message([&] {
              monitor.supervise("b", factory_of(a), RestartPolicy{.max_backoff = 1s});
          }).find("max_backoff") != std::string::npos);
    CHECK(invalid_argument_message([&] {
              monitor.set_restart_factories({{"", factory_of(a)}});
          }).find("empty") != std::string::npos);
    // A list with one unknown name changes none of the names in it.
    CHECK(invalid_argument_message([&] {
              monitor.disable({"a", "ghost"});
          }).find("unknown component 'ghost'") != std::string::npos);
    CHECK(invalid_argument_message([&] { monitor.enable({"ghost"}); }).find("'ghost'") != std::string::npos);
    CHECK(invalid_argument_message([&] { monitor.restart("ghost"); }).find("'ghost'") != std::string::npos);

    h.runner.run_for(1s);
    const auto after = monitor.get_component_stats();
    CHECK(after.size() == 1);
    CHECK(after.at("a").enabled);
    CHECK(after.at("a").state == ComponentState::running);
    CHECK(after.at("a").task_id == before.at("a").task_id);
    CHECK(a.starts == 1);  // only supervise() called the factory; the rejected calls ran nothing
    h.close(monitor);
}

TEST_CASE("set_restart_factories with one bad entry changes nothing", "[task_monitor]") {
    Harness h;
    Script a, b;
    Monitor monitor{h.io.get_executor(), {}, h.logger};
    try {
        monitor.set_restart_factories({{"a", factory_of(a)}, {"b", {}}, {"c", factory_of(b)}});
        FAIL("accepted an empty factory");
    } catch (const std::invalid_argument& e) {
        CHECK(std::string{e.what()}.find("'b'") != std::string::npos);
    }
    CHECK(monitor.get_component_stats().empty());
    h.close(monitor);
}

TEST_CASE("supervise() with a factory that throws propagates it and changes nothing", "[task_monitor]") {
    Harness h;
    Script script;
    Monitor monitor{h.io.get_executor(), {}, h.logger};
    CHECK_THROWS_WITH(monitor.supervise("c", []() -> asio::awaitable<void> { throw std::runtime_error("no device"); }),
                      "no device");
    CHECK(monitor.get_component_stats().empty());
    monitor.supervise("c", factory_of(script));
    h.runner.run_for(1s);
    CHECK(script.starts == 1);
    CHECK(monitor.get_component_stats().at("c").task_id == 1);
    h.close(monitor);
}

TEST_CASE("Calls after close throw taskmon::MonitorClosed, a std::logic_error", "[task_monitor]") {
    Harness h;
    Script a;
    Monitor monitor{h.io.get_executor(), {}, h.logger};
    monitor.supervise("a", factory_of(a));
    h.close(monitor);
    CHECK_THROWS_AS(monitor.register_task("b", scripted(a)), taskmon::MonitorClosed);
    CHECK_THROWS_AS(monitor.supervise("b", factory_of(a)), taskmon::MonitorClosed);
    CHECK_THROWS_AS(monitor.set_restart_factories({{"b", factory_of(a)}}), taskmon::MonitorClosed);
    CHECK_THROWS_AS(monitor.enable({"a"}), taskmon::MonitorClosed);
    CHECK_THROWS_AS(monitor.restart("a"), taskmon::MonitorClosed);
    CHECK_THROWS_AS(monitor.spawn("c", scripted(a)), taskmon::MonitorClosed);
    CHECK_THROWS_AS(monitor.subscribe([](const taskmon::MonitorEvent&) {}), taskmon::MonitorClosed);
    CHECK_THROWS_AS(monitor.restart("a"), std::logic_error);  // what code written before MonitorClosed catches
    CHECK_THROWS_WITH(monitor.reset("a"), "reset: the TaskMonitor is closed");
    CHECK(monitor.get_component_stats().size() == 1);
}

TEST_CASE("An empty asio::awaitable is refused at the call, or is a factory failure, never a crash", "[task_monitor]") {
    Harness h;
    Recorder recorder;
    Monitor monitor{h.io.get_executor(), {.base_backoff = 1s, .max_backoff = 1s}, h.logger};
    auto subscription = monitor.subscribe(recorder.listener());
    CHECK(invalid_argument_message([&] { monitor.register_task("r", asio::awaitable<void>{}); }) ==
          "register_task: the coroutine of component 'r' is an empty asio::awaitable<void> (default-constructed or "
          "moved from)");
    CHECK(invalid_argument_message([&] {
              monitor.spawn("s", asio::awaitable<void>{});
          }).rfind("spawn: the coroutine", 0) == 0);
    CHECK(invalid_argument_message([&] { monitor.supervise("f", [] { return asio::awaitable<void>{}; }); }) ==
          "supervise: the factory of component 'f' returned an empty asio::awaitable<void> (default-constructed or "
          "moved from)");
    CHECK(monitor.get_component_stats().empty());
    CHECK(recorder.events.empty());
    // A factory that returns one later: its restart fails like a factory that throws, with the reason.
    Script script = failing_now(1);
    int calls = 0;
    monitor.supervise(
        "later", [&]() -> asio::awaitable<void> { return ++calls == 2 ? asio::awaitable<void>{} : scripted(script); });
    h.runner.run_for(5s);
    const auto failed = recorder.of(taskmon::MonitorEventKind::factory_failed);
    REQUIRE(failed.size() == 1);
    CHECK(failed.front().reason ==
          "std::invalid_argument: the restart factory of component 'later' returned an empty asio::awaitable<void> "
          "(default-constructed or moved from)");
    CHECK(calls == 3);  // the restart after it worked
    CHECK(monitor.get_component_stats().at("later").state == ComponentState::running);
    // A group member's factory likewise.
    int member_calls = 0;
    monitor.supervise_group("g", {{.name = "m", .factory = [&]() -> asio::awaitable<void> {
                                       return ++member_calls == 1 ? asio::awaitable<void>{} : sleep_for(1h);
                                   }}});
    h.runner.run_for(5s);
    CHECK(recorder.of(taskmon::MonitorEventKind::factory_failed).size() == 2);
    CHECK(monitor.get_component_stats().at("m").state == ComponentState::running);
    h.close(monitor);
}

TEST_CASE("A name that is not one line of UTF-8 is refused by every call that names something, changing nothing",
          "[task_monitor]") {
    Harness h;
    Script a;
    Monitor monitor{h.io.get_executor(), {}, h.logger};
    for (const std::string bad : {"evil\nforged line component=other", "\x1b[2Jclear", "nel\xC2\x85", "bad\xFF"}) {
        INFO(bad);
        const auto expect_refused = [&](const std::string& message, const std::string& start) {
            CHECK(message.rfind(start, 0) == 0);
            CHECK(message.find('\n') == std::string::npos);  // the name is escaped in the message too
        };
        expect_refused(invalid_argument_message([&] { monitor.supervise(bad, factory_of(a)); }),
                       "supervise: component name \"");
        expect_refused(invalid_argument_message([&] { monitor.register_task(bad, scripted(a)); }),
                       "register_task: component name");
        expect_refused(invalid_argument_message([&] { monitor.spawn(bad, scripted(a)); }), "spawn: component name");
        expect_refused(invalid_argument_message([&] {
                           monitor.set_restart_factories({{bad, factory_of(a)}});
                       }),
                       "set_restart_factories: component name");
        expect_refused(
            invalid_argument_message([&] { monitor.supervise_group(bad, {{.name = "m", .factory = factory_of(a)}}); }),
            "supervise_group: group name");
        expect_refused(
            invalid_argument_message([&] { monitor.supervise_group("g", {{.name = bad, .factory = factory_of(a)}}); }),
            "supervise_group: group 'g': member name");
        CHECK(invalid_argument_message([&] { monitor.restart(bad); }).find('\n') ==
              std::string::npos);  // unknown, escaped
    }
    h.runner.run_for(1s);
    CHECK(monitor.get_component_stats().empty());
    CHECK(monitor.get_group_stats().empty());
    CHECK(a.starts == 0);
    CHECK(h.lines_with("Started").empty());
    h.close(monitor);
}

TEST_CASE("Names with spaces or quotes are accepted, and their key=value fields are quoted", "[task_monitor]") {
    Harness h;
    Script script = failing_now(1);
    script.message = "line one\nline two \x1b[31mred";
    Monitor monitor{h.io.get_executor(), {}, h.logger};
    monitor.supervise("conn 7 \"eu\"", factory_of(script));
    h.runner.run_for(1s);
    const auto failed = h.lines_with("failed component=");
    REQUIRE(failed.size() == 1);
    CHECK(failed.front() ==
          R"(error|Component "conn 7 \"eu\"" failed component="conn 7 \"eu\"" task_id=1 failure_count=1 )"
          R"(reason="std::runtime_error: line one\nline two \x1b[31mred")");
    for (const auto& line : h.lines()) {
        CHECK(line.find('\x1b') == std::string::npos);
    }
    // A name cannot pass for a field of its own: it is quoted in the sentence too.
    monitor.supervise("x component=victim task_id=99", [] { return sleep_for(1h); });
    CHECK(h.lines_with(R"(info|Started component "x component=victim task_id=99" )"
                       R"(component="x component=victim task_id=99" task_id=2)")
              .size() == 1);
    h.close(monitor);
}

namespace {

/// An exception type whose what() returns a null pointer (the standard's never do; a user's type may).
struct NullWhat : std::exception {
    const char* what() const noexcept override { return nullptr; }
};

}  // namespace

TEST_CASE("An exception whose what() is a null pointer is reported by its type, never a crash", "[task_monitor]") {
    Harness h;
    Recorder recorder;
    Monitor monitor{h.io.get_executor(), {.max_restart_attempts = 0}, h.logger};
    auto subscription = monitor.subscribe(recorder.listener());
    monitor.supervise("odd", []() -> asio::awaitable<void> {
        co_await sleep_for(1s);
        throw NullWhat{};
    });
    h.runner.run_for(1min);
    const auto failed = recorder.of(taskmon::MonitorEventKind::failed);
    REQUIRE(failed.size() == 1);
    CHECK(failed.front().reason == "(anonymous namespace)::NullWhat: ");
    CHECK(monitor.get_component_stats().at("odd").state == ComponentState::gave_up);
    CHECK(h.lines_with("reason=\"(anonymous namespace)::NullWhat: \"").size() == 2);  // failed, gave_up
    h.close(monitor);
}
