// taskmon — coroutine supervision for standalone Asio.
// SPDX-License-Identifier: MIT
//
// ComponentContext: a supervised instance's handle on its own supervision — liveness heartbeats, idle/busy,
// deadline extension and readiness. A factory that takes one is handed the context of the instance it creates.
// cleanup_after_cancellation(): how an instance the monitor stopped gets to co_await its cleanup.
//
//   monitor.supervise("poller", [](taskmon::ComponentContext ctx) -> asio::awaitable<void> {
//       co_await connect();
//       ctx.ready();                      // ends the startup_timeout; reset_backoff_after counts from here
//       for (;;) {
//           ctx.idle();                   // waiting for work: only idle_timeout applies
//           auto job = co_await queue.pop();
//           ctx.busy();                   // working: heartbeat at least every watchdog_timeout
//           ctx.extend_deadline(5min);    // one long step
//           co_await process(job);
//       }
//   }, taskmon::RestartPolicy{.watchdog_timeout = 10s, .startup_timeout = 30s});
#pragma once

#include <taskmon/detail/config.hpp>

#include <taskmon/duration.hpp>

#include <asio/awaitable.hpp>
#include <asio/this_coro.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <limits>
#include <memory>
#include <stdexcept>
#include <string>

namespace taskmon {

/// The failure an instance is charged with when it misses a liveness deadline; what() is "watchdog timeout"
/// or "startup timeout". RestartPolicy::classify_failure receives it like any other failure.
class LivenessTimeout : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

namespace detail {

/// The liveness record of one instance, written by its ComponentContext from any thread (atomics only) and
/// read by the monitor's watchdog on its strand. Times are nanoseconds since the monitor clock's epoch.
class InstanceLiveness {
public:
    static constexpr std::int64_t never = std::numeric_limits<std::int64_t>::min();

    InstanceLiveness(std::uint64_t id, std::uint64_t generation, std::int64_t started) noexcept
        : id_{id}, generation_{generation}, last_beat_{started} {}

    InstanceLiveness(const InstanceLiveness&) = delete;
    InstanceLiveness& operator=(const InstanceLiveness&) = delete;

    void heartbeat() noexcept { last_beat_.store(now(), std::memory_order_relaxed); }

    /// The beat is stored before the mode (release) and read after it (acquire): a watchdog that sees busy
    /// after an idle period also sees the beat busy() wrote, never the one from before the idle period.
    void set_idle(bool idle) noexcept {
        last_beat_.store(now(), std::memory_order_relaxed);
        idle_.store(idle, std::memory_order_release);
    }

    void extend_deadline(std::chrono::nanoseconds d) noexcept {
        const auto at = now();
        const auto until = d.count() > std::numeric_limits<std::int64_t>::max() - at
                               ? std::numeric_limits<std::int64_t>::max()
                               : at + d.count();
        auto current = extended_until_.load(std::memory_order_relaxed);
        while (current < until && !extended_until_.compare_exchange_weak(current, until, std::memory_order_relaxed)) {
        }
        last_beat_.store(at, std::memory_order_relaxed);
    }

    /// Marks the instance ready (first call only) and tells the monitor.
    void ready() noexcept {
        auto expected = never;
        const auto at = now();
        last_beat_.store(at, std::memory_order_relaxed);
        if (ready_at_.compare_exchange_strong(expected, at, std::memory_order_acq_rel)) {
            on_ready();
        }
    }

    [[nodiscard]] std::uint64_t id() const noexcept { return id_; }
    [[nodiscard]] std::uint64_t generation() const noexcept { return generation_; }
    [[nodiscard]] std::int64_t last_beat() const noexcept { return last_beat_.load(std::memory_order_relaxed); }
    [[nodiscard]] std::int64_t extended_until() const noexcept {
        return extended_until_.load(std::memory_order_relaxed);
    }
    [[nodiscard]] bool idle() const noexcept { return idle_.load(std::memory_order_acquire); }
    /// When ready() was first called; `never` if not (yet).
    [[nodiscard]] std::int64_t ready_at() const noexcept { return ready_at_.load(std::memory_order_acquire); }

protected:
    ~InstanceLiveness() = default;

    /// Marks the instance ready without notifying (an instance with no startup_timeout is ready at start).
    void mark_ready(std::int64_t at) noexcept { ready_at_.store(at, std::memory_order_release); }

private:
    /// Called once, on the thread that called ready(); must not block.
    virtual void on_ready() noexcept = 0;
    /// The monitor clock's time, in nanoseconds since its epoch. (Virtual, not a function pointer beside the
    /// vtable's: 8 bytes less takes the record into glibc's 112-byte class from the 128-byte one.)
    [[nodiscard]] virtual std::int64_t now() const noexcept = 0;

