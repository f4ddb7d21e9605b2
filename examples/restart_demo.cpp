// restart_demo: a TaskMonitor supervising six components for a few seconds.
//
//   perception    throws now and then; restarted with backoff
//   decision      is cancelled by someone else (an unexpected cancellation); restarted like a failure
//   flaky_sensor  fails every time; gives up when the restart limit is hit
//   tracker       heartbeats through its ComponentContext, then hangs once: the watchdog restarts it
//   uplink        fails its first four starts: after the third its circuit breaker opens (quarantine), the
//                 first trial fails and reopens it with the cooldown doubled, the second trial stays up and
//                 closes it
//   actuation     runs steadily; untouched by its siblings' trouble
//
// Usage: restart_demo [--seed-timings] [--seed N]
//   default          fast timings (backoff 50 ms doubling to 800 ms, 5 restarts per 10 seconds); exits after
//                    4 seconds
//   --seed-timings   the default RestartPolicy's timings (backoff 2 seconds doubling to 60 seconds, 5 restarts
//                    per hour); exits after 75 seconds
//   --seed N         seed of the demo's random failures and of the monitor's jitter (default 1)
//
// Ctrl-C (SIGINT) or SIGTERM closes the monitor early, cleanly: components are cancelled and waited for, and the
// stats table is printed as after a normal run.
#include <taskmon/task_monitor.hpp>

#include <asio/co_spawn.hpp>
#include <asio/io_context.hpp>
#include <asio/redirect_error.hpp>
#include <asio/signal_set.hpp>
#include <asio/steady_timer.hpp>
#include <asio/use_awaitable.hpp>
#include <fmt/chrono.h>
#include <fmt/format.h>
#include <spdlog/sinks/stdout_color_sinks.h>

#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <random>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>

using namespace std::chrono_literals;

