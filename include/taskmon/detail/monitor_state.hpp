// taskmon — coroutine supervision for standalone Asio.
// SPDX-License-Identifier: MIT
//
// The shared state behind BasicTaskMonitor (internal; include <taskmon/task_monitor.hpp>).
#pragma once

#include <taskmon/task_monitor.hpp>

#include <taskmon/component_context.hpp>
#include <taskmon/component_group.hpp>
#include <taskmon/component_stats.hpp>
#include <taskmon/detail/component_lifecycle.hpp>
#include <taskmon/detail/event_batch.hpp>
#include <taskmon/detail/exit_outcome.hpp>
#include <taskmon/detail/group_engine.hpp>
#include <taskmon/detail/instance_exit.hpp>
#include <taskmon/detail/listener_registry.hpp>
#include <taskmon/detail/liveness_check.hpp>
#include <taskmon/detail/monitor_event_log.hpp>
#include <taskmon/detail/monitor_records.hpp>
#include <taskmon/detail/monitor_waiters.hpp>
#include <taskmon/detail/name_rules.hpp>
#include <taskmon/detail/restart_cause.hpp>
#include <taskmon/detail/restart_decision.hpp>
#include <taskmon/detail/strand_executor.hpp>
#include <taskmon/detail/thread_safety.hpp>
#include <taskmon/detail/waiter_list.hpp>
#include <taskmon/monitor_closed.hpp>
#include <taskmon/monitor_event.hpp>
#include <taskmon/restart_policy.hpp>

#include <asio/any_io_executor.hpp>
#include <asio/associated_executor.hpp>
#include <asio/async_result.hpp>
#include <asio/awaitable.hpp>
#include <asio/basic_waitable_timer.hpp>
#include <asio/bind_cancellation_slot.hpp>
#include <asio/bind_executor.hpp>
#include <asio/cancellation_signal.hpp>
#include <asio/co_spawn.hpp>
#include <asio/error.hpp>
#include <asio/io_context.hpp>
#include <asio/post.hpp>
#include <asio/strand.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/wait_traits.hpp>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cassert>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <tuple>
#include <typeinfo>
#include <utility>
#include <vector>

namespace taskmon {

namespace detail {

/// The state shared by a monitor and every callback it has outstanding. Kept alive by those callbacks, so a
/// monitor can be destroyed while its components still run.
///
/// Invariants (all guarded by mutex_):
/// - a component has at most one live instance (`instance`), and has one exactly while its lifecycle is live;
/// - its lifecycle changes only as is_allowed_transition() (detail/component_lifecycle.hpp) lists; it is
///   scheduled only between the decision to start it (restart, quarantine trial, a unit's turn) and its factory
///   call; a timer or post carrying an older restart_gen is stale and ignored;
/// - after closed_ is set no factory is called and no instance is started;
/// - a component leaves components_ only through remove_and_wait(), or (spawned) when its task ends; callbacks
///   hold it by shared_ptr, and one whose instance outlived its shutdown_timeout stays in detached_ until that
///   instance exits;
/// - a spawned component never has a factory call, a restart, a liveness record or a timer of its own, unless
///   something asks it to stop (its stop deadline);
/// - events get their sequence number under mutex_, in the order of the changes they report.
/// Timers, co_spawn completions, waiter lists and factory calls of restarts run on strand_; cancellation of an
/// instance is emitted on the component's strand (the pool strand its coroutine runs on), since
/// cancellation_signal is not thread-safe.
template <typename Clock>
class MonitorState : public std::enable_shared_from_this<MonitorState<Clock>> {
public:
    using clock = Clock;
    using time_point = typename Clock::time_point;
    using duration = typename Clock::duration;
    using Timer = typename MonitorRecords<Clock, MonitorState>::Timer;
    using WatchDeadlines = typename MonitorRecords<Clock, MonitorState>::WatchDeadlines;

    MonitorState(asio::any_io_executor executor, RestartPolicy policy, std::shared_ptr<spdlog::logger> logger,
                 RandomSource random, std::size_t strand_pool_size)
        : strand_pool_size_{strand_pool_size},
          executor_{std::move(executor)},
          strand_{make_strand_executor(executor_)},
          policy_{std::move(policy)},
          logger_{logger ? std::move(logger) : spdlog::default_logger()},
          random_{random ? std::move(random) : nondeterministic_random_source()},
          clock_origin_{Clock::now()},
          wall_origin_{std::chrono::system_clock::now()},
          close_timer_{strand_},
          watch_timer_{strand_} {
        warn_if_max_backoff_unreachable(policy_, "the TaskMonitor's default policy");
    }

