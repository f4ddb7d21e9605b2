// Test helpers for the TaskMonitor (test_task_monitor.cpp, test_monitor_event.cpp,
// test_event_subscription.cpp): virtual time with a readable log, scripted components, and a listener that
// records what it is given.
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
#include <spdlog/sinks/ringbuffer_sink.h>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <exception>
#include <iterator>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace taskmon_test {

using Monitor = taskmon::BasicTaskMonitor<taskmon::testing::ManualClock>;
using Duration = taskmon::testing::ManualClock::duration;
using Names = std::vector<std::string>;

/// Virtual time, an io_context, a runner and a logger whose lines the test can read.
struct Harness {
    taskmon::testing::ManualTime time;
    asio::io_context io;
    taskmon::testing::VirtualTimeRunner runner{io, time};
    std::shared_ptr<spdlog::sinks::ringbuffer_sink_mt> sink =
        std::make_shared<spdlog::sinks::ringbuffer_sink_mt>(4096);
    std::shared_ptr<spdlog::logger> logger = std::make_shared<spdlog::logger>("taskmon-test", sink);

    Harness() {
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

/// What a scripted component does: throws "Connection lost" after lifetimes[i] (virtual time) on its i-th
/// start; past the end of the script it runs until cancelled.
struct Script {
    std::vector<Duration> lifetimes;
    int starts = 0;
};

inline asio::awaitable<void> scripted(Script& script) {
    const auto index = static_cast<std::size_t>(script.starts++);
    taskmon::testing::ManualTimer timer{co_await asio::this_coro::executor};
    if (index < script.lifetimes.size()) {
        timer.expires_after(script.lifetimes[index]);
        co_await timer.async_wait(asio::use_awaitable);
        throw std::runtime_error("Connection lost");
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
