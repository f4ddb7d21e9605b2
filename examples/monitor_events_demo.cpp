// monitor_events_demo: three listeners on a TaskMonitor's event stream, for about three seconds.
//
//   camera   runs steadily
//   lidar    throws now and then; restarted with backoff
//   gps      fails at every start; gives up once its restart budget is spent
//
// Listeners:
//   console  prints every event with the fields its kind carries
//   metrics  counts restarts, failures and give-ups per component, printed at the end in Prometheus' text format
//   breaker  after a give-up, grants one trial restart after a cooldown (a circuit breaker's half-open state):
//            if the trial instance fails too, the component is disabled for good instead of restarted
//
// Usage: monitor_events_demo [--seed N]   (seed of lidar's random failures, default 1)
#include <taskmon/monitor_event.hpp>
#include <taskmon/task_monitor.hpp>

#include <asio/co_spawn.hpp>
#include <asio/io_context.hpp>
#include <asio/steady_timer.hpp>
#include <asio/use_awaitable.hpp>
#include <fmt/chrono.h>
#include <fmt/format.h>
#include <spdlog/sinks/null_sink.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <set>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

using namespace std::chrono_literals;
using taskmon::MonitorEvent;
using taskmon::MonitorEventKind;

namespace {

asio::awaitable<void> camera() {
    asio::steady_timer timer{co_await asio::this_coro::executor};
    for (;;) {
        timer.expires_after(50ms);
        co_await timer.async_wait(asio::use_awaitable);
    }
}

asio::awaitable<void> lidar(std::mt19937& rng) {
    asio::steady_timer timer{co_await asio::this_coro::executor};
    for (;;) {
        timer.expires_after(50ms);
        co_await timer.async_wait(asio::use_awaitable);
        if (std::uniform_int_distribution<int>{0, 9}(rng) == 0) {
            throw std::runtime_error("scan checksum mismatch");
        }
    }
}

asio::awaitable<void> gps() {
    asio::steady_timer timer{co_await asio::this_coro::executor, 20ms};
    co_await timer.async_wait(asio::use_awaitable);
    throw std::runtime_error("no fix");
}

/// The fields an event of this kind carries, as key=value text.
std::string details(const MonitorEvent& e) {
    using K = MonitorEventKind;
    const auto ms = [](std::chrono::nanoseconds d) {
        return fmt::format("{}ms", std::chrono::duration_cast<std::chrono::milliseconds>(d).count());
    };
    switch (e.kind) {
        case K::failed:
        case K::cancelled_unexpectedly:
        case K::factory_failed: return fmt::format("failures={} reason=\"{}\"", e.failure_count, e.reason);
        case K::restart_scheduled: return fmt::format("attempt={} delay={}", e.attempt, ms(e.delay));
        case K::restarted: return fmt::format("task_id={} restarts={}", e.task_id, e.restart_count);
        case K::gave_up:
            return fmt::format("limit={} per {}", e.limit, std::chrono::duration_cast<std::chrono::seconds>(e.window));
        case K::completed: return fmt::format("restart_type={}", taskmon::to_string(e.restart_type));
        case K::stopped: return e.reason.empty() ? std::string{} : fmt::format("reason=\"{}\"", e.reason);
        case K::stop_timeout: return fmt::format("shutdown_timeout={}", ms(e.delay));
        case K::closed: return fmt::format("components={} unresponsive={}", e.count, e.unresponsive);
        default: return fmt::format("task_id={}", e.task_id);
    }
}

/// Counters in Prometheus' naming: taskmon_ prefix, _total suffix, one low-cardinality label.
class Metrics {
public:
    void count(const MonitorEvent& e) {
        const char* name = nullptr;
        switch (e.kind) {
            case MonitorEventKind::restarted: name = "taskmon_restarts_total"; break;
            case MonitorEventKind::failed:
            case MonitorEventKind::cancelled_unexpectedly:
            case MonitorEventKind::factory_failed: name = "taskmon_failures_total"; break;
            case MonitorEventKind::gave_up: name = "taskmon_give_ups_total"; break;
            default: return;
        }
        std::lock_guard lock{mutex_};  // listeners run on whichever thread published: guard shared state
        ++counters_[{name, e.component}];
    }

