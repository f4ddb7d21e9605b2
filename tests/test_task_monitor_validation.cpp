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

    const auto message_of = [](auto&& call) -> std::string {
        try {
            call();
        } catch (const std::invalid_argument& e) {
            return e.what();
        }
        return "no exception";
    };
    CHECK(message_of([&] { monitor.register_task("", scripted(a)); }).find("empty") != std::string::npos);
    CHECK(message_of([&] { monitor.register_task("a", scripted(a)); }).find("duplicate component name 'a'") !=
          std::string::npos);
    CHECK(message_of([&] { monitor.supervise("a", factory_of(a)); }).find("'a'") != std::string::npos);
    CHECK(message_of([&] { monitor.supervise("b", taskmon::RestartFactory{}); }).find("factory") != std::string::npos);
    CHECK(message_of([&] {
              monitor.supervise("b", factory_of(a), RestartPolicy{.max_backoff = 1s});
          }).find("max_backoff") != std::string::npos);
    CHECK(message_of([&] { monitor.set_restart_factories({{"", factory_of(a)}}); }).find("empty") != std::string::npos);
    // A list with one unknown name changes none of the names in it.
    CHECK(message_of([&] { monitor.disable({"a", "ghost"}); }).find("unknown component 'ghost'") != std::string::npos);
    CHECK(message_of([&] { monitor.enable({"ghost"}); }).find("'ghost'") != std::string::npos);
    CHECK(message_of([&] { monitor.restart("ghost"); }).find("'ghost'") != std::string::npos);

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

TEST_CASE("Calls after close throw std::logic_error", "[task_monitor]") {
    Harness h;
    Script a;
    Monitor monitor{h.io.get_executor(), {}, h.logger};
    monitor.supervise("a", factory_of(a));
    h.close(monitor);
    CHECK_THROWS_AS(monitor.register_task("b", scripted(a)), std::logic_error);
    CHECK_THROWS_AS(monitor.supervise("b", factory_of(a)), std::logic_error);
    CHECK_THROWS_AS(monitor.set_restart_factories({{"b", factory_of(a)}}), std::logic_error);
    CHECK_THROWS_AS(monitor.enable({"a"}), std::logic_error);
    CHECK_THROWS_AS(monitor.restart("a"), std::logic_error);
    CHECK(monitor.get_component_stats().size() == 1);
}