    using Records = MonitorRecords<Clock, MonitorState>;
    using Liveness = typename Records::Liveness;
    using Instance = typename Records::Instance;
    using Component = typename Records::Component;
    using ComponentPtr = typename Records::ComponentPtr;
    using ComponentSet = typename Records::ComponentSet;
    using Member = typename Records::Member;
    using Group = typename Records::Group;
    using RestartUnit = typename Records::RestartUnit;

    /// Where close(), remove_and_wait() and async_wait_escalation() completions wait (detail/monitor_waiters.hpp).
    using CloseWaiters = detail::CloseWaiters;
    using RemoveWaiters = detail::RemoveWaiters;  // payload: a ComponentPtr
    using EscalationWaiters = detail::EscalationWaiters;

    using Events = EventBatch;
    using Listeners = ListenerRegistry<MonitorEvent>;

    // ---- public operations (any thread) -------------------------------------------------------------

    template <typename Factory>
    void set_restart_factories(std::map<std::string, Factory> factories);

    void register_task(const std::string& name, asio::awaitable<void> task);

    /// BasicTaskMonitor::spawn(), try_spawn() and their numbered forms (Mode): `task` runs as a component that is
    /// never restarted and leaves the monitor when it ends (see on_exit_spawned). Numbered, `name` is a prefix and
    /// the task's id completes it (the next id whose name is free). Bad input throws; a refusal (closed, name taken)
    /// throws from spawn() and spawn_numbered(), else it is returned. A refused task is destroyed after the lock.
    /// A template, so that spawn(), the hot path, compiles to its own checks alone.
    template <SpawnMode Mode>
    SpawnResult spawn_task(const std::string& name, asio::awaitable<void> task);

    template <typename Factory>
    void supervise(const std::string& name, Factory factory, std::optional<RestartPolicy> policy);

    void enable(const std::vector<std::string>& names);

    void disable(const std::vector<std::string>& names);

    void restart(const std::string& name);

    void reset(const std::string& name);

    void update_policy(const std::string& name, RestartPolicy policy);

    /// update_policy() with the component's current policy changed by `overrides`. The overrides are applied
    /// outside the lock (copying a classifier copies the user's callable), then installed only if the policy is
    /// still the one they were applied to; else applied again.
    void update_policy(const std::string& name, const PolicyOverrides& overrides);

    void supervise_group(const std::string& name, std::vector<GroupMember> members, const GroupPolicy& policy,
                         const std::string& parent);

    std::map<std::string, GroupStats> group_snapshot() const;

    /// Adds a listener (see BasicTaskMonitor::subscribe) and returns its id in listeners().
    std::uint64_t subscribe(MonitorEventListener listener);

    /// The listener registry; shared so that subscriptions can refer to it weakly.
    const std::shared_ptr<Listeners>& listeners() const noexcept { return listeners_; }

    std::map<std::string, ComponentStats> snapshot() const;

    /// close() for BasicTaskMonitor::close(): `waiter` (void(error_code), the error always empty) completes
    /// through its handler's associated executor, with post semantics, once the close is done. While it waits it
    /// is parked in close_waiters_, so the shutdown of the execution context destroys it (and the coroutine it
    /// resumes) like any pending operation.
    void async_close(typename CloseWaiters::Prepared waiter);

    /// remove_and_wait(), first half: validates (throws like every mutating call) and starts the removal.
    /// Returns the record for async_wait_removed().
    std::shared_ptr<void> begin_remove(const std::string& name);

    /// remove_and_wait(), second half: parks `waiter` (void(error_code)) until the component of `record`
    /// (from begin_remove) left the monitor. Never throws.
    void async_wait_removed(std::shared_ptr<void> record, typename RemoveWaiters::Prepared waiter);

    /// async_wait_escalation(): completes `waiter` (void(error_code, MonitorEvent)) with the oldest escalation
    /// not yet handed out, or with operation_aborted once close() finished and none is left.
    void async_wait_escalation(typename EscalationWaiters::Prepared waiter);

