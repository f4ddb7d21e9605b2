// Tests for TaskMonitor::spawn() (taskmon/task_monitor.hpp): short-lived supervised tasks that are listed while
// they run, never restarted, and leave the monitor when they end. Everything but the last test runs in virtual
// time.
#include <taskmon/async_semaphore.hpp>
#include <taskmon/io_semaphore.hpp>
#include <taskmon/task_monitor.hpp>

#include "asio_use_future.hpp"
#include "monitor_harness.hpp"

#include <asio/buffer.hpp>
#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/executor_work_guard.hpp>
#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/read.hpp>
#include <asio/redirect_error.hpp>
#include <asio/this_coro.hpp>
#include <asio/write.hpp>
#include <spdlog/sinks/null_sink.h>

#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

using namespace std::chrono_literals;
using taskmon::ComponentState;
using taskmon::MonitorEventKind;
using taskmon::RestartPolicy;
using taskmon_test::Harness;
using taskmon_test::Monitor;
using taskmon_test::Names;
using taskmon_test::Recorder;
using taskmon_test::sleep_for;
using taskmon_test::sleep_ignoring_cancellation;

namespace {

/// The event kinds `recorder` saw for `component`, in order.
Names kinds_of(const Recorder& recorder, const std::string& component) {
    Names out;
    for (const auto& e : recorder.events) {
        if (e.component == component) {
            out.emplace_back(to_string(e.kind));
        }
    }
    return out;
}

/// One connection of the cookbook's server (docs/cookbook_tcp_server.md): echoes until the peer closes.
asio::awaitable<void> echo(asio::ip::tcp::socket socket) {
    std::array<char, 64> data{};
    for (;;) {
        std::error_code ec;
        const auto n =
            co_await socket.async_read_some(asio::buffer(data), asio::redirect_error(asio::use_awaitable, ec));
        if (ec == asio::error::eof) {
            co_return;
        }
        if (ec) {
            throw std::system_error(ec, "read");
        }
        co_await asio::async_write(socket, asio::buffer(data.data(), n), asio::use_awaitable);
    }
}

/// Throws once, as an accept failing with EMFILE would, after the accept numbered `fail_at`.
void fail_once_at(std::uint64_t accepted, std::uint64_t fail_at, bool& failed_once) {
    if (accepted == fail_at && !std::exchange(failed_once, true)) {
        throw std::system_error(std::make_error_code(std::errc::too_many_files_open), "accept");
    }
}

/// The cookbook's accept loop: the monitor names each connection, and the loop ends only when the monitor is
/// closed. After its `fail_at`-th accept it throws once, while its connections stay open.
asio::awaitable<void> cookbook_accept_loop(taskmon::TaskMonitor& monitor, asio::ip::tcp::acceptor& acceptor,
                                           std::uint64_t fail_at, bool& failed_once) {
    for (std::uint64_t accepted = 1;; ++accepted) {  // restarts from 1 with the loop: only for fail_at
        auto socket = co_await acceptor.async_accept(asio::use_awaitable);
        if (monitor.try_spawn_numbered("conn-", echo(std::move(socket))).status ==
            taskmon::SpawnStatus::monitor_closed) {
            co_return;  // the monitor is closing
        }
        fail_once_at(accepted, fail_at, failed_once);
    }
}

/// The mistake the cookbook warns of: a loop naming connections from a counter in its own frame, which starts
/// over when the loop is restarted.
asio::awaitable<void> self_naming_accept_loop(taskmon::TaskMonitor& monitor, asio::ip::tcp::acceptor& acceptor,
                                              std::uint64_t fail_at, bool& failed_once) {
    for (std::uint64_t accepted = 1;; ++accepted) {
        auto socket = co_await acceptor.async_accept(asio::use_awaitable);
        try {
            monitor.spawn("conn-" + std::to_string(accepted), echo(std::move(socket)));
        } catch (const taskmon::MonitorClosed&) {
            co_return;
        }
        fail_once_at(accepted, fail_at, failed_once);
    }
}

/// A loopback client: connects, sends one byte and waits for its echo; the socket stays open.
asio::awaitable<asio::ip::tcp::socket> echo_client(asio::ip::tcp::endpoint server) {
    asio::ip::tcp::socket socket{co_await asio::this_coro::executor};
    co_await socket.async_connect(server, asio::use_awaitable);
    char byte = 'x';
    co_await asio::async_write(socket, asio::buffer(&byte, 1), asio::use_awaitable);
    co_await asio::async_read(socket, asio::buffer(&byte, 1), asio::use_awaitable);
    co_return socket;
}

/// Runs `io` until `done()` or 30 s of real time (a bound, not an expectation: loopback takes milliseconds).
bool run_until(asio::io_context& io, const std::function<bool()>& done) {
    const auto deadline = std::chrono::steady_clock::now() + 30s;
    while (!done() && std::chrono::steady_clock::now() < deadline) {
        io.run_one_for(100ms);
    }
    return done();
}

/// Whether the message `what` of `e` names `needle`.
bool names(const std::exception& e, const std::string& needle) {
    return std::string{e.what()}.find(needle) != std::string::npos;
}

}  // namespace

