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
#include <taskmon/detail/exit_outcome.hpp>
#include <taskmon/detail/group_strategy.hpp>
#include <taskmon/detail/listener_registry.hpp>
#include <taskmon/detail/liveness_check.hpp>
#include <taskmon/detail/monitor_event_log.hpp>
#include <taskmon/detail/monitor_waiters.hpp>
#include <taskmon/detail/name_rules.hpp>
#include <taskmon/detail/restart_cause.hpp>
#include <taskmon/detail/restart_decision.hpp>
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

/// Why the monitor asked an instance to stop.
enum class StopCause { none, restart, disable, close, remove, liveness, group };

/// What a component's instances are made from: a plain factory or one that takes the instance's context.
struct ComponentFactory {
    RestartFactory plain;
    ContextFactory contextual;

    asio::awaitable<void> operator()(ComponentContext context) const {
        return contextual ? contextual(std::move(context)) : plain();
    }
};

/// A strand of `executor`, type-erased. On an io_context's own executor the strand is made of that concrete
/// executor: a strand<io_context::executor_type> (24 bytes) fits any_io_executor's small-object buffer, so the
/// executor copies Asio makes per coroutine and per handler (work tracking) never allocate, where a
/// strand<any_io_executor> (72 bytes) is copied to the heap each time.
inline asio::any_io_executor make_strand_executor(const asio::any_io_executor& executor) {
    using IoExecutor = asio::io_context::executor_type;
    if (executor.target_type() == typeid(IoExecutor)) {
        return asio::make_strand(*executor.target<IoExecutor>());
    }
    return asio::make_strand(executor);
}

/// Whether the calling thread runs a handler of `strand` (a strand made by make_strand_executor). For the debug
/// assertions that handlers meant for one strand run on it; an executor of another type answers true.
inline bool running_in_strand(const asio::any_io_executor& strand) noexcept {
    if (const auto* s = strand.target<asio::strand<asio::io_context::executor_type>>()) {
        return s->running_in_this_thread();
    }
    if (const auto* s = strand.target<asio::strand<asio::any_io_executor>>()) {
        return s->running_in_this_thread();
    }
    return true;
}

/// A string that costs one pointer until it is first set (most components never fail).
class LazyText {
public:
    LazyText& operator=(std::string text) {
        if (text_) {
            *text_ = std::move(text);
        } else {
            text_ = std::make_unique<std::string>(std::move(text));
        }
        return *this;
    }

    [[nodiscard]] const std::string& str() const noexcept {
        static const std::string empty;
        return text_ ? *text_ : empty;
    }

private:
    std::unique_ptr<std::string> text_;
};

