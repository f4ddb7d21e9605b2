// taskmon — coroutine supervision for standalone Asio.
// SPDX-License-Identifier: MIT
//
// TaskMonitor: runs named component coroutines, each under its own supervisor, and restarts them when they fail
// or are cancelled unexpectedly, with exponential backoff, a sliding-window restart limit, a restart guard,
// stats, structured logs, a typed event stream and a bounded, clean shutdown.
//
//   Database db;  // what components use is declared BEFORE the monitor, so that it is destroyed after it: a
//                 // component may use it until the monitor's close() (or destruction) stopped it
//   taskmon::TaskMonitor monitor{io.get_executor(), {.max_restart_attempts = 5, .base_backoff = 2s}};
//   monitor.set_restart_factories({{"perception", [] { return perception_loop(); }}});
//   monitor.register_task("perception", perception_loop());   // starts it under supervision
//   monitor.enable({"perception"});                          // restart only what is enabled
//   monitor.supervise("actuation", [] { return actuation_loop(); });  // factory + register + enable
//   monitor.supervise_group("link", {{.name = "socket", .factory = open}, {.name = "reader", .factory = read}},
//                           {.strategy = taskmon::RestartStrategy::one_for_all});  // live and die together
//   monitor.supervise("poller", [](taskmon::ComponentContext ctx) -> asio::awaitable<void> {
//       ctx.ready(); for (;;) { ctx.heartbeat(); co_await poll(); }
//   }, {.watchdog_timeout = 10s, .give_up_mode = taskmon::GiveUpMode::quarantine});  // the monitor's policy, changed
//   monitor.spawn_numbered("conn-", serve(std::move(socket)));   // a short-lived task named "conn-<task_id>"
//   auto stats = monitor.get_component_stats();
//   auto subscription = monitor.subscribe([](const taskmon::MonitorEvent& e) { /* every state change */ });
//   monitor.update_policy("poller", {.max_backoff = 5min});   // from the next decision on
//   co_await taskmon::async_wait_ready(monitor, "poller", 10s);  // taskmon/state_wait.hpp
//   monitor.reset("poller");                        // clear a give-up or a quarantine by hand
//   co_await monitor.remove_and_wait("poller");     // stop it and forget it
//   auto escalation = co_await monitor.async_wait_escalation();  // GiveUpMode::escalate give-ups
//   co_await monitor.close();              // or monitor.async_close(callback), async_close(asio::use_future)
#pragma once

#include <taskmon/detail/config.hpp>

#include <taskmon/component_context.hpp>
#include <taskmon/component_group.hpp>
#include <taskmon/component_stats.hpp>
#include <taskmon/detail/monitor_waiters.hpp>
#include <taskmon/event_subscription.hpp>
#include <taskmon/monitor_closed.hpp>
#include <taskmon/monitor_event.hpp>
#include <taskmon/policy_overrides.hpp>
#include <taskmon/restart_policy.hpp>
#include <taskmon/spawn_result.hpp>

#include <asio/any_io_executor.hpp>
#include <asio/associated_executor.hpp>
#include <asio/async_result.hpp>
#include <asio/awaitable.hpp>
#include <asio/bind_executor.hpp>
#include <asio/error.hpp>
#include <asio/use_awaitable.hpp>
#include <spdlog/logger.h>

#include <chrono>
#include <concepts>
#include <cstddef>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace taskmon {

/// Default number of strands a monitor shares among its components (Asio's legacy io_context::strand service
/// shares 193 the same way). 0 means one strand per component.
inline constexpr std::size_t default_strand_pool_size = 193;

namespace detail {
template <typename Clock>
class MonitorState;
}  // namespace detail

/// Supervises named component coroutines on an Asio executor. Clock is the time source of backoff and windows
/// (std::chrono::steady_clock for TaskMonitor; taskmon::testing::ManualClock for tests in virtual time).
///
/// Thread safety: every member function may be called from any thread. State is guarded by one mutex and all
/// asynchronous work (timers, completions, factory calls) runs on an internal strand of the executor; each
/// component's coroutine runs on one of a pool of strands of the executor (strand_pool_size, assigned
/// round-robin), so a component never runs concurrently with itself, and components on different strands run
/// in parallel on a multi-threaded io_context.
///
/// Errors: bad input throws std::invalid_argument naming the field or component and changes nothing (a name must
/// be one line of valid UTF-8; an asio::awaitable must not be empty); any mutating call after close() started
/// throws taskmon::MonitorClosed, a std::logic_error.
template <typename Clock>
class BasicTaskMonitor {
public:
    using clock_type = Clock;
    using executor_type = asio::any_io_executor;