    std::uint64_t id_;
    std::uint64_t generation_;
    std::atomic<std::int64_t> last_beat_;
    std::atomic<std::int64_t> extended_until_{never};
    std::atomic<std::int64_t> ready_at_{never};
    std::atomic<bool> idle_{false};
};

struct ComponentContextAccess;

}  // namespace detail

/// A copyable handle on one instance's supervision, handed to factories of type ContextFactory. Every call is
/// thread-safe, non-blocking and noexcept (a few atomic stores), so a component may heartbeat from its hot
/// loop or from child coroutines on other threads. A default-constructed context is detached: its calls do
/// nothing. A context outliving its instance (e.g. copied into a child that outlives it) is harmless: the
/// monitor ignores it once the instance exited.
class ComponentContext {
public:
    ComponentContext() noexcept = default;

    /// "I am alive": the watchdog deadline moves to now + watchdog_timeout (or idle_timeout while idle).
    void heartbeat() const noexcept {
        if (liveness_) {
            liveness_->heartbeat();
        }
    }

    /// Waiting for work: only idle_timeout applies (none by default), so a quiet loop never trips the watchdog.
    /// Counts as a heartbeat.
    void idle() const noexcept {
        if (liveness_) {
            liveness_->set_idle(true);
        }
    }

    /// Working again: watchdog_timeout applies. Counts as a heartbeat. Instances start busy.
    void busy() const noexcept {
        if (liveness_) {
            liveness_->set_idle(false);
        }
    }

    /// A long operation follows: the watchdog deadline is at least now + d (until a later deadline replaces
    /// it). Counts as a heartbeat. `d` is any std::chrono::duration (5min, 1.5s).
    void extend_deadline(Duration d) const noexcept {
        if (liveness_) {
            liveness_->extend_deadline(d);
        }
    }

    /// The instance is ready to serve: ends its startup_timeout, starts its watchdog and its
    /// reset_backoff_after period (and a quarantine trial's probation). Later calls only count as heartbeats.
    void ready() const noexcept {
        if (liveness_) {
            liveness_->ready();
        }
    }

    /// The instance's task_id (as in ComponentStats and MonitorEvent); 0 if detached.
    [[nodiscard]] std::uint64_t task_id() const noexcept { return liveness_ ? liveness_->id() : 0; }

    /// Which instance of its component this is: 1 for the first, 2 after the first restart...; 0 if detached.
    [[nodiscard]] std::uint64_t generation() const noexcept { return liveness_ ? liveness_->generation() : 0; }

    /// Whether ready() was called (or the policy has no startup_timeout).
    [[nodiscard]] bool is_ready() const noexcept {
        return liveness_ && liveness_->ready_at() != detail::InstanceLiveness::never;
    }

    [[nodiscard]] explicit operator bool() const noexcept { return static_cast<bool>(liveness_); }

private:
    friend struct detail::ComponentContextAccess;
    explicit ComponentContext(std::shared_ptr<detail::InstanceLiveness> liveness) noexcept
        : liveness_{std::move(liveness)} {}

    std::shared_ptr<detail::InstanceLiveness> liveness_;
};

namespace detail {

struct ComponentContextAccess {
    static ComponentContext make(std::shared_ptr<InstanceLiveness> liveness) noexcept {
        return ComponentContext{std::move(liveness)};
    }
};

}  // namespace detail

/// `co_await taskmon::cleanup_after_cancellation();` in a component that caught the monitor's cancellation (a
/// std::system_error with asio::error::operation_aborted), after the catch block and before its first cleanup
/// co_await. After a terminal cancellation every co_await of an asio::awaitable in that coroutine throws
/// operation_aborted before it starts; this resets the coroutine's cancellation state so the cleanup runs:
///   std::exception_ptr stop;
///   try { for (;;) co_await serve(socket); } catch (const std::system_error&) { stop = std::current_exception(); }
///   co_await taskmon::cleanup_after_cancellation();
///   co_await say_goodbye(socket);   // bound it: the monitor waits for it only up to shutdown_timeout
///   std::rethrow_exception(stop);
/// It is asio::this_coro::reset_cancellation_state() under a name that says when to use it. It cannot be a
/// coroutine of ours: co_await of any asio::awaitable in a cancelled coroutine throws before its body runs, so
/// only this_coro's own awaitable can do it. The monitor cancels an instance once, so nothing interrupts the
/// cleanup again.
[[nodiscard]] inline auto cleanup_after_cancellation() { return asio::this_coro::reset_cancellation_state(); }

/// Creates a fresh instance of a component's coroutine; called on the monitor's strand for every restart.
using RestartFactory = std::function<asio::awaitable<void>()>;

/// A factory handed the new instance's ComponentContext (liveness: heartbeat, idle/busy, ready...). Take the
/// context by value: the coroutine keeps its own copy.
using ContextFactory = std::function<asio::awaitable<void>(ComponentContext)>;

}  // namespace taskmon
