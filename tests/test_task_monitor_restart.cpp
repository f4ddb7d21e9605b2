// TaskMonitor tests: restart types, restart(), enable()/disable() and failing factories.
// Everything time-dependent runs in virtual time (ManualClock); the scripted components are in
// support/monitor_harness.hpp.
#include <taskmon/task_monitor.hpp>
#include <taskmon/testing/manual_clock.hpp>

#include "monitor_harness.hpp"
#include "taskmon_catch.hpp"

#include <asio/co_spawn.hpp>
#include <asio/io_context.hpp>
#include <asio/post.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>

#include <memory>
#include <stdexcept>
#include <string>
#include <system_error>

using namespace taskmon_test;  // Harness, Monitor, Script, scripted, factory_of, the common taskmon names ...

TEST_CASE("Restart types decide what a normal return means", "[task_monitor]") {
    Harness h;
    int transient_runs = 0, permanent_runs = 0, temporary_runs = 0;
    auto returns = [](int& runs) -> asio::awaitable<void> {
        ++runs;
        co_return;
    };
    auto throws = [](int& runs) -> asio::awaitable<void> {
        ++runs;
        throw std::runtime_error("boom");
        co_return;
    };
    Monitor monitor{h.io.get_executor(), {.base_backoff = 1s, .max_backoff = 1s}, h.logger};
    monitor.supervise("transient", [&] { return returns(transient_runs); });
    monitor.supervise(
        "permanent", [&] { return returns(permanent_runs); },
        RestartPolicy{
            .max_restart_attempts = 3, .base_backoff = 1s, .max_backoff = 1s, .restart_type = RestartType::permanent});
    monitor.supervise(
        "temporary", [&] { return throws(temporary_runs); }, RestartPolicy{.restart_type = RestartType::temporary});
    h.runner.run_for(1h);
    const auto stats = monitor.get_component_stats();
    CHECK(transient_runs == 1);
    CHECK(stats.at("transient").state == ComponentState::completed);
    CHECK(stats.at("transient").task_done);
    CHECK(stats.at("transient").restart_count == 0);
    CHECK(permanent_runs == 4);  // restarted after every normal return until the limit
    CHECK(stats.at("permanent").restart_count == 3);
    CHECK(stats.at("permanent").state == ComponentState::gave_up);
    CHECK(temporary_runs == 1);  // never restarted, even after failing
    CHECK(stats.at("temporary").state == ComponentState::failed);
    CHECK(stats.at("temporary").failure_count == 1);
    CHECK(stats.at("temporary").last_error == "std::runtime_error: boom");
    CHECK(h.lines_with("Component transient completed component=transient").size() == 1);
    h.close(monitor);
}

TEST_CASE("A normal return while a restart() is pending restarts once under every restart type", "[task_monitor]") {
    const auto type = GENERATE(RestartType::transient, RestartType::permanent, RestartType::temporary);
    INFO("restart type " << taskmon::to_string(type));
    Harness h;
    int starts = 0;
    auto component = [&]() -> asio::awaitable<void> {
        ++starts;
        ManualTimer timer{co_await asio::this_coro::executor, 1h};
        try {
            co_await timer.async_wait(asio::use_awaitable);
        } catch (const std::system_error&) {
            co_return;  // returns normally when cancelled
        }
    };
    Monitor monitor{h.io.get_executor(), {.restart_type = type}, h.logger};
    monitor.supervise("c", component);
    h.runner.run_for(1s);
    monitor.restart("c");
    h.runner.run_for(1s);
    CHECK(starts == 2);
    const auto stats = monitor.get_component_stats().at("c");
    CHECK(stats.state == ComponentState::running);
    CHECK(stats.restart_count == 1);
    h.close(monitor);
}