    /// Validates `policy` (std::invalid_argument naming the field). A null logger means spdlog's default logger
    /// (used, never modified). An empty random source means one seeded from std::random_device.
    /// Components run on `strand_pool_size` strands of the executor shared round-robin (0: a strand each):
    /// components sharing a strand never run at the same time on different threads.
    explicit BasicTaskMonitor(asio::any_io_executor executor, RestartPolicy policy = {},
                              std::shared_ptr<spdlog::logger> logger = nullptr, RandomSource random = {},
                              std::size_t strand_pool_size = default_strand_pool_size);

    /// Without close(), destruction stops supervision as close() would (pending restarts dropped, instances
    /// cancelled) but does not wait; callbacks still outstanding keep the shared state alive. Destruction first
    /// unsubscribes every listener (waiting as EventSubscription::unsubscribe() does), so no listener runs once
    /// the monitor is gone; the events of the shutdown it starts are logged only.
    ~BasicTaskMonitor();

    BasicTaskMonitor(const BasicTaskMonitor&) = delete;
    BasicTaskMonitor& operator=(const BasicTaskMonitor&) = delete;

    /// Sets (or replaces) the factories used to restart components; names not yet known become components in
    /// state not_started. Throws std::invalid_argument for an empty name or an empty factory.
    void set_restart_factories(std::map<std::string, RestartFactory> factories);

    /// The same for factories that take their instance's ComponentContext.
    void set_restart_factories(std::map<std::string, ContextFactory> factories);

    /// Starts `task` under supervision as component `name` (not enabled for restart until enable()). The task
    /// runs on the component's pool strand of the monitor's executor. Throws std::invalid_argument for an empty
    /// or already registered name.
    ///
    /// The monitor keeps only the coroutine, as spawn() does: a coroutine lambda's captures die with the temporary
    /// closure when this call returns, so pass state as the coroutine's parameters (see spawn()).
    void register_task(const std::string& name, asio::awaitable<void> task);

    /// Runs `task` as a short-lived supervised task (one per connection, per request...): a component `name`
    /// on a pool strand of the monitor's executor, listed by get_component_stats() while it runs, never
    /// restarted (no factory; like RestartType::temporary), and removed from the monitor when it ends, its name
    /// free again. How it ended is published, then `removed`: `completed` (it returned), `failed` or
    /// `cancelled_unexpectedly` (with the reason; logged at error / warn level; failure_class is always
    /// counted, the classifier is not consulted), or `stopped` (close(), remove_and_wait() or disable() asked
    /// it to stop). Its events carry MonitorEvent::spawned, and its routine lines (started, completed, stopped,
    /// removed) are logged at debug level.
    ///
    /// close() cancels it like any component (terminal cancellation on its strand, so a wait on a timer, a
    /// socket or an AsyncSemaphore / io_semaphore() acquire ends) and waits for it up to the monitor policy's
    /// shutdown_timeout; past that it is reported unresponsive. No liveness watch or timer is made for it
    /// (the monitor policy's watchdog/startup timeouts do not apply) unless something asks it to stop.
    ///
    /// The monitor keeps only the coroutine: unlike a factory, a coroutine lambda's closure is not kept alive, so
    /// pass state as the coroutine's parameters (`[](tcp::socket s) -> asio::awaitable<void> {...}(std::move(s))`),
    /// not as captures of a temporary lambda.
    ///
    /// May be called from any thread, also from inside a component's coroutine (an accept loop spawning
    /// connections). The task starts before the call returns on another thread's strand; it may have run up to
    /// its first suspension inside this call when called from the strand it is assigned. Throws, changing
    /// nothing: std::invalid_argument for an invalid name, an empty task, or a name the monitor already knows (a
    /// live component, a spawned task still running, a name from set_restart_factories(), a removed component
    /// whose instance still runs); taskmon::MonitorClosed once close() started.
    void spawn(const std::string& name, asio::awaitable<void> task);

    /// spawn() that reports a refusal instead of throwing it: SpawnStatus::monitor_closed once close() started,
    /// SpawnStatus::name_taken for a name the monitor knows (see spawn()); the task is then destroyed without
    /// running. Bad input still throws std::invalid_argument (an invalid name, an empty task): it is a bug, not
    /// a refusal. An accept loop ends quietly when the monitor closes:
    ///   if (monitor.try_spawn_numbered("conn-", serve(std::move(socket))).status == SpawnStatus::monitor_closed)
    ///       co_return;
    [[nodiscard]] SpawnResult try_spawn(const std::string& name, asio::awaitable<void> task);