TEST_CASE("spawn: a spawned task is listed while it runs and leaves the monitor when it returns",
          "[task_monitor][spawn]") {
    Harness h;
    Recorder recorder;
    Monitor monitor{h.io.get_executor(), RestartPolicy{}, h.logger};
    auto subscription = monitor.subscribe(recorder.listener());
    bool finished = false;
    monitor.spawn("conn-1", [](bool& done) -> asio::awaitable<void> {
        co_await sleep_for(5s);
        done = true;
    }(finished));
    h.runner.run_for(1s);
    const auto stats = monitor.get_component_stats();
    REQUIRE(stats.count("conn-1") == 1);
    CHECK(stats.at("conn-1").state == ComponentState::running);
    CHECK_FALSE(stats.at("conn-1").task_done);
    CHECK_FALSE(stats.at("conn-1").enabled);
    h.runner.run_for(5s);
    CHECK(finished);
    CHECK(monitor.get_component_stats().empty());
    CHECK(kinds_of(recorder, "conn-1") == Names{"started", "completed", "removed"});
    for (const auto& e : recorder.events) {
        CHECK(e.spawned);
        CHECK(e.task_id == recorder.events.front().task_id);
    }
    CHECK(recorder.of(MonitorEventKind::completed).at(0).restart_type == taskmon::RestartType::temporary);
    // Routine lines of spawned tasks are debug lines: a busy server logs nothing per connection at info.
    const auto lines = h.lines_with("conn-1");
    REQUIRE(lines.size() == 3);
    for (const auto& line : lines) {
        CHECK(line.rfind("debug|", 0) == 0);
    }
    h.runner.run_for(24h);
    CHECK(recorder.events.size() == 3);  // nothing restarts it
    h.close(monitor);
}

TEST_CASE("spawn: a throwing task is reported and removed and never restarted", "[task_monitor][spawn]") {
    Harness h;
    Recorder recorder;
    // A policy that would restart a supervised component at once: it must not apply to a spawned task.
    Monitor monitor{h.io.get_executor(),
                    RestartPolicy{.base_backoff = 0s, .restart_type = taskmon::RestartType::permanent}, h.logger};
    auto subscription = monitor.subscribe(recorder.listener());
    int starts = 0;
    monitor.spawn("conn-7", [](int& n) -> asio::awaitable<void> {
        ++n;
        co_await sleep_for(2s);
        throw std::runtime_error("peer sent garbage");
    }(starts));
    h.runner.run_for(1h);
    CHECK(starts == 1);
    CHECK(monitor.get_component_stats().empty());
    CHECK(kinds_of(recorder, "conn-7") == Names{"started", "failed", "removed"});
    const auto failed = recorder.of(MonitorEventKind::failed).at(0);
    CHECK(failed.reason == "std::runtime_error: peer sent garbage");
    CHECK(failed.failure_count == 1);
    CHECK(failed.spawned);
    const auto errors = h.lines_with("Component conn-7 failed");
    REQUIRE(errors.size() == 1);
    CHECK(errors[0].rfind("error|", 0) == 0);
    CHECK(errors[0].find("reason=\"std::runtime_error: peer sent garbage\"") != std::string::npos);
    h.close(monitor);
}