/// The most restarts a window remembers under unlimited_restart_attempts (restarts_in_window saturates there).
inline constexpr std::size_t unlimited_window_memory = 10'000;

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
    using Timer = asio::basic_waitable_timer<Clock, asio::wait_traits<Clock>, asio::any_io_executor>;

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
          close_timer_{strand_} {
        warn_if_max_backoff_unreachable(policy_, "the TaskMonitor's default policy");
    }

    struct Component;
    struct Group;
    struct RestartUnit;

    /// An instance's liveness record (see InstanceLiveness); made only for instances that take a context or
    /// run under a liveness policy.
    class Liveness final : public InstanceLiveness {
    public:
        Liveness(std::uint64_t id, std::uint64_t generation, std::int64_t started, std::weak_ptr<MonitorState> state,
                 std::weak_ptr<Component> component) noexcept
            : InstanceLiveness{id, generation, &now_ns, started},
              state_{std::move(state)},
              component_{std::move(component)} {}

        using InstanceLiveness::mark_ready;

    private:
        void on_ready() noexcept override {
            if (auto state = state_.lock()) {
                try {
                    state->notify_ready(component_, this);
                } catch (...) {  // NOLINT(bugprone-empty-catch): post allocation failed; the watch still sees it
                }
            }
        }

        std::weak_ptr<MonitorState> state_;
        std::weak_ptr<Component> component_;
    };

    struct Instance {
        Instance(std::uint64_t i, time_point s, std::shared_ptr<const ComponentFactory> f, std::shared_ptr<Liveness> l)
            : id{i}, started{s}, origin{std::move(f)}, liveness{std::move(l)} {}
        std::uint64_t id;
        time_point started;
        // The factory this instance came from: a coroutine lambda's frame refers to the closure object, so the
        // closure must outlive the instance even if the factory is replaced.
        std::shared_ptr<const ComponentFactory> origin;
        std::shared_ptr<Liveness> liveness;  // null: ready at start, nothing to watch
        time_point stop_deadline{};          // a requested stop is reported unresponsive after it
        StopCause stop = StopCause::none;
        bool tripped_startup = false;  // StopCause::liveness: which deadline it missed
        bool reported_unresponsive = false;
        bool reported_in_close = false;  // close() waited for it in full and need not wait any longer
        bool ready_reported = false;     // its `ready` event was published
        FailureClass trip_class = FailureClass::counted;
        asio::cancellation_signal signal;
    };

    struct Component {
        Component(std::string n, const asio::any_io_executor& s) : name{std::move(n)}, strand{&s} {}
        std::string name;
        const asio::any_io_executor* strand;  // the pool strand its instances run on (strands_ never shrinks)
        std::shared_ptr<const ComponentFactory> factory;
        std::shared_ptr<const RestartPolicy> own_policy;  // null: the monitor's policy
        std::unique_ptr<Timer> timer;                     // backoff and quarantine cooldown; strand_ only
        std::unique_ptr<Timer> watch_timer;               // liveness, stop deadlines, trial probation; strand_ only
        std::shared_ptr<Instance> instance;
        // When the counted automatic restarts of the last restart window happened (their factory was called),
        // oldest first; at most max_restart_attempts long. (A vector, not a deque: an empty libstdc++ deque
        // already allocates ~600 bytes.)
        std::vector<time_point> window;
        LazyText last_error;
        std::optional<time_point> next_restart;
        std::optional<RestartReason> restart_cause;  // what its next `restarted` reports (next_restart_cause)
        time_point last_restart{};                   // valid when restart_count > 0
        std::chrono::nanoseconds last_delay{};
        std::chrono::nanoseconds quarantine_cooldown{};
        std::uint32_t restart_gen = 0;  // compared for equality only: wrapping is harmless
        std::uint64_t task_id = 0;
        std::uint32_t generation = 0;
        int restart_count = 0;
        int failure_count = 0;
        int consecutive = 0;                                 // k of the backoff formula
        int trials = 0;                                      // quarantine trials since the breaker last closed
        ComponentState state = ComponentState::not_started;  // as reported (ComponentStats::state)
        Lifecycle lifecycle = Lifecycle::idle;               // what the monitor does with it
        bool registered = false;
        bool enabled = false;
        bool manual_pending = false;   // the scheduled restart was requested by restart() or reset()
        bool restart_counted = false;  // the scheduled restart joins `window` when it happens (see schedule_restart)
        bool task_cancelled = false;
        bool in_trial = false;  // the live instance is a quarantine trial
        bool removing = false;  // remove_and_wait() was called
        bool removed = false;   // left components_
        bool spawned = false;   // spawn(): leaves components_ when its task ends, never restarted
        // Groups (supervise_group): the group it belongs to, and the unit driving it through a group restart,
        // an ordered start or stop (while `unit` is set, the unit alone starts it: no restart of its own).
        Group* group = nullptr;
        std::shared_ptr<RestartUnit> unit;
        // A one_for_one member restarting on its own: its scheduled restart also counts against the group's
        // max_restarts (with the group's budget then) when it happens.
        std::optional<std::uint32_t> counted_in_group;
        bool significant = false;
        bool drive_restart = false;  // in `unit`: to be started again (else kept stopped)
        bool unit_started = false;   // in `unit`: started by it already
    };
    using ComponentPtr = std::shared_ptr<Component>;

    /// Where close(), remove_and_wait() and async_wait_escalation() completions wait (detail/monitor_waiters.hpp).
    using CloseWaiters = detail::CloseWaiters;
    using RemoveWaiters = detail::RemoveWaiters;  // payload: a ComponentPtr
    using EscalationWaiters = detail::EscalationWaiters;

    /// A member of a group: a component or a nested group.
    struct Member {
        ComponentPtr component;
        Group* group = nullptr;
        [[nodiscard]] const std::string& name() const { return component ? component->name : group->name; }
    };

    /// A group of supervise_group(). Groups are never removed: they live as long as the state.
    struct Group {
        std::string name;
        GroupPolicy policy;
        Group* parent = nullptr;
        std::vector<Member> members;     // start order
        std::vector<time_point> window;  // when its counted restarts happened, oldest first (policy.max_restarts)
        GroupState state = GroupState::starting;
        int restart_count = 0;
        int pending_restarts = 0;  // counted restarts decided, not yet happened (their unit has not started yet)
        std::uint32_t budget = 0;  // which budget they count against: a fresh budget forgets them
    };

    /// One ordered stop-then-start of some components of one tree: a group's first start, a group restart, an
    /// auto_shutdown, a top-level give-up, or close(). It stops the components it drives that are not yet
    /// restarted in reverse tree order (each waited for up to its shutdown_timeout), waits until resume_at,
    /// then starts those to restart in tree order (each after the one before is ready). A failure among them
    /// makes a new unit that absorbs this one (`merged`), so a component is driven by one unit at most.
    struct RestartUnit {
        enum class Phase { stopping, waiting, starting };
        explicit RestartUnit(Group& r) : root{&r} {}
        Group* root;
        Phase phase = Phase::stopping;
        time_point resume_at{};
        std::unique_ptr<Timer> timer;                        // stop deadlines and the backoff; strand_ only
        std::vector<Group*> starting, restarting, shutting;  // groups whose state it settles when done
        // Groups whose restart by this unit counts against their max_restarts (with the budget it counts
        // against): it joins their window when the unit starts its members.
        std::vector<std::pair<Group*, std::uint32_t>> counted;
        bool merged = false;
    };

    using Events = std::vector<MonitorEvent>;
    using Listeners = ListenerRegistry<MonitorEvent>;

    // ---- public operations (any thread) -------------------------------------------------------------

    template <typename Factory>
    void set_restart_factories(std::map<std::string, Factory> factories) {
        for (const auto& [name, factory] : factories) {
            check_name(name, "set_restart_factories");
            if (!factory) {
                throw std::invalid_argument("set_restart_factories: factory of component '" + name + "' is empty");
            }
        }
        MutexLock lock{mutex_};
        check_open("set_restart_factories");
        for (const auto& [name, factory] : factories) {
            check_not_detached(name, "set_restart_factories");
        }
        for (auto& [name, factory] : factories) {
            find_or_create(name)->factory = make_factory(std::move(factory));
        }
    }

    void register_task(const std::string& name, asio::awaitable<void> task) {
        check_name(name, "register_task");
        check_task(task, "register_task", name);
        Events events;
        {
            MutexLock lock{mutex_};
            check_open("register_task");
            check_not_registered(name, "register_task");
            auto c = find_or_create(name);
            c->registered = true;
            spawn(c, std::move(task), nullptr, reserve_instance(c), events);
        }
        publish(events);
    }

    /// BasicTaskMonitor::spawn(): `task` runs as a component that is never restarted and leaves the monitor
    /// when it ends (see on_exit_spawned).
    void spawn_task(const std::string& name, asio::awaitable<void> task) {
        check_name(name, "spawn");
        check_task(task, "spawn", name);
        Events events;
        {
            MutexLock lock{mutex_};
            check_open("spawn");
            check_not_detached(name, "spawn");
            if (components_.find(std::string_view{name}) != components_.end()) {
                throw std::invalid_argument("spawn: duplicate component name '" + name + "'");
            }
            if (groups_.count(name) != 0) {
                throw std::invalid_argument("spawn: '" + name + "' is the name of a group");
            }
            auto c = make_component(name);
            c->registered = true;
            c->spawned = true;
            insert(c);
            Reservation reservation;  // no liveness record: a spawned task has no context to heartbeat with
            reservation.id = ++next_task_id_;
            spawn(c, std::move(task), nullptr, std::move(reservation), events);
        }
        publish(events);
    }

    template <typename Factory>
    void supervise(const std::string& name, Factory factory, std::optional<RestartPolicy> policy) {
        check_name(name, "supervise");
        if (!factory) {
            throw std::invalid_argument("supervise: factory of component '" + name + "' is empty");
        }
        if (policy) {
            validate(*policy, "supervise: policy of component '" + name + "'");
        }
        auto origin = make_factory(std::move(factory));
        Reservation reservation;
        ComponentPtr provisional;
        bool fresh = false;  // provisional was made here: its strand is released if it never joins components_
        {
            MutexLock lock{mutex_};
            check_open("supervise");
            check_not_registered(name, "supervise");
            // A record for the liveness back-reference; it joins components_ only if the factory succeeds.
            auto it = components_.find(std::string_view{name});
            fresh = it == components_.end();
            provisional = fresh ? make_component(name) : it->second;
            reservation = reserve_instance(provisional, origin.get(), policy ? &*policy : nullptr);
        }
        std::optional<asio::awaitable<void>> task;
        try {
            task.emplace((*origin)(context_of(reservation)));  // outside the lock: user code
            if (!task->valid()) {
                throw std::invalid_argument(empty_result(name, "supervise: the factory"));
            }
        } catch (...) {
            MutexLock lock{mutex_};
            release(reservation);  // if it throws nothing has changed
            if (fresh) {
                release_strand(*provisional);
            }
            throw;
        }
        Events events;
        {
            MutexLock lock{mutex_};
            auto it = components_.find(std::string_view{name});
            try {
                check_open("supervise");
                check_not_registered(name, "supervise");
                if ((it != components_.end() && it->second != provisional) || provisional->removing) {
                    throw std::invalid_argument("supervise: component '" + name + "' changed concurrently");
                }
            } catch (...) {
                if (fresh) {
                    release_strand(*provisional);
                }
                throw;
            }
            if (it == components_.end()) {
                insert(provisional);
            }
            auto& c = *provisional;
            c.factory = origin;
            c.own_policy = policy ? std::make_shared<const RestartPolicy>(*policy) : nullptr;
            c.enabled = true;
            c.registered = true;
            spawn(provisional, std::move(*task), std::move(origin), std::move(reservation), events);
        }
        if (policy) {
            warn_if_max_backoff_unreachable(*policy, "the policy of component '" + name + "'");
        }
        publish(events);
    }

    void enable(const std::vector<std::string>& names) {
        MutexLock lock{mutex_};
        check_open("enable");
        check_known(names, "enable");
        for (const auto& name : names) {
            check_not_removing(name, "enable");
        }
        for (const auto& name : names) {
            at(name).enabled = true;
        }
    }

    void disable(const std::vector<std::string>& names) {
        Events events;
        {
            MutexLock lock{mutex_};
            check_open("disable");
            check_known(names, "disable");
            for (const auto& name : names) {
                const auto& c = components_.find(std::string_view{name})->second;
                c->enabled = false;
                cancel_pending_restart(c, ComponentState::stopped, events);
                request_stop(c, StopCause::disable);
            }
        }
        publish(events);
    }

    void restart(const std::string& name) {
        Events events;
        {
            MutexLock lock{mutex_};
            const auto& cp = open_component(name, "restart");
            auto& c = *cp;
            if (!c.factory) {
                throw std::invalid_argument("restart: component '" + name + "' has no restart factory");
            }
            const auto now = Clock::now();
            if (c.unit || c.lifecycle == Lifecycle::starting ||
                (c.instance && c.instance->stop == StopCause::restart)) {
                events.push_back(event(MonitorEventKind::restart_merged, c, now));
            } else if (c.lifecycle == Lifecycle::scheduled) {
                // Merge into the pending restart (or quarantine trial) and run it now.
                events.push_back(event(MonitorEventKind::restart_merged, c, now));
                if (c.state == ComponentState::quarantined) {
                    clear_budget(c);  // a manual restart out of quarantine is a reset, not a trial
                }
                c.manual_pending = true;
                schedule_start(cp, std::chrono::nanoseconds::zero());
            } else if (c.instance) {
                events.push_back(event(MonitorEventKind::restart_requested, c, now));
                if (c.in_trial) {
                    clear_budget(c);  // a manual restart ends a quarantine trial like reset()
                }
                c.state = ComponentState::restarting;
                request_stop(cp, StopCause::restart);
            } else {
                events.push_back(event(MonitorEventKind::restart_requested, c, now));
                if (c.state == ComponentState::gave_up) {
                    clear_budget(c);  // a manual restart after giving up is a reset: a fresh budget
                }
                start_now(cp);
            }
        }
        publish(events);
    }

    void reset(const std::string& name) {
        Events events;
        {
            MutexLock lock{mutex_};
            const auto& cp = open_component(name, "reset");
            auto& c = *cp;
            const bool stuck = c.state == ComponentState::gave_up || c.state == ComponentState::quarantined;
            if (stuck && !c.factory) {
                throw std::invalid_argument("reset: component '" + name + "' has no restart factory");
            }
            clear_budget(c);
            events.push_back(event(MonitorEventKind::reset, c, Clock::now()));
            if (c.state == ComponentState::quarantined && c.lifecycle == Lifecycle::scheduled && !c.unit) {
                c.manual_pending = true;  // the pending trial becomes a plain restart, now
                c.state = ComponentState::restarting;
                schedule_start(cp, std::chrono::nanoseconds::zero());
            } else if (c.state == ComponentState::gave_up && c.lifecycle == Lifecycle::idle && !c.unit) {
                start_now(cp);
            }
        }
        publish(events);
    }

    void update_policy(const std::string& name, RestartPolicy policy) {
        validate(policy, "update_policy: policy of component '" + name + "'");
        Events events;
        {
            MutexLock lock{mutex_};
            const auto& cp = open_component(name, "update_policy");
            if (cp->significant && policy.restart_type == RestartType::permanent) {
                throw std::invalid_argument("update_policy: component '" + name + "' " + permanent_significant);
            }
            cp->own_policy = std::make_shared<const RestartPolicy>(policy);
            events.push_back(event(MonitorEventKind::policy_updated, *cp, Clock::now()));
            if (cp->instance) {
                post_watch(cp);  // new liveness timeouts apply from the next check
            }
        }
        warn_if_max_backoff_unreachable(policy, "the policy of component '" + name + "'");
        publish(events);
    }

    void supervise_group(const std::string& name, std::vector<GroupMember> members, const GroupPolicy& policy,
                         const std::string& parent) {
        check_name(name, "supervise_group", "group");
        const auto where = "supervise_group: group '" + name + "'";
        validate(policy, where + " policy");
        std::set<std::string_view> seen;
        for (const auto& m : members) {
            if (m.name.empty()) {
                throw std::invalid_argument(where + ": a member name is empty");
            }
            check_name(m.name, where, "member");
            if (m.name == name || !seen.insert(m.name).second) {
                throw std::invalid_argument(where + ": duplicate member name '" + m.name + "'");
            }
            if (!m.factory == !m.context_factory) {
                throw std::invalid_argument(where + ": member '" + m.name +
                                            "' needs exactly one of factory and context_factory");
            }
            if (m.policy) {
                validate(*m.policy, where + ": policy of member '" + m.name + "'");
            }
            if (m.significant && (m.policy ? *m.policy : policy_).restart_type == RestartType::permanent) {
                throw std::invalid_argument(where + ": member '" + m.name + "' " + permanent_significant);
            }
        }
        auto group = std::make_unique<Group>();
        group->name = name;
        group->policy = policy;
        std::vector<ComponentPtr> made;
        Events events;
        {
            MutexLock lock{mutex_};
            check_open("supervise_group");
            check_not_detached(name, where);
            if (groups_.count(name) != 0 || components_.count(name) != 0) {
                throw std::invalid_argument(where + ": the name is already used by a group or component");
            }
            if (!parent.empty()) {
                auto it = groups_.find(parent);
                if (it == groups_.end()) {
                    throw std::invalid_argument(where + ": unknown parent group " + single_quoted(parent));
                }
                group->parent = it->second.get();
                const auto state = group->parent->state;
                if (state == GroupState::shutting_down || state == GroupState::shut_down ||
                    state == GroupState::gave_up) {
                    throw std::invalid_argument(where + ": parent group '" + parent + "' is " +
                                                std::string{to_string(state)});
                }
            }
            for (const auto& m : members) {
                check_not_detached(m.name, where);
                if (groups_.count(m.name) != 0 || components_.count(m.name) != 0) {
                    throw std::invalid_argument(where + ": member name '" + m.name +
                                                "' is already used by a group or component");
                }
            }
            for (auto& m : members) {  // nothing has changed so far
                auto c = make_component(m.name);
                c->factory =
                    m.factory ? make_factory(std::move(m.factory)) : make_factory(std::move(m.context_factory));
                c->own_policy = m.policy ? std::make_shared<const RestartPolicy>(*m.policy) : nullptr;
                c->enabled = true;
                c->registered = true;
                c->group = group.get();
                c->significant = m.significant;
                made.push_back(std::move(c));
            }
            auto& g = *groups_.emplace(name, std::move(group)).first->second;
            for (auto& c : made) {
                insert(c);
                g.members.push_back(Member{c, nullptr});
            }
            if (g.parent) {
                g.parent->members.push_back(Member{nullptr, &g});
            }
            std::vector<ComponentPtr> leaves;
            leaves_of(g, leaves);
            // The tree's other members still being started (or restarted) go first: the new group joins its
            // parent's members last.
            std::vector<ComponentPtr> tree;
            leaves_of(root_of(g), tree);
            enlist(root_of(g), leaves, true, Clock::now(), tree).starting.push_back(&g);
        }
        for (const auto& m : members) {
            if (m.policy) {
                warn_if_max_backoff_unreachable(*m.policy, "the policy of component '" + m.name + "'");
            }
        }
        publish(events);
    }

    std::map<std::string, GroupStats> group_snapshot() const {
        MutexLock lock{mutex_};
        const auto now = Clock::now();
        std::map<std::string, GroupStats> out;
        for (const auto& [name, g] : groups_) {
            GroupStats s;
            s.state = g->state;
            s.strategy = g->policy.strategy;
            if (g->parent) {
                s.parent = g->parent->name;
            }
            for (const auto& m : g->members) {
                s.members.push_back(m.name());
            }
            s.restart_count = g->restart_count;
            const auto window = std::chrono::duration_cast<duration>(g->policy.restart_window);
            s.restarts_in_window = static_cast<int>(std::count_if(
                g->window.begin(), g->window.end(), [&](const time_point& t) { return t > now - window; }));
            out.emplace(name, std::move(s));
        }
        return out;
    }

    /// Adds a listener (see BasicTaskMonitor::subscribe) and returns its id in listeners().
    std::uint64_t subscribe(MonitorEventListener listener) {
        if (!listener) {
            throw std::invalid_argument("subscribe: listener must not be empty");
        }
        MutexLock lock{mutex_};  // against close(): no subscription once closed_ is set
        check_open("subscribe");
        return listeners_->add(std::move(listener));
    }

    /// The listener registry; shared so that subscriptions can refer to it weakly.
    const std::shared_ptr<Listeners>& listeners() const noexcept { return listeners_; }

    std::map<std::string, ComponentStats> snapshot() const {
        MutexLock lock{mutex_};
        const auto now = Clock::now();
        std::map<std::string, ComponentStats> out;
        for (const auto& [name, c] : components_) {
            out.emplace(std::string{name}, stats_of(*c, now));
        }
        return out;
    }

    /// close() for BasicTaskMonitor::close(): `waiter` (void(error_code), the error always empty) completes
    /// through its handler's associated executor, with post semantics, once the close is done. While it waits it
    /// is parked in close_waiters_, so the shutdown of the execution context destroys it (and the coroutine it
    /// resumes) like any pending operation.
    void async_close(typename CloseWaiters::Prepared waiter) {
        close_then([waiter = std::move(waiter)](MonitorState& state) mutable {
            if (state.close_completed_) {
                state.close_waiters_.complete_now(std::move(waiter), asio::error_code{});
            } else {
                state.close_waiters_.park(std::move(waiter), std::tuple<>{}, state.strand_);
            }
        });
    }

    /// remove_and_wait(), first half: validates (throws like every mutating call) and starts the removal.
    /// Returns the record for async_wait_removed().
    std::shared_ptr<void> begin_remove(const std::string& name) {
        Events events;
        ComponentPtr cp;
        {
            MutexLock lock{mutex_};
            check_open("remove_and_wait");
            check_known({name}, "remove_and_wait");
            cp = components_.find(std::string_view{name})->second;
            auto& c = *cp;
            if (c.group) {
                throw std::invalid_argument("remove_and_wait: component '" + name + "' is a member of group '" +
                                            c.group->name + "'");
            }
            if (!c.removing) {
                c.removing = true;
                c.enabled = false;
                cancel_pending_restart(cp, ComponentState::stopped, events);
                if (c.instance && c.instance->reported_unresponsive) {
                    c.instance->stop = StopCause::remove;  // it already outlived a requested stop: gone now
                    erase(c, true, events);
                } else if (c.instance) {
                    request_stop(cp, StopCause::remove);
                } else if (c.lifecycle != Lifecycle::starting) {
                    erase(c, false, events);
                }
            }
        }
        publish(events);
        return cp;
    }

    /// remove_and_wait(), second half: parks `waiter` (void(error_code)) until the component of `record`
    /// (from begin_remove) left the monitor. Never throws.
    void async_wait_removed(std::shared_ptr<void> record, typename RemoveWaiters::Prepared waiter) {
        asio::post(strand_, [self = this->shared_from_this(), cp = std::static_pointer_cast<Component>(record),
                             waiter = std::move(waiter)]() mutable {
            std::optional<asio::error_code> result;
            {
                MutexLock lock{self->mutex_};
                if (cp->removed) {
                    result = cp->instance ? asio::error::timed_out : asio::error_code{};
                } else if (self->close_completed_) {
                    result = asio::error::timed_out;
                }
            }
            if (result) {
                self->remove_waiters_.complete_now(std::move(waiter), *result);
            } else {
                self->remove_waiters_.park(std::move(waiter), std::shared_ptr<void>{std::move(cp)}, self->strand_);
            }
        });
    }

    /// async_wait_escalation(): completes `waiter` (void(error_code, MonitorEvent)) with the oldest escalation
    /// not yet handed out, or with operation_aborted once close() finished and none is left.
    void async_wait_escalation(typename EscalationWaiters::Prepared waiter) {
        asio::post(strand_, [self = this->shared_from_this(), waiter = std::move(waiter)]() mutable {
            self->escalation_waiters_.park(std::move(waiter), std::tuple<>{}, self->strand_);
            self->deliver_escalations();
        });
    }

    /// Starts closing without waiting (destruction without close()).
    void close(std::nullptr_t) {
        close_then([](MonitorState&) {});
    }

    /// Starts closing (idempotent), then calls `then(*this)` on strand_.
    template <typename Then>
    void close_then(Then then) {
        bool first = false;
        {
            MutexLock lock{mutex_};
            first = !closed_;
            closed_ = true;  // from here on no factory is called and nothing is started
        }
        asio::post(strand_, [self = this->shared_from_this(), first, then = std::move(then)]() mutable {
            if (first) {
                self->begin_close();
            }
            then(*self);
        });
    }

    const asio::any_io_executor& executor() const noexcept { return executor_; }
    const RestartPolicy& policy() const noexcept { return policy_; }

    /// Liveness::on_ready: posts the readiness of the instance owning `liveness` to strand_ (compared by
    /// identity: the task id of a factory that threw is reused).
    void notify_ready(const std::weak_ptr<Component>& component, const Liveness* liveness) {
        asio::post(strand_, [self = this->shared_from_this(), component, liveness] {
            if (auto cp = component.lock()) {
                self->on_ready(cp, liveness);
            }
        });
    }

