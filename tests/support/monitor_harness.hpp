// Test helpers for every TaskMonitor test (test_task_monitor_*.cpp, test_monitor_event.cpp,
// test_event_subscription.cpp, test_component_*.cpp, test_health.cpp, test_timeline.cpp ...): virtual time with a
// readable log, scripted components, and a listener that records what it is given.
#pragma once

#include <taskmon/monitor_event.hpp>
#include <taskmon/task_monitor.hpp>
#include <taskmon/testing/manual_clock.hpp>

#include "taskmon_catch.hpp"

#include <asio/bind_cancellation_slot.hpp>
#include <asio/cancellation_signal.hpp>
#include <asio/co_spawn.hpp>
#include <asio/io_context.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>
#include <spdlog/logger.h>
#include <spdlog/sinks/null_sink.h>
#include <spdlog/sinks/ringbuffer_sink.h>
#include <spdlog/sinks/sink.h>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <exception>
#include <iterator>
#include <memory>
#include <stdexcept>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

namespace taskmon_test {

// The names every TaskMonitor test uses, for `using namespace taskmon_test;`.
using namespace std::chrono_literals;
using taskmon::ComponentState;
using taskmon::RestartPolicy;
using taskmon::RestartType;
using taskmon::testing::ManualClock;
using taskmon::testing::ManualTime;
using taskmon::testing::ManualTimer;
using taskmon::testing::VirtualTimeRunner;

using Monitor = taskmon::BasicTaskMonitor<taskmon::testing::ManualClock>;
using Duration = taskmon::testing::ManualClock::duration;
using Names = std::vector<std::string>;

/// A logger whose lines the test can read: "level|message", from trace on, the last 4,096 in a ring buffer.
struct RecordingLogger {
    std::shared_ptr<spdlog::sinks::ringbuffer_sink_mt> sink = std::make_shared<spdlog::sinks::ringbuffer_sink_mt>(4096);
    std::shared_ptr<spdlog::logger> logger;

    explicit RecordingLogger(std::string name = "taskmon-test")
        : logger{std::make_shared<spdlog::logger>(std::move(name), sink)} {
        sink->set_pattern("%l|%v");
        logger->set_level(spdlog::level::trace);
    }

    [[nodiscard]] std::vector<std::string> lines() const {
        auto out = sink->last_formatted();
        for (auto& line : out) {
            while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) {
                line.pop_back();
            }
        }
        return out;
    }

    [[nodiscard]] std::vector<std::string> lines_with(const std::string& needle) const {
        std::vector<std::string> out;
        for (auto& line : lines()) {
            if (line.find(needle) != std::string::npos) {
                out.push_back(line);
            }
        }
        return out;
    }
};

/// Virtual time, an io_context, a runner and a logger whose lines the test can read.
struct Harness : RecordingLogger {
    taskmon::testing::ManualTime time;
    asio::io_context io;
    taskmon::testing::VirtualTimeRunner runner{io, time};

    /// Runs monitor.close() to completion in virtual time; returns the virtual time it took.
    Duration close(Monitor& monitor) {
        bool done = false;
        const auto start = time.now();
        asio::co_spawn(io, monitor.close(), [&](std::exception_ptr e) {
            REQUIRE_FALSE(e);
            done = true;
        });
        REQUIRE(runner.run_until([&] { return done; }, std::chrono::hours{24}));
        return time.now() - start;
    }
};

/// What a scripted component does: throws `message` after lifetimes[i] (virtual time) on its i-th start; past
/// the end of the script it runs until cancelled. Counts its starts, live instances and exits.
struct Script {
    std::vector<Duration> lifetimes;
    std::string message = "Connection lost";
    int starts = 0;                     ///< how many instances were started
    std::vector<Duration> start_times;  ///< virtual time (since the clock's epoch) of every start
    int live = 0;                       ///< instances running now
    int max_live = 0;                   ///< the most instances ever running at once (1: never two)
    int exits = 0;                      ///< instances that ended, however
};

inline asio::awaitable<void> scripted(Script& script) {
    const auto index = static_cast<std::size_t>(script.starts++);
    script.start_times.push_back(taskmon::testing::ManualClock::now().time_since_epoch());
    script.max_live = std::max(script.max_live, ++script.live);
    struct Exit {
        Script& s;
        ~Exit() {
            --s.live;
            ++s.exits;
        }
    } exit_guard{script};
    taskmon::testing::ManualTimer timer{co_await asio::this_coro::executor};
    if (index < script.lifetimes.size()) {
        timer.expires_after(script.lifetimes[index]);
        co_await timer.async_wait(asio::use_awaitable);
        throw std::runtime_error(script.message);
    }
    for (;;) {
        timer.expires_after(std::chrono::hours{1});
        co_await timer.async_wait(asio::use_awaitable);
    }
}