namespace {

struct Timings {
    taskmon::RestartPolicy policy;
    std::chrono::milliseconds tick;      // how often components do a unit of work
    std::chrono::milliseconds run_time;  // how long the demo runs before closing the monitor
};

Timings fast_timings() {
    return {{.max_restart_attempts = 5,
             .restart_window = 10s,
             .base_backoff = 50ms,
             .max_backoff = 800ms,
             .jitter = taskmon::JitterKind::proportional,
             .jitter_ratio = 0.1,
             .reset_backoff_after = 1s,
             .shutdown_timeout = 500ms},
            50ms,
            4s};
}

Timings seed_timings() {
    return {taskmon::RestartPolicy{.max_restart_attempts = 5, .base_backoff = 2s, .max_backoff = 60s}, 1s, 75s};
}

/// Heartbeats every tick; its first instance stops heartbeating (hangs, but still honours cancellation) after
/// `hang_after`, so the watchdog cancels and restarts it.
asio::awaitable<void> tracker(taskmon::ComponentContext ctx, std::chrono::milliseconds tick,
                              std::chrono::milliseconds hang_after) {
    asio::steady_timer timer{co_await asio::this_coro::executor};
    const auto start = std::chrono::steady_clock::now();
    for (;;) {
        if (ctx.generation() == 1 && std::chrono::steady_clock::now() - start >= hang_after) {
            fmt::print("-- tracker hangs (no more heartbeats)\n");
            std::fflush(stdout);
            timer.expires_after(24h);
            co_await timer.async_wait(asio::use_awaitable);
        }
        ctx.heartbeat();
        timer.expires_after(tick);
        co_await timer.async_wait(asio::use_awaitable);
    }
}

/// Fails a tick after each of its first `failures` starts, then runs steadily.
asio::awaitable<void> uplink(std::chrono::milliseconds tick, int& starts, int failures) {
    asio::steady_timer timer{co_await asio::this_coro::executor, tick};
    co_await timer.async_wait(asio::use_awaitable);
    if (++starts <= failures) {
        throw std::runtime_error("link down");
    }
    for (;;) {
        timer.expires_after(tick);
        co_await timer.async_wait(asio::use_awaitable);
    }
}

/// Does a unit of work every tick and throws with probability 1/8 per tick.
asio::awaitable<void> perception(std::chrono::milliseconds tick, std::mt19937& rng) {
    asio::steady_timer timer{co_await asio::this_coro::executor};
    for (;;) {
        timer.expires_after(tick);
        co_await timer.async_wait(asio::use_awaitable);
        if (std::uniform_int_distribution<int>{0, 7}(rng) == 0) {
            throw std::runtime_error("Connection lost");
        }
    }
}

/// Waits on a timer that `saboteur` may cancel behind its back: an operation_aborted it did not ask for.
asio::awaitable<void> decision(std::chrono::milliseconds tick, std::shared_ptr<asio::steady_timer>& exposed) {
    auto timer = std::make_shared<asio::steady_timer>(co_await asio::this_coro::executor);
    exposed = timer;
    for (;;) {
        timer->expires_after(tick);
        co_await timer->async_wait(asio::use_awaitable);
    }
}

/// Fails shortly after every start: it will exhaust its restart budget.
asio::awaitable<void> flaky_sensor(std::chrono::milliseconds tick) {
    asio::steady_timer timer{co_await asio::this_coro::executor, tick};
    co_await timer.async_wait(asio::use_awaitable);
    throw std::runtime_error("sensor not responding");
}

asio::awaitable<void> actuation(std::chrono::milliseconds tick) {
    asio::steady_timer timer{co_await asio::this_coro::executor};
    for (;;) {
        timer.expires_after(tick);
        co_await timer.async_wait(asio::use_awaitable);
    }
}

/// A duration in the words of the monitor's own log lines: "50 ms", "10 seconds", "minute", "hour".
std::string words(taskmon::Duration d, bool singular_without_one = false) {
    using namespace std::chrono;
    const auto unit = [&](long long n, std::string_view name) {
        if (n == 1) {
            return singular_without_one ? std::string{name} : fmt::format("1 {}", name);
        }
        return fmt::format("{} {}s", n, name);
    };
    if (d.count() != 0 && d % hours{1} == nanoseconds::zero()) return unit(duration_cast<hours>(d).count(), "hour");
    if (d.count() != 0 && d % minutes{1} == nanoseconds::zero()) {
        return unit(duration_cast<minutes>(d).count(), "minute");
    }
    if (d.count() != 0 && d % seconds{1} == nanoseconds::zero()) {
        return unit(duration_cast<seconds>(d).count(), "second");
    }
    return fmt::format("{} ms", duration_cast<milliseconds>(d).count());
}

std::string format_time(const std::optional<std::chrono::system_clock::time_point>& t) {
    if (!t) {
        return "-";
    }
    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(t->time_since_epoch()).count() % 1000;
    return fmt::format("{:%H:%M:%S}.{:03}", std::chrono::floor<std::chrono::seconds>(*t), ms);
}

}  // namespace