    /// Starts closing without waiting (destruction without close()). Warns when instances still run and close()
    /// was never called: what they use (declared after the monitor, say) may be destroyed before they end.
    void close(std::nullptr_t) {
        std::size_t running = 0;
        {
            MutexLock lock{mutex_};
            if (!closed_) {
                for (const auto* set : {&components_, &detached_}) {  // detached_: removed, still running
                    for (const auto& c : *set) {
                        running += c->live() ? 1 : 0;
                    }
                }
            }
        }
        if (running > 0) {
            try {
                logger_->warn(
                    "TaskMonitor destroyed without close(): its running instances are cancelled and not "
                    "waited for; what they use must outlive them (co_await close() first) running={}",
                    running);
            } catch (...) {  // NOLINT(bugprone-empty-catch): a warning must not break destruction
            }
        }
        close_then([](MonitorState&) {});
    }

    /// Starts closing (idempotent), then calls `then(*this)` on strand_.
    template <typename Then>
    void close_then(Then then);

    const asio::any_io_executor& executor() const noexcept { return executor_; }
    const RestartPolicy& policy() const noexcept { return policy_; }

    /// Liveness::on_ready: posts the readiness of the instance owning `liveness` to strand_ (compared by
    /// identity: the task id of a factory that threw is reused).
    void notify_ready(const std::weak_ptr<Component>& component, const Liveness* liveness);

private:
    friend struct InstanceExit<MonitorState>;

    struct Reservation {
        std::uint64_t id = 0;
        std::shared_ptr<Liveness> liveness;
    };

    static std::int64_t now_ns() noexcept { return MonitorRecords<Clock, MonitorState>::now_ns(); }

    static time_point from_ns(std::int64_t ns) {
        return time_point{std::chrono::duration_cast<duration>(std::chrono::nanoseconds{ns})};
    }

    static bool has_liveness(const RestartPolicy& p) {
        return p.watchdog_timeout > std::chrono::milliseconds::zero() ||
               p.startup_timeout > std::chrono::milliseconds::zero();
    }

    static std::shared_ptr<const ComponentFactory> make_factory(RestartFactory factory) {
        return std::make_shared<const ComponentFactory>(ComponentFactory{std::move(factory)});
    }

    static std::shared_ptr<const ComponentFactory> make_factory(ContextFactory factory) {
        return std::make_shared<const ComponentFactory>(ComponentFactory{std::move(factory)});
    }

    static ComponentContext context_of(const Reservation& r) {
        return r.liveness ? ComponentContextAccess::make(r.liveness) : ComponentContext{};
    }

    // ---- validation (throws before anything changes) -------------------------------------------------

    /// Why a significant group member may not be permanent (Erlang/OTP refuses it the same way): a permanent member
    /// is restarted when it returns, so it never ends its group that way; it would end it only by giving up,
    /// turning a failure into a clean shutdown.
    static constexpr const char* permanent_significant =
        "is significant and permanent: a permanent member is restarted when it returns, so it can end its group "
        "only by giving up; make it transient (ends the group when it returns) or use GiveUpMode::escalate";

    static constexpr const char* empty_awaitable = "an empty asio::awaitable<void> (default-constructed or moved from)";

    /// An empty asio::awaitable would crash co_spawn: refused at the call.
    static void check_task(const asio::awaitable<void>& task, const char* what, const std::string& name);

    /// The reason given when `whose` (a factory of component `name`) returned an empty asio::awaitable.
    static std::string empty_result(const std::string& name, std::string_view whose);

    void check_open(const char* what) const TASKMON_REQUIRES(mutex_);

    /// A component removed while its instance ignored cancellation keeps its name until that instance exits.
    void check_not_detached(const std::string& name, const std::string& what) const TASKMON_REQUIRES(mutex_);

    void check_not_registered(const std::string& name, const char* what) const TASKMON_REQUIRES(mutex_);

    /// update_policy(): validates `policy` and installs it, unless `expected` is given and the component's own
    /// policy is no longer *expected (then false, nothing changed).
    bool replace_policy(const std::string& name, RestartPolicy policy,
                        const std::shared_ptr<const RestartPolicy>* expected);

    /// No component, group or removed instance still running has `name`.
    [[nodiscard]] bool name_free(std::string_view name) const TASKMON_REQUIRES(mutex_);

    void check_known(const std::vector<std::string>& names, const char* what) const TASKMON_REQUIRES(mutex_);

