// taskmon — coroutine supervision for standalone Asio.
// SPDX-License-Identifier: MIT
//
// MonitorState's liveness: the watch of a running instance (heartbeat, startup and stop deadlines, a trial's probation)
// (internal).
// The definitions are `inline`, as they were inside the class: GCC gives functions declared inline larger
// inlining limits, and the hot paths (restart, start and close) depend on it.
#pragma once

#include <taskmon/detail/monitor_state.hpp>

namespace taskmon::detail {

template <typename Clock>
inline void MonitorState<Clock>::post_watch(const ComponentPtr& cp) {
    asio::post(strand_, [self = this->shared_from_this(), cp] { self->check_watch(cp); });
}

template <typename Clock>
inline auto MonitorState<Clock>::ready_time(const Instance& i) -> std::optional<time_point> {
    if (!i.liveness) {
        return i.started;
    }
    const auto at = i.liveness->ready_at();
    return at == InstanceLiveness::never ? std::nullopt : std::optional{from_ns(at)};
}

template <typename Clock>
inline auto MonitorState<Clock>::liveness_facts(const Component& c) -> LivenessFacts<time_point> {
    const auto& i = *c.live();
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
    return facts;
}

template <typename Clock>
inline auto MonitorState<Clock>::evaluate_watch(const ComponentPtr& cp, time_point now,
                                                const ClassifiedMiss& classified, Events& events) -> WatchStep {
    auto& c = *cp;
    if (!c.live()) {
        return {};
    }
    auto& i = *c.live();
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
    const auto facts = liveness_facts(c);
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

template <typename Clock>
inline void MonitorState<Clock>::trip(const ComponentPtr& cp, LivenessMiss miss, std::chrono::nanoseconds timeout,
                                      FailureClass cls, time_point now, Events& events) {
    auto& c = *cp;
    auto& i = *c.live();
    const bool startup = miss == LivenessMiss::startup;
    const std::string reason = miss_reason(miss);
    i.tripped_startup = startup;
    i.trip_class = cls;
    ++c.edit_restarts().failure_count;
    c.edit_restarts().last_error = reason;
    auto e = event(startup ? MonitorEventKind::startup_timeout : MonitorEventKind::watchdog_timeout, c, now);
    e.reason = reason;
    e.failure_class = cls;
    e.delay = timeout;
    events.push_back(std::move(e));
    c.state = ComponentState::restarting;
    request_stop(cp, StopCause::liveness);
}

template <typename Clock>
inline void MonitorState<Clock>::report_unresponsive(Component& c, time_point now, Events& events) {
    c.live()->reported_unresponsive = true;
    if (closed_) {
        waited_in_close(*c.live());
    }
    c.state = ComponentState::unresponsive;
    auto e = event(MonitorEventKind::stop_timeout, c, now);
    e.delay = policy_of(c).shutdown_timeout;
    events.push_back(std::move(e));
}

template <typename Clock>
inline void MonitorState<Clock>::waited_in_close(Instance& i) {
    if (!i.reported_in_close) {
        i.reported_in_close = true;
        ++waited_in_close_;
    }
}

template <typename Clock>
inline void MonitorState<Clock>::check_watch(const ComponentPtr& cp) {
    update_watch(cp);
    arm_watch_timer();
}

template <typename Clock>
inline void MonitorState<Clock>::update_watch(const ComponentPtr& cp) {
    assert(running_in_strand(strand_));
    if (close_completed_) {
        watches_.disarm(cp);  // a check posted before close() completed: nothing is watched after it
        return;
    }
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
        watches_.arm(cp, *next);
    } else {
        watches_.disarm(cp);
    }
}

template <typename Clock>
inline void MonitorState<Clock>::disarm_watch(const ComponentPtr& cp) noexcept {
    assert(running_in_strand(strand_));
    watches_.disarm(cp);
    if (watches_.empty() && watch_timer_at_) {
        // Nothing left to watch: no wait may keep the execution context busy. (Otherwise the pending wait stays;
        // waking early with nothing due only re-arms it. Nothing here allocates: on_exit calls it under mutex_.)
        watch_timer_at_.reset();
        asio::error_code ignored;
        watch_timer_.cancel(ignored);
    }
}

template <typename Clock>
inline void MonitorState<Clock>::arm_watch_timer() {
    const auto next = watches_.next();  // empty once close() completed: finish_close() cleared it
    if (next == watch_timer_at_) {
        return;  // the pending wait (or none) is already the right one
    }
    // Unset until the new wait is pending: if starting it throws, the next call starts it again.
    watch_timer_at_.reset();
    if (!next) {
        asio::error_code ignored;
        watch_timer_.cancel(ignored);
        return;
    }
    watch_timer_.expires_at(*next);  // cancels the pending wait, whose handler then does nothing
    watch_timer_.async_wait([self = this->shared_from_this()](std::error_code ec) {
        if (!ec) {
            self->on_watch_timer();
        }
    });
    watch_timer_at_ = next;
}

template <typename Clock>
inline void MonitorState<Clock>::on_watch_timer() {
    assert(running_in_strand(strand_));
    // The wait that ran is over. (A wait that expired just as it was moved also ends here, with success: the
    // checks below are then early or none, and harmless.)
    watch_timer_at_.reset();
    const auto now = Clock::now();
    try {
        // A popped entry is armed again in the space it left: that never allocates.
        while (auto cp = watches_.pop_due(now)) {
            update_watch(*cp);
        }
    } catch (...) {
        arm_watch_timer();  // the other components stay watched
        throw;
    }
    arm_watch_timer();
}

template <typename Clock>
inline void MonitorState<Clock>::on_ready(const ComponentPtr& cp, const Liveness* liveness) {
    assert(running_in_strand(strand_));
    Events events;
    {
        MutexLock lock{mutex_};
        auto* i = cp->live();
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
        unit = cp->restarts().unit;
    }
    if (unit) {
        advance(unit);  // an ordered start may be waiting for this member to be ready
    }
}

}  // namespace taskmon::detail