TEST_CASE("An unexpected cancellation is restarted like a failure", "[task_monitor]") {
    Harness h;
    int starts = 0;
    std::shared_ptr<ManualTimer> rogue_target;
    auto component = [&]() -> asio::awaitable<void> {
        ++starts;
        auto timer = std::make_shared<ManualTimer>(co_await asio::this_coro::executor, 1h);
        rogue_target = timer;
        co_await timer->async_wait(asio::use_awaitable);
    };
    Monitor monitor{h.io.get_executor(), {}, h.logger};
    monitor.supervise("perception", component);
    h.runner.run_for(1s);
    REQUIRE(starts == 1);
    // Someone else cancels the operation the component waits on: the monitor did not request it.
    asio::post(h.io, [&] { rogue_target->cancel(); });
    h.runner.run_for(1s);
    auto stats = monitor.get_component_stats().at("perception");
    CHECK(stats.task_cancelled);
    CHECK(stats.is_restarting);
    CHECK(stats.state == ComponentState::restarting);
    CHECK(stats.failure_count == 1);
    CHECK(h.lines_with("was cancelled unexpectedly").size() == 1);
    h.runner.run_for(2s);
    stats = monitor.get_component_stats().at("perception");
    CHECK(starts == 2);
    CHECK(stats.state == ComponentState::running);
    CHECK_FALSE(stats.task_cancelled);
    CHECK(stats.restart_count == 1);
    h.close(monitor);
}

TEST_CASE("A cancellation wrapped in multiple_exceptions is classified by its first exception", "[task_monitor]") {
    Harness h;
    int starts = 0;
    auto component = [&]() -> asio::awaitable<void> {
        if (++starts == 1) {
            throw asio::multiple_exceptions(std::make_exception_ptr(std::system_error(asio::error::operation_aborted)));
        }
        ManualTimer timer{co_await asio::this_coro::executor, 1h};
        co_await timer.async_wait(asio::use_awaitable);
    };
    Monitor monitor{h.io.get_executor(), {}, h.logger};
    monitor.supervise("c", component);
    h.runner.run_for(1s);
    auto stats = monitor.get_component_stats().at("c");
    CHECK(stats.task_cancelled);
    CHECK(stats.failure_count == 1);
    CHECK(h.lines_with("was cancelled unexpectedly").size() == 1);
    h.runner.run_for(2s);
    CHECK(starts == 2);
    h.close(monitor);
}

TEST_CASE("Siblings are isolated from a failing component", "[task_monitor]") {
    Harness h;
    auto bad = failing_now(1000);
    int ticks = 0;
    auto good = [&]() -> asio::awaitable<void> {
        ManualTimer timer{co_await asio::this_coro::executor};
        for (;;) {
            timer.expires_after(1s);
            co_await timer.async_wait(asio::use_awaitable);
            ++ticks;
        }
    };
    Monitor monitor{h.io.get_executor(), {}, h.logger};
    monitor.supervise("bad", factory_of(bad));
    monitor.supervise("good", good);
    const auto good_id = monitor.get_component_stats().at("good").task_id;
    h.runner.run_for(10min);
    const auto stats = monitor.get_component_stats();
    CHECK(stats.at("bad").state == ComponentState::gave_up);
    CHECK(stats.at("good").state == ComponentState::running);
    CHECK(stats.at("good").restart_count == 0);
    CHECK(stats.at("good").failure_count == 0);
    CHECK(stats.at("good").task_id == good_id);
    CHECK(ticks == 600);
    h.close(monitor);
}

TEST_CASE("restart() while running replaces the instance exactly once", "[task_monitor]") {
    Harness h;
    Script script;
    Monitor monitor{h.io.get_executor(), {}, h.logger};
    monitor.supervise("perception", factory_of(script));
    h.runner.run_for(1s);
    monitor.restart("perception");
    monitor.restart("perception");
    monitor.restart("perception");
    auto stats = monitor.get_component_stats().at("perception");
    CHECK(stats.is_restarting);
    CHECK(stats.state == ComponentState::restarting);
    h.runner.run_for(1s);
    CHECK(script.starts == 2);
    CHECK(script.max_live == 1);
    stats = monitor.get_component_stats().at("perception");
    CHECK(stats.state == ComponentState::running);
    CHECK(stats.restart_count == 1);
    CHECK(stats.failure_count == 0);
    CHECK(stats.restarts_in_window == 0);  // manual restarts do not use up the automatic budget
    CHECK(stats.last_restart_time.has_value());
    CHECK(h.lines_with("merged into the pending restart").size() == 2);
    h.close(monitor);
}