TEST_CASE("spawn: routine events of a spawned task are made only when a listener or the logger would get them",
          "[task_monitor][spawn]") {
    Harness h;
    h.logger->set_level(spdlog::level::info);  // drops the debug lines of spawned tasks
    Monitor monitor{h.io.get_executor(), RestartPolicy{}, h.logger};
    const auto run = [&](const std::string& name, bool fail) {
        monitor.spawn(name, [](bool failing) -> asio::awaitable<void> {
            co_await sleep_for(1s);
            if (failing) {
                throw std::runtime_error("peer sent garbage");
            }
        }(fail));
        h.runner.run_for(2s);
        REQUIRE(monitor.get_component_stats().count(name) == 0);
    };
    run("quiet", false);   // started, completed, removed: nobody would get them
    run("failing", true);  // failed (an error line) is made; started and removed are not
    h.logger->set_level(spdlog::level::debug);
    run("logged", false);  // the logger writes their debug lines: all three are made
    Recorder recorder;
    auto subscription = monitor.subscribe(recorder.listener());
    h.logger->set_level(spdlog::level::off);
    run("listened", false);  // a listener gets every event
    CHECK(kinds_of(recorder, "listened") == Names{"started", "completed", "removed"});
    // Sequence numbers count the events made, in order: 1 for "failing", 3 for "logged", then these.
    REQUIRE(recorder.events.size() == 3);
    CHECK(recorder.events[0].sequence == 5);
    CHECK(h.lines_with("Component failing failed").size() == 1);
    CHECK(h.lines_with("quiet").empty());
    CHECK(h.lines_with("logged").size() == 3);
    h.close(monitor);
}

TEST_CASE("spawn: a task ending with operation_aborted it was not asked for is reported as cancelled_unexpectedly",
          "[task_monitor][spawn]") {
    Harness h;
    Recorder recorder;
    Monitor monitor{h.io.get_executor(), RestartPolicy{}, h.logger};
    auto subscription = monitor.subscribe(recorder.listener());
    monitor.spawn("conn-2", []() -> asio::awaitable<void> {
        co_await sleep_for(1s);
        throw std::system_error(asio::error::operation_aborted);
    }());
    h.runner.run_for(2s);
    CHECK(monitor.get_component_stats().empty());
    CHECK(kinds_of(recorder, "conn-2") == Names{"started", "cancelled_unexpectedly", "removed"});
    const auto lines = h.lines_with("conn-2 was cancelled unexpectedly");
    REQUIRE(lines.size() == 1);
    CHECK(lines[0].rfind("warning|", 0) == 0);
    h.close(monitor);
}

TEST_CASE("spawn: close cancels running spawned tasks and waits for them", "[task_monitor][spawn][close]") {
    Harness h;
    Recorder recorder;
    Monitor monitor{h.io.get_executor(), RestartPolicy{}, h.logger};
    auto subscription = monitor.subscribe(recorder.listener());
    monitor.supervise("acceptor", []() -> asio::awaitable<void> { co_await sleep_for(24h); });
    int cancelled = 0;
    for (int i = 0; i < 3; ++i) {
        monitor.spawn("conn-" + std::to_string(i), [](int& n) -> asio::awaitable<void> {
            try {
                co_await sleep_for(24h);
            } catch (const std::system_error&) {
                ++n;
                throw;
            }
        }(cancelled));
    }
    h.runner.run_for(1s);
    CHECK(monitor.get_component_stats().size() == 4);
    CHECK(h.close(monitor) == 0s);
    CHECK(cancelled == 3);
    for (int i = 0; i < 3; ++i) {
        CHECK(kinds_of(recorder, "conn-" + std::to_string(i)) == Names{"started", "stopped", "removed"});
    }
    const auto stats = monitor.get_component_stats();
    CHECK(stats.size() == 1);  // supervised components stay listed after close; spawned tasks are gone
    CHECK(stats.count("acceptor") == 1);
    const auto closed = recorder.of(MonitorEventKind::closed).at(0);
    CHECK(closed.count == 1);
    CHECK(closed.unresponsive == 0);
    CHECK(recorder.events.back().kind == MonitorEventKind::closed);
    CHECK(h.lines_with("stopped with an error").empty());
}

