// taskmon — coroutine supervision for standalone Asio.
// SPDX-License-Identifier: MIT
//
// MonitorState's close(), removals and escalations: completing the waiters, and publishing events (internal).
// The definitions are `inline`, as they were inside the class: GCC gives functions declared inline larger
// inlining limits, and the hot paths (restart, start and close) depend on it.
#pragma once

#include <taskmon/detail/monitor_state.hpp>

namespace taskmon::detail {

template <typename Clock>
inline void MonitorState<Clock>::complete_removals() {
    assert(running_in_strand(strand_));
    MutexLock lock{mutex_};  // completion only posts the handlers
    if (!remove_done_) {
        return;
    }
    remove_done_ = false;
    const auto component = [](const std::shared_ptr<void>& payload) { return static_cast<Component*>(payload.get()); };
    remove_waiters_.complete_matching(asio::error_code{}, [&](const std::shared_ptr<void>& c) {
        return component(c)->membership == Membership::removed && !component(c)->live();
    });
    remove_waiters_.complete_matching(asio::error::timed_out, [&](const std::shared_ptr<void>& c) {
        return component(c)->membership == Membership::removed;
    });
}

template <typename Clock>
inline void MonitorState<Clock>::deliver_escalations() {
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

template <typename Clock>
inline void MonitorState<Clock>::begin_close() {
    assert(running_in_strand(strand_));
    std::chrono::nanoseconds longest{-1};
    Events events;
    time_point now;
    {
        MutexLock lock{mutex_};
        closing_ = true;
        now = Clock::now();
        for (const auto& c : components_) {
            cancel_pending_restart(c, ComponentState::stopped, events);
            if (c->timer) {
                c->timer->cancel();  // backoff timers first: no factory runs after close starts
            }
        }
        // Each instance outside a group is waited for up to its own shutdown_timeout (or the stop deadline it
        // had already), then reported: close_deadlines_, in deadline order, on the one close timer.
        const auto stop = [&](const ComponentPtr& c) TASKMON_REQUIRES(mutex_) {
            if (c->live() && c->group && c->live()->reported_unresponsive) {
                // Already reported (a requested stop it ignored): its group's stop skips it; close waits its
                // shutdown_timeout for it, as for any instance.
                const auto own = policy_of(*c).shutdown_timeout;
                close_deadlines_.emplace_back(now + std::chrono::duration_cast<duration>(own), c);
                return;
            }
            if (!c->live() || c->group) {
                return;
            }
            request_stop(c, StopCause::close);
            const auto own = policy_of(*c).shutdown_timeout;
            longest = std::max<std::chrono::nanoseconds>(longest, own);
            const auto& i = *c->live();
            const auto deadline =
                i.reported_unresponsive ? now + std::chrono::duration_cast<duration>(own) : i.stop_deadline;
            close_deadlines_.emplace_back(deadline, c);
        };
        // Groups stop in reverse start order, one member at a time: a tree may take the sum of its
        // members' shutdown_timeouts.
        engine_.close(now, [&](const std::vector<ComponentPtr>& leaves) {
            std::chrono::nanoseconds sum{};
            bool any = false;
            for (const auto& c : leaves) {
                if (c->live()) {
                    sum += policy_of(*c).shutdown_timeout;
                    any = true;
                }
            }
            if (any) {
                longest = std::max(longest, sum);
            }
        });
        for (const auto& c : components_) {
            stop(c);
        }
        for (const auto& c : detached_) {
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

template <typename Clock>
inline void MonitorState<Clock>::arm_close_timer(time_point at) {
    assert(running_in_strand(strand_));
    close_timer_.expires_at(at);
    close_timer_.async_wait([self = this->shared_from_this()](std::error_code ec) {
        if (!ec) {
            self->on_close_timer();
        }
    });
}

template <typename Clock>
inline void MonitorState<Clock>::on_close_timer() {
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
            if (cp->live() && !cp->live()->reported_unresponsive) {
                report_unresponsive(*cp, now, events);
            } else if (cp->live()) {
                waited_in_close(*cp->live());
            }
        }
        if (next_close_deadline_ < close_deadlines_.size()) {
            next = close_deadlines_[next_close_deadline_].first;
        } else if (now < close_end_) {
            next = close_end_;
        } else {
            for (const auto& c : components_) {
                if (c->live() && !c->live()->reported_unresponsive) {
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

template <typename Clock>
inline void MonitorState<Clock>::maybe_finish_close() {
    assert(running_in_strand(strand_));
    if (!closing_ || close_completed_) {
        return;  // both change on strand_ only: no lock to read them here (every exit comes by)
    }
    {
        MutexLock lock{mutex_};
        if (starting_ != 0) {
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

template <typename Clock>
inline void MonitorState<Clock>::finish_close() {
    assert(running_in_strand(strand_));
    if (close_completed_) {
        return;
    }
    close_completed_ = true;
    watches_.clear();   // an instance that ignored its stop is reported; nothing is watched after close()
    arm_watch_timer();  // cancels the watch timer
    MonitorEvent e;
    e.kind = MonitorEventKind::closed;
    {
        MutexLock lock{mutex_};
        e.sequence = ++next_sequence_;
        e.time = wall(Clock::now());
        e.count = components_.size();
        for (const auto& c : components_) {
            if (c->live()) {
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

template <typename Clock>
inline void MonitorState<Clock>::publish(std::span<const MonitorEvent> events) const noexcept {
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

}  // namespace taskmon::detail