int main(int argc, char** argv) {
    bool seed_mode = false;
    unsigned seed = 1;
    for (int i = 1; i < argc; ++i) {
        if (std::strcmp(argv[i], "--seed-timings") == 0) {
            seed_mode = true;
        } else if (std::strcmp(argv[i], "--seed") == 0 && i + 1 < argc) {
            seed = static_cast<unsigned>(std::strtoul(argv[++i], nullptr, 10));
        } else {
            fmt::print(stderr, "usage: {} [--seed-timings] [--seed N]\n", argv[0]);
            return 2;
        }
    }
    const auto timings = seed_mode ? seed_timings() : fast_timings();

    // Before the monitor's first log line ("Started component ..."): what this run is about to do.
    fmt::print("restart_demo: {} timings (backoff {} doubling to {}, {} restarts per {}), running {}\n",
               seed_mode ? "seed" : "fast", words(timings.policy.base_backoff), words(timings.policy.max_backoff),
               timings.policy.max_restart_attempts, words(timings.policy.restart_window, true),
               words(timings.run_time));
    std::fflush(stdout);  // the log lines go through their own stream

    // Restarts are printed as they happen by the monitor's own log lines.
    auto sink = std::make_shared<spdlog::sinks::stdout_color_sink_mt>();
    auto logger = std::make_shared<spdlog::logger>("restart_demo", sink);
    logger->set_pattern("%H:%M:%S.%e %^%-7l%$ %v");

    asio::io_context io;
    std::mt19937 rng{seed};
    std::shared_ptr<asio::steady_timer> decision_timer;
    taskmon::TaskMonitor monitor{io.get_executor(), timings.policy, logger, taskmon::seeded_random_source(seed)};

    monitor.supervise("perception", [&] { return perception(timings.tick, rng); });
    monitor.supervise("decision", [&] { return decision(timings.tick, decision_timer); });
    monitor.supervise("flaky_sensor", [&] { return flaky_sensor(timings.tick); });
    // tracker: a watchdog of four ticks; it hangs a third into the run.
    auto watched = timings.policy;
    watched.watchdog_timeout = 4 * timings.tick;
    monitor.supervise(
        "tracker",
        [&](taskmon::ComponentContext ctx) { return tracker(std::move(ctx), timings.tick, timings.run_time / 3); },
        watched);
    // uplink: two restarts per window, then a circuit breaker (cooldown doubling); stable after 20 ticks.
    auto breaker = timings.policy;
    breaker.max_restart_attempts = 2;
    breaker.give_up_mode = taskmon::GiveUpMode::quarantine;
    breaker.quarantine_cooldown = 10 * timings.tick;
    breaker.max_quarantine_cooldown = 40 * timings.tick;
    breaker.reset_backoff_after = 20 * timings.tick;
    int uplink_starts = 0;
    monitor.supervise(
        "uplink", [&] { return uplink(timings.tick, uplink_starts, 4); }, breaker);
    monitor.supervise("actuation", [&] { return actuation(timings.tick); });

    // One way out, taken at the end of the script or on SIGINT/SIGTERM, whichever comes first: close the monitor
    // (cancel every component and wait for them), and cancel what else keeps the io_context busy, so that
    // io.run() returns once the close completed. Everything here runs on the io_context's one thread.
    asio::signal_set signals{io, SIGINT, SIGTERM};
    asio::steady_timer script_timer{io};
    bool closing = false;
    const auto shut_down = [&](std::string_view why) {
        if (std::exchange(closing, true)) {
            return;
        }
        fmt::print("-- {}: closing the monitor\n", why);
        std::fflush(stdout);
        signals.cancel();
        script_timer.cancel();
        monitor.async_close([] { fmt::print("-- monitor closed\n"); });
    };
    signals.async_wait([&](std::error_code ec, int signal) {
        if (!ec) {
            shut_down(signal == SIGINT ? "SIGINT" : "SIGTERM");
        }
    });

    asio::co_spawn(
        io,
        [&]() -> asio::awaitable<void> {
            std::error_code ec;
            const auto sleep = [&](std::chrono::milliseconds d) {
                script_timer.expires_after(d);
                return script_timer.async_wait(asio::redirect_error(asio::use_awaitable, ec));
            };
            // Someone else cancels decision's timer twice: unexpected cancellations.
            for (int i = 0; i < 2; ++i) {
                co_await sleep(timings.run_time / 4 + timings.tick / 3);  // off the tick boundaries
                if (ec) {
                    co_return;  // shut down early
                }
                if (decision_timer) {
                    fmt::print("-- saboteur cancels decision's timer\n");
                    std::fflush(stdout);
                    decision_timer->cancel();
                }
            }
            co_await sleep(timings.run_time / 2);
            if (!ec) {
                shut_down("time is up");
            }
        },
        [](std::exception_ptr e) {
            if (e) {
                std::rethrow_exception(e);
            }
        });
    io.run();

    fmt::print("\n{:<13} {:<12} {:>8} {:>8} {:>10} {:>8} {:>13}  {}\n", "component", "state", "restarts", "failures",
               "in_window", "enabled", "last_restart", "last_error");
    for (const auto& [name, s] : monitor.get_component_stats()) {
        fmt::print("{:<13} {:<12} {:>8} {:>8} {:>10} {:>8} {:>13}  {}\n", name, s.state, s.restart_count,
                   s.failure_count, s.restarts_in_window, s.enabled ? "yes" : "no", format_time(s.last_restart_time),
                   s.last_error.empty() ? "-" : s.last_error);
    }
    return 0;
}
