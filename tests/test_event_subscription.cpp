// Tests for taskmon/event_subscription.hpp: the handle BasicTaskMonitor::subscribe() returns. Virtual time
// (ManualClock) except for the [threads] case.
#include <taskmon/detail/strand_executor.hpp>
#include <taskmon/event_subscription.hpp>
#include <taskmon/task_monitor.hpp>

#include "monitor_harness.hpp"
#include "taskmon_catch.hpp"

#include <asio/co_spawn.hpp>
#include <asio/io_context.hpp>
#include <spdlog/sinks/null_sink.h>

#include <atomic>
#include <chrono>
#include <future>
#include <memory>
#include <optional>
#include <stdexcept>
#include <thread>
#include <type_traits>
#include <utility>

using namespace std::chrono_literals;
using taskmon::MonitorEvent;
using taskmon::MonitorEventKind;
using namespace taskmon_test;

TEST_CASE("EventSubscription is a move-only handle", "[event_subscription]") {
    static_assert(std::is_nothrow_default_constructible_v<taskmon::EventSubscription>);
    static_assert(std::is_nothrow_move_constructible_v<taskmon::EventSubscription>);
    static_assert(std::is_nothrow_move_assignable_v<taskmon::EventSubscription>);
    static_assert(!std::is_copy_constructible_v<taskmon::EventSubscription>);
    static_assert(!std::is_copy_assignable_v<taskmon::EventSubscription>);
    taskmon::EventSubscription empty;
    CHECK_FALSE(empty.subscribed());
    empty.unsubscribe();  // owns nothing: does nothing
    CHECK_FALSE(empty.subscribed());
}

TEST_CASE("unsubscribe() stops delivery, and the handle is idempotent and movable", "[event_subscription]") {
    Harness h;
    auto script = failing_now(100);
    Monitor monitor{
        h.io.get_executor(), {.max_restart_attempts = 100, .base_backoff = 1s, .max_backoff = 1s}, h.logger};
    Recorder kept, dropped, scoped;
    auto keep = monitor.subscribe(kept.listener());
    auto drop = monitor.subscribe(dropped.listener());
    std::optional<taskmon::EventSubscription> scope{monitor.subscribe(scoped.listener())};
    CHECK(drop.subscribed());
    monitor.supervise("c", factory_of(script));
    h.runner.run_for(10s);
    const auto seen = dropped.events.size();
    CHECK(seen == kept.events.size());
    CHECK(seen == scoped.events.size());

    drop.unsubscribe();
    CHECK_FALSE(drop.subscribed());
    drop.unsubscribe();  // idempotent
    scope.reset();       // destruction unsubscribes too
    h.runner.run_for(10s);
    CHECK(dropped.events.size() == seen);
    CHECK(scoped.events.size() == seen);
    CHECK(kept.events.size() > seen);

    taskmon::EventSubscription moved = std::move(keep);
    CHECK(moved.subscribed());
    CHECK_FALSE(keep.subscribed());  // NOLINT(bugprone-use-after-move): a moved-from handle owns nothing
    keep.unsubscribe();              // NOLINT(bugprone-use-after-move): and unsubscribing it does nothing
    const auto before = kept.events.size();
    h.runner.run_for(10s);
    CHECK(kept.events.size() > before);

    taskmon::EventSubscription other = monitor.subscribe(dropped.listener());
    other = std::move(moved);  // move-assignment first unsubscribes what `other` owned
    const auto dropped_before = dropped.events.size();
    const auto kept_before = kept.events.size();
    h.runner.run_for(10s);
    CHECK(dropped.events.size() == dropped_before);
    CHECK(kept.events.size() > kept_before);
    CHECK_FALSE(taskmon::EventSubscription{}.subscribed());
    h.close(monitor);
}