inline taskmon::RestartFactory factory_of(Script& script) {
    return [&script] { return scripted(script); };
}

/// A script whose component fails at once on its first `n` starts.
inline Script failing_now(int n) {
    Script s;
    s.lifetimes.assign(static_cast<std::size_t>(n), Duration::zero());
    return s;
}

/// The time between consecutive starts (script.start_times): the backoffs the monitor applied.
inline std::vector<Duration> gaps(const std::vector<Duration>& starts) {
    std::vector<Duration> out;
    for (std::size_t i = 1; i < starts.size(); ++i) {
        out.push_back(starts[i] - starts[i - 1]);
    }
    return out;
}

/// The message of the std::invalid_argument that `call()` throws, or "no exception".
template <typename Call>
std::string invalid_argument_message(Call&& call) {
    try {
        call();
    } catch (const std::invalid_argument& e) {
        return e.what();
    }
    return "no exception";
}

/// A logger that drops everything.
inline std::shared_ptr<spdlog::logger> null_logger(const std::string& name = "null") {
    return std::make_shared<spdlog::logger>(name, std::make_shared<spdlog::sinks::null_sink_mt>());
}

/// A sink that throws something that is not a std::exception (spdlog rethrows those) on every message.
struct ThrowingSink final : spdlog::sinks::sink {
    void log(const spdlog::details::log_msg&) override { throw 42; }
    void flush() override {}
    void set_pattern(const std::string&) override {}
    void set_formatter(std::unique_ptr<spdlog::formatter>) override {}
};

/// Collects every event it is given (single-threaded tests only).
struct Recorder {
    std::vector<taskmon::MonitorEvent> events;

    taskmon::MonitorEventListener listener() {
        return [this](const taskmon::MonitorEvent& e) { events.push_back(e); };
    }

    [[nodiscard]] Names kinds() const {
        Names out;
        for (const auto& e : events) {
            out.emplace_back(to_string(e.kind));
        }
        return out;
    }

    /// "kind name" of every event, in order: the group for the group kinds (group_*) and for events without a
    /// component (a group's `escalated`; `closed` has neither), else the component.
    [[nodiscard]] Names trace() const {
        Names out;
        for (const auto& e : events) {
            const std::string kind{to_string(e.kind)};
            const bool group_kind = kind.rfind("group_", 0) == 0;
            const auto& name = group_kind || e.component.empty() ? e.group : e.component;
            out.push_back(name.empty() ? kind : kind + " " + name);
        }
        return out;
    }

    [[nodiscard]] std::vector<taskmon::MonitorEvent> of(taskmon::MonitorEventKind kind) const {
        std::vector<taskmon::MonitorEvent> out;
        std::copy_if(events.begin(), events.end(), std::back_inserter(out),
                     [&](const taskmon::MonitorEvent& e) { return e.kind == kind; });
        return out;
    }
};

/// Sleeps `d` of virtual time.
inline asio::awaitable<void> sleep_for(Duration d) {
    taskmon::testing::ManualTimer timer{co_await asio::this_coro::executor, d};
    co_await timer.async_wait(asio::use_awaitable);
}

/// Sleeps `d` on a wait not bound to the coroutine's cancellation: a requested stop can not end it.
inline asio::awaitable<void> sleep_ignoring_cancellation(Duration d) {
    taskmon::testing::ManualTimer timer{co_await asio::this_coro::executor, d};
    co_await timer.async_wait(asio::bind_cancellation_slot(asio::cancellation_slot{}, asio::use_awaitable));
}

/// Runs until cancelled, then takes `cleanup` of virtual time to exit (a component with some cleanup to do);
/// sets `exited` at the end.
inline asio::awaitable<void> slow_to_stop(Duration cleanup, bool& exited) {
    taskmon::testing::ManualTimer timer{co_await asio::this_coro::executor, std::chrono::hours{24}};
    try {
        co_await timer.async_wait(asio::use_awaitable);
    } catch (const std::system_error&) {
    }
    co_await asio::this_coro::reset_cancellation_state();  // else the next co_await throws at once
    timer.expires_after(cleanup);
    co_await timer.async_wait(asio::use_awaitable);
    exited = true;
}

/// When `e` happened, measured from the first event `recorder` received (usually the component's start).
inline Duration since_first(const Recorder& recorder, const taskmon::MonitorEvent& e) {
    return std::chrono::duration_cast<Duration>(e.time - recorder.events.front().time);
}

/// since_first() of every event of `kind`.
inline std::vector<Duration> times_of(const Recorder& recorder, taskmon::MonitorEventKind kind) {
    std::vector<Duration> out;
    for (const auto& e : recorder.of(kind)) {
        out.push_back(since_first(recorder, e));
    }
    return out;
}

}  // namespace taskmon_test