TEST_CASE("A stop requested for an instance that ends on its own never cancels the next instance", "[task_monitor]") {
    // Every instance of a component shares its record's cancellation signal. Here the stop for instance 1 is
    // emitted after instance 1 returned and after the restart it asked for was decided: it must reach no one.
    const auto type = GENERATE(RestartType::transient, RestartType::permanent);
    INFO("restart type " << taskmon::to_string(type));
    Harness h;
    Monitor monitor{h.io.get_executor(), {.restart_type = type}, h.logger};
    int starts = 0;
    int cancelled = 0;
    monitor.supervise("c", [&]() -> asio::awaitable<void> {
        if (++starts == 1) {
            monitor.restart("c");  // its stop is handled after this return, its exit after the stop's request
            co_return;
        }
        ManualTimer timer{co_await asio::this_coro::executor, 1h};
        try {
            co_await timer.async_wait(asio::use_awaitable);
        } catch (const std::system_error&) {
            ++cancelled;
            throw;
        }
    });
    h.runner.run_for(1min);
    CHECK(starts == 2);
    CHECK(cancelled == 0);
    const auto stats = monitor.get_component_stats().at("c");
    CHECK(stats.state == ComponentState::running);
    CHECK(stats.restart_count == 1);
    CHECK(stats.failure_count == 0);
    CHECK_FALSE(stats.task_cancelled);
    h.close(monitor);
    CHECK(cancelled == 1);  // close() cancels it: the signal still reaches the instance it was bound for
}

TEST_CASE("restart() during a backoff merges into it and starts at once", "[task_monitor]") {
    Harness h;
    auto script = failing_now(1);
    Monitor monitor{h.io.get_executor(), {.base_backoff = 30s, .max_backoff = 60s}, h.logger};
    monitor.supervise("perception", factory_of(script));
    h.runner.run_for(1s);
    REQUIRE(monitor.get_component_stats().at("perception").is_restarting);
    monitor.restart("perception");
    monitor.restart("perception");
    h.runner.run_for(1s);
    CHECK(script.starts == 2);
    CHECK(script.start_times[1] == 1s);
    h.runner.run_for(2min);  // the old backoff timer must not start a second instance
    CHECK(script.starts == 2);
    CHECK(script.max_live == 1);
    CHECK(monitor.get_component_stats().at("perception").restart_count == 1);
    h.close(monitor);
}

TEST_CASE("restart() after give-up resets the restart budget", "[task_monitor]") {
    Harness h;
    auto script = failing_now(6);
    Monitor monitor{h.io.get_executor(), {}, h.logger};
    monitor.supervise("perception", factory_of(script));
    h.runner.run_for(5min);
    REQUIRE(monitor.get_component_stats().at("perception").state == ComponentState::gave_up);
    monitor.restart("perception");
    h.runner.run_for(1s);
    const auto stats = monitor.get_component_stats().at("perception");
    CHECK(stats.state == ComponentState::running);
    CHECK(stats.restart_count == 6);
    CHECK(stats.restarts_in_window == 0);
    h.close(monitor);
}

TEST_CASE("restart() of a component known only by its factory starts it once and register_task then throws",
          "[task_monitor]") {
    Harness h;
    Script script;
    Monitor monitor{h.io.get_executor(), {}, h.logger};
    monitor.set_restart_factories({{"c", factory_of(script)}});
    monitor.restart("c");
    CHECK_THROWS_AS(monitor.register_task("c", scripted(script)), std::invalid_argument);
    h.runner.run_for(1s);
    CHECK(script.starts == 1);
    CHECK(script.max_live == 1);
    CHECK(monitor.get_component_stats().at("c").state == ComponentState::running);
    CHECK(h.close(monitor) == 0s);
    CHECK(script.live == 0);
}