    /// spawn() under a name the monitor makes: `prefix` followed by the task's id, its task_id in the events and
    /// logs ("conn-" gives "conn-17"). Ids are never reused by a monitor, so a restarted accept loop never meets
    /// a name its previous instance spawned; an id whose name is taken (a component the user named "conn-17") is
    /// skipped. Returns the name. Throws std::invalid_argument for an invalid prefix (an empty one included) or
    /// an empty task, and taskmon::MonitorClosed once close() started.
    std::string spawn_numbered(std::string_view prefix, asio::awaitable<void> task);

    /// spawn_numbered() that reports a refusal (only SpawnStatus::monitor_closed can happen) instead of throwing
    /// it; SpawnResult::name is the generated name.
    [[nodiscard]] SpawnResult try_spawn_numbered(std::string_view prefix, asio::awaitable<void> task);

    /// Enables automatic restart of the named components (all names are checked before any is changed).
    /// Does not start anything by itself.
    void enable(const std::vector<std::string>& names);

    /// Stops supervising the named components: drops pending restarts and cancels running instances (a
    /// requested stop, never a failure).
    void disable(const std::vector<std::string>& names);

    /// Factory + register + enable in one call, with an optional per-component policy. The factory is called
    /// once now on the calling thread; if it throws, the exception propagates and nothing has changed.
    /// Works at any time before close(): components may be added while others run.
    void supervise(const std::string& name, RestartFactory factory, std::optional<RestartPolicy> policy = {});

    /// The same with a factory that takes its instance's ComponentContext (needed to heartbeat or call ready()).
    void supervise(const std::string& name, ContextFactory factory, std::optional<RestartPolicy> policy = {});

    /// The same with the monitor's policy changed by `overrides`: `{.watchdog_timeout = 10s}` keeps every other
    /// field of policy(), where `RestartPolicy{.watchdog_timeout = 10s}` would replace them all by their defaults.
    void supervise(const std::string& name, RestartFactory factory, const PolicyOverrides& overrides);
    void supervise(const std::string& name, ContextFactory factory, const PolicyOverrides& overrides);

    /// Starts group `name` of `members` under supervision, nested in group `parent` (empty: a top-level group;
    /// a nested group joins its parent's members last). Members start in order on the monitor's strand, each
    /// once the one before is ready (GroupPolicy::start_after_ready), and stop in reverse order, each waited for
    /// up to its shutdown_timeout; close() stops a tree that way. A member's failure restarts what
    /// policy.strategy names: one_for_one the member alone, one_for_all every member, rest_for_one the member
    /// and those after it; the members concerned are stopped in reverse order and confirmed gone (or reported
    /// unresponsive at their shutdown_timeout: such a member is started again only once it exited), then
    /// started in order after the failing member's backoff. Members failing meanwhile join the same restart.
    /// Each restart counts against the member's own limit and the group's max_restarts; a group over its limit
    /// gives up and is restarted by its parent group as one failed member, and a top-level group is stopped
    /// and escalated (async_wait_escalation(), MonitorEvent::group set, component empty). A member giving up
    /// under GiveUpMode::escalate gives its group up the same way; under stop it stays down alone.
    /// Members are components like any other (stats, events, restart(), disable()), but remove_and_wait()
    /// refuses them. Throws std::invalid_argument (a bad name, policy or member; a significant member whose
    /// restart type is permanent; a name already used by a group or component; an unknown parent) and
    /// taskmon::MonitorClosed after close(); nothing has changed then.
    void supervise_group(const std::string& name, std::vector<GroupMember> members, const GroupPolicy& policy = {},
                         const std::string& parent = {});

    /// A consistent snapshot of every group.
    [[nodiscard]] std::map<std::string, GroupStats> get_group_stats() const;

    /// Requests a manual restart: cancels the running instance and starts a new one from the factory once it
    /// exited (counts in restart_count, not against the restart limit). Merged into a restart already pending
    /// (a pending backoff is cut short). After give-up it resets the component's restart budget. A component
    /// known only from set_restart_factories() is started and thereby registered. A disabled component gets one
    /// new instance and stays disabled: nothing restarts it automatically afterwards, also when this factory call
    /// throws (factory_failed, then not_enabled). Throws std::invalid_argument for an unknown name or a component
    /// without a restart factory.
    void restart(const std::string& name);

    /// Clears the component's restart history by hand: sliding window, backoff, quarantine cooldown. A component
    /// that gave up, or is quarantined, starts a new instance now (not a trial). Publishes `reset`. Throws
    /// std::invalid_argument for an unknown name, or a gave_up / quarantined component without a factory.
    void reset(const std::string& name);