private:
    struct Reservation {
        std::uint64_t id = 0;
        std::shared_ptr<Liveness> liveness;
    };

    static std::int64_t now_ns() noexcept {
        return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch()).count();
    }

    static time_point from_ns(std::int64_t ns) {
        return time_point{std::chrono::duration_cast<duration>(std::chrono::nanoseconds{ns})};
    }

    static bool has_liveness(const RestartPolicy& p) {
        return p.watchdog_timeout > std::chrono::milliseconds::zero() ||
               p.startup_timeout > std::chrono::milliseconds::zero();
    }

    static std::shared_ptr<const ComponentFactory> make_factory(RestartFactory factory) {
        return std::make_shared<const ComponentFactory>(ComponentFactory{std::move(factory), {}});
    }

    static std::shared_ptr<const ComponentFactory> make_factory(ContextFactory factory) {
        return std::make_shared<const ComponentFactory>(ComponentFactory{{}, std::move(factory)});
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
    static void check_task(const asio::awaitable<void>& task, const char* what, const std::string& name) {
        if (!task.valid()) {
            throw std::invalid_argument(
                fmt::format("{}: the coroutine of component '{}' is {}", what, name, empty_awaitable));
        }
    }

    /// The reason given when `whose` (a factory of component `name`) returned an empty asio::awaitable.
    static std::string empty_result(const std::string& name, std::string_view whose) {
        return fmt::format("{} of component '{}' returned {}", whose, name, empty_awaitable);
    }

    void check_open(const char* what) const TASKMON_REQUIRES(mutex_) {
        if (closed_) {
            throw MonitorClosed(std::string{what} + ": the TaskMonitor is closed");
        }
    }

    /// A component removed while its instance ignored cancellation keeps its name until that instance exits.
    void check_not_detached(const std::string& name, const std::string& what) const TASKMON_REQUIRES(mutex_) {
        if (detached_.count(std::string_view{name}) != 0) {
            throw std::invalid_argument(what + ": component '" + name +
                                        "' was removed but its instance still runs (it ignored cancellation past "
                                        "its shutdown_timeout); the name is free once that instance exits");
        }
    }

    void check_not_registered(const std::string& name, const char* what) const TASKMON_REQUIRES(mutex_) {
        check_not_detached(name, what);
        auto it = components_.find(std::string_view{name});
        if (it != components_.end() && it->second->registered) {
            throw std::invalid_argument(std::string{what} + ": duplicate component name '" + name + "'");
        }
        if (groups_.count(name) != 0) {
            throw std::invalid_argument(std::string{what} + ": '" + name + "' is the name of a group");
        }
    }

    void check_known(const std::vector<std::string>& names, const char* what) const TASKMON_REQUIRES(mutex_) {
        for (const auto& name : names) {
            if (components_.find(std::string_view{name}) == components_.end()) {
                throw std::invalid_argument(std::string{what} + ": unknown component " + single_quoted(name));
            }
        }
    }

    /// The component `name` for a mutating call `what`: throws once closed, for an unknown name, or for a
    /// component being removed.
    const ComponentPtr& open_component(const std::string& name, const char* what) const TASKMON_REQUIRES(mutex_) {
        check_open(what);
        check_known({name}, what);
        check_not_removing(name, what);
        return components_.find(std::string_view{name})->second;
    }

    void check_not_removing(const std::string& name, const char* what) const TASKMON_REQUIRES(mutex_) {
        if (components_.find(std::string_view{name})->second->removing) {
            throw std::invalid_argument(std::string{what} + ": component '" + name + "' is being removed");
        }
    }

    void warn_if_max_backoff_unreachable(const RestartPolicy& p, const std::string& whose) const noexcept {
        if (!gives_up_before_max_backoff(p)) {
            return;
        }
        try {
            logger_->warn(
                "Restart policy never reaches its max_backoff: {} gives up after {} restarts per {} before any "
                "backoff reaches {}s; on give-up it will {} policy={} max_restart_attempts={} max_backoff={}",
                whose, p.max_restart_attempts, format_window(p.restart_window), format_seconds(p.max_backoff),
                p.give_up_mode == GiveUpMode::stop         ? "stop (consider give_up_mode = quarantine)"
                : p.give_up_mode == GiveUpMode::quarantine ? "quarantine"
                                                           : "escalate",
                quote(whose), p.max_restart_attempts, format_seconds(p.max_backoff));
        } catch (...) {  // NOLINT(bugprone-empty-catch): a warning must not break construction
        }
    }

    // ---- helpers (mutex_ held) -----------------------------------------------------------------------

    Component& at(const std::string& name) TASKMON_REQUIRES(mutex_) {
        return *components_.find(std::string_view{name})->second;
    }

    ComponentPtr make_component(const std::string& name) TASKMON_REQUIRES(mutex_) {
        return std::make_shared<Component>(name, strand_for_next_component());
    }

    void insert(const ComponentPtr& c) TASKMON_REQUIRES(mutex_) { components_.emplace(std::string_view{c->name}, c); }

    ComponentPtr find_or_create(const std::string& name) TASKMON_REQUIRES(mutex_) {
        auto it = components_.find(std::string_view{name});
        if (it != components_.end()) {
            return it->second;
        }
        auto c = make_component(name);
        insert(c);
        return c;
    }

    /// Round-robin over a pool of strand_pool_size_ strands, created as first needed. With a pool size of 0, one
    /// strand per component: the strand of a component that left the monitor is given to the next one, so a
    /// server spawning a task per connection keeps as many strands as it has components at once.
    const asio::any_io_executor& strand_for_next_component() TASKMON_REQUIRES(mutex_) {
        if (strand_pool_size_ == 0 && !free_strands_.empty()) {
            const auto* strand = free_strands_.back();
            free_strands_.pop_back();
            return *strand;
        }
        if (strand_pool_size_ == 0 || strands_.size() < strand_pool_size_) {
            return strands_.emplace_back(make_strand_executor(executor_));
        }
        return strands_[next_strand_++ % strand_pool_size_];
    }

    /// `c` left the monitor for good (no instance will run on its strand again): with a strand per component, its
    /// strand goes to the next component made.
    void release_strand(const Component& c) TASKMON_REQUIRES(mutex_) {
        if (strand_pool_size_ == 0) {
            free_strands_.push_back(c.strand);
        }
    }

    const RestartPolicy& policy_of(const Component& c) const { return c.own_policy ? *c.own_policy : policy_; }

    std::chrono::system_clock::time_point wall(time_point t) const TASKMON_REQUIRES(mutex_) {
        return wall_origin_ + std::chrono::duration_cast<std::chrono::system_clock::duration>(t - clock_origin_);
    }

    ComponentStats stats_of(const Component& c, time_point now) const TASKMON_REQUIRES(mutex_) {
        ComponentStats s;
        s.enabled = c.enabled;
        s.restart_count = c.restart_count;
        s.state = c.state;
        s.is_restarting = c.state == ComponentState::restarting;
        s.task_done = !c.instance;
        s.task_cancelled = c.task_cancelled;
        if (c.restart_count > 0) {
            s.last_restart_time = wall(c.last_restart);
        }
        s.last_error = c.last_error.str();
        s.failure_count = c.failure_count;
        const auto window = std::chrono::duration_cast<duration>(policy_of(c).restart_window);
        s.restarts_in_window = static_cast<int>(
            std::count_if(c.window.begin(), c.window.end(), [&](const time_point& t) { return t > now - window; }));
        if (c.next_restart) {
            (c.state == ComponentState::quarantined ? s.next_trial_at : s.next_restart_at) = wall(*c.next_restart);
        }
        s.task_id = c.task_id;
        s.generation = c.generation;
        s.in_trial = c.in_trial && c.instance;
        s.quarantine_cooldown = c.quarantine_cooldown;
        if (c.group) {
            s.group = c.group->name;
        }
        s.spawned = c.spawned;
        if (const auto& i = c.instance) {
            if (const auto& l = i->liveness) {
                s.ready = l->ready_at() != InstanceLiveness::never;
                s.last_heartbeat_age = now - from_ns(l->last_beat());
                s.idle = l->idle();
            } else {
                s.ready = true;
                s.last_heartbeat_age = now - i->started;
            }
        }
        return s;
    }

    /// The event `kind` of `c`, numbered and stamped with `now`, with the component's counters as they are.
    /// Also folds the event into the cause the component's next `restarted` reports (detail/restart_cause.hpp).
    MonitorEvent event(MonitorEventKind kind, Component& c, time_point now) TASKMON_REQUIRES(mutex_) {
        MonitorEvent e;
        e.kind = kind;
        e.component = c.name;
        e.sequence = ++next_sequence_;
        e.time = wall(now);
        e.task_id = c.task_id;
        e.restart_count = c.restart_count;
        e.failure_count = c.failure_count;
        e.spawned = c.spawned;
        if (c.group) {
            e.group = c.group->name;
        }
        if (kind == MonitorEventKind::restarted) {
            e.restart_reason = c.restart_cause.value_or(RestartReason::unknown);
            switch (e.restart_reason) {
                case RestartReason::manual:
                case RestartReason::group:
                case RestartReason::unknown: break;  // started without a backoff of its own
                case RestartReason::quarantine_trial:
                    e.attempt = c.trials;
                    e.delay = c.quarantine_cooldown;
                    break;
                default:
                    e.attempt = c.consecutive;
                    e.delay = c.last_delay;
                    break;
            }
        }
        c.restart_cause = next_restart_cause(c.restart_cause, kind, c.group != nullptr);
        return e;
    }

    /// The event `kind` of group `g`.
    MonitorEvent group_event(MonitorEventKind kind, const Group& g, time_point now) TASKMON_REQUIRES(mutex_) {
        MonitorEvent e;
        e.kind = kind;
        e.group = g.name;
        e.sequence = ++next_sequence_;
        e.time = wall(now);
        return e;
    }

    /// Reserves the next instance of `c`: its task id and, if it takes a context or runs under a liveness
    /// policy, its liveness record (made before the factory is called, which receives its context).
    Reservation reserve_instance(const ComponentPtr& c, const ComponentFactory* factory = nullptr,
                                 const RestartPolicy* policy = nullptr) TASKMON_REQUIRES(mutex_) {
        Reservation r;
        r.id = ++next_task_id_;
        const auto& p = policy ? *policy : policy_of(*c);
        if ((factory && factory->contextual) || has_liveness(p)) {
            r.liveness = std::make_shared<Liveness>(r.id, c->generation + 1, now_ns(), this->weak_from_this(), c);
            if (p.startup_timeout == std::chrono::milliseconds::zero()) {
                r.liveness->mark_ready(now_ns());
            }
        }
        return r;
    }

    /// Gives back a reservation whose factory threw (its id, if no later one was taken).
    void release(const Reservation& r) TASKMON_REQUIRES(mutex_) {
        if (next_task_id_ == r.id) {
            --next_task_id_;
        }
    }

    /// Starts a new instance of `c` on its strand. Its exit is reported to on_exit on strand_.
    void spawn(const ComponentPtr& cp, asio::awaitable<void> task, std::shared_ptr<const ComponentFactory> origin,
               Reservation reservation, Events& events, bool is_restart = false) TASKMON_REQUIRES(mutex_) {
        auto& c = *cp;
        const auto now = Clock::now();
        const bool watched = static_cast<bool>(reservation.liveness);
        auto instance =
            std::make_shared<Instance>(reservation.id, now, std::move(origin), std::move(reservation.liveness));
        transition(c.lifecycle, Lifecycle::live);
        c.instance = instance;
        ++live_instances_;
        ++c.generation;
        c.manual_pending = false;
        c.next_restart.reset();
        c.task_id = instance->id;
        c.state = ComponentState::running;
        c.task_cancelled = false;
        if (is_restart) {
            ++c.restart_count;
            c.last_restart = now;
            events.push_back(event(MonitorEventKind::restarted, c, now));
            if (c.in_trial) {
                events.push_back(event(MonitorEventKind::trial_started, c, now));
            }
        } else {
            events.push_back(event(MonitorEventKind::started, c, now));
        }
        if (watched && policy_of(c).startup_timeout > std::chrono::milliseconds::zero() &&
            instance->liveness->ready_at() != InstanceLiveness::never) {
            // ready() came from the factory itself, before the instance existed: its notice found no instance.
            instance->ready_reported = true;
            events.push_back(event(MonitorEventKind::ready, c, now));
        }
        if (watched || c.in_trial) {
            post_watch(cp);
        }
        // co_spawn is called from a post to the component's strand, never here under mutex_: called from a
        // coroutine on that same strand (a component supervising another), co_spawn would run the new coroutine
        // inline, and a new coroutine that calls the monitor before its first suspension would deadlock. The
        // post costs nothing extra: co_spawn from outside the strand posts its start the same way. A stop
        // requested meanwhile is emitted by a later post to the same strand, so after the slot is bound.
        asio::post(*c.strand, [self = this->shared_from_this(), cp, instance, task = std::move(task)]() mutable {
            auto slot = instance->signal.slot();
            const auto& strand = *cp->strand;
            // The handler runs on the component's strand and hands the exit to strand_ itself: one post, as a
            // handler bound to strand_ would cost, without keeping a copy of strand_ in every coroutine's state.
            asio::co_spawn(
                strand, std::move(task),
                asio::bind_cancellation_slot(slot, [self = std::move(self), cp = std::move(cp),
                                                    instance = std::move(instance)](std::exception_ptr error) mutable {
                    auto& monitor_strand = self->strand_;
                    asio::post(monitor_strand,
                               [self = std::move(self), cp = std::move(cp), instance = std::move(instance),
                                error = std::move(error)] { self->on_exit(cp, instance, error); });
                }));
        });
    }

    /// Asks the live instance (if any) to stop; the exit arrives at on_exit. Outside close(), a stop that is
    /// not confirmed within shutdown_timeout is reported (see evaluate_watch).
    void request_stop(const ComponentPtr& cp, StopCause cause) TASKMON_REQUIRES(mutex_) {
        auto& c = *cp;
        if (!c.instance) {
            return;
        }
        auto& instance = *c.instance;
        const bool already = instance.stop != StopCause::none;
        if (instance.stop != StopCause::close) {
            instance.stop = cause;  // close wins; otherwise the latest request decides what follows the exit
        }
        if (cause != StopCause::restart && cause != StopCause::liveness) {
            c.state = ComponentState::stopping;
        }
        if (!already) {
            instance.stop_deadline = Clock::now() + std::chrono::duration_cast<duration>(policy_of(c).shutdown_timeout);
            if (cause != StopCause::close) {
                post_watch(cp);
            }
            asio::post(*c.strand,
                       [instance = c.instance] { instance->signal.emit(asio::cancellation_type::terminal); });
        }
    }

    /// Makes `c` (no live instance) start from its factory now, as a manual restart.
    void start_now(const ComponentPtr& cp) TASKMON_REQUIRES(mutex_) {
        auto& c = *cp;
        c.registered = true;  // starting a component known only by its factory registers it
        c.manual_pending = true;
        transition(c.lifecycle, Lifecycle::scheduled);
        c.state = ComponentState::restarting;
        schedule_start(cp, std::chrono::nanoseconds::zero());
    }

    /// A counted automatic restart of `c` happens at `now`: it joins the sliding window.
    static void record_restart(Component& c, time_point now) {
        if (c.window.size() >= unlimited_window_memory) {
            c.window.erase(c.window.begin());
        }
        c.window.push_back(now);
    }

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
        TASKMON_REQUIRES(mutex_) {
        Needs needs;
        const auto& policy = policy_of(c);
        if (!cls && !inputs.cls && policy.classify_failure) {
            needs.cls = true;
            return needs;  // the class decides whether a draw is needed
        }
        const auto route = route_failure(failure_facts(c), cls.value_or(inputs.cls.value_or(FailureClass::counted)));
        needs.draw =
            route == FailureRoute::restart && !c.in_trial && policy.jitter != JitterKind::none && !inputs.drawn;
        return needs;
    }

    /// What deciding the exit of `instance` of `c` needs from user code (mutex_ held), branch by branch of
    /// on_exit(): a failure's class and draw, the draw of a liveness trip's restart (classified when it tripped),
    /// the draw of a permanent component's restart after it returned.
    Needs exit_needs(const Component& c, const Instance& instance, const ExitOutcome& outcome,
                     const UserInputs& inputs) const TASKMON_REQUIRES(mutex_) {
        if (c.spawned) {
            return {};
        }
        if (instance.stop != StopCause::none || closed_ || c.removing) {
            const bool tripped = instance.stop == StopCause::liveness && !closed_ && !c.removing;
            return tripped ? failure_needs(c, instance.trip_class, inputs) : Needs{};
        }
        if (outcome.kind == ExitOutcome::returned) {
            const auto& policy = policy_of(c);  // after_return(): a trial that returned passed; no trial any more
            Needs needs;
            needs.draw = policy.restart_type == RestartType::permanent && c.enabled && c.factory &&
                         policy.jitter != JitterKind::none && !inputs.drawn;
            return needs;
        }
        return failure_needs(c, std::nullopt, inputs);
    }

    /// Calls the user code `needs` names, for component `c`, outside mutex_ (on strand_). `policy` is held by the
    /// caller: update_policy() may replace the component's own policy meanwhile.
    void supply(const Needs& needs, const RestartPolicy& policy, const Component& c, const std::exception_ptr& error,
                UserInputs& inputs) const noexcept {
        if (needs.cls) {
            inputs.cls = classify(policy, c.name, error);
        }
        if (needs.draw) {
            inputs.drawn = true;
            inputs.draw = draw(policy, c.name);
        }
    }

    /// The policy of `c`, held (mutex_ held): the monitor's own lives as long as the state.
    std::shared_ptr<const RestartPolicy> policy_handle(const Component& c) const TASKMON_REQUIRES(mutex_) {
        return c.own_policy ? c.own_policy : std::shared_ptr<const RestartPolicy>{this->shared_from_this(), &policy_};
    }

    /// A draw from the RandomSource for the jitter of component `name`'s next backoff (on strand_, outside
    /// mutex_; nothing when its policy has no jitter). A source that throws or returns NaN is logged; that restart
    /// then waits its nominal backoff.
    std::optional<double> draw(const RestartPolicy& policy, const std::string& name) const noexcept {
        if (policy.jitter == JitterKind::none) {
            return std::nullopt;
        }
        try {
            std::string problem;
            try {
                const double x = random_();
                if (!std::isnan(x)) {
                    return x;
                }
                problem = "returned NaN";
            } catch (...) {
                problem = "threw " + describe(std::current_exception());
            }
            logger_->error("Random source failed; component {} waits its backoff without jitter component={} reason={}",
                           FieldValue{name}, FieldValue{name}, quote(problem));
        } catch (...) {  // NOLINT(bugprone-empty-catch): nowhere left to report it
        }
        return std::nullopt;
    }

    /// The facts route_failure() reads of `c` (mutex_ held).
    FailureFacts failure_facts(const Component& c) const TASKMON_REQUIRES(mutex_) {
        return {policy_of(c).restart_type, c.enabled, static_cast<bool>(c.factory), c.in_trial,
                c.unit && c.drive_restart && !c.unit_started};
    }

    /// Forgets the restart history: window, backoff, quarantine.
    static void clear_budget(Component& c) {
        c.window.clear();
        c.restart_counted = false;  // a restart still pending counts against no budget of its own: a fresh one
        c.consecutive = 0;
        c.last_delay = {};
        c.quarantine_cooldown = {};
        c.trials = 0;
        c.in_trial = false;
    }

    /// Drops a scheduled restart (backoff, manual or quarantine trial) of `c`.
    void cancel_pending_restart(const ComponentPtr& cp, ComponentState new_state, Events& events)
        TASKMON_REQUIRES(mutex_) {
        auto& c = *cp;
        if (c.lifecycle != Lifecycle::scheduled && c.lifecycle != Lifecycle::starting) {
            return;
        }
        events.push_back(event(MonitorEventKind::restart_cancelled, c, Clock::now()));
        if (c.lifecycle == Lifecycle::scheduled) {
            transition(c.lifecycle, Lifecycle::idle);  // a factory already running finds restart_gen changed
        }
        c.restart_counted = false;
        settle_counted(c, Clock::now(), false);
        c.manual_pending = false;
        ++c.restart_gen;
        c.next_restart.reset();
        if (!c.instance) {
            c.state = new_state;
        }
        asio::post(strand_, [cp] {
            if (cp->timer) {
                cp->timer->cancel();
            }
        });
    }

    /// Removes `c` from components_ (remove_and_wait): at its exit, or at its shutdown_timeout if it outlived
    /// it (then it waits in detached_ for its exit).
    void erase(Component& c, bool unresponsive, Events& events) TASKMON_REQUIRES(mutex_) {
        auto it = components_.find(std::string_view{c.name});
        if (it == components_.end() || it->second.get() != &c) {
            return;
        }
        if (unresponsive) {
            detached_.emplace(std::string_view{c.name}, it->second);  // its strand is released at its exit
        } else {
            release_strand(c);
        }
        components_.erase(it);
        c.removed = true;
        auto e = event(MonitorEventKind::removed, c, Clock::now());
        e.unresponsive = unresponsive ? 1 : 0;
        events.push_back(std::move(e));
        remove_done_ = true;
    }

    /// Starts the scheduled restart of `c` after `delay` (on strand_).
    void schedule_start(const ComponentPtr& cp, std::chrono::nanoseconds delay) TASKMON_REQUIRES(mutex_) {
        const auto gen = ++cp->restart_gen;
        const auto deadline = Clock::now() + std::chrono::duration_cast<duration>(delay);
        asio::post(strand_, [self = this->shared_from_this(), cp, gen, delay, deadline] {
            if (delay == std::chrono::nanoseconds::zero()) {
                if (cp->timer) {
                    cp->timer->cancel();  // a backoff this restart replaces (restart() merged into it)
                }
                self->start_restart(cp, gen);
                return;
            }
            {
                MutexLock lock{self->mutex_};
                if (gen != cp->restart_gen) {
                    return;
                }
            }
            if (!cp->timer) {
                cp->timer = std::make_unique<Timer>(self->strand_);
            }
            cp->timer->expires_at(deadline);
            cp->timer->async_wait([self, cp, gen](std::error_code ec) {
                if (!ec) {
                    self->start_restart(cp, gen);
                }
            });
        });
    }

    /// How `error` counts under `policy` (on strand_, outside mutex_: the classifier is user code). A classifier
    /// that throws is logged; the failure then counts.
    FailureClass classify(const RestartPolicy& policy, const std::string& name,
                          const std::exception_ptr& error) const noexcept {
        const auto& classifier = policy.classify_failure;
        if (!classifier) {
            return FailureClass::counted;
        }
        try {
            const auto result = classifier(error);
            switch (result) {
                case FailureClass::counted:
                case FailureClass::not_counted:
                case FailureClass::fatal: return result;
            }
            throw std::invalid_argument("returned an invalid FailureClass");
        } catch (...) {
            try {
                logger_->error("Failure classifier of component {} threw; the failure counts component={} reason={}",
                               FieldValue{name}, FieldValue{name}, quote(describe(std::current_exception())));
            } catch (...) {  // NOLINT(bugprone-empty-catch): nowhere left to report it
            }
            return FailureClass::counted;
        }
    }

    /// What follows a failure (exception, unexpected cancellation, factory throw, liveness timeout) already
    /// counted in failure_count and reported: nothing, a restart with backoff, or a give-up. `inputs` holds the
    /// jitter draw failure_needs() asked for.
    void after_failure(const ComponentPtr& cp, const std::string& reason, FailureClass cls, const UserInputs& inputs,
                       time_point now, Events& events) TASKMON_REQUIRES(mutex_) {
        auto& c = *cp;
        const auto route = route_failure(failure_facts(c), cls);
        switch (route) {
            case FailureRoute::ends_temporary:
            case FailureRoute::ends_disabled:
            case FailureRoute::ends_without_factory:
                c.in_trial = false;  // a trial that ends here is not resumed by a later manual restart
                c.next_restart.reset();
                c.state = ComponentState::failed;
                if (route == FailureRoute::ends_disabled) {
                    events.push_back(event(MonitorEventKind::not_enabled, c, now));
                } else if (route == FailureRoute::ends_without_factory) {
                    events.push_back(event(MonitorEventKind::no_factory, c, now));
                }
                member_ended(c, now, events);
                return;
            case FailureRoute::gives_up:
                give_up(cp, give_up_decision(policy_of(c), c.quarantine_cooldown, true, now), reason, now, events);
                return;
            case FailureRoute::joins_group_restart: c.state = ComponentState::restarting; return;
            case FailureRoute::restart:
                schedule_restart(cp, reason, now, cls != FailureClass::not_counted, inputs, events);
                return;
        }
    }

    /// The restart history of `c` as decide_restart() reads it.
    static RestartHistory<time_point> history_of(const Component& c) {
        return {std::span<const time_point>{c.window}, c.consecutive, c.last_delay, c.quarantine_cooldown, c.in_trial};
    }

    /// Applies decide_restart() to a failure (or a permanent-type return) of `c`: a backoff (which its group may
    /// take over), a give-up when the sliding window is full, or, after a failed quarantine trial, the breaker
    /// reopened. The restart's time joins the window when its factory is called.
    void schedule_restart(const ComponentPtr& cp, const std::string& reason, time_point now, bool counted,
                          const UserInputs& inputs, Events& events) TASKMON_REQUIRES(mutex_) {
        auto& c = *cp;
        const auto& policy = policy_of(c);
        forget_restarts_before(c.window, policy.restart_window, now);
        const auto history = history_of(c);
        assert(inputs.drawn || !needs_draw(history, policy));  // the needs of failure_needs() / exit_needs()
        const auto decision = decide_restart(history, policy, counted, now, inputs.draw);
        const auto* restart = std::get_if<RestartAt<time_point>>(&decision);
        if (!restart && c.in_trial) {
            c.in_trial = false;
            quarantine(cp, std::get<QuarantineUntil<time_point>>(decision), reason, now, events);
            return;
        }
        if (!restart) {
            give_up(cp, decision, reason, now, events);
            return;
        }
        c.consecutive = restart->attempt;
        c.last_delay = restart->delay;
        transition(c.lifecycle, Lifecycle::scheduled);
        c.restart_counted = counted;
        c.manual_pending = false;
        c.next_restart = restart->at;
        c.state = ComponentState::restarting;
        auto e = event(MonitorEventKind::restart_scheduled, c, now);
        e.attempt = restart->attempt;
        e.delay = restart->delay;
        e.reason = reason;
        events.push_back(std::move(e));
        if (c.group &&
            group_member_failed(*c.group, Member{cp, nullptr}, reason, restart->delay, counted, now, events)) {
            return;  // the group restarts it (or gave up)
        }
        schedule_start(cp, restart->delay);
    }

    /// Applies a give-up decision (its limit reached, or a fatal failure): stop, escalate, or quarantine.
    void give_up(const ComponentPtr& cp, const RestartDecision<time_point>& decision, const std::string& reason,
                 time_point now, Events& events) TASKMON_REQUIRES(mutex_) {
        auto& c = *cp;
        const auto& policy = policy_of(c);
        if (c.unit && !c.unit_started) {
            // It failed on its own while a group restart stopped the others: that restart must not start it
            // again (it stays down, or waits for its quarantine trial).
            c.unit.reset();
            c.drive_restart = false;
            c.restart_counted = false;
        }
        if (const auto* q = std::get_if<QuarantineUntil<time_point>>(&decision)) {
            quarantine(cp, *q, reason, now, events);
            return;
        }
        const auto& gave_up = std::get<GiveUp>(decision);
        c.state = ComponentState::gave_up;
        c.next_restart.reset();
        auto e = event(MonitorEventKind::gave_up, c, now);
        e.limit = gave_up.limit;
        e.window = policy.restart_window;
        e.reason = reason;
        if (gave_up.mode == GiveUpMode::escalate && c.group) {
            events.push_back(std::move(e));  // escalated to its group, which gives up as a whole
            if (c.group->parent) {
                // The parent restarts the group as a whole, this member too (else it would be left alone as
                // given up), with a fresh budget like the group's.
                clear_budget(c);
                c.state = ComponentState::restarting;
            }
            group_give_up(*c.group, c.name, std::nullopt, "member '" + c.name + "' escalated: " + reason,
                          policy.base_backoff, now, events);
        } else if (gave_up.mode == GiveUpMode::escalate) {
            auto escalation = e;
            escalation.kind = MonitorEventKind::escalated;
            escalation.sequence = ++next_sequence_;
            events.push_back(std::move(e));
            events.push_back(escalation);
            escalations_.push_back(std::move(escalation));
            asio::post(strand_, [self = this->shared_from_this()] { self->deliver_escalations(); });
        } else {
            events.push_back(std::move(e));
            member_ended(c, now, events);
        }
    }

    /// Opens (or reopens, with the cooldown doubled) the circuit breaker: a trial instance follows the cooldown.
    void quarantine(const ComponentPtr& cp, const QuarantineUntil<time_point>& q, const std::string& reason,
                    time_point now, Events& events) TASKMON_REQUIRES(mutex_) {
        auto& c = *cp;
        c.quarantine_cooldown = q.cooldown;
        c.state = ComponentState::quarantined;
        transition(c.lifecycle, Lifecycle::scheduled);
        c.restart_counted = false;
        c.manual_pending = false;
        c.next_restart = q.until;
        auto e = event(MonitorEventKind::quarantined, c, now);
        e.delay = c.quarantine_cooldown;
        e.attempt = c.trials;
        e.reason = reason;
        events.push_back(std::move(e));
        schedule_start(cp, c.quarantine_cooldown);
    }

    /// The trial stayed ready for reset_backoff_after: the breaker closes and the budget is fresh.
    void close_breaker(Component& c, time_point now, Events& events) TASKMON_REQUIRES(mutex_) {
        clear_budget(c);
        events.push_back(event(MonitorEventKind::quarantine_closed, c, now));
    }

    /// Schedules a liveness / stop-deadline / probation check of `c` on strand_.
    void post_watch(const ComponentPtr& cp) {
        asio::post(strand_, [self = this->shared_from_this(), cp] { self->check_watch(cp); });
    }

    /// When the live instance last became ready (its start if it needs no ready()); empty if not ready.
    static std::optional<time_point> ready_time(const Instance& i) {
        if (!i.liveness) {
            return i.started;
        }
        const auto at = i.liveness->ready_at();
        return at == InstanceLiveness::never ? std::nullopt : std::optional{from_ns(at)};
    }

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
        TASKMON_REQUIRES(mutex_) {
        auto& c = *cp;
        if (!c.instance) {
            return {};
        }
        auto& i = *c.instance;
        if (i.stop != StopCause::none) {
            if (i.stop == StopCause::close || i.reported_unresponsive) {
                return {};  // close() reports its own deadline
            }
            if (now < i.stop_deadline) {
                return {i.stop_deadline};
            }
            report_unresponsive(c, now, events);
            if (i.stop == StopCause::remove) {
                erase(c, true, events);
            }
            return {};
        }
        const auto& policy = policy_of(c);
        LivenessFacts<time_point> facts;
        facts.started = i.started;
        facts.ready = ready_time(i);
        facts.watched = static_cast<bool>(i.liveness);
        if (const auto& l = i.liveness) {
            facts.last_beat = from_ns(l->last_beat());
            facts.idle = l->idle();
            if (const auto extended = l->extended_until(); extended != InstanceLiveness::never) {
                facts.extended_until = from_ns(extended);
            }
        }
        facts.in_trial = c.in_trial;
        const auto verdict = evaluate_liveness(facts, policy, now);
        if (verdict.missed != LivenessMiss::none) {
            if (classified.miss != verdict.missed) {
                return {std::nullopt, verdict.missed};
            }
            trip(cp, verdict.missed, verdict.timeout, classified.cls, now, events);
            return {i.stop_deadline};
        }
        if (verdict.breaker_closes) {
            close_breaker(c, now, events);
        }
        return {verdict.next};
    }

    /// A liveness deadline (`timeout`) passed: the instance is cancelled and charged with a failure of class `cls`.
    void trip(const ComponentPtr& cp, LivenessMiss miss, std::chrono::milliseconds timeout, FailureClass cls,
              time_point now, Events& events) TASKMON_REQUIRES(mutex_) {
        auto& c = *cp;
        auto& i = *c.instance;
        const bool startup = miss == LivenessMiss::startup;
        const std::string reason = miss_reason(miss);
        i.tripped_startup = startup;
        i.trip_class = cls;
        ++c.failure_count;
        c.last_error = reason;
        auto e = event(startup ? MonitorEventKind::startup_timeout : MonitorEventKind::watchdog_timeout, c, now);
        e.reason = reason;
        e.failure_class = cls;
        e.delay = timeout;
        events.push_back(std::move(e));
        c.state = ComponentState::restarting;
        request_stop(cp, StopCause::liveness);
    }

    void report_unresponsive(Component& c, time_point now, Events& events) TASKMON_REQUIRES(mutex_) {
        c.instance->reported_unresponsive = true;
        if (closed_) {
            waited_in_close(*c.instance);
        }
        c.state = ComponentState::unresponsive;
        auto e = event(MonitorEventKind::stop_timeout, c, now);
        e.delay = policy_of(c).shutdown_timeout;
        events.push_back(std::move(e));
    }

    /// close() waited for `i` as long as it waits for it: close can complete while it still runs.
    void waited_in_close(Instance& i) TASKMON_REQUIRES(mutex_) {
        if (!i.reported_in_close) {
            i.reported_in_close = true;
            ++waited_in_close_;
        }
    }

    // ---- groups (mutex_ held, except advance() on strand_) -------------------------------------------

    static Group& root_of(Group& g) {
        auto* r = &g;
        while (r->parent) {
            r = r->parent;
        }
        return *r;
    }

    /// The components of `g` and of its nested groups, in start order.
    static void leaves_of(const Group& g, std::vector<ComponentPtr>& out) {
        for (const auto& m : g.members) {
            leaves_of(m, out);
        }
    }

    static void leaves_of(const Member& m, std::vector<ComponentPtr>& out) {
        if (m.component) {
            out.push_back(m.component);
        } else {
            leaves_of(*m.group, out);
        }
    }

    /// `g` and every group nested in it.
    static void subtree_of(Group& g, std::vector<Group*>& out) {
        out.push_back(&g);
        for (const auto& m : g.members) {
            if (m.group) {
                subtree_of(*m.group, out);
            }
        }
    }

    /// The components `u` drives, in start order.
    static std::vector<ComponentPtr> leaves_of(const RestartUnit& u) {
        std::vector<ComponentPtr> all;
        leaves_of(*u.root, all);
        std::erase_if(all, [&u](const ComponentPtr& c) { return c->unit.get() != &u; });
        return all;
    }

    /// `g` starts over with a fresh budget (restarted as a whole by its parent): no restart counts any more.
    static void fresh_budget(Group& g) {
        g.window.clear();
        g.pending_restarts = 0;
        ++g.budget;
    }

    /// A counted restart of `g` decided against `budget` happened at `now`, or never will (`happened` false).
    static void settle_group_restart(Group& g, std::uint32_t budget, time_point now, bool happened) {
        if (g.budget != budget) {
            return;  // counted against a budget renewed since
        }
        --g.pending_restarts;
        if (happened) {
            if (g.window.size() >= unlimited_window_memory) {
                g.window.erase(g.window.begin());
            }
            g.window.push_back(now);
        }
    }

    /// The counted group restarts of `u` happened at `now` (its members start), or never will (`happened` false:
    /// the monitor closed first).
    static void settle_counted(RestartUnit& u, time_point now, bool happened) {
        for (const auto& [g, budget] : u.counted) {
            settle_group_restart(*g, budget, now, happened);
        }
        u.counted.clear();
    }

    /// The same for the restart of one_for_one member `c` on its own.
    static void settle_counted(Component& c, time_point now, bool happened) {
        if (const auto budget = std::exchange(c.counted_in_group, std::nullopt)) {
            settle_group_restart(*c.group, *budget, now, happened);
        }
    }

    /// Member `m` of `g` failed and its own policy restarts it after `delay`. Counts the restart against the
    /// group's limit, then restarts what g's strategy names. Returns false when the member restarts on its own
    /// (a one_for_one component that no unit drives).
    bool group_member_failed(Group& g, const Member& m, const std::string& reason, std::chrono::nanoseconds delay,
                             bool counted, time_point now, Events& events) TASKMON_REQUIRES(mutex_) {
        const auto at = now + std::chrono::duration_cast<duration>(delay);
        forget_restarts_before(g.window, g.policy.restart_window, now);
        if (counted &&
            !group_restart_allowed(std::span<const time_point>{g.window}, g.pending_restarts, g.policy, at)) {
            group_give_up(g, m.name(), g.policy.max_restarts, reason, delay, now, events);
            return true;
        }
        if (!group_owns_restart(g.policy.strategy, m.component != nullptr, m.component && m.component->unit)) {
            if (counted) {
                ++g.pending_restarts;
                m.component->counted_in_group = g.budget;
            }
            return false;
        }
        const auto position = static_cast<std::size_t>(
            std::find_if(g.members.begin(), g.members.end(),
                         [&m](const Member& x) { return x.component == m.component && x.group == m.group; }) -
            g.members.begin());
        const auto range = affected_members(g.policy.strategy, position, g.members.size());
        const auto first = g.members.begin() + static_cast<std::ptrdiff_t>(range.first);
        const auto last = g.members.begin() + static_cast<std::ptrdiff_t>(range.last);
        std::vector<ComponentPtr> leaves;
        std::vector<Group*> groups;
        auto e = group_event(MonitorEventKind::group_restarting, g, now);
        e.component = m.name();
        e.delay = delay;
        e.reason = reason;
        for (auto it = first; it != last; ++it) {
            leaves_of(*it, leaves);
            e.members.push_back(it->name());
            if (it->group) {
                subtree_of(*it->group, groups);
            }
        }
        for (auto* x : groups) {
            fresh_budget(*x);  // a group restarted by its parent starts over with a fresh budget (as in OTP)
        }
        if (g.policy.strategy != RestartStrategy::one_for_one) {
            groups.push_back(&g);
        }
        for (auto* x : groups) {
            x->state = GroupState::restarting;
        }
        if (!groups.empty()) {
            events.push_back(std::move(e));
        }  // else a one_for_one member that a unit drives: restarted with that unit, no group restart of its own
        auto& unit = enlist(root_of(g), leaves, true, at);
        unit.restarting.insert(unit.restarting.end(), groups.begin(), groups.end());
        if (counted) {
            ++g.pending_restarts;
            unit.counted.emplace_back(&g, g.budget);
        }
        return true;
    }

    /// `g` gives up (its limit was exceeded, or a member escalated): its parent restarts it as a failed member
    /// or, at the top of the tree, its members are stopped and it is escalated to the monitor's owner.
    void group_give_up(Group& g, const std::string& cause, std::optional<int> limit, const std::string& reason,
                       std::chrono::nanoseconds delay, time_point now, Events& events) TASKMON_REQUIRES(mutex_) {
        auto e = group_event(MonitorEventKind::group_gave_up, g, now);
        e.component = cause;
        if (limit) {
            e.limit = *limit;
            e.window = g.policy.restart_window;
        }
        e.reason = reason;
        events.push_back(e);
        if (g.parent) {
            fresh_budget(g);  // restarted as a whole: a fresh budget
            group_member_failed(*g.parent, Member{nullptr, &g}, "group '" + g.name + "' gave up: " + reason, delay,
                                true, now, events);
            return;
        }
        std::vector<Group*> groups;
        subtree_of(g, groups);
        for (auto* x : groups) {
            x->state = GroupState::gave_up;
        }
        std::vector<ComponentPtr> leaves;
        leaves_of(g, leaves);
        enlist(g, leaves, false, now);
        e.kind = MonitorEventKind::escalated;
        e.component.clear();
        e.sequence = ++next_sequence_;
        events.push_back(e);
        escalations_.push_back(std::move(e));
        asio::post(strand_, [self = this->shared_from_this()] { self->deliver_escalations(); });
    }

    /// `c` ended for good (completed, failed without restart, gave up): a significant member may end its group.
    void member_ended(Component& c, time_point now, Events& events) TASKMON_REQUIRES(mutex_) {
        if (c.group && c.significant) {
            significant_ended(*c.group, c.name, now, events);
        }
    }

    static bool has_ended(const Member& m) {
        if (m.group) {
            const auto s = m.group->state;
            return s == GroupState::shutting_down || s == GroupState::shut_down || s == GroupState::gave_up;
        }
        const auto& c = *m.component;
        const auto s = c.state;
        return c.lifecycle == Lifecycle::idle && !c.unit &&
               (s == ComponentState::completed || s == ComponentState::failed || s == ComponentState::gave_up);
    }

    /// Significant member `who` of `g` ended: shuts `g` down if its auto_shutdown says so.
    void significant_ended(Group& g, const std::string& who, time_point now, Events& events) TASKMON_REQUIRES(mutex_) {
        if (g.state == GroupState::shutting_down || g.state == GroupState::shut_down ||
            g.state == GroupState::gave_up || g.state == GroupState::stopped ||
            g.policy.auto_shutdown == AutoShutdown::never) {
            return;
        }
        if (g.policy.auto_shutdown == AutoShutdown::all_significant) {
            for (const auto& m : g.members) {
                const bool significant = m.component ? m.component->significant : m.group->policy.significant;
                if (significant && !has_ended(m)) {
                    return;
                }
            }
        }
        std::vector<Group*> groups;
        subtree_of(g, groups);
        for (auto* x : groups) {
            x->state = GroupState::shutting_down;
        }
        auto e = group_event(MonitorEventKind::group_shutdown, g, now);
        e.component = who;
        for (const auto& m : g.members) {
            e.members.push_back(m.name());
        }
        events.push_back(std::move(e));
        std::vector<ComponentPtr> leaves;
        leaves_of(g, leaves);
        auto& unit = enlist(root_of(g), leaves, false, now);
        unit.shutting.insert(unit.shutting.end(), groups.begin(), groups.end());
        if (g.parent && g.policy.significant) {
            significant_ended(*g.parent, g.name, now, events);
        }
    }

    /// Hands `leaves` (components of the tree under `root`) to a new unit that stops them in reverse order and,
    /// if `restart`, starts them again in order from `resume_at`. Units already driving any of them (or any of
    /// `before`, which it does not stop) are absorbed, with what they still had to do. Quarantined and given-up
    /// components are left alone by a restart; temporary and disabled ones are stopped, not restarted (a
    /// temporary one never started yet is started).
    RestartUnit& enlist(Group& root, const std::vector<ComponentPtr>& leaves, bool restart, time_point resume_at,
                        const std::vector<ComponentPtr>& before = {}) TASKMON_REQUIRES(mutex_) {
        auto unit = std::make_shared<RestartUnit>(root);
        unit->resume_at = resume_at;
        for (const auto& c : before) {
            if (c->unit && c->unit != unit) {
                absorb(unit, c->unit);
            }
        }
        for (const auto& c : leaves) {
            if (c->unit && c->unit != unit) {
                absorb(unit, c->unit);
            }
        }
        for (const auto& cp : leaves) {
            auto& c = *cp;
            const bool stuck = c.state == ComponentState::gave_up || c.state == ComponentState::quarantined;
            if (restart && stuck) {
                if (c.unit == unit) {
                    c.drive_restart = false;  // absorbed: kept stopped
                    c.restart_counted = false;
                }
                continue;
            }
            if (c.lifecycle == Lifecycle::scheduled) {  // a backoff or trial of its own: the unit replaces it
                transition(c.lifecycle, Lifecycle::idle);
                c.manual_pending = false;
                if (c.counted_in_group) {  // it counts against its group when the unit starts it
                    unit->counted.emplace_back(c.group, *c.counted_in_group);
                    c.counted_in_group.reset();
                }
                ++c.restart_gen;
                c.next_restart.reset();
                asio::post(strand_, [cp] {
                    if (cp->timer) {
                        cp->timer->cancel();
                    }
                });
            }
            c.in_trial = false;
            c.unit = unit;
            c.unit_started = false;
            // A temporary member is started once (its first start), never restarted.
            c.drive_restart = restart && c.enabled && c.factory &&
                              (policy_of(c).restart_type != RestartType::temporary || c.generation == 0);
            if (c.drive_restart) {
                c.state = ComponentState::restarting;
            } else {
                c.restart_counted = false;  // its own restart, replaced by this unit, will not happen
            }
            if (!c.drive_restart && !c.instance &&
                (c.state == ComponentState::restarting || c.state == ComponentState::quarantined)) {
                c.state = ComponentState::stopped;
            }
        }
        for (const auto& c : leaves_of(*unit)) {
            if (c->drive_restart && !c->unit_started) {
                c->next_restart = unit->resume_at;  // absorbed ones too: the unit starts them together
            }
        }
        asio::post(strand_, [self = this->shared_from_this(), unit] { self->advance(unit); });
        return *unit;
    }

    /// Moves what `old` drives into `unit`. `old` by value: the caller's may be a component's own `unit`.
    void absorb(const std::shared_ptr<RestartUnit>& unit, std::shared_ptr<RestartUnit> old) TASKMON_REQUIRES(mutex_) {
        for (const auto& c : leaves_of(*old)) {
            c->unit = unit;
        }
        old->merged = true;
        unit->resume_at = std::max(unit->resume_at, old->resume_at);
        for (auto list : {&RestartUnit::starting, &RestartUnit::restarting, &RestartUnit::shutting}) {
            auto& to = (*unit).*list;
            const auto& from = (*old).*list;
            to.insert(to.end(), from.begin(), from.end());
        }
        unit->counted.insert(unit->counted.end(), old->counted.begin(), old->counted.end());
        old->counted.clear();
        asio::post(strand_, [old] {
            if (old->timer) {
                old->timer->cancel();
            }
        });
    }

    /// What a unit does next (mutex_ held): stop one more component, wait, start one more, or finish.
    struct UnitStep {
        ComponentPtr start;  // call start_restart(start, gen, first_start) next
        std::uint32_t gen = 0;
        bool first_start = false;
        std::optional<time_point> wake;  // look again then (or on the exit / readiness it waits for)
    };

    UnitStep step(RestartUnit& u, time_point now, Events& events) TASKMON_REQUIRES(mutex_) {
        UnitStep next;
        const auto leaves = leaves_of(u);
        if (u.phase == RestartUnit::Phase::stopping) {
            for (auto it = leaves.rbegin(); it != leaves.rend(); ++it) {
                auto& c = **it;
                if (c.unit_started || !c.instance || c.instance->reported_unresponsive) {
                    continue;
                }
                if (c.instance->stop == StopCause::none) {
                    request_stop(*it, closed_ ? StopCause::close : StopCause::group);
                    c.state = c.drive_restart && !closed_ ? ComponentState::restarting : ComponentState::stopping;
                }
                if (now < c.instance->stop_deadline) {
                    next.wake = c.instance->stop_deadline;  // or its exit, whichever comes first
                    return next;
                }
                report_unresponsive(c, now, events);  // it may still exit: it is not started again before
            }
            u.phase = RestartUnit::Phase::waiting;
        }
        if (u.phase == RestartUnit::Phase::waiting) {
            const bool to_start =
                std::any_of(leaves.begin(), leaves.end(), [](const ComponentPtr& c) { return c->drive_restart; });
            if (to_start && !closed_ && now < u.resume_at) {
                next.wake = u.resume_at;
                return next;
            }
            u.phase = RestartUnit::Phase::starting;
            settle_counted(u, now, to_start && !closed_);  // a stop-only unit restarts nothing
        }
        for (const auto& cp : leaves) {
            auto& c = *cp;
            if (!c.drive_restart) {
                continue;
            }
            if (c.unit_started) {
                if (c.instance && c.group->policy.start_after_ready && !ready_time(*c.instance)) {
                    return next;  // on_ready (or its failure) advances
                }
                continue;
            }
            if (closed_ || !c.enabled || !c.factory) {
                c.drive_restart = false;
                c.restart_counted = false;
                if (!c.instance) {
                    c.state = ComponentState::stopped;
                    c.next_restart.reset();
                }
                continue;
            }
            if (c.instance) {
                return next;  // an instance that outlived its stop: never two live instances
            }
            c.unit_started = true;
            transition(c.lifecycle, Lifecycle::scheduled);
            c.manual_pending = false;
            next.start = cp;
            next.gen = ++c.restart_gen;
            next.first_start = c.generation == 0;
            return next;
        }
        finish(u, leaves, now, events);
        return next;
    }

    /// The unit did everything: its components are on their own again, its groups settle.
    void finish(RestartUnit& u, const std::vector<ComponentPtr>& leaves, time_point now, Events& events)
        TASKMON_REQUIRES(mutex_) {
        u.merged = true;                // done: stale timers and posts find nothing to do
        settle_counted(u, now, false);  // (none left: they were settled when it began to start)
        for (const auto& c : leaves) {
            c->unit.reset();
            c->drive_restart = false;
            c->unit_started = false;
        }
        const auto settle = [&](std::vector<Group*>& groups, GroupState from, GroupState to,
                                std::optional<MonitorEventKind> kind) TASKMON_REQUIRES(mutex_) {
            std::vector<Group*> done;  // once each, in the order they were listed (never by address)
            for (auto* g : groups) {
                if (std::find(done.begin(), done.end(), g) != done.end()) {
                    continue;
                }
                done.push_back(g);
                if (g->state != from) {
                    continue;
                }
                g->state = to;
                if (kind == MonitorEventKind::group_restarted) {
                    ++g->restart_count;
                }
                if (kind) {
                    auto e = group_event(*kind, *g, now);
                    for (const auto& m : g->members) {
                        e.members.push_back(m.name());
                    }
                    events.push_back(std::move(e));
                }
            }
        };
        if (closed_) {
            return;
        }
        settle(u.starting, GroupState::starting, GroupState::running, MonitorEventKind::group_started);
        settle(u.restarting, GroupState::restarting, GroupState::running, MonitorEventKind::group_restarted);
        settle(u.shutting, GroupState::shutting_down, GroupState::shut_down, std::nullopt);
    }

    /// Runs unit `u` as far as it can go now (strand_): a stop requested, a component started, a timer armed.
    void advance(const std::shared_ptr<RestartUnit>& u) {
        assert(running_in_strand(strand_));
        for (;;) {
            Events events;
            UnitStep next;
            {
                MutexLock lock{mutex_};
                if (u->merged) {
                    return;
                }
                next = step(*u, Clock::now(), events);
            }
            publish(events);
            if (next.start) {
                start_restart(next.start, next.gen, next.first_start);  // publishes; a failure merges `u` away
                continue;
            }
            if (next.wake) {
                if (!u->timer) {
                    u->timer = std::make_unique<Timer>(strand_);
                }
                u->timer->expires_at(*next.wake);
                u->timer->async_wait([self = this->shared_from_this(), u](std::error_code ec) {
                    if (!ec) {
                        self->advance(u);
                    }
                });
            } else if (u->timer) {
                // Done, or waiting for an exit or a readiness: a stop deadline armed before must not keep the
                // context busy (after close() it would, until that deadline).
                u->timer->cancel();
            }
            maybe_finish_close();
            return;
        }
    }

    // ---- completion handlers (strand_) ---------------------------------------------------------------

    void check_watch(const ComponentPtr& cp) {
        assert(running_in_strand(strand_));
        Events events;
        std::optional<time_point> next;
        ClassifiedMiss classified;
        for (;;) {
            UniqueMutexLock lock{mutex_};
            const auto step = evaluate_watch(cp, Clock::now(), classified, events);
            if (step.classify == LivenessMiss::none) {
                next = step.next;
                break;
            }
            const auto policy = policy_handle(*cp);
            lock.unlock();
            const auto error = std::make_exception_ptr(LivenessTimeout{miss_reason(step.classify)});
            classified = {step.classify, classify(*policy, cp->name, error)};  // user code: outside mutex_
        }
        publish(events);
        complete_removals();
        if (next) {
            if (!cp->watch_timer) {
                cp->watch_timer = std::make_unique<Timer>(strand_);
            }
            cp->watch_timer->expires_at(*next);
            cp->watch_timer->async_wait([self = this->shared_from_this(), cp](std::error_code ec) {
                if (!ec) {
                    self->check_watch(cp);
                }
            });
        } else if (cp->watch_timer) {
            cp->watch_timer->cancel();
        }
    }

    void on_ready(const ComponentPtr& cp, const Liveness* liveness) {
        assert(running_in_strand(strand_));
        Events events;
        {
            MutexLock lock{mutex_};
            auto& i = cp->instance;
            if (!i || i->liveness.get() != liveness || i->stop != StopCause::none || i->ready_reported) {
                return;
            }
            i->ready_reported = true;
            events.push_back(event(MonitorEventKind::ready, *cp, Clock::now()));
        }
        publish(events);
        check_watch(cp);  // the startup deadline is over: the watchdog (and a trial's probation) starts
        std::shared_ptr<RestartUnit> unit;
        {
            MutexLock lock{mutex_};
            unit = cp->unit;
        }
        if (unit) {
            advance(unit);  // an ordered start may be waiting for this member to be ready
        }
    }

    void start_restart(const ComponentPtr& cp, std::uint64_t gen, bool first_start = false) {
        assert(running_in_strand(strand_));
        auto& c = *cp;
        std::shared_ptr<const ComponentFactory> factory;
        Reservation reservation;
        {
            MutexLock lock{mutex_};
            if (gen != c.restart_gen || c.lifecycle != Lifecycle::scheduled || closed_ || c.removing) {
                return;
            }
            // It happens now, whatever the factory does. A restart decided by a counted failure counts also when a
            // restart() merged into it (it only came sooner), and against the group also after a reset() (which
            // clears the component's own history, not its group's).
            const auto now = Clock::now();
            if (std::exchange(c.restart_counted, false)) {
                record_restart(c, now);
            }
            settle_counted(c, now, true);
            transition(c.lifecycle, Lifecycle::starting);
            ++starting_;
            factory = c.factory;
            if (c.state == ComponentState::quarantined && !c.manual_pending) {
                c.in_trial = true;
                ++c.trials;
            }
            reservation = reserve_instance(cp, factory.get());
        }
        std::optional<asio::awaitable<void>> task;
        std::exception_ptr factory_error;
        std::string factory_reason;
        try {
            task.emplace((*factory)(context_of(reservation)));
            if (!task->valid()) {
                throw std::invalid_argument(empty_result(c.name, "the restart factory"));
            }
        } catch (...) {
            factory_error = std::current_exception();
            factory_reason = describe(factory_error);
        }
        Events events;
        UserInputs inputs;
        for (;;) {
            UniqueMutexLock lock{mutex_};
            const bool stopped = closed_ || (!c.enabled && !c.manual_pending) || gen != c.restart_gen || c.removing;
            if (!stopped && factory_error) {
                if (const auto needs = failure_needs(c, std::nullopt, inputs)) {
                    const auto policy = policy_handle(c);
                    lock.unlock();
                    supply(needs, *policy, c, factory_error, inputs);
                    continue;
                }
            }
            --starting_;
            c.manual_pending = false;
            if (stopped || factory_error) {
                transition(c.lifecycle, Lifecycle::idle);
            }
            if (stopped) {
                // Stopped while the factory ran (close, disable or remove): do not start anything.
                c.state = ComponentState::stopped;
                c.in_trial = false;
                c.next_restart.reset();
                if (c.removing) {
                    erase(c, false, events);
                }
            } else if (factory_error) {
                release(reservation);
                ++c.failure_count;
                c.last_error = factory_reason;
                const auto now = Clock::now();
                const auto cls = inputs.cls.value_or(FailureClass::counted);
                auto e = event(MonitorEventKind::factory_failed, c, now);
                e.reason = factory_reason;
                e.failure_class = cls;
                events.push_back(std::move(e));
                // As for an instance's failure: a disabled component (a manual restart() of it) or a temporary one
                // is not restarted automatically.
                after_failure(cp, factory_reason, cls, inputs, now, events);
            } else {
                spawn(cp, std::move(*task), std::move(factory), std::move(reservation), events, !first_start);
            }
            break;
        }
        task.reset();
        publish(events);
        complete_removals();
        maybe_finish_close();
    }

    void on_exit(const ComponentPtr& cp, const std::shared_ptr<Instance>& instance, std::exception_ptr error) {
        assert(running_in_strand(strand_));
        auto& c = *cp;
        auto outcome = classify_exit(error);
        Events events;
        std::shared_ptr<RestartUnit> unit;
        std::shared_ptr<RestartUnit> unit_before;  // a give-up detaches the member from its unit
        UserInputs inputs;
        for (;;) {
            UniqueMutexLock lock{mutex_};
            if (const auto needs = exit_needs(c, *instance, outcome, inputs)) {
                const auto policy = policy_handle(c);
                lock.unlock();
                supply(needs, *policy, c, error, inputs);
                continue;
            }
            unit_before = c.unit;
            if (c.instance == instance) {
                c.instance.reset();
                transition(c.lifecycle, Lifecycle::idle);
                --live_instances_;
                if (instance->reported_in_close) {
                    --waited_in_close_;
                }
            }
            const auto now = Clock::now();
            c.task_cancelled = outcome.kind == ExitOutcome::aborted;
            const auto& policy = policy_of(c);
            if (const auto ready = ready_time(*instance); ready && now - *ready >= policy.reset_backoff_after) {
                c.consecutive = 0;  // it was ready long enough to count as stable
            }
            if (c.removed) {
                if (auto it = detached_.find(std::string_view{c.name}); it != detached_.end() && it->second == cp) {
                    detached_.erase(it);  // its name is free again
                    release_strand(c);
                }
            }
            if (c.watch_timer) {
                c.watch_timer->cancel();  // strand_: nothing left to watch until the next instance
            }
            if (c.spawned) {
                on_exit_spawned(c, *instance, outcome, now, events);
            } else if (instance->stop != StopCause::none || closed_ || c.removing) {
                after_requested_stop(cp, *instance, outcome, inputs, now, events);
            } else if (outcome.kind == ExitOutcome::returned) {
                after_return(cp, *instance, inputs, now, events);
            } else {
                ++c.failure_count;
                c.last_error = outcome.reason;
                const auto cls = inputs.cls.value_or(FailureClass::counted);
                auto e = event(outcome.kind == ExitOutcome::aborted ? MonitorEventKind::cancelled_unexpectedly
                                                                    : MonitorEventKind::failed,
                               c, now);
                e.task_id = instance->id;
                e.reason = outcome.reason;
                e.failure_class = cls;
                events.push_back(std::move(e));
                after_failure(cp, outcome.reason, cls, inputs, now, events);
            }
            unit = c.unit;
            break;
        }
        publish(events);
        complete_removals();
        if (unit) {
            advance(unit);  // it may be waiting for this exit
        }
        if (unit_before && unit_before != unit) {
            advance(unit_before);  // a no-op if it was absorbed
        }
        maybe_finish_close();
    }

    /// The `stopped` event of `instance`, with the reason if it threw while being stopped (also kept in
    /// last_error).
    MonitorEvent stopped_event(Component& c, const Instance& instance, const ExitOutcome& outcome, time_point now)
        TASKMON_REQUIRES(mutex_) {
        auto e = event(MonitorEventKind::stopped, c, now);
        e.task_id = instance.id;
        if (outcome.kind == ExitOutcome::failed) {
            c.last_error = outcome.reason;
            e.reason = outcome.reason;
        }
        return e;
    }

    /// An instance the monitor asked to stop (or any exit once closing or removing) ended (mutex_ held): what
    /// follows depends on who asked — a group unit, restart(), a liveness trip, or a stop for good.
    void after_requested_stop(const ComponentPtr& cp, const Instance& instance, const ExitOutcome& outcome,
                              const UserInputs& inputs, time_point now, Events& events) TASKMON_REQUIRES(mutex_) {
        auto& c = *cp;
        const bool open = !closed_ && !c.removing;
        if (c.unit && instance.stop != StopCause::none && instance.stop != StopCause::liveness && !closed_) {
            // Stopped for a group restart or an ordered stop: the unit decides what follows.
            c.in_trial = false;
            c.state = c.drive_restart && c.enabled ? ComponentState::restarting : ComponentState::stopped;
            events.push_back(stopped_event(c, instance, outcome, now));
        } else if (instance.stop == StopCause::restart && open) {
            if (outcome.kind == ExitOutcome::failed) {
                events.push_back(stopped_event(c, instance, outcome, now));  // it threw while being stopped
            }
            c.in_trial = false;
            c.manual_pending = true;
            transition(c.lifecycle, Lifecycle::scheduled);
            c.state = ComponentState::restarting;
            schedule_start(cp, std::chrono::nanoseconds::zero());
        } else if (instance.stop == StopCause::liveness && open) {
            after_failure(cp, instance.tripped_startup ? "startup timeout" : "watchdog timeout", instance.trip_class,
                          inputs, now, events);
        } else {
            if (c.state != ComponentState::gave_up) {
                c.state = instance.stop == StopCause::none && outcome.kind == ExitOutcome::returned
                              ? ComponentState::completed
                              : ComponentState::stopped;
            }
            c.in_trial = false;
            events.push_back(stopped_event(c, instance, outcome, now));
            if (c.removing) {
                erase(c, false, events);
            }
        }
    }

    /// An instance returned on its own (mutex_ held): a permanent component restarts, others complete.
    void after_return(const ComponentPtr& cp, const Instance& instance, const UserInputs& inputs, time_point now,
                      Events& events) TASKMON_REQUIRES(mutex_) {
        auto& c = *cp;
        const auto& policy = policy_of(c);
        if (c.in_trial) {
            c.in_trial = false;
            close_breaker(c, now, events);  // a trial that finished its work succeeded
        }
        if (policy.restart_type == RestartType::permanent && c.enabled && c.factory) {
            schedule_restart(cp, "completed normally", now, true, inputs, events);
        } else {
            c.state = ComponentState::completed;
            auto e = event(MonitorEventKind::completed, c, now);
            e.task_id = instance.id;
            e.restart_type = policy.restart_type;
            events.push_back(std::move(e));
            member_ended(c, now, events);
        }
    }

    /// The task of a spawned component ended (mutex_ held): one event says how — completed, stopped (close,
    /// remove_and_wait, disable; with the reason if it threw meanwhile), or failed / cancelled_unexpectedly
    /// (counted in failure_count, never restarted) — then it leaves components_ (`removed`), its name free again.
    void on_exit_spawned(Component& c, const Instance& instance, const ExitOutcome& outcome, time_point now,
                         Events& events) TASKMON_REQUIRES(mutex_) {
        auto e = event(MonitorEventKind::completed, c, now);
        e.task_id = instance.id;
        if (instance.stop != StopCause::none) {
            e.kind = MonitorEventKind::stopped;
            c.state = ComponentState::stopped;
            if (outcome.kind == ExitOutcome::failed) {
                c.last_error = outcome.reason;  // it threw while being stopped
                e.reason = outcome.reason;
            }
        } else if (outcome.kind == ExitOutcome::returned) {
            c.state = ComponentState::completed;
            e.restart_type = RestartType::temporary;
        } else {
            e.kind = outcome.kind == ExitOutcome::aborted ? MonitorEventKind::cancelled_unexpectedly
                                                          : MonitorEventKind::failed;
            c.state = ComponentState::failed;
            c.last_error = outcome.reason;
            e.reason = outcome.reason;
            e.failure_count = ++c.failure_count;
        }
        events.push_back(std::move(e));
        erase(c, false, events);  // no-op if remove_and_wait() already erased it (unresponsive)
    }

    /// Completes the remove_and_wait() calls whose component left components_: without error once its
    /// instance exited, with timed_out if it outlived its shutdown_timeout.
    void complete_removals() {
        assert(running_in_strand(strand_));
        MutexLock lock{mutex_};  // completion only posts the handlers
        if (!remove_done_) {
            return;
        }
        remove_done_ = false;
        const auto component = [](const std::shared_ptr<void>& payload) {
            return static_cast<Component*>(payload.get());
        };
        remove_waiters_.complete_matching(asio::error_code{}, [&](const std::shared_ptr<void>& c) {
            return component(c)->removed && !component(c)->instance;
        });
        remove_waiters_.complete_matching(asio::error::timed_out,
                                          [&](const std::shared_ptr<void>& c) { return component(c)->removed; });
    }

    /// Hands queued escalations to waiting async_wait_escalation() calls, oldest first.
    void deliver_escalations() {
        assert(running_in_strand(strand_));
        for (;;) {
            MonitorEvent e;
            {
                MutexLock lock{mutex_};
                if (escalations_.empty() || escalation_waiters_.empty()) {
                    break;
                }
                e = std::move(escalations_.front());
                escalations_.erase(escalations_.begin());
            }
            escalation_waiters_.complete_front(asio::error_code{}, std::move(e));
        }
        if (close_completed_) {
            escalation_waiters_.complete_all(asio::error::operation_aborted);
        }
    }

    void begin_close() {
        assert(running_in_strand(strand_));
        std::chrono::nanoseconds longest{-1};
        Events events;
        time_point now;
        {
            MutexLock lock{mutex_};
            closing_ = true;
            now = Clock::now();
            for (auto& [name, c] : components_) {
                cancel_pending_restart(c, ComponentState::stopped, events);
                if (c->timer) {
                    c->timer->cancel();  // backoff timers first: no factory runs after close starts
                }
            }
            // Each instance outside a group is waited for up to its own shutdown_timeout (or the stop deadline it
            // had already), then reported: close_deadlines_, in deadline order, on the one close timer.
            const auto stop = [&](const ComponentPtr& c) TASKMON_REQUIRES(mutex_) {
                if (c->instance && c->group && c->instance->reported_unresponsive) {
                    // Already reported (a requested stop it ignored): its group's stop skips it; close waits its
                    // shutdown_timeout for it, as for any instance.
                    const auto own = policy_of(*c).shutdown_timeout;
                    close_deadlines_.emplace_back(now + std::chrono::duration_cast<duration>(own), c);
                    return;
                }
                if (!c->instance || c->group) {
                    return;
                }
                request_stop(c, StopCause::close);
                const auto own = policy_of(*c).shutdown_timeout;
                longest = std::max<std::chrono::nanoseconds>(longest, own);
                const auto& i = *c->instance;
                const auto deadline =
                    i.reported_unresponsive ? now + std::chrono::duration_cast<duration>(own) : i.stop_deadline;
                close_deadlines_.emplace_back(deadline, c);
            };
            // Groups stop in reverse start order, one member at a time: a tree may take the sum of its
            // members' shutdown_timeouts.
            for (auto& [name, g] : groups_) {
                if (g->state != GroupState::gave_up && g->state != GroupState::shut_down) {
                    g->state = GroupState::stopped;  // the end states keep telling how the group ended
                }
                if (g->parent) {
                    continue;
                }
                std::vector<ComponentPtr> leaves;
                leaves_of(*g, leaves);
                std::chrono::nanoseconds sum{};
                bool any = false;
                for (const auto& c : leaves) {
                    if (c->instance) {
                        sum += policy_of(*c).shutdown_timeout;
                        any = true;
                    }
                }
                if (any) {
                    longest = std::max(longest, sum);
                }
                enlist(*g, leaves, false, now);
            }
            for (auto& [name, c] : components_) {
                stop(c);
            }
            for (auto& [name, c] : detached_) {
                stop(c);
            }
            std::stable_sort(close_deadlines_.begin(), close_deadlines_.end(),
                             [](const auto& a, const auto& b) { return a.first < b.first; });
        }
        publish(events);
        if (longest >= std::chrono::nanoseconds::zero()) {
            close_end_ = now + std::chrono::duration_cast<duration>(longest);
            arm_close_timer(close_deadlines_.empty() ? close_end_ : close_deadlines_.front().first);
        }
        maybe_finish_close();
    }

    void arm_close_timer(time_point at) {
        assert(running_in_strand(strand_));
        close_timer_.expires_at(at);
        close_timer_.async_wait([self = this->shared_from_this()](std::error_code ec) {
            if (!ec) {
                self->on_close_timer();
            }
        });
    }

    /// A deadline of close() passed: the instances outside groups whose own deadline it was are reported (or, if
    /// they were reported before, no longer waited for); at the end of close()'s longest wait everything still
    /// running is reported and the close completes.
    void on_close_timer() {
        assert(running_in_strand(strand_));
        if (close_completed_) {
            return;  // queued before maybe_finish_close() cancelled the timer
        }
        Events events;
        std::optional<time_point> next;
        {
            MutexLock lock{mutex_};
            const auto now = Clock::now();
            for (; next_close_deadline_ < close_deadlines_.size(); ++next_close_deadline_) {
                const auto& [deadline, cp] = close_deadlines_[next_close_deadline_];
                if (deadline > now) {
                    break;
                }
                if (cp->instance && !cp->instance->reported_unresponsive) {
                    report_unresponsive(*cp, now, events);
                } else if (cp->instance) {
                    waited_in_close(*cp->instance);
                }
            }
            if (next_close_deadline_ < close_deadlines_.size()) {
                next = close_deadlines_[next_close_deadline_].first;
            } else if (now < close_end_) {
                next = close_end_;
            } else {
                for (auto& [name, c] : components_) {
                    if (c->instance && !c->instance->reported_unresponsive) {
                        report_unresponsive(*c, now, events);
                    }
                }
            }
        }
        publish(events);
        if (next) {
            arm_close_timer(*next);
            maybe_finish_close();
        } else {
            finish_close();
        }
    }

    void maybe_finish_close() {
        assert(running_in_strand(strand_));
        {
            MutexLock lock{mutex_};
            if (!closing_ || close_completed_ || starting_ != 0) {
                return;
            }
            // Done once every instance exited, or was waited for by this close up to its shutdown_timeout and
            // reported (a group's members, stopped one by one, are reported as their turn ends). A count, not a
            // scan: a scan at every exit made closing n components cost n^2 (100,000 took 5.9 s instead of 0.8).
            if (live_instances_ != waited_in_close_) {
                return;
            }
        }
        close_timer_.cancel();
        finish_close();
    }

    void finish_close() {
        assert(running_in_strand(strand_));
        if (close_completed_) {
            return;
        }
        close_completed_ = true;
        MonitorEvent e;
        e.kind = MonitorEventKind::closed;
        {
            MutexLock lock{mutex_};
            e.sequence = ++next_sequence_;
            e.time = wall(Clock::now());
            e.count = components_.size();
            for (const auto& [name, c] : components_) {
                if (c->instance) {
                    ++e.unresponsive;
                }
            }
            e.unresponsive += detached_.size();
        }
        publish(std::span<const MonitorEvent>{&e, 1});
        close_waiters_.complete_all(asio::error_code{});
        remove_waiters_.complete_all(asio::error::timed_out);  // still running when close() gave up waiting
        deliver_escalations();
    }

    /// Logs `events`, then hands them to the listeners (on this thread, outside mutex_). Never throws: spdlog
    /// passes on what a sink throws unless it is a std::exception (and an error handler may throw), a listener
    /// may throw anything, and neither must break supervision or leave close() hanging.
    void publish(std::span<const MonitorEvent> events) const noexcept {
        for (const auto& e : events) {
            try {
                log_event(*logger_, e);
            } catch (...) {  // NOLINT(bugprone-empty-catch): nowhere left to report it
            }
        }
        listeners_->publish(events, [this](const MonitorEvent& e, const std::exception_ptr& error) noexcept {
            try {
                log_listener_error(*logger_, e, error);
            } catch (...) {  // NOLINT(bugprone-empty-catch): nowhere left to report it
            }
        });
    }

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
    // Keyed by a view of the component's own name (the record outlives its entry).
    std::map<std::string_view, ComponentPtr, std::less<>> components_ TASKMON_GUARDED_BY(mutex_);
    // Removed, but their instance outlived shutdown_timeout: the name stays taken until that instance exits, so
    // that no two live instances ever share a name.
    std::map<std::string_view, ComponentPtr, std::less<>> detached_ TASKMON_GUARDED_BY(mutex_);
    std::map<std::string, std::unique_ptr<Group>, std::less<>> groups_ TASKMON_GUARDED_BY(mutex_);  // never shrinks
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
