// taskmon — coroutine supervision for standalone Asio.
// SPDX-License-Identifier: MIT
//
// MonitorState's exits and failures: what follows an instance's exit or a factory's throw, with the user code it needs
// run outside mutex_ (internal).
// The definitions are `inline`, as they were inside the class: GCC gives functions declared inline larger
// inlining limits, and the hot paths (restart, start and close) depend on it.
#pragma once

#include <taskmon/detail/monitor_state.hpp>

namespace taskmon::detail {

template <typename Clock>
inline auto MonitorState<Clock>::failure_needs(const Component& c, std::optional<FailureClass> cls,
                                               const UserInputs& inputs) const -> Needs {
    Needs needs;
    const auto& policy = policy_of(c);
    if (!cls && !inputs.cls && policy.classify_failure) {
        needs.cls = true;
        return needs;  // the class decides whether a draw is needed
    }
    const auto route = route_failure(failure_facts(c), cls.value_or(inputs.cls.value_or(FailureClass::counted)));
    needs.draw = route == FailureRoute::restart && needs_draw(history_of(c), policy) && !inputs.drawn;
    return needs;
}

template <typename Clock>
inline auto MonitorState<Clock>::exit_needs(const Component& c, const Instance& instance, const ExitOutcome& outcome,
                                            const UserInputs& inputs) const -> Needs {
    if (c.spawned) {
        return {};
    }
    if (instance.stop != StopCause::none || closed_ || is_leaving(c.membership)) {
        const bool tripped = instance.stop == StopCause::liveness && !closed_ && !is_leaving(c.membership);
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

template <typename Clock>
inline void MonitorState<Clock>::supply(const Needs& needs, const RestartPolicy& policy, const Component& c,
                                        const std::exception_ptr& error, UserInputs& inputs) const noexcept {
    if (needs.cls) {
        inputs.cls = classify(policy, c.name, error);
    }
    if (needs.draw) {
        inputs.drawn = true;
        inputs.draw = draw(policy, c.name);
    }
}

template <typename Clock>
inline auto MonitorState<Clock>::policy_handle(const Component& c) const -> std::shared_ptr<const RestartPolicy> {
    return c.own_policy ? c.own_policy : std::shared_ptr<const RestartPolicy>{this->shared_from_this(), &policy_};
}

template <typename Clock>
inline auto MonitorState<Clock>::draw(const RestartPolicy& policy, const std::string& name) const noexcept
    -> std::optional<double> {
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

template <typename Clock>
inline auto MonitorState<Clock>::failure_facts(const Component& c) const -> FailureFacts {
    return {policy_of(c).restart_type, c.enabled, static_cast<bool>(c.factory), c.in_trial,
            c.restarts().unit && c.unit_role == UnitRole::restart};
}

template <typename Clock>
inline auto MonitorState<Clock>::classify(const RestartPolicy& policy, const std::string& name,
                                          const std::exception_ptr& error) const noexcept -> FailureClass {
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

template <typename Clock>
inline void MonitorState<Clock>::after_failure(const ComponentPtr& cp, const std::string& reason, FailureClass cls,
                                               const UserInputs& inputs, time_point now, Events& events) {
    auto& c = *cp;
    const auto route = route_failure(failure_facts(c), cls);
    switch (route) {
        case FailureRoute::ends_temporary:
        case FailureRoute::ends_disabled:
        case FailureRoute::ends_without_factory:
            c.in_trial = false;  // a trial that ends here is not resumed by a later manual restart
            c.clear_next_restart();
            c.state = ComponentState::failed;
            if (route == FailureRoute::ends_disabled) {
                events.push_back(event(MonitorEventKind::not_enabled, c, now));
            } else if (route == FailureRoute::ends_without_factory) {
                events.push_back(event(MonitorEventKind::no_factory, c, now));
            }
            engine_.member_ended(c, now, events);
            return;
        case FailureRoute::gives_up:
            give_up(cp, give_up_decision(policy_of(c), c.restarts().quarantine_cooldown, true, now), reason, now,
                    events);
            return;
        case FailureRoute::joins_group_restart: c.state = ComponentState::restarting; return;
        case FailureRoute::restart:
            schedule_restart(cp, reason, now, cls != FailureClass::not_counted, inputs, events);
            return;
    }
}

template <typename Clock>
inline void MonitorState<Clock>::schedule_restart(const ComponentPtr& cp, const std::string& reason, time_point now,
                                                  bool counted, const UserInputs& inputs, Events& events) {
    auto& c = *cp;
    const auto& policy = policy_of(c);
    forget_restarts_before(c.edit_restarts().window, policy.restart_window, now);
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
    // Who carries the restart out is decided first: a group that restarts the member (or gives up) takes it
    // over, and the member schedules no restart of its own. Its backoff counts in both cases: the next restart
    // of its own backs off further, and a group restart waits the member's backoff.
    const Member member{cp, nullptr};
    const auto verdict =
        c.group ? engine_.verdict(*c.group, member, now, restart->at, counted) : GroupVerdict::member_restarts;
    c.edit_restarts().consecutive = restart->attempt;
    c.edit_restarts().last_delay = restart->delay;
    c.restart_counted = counted;
    c.manual_pending = false;
    c.state = ComponentState::restarting;
    if (verdict != GroupVerdict::gives_up) {  // else no restart follows: the group's give-up says why
        auto e = event(MonitorEventKind::restart_scheduled, c, now);
        e.attempt = restart->attempt;
        e.delay = restart->delay;
        e.reason = reason;
        events.push_back(std::move(e));
    }
    if (c.group) {
        engine_.member_failed(verdict, *c.group, member, reason, restart->delay, restart->at, counted, now, events);
    }
    if (verdict != GroupVerdict::member_restarts) {
        return;  // the group carries it out
    }
    transition(c.lifecycle, Lifecycle::scheduled);
    c.edit_restarts().next_restart = restart->at;
    schedule_start(cp, restart->delay);
}

template <typename Clock>
inline void MonitorState<Clock>::give_up(const ComponentPtr& cp, const RestartDecision<time_point>& decision,
                                         const std::string& reason, time_point now, Events& events) {
    auto& c = *cp;
    const auto& policy = policy_of(c);
    // It failed on its own while a group restart stopped the others: that restart must not start it again.
    Engine::release_unstarted(c);
    if (const auto* q = std::get_if<QuarantineUntil<time_point>>(&decision)) {
        quarantine(cp, *q, reason, now, events);
        return;
    }
    const auto& gave_up = std::get<GiveUp>(decision);
    c.state = ComponentState::gave_up;
    c.clear_next_restart();
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
        engine_.give_up(*c.group, c.name, std::nullopt, "member '" + c.name + "' escalated: " + reason,
                        policy.base_backoff, now, events);
    } else if (gave_up.mode == GiveUpMode::escalate) {
        auto escalation = e;
        escalation.kind = MonitorEventKind::escalated;
        events.push_back(std::move(e));
        escalate(std::move(escalation), events);
    } else {
        events.push_back(std::move(e));
        engine_.member_ended(c, now, events);
    }
}

template <typename Clock>
inline void MonitorState<Clock>::quarantine(const ComponentPtr& cp, const QuarantineUntil<time_point>& q,
                                            const std::string& reason, time_point now, Events& events) {
    auto& c = *cp;
    c.edit_restarts().quarantine_cooldown = q.cooldown;
    c.state = ComponentState::quarantined;
    transition(c.lifecycle, Lifecycle::scheduled);
    c.restart_counted = false;
    c.manual_pending = false;
    c.edit_restarts().next_restart = q.until;
    auto e = event(MonitorEventKind::quarantined, c, now);
    e.delay = c.restarts().quarantine_cooldown;
    e.attempt = c.restarts().trials;
    e.reason = reason;
    events.push_back(std::move(e));
    schedule_start(cp, c.restarts().quarantine_cooldown);
}

template <typename Clock>
inline void MonitorState<Clock>::close_breaker(Component& c, time_point now, Events& events) {
    clear_budget(c);
    events.push_back(event(MonitorEventKind::quarantine_closed, c, now));
}

template <typename Clock>
inline void MonitorState<Clock>::start_restart(const ComponentPtr& cp, std::uint64_t gen, bool first_start) {
    assert(running_in_strand(strand_));
    auto& c = *cp;
    std::shared_ptr<const ComponentFactory> factory;
    Reservation reservation;
    {
        MutexLock lock{mutex_};
        if (gen != c.restart_gen || c.lifecycle != Lifecycle::scheduled || closed_ || is_leaving(c.membership)) {
            return;
        }
        // It happens now, whatever the factory does. A restart decided by a counted failure counts also when a
        // restart() merged into it (it only came sooner), and against the group also after a reset() (which
        // clears the component's own history, not its group's).
        const auto now = Clock::now();
        if (c.restart_counted) {
            c.restart_counted = false;
            remember_restart(c.edit_restarts().window, now);  // a counted restart joins the sliding window
        }
        Engine::settle_counted(c, now, true);
        transition(c.lifecycle, Lifecycle::starting);
        ++starting_;
        factory = c.factory;
        if (c.state == ComponentState::quarantined && !c.manual_pending) {
            c.in_trial = true;
            ++c.edit_restarts().trials;
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
        const bool stopped =
            closed_ || (!c.enabled && !c.manual_pending) || gen != c.restart_gen || is_leaving(c.membership);
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
            c.clear_next_restart();
            if (is_leaving(c.membership)) {
                erase(c, false, events);
            }
        } else if (factory_error) {
            release(reservation);
            ++c.edit_restarts().failure_count;
            c.edit_restarts().last_error = factory_reason;
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

template <typename Clock>
inline void MonitorState<Clock>::on_exit(const ComponentPtr& cp, std::exception_ptr error) {
    assert(running_in_strand(strand_));
    auto& c = *cp;
    // The exit is its live instance's: no other instance starts before this exit is handled. Its facts stay in the
    // record once the lifecycle leaves live, until the next start, which cannot happen before this returns.
    const Instance& instance = c.instance;
    auto outcome = classify_exit(error);
    Events events;
    std::shared_ptr<RestartUnit> unit;
    std::shared_ptr<RestartUnit> unit_before;  // a give-up detaches the member from its unit
    UserInputs inputs;
    for (;;) {
        UniqueMutexLock lock{mutex_};
        if (const auto needs = exit_needs(c, instance, outcome, inputs)) {
            const auto policy = policy_handle(c);
            lock.unlock();
            supply(needs, *policy, c, error, inputs);
            continue;
        }
        unit_before = c.restarts().unit;
        assert(c.live());
        transition(c.lifecycle, Lifecycle::idle);
        --live_instances_;
        if (instance.reported_in_close) {
            --waited_in_close_;
        }
        if (c.history) {
            c.history->retired_factory.reset();  // its coroutine frame is gone (co_spawn ended before this)
        }
        const auto now = Clock::now();
        c.task_cancelled = outcome.kind == ExitOutcome::aborted;
        const auto& policy = policy_of(c);
        if (const auto ready = ready_time(instance); c.history && ready && now - *ready >= policy.reset_backoff_after) {
            c.history->consecutive = 0;  // it was ready long enough to count as stable
        }
        if (c.membership == Membership::removed) {
            if (auto it = detached_.find(std::string_view{c.name}); it != detached_.end() && *it == cp) {
                detached_.erase(it);  // its name is free again
                release_strand(c);
            }
        }
        disarm_watch(cp);  // strand_: nothing left to watch until the next instance
        if (c.spawned) {
            on_exit_spawned(c, instance, outcome, now, events);
        } else if (instance.stop != StopCause::none || closed_ || is_leaving(c.membership)) {
            after_requested_stop(cp, instance, outcome, inputs, now, events);
        } else if (outcome.kind == ExitOutcome::returned) {
            after_return(cp, inputs, now, events);
        } else {
            ++c.edit_restarts().failure_count;
            c.edit_restarts().last_error = outcome.reason;
            const auto cls = inputs.cls.value_or(FailureClass::counted);
            auto e = event(outcome.kind == ExitOutcome::aborted ? MonitorEventKind::cancelled_unexpectedly
                                                                : MonitorEventKind::failed,
                           c, now);
            e.reason = outcome.reason;
            e.failure_class = cls;
            events.push_back(std::move(e));
            after_failure(cp, outcome.reason, cls, inputs, now, events);
        }
        c.instance.liveness.reset();  // nothing reads it once the instance is gone: its bytes go now
        unit = c.restarts().unit;
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

template <typename Clock>
inline auto MonitorState<Clock>::stopped_event(Component& c, const ExitOutcome& outcome, time_point now)
    -> MonitorEvent {
    auto e = event(MonitorEventKind::stopped, c, now);
    if (outcome.kind == ExitOutcome::failed) {
        c.edit_restarts().last_error = outcome.reason;
        e.reason = outcome.reason;
    }
    return e;
}

template <typename Clock>
inline void MonitorState<Clock>::after_requested_stop(const ComponentPtr& cp, const Instance& instance,
                                                      const ExitOutcome& outcome, const UserInputs& inputs,
                                                      time_point now, Events& events) {
    auto& c = *cp;
    const bool open = !closed_ && !is_leaving(c.membership);
    if (c.restarts().unit && instance.stop != StopCause::none && instance.stop != StopCause::liveness && !closed_) {
        // Stopped for a group restart or an ordered stop: the unit decides what follows.
        c.in_trial = false;
        c.state = unit_restarts(c.unit_role) && c.enabled ? ComponentState::restarting : ComponentState::stopped;
        events.push_back(stopped_event(c, outcome, now));
    } else if (instance.stop == StopCause::restart && open) {
        if (outcome.kind == ExitOutcome::failed) {
            events.push_back(stopped_event(c, outcome, now));  // it threw while being stopped
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
        events.push_back(stopped_event(c, outcome, now));
        if (is_leaving(c.membership)) {
            erase(c, false, events);
        }
    }
}

template <typename Clock>
inline void MonitorState<Clock>::after_return(const ComponentPtr& cp, const UserInputs& inputs, time_point now,
                                              Events& events) {
    auto& c = *cp;
    const auto& policy = policy_of(c);
    if (c.in_trial) {
        c.in_trial = false;
        close_breaker(c, now, events);  // a trial that finished its work succeeded
    }
    if (policy.restart_type == RestartType::permanent && c.enabled && c.factory) {
        schedule_restart(cp, completed_normally, now, true, inputs, events);
    } else {
        c.state = ComponentState::completed;
        auto e = event(MonitorEventKind::completed, c, now);
        e.restart_type = policy.restart_type;
        events.push_back(std::move(e));
        engine_.member_ended(c, now, events);
    }
}

template <typename Clock>
inline void MonitorState<Clock>::on_exit_spawned(Component& c, const Instance& instance, const ExitOutcome& outcome,
                                                 time_point now, Events& events) {
    auto kind = MonitorEventKind::completed;
    const std::string* reason = nullptr;  // a failure, or an error thrown while it was being stopped
    if (instance.stop != StopCause::none) {
        kind = MonitorEventKind::stopped;
        c.state = ComponentState::stopped;
        if (outcome.kind == ExitOutcome::failed) {
            c.edit_restarts().last_error = outcome.reason;  // it threw while being stopped
            reason = &outcome.reason;
        }
    } else if (outcome.kind == ExitOutcome::returned) {
        c.state = ComponentState::completed;
    } else {
        kind =
            outcome.kind == ExitOutcome::aborted ? MonitorEventKind::cancelled_unexpectedly : MonitorEventKind::failed;
        c.state = ComponentState::failed;
        c.edit_restarts().last_error = outcome.reason;
        reason = &outcome.reason;
        ++c.edit_restarts().failure_count;
    }
    // A routine end (returned, or stopped without an error) is logged at debug: no event is made for it when
    // nothing would receive it (observed()).
    if (reason != nullptr || observed(routine_level(true))) {
        auto e = event(kind, c, now);
        if (reason != nullptr) {
            e.reason = *reason;
        }
        if (kind == MonitorEventKind::completed) {
            e.restart_type = RestartType::temporary;
        }
        events.push_back(std::move(e));
    }
    erase(c, false, events);  // no-op if remove_and_wait() already erased it (unresponsive)
}

}  // namespace taskmon::detail