TEST_CASE("spawn: close cancels a spawned task parked in io_semaphore", "[task_monitor][spawn][close]") {
    Harness h;
    Recorder recorder;
    Monitor monitor{h.io.get_executor(), RestartPolicy{}, h.logger};
    auto subscription = monitor.subscribe(recorder.listener());
    const auto capacity = taskmon::get_io_semaphore_stats().capacity;
    taskmon::set_io_semaphore_count(1);
    bool holder_has_permit = false;
    bool waiter_got_permit = false;
    monitor.spawn("holder", [](bool& has) -> asio::awaitable<void> {
        auto permit = co_await taskmon::io_semaphore();
        has = true;
        co_await sleep_for(24h);
    }(holder_has_permit));
    monitor.spawn("waiter", [](bool& got) -> asio::awaitable<void> {
        auto permit = co_await taskmon::io_semaphore();
        got = true;
        co_await sleep_for(24h);
    }(waiter_got_permit));
    h.runner.run_for(1s);
    REQUIRE(holder_has_permit);
    REQUIRE(taskmon::get_io_semaphore_stats().waiting == 1);
    CHECK(h.close(monitor) == 0s);
    CHECK_FALSE(waiter_got_permit);
    CHECK(kinds_of(recorder, "waiter") == Names{"started", "stopped", "removed"});
    CHECK(kinds_of(recorder, "holder") == Names{"started", "stopped", "removed"});
    CHECK(recorder.of(MonitorEventKind::closed).at(0).unresponsive == 0);
    const auto semaphore = taskmon::get_io_semaphore_stats();
    CHECK(semaphore.waiting == 0);
    CHECK(semaphore.in_use == 0);
    CHECK(monitor.get_component_stats().empty());
    taskmon::set_io_semaphore_count(capacity);
}

TEST_CASE("spawn: close cancels a spawned task parked in an AsyncSemaphore acquire", "[task_monitor][spawn][close]") {
    Harness h;
    Recorder recorder;
    Monitor monitor{h.io.get_executor(), RestartPolicy{}, h.logger};
    auto subscription = monitor.subscribe(recorder.listener());
    taskmon::AsyncSemaphore semaphore{1};
    auto held = semaphore.try_acquire();
    REQUIRE(held);
    monitor.spawn("waiter", [](taskmon::AsyncSemaphore& s) -> asio::awaitable<void> {
        auto permit = co_await s.acquire();
        co_await sleep_for(24h);
    }(semaphore));
    h.runner.run_for(1s);
    REQUIRE(semaphore.stats().waiting == 1);
    CHECK(h.close(monitor) == 0s);
    CHECK(semaphore.stats().waiting == 0);
    CHECK(kinds_of(recorder, "waiter") == Names{"started", "stopped", "removed"});
}

TEST_CASE("spawn: a spawned task that ignores cancellation is reported unresponsive at the shutdown_timeout",
          "[task_monitor][spawn][close]") {
    Harness h;
    Recorder recorder;
    Monitor monitor{h.io.get_executor(), RestartPolicy{.shutdown_timeout = 5s}, h.logger};
    auto subscription = monitor.subscribe(recorder.listener());
    monitor.spawn("stuck", []() -> asio::awaitable<void> { co_await sleep_ignoring_cancellation(1h); }());
    h.runner.run_for(1s);
    CHECK(h.close(monitor) == 5s);
    CHECK(kinds_of(recorder, "stuck") == Names{"started", "stop_timeout"});
    CHECK(recorder.of(MonitorEventKind::closed).at(0).unresponsive == 1);
    CHECK(monitor.get_component_stats().at("stuck").state == ComponentState::unresponsive);
    h.runner.run_for(1h);
    CHECK(kinds_of(recorder, "stuck") == Names{"started", "stop_timeout", "stopped", "removed"});
    CHECK(monitor.get_component_stats().empty());
}