    /// The component `name` for a mutating call `what`: throws once closed, for an unknown name, or for a
    /// component being removed.
    const ComponentPtr& open_component(const std::string& name, const char* what) const TASKMON_REQUIRES(mutex_);

    void check_not_removing(const std::string& name, const char* what) const TASKMON_REQUIRES(mutex_);

    void warn_if_max_backoff_unreachable(const RestartPolicy& p, const std::string& whose) const noexcept;

    // ---- helpers (mutex_ held) -----------------------------------------------------------------------

    Component& at(const std::string& name) TASKMON_REQUIRES(mutex_) {
        return **components_.find(std::string_view{name});
    }

    ComponentPtr make_component(std::string name) TASKMON_REQUIRES(mutex_) {
        return std::make_shared<Component>(std::move(name), strand_for_next_component());
    }

    void insert(const ComponentPtr& c) TASKMON_REQUIRES(mutex_) { components_.insert(c); }

    ComponentPtr find_or_create(const std::string& name) TASKMON_REQUIRES(mutex_);
    /// Gives `c` the factory `f`, keeping the one its live instance came from until that instance exits.
    static void replace_factory(Component& c, std::shared_ptr<const ComponentFactory> f) {
        if (c.live() && c.live()->from_factory) {
            c.edit_restarts().retired_factory = std::move(c.factory);
            c.live()->from_factory = false;
        }
        c.factory = std::move(f);
    }

    /// Round-robin over a pool of strand_pool_size_ strands, created as first needed. With a pool size of 0, one
    /// strand per component: the strand of a component that left the monitor is given to the next one, so a
    /// server spawning a task per connection keeps as many strands as it has components at once.
    const asio::any_io_executor& strand_for_next_component() TASKMON_REQUIRES(mutex_);

    /// `c` left the monitor for good (no instance will run on its strand again): with a strand per component, its
    /// strand goes to the next component made.
    void release_strand(const Component& c) TASKMON_REQUIRES(mutex_);

    const RestartPolicy& policy_of(const Component& c) const { return c.own_policy ? *c.own_policy : policy_; }

    /// Saturates: extend_deadline(hours::max()) reaches 292 years past the epoch, beyond system_clock from today.
    std::chrono::system_clock::time_point wall(time_point t) const TASKMON_REQUIRES(mutex_) {
        const auto since = std::chrono::duration_cast<std::chrono::system_clock::duration>(t - clock_origin_);
        const auto room = std::chrono::system_clock::time_point::max() - wall_origin_;
        return since > room ? std::chrono::system_clock::time_point::max() : wall_origin_ + since;
    }

    ComponentStats stats_of(const Component& c, time_point now) const TASKMON_REQUIRES(mutex_);

    /// The event `kind` of `c`, numbered and stamped with `now`, with the component's counters as they are.
    /// Also folds the event into the cause the component's next `restarted` reports (detail/restart_cause.hpp).
    MonitorEvent event(MonitorEventKind kind, Component& c, time_point now) TASKMON_REQUIRES(mutex_);

    /// Whether an event whose line is logged at `level` reaches anyone: a listener receives every event, the logger
    /// the lines at its level. Routine events of spawned tasks (3 per connection of a server: about a fifth of a
    /// spawn()'s instructions) and `removed` are made only when it does; every other event always is.
    bool observed(spdlog::level::level_enum level) const noexcept {
        return !listeners_->empty() || logger_->should_log(level) || logger_->should_backtrace();
    }

    /// The event `kind` of group `g`.
    MonitorEvent group_event(MonitorEventKind kind, const Group& g, time_point now) TASKMON_REQUIRES(mutex_);

    /// Reserves the next instance of `c`: its task id and, if it takes a context or runs under a liveness
    /// policy, its liveness record (made before the factory is called, which receives its context).
    Reservation reserve_instance(const ComponentPtr& c, const ComponentFactory* factory = nullptr,
                                 const RestartPolicy* policy = nullptr) TASKMON_REQUIRES(mutex_);

    /// Gives back a reservation whose factory threw (its id, if no later one was taken).
    void release(const Reservation& r) TASKMON_REQUIRES(mutex_);

    /// Starts a new instance of `c` on its strand. Its exit is reported to on_exit on strand_.
    void spawn(const ComponentPtr& cp, asio::awaitable<void> task, std::shared_ptr<const ComponentFactory> origin,
               Reservation reservation, Events& events, bool is_restart = false) TASKMON_REQUIRES(mutex_);