TEST_CASE("A failure of an instance being restarted by restart() is recorded, not dropped", "[task_monitor]") {
    Harness h;
    int starts = 0;
    auto component = [&]() -> asio::awaitable<void> {
        ++starts;
        ManualTimer timer{co_await asio::this_coro::executor, 1h};
        try {
            co_await timer.async_wait(asio::use_awaitable);
        } catch (const std::system_error&) {
            throw std::runtime_error("cleanup failed");  // fails while being stopped
        }
    };
    Monitor monitor{h.io.get_executor(), {}, h.logger};
    monitor.supervise("c", component);
    h.runner.run_for(1s);
    monitor.restart("c");
    h.runner.run_for(1s);
    const auto stats = monitor.get_component_stats().at("c");
    CHECK(starts == 2);
    CHECK(stats.state == ComponentState::running);
    CHECK(stats.restart_count == 1);
    CHECK(stats.last_error == "std::runtime_error: cleanup failed");
    CHECK(h.lines_with("stopped with an error").size() == 1);
    h.close(monitor);
}

TEST_CASE("A failing factory counts as a failure and is retried", "[task_monitor]") {
    Harness h;
    Script script;
    int calls = 0;
    Monitor monitor{h.io.get_executor(), {.base_backoff = 1s, .max_backoff = 1s}, h.logger};
    monitor.supervise("c", [&]() -> asio::awaitable<void> {
        ++calls;
        if (calls == 2) {
            throw std::runtime_error("no device");
        }
        return scripted(script);
    });
    script.lifetimes = {0s};
    h.runner.run_for(1min);
    CHECK(calls == 3);
    const auto stats = monitor.get_component_stats().at("c");
    CHECK(stats.state == ComponentState::running);
    CHECK(stats.failure_count == 2);
    CHECK(stats.restart_count == 1);
    CHECK(h.lines_with("Restart factory of component c threw").size() == 1);
    h.close(monitor);
}

TEST_CASE("Only enabled components are restarted", "[task_monitor]") {
    Harness h;
    auto script = failing_now(1);
    Monitor monitor{h.io.get_executor(), {}, h.logger};
    monitor.set_restart_factories({{"pause_handler", factory_of(script)}});
    monitor.register_task("pause_handler", scripted(script));
    h.runner.run_for(1h);
    const auto stats = monitor.get_component_stats().at("pause_handler");
    CHECK(script.starts == 1);
    CHECK(stats.state == ComponentState::failed);
    CHECK(stats.failure_count == 1);
    CHECK(h.lines_with("is not enabled for restart").size() == 1);
    h.close(monitor);
}

TEST_CASE("An enabled component without a factory is reported, not silently dropped", "[task_monitor]") {
    Harness h;
    auto script = failing_now(1);
    Monitor monitor{h.io.get_executor(), {}, h.logger};
    monitor.register_task("orphan", scripted(script));
    monitor.enable({"orphan"});
    h.runner.run_for(1h);
    CHECK(monitor.get_component_stats().at("orphan").state == ComponentState::failed);
    CHECK(h.lines_with("no restart factory").size() == 1);
    h.close(monitor);
}

TEST_CASE("disable() stops a component without counting a failure", "[task_monitor]") {
    Harness h;
    auto failing = failing_now(100);
    Script steady;
    Monitor monitor{h.io.get_executor(), {}, h.logger};
    monitor.supervise("failing", factory_of(failing));
    monitor.supervise("steady", factory_of(steady));
    h.runner.run_for(1s);  // failing is in its 2 s backoff
    monitor.disable({"failing", "steady"});
    h.runner.run_for(1h);
    const auto stats = monitor.get_component_stats();
    CHECK(failing.starts == 1);
    CHECK(stats.at("failing").state == ComponentState::stopped);
    CHECK(stats.at("steady").state == ComponentState::stopped);
    CHECK(stats.at("steady").failure_count == 0);
    CHECK(steady.live == 0);
    h.close(monitor);
}