TEST_CASE("spawn: a duplicate or empty name is rejected and changes nothing", "[task_monitor][spawn]") {
    Harness h;
    Recorder recorder;
    Monitor monitor{h.io.get_executor(), RestartPolicy{}, h.logger};
    auto subscription = monitor.subscribe(recorder.listener());
    monitor.supervise("svc", []() -> asio::awaitable<void> { co_await sleep_for(24h); });
    monitor.set_restart_factories({{"later", taskmon::RestartFactory{[]() -> asio::awaitable<void> { co_return; }}}});
    monitor.spawn("conn", []() -> asio::awaitable<void> { co_await sleep_for(24h); }());
    h.runner.run_for(1s);
    const auto before = monitor.get_component_stats();
    const auto events_before = recorder.events.size();
    bool ran = false;
    const auto task = [&ran]() -> asio::awaitable<void> {
        ran = true;
        co_return;
    };
    for (const std::string name : {"svc", "conn", "later"}) {
        try {
            monitor.spawn(name, task());
            FAIL("spawn accepted the duplicate name " << name);
        } catch (const std::invalid_argument& e) {
            CHECK(names(e, "spawn: duplicate component name '" + name + "'"));
        }
    }
    CHECK_THROWS_AS(monitor.spawn("", task()), std::invalid_argument);
    h.runner.run_for(1s);
    CHECK_FALSE(ran);
    CHECK(recorder.events.size() == events_before);
    const auto after = monitor.get_component_stats();
    REQUIRE(after.size() == before.size());
    CHECK(after.at("svc").task_id == before.at("svc").task_id);
    CHECK(after.at("conn").task_id == before.at("conn").task_id);
    CHECK(after.at("later").state == ComponentState::not_started);
    // A supervised name can not take a spawned task's name either.
    CHECK_THROWS_AS(monitor.supervise("conn", []() -> asio::awaitable<void> { co_return; }), std::invalid_argument);
    h.close(monitor);
}

TEST_CASE("spawn: after close spawn throws logic_error and changes nothing", "[task_monitor][spawn][close]") {
    Harness h;
    Recorder recorder;
    Monitor monitor{h.io.get_executor(), RestartPolicy{}, h.logger};
    auto subscription = monitor.subscribe(recorder.listener());
    h.close(monitor);
    const auto events_before = recorder.events.size();
    bool ran = false;
    try {
        monitor.spawn("conn", [](bool& r) -> asio::awaitable<void> {
            r = true;
            co_return;
        }(ran));
        FAIL("spawn after close was accepted");
    } catch (const std::logic_error& e) {
        CHECK(names(e, "spawn: the TaskMonitor is closed"));
    }
    h.runner.run_for(1s);
    CHECK_FALSE(ran);
    CHECK(monitor.get_component_stats().empty());
    CHECK(recorder.events.size() == events_before);
}