    /// Asks the live instance (if any) to stop; the exit arrives at on_exit. Outside close(), a stop that is
    /// not confirmed within shutdown_timeout is reported (see evaluate_watch).
    void request_stop(const ComponentPtr& cp, StopCause cause) TASKMON_REQUIRES(mutex_);

    /// Makes `c` (no live instance) start from its factory now, as a manual restart.
    void start_now(const ComponentPtr& cp) TASKMON_REQUIRES(mutex_);

    /// What a decision under mutex_ needs from user code, which runs on strand_ outside mutex_ (the policy's
    /// classify_failure, the RandomSource): the decision is taken again, under the lock, once they are supplied.
    struct UserInputs {
        std::optional<FailureClass> cls;  // the failure's class
        bool drawn = false;               // a jitter draw was taken:
        std::optional<double> draw;       // its value (empty: the source failed; the backoff is then nominal)
    };

    struct Needs {
        bool cls = false;
        bool draw = false;
        explicit operator bool() const noexcept { return cls || draw; }
    };

    /// What deciding the failure of `c` (class `cls`, if known) needs that `inputs` lacks (mutex_ held). The
    /// class is needed only from a classifier, a draw only on the way to a jittered backoff.
    Needs failure_needs(const Component& c, std::optional<FailureClass> cls, const UserInputs& inputs) const
        TASKMON_REQUIRES(mutex_);

    /// What deciding the exit of `instance` of `c` needs from user code (mutex_ held), branch by branch of
    /// on_exit(): a failure's class and draw, the draw of a liveness trip's restart (classified when it tripped),
    /// the draw of a permanent component's restart after it returned.
    Needs exit_needs(const Component& c, const Instance& instance, const ExitOutcome& outcome,
                     const UserInputs& inputs) const TASKMON_REQUIRES(mutex_);

    /// Calls the user code `needs` names, for component `c`, outside mutex_ (on strand_). `policy` is held by the
    /// caller: update_policy() may replace the component's own policy meanwhile.
    void supply(const Needs& needs, const RestartPolicy& policy, const Component& c, const std::exception_ptr& error,
                UserInputs& inputs) const noexcept;

    /// The policy of `c`, held (mutex_ held): the monitor's own lives as long as the state.
    std::shared_ptr<const RestartPolicy> policy_handle(const Component& c) const TASKMON_REQUIRES(mutex_);

    /// A draw from the RandomSource for the jitter of component `name`'s next backoff (on strand_, outside
    /// mutex_; nothing when its policy has no jitter). A source that throws or returns NaN is logged; that restart
    /// then waits its nominal backoff.
    std::optional<double> draw(const RestartPolicy& policy, const std::string& name) const noexcept;

    /// The facts route_failure() reads of `c` (mutex_ held).
    FailureFacts failure_facts(const Component& c) const TASKMON_REQUIRES(mutex_);

    /// Forgets the restart history: window, backoff, quarantine.
    static void clear_budget(Component& c);

    /// Drops a scheduled restart (backoff, manual or quarantine trial) of `c`.
    void cancel_pending_restart(const ComponentPtr& cp, ComponentState new_state, Events& events)
        TASKMON_REQUIRES(mutex_);

    /// Removes `c` from components_ (remove_and_wait): at its exit, or at its shutdown_timeout if it outlived
    /// it (then it waits in detached_ for its exit).
    void erase(Component& c, bool unresponsive, Events& events) TASKMON_REQUIRES(mutex_);

    /// Starts the scheduled restart of `c` after `delay` (on strand_).
    void schedule_start(const ComponentPtr& cp, std::chrono::nanoseconds delay) TASKMON_REQUIRES(mutex_);

    /// How `error` counts under `policy` (on strand_, outside mutex_: the classifier is user code). A classifier
    /// that throws is logged; the failure then counts.
    FailureClass classify(const RestartPolicy& policy, const std::string& name,
                          const std::exception_ptr& error) const noexcept;

    /// What follows a failure (exception, unexpected cancellation, factory throw, liveness timeout) already
    /// counted in failure_count and reported: nothing, a restart with backoff, or a give-up. `inputs` holds the
    /// jitter draw failure_needs() asked for.
    void after_failure(const ComponentPtr& cp, const std::string& reason, FailureClass cls, const UserInputs& inputs,
                       time_point now, Events& events) TASKMON_REQUIRES(mutex_);