TEST_CASE("disable() then enable() during a backoff, then restart(), starts exactly one instance", "[task_monitor]") {
    Harness h;
    auto script = failing_now(1);
    Monitor monitor{h.io.get_executor(), {.base_backoff = 10s, .max_backoff = 10s}, h.logger};
    monitor.supervise("c", factory_of(script));
    h.runner.run_for(1s);
    REQUIRE(monitor.get_component_stats().at("c").is_restarting);
    monitor.disable({"c"});
    monitor.enable({"c"});
    auto stats = monitor.get_component_stats().at("c");
    CHECK(stats.state == ComponentState::stopped);
    CHECK_FALSE(stats.is_restarting);
    h.runner.run_for(1min);
    CHECK(script.starts == 1);  // the dropped backoff never fires
    monitor.restart("c");
    monitor.restart("c");
    h.runner.run_for(1min);
    CHECK(script.starts == 2);
    CHECK(script.max_live == 1);
    CHECK(monitor.get_component_stats().at("c").state == ComponentState::running);
    h.close(monitor);
}

TEST_CASE("restart() of a disabled component runs one instance and leaves it disabled: no automatic restart follows",
          "[task_monitor]") {
    // restart() is manual: it starts one new instance now; whether anything restarts it after that is enable()'s
    // business. So neither a throwing factory nor a failing instance schedules a restart, and every change has its
    // event.
    SECTION("the factory throws") {
        Harness h;
        Recorder recorder;
        Script script;
        int calls = 0;
        Monitor monitor{h.io.get_executor(), {.base_backoff = 1s, .max_backoff = 1s}, h.logger};
        monitor.supervise("c", [&]() -> asio::awaitable<void> {
            if (++calls > 1) {
                throw std::runtime_error("no device");
            }
            return scripted(script);
        });
        monitor.disable({"c"});
        h.runner.run_for(1s);
        auto subscription = monitor.subscribe(recorder.listener());
        monitor.restart("c");
        h.runner.run_for(1h);
        CHECK(calls == 2);  // never called again, so no coroutine made and thrown away
        CHECK(recorder.kinds() == Names{"restart_requested", "factory_failed", "not_enabled"});
        const auto stats = monitor.get_component_stats().at("c");
        CHECK(stats.state == ComponentState::failed);
        CHECK_FALSE(stats.enabled);
        CHECK_FALSE(stats.is_restarting);
        CHECK_FALSE(stats.next_restart_at);
        h.close(monitor);
    }
    SECTION("the new instance fails") {
        Harness h;
        Recorder recorder;
        Script script;
        script.lifetimes = {1h, 5s};  // the first instance is disabled; the manual one fails after 5 s
        Monitor monitor{h.io.get_executor(), {.base_backoff = 1s, .max_backoff = 1s}, h.logger};
        monitor.supervise("c", factory_of(script));
        monitor.disable({"c"});
        h.runner.run_for(1s);
        auto subscription = monitor.subscribe(recorder.listener());
        monitor.restart("c");
        h.runner.run_for(1h);
        CHECK(script.starts == 2);
        CHECK(recorder.kinds() == Names{"restart_requested", "restarted", "failed", "not_enabled"});
        CHECK(monitor.get_component_stats().at("c").state == ComponentState::failed);
        h.close(monitor);
    }
}