TEST_CASE("spawn: the name is free again once the task ended", "[task_monitor][spawn]") {
    Harness h;
    Recorder recorder;
    Monitor monitor{h.io.get_executor(), RestartPolicy{}, h.logger};
    auto subscription = monitor.subscribe(recorder.listener());
    int runs = 0;
    const auto task = [&runs](bool fail) -> asio::awaitable<void> {
        ++runs;
        co_await sleep_for(1s);
        if (fail) {
            throw std::runtime_error("reset by peer");
        }
    };
    monitor.spawn("conn", task(false));
    CHECK_THROWS_AS(monitor.spawn("conn", task(false)), std::invalid_argument);  // still running
    h.runner.run_for(2s);
    monitor.spawn("conn", task(true));  // after a return
    h.runner.run_for(2s);
    monitor.spawn("conn", task(false));  // after a failure
    h.runner.run_for(2s);
    CHECK(runs == 3);
    CHECK(kinds_of(recorder, "conn") ==
          Names{"started", "completed", "removed", "started", "failed", "removed", "started", "completed", "removed"});
    // Each run is a new instance, and its failure count starts afresh.
    const auto started = recorder.of(MonitorEventKind::started);
    CHECK(started.at(0).task_id < started.at(1).task_id);
    CHECK(started.at(1).task_id < started.at(2).task_id);
    CHECK(recorder.of(MonitorEventKind::failed).at(0).failure_count == 1);
    // A spawned task's name can then go to a supervised component.
    monitor.supervise("conn", []() -> asio::awaitable<void> { co_await sleep_for(24h); });
    h.runner.run_for(1s);
    CHECK(monitor.get_component_stats().at("conn").state == ComponentState::running);
    h.close(monitor);
}

TEST_CASE("spawn: remove_and_wait stops a spawned task and frees its name", "[task_monitor][spawn][remove]") {
    Harness h;
    Recorder recorder;
    Monitor monitor{h.io.get_executor(), RestartPolicy{}, h.logger};
    auto subscription = monitor.subscribe(recorder.listener());
    monitor.spawn("conn", []() -> asio::awaitable<void> { co_await sleep_for(24h); }());
    h.runner.run_for(1s);
    std::optional<std::error_code> result;
    monitor.remove_and_wait("conn", [&result](std::error_code ec) { result = ec; });
    h.runner.run_for(1s);
    REQUIRE(result);
    CHECK_FALSE(*result);
    CHECK(kinds_of(recorder, "conn") == Names{"started", "stopped", "removed"});
    CHECK(recorder.of(MonitorEventKind::removed).size() == 1);
    CHECK(monitor.get_component_stats().empty());
    monitor.spawn("conn", []() -> asio::awaitable<void> { co_return; }());
    h.runner.run_for(1s);
    CHECK(kinds_of(recorder, "conn").size() == 6);
    h.close(monitor);
}

TEST_CASE("spawn: a supervised accept loop spawns one task per connection from its coroutine",
          "[task_monitor][spawn]") {
    Harness h;
    Recorder recorder;
    Monitor monitor{h.io.get_executor(), RestartPolicy{}, h.logger};
    auto subscription = monitor.subscribe(recorder.listener());
    int served = 0;
    int accepted = 0;
    monitor.supervise("acceptor", [&]() -> asio::awaitable<void> {
        for (;;) {
            co_await sleep_for(1s);  // "accept"
            const int n = ++accepted;
            monitor.spawn("conn-" + std::to_string(n), [](int& s, int seconds) -> asio::awaitable<void> {
                co_await sleep_for(std::chrono::seconds{seconds});
                ++s;
            }(served, 3 + n % 2));
        }
    });
    h.runner.run_for(500ms);
    h.runner.run_for(5s);  // connections 1..5 accepted at 1..5 s; 1 (4 s) and 2 (3 s) are done
    CHECK(accepted == 5);
    CHECK(served == 2);
    const auto stats = monitor.get_component_stats();
    CHECK(stats.size() == 4);  // the acceptor and connections 3, 4, 5
    CHECK(stats.count("conn-1") == 0);
    REQUIRE(stats.count("conn-3") == 1);
    CHECK(stats.at("conn-3").spawned);  // what health, metrics and timelines leave out
    CHECK_FALSE(stats.at("acceptor").spawned);
    CHECK(h.close(monitor) == 0s);
    CHECK(served == 2);
    CHECK(monitor.get_component_stats().size() == 1);
    CHECK(recorder.of(MonitorEventKind::completed).size() == 2);
    CHECK(recorder.of(MonitorEventKind::removed).size() == 5);
    CHECK(recorder.of(MonitorEventKind::closed).at(0).unresponsive == 0);
}

