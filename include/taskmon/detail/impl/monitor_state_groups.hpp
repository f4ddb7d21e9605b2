// taskmon — coroutine supervision for standalone Asio.
// SPDX-License-Identifier: MIT
//
// MonitorState's side of the groups (internal): the calls the group engine makes into the core, and the driving of a
// restart unit on the monitor's strand (its starts, outside mutex_, and its timer).
// The definitions are `inline`, as they were inside the class: GCC gives functions declared inline larger
// inlining limits, and the hot paths (restart, start and close) depend on it.
#pragma once

#include <taskmon/detail/monitor_state.hpp>

namespace taskmon::detail {

template <typename Clock>
inline void MonitorState<Clock>::UnitPort::take_over(const ComponentPtr& cp) const {
    auto& c = *cp;
    c.in_trial = false;
    if (c.lifecycle != Lifecycle::scheduled) {
        return;
    }
    // A backoff or trial of its own: the unit replaces it.
    transition(c.lifecycle, Lifecycle::idle);
    c.manual_pending = false;
    ++c.restart_gen;
    c.clear_next_restart();
    asio::post(s_->strand_, [cp] {
        if (cp->timer) {
            cp->timer->cancel();
        }
    });
}

template <typename Clock>
inline auto MonitorState<Clock>::UnitPort::schedule_start(const ComponentPtr& cp) const -> std::uint32_t {
    auto& c = *cp;
    transition(c.lifecycle, Lifecycle::scheduled);
    c.manual_pending = false;
    return ++c.restart_gen;
}

template <typename Clock>
inline void MonitorState<Clock>::UnitPort::resume(std::shared_ptr<RestartUnit> unit) const {
    asio::post(s_->strand_, [self = s_->shared_from_this(), unit = std::move(unit)] { self->advance(unit); });
}

template <typename Clock>
inline void MonitorState<Clock>::UnitPort::retire(std::shared_ptr<RestartUnit> unit) const {
    asio::post(s_->strand_, [unit = std::move(unit)] {
        if (unit->timer) {
            unit->timer->cancel();
        }
    });
}

template <typename Clock>
inline void MonitorState<Clock>::escalate(MonitorEvent e, Events& events) {
    e.sequence = ++next_sequence_;
    events.push_back(e);
    escalations_.push_back(std::move(e));
    asio::post(strand_, [self = this->shared_from_this()] { self->deliver_escalations(); });
}

template <typename Clock>
inline void MonitorState<Clock>::advance(const std::shared_ptr<RestartUnit>& u) {
    assert(running_in_strand(strand_));
    for (;;) {
        Events events;
        typename Engine::UnitStep next;
        {
            MutexLock lock{mutex_};
            if (u->merged) {
                return;
            }
            next = engine_.step(*u, Clock::now(), events);
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

}  // namespace taskmon::detail