    /// Replaces the component's policy (validated first: std::invalid_argument naming the field). It applies
    /// from the next decision: a pending backoff keeps its timer, the next failure uses the new limits, and a
    /// running instance's liveness deadlines use the new timeouts from the next check (an instance started
    /// without a liveness record — no context and no liveness policy then — stays unwatched until it restarts).
    /// Publishes `policy_updated`. Takes a RestartPolicy object (every field); a braced list is a PolicyOverrides
    /// (below), so that `update_policy(name, {.max_backoff = 5min})` changes that field alone.
    template <std::same_as<RestartPolicy> Policy>
    void update_policy(const std::string& name, Policy policy) {
        replace_policy(name, std::move(policy));
    }

    /// The same with the component's current policy changed by `overrides` (`{.max_backoff = 5min}`): the fields
    /// it leaves empty keep their values.
    void update_policy(const std::string& name, const PolicyOverrides& overrides);

    /// Stops the component for good and removes it from the monitor: disables it, drops a pending restart,
    /// cancels the running instance and waits for it to exit, then publishes `removed` and completes; its name
    /// may be used again. An instance that ignores cancellation for longer than its shutdown_timeout is reported
    /// (stop_timeout), removed anyway (`removed` with unresponsive = 1; it is then waited for only by close()),
    /// and the operation completes with asio::error::timed_out; its name stays taken until that instance exits
    /// (its `stopped` event), so that two live instances never share a name. Signature
    /// void(std::error_code); completes through the token's associated executor (post semantics). Concurrent
    /// calls for one component complete together. The removal starts at the call, whatever the token (also if
    /// a use_awaitable result is never awaited). Throws, from the call, std::invalid_argument for an unknown
    /// name and taskmon::MonitorClosed after close(). If close() finishes first, a removal still waiting completes
    /// with timed_out.
    template <typename CompletionToken = asio::use_awaitable_t<>>
    auto remove_and_wait(const std::string& name, CompletionToken&& token = {}) {
        auto record = begin_remove(name);  // validates and starts now, whatever the token
        return asio::async_initiate<CompletionToken, void(std::error_code)>(
            [state = state_](auto handler, std::shared_ptr<void> removal) {
                auto fallback = executor_of(state);
                auto executor = asio::get_associated_executor(handler, fallback);
                wait_removed(
                    state, std::move(removal),
                    detail::RemoveWaiters::prepare(asio::bind_executor(executor, std::move(handler)), fallback));
            },
            token, std::move(record));
    }

    /// Waits for the next give-up of a component under GiveUpMode::escalate and completes with its `escalated`
    /// event (component, reason, limit, window). Escalations are queued until taken, oldest first, so none is
    /// lost between two waits. Completes with asio::error::operation_aborted once close() finished and none is
    /// left. Signature void(std::error_code, MonitorEvent); completes through the token's associated executor.
    ///   std::future<taskmon::MonitorEvent> escalation = monitor.async_wait_escalation(asio::use_future);
    template <typename CompletionToken = asio::use_awaitable_t<>>
    auto async_wait_escalation(CompletionToken&& token = {}) {
        return asio::async_initiate<CompletionToken, void(std::error_code, MonitorEvent)>(
            [state = state_](auto handler) {
                auto fallback = executor_of(state);
                auto executor = asio::get_associated_executor(handler, fallback);
                wait_escalation(state, detail::EscalationWaiters::prepare(
                                           asio::bind_executor(executor, std::move(handler)), fallback));
            },
            token);
    }

    /// Calls `listener` with every event published from now on, until the returned handle is destroyed or
    /// unsubscribed (see taskmon/monitor_event.hpp for the kinds and their fields). Every event is logged
    /// first, then delivered to each listener in the order they subscribed.
    ///
    /// Where it runs: on the thread that published the event, outside the monitor's mutex. Events from exits,
    /// backoff timers, restarts and close() are published on the monitor's internal strand (a thread running
    /// the executor); `started`, `restart_requested`, `restart_merged` and the `restart_cancelled` of
    /// disable() are published synchronously by register_task(), supervise(), restart() and disable(), on the
    /// thread that called them, before the call returns. Events published on one thread reach every listener in
    /// that order; events from different threads may interleave, and a listener may then run on two threads at
    /// once (MonitorEvent::sequence gives the order of the changes). A listener runs on the strand for most
    /// events: keep it short, it delays the monitor.
    ///
    /// A listener may call back into the monitor (get_component_stats(), restart(), disable(), subscribe(),
    /// unsubscribe...). The events such a call publishes on the same thread are delivered after the current
    /// event has reached every listener, never recursively. A listener that throws has the exception logged
    /// (error level, with the component and the event kind; once per throw) and changes nothing else: later
    /// listeners and supervision carry on. A listener subscribed during a delivery receives the events
    /// published after that delivery began.
    ///
    /// Throws std::invalid_argument for an empty listener and, like every mutating call, taskmon::MonitorClosed once
    /// close() started; a listener subscribed before sees the shutdown (restart_cancelled, stopped,
    /// stop_timeout, closed; a component that outlived its shutdown_timeout still reports `stopped` after
    /// `closed`). Unsubscribing: see EventSubscription; destroying the monitor removes every listener.
    [[nodiscard]] EventSubscription subscribe(MonitorEventListener listener);