    /// The restart history of `c` as decide_restart() reads it.
    static RestartHistory<time_point> history_of(const Component& c) {
        return {std::span<const time_point>{c.restarts().window}, c.restarts().consecutive, c.restarts().last_delay,
                c.restarts().quarantine_cooldown, c.in_trial};
    }

    /// Applies decide_restart() to a failure (or a permanent-type return) of `c`: a backoff (which its group may
    /// take over), a give-up when the sliding window is full, or, after a failed quarantine trial, the breaker
    /// reopened. The restart's time joins the window when its factory is called.
    void schedule_restart(const ComponentPtr& cp, const std::string& reason, time_point now, bool counted,
                          const UserInputs& inputs, Events& events) TASKMON_REQUIRES(mutex_);

    /// Applies a give-up decision (its limit reached, or a fatal failure): stop, escalate, or quarantine.
    void give_up(const ComponentPtr& cp, const RestartDecision<time_point>& decision, const std::string& reason,
                 time_point now, Events& events) TASKMON_REQUIRES(mutex_);

    /// Opens (or reopens, with the cooldown doubled) the circuit breaker: a trial instance follows the cooldown.
    void quarantine(const ComponentPtr& cp, const QuarantineUntil<time_point>& q, const std::string& reason,
                    time_point now, Events& events) TASKMON_REQUIRES(mutex_);

    /// The trial stayed ready for reset_backoff_after: the breaker closes and the budget is fresh.
    void close_breaker(Component& c, time_point now, Events& events) TASKMON_REQUIRES(mutex_);

    /// Schedules a liveness / stop-deadline / probation check of `c` on strand_.
    void post_watch(const ComponentPtr& cp);

    /// When the live instance last became ready (its start if it needs no ready()); empty if not ready.
    static std::optional<time_point> ready_time(const Instance& i);
    /// What the liveness check reads of `c`'s live instance (there must be one).
    static LivenessFacts<time_point> liveness_facts(const Component& c);

    /// What evaluate_watch() did: when to look again, or which missed deadline it needs classified first.
    struct WatchStep {
        std::optional<time_point> next;  // nothing: no deadline pending
        LivenessMiss classify = LivenessMiss::none;
    };

    /// A missed liveness deadline, classified outside mutex_.
    struct ClassifiedMiss {
        LivenessMiss miss = LivenessMiss::none;
        FailureClass cls = FailureClass::counted;
    };

    static const char* miss_reason(LivenessMiss miss) noexcept {
        return miss == LivenessMiss::startup ? "startup timeout" : "watchdog timeout";
    }

    /// Applies every deadline of `c`'s live instance that has passed (liveness trip, unresponsive stop, breaker
    /// close; mutex_ held) and says when to look again. A missed liveness deadline is applied only with its class
    /// (`classified`); without it nothing changes and the step asks for it.
    WatchStep evaluate_watch(const ComponentPtr& cp, time_point now, const ClassifiedMiss& classified, Events& events)
        TASKMON_REQUIRES(mutex_);

    /// A liveness deadline (`timeout`) passed: the instance is cancelled and charged with a failure of class `cls`.
    void trip(const ComponentPtr& cp, LivenessMiss miss, std::chrono::nanoseconds timeout, FailureClass cls,
              time_point now, Events& events) TASKMON_REQUIRES(mutex_);

    void report_unresponsive(Component& c, time_point now, Events& events) TASKMON_REQUIRES(mutex_);

    /// close() waited for `i` as long as it waits for it: close can complete while it still runs.
    void waited_in_close(Instance& i) TASKMON_REQUIRES(mutex_);

    // ---- groups --------------------------------------------------------------------------------------