TEST_CASE("spawn: a spawned task spawns further tasks", "[task_monitor][spawn]") {
    Harness h;
    Recorder recorder;
    Monitor monitor{h.io.get_executor(), RestartPolicy{}, h.logger};
    auto subscription = monitor.subscribe(recorder.listener());
    int leaves = 0;
    // State goes in as parameters, not captures: the temporary closure is gone once spawn() returns.
    monitor.spawn("parent", [](Monitor& m, int& n) -> asio::awaitable<void> {
        for (int i = 0; i < 3; ++i) {
            co_await sleep_for(1s);
            m.spawn("child-" + std::to_string(i), [](int& leaf) -> asio::awaitable<void> {
                co_await sleep_for(1s);
                ++leaf;
            }(n));
        }
    }(monitor, leaves));
    h.runner.run_for(10s);
    CHECK(leaves == 3);
    CHECK(monitor.get_component_stats().empty());
    CHECK(recorder.of(MonitorEventKind::removed).size() == 4);
    h.close(monitor);
}

// A shared pool strand: co_spawn of a task assigned the caller's own strand would run it inline, up to its
// first suspension; the new task calls the monitor in that first step (a deadlock while co_spawn ran under the
// monitor's mutex).
TEST_CASE("spawn: a task spawned onto its parent's strand may call the monitor before it first suspends",
          "[task_monitor][spawn][inline-start]") {
    Harness h;
    Recorder recorder;
    Monitor monitor{h.io.get_executor(), RestartPolicy{}, h.logger, {}, 1};  // one strand for all
    auto subscription = monitor.subscribe(recorder.listener());
    std::size_t seen = 0;
    monitor.spawn("parent", [](Monitor& m, std::size_t& s) -> asio::awaitable<void> {
        co_await sleep_for(1s);
        m.spawn("child", [](Monitor& m2, std::size_t& s2) -> asio::awaitable<void> {
            s2 = m2.get_component_stats().size();
            m2.spawn("grandchild", []() -> asio::awaitable<void> { co_await sleep_for(1s); }());
            co_await sleep_for(1s);
        }(m, s));
        co_await sleep_for(5s);
    }(monitor, seen));
    h.runner.run_for(10s);
    CHECK(seen >= 2);
    CHECK(monitor.get_component_stats().empty());
    CHECK(recorder.of(MonitorEventKind::removed).size() == 3);
    h.close(monitor);
}

TEST_CASE("spawn: tasks spawned from two threads while the monitor runs all end and leave",
          "[task_monitor][spawn][threads]") {
    asio::io_context io;
    auto work = asio::make_work_guard(io);
    taskmon::TaskMonitor monitor{
        io.get_executor(), RestartPolicy{},
        std::make_shared<spdlog::logger>("spawn-threads", std::make_shared<spdlog::sinks::null_sink_mt>())};
    std::mutex mutex;
    std::condition_variable changed;
    std::size_t removed = 0;
    auto subscription = monitor.subscribe([&](const taskmon::MonitorEvent& e) {
        if (e.kind == MonitorEventKind::removed) {
            std::lock_guard lock{mutex};
            ++removed;
            changed.notify_all();
        }
    });
    std::vector<std::thread> runners;
    for (int i = 0; i < 2; ++i) {
        runners.emplace_back([&io] { io.run(); });
    }
    constexpr int per_thread = 200;
    std::atomic<int> ran{0};
    std::vector<std::thread> spawners;
    for (int t = 0; t < 2; ++t) {
        spawners.emplace_back([&, t] {
            for (int i = 0; i < per_thread; ++i) {
                monitor.spawn("t" + std::to_string(t) + "-" + std::to_string(i),
                              [](std::atomic<int>& r) -> asio::awaitable<void> {
                                  r.fetch_add(1, std::memory_order_relaxed);
                                  co_return;
                              }(ran));
            }
        });
    }
    for (auto& s : spawners) {
        s.join();
    }
    {
        std::unique_lock lock{mutex};
        changed.wait(lock, [&] { return removed == 2 * per_thread; });
    }
    CHECK(ran.load() == 2 * per_thread);
    CHECK(monitor.get_component_stats().empty());
    auto closed = monitor.async_close(asio::use_future);
    closed.get();
    work.reset();
    for (auto& r : runners) {
        r.join();
    }
}