    void print() const {
        std::lock_guard lock{mutex_};
        std::string_view previous;
        for (const auto& [key, value] : counters_) {
            if (key.first != previous) {
                fmt::print("# TYPE {} counter\n", key.first);
                previous = key.first;
            }
            fmt::print("{}{{component=\"{}\"}} {}\n", key.first, key.second, value);
        }
    }

private:
    mutable std::mutex mutex_;
    std::map<std::pair<std::string_view, std::string>, long> counters_;
};

/// After a component gives up, waits `cooldown` and grants it one trial (once per component), like a circuit
/// breaker's half-open state. restart() after a give-up would hand the component a fresh restart budget, so the
/// breaker watches the trial instance: if it fails, the breaker opens again by disabling the component, which
/// drops the restart the failure scheduled. The listener only starts a timer or calls the monitor: it must not
/// block the monitor's strand.
class Breaker {
public:
    Breaker(taskmon::TaskMonitor& monitor, std::chrono::milliseconds cooldown)
        : monitor_{monitor}, cooldown_{cooldown} {}

    void on_event(const MonitorEvent& e) {
        switch (e.kind) {
            case MonitorEventKind::gave_up:
                if (tried_.insert(e.component).second) {
                    schedule_trial(e.component);
                }
                break;
            case MonitorEventKind::failed:
            case MonitorEventKind::cancelled_unexpectedly:
            case MonitorEventKind::factory_failed:
                if (on_trial_.erase(e.component) != 0) {
                    fmt::print("-- breaker: the trial of {} failed; disabling it\n", e.component);
                    monitor_.disable({e.component});
                }
                break;
            default: break;
        }
    }

    /// Drops the trials still waiting (before the monitor closes: restart() would throw after close()).
    void stop() {
        for (const auto& timer : timers_) {
            timer->cancel();
        }
    }

private:
    void schedule_trial(const std::string& name) {
        auto timer = std::make_shared<asio::steady_timer>(monitor_.get_executor(), cooldown_);
        timers_.push_back(timer);
        timer->async_wait([this, timer, name](std::error_code ec) {
            if (!ec) {
                fmt::print("-- breaker: one trial restart of {} after {}\n", name, cooldown_);
                on_trial_.insert(name);
                monitor_.restart(name);
            }
        });
    }

    // The demo's io_context runs on one thread, so listeners never run concurrently here; with a thread pool
    // these would need a mutex like Metrics'.
    taskmon::TaskMonitor& monitor_;
    std::chrono::milliseconds cooldown_;
    std::set<std::string> tried_;     // components given their one trial
    std::set<std::string> on_trial_;  // trial restarted, first exit not seen yet
    std::vector<std::shared_ptr<asio::steady_timer>> timers_;
};

}  // namespace

int main(int argc, char** argv) {
    unsigned seed = 1;
    for (int i = 1; i < argc; ++i) {
        if (std::strcmp(argv[i], "--seed") == 0 && i + 1 < argc) {
            seed = static_cast<unsigned>(std::strtoul(argv[++i], nullptr, 10));
        } else {
            fmt::print(stderr, "usage: {} [--seed N]\n", argv[0]);
            return 2;
        }
    }

    asio::io_context io;
    // The monitor's own log lines would repeat what the console listener prints: send them nowhere.
    auto quiet =
        std::make_shared<spdlog::logger>("monitor_events_demo", std::make_shared<spdlog::sinks::null_sink_mt>());
    taskmon::TaskMonitor monitor{io.get_executor(),
                                 {.max_restart_attempts = 3,
                                  .restart_window = 10s,
                                  .base_backoff = 50ms,
                                  .max_backoff = 400ms,
                                  .shutdown_timeout = 500ms},
                                 quiet};
    const auto start = std::chrono::system_clock::now();

    auto console = monitor.subscribe([&](const MonitorEvent& e) {
        const auto at = std::chrono::duration_cast<std::chrono::milliseconds>(e.time - start);
        const auto kind = taskmon::to_string(e.kind);
        const auto fields = details(e);
        fmt::print("{:>6} #{:<3} {:<8} {}\n", at, e.sequence, e.component.empty() ? "-" : e.component,
                   fields.empty() ? std::string{kind} : fmt::format("{:<18} {}", kind, fields));
    });

    Metrics metrics;
    auto counting = monitor.subscribe([&](const MonitorEvent& e) { metrics.count(e); });

    Breaker breaker{monitor, 1s};
    auto breaking = monitor.subscribe([&](const MonitorEvent& e) { breaker.on_event(e); });

    std::mt19937 rng{seed};
    monitor.supervise("camera", camera);
    monitor.supervise("lidar", [&] { return lidar(rng); });
    monitor.supervise("gps", gps);

    asio::co_spawn(
        io,
        [&]() -> asio::awaitable<void> {
            asio::steady_timer timer{co_await asio::this_coro::executor, 3s};
            co_await timer.async_wait(asio::use_awaitable);
            fmt::print("-- closing the monitor\n");
            breaker.stop();
            co_await monitor.close();
        },
        [](std::exception_ptr e) {
            if (e) {
                std::rethrow_exception(e);
            }
        });
    io.run();

    fmt::print("\n");
    metrics.print();
    return 0;
}