    /// The group engine's handle on the core: the calls GroupEngine may make (detail/group_engine.hpp lists them).
    /// Every call into engine_ holds mutex_ (engine_ is guarded by it, and clang checks that), and the engine calls
    /// these only from inside such a call: they need no analysis of their own.
    class UnitPort {
    public:
        explicit UnitPort(MonitorState& s) : s_{&s} {}
        bool closing() const TASKMON_NO_THREAD_SAFETY_ANALYSIS { return s_->closed_; }
        RestartType restart_type(const Component& c) const { return s_->policy_of(c).restart_type; }
        void take_over(const ComponentPtr& cp) const TASKMON_NO_THREAD_SAFETY_ANALYSIS;
        void stop(const ComponentPtr& cp) const TASKMON_NO_THREAD_SAFETY_ANALYSIS {
            s_->request_stop(cp, s_->closed_ ? StopCause::close : StopCause::group);
        }
        void report_unresponsive(Component& c, time_point now, Events& events) const TASKMON_NO_THREAD_SAFETY_ANALYSIS {
            s_->report_unresponsive(c, now, events);
        }
        std::uint32_t schedule_start(const ComponentPtr& cp) const;
        static std::optional<time_point> ready_time(const Instance& i) { return MonitorState::ready_time(i); }
        MonitorEvent group_event(MonitorEventKind kind, const Group& g,
                                 time_point now) const TASKMON_NO_THREAD_SAFETY_ANALYSIS {
            return s_->group_event(kind, g, now);
        }
        void escalate(MonitorEvent e, Events& events) const TASKMON_NO_THREAD_SAFETY_ANALYSIS {
            s_->escalate(std::move(e), events);
        }
        void resume(std::shared_ptr<RestartUnit> unit) const;
        void retire(std::shared_ptr<RestartUnit> unit) const;

    private:
        MonitorState* s_;
    };

    using Engine = GroupEngine<Clock, MonitorState, UnitPort>;

    /// Numbers `e` (an `escalated` event), reports it and queues it for async_wait_escalation().
    void escalate(MonitorEvent e, Events& events) TASKMON_REQUIRES(mutex_);

    /// Runs unit `u` as far as it can go now (strand_): a stop requested, a component started, a timer armed.
    void advance(const std::shared_ptr<RestartUnit>& u);

    // ---- completion handlers (strand_) ---------------------------------------------------------------

    /// Checks the liveness, stop deadline or probation of `cp` now and schedules its next check.
    void check_watch(const ComponentPtr& cp);
    /// check_watch() without re-arming the watch timer (the caller does, once for many).
    void update_watch(const ComponentPtr& cp);
    /// Nothing of `cp` to watch until its next instance (allocates nothing: called under mutex_).
    void disarm_watch(const ComponentPtr& cp) noexcept;
    /// Points the watch timer at the earliest scheduled check (cancels it when none is).
    void arm_watch_timer();
    /// The watch timer fired: runs every check that is due.
    void on_watch_timer();

    void on_ready(const ComponentPtr& cp, const Liveness* liveness);

    void start_restart(const ComponentPtr& cp, std::uint64_t gen, bool first_start = false);

    void on_exit(const ComponentPtr& cp, std::exception_ptr error);

    /// The `stopped` event of its last instance, with the reason if it threw while being stopped (also kept in
    /// last_error).
    MonitorEvent stopped_event(Component& c, const ExitOutcome& outcome, time_point now) TASKMON_REQUIRES(mutex_);

    /// An instance the monitor asked to stop (or any exit once closing or removing) ended (mutex_ held): what
    /// follows depends on who asked — a group unit, restart(), a liveness trip, or a stop for good.
    void after_requested_stop(const ComponentPtr& cp, const Instance& instance, const ExitOutcome& outcome,
                              const UserInputs& inputs, time_point now, Events& events) TASKMON_REQUIRES(mutex_);

    /// An instance returned on its own (mutex_ held): a permanent component restarts, others complete.
    void after_return(const ComponentPtr& cp, const UserInputs& inputs, time_point now, Events& events)
        TASKMON_REQUIRES(mutex_);

    /// The task of a spawned component ended (mutex_ held): one event says how — completed, stopped (close,
    /// remove_and_wait, disable; with the reason if it threw meanwhile), or failed / cancelled_unexpectedly
    /// (counted in failure_count, never restarted) — then it leaves components_ (`removed`), its name free again.
    void on_exit_spawned(Component& c, const Instance& instance, const ExitOutcome& outcome, time_point now,
                         Events& events) TASKMON_REQUIRES(mutex_);

    /// Completes the remove_and_wait() calls whose component left components_: without error once its
    /// instance exited, with timed_out if it outlived its shutdown_timeout.
    void complete_removals();

    /// Hands queued escalations to waiting async_wait_escalation() calls, oldest first.
    void deliver_escalations();

    void begin_close();

    void arm_close_timer(time_point at);