TEST_CASE("spawn: the cookbook's accept loop fails while connections are open, is restarted, and keeps accepting",
          "[task_monitor][spawn][tcp]") {
    using asio::ip::tcp;
    asio::io_context io;
    Recorder recorder;
    taskmon::TaskMonitor monitor{
        io.get_executor(), RestartPolicy{.base_backoff = 10ms, .max_backoff = 10ms},
        std::make_shared<spdlog::logger>("cookbook", std::make_shared<spdlog::sinks::null_sink_mt>())};
    auto subscription = monitor.subscribe(recorder.listener());
    tcp::acceptor acceptor{io, tcp::endpoint{asio::ip::make_address("127.0.0.1"), 0}};
    const auto server = acceptor.local_endpoint();
    bool failed_once = false;
    std::vector<tcp::socket> clients;  // outlives the sections: a client coroutine may still be running
    SECTION("the monitor names the connections, as the cookbook does: every connection is served") {
        monitor.supervise("acceptor", [&] { return cookbook_accept_loop(monitor, acceptor, 2, failed_once); });
        bool done = false;
        asio::co_spawn(
            io,
            [&]() -> asio::awaitable<void> {
                clients.push_back(co_await echo_client(server));
                clients.push_back(co_await echo_client(server));  // the loop fails after this accept
                clients.push_back(co_await echo_client(server));  // accepted by the restarted loop
                done = true;
            },
            [](std::exception_ptr e) { REQUIRE_FALSE(e); });
        REQUIRE(run_until(io, [&] { return done; }));
        const auto stats = monitor.get_component_stats();
        CHECK(stats.at("acceptor").restart_count == 1);
        CHECK(stats.at("acceptor").state == ComponentState::running);
        CHECK(stats.at("acceptor").last_error.find("accept") != std::string::npos);
        Names connections;  // all three served at once; the first two outlived the loop's failure
        for (const auto& [name, s] : stats) {
            if (s.spawned) {
                CHECK(name == "conn-" + std::to_string(s.task_id));
                connections.push_back(name);
            }
        }
        CHECK(connections.size() == 3);
        CHECK(kinds_of(recorder, "acceptor") == Names{"started", "failed", "restart_scheduled", "restarted"});
    }
    SECTION("a counter inside the loop reuses a live name: the loop fails, visibly, never ends quietly") {
        monitor.supervise("acceptor", [&] { return self_naming_accept_loop(monitor, acceptor, 2, failed_once); });
        asio::co_spawn(
            io,
            [&]() -> asio::awaitable<void> {
                clients.push_back(co_await echo_client(server));
                clients.push_back(co_await echo_client(server));
                tcp::socket third{io};
                co_await third.async_connect(server, asio::use_awaitable);
                clients.push_back(std::move(third));
            },
            asio::detached);
        const auto duplicate = [&] {
            for (const auto& e : recorder.of(MonitorEventKind::failed)) {
                if (e.component == "acceptor" &&
                    e.reason.find("duplicate component name 'conn-1'") != std::string::npos) {
                    return true;
                }
            }
            return false;
        };
        REQUIRE(run_until(io, duplicate));
        CHECK(recorder.of(MonitorEventKind::completed).empty());  // the acceptor never "completed"
        CHECK(monitor.get_component_stats().at("acceptor").failure_count == 2);
    }
    bool closed = false;
    monitor.async_close([&] { closed = true; });
    REQUIRE(run_until(io, [&] { return closed; }));
    CHECK(recorder.of(MonitorEventKind::closed).at(0).unresponsive == 0);
}