    /// A consistent snapshot of every component's stats.
    [[nodiscard]] std::map<std::string, ComponentStats> get_component_stats() const;

    /// Closes the monitor (idempotent): cancels pending backoff timers first (no factory is called after close
    /// starts), then cancels every instance and waits for each up to its own shutdown_timeout (group members in
    /// turn, in reverse order); an instance still running at its deadline is logged and reported unresponsive
    /// then, and the close completes once every instance exited or was reported. Resumes on the awaiting
    /// coroutine's executor. Concurrent and repeated calls all complete when the first close completes.
    /// Same as `async_close(asio::use_awaitable)`.
    asio::awaitable<void> close();

    /// close() for any completion token with the signature void(): a callback, asio::use_future (a
    /// std::future<void>), asio::use_awaitable, asio::experimental::deferred.
    ///
    /// The close starts when the operation is initiated (at once for a callback or use_future; at co_await for
    /// use_awaitable). The handler is called once the close completed, never inside this call, through its
    /// associated executor with post semantics: a plain callback runs on the monitor's executor, a coroutine
    /// resumes on its own executor, and use_future's future becomes ready on Asio's system executor. Someone must
    /// run the monitor's executor meanwhile. Not cancellable: the handler's cancellation slot is ignored and the
    /// close goes on. If the execution context is destroyed first, the handler is destroyed without being called
    /// (use_future: the future reports std::future_errc::broken_promise).
    template <asio::completion_token_for<void()> CompletionToken>
    auto async_close(CompletionToken&& token) {
        // The initiation holds the shared state, so a deferred operation (use_awaitable) may outlive the monitor.
        return asio::async_initiate<CompletionToken, void()>(
            [state = state_](auto handler) {
                auto fallback = executor_of(state);
                auto executor = asio::get_associated_executor(handler, fallback);
                auto call = [h = std::move(handler)](asio::error_code) mutable { std::move(h)(); };
                close_with(state,
                           detail::CloseWaiters::prepare(asio::bind_executor(executor, std::move(call)), fallback));
            },
            token);
    }

    [[nodiscard]] executor_type get_executor() const noexcept;

    /// The monitor-wide default policy.
    [[nodiscard]] const RestartPolicy& policy() const noexcept;

private:
    using State = detail::MonitorState<Clock>;

    static std::shared_ptr<State> make_state(asio::any_io_executor executor, const RestartPolicy& policy,
                                             std::shared_ptr<spdlog::logger> logger, RandomSource random,
                                             std::size_t strand_pool_size);

    // The completion-token functions make the operation for their handler and hand it to these, which are not
    // templates: under TASKMON_SEPARATE_COMPILATION the monitor's code is compiled once, not per token type.
    std::shared_ptr<void> begin_remove(const std::string& name);
    void replace_policy(const std::string& name, RestartPolicy policy);
    static void wait_removed(const std::shared_ptr<State>& state, std::shared_ptr<void> record,
                             detail::RemoveWaiters::Prepared waiter);
    static void wait_escalation(const std::shared_ptr<State>& state, detail::EscalationWaiters::Prepared waiter);
    static void close_with(const std::shared_ptr<State>& state, detail::CloseWaiters::Prepared waiter);
    static asio::any_io_executor executor_of(const std::shared_ptr<State>& state) noexcept;

    std::shared_ptr<State> state_;
};

/// BasicTaskMonitor on the steady clock: the TaskMonitor most programs use (its API and defaults follow the
/// design described in docs/origin.md).
using TaskMonitor = BasicTaskMonitor<std::chrono::steady_clock>;

}  // namespace taskmon

// The member functions. Under TASKMON_SEPARATE_COMPILATION they are compiled once for the steady clock and
// ManualClock (taskmon/separate_compilation.hpp); another clock needs taskmon/any_clock.hpp.
#if !defined(TASKMON_SEPARATE_COMPILATION)
#include <taskmon/detail/task_monitor_impl.hpp>
#endif