    /// A deadline of close() passed: the instances outside groups whose own deadline it was are reported (or, if
    /// they were reported before, no longer waited for); at the end of close()'s longest wait everything still
    /// running is reported and the close completes.
    void on_close_timer();

    void maybe_finish_close();

    void finish_close();

    /// Logs `events`, then hands them to the listeners (on this thread, outside mutex_). Never throws: spdlog
    /// passes on what a sink throws unless it is a std::exception (and an error handler may throw), a listener
    /// may throw anything, and neither must break supervision or leave close() hanging.
    void publish(std::span<const MonitorEvent> events) const noexcept;

    std::size_t strand_pool_size_;
    asio::any_io_executor executor_;
    asio::any_io_executor strand_;  // a strand of executor_ (make_strand_executor)
    RestartPolicy policy_;
    std::shared_ptr<spdlog::logger> logger_;
    RandomSource random_;  // called on strand_ only (draw), outside mutex_
    time_point clock_origin_;
    std::chrono::system_clock::time_point wall_origin_;
    std::shared_ptr<Listeners> listeners_ = std::make_shared<Listeners>();

    mutable Mutex mutex_;
    ComponentSet components_ TASKMON_GUARDED_BY(mutex_);
    // Removed, but their instance outlived shutdown_timeout: the name stays taken until that instance exits, so
    // that no two live instances ever share a name.
    ComponentSet detached_ TASKMON_GUARDED_BY(mutex_);
    Engine engine_ TASKMON_GUARDED_BY(mutex_){UnitPort{*this}};  // the groups, and the units that drive them
    // Components' strands, type-erased once: copies of an any_io_executor share its heap-held strand, where each
    // conversion from a strand<> would allocate. Only grows, so references stay valid.
    std::deque<asio::any_io_executor> strands_ TASKMON_GUARDED_BY(mutex_);
    std::vector<const asio::any_io_executor*> free_strands_
        TASKMON_GUARDED_BY(mutex_);  // strand_pool_size_ 0: strands no component uses
    std::size_t next_strand_ TASKMON_GUARDED_BY(mutex_) = 0;
    std::uint64_t next_task_id_ TASKMON_GUARDED_BY(mutex_) = 0;
    std::uint64_t next_sequence_ TASKMON_GUARDED_BY(mutex_) = 0;
    std::size_t live_instances_ TASKMON_GUARDED_BY(mutex_) = 0;  // components with a live instance
    std::size_t waited_in_close_ TASKMON_GUARDED_BY(mutex_) =
        0;                                                 // live instances that close() need not wait for any longer
    std::size_t starting_ TASKMON_GUARDED_BY(mutex_) = 0;  // components whose factory is being called
    std::vector<MonitorEvent> escalations_ TASKMON_GUARDED_BY(mutex_);  // not yet handed to async_wait_escalation()
    bool remove_done_ TASKMON_GUARDED_BY(mutex_) = false;  // a removal finished: complete_removals() has work
    bool closed_ TASKMON_GUARDED_BY(mutex_) = false;

    // strand_ only
    Timer close_timer_;
    // One timer for every component's liveness check, at the earliest of them (WatchSchedule says why);
    // watch_timer_at_ is where its pending wait expires (none: no wait).
    Timer watch_timer_;
    WatchDeadlines watches_;
    std::optional<time_point> watch_timer_at_;
    // The deadlines of instances outside groups (ascending) and the end of close()'s longest wait.
    std::vector<std::pair<time_point, ComponentPtr>> close_deadlines_;
    std::size_t next_close_deadline_ = 0;
    time_point close_end_{};
    bool closing_ = false;  // also read under mutex_
    bool close_completed_ = false;
    CloseWaiters close_waiters_;  // completions of close(); destroyed unrun at context shutdown
    RemoveWaiters remove_waiters_;
    EscalationWaiters escalation_waiters_;
};

}  // namespace detail

}  // namespace taskmon

// The member functions, by responsibility (as Asio keeps its definitions in impl/).
#include <taskmon/detail/impl/monitor_state_close.hpp>
#include <taskmon/detail/impl/monitor_state_failures.hpp>
#include <taskmon/detail/impl/monitor_state_groups.hpp>
#include <taskmon/detail/impl/monitor_state_liveness.hpp>
#include <taskmon/detail/impl/monitor_state_operations.hpp>
#include <taskmon/detail/impl/monitor_state_records.hpp>
