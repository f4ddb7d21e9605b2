// taskmon — coroutine supervision for standalone Asio.
// SPDX-License-Identifier: MIT
//
// MonitorState's component records: validation, strands, stats, events, instances started and stopped, restarts
// scheduled (internal).
// The definitions are `inline`, as they were inside the class: GCC gives functions declared inline larger
// inlining limits, and the hot paths (restart, start and close) depend on it.
#pragma once

#include <taskmon/detail/monitor_state.hpp>

namespace taskmon::detail {

template <typename Clock>
inline void MonitorState<Clock>::check_task(const asio::awaitable<void>& task, const char* what,
                                            const std::string& name) {
    if (!task.valid()) {
        throw std::invalid_argument(
            fmt::format("{}: the coroutine of component '{}' is {}", what, name, empty_awaitable));
    }
}

template <typename Clock>
inline auto MonitorState<Clock>::empty_result(const std::string& name, std::string_view whose) -> std::string {
    return fmt::format("{} of component '{}' returned {}", whose, name, empty_awaitable);
}

template <typename Clock>
inline void MonitorState<Clock>::check_open(const char* what) const {
    if (closed_) {
        throw MonitorClosed(std::string{what} + ": the TaskMonitor is closed");
    }
}

template <typename Clock>
inline void MonitorState<Clock>::check_not_detached(const std::string& name, const std::string& what) const {
    if (detached_.count(std::string_view{name}) != 0) {
        throw std::invalid_argument(what + ": component '" + name +
                                    "' was removed but its instance still runs (it ignored cancellation past "
                                    "its shutdown_timeout); the name is free once that instance exits");
    }
}

template <typename Clock>
inline bool MonitorState<Clock>::name_free(std::string_view name) const {
    return detached_.count(name) == 0 && components_.find(name) == components_.end() && !engine_.contains(name);
}

template <typename Clock>
inline void MonitorState<Clock>::check_not_registered(const std::string& name, const char* what) const {
    check_not_detached(name, what);
    auto it = components_.find(std::string_view{name});
    if (it != components_.end() && (*it)->membership != Membership::declared) {
        throw std::invalid_argument(std::string{what} + ": duplicate component name '" + name + "'");
    }
    if (engine_.contains(name)) {
        throw std::invalid_argument(std::string{what} + ": '" + name + "' is the name of a group");
    }
}

template <typename Clock>
inline void MonitorState<Clock>::check_known(const std::vector<std::string>& names, const char* what) const {
    for (const auto& name : names) {
        if (components_.find(std::string_view{name}) == components_.end()) {
            throw std::invalid_argument(std::string{what} + ": unknown component " + single_quoted(name));
        }
    }
}

template <typename Clock>
inline auto MonitorState<Clock>::open_component(const std::string& name, const char* what) const
    -> const ComponentPtr& {
    check_open(what);
    check_known({name}, what);
    check_not_removing(name, what);
    return *components_.find(std::string_view{name});
}

template <typename Clock>
inline void MonitorState<Clock>::check_not_removing(const std::string& name, const char* what) const {
    if (is_leaving((*components_.find(std::string_view{name}))->membership)) {
        throw std::invalid_argument(std::string{what} + ": component '" + name + "' is being removed");
    }
}

template <typename Clock>
inline void MonitorState<Clock>::warn_if_max_backoff_unreachable(const RestartPolicy& p,
                                                                 const std::string& whose) const noexcept {
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

template <typename Clock>
inline auto MonitorState<Clock>::find_or_create(const std::string& name) -> ComponentPtr {
    auto it = components_.find(std::string_view{name});
    if (it != components_.end()) {
        return *it;
    }
    auto c = make_component(name);
    insert(c);
    return c;
}

template <typename Clock>
inline auto MonitorState<Clock>::strand_for_next_component() -> const asio::any_io_executor& {
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

template <typename Clock>
inline void MonitorState<Clock>::release_strand(const Component& c) {
    if (strand_pool_size_ == 0) {
        free_strands_.push_back(c.strand);
    }
}

template <typename Clock>
inline auto MonitorState<Clock>::stats_of(const Component& c, time_point now) const -> ComponentStats {
    ComponentStats s;
    s.enabled = c.enabled;
    s.restart_count = c.restarts().restart_count;
    s.state = c.state;
    s.is_restarting = c.state == ComponentState::restarting;
    s.task_done = !c.live();
    s.task_cancelled = c.task_cancelled;
    if (c.restarts().restart_count > 0) {
        s.last_restart_time = wall(c.restarts().last_restart);
    }
    s.last_error = c.restarts().last_error;
    s.failure_count = c.restarts().failure_count;
    const auto window = std::chrono::duration_cast<duration>(policy_of(c).restart_window);
    s.restarts_in_window = static_cast<int>(std::count_if(c.restarts().window.begin(), c.restarts().window.end(),
                                                          [&](const time_point& t) { return t > now - window; }));
    if (c.restarts().next_restart) {
        (c.state == ComponentState::quarantined ? s.next_trial_at : s.next_restart_at) =
            wall(*c.restarts().next_restart);
    }
    s.task_id = c.task_id;
    s.generation = c.generation;
    s.in_trial = c.in_trial && c.live();
    s.quarantine_cooldown = c.restarts().quarantine_cooldown;
    if (c.group) {
        s.group = c.group->name;
    }
    s.spawned = c.spawned;
    if (const auto& i = c.live()) {
        if (i->stop == StopCause::none) {  // a stop requested: its own deadline applies, not the liveness check's
            if (const auto deadline = liveness_deadline(liveness_facts(c), policy_of(c))) {
                s.liveness_deadline = wall(deadline->at);
            }
        }
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

template <typename Clock>
inline auto MonitorState<Clock>::event(MonitorEventKind kind, Component& c, time_point now) -> MonitorEvent {
    MonitorEvent e;
    e.kind = kind;
    e.component = c.name;
    e.sequence = ++next_sequence_;
    e.time = wall(now);
    e.task_id = c.task_id;
    e.restart_count = c.restarts().restart_count;
    e.failure_count = c.restarts().failure_count;
    e.spawned = c.spawned;
    if (c.group) {
        e.group = c.group->name;
    }
    if (kind == MonitorEventKind::restarted) {
        e.restart_reason = c.restarts().restart_cause.value_or(RestartReason::unknown);
        switch (e.restart_reason) {
            case RestartReason::manual:
            case RestartReason::group:
            case RestartReason::unknown: break;  // started without a backoff of its own
            case RestartReason::quarantine_trial:
                e.attempt = c.restarts().trials;
                e.delay = c.restarts().quarantine_cooldown;
                e.reason = c.restarts().last_error;  // the failure that opened the breaker
                break;
            case RestartReason::completed:
                e.attempt = c.restarts().consecutive;
                e.delay = c.restarts().last_delay;
                e.reason = completed_normally;
                break;
            default:  // a failure: its text is the component's last error
                e.attempt = c.restarts().consecutive;
                e.delay = c.restarts().last_delay;
                e.reason = c.restarts().last_error;
                break;
        }
    }
    const auto cause = c.restarts().restart_cause;
    if (const auto next = next_restart_cause(cause, kind, c.group != nullptr); next != cause) {
        c.edit_restarts().restart_cause = next;  // (a component that never failed has no cause to forget)
    }
    return e;
}

template <typename Clock>
inline auto MonitorState<Clock>::group_event(MonitorEventKind kind, const Group& g, time_point now) -> MonitorEvent {
    MonitorEvent e;
    e.kind = kind;
    e.group = g.name;
    e.sequence = ++next_sequence_;
    e.time = wall(now);
    return e;
}

template <typename Clock>
inline auto MonitorState<Clock>::reserve_instance(const ComponentPtr& c, const ComponentFactory* factory,
                                                  const RestartPolicy* policy) -> Reservation {
    Reservation r;
    r.id = ++next_task_id_;
    const auto& p = policy ? *policy : policy_of(*c);
    if ((factory && factory->takes_context()) || has_liveness(p)) {
        r.liveness = std::make_shared<Liveness>(r.id, c->generation + 1, now_ns(), this->weak_from_this(), c);
        if (p.startup_timeout == std::chrono::milliseconds::zero()) {
            r.liveness->mark_ready(now_ns());
        }
    }
    return r;
}

template <typename Clock>
inline void MonitorState<Clock>::release(const Reservation& r) {
    if (next_task_id_ == r.id) {
        --next_task_id_;
    }
}

template <typename Clock>
inline void MonitorState<Clock>::spawn(const ComponentPtr& cp, asio::awaitable<void> task,
                                       std::shared_ptr<const ComponentFactory> origin, Reservation reservation,
                                       Events& events, bool is_restart) {
    auto& c = *cp;
    const auto now = Clock::now();
    const bool watched = static_cast<bool>(reservation.liveness);
    transition(c.lifecycle, Lifecycle::live);
    auto& instance = c.instance;
    instance = Instance{now, std::move(reservation.liveness)};
    if (origin == c.factory) {
        instance.from_factory = origin != nullptr;
    } else if (origin) {
        c.edit_restarts().retired_factory = std::move(origin);  // replaced while its factory ran
    }
    ++live_instances_;
    ++c.generation;
    c.manual_pending = false;
    c.clear_next_restart();
    c.task_id = reservation.id;
    c.state = ComponentState::running;
    c.task_cancelled = false;
    if (is_restart) {
        auto& restarts = c.edit_restarts();
        ++restarts.restart_count;
        restarts.last_restart = now;
        events.push_back(event(MonitorEventKind::restarted, c, now));
        if (c.in_trial) {
            events.push_back(event(MonitorEventKind::trial_started, c, now));
        }
    } else if (!c.spawned || observed(routine_level(true))) {
        events.push_back(event(MonitorEventKind::started, c, now));  // (a spawned task's, only if anyone sees it)
    }
    if (watched && policy_of(c).startup_timeout > std::chrono::milliseconds::zero() &&
        instance.liveness->ready_at() != InstanceLiveness::never) {
        // ready() came from the factory itself, before the instance existed: its notice found no instance.
        instance.ready_reported = true;
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
    asio::post(*c.strand, [self = this->shared_from_this(), cp, task = std::move(task)]() mutable {
        auto slot = cp->stop_signal.slot();
        const auto& strand = *cp->strand;
        asio::co_spawn(strand, std::move(task),
                       asio::bind_cancellation_slot(slot, InstanceExit<MonitorState>{std::move(self), std::move(cp)}));
    });
}

template <typename Clock>
inline void MonitorState<Clock>::request_stop(const ComponentPtr& cp, StopCause cause) {
    auto& c = *cp;
    auto* live = c.live();
    if (!live) {
        return;
    }
    auto& instance = *live;
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
        asio::post(*c.strand, [cp] { cp->stop_signal.emit(asio::cancellation_type::terminal); });
    }
}

template <typename Clock>
inline void MonitorState<Clock>::start_now(const ComponentPtr& cp) {
    auto& c = *cp;
    if (c.membership == Membership::declared) {
        transition(c.membership, Membership::registered);  // starting a component known by its factory registers it
    }
    c.manual_pending = true;
    transition(c.lifecycle, Lifecycle::scheduled);
    c.state = ComponentState::restarting;
    schedule_start(cp, std::chrono::nanoseconds::zero());
}

template <typename Clock>
inline void MonitorState<Clock>::clear_budget(Component& c) {
    c.restart_counted = false;  // a restart still pending counts against no budget of its own: a fresh one
    c.in_trial = false;
    if (auto* r = c.history.get()) {
        r->window.clear();
        r->consecutive = 0;
        r->last_delay = {};
        r->quarantine_cooldown = {};
        r->trials = 0;
    }
}

template <typename Clock>
inline void MonitorState<Clock>::cancel_pending_restart(const ComponentPtr& cp, ComponentState new_state,
                                                        Events& events) {
    auto& c = *cp;
    if (c.lifecycle != Lifecycle::scheduled && c.lifecycle != Lifecycle::starting) {
        return;
    }
    events.push_back(event(MonitorEventKind::restart_cancelled, c, Clock::now()));
    if (c.lifecycle == Lifecycle::scheduled) {
        transition(c.lifecycle, Lifecycle::idle);  // a factory already running finds restart_gen changed
    }
    c.restart_counted = false;
    Engine::settle_counted(c, Clock::now(), false);
    c.manual_pending = false;
    ++c.restart_gen;
    c.clear_next_restart();
    if (!c.live()) {
        c.state = new_state;
    }
    asio::post(strand_, [cp] {
        if (cp->timer) {
            cp->timer->cancel();
        }
    });
}

template <typename Clock>
inline void MonitorState<Clock>::erase(Component& c, bool unresponsive, Events& events) {
    auto it = components_.find(std::string_view{c.name});
    if (it == components_.end() || it->get() != &c) {
        return;
    }
    if (unresponsive) {
        detached_.insert(*it);  // its strand is released at its exit
    } else {
        release_strand(c);
    }
    components_.erase(it);
    transition(c.membership, Membership::removed);
    if (unresponsive || observed(routine_level(c.spawned))) {  // else a routine line that nothing would receive
        auto e = event(MonitorEventKind::removed, c, Clock::now());
        e.unresponsive = unresponsive ? 1 : 0;
        events.push_back(std::move(e));
    }
    remove_done_ = true;
}

template <typename Clock>
inline void MonitorState<Clock>::schedule_start(const ComponentPtr& cp, std::chrono::nanoseconds delay) {
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

}  // namespace taskmon::detail