TEST_CASE("A subscription may outlive its monitor, whose destruction ends delivery", "[event_subscription]") {
    Harness h;
    Script steady;
    auto failing = failing_now(100);
    Recorder r;
    taskmon::EventSubscription outliving;
    {
        Monitor monitor{h.io.get_executor(), {}, h.logger};
        outliving = monitor.subscribe(r.listener());
        monitor.supervise("steady", factory_of(steady));
        monitor.supervise("failing", factory_of(failing));
        h.runner.run_for(1s);
        CHECK(outliving.subscribed());
    }
    CHECK_FALSE(outliving.subscribed());
    const auto seen = r.kinds();
    h.runner.run();  // the shutdown that destruction started: logged, not delivered
    CHECK(h.io.stopped());
    CHECK(r.kinds() == seen);
    CHECK(h.lines_with("TaskMonitor closed components=2").size() == 1);
    outliving.unsubscribe();  // the monitor's state is gone: nothing to do, nothing touched
    CHECK_FALSE(outliving.subscribed());
}

TEST_CASE("unsubscribe() and the monitor's destruction wait for a call running on another thread",
          "[event_subscription][threads]") {
    for (const bool by_destruction : {false, true}) {
        INFO("by_destruction=" << by_destruction);
        asio::io_context io;
        auto work = asio::make_work_guard(io);
        std::thread runner{[&] { io.run(); }};
        auto logger = std::make_shared<spdlog::logger>("null", std::make_shared<spdlog::sinks::null_sink_mt>());
        std::optional<taskmon::TaskMonitor> monitor{std::in_place, io.get_executor(), taskmon::RestartPolicy{}, logger};
        std::promise<void> entered;
        std::promise<void> release;
        auto released = release.get_future().share();
        std::atomic<bool> finished{false};
        std::atomic<int> calls{0};
        auto subscription = monitor->subscribe([&](const MonitorEvent& e) {
            if (e.kind != MonitorEventKind::restart_requested && calls.fetch_add(1) == 0) {
                entered.set_value();
                released.wait();
                std::this_thread::sleep_for(20ms);  // a call that is still busy when the release comes
                finished = true;
            }
        });
        monitor->set_restart_factories({{"c", []() -> asio::awaitable<void> { co_return; }}});
        monitor->restart("c");  // its `restarted` event is published on the monitor's strand, on `runner`
        entered.get_future().wait();
        std::thread releaser{[&] {
            std::this_thread::sleep_for(20ms);
            release.set_value();
        }};
        if (by_destruction) {
            monitor.reset();
        } else {
            subscription.unsubscribe();
        }
        CHECK(finished);  // the call in progress returned before unsubscribe() or the destructor did
        releaser.join();
        if (monitor) {
            std::promise<void> closed;
            asio::co_spawn(io, monitor->close(), [&](std::exception_ptr) { closed.set_value(); });
            closed.get_future().wait();
        }
        work.reset();
        runner.join();
        CHECK(calls.load() == 1);  // nothing after it returned: neither `completed` nor the shutdown's events
        CHECK_FALSE(subscription.subscribed());
    }
}

TEST_CASE("An instance's exit is handled on the monitor's strand, never nested in its component's strand",
          "[event_subscription]") {
    // A coroutine that suspended is completed by a dispatch from its component's strand: the listeners (and a
    // restart's factory) must not run inside that strand, which other components share.
    Harness h;
    Monitor monitor{h.io.get_executor(), taskmon::RestartPolicy{.base_backoff = 0s}, h.logger};
    std::optional<asio::any_io_executor> strand;  // the component's strand, as its coroutine sees it
    int exits = 0;
    int nested = 0;
    auto subscription = monitor.subscribe([&](const MonitorEvent& e) {
        if (e.kind == MonitorEventKind::completed || e.kind == MonitorEventKind::failed) {
            ++exits;
            nested += taskmon::detail::running_in_strand(*strand) ? 1 : 0;
        }
    });
    const auto task = [&](bool fail) -> asio::awaitable<void> {
        strand = co_await asio::this_coro::executor;
        co_await sleep_for(1s);  // suspends: the completion comes from the component's strand
        if (fail) {
            throw std::runtime_error("after a suspension");
        }
    };
    monitor.register_task("returns", task(false));
    h.runner.run_for(2s);
    monitor.register_task("throws", task(true));
    h.runner.run_for(2s);
    CHECK(exits == 2);
    CHECK(nested == 0);
    h.close(monitor);
}