TEST_CASE("A temporary component's failing factory on restart() is not retried", "[task_monitor]") {
    Harness h;
    Recorder recorder;
    Script script;
    int calls = 0;
    Monitor monitor{
        h.io.get_executor(), {.base_backoff = 1s, .max_backoff = 1s, .restart_type = RestartType::temporary}, h.logger};
    monitor.supervise("t", [&]() -> asio::awaitable<void> {
        if (++calls > 1) {
            throw std::runtime_error("no device");
        }
        return scripted(script);
    });
    h.runner.run_for(1s);
    auto subscription = monitor.subscribe(recorder.listener());
    monitor.restart("t");
    h.runner.run_for(1h);
    CHECK(calls == 2);
    CHECK(recorder.kinds() == Names{"restart_requested", "factory_failed"});  // failed: the factory_failed says how
    CHECK(monitor.get_component_stats().at("t").state == ComponentState::failed);
    h.close(monitor);
}

namespace {

/// A factory whose coroutine lambda reads its capture after suspending (the frame refers to the closure
/// object): `token` is alive while any copy of the factory is, `reads` counts the reads after the wait.
taskmon::RestartFactory capturing_factory(std::shared_ptr<int> token, int& reads) {
    return [token = std::move(token), &reads]() -> asio::awaitable<void> {
        ManualTimer timer{co_await asio::this_coro::executor, 1h};
        co_await timer.async_wait(asio::use_awaitable);
        reads += *token;  // the closure's member, through the frame's `this`
    };
}

}  // namespace

TEST_CASE("A factory replaced while its instance runs is kept until that instance exits, then released",
          "[task_monitor]") {
    Harness h;
    int reads = 0;
    auto token = std::make_shared<int>(1);
    const std::weak_ptr<int> first = token;
    Monitor monitor{h.io.get_executor(), {.base_backoff = 1s, .max_backoff = 1s}, h.logger};
    monitor.supervise("c", capturing_factory(std::move(token), reads));
    h.runner.run_for(1s);
    monitor.set_restart_factories({{"c", capturing_factory(std::make_shared<int>(10), reads)}});
    monitor.set_restart_factories({{"c", capturing_factory(std::make_shared<int>(100), reads)}});
    CHECK_FALSE(first.expired());  // the running instance's frame still refers to it
    h.runner.run_for(1h);          // it reads its capture, returns, and a transient component completes
    CHECK(reads == 1);
    CHECK(first.expired());
    monitor.restart("c");  // the latest factory
    h.runner.run_for(2h);
    CHECK(reads == 101);
    h.close(monitor);
}

namespace {

/// A factory that replaces itself (by `replacement`) each time it is called, then returns a coroutine that reads
/// its own member after suspending: the coroutine's frame refers to this object, inside the monitor's copy.
struct SelfReplacingFactory {
    std::shared_ptr<int> token;
    int* reads;
    Monitor* monitor;
    taskmon::RestartFactory replacement;

    asio::awaitable<void> operator()() const {
        monitor->set_restart_factories({{"c", replacement}});  // outside the monitor's lock: user code
        return run();
    }
    asio::awaitable<void> run() const {
        ManualTimer timer{co_await asio::this_coro::executor, 1h};
        co_await timer.async_wait(asio::use_awaitable);
        *reads += *token;
    }
};

}  // namespace

TEST_CASE("A factory replaced while it was being called is kept until the instance it made exits", "[task_monitor]") {
    Harness h;
    int reads = 0;
    Monitor monitor{h.io.get_executor(), {.base_backoff = 1s, .max_backoff = 1s}, h.logger};
    auto token = std::make_shared<int>(1);
    const std::weak_ptr<int> first = token;
    monitor.set_restart_factories({{"c", SelfReplacingFactory{std::move(token), &reads, &monitor,
                                                              capturing_factory(std::make_shared<int>(10), reads)}}});
    monitor.restart("c");
    h.runner.run_for(1s);
    CHECK(monitor.get_component_stats().at("c").state == ComponentState::running);
    CHECK_FALSE(first.expired());  // replaced during its own call, it is kept for the instance it made
    h.runner.run_for(1h);
    CHECK(reads == 1);
    CHECK(first.expired());
    h.close(monitor);
}
