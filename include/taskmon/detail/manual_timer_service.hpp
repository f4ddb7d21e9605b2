// taskmon — coroutine supervision for standalone Asio.
// SPDX-License-Identifier: MIT
//
// The service behind every ManualClock timer (internal): Asio's timer service, specialised for ManualClock so that
// virtual timers never enter the reactor. Included by taskmon/testing/manual_clock.hpp.
#pragma once

#include <taskmon/detail/config.hpp>
#include <taskmon/testing/manual_time.hpp>

#include <asio/associated_cancellation_slot.hpp>
#include <asio/detail/chrono_time_traits.hpp>
#include <asio/detail/deadline_timer_service.hpp>
#include <asio/detail/mutex.hpp>
#include <asio/detail/noncopyable.hpp>
#include <asio/detail/op_queue.hpp>
#include <asio/detail/scheduler.hpp>
#include <asio/detail/timer_queue.hpp>
#include <asio/detail/wait_handler.hpp>
#include <asio/error.hpp>
#include <asio/execution_context.hpp>
#include <asio/wait_traits.hpp>

#include <cstddef>
#include <limits>
#include <optional>

namespace asio::detail {

/// Asio's deadline_timer_service for ManualClock timers, with the same interface (basic_waitable_timer calls it
/// as it calls the generic one) and one difference: its timer queue is its own, not the reactor's. A wait is
/// queued with the io_context's work counted, as the reactor queues it; a timer fires when fire_due() finds it
/// due, which the runners (VirtualTimeRunner, Simulation) call between handlers, which every schedule and
/// ManualTime-driven jump is followed by, and which a wait that is already due at its start triggers at once.
/// The generic service keeps virtual timers in the reactor, where a virtual deadline can only be noticed by
/// making the reactor wake at once: each look at the io_context then cost a `timerfd_settime` and an
/// `epoll_wait` (~15 us on a KVM guest), and run() on a thread busy-polled while a virtual timer was pending.
/// Thread-safe: every operation on the queue holds mutex_; completions are posted, never run inside a call.
template <>
class deadline_timer_service<
    chrono_time_traits<taskmon::testing::ManualClock, asio::wait_traits<taskmon::testing::ManualClock>>>
    : public execution_context_service_base<deadline_timer_service<
          chrono_time_traits<taskmon::testing::ManualClock, asio::wait_traits<taskmon::testing::ManualClock>>>> {
public:
    using traits = chrono_time_traits<taskmon::testing::ManualClock, asio::wait_traits<taskmon::testing::ManualClock>>;
    using time_type = traits::time_type;
    using duration_type = traits::duration_type;

    struct implementation_type : private ::asio::detail::noncopyable {
        time_type expiry;
        bool might_have_pending_waits;
        timer_queue<traits>::per_timer_data timer_data;
    };

    explicit deadline_timer_service(execution_context& context)
        : execution_context_service_base<deadline_timer_service>(context),
          scheduler_{asio::use_service<scheduler>(context)} {}

    /// Destroys the waits still queued, unrun, as the reactor does at shutdown.
    void shutdown() override {
        op_queue<operation> ops;
        {
            mutex::scoped_lock lock(mutex_);
            shut_down_ = true;
            queue_.get_all_timers(ops);
        }
        scheduler_.abandon_operations(ops);
    }

    void construct(implementation_type& impl) {
        impl.expiry = time_type();
        impl.might_have_pending_waits = false;
    }

    void destroy(implementation_type& impl) {
        asio::error_code ec;
        cancel(impl, ec);
    }

    void move_construct(implementation_type& impl, implementation_type& other_impl) {
        move_timer(impl.timer_data, other_impl.timer_data);
        impl.expiry = other_impl.expiry;
        other_impl.expiry = time_type();
        impl.might_have_pending_waits = other_impl.might_have_pending_waits;
        other_impl.might_have_pending_waits = false;
    }

    void move_assign(implementation_type& impl, deadline_timer_service& other_service,
                     implementation_type& other_impl) {
        if (this != &other_service && impl.might_have_pending_waits) {
            cancel_timer(impl.timer_data);
        }
        other_service.move_timer(impl.timer_data, other_impl.timer_data);
        impl.expiry = other_impl.expiry;
        other_impl.expiry = time_type();
        impl.might_have_pending_waits = other_impl.might_have_pending_waits;
        other_impl.might_have_pending_waits = false;
    }

    void converting_move_construct(implementation_type& impl, deadline_timer_service&,
                                   implementation_type& other_impl) {
        move_construct(impl, other_impl);
    }

    void converting_move_assign(implementation_type& impl, deadline_timer_service& other_service,
                                implementation_type& other_impl) {
        move_assign(impl, other_service, other_impl);
    }

    std::size_t cancel(implementation_type& impl, asio::error_code& ec) {
        ec = asio::error_code();
        if (!impl.might_have_pending_waits) {
            return 0;
        }
        const auto count = cancel_timer(impl.timer_data);
        impl.might_have_pending_waits = false;
        return count;
    }

    std::size_t cancel_one(implementation_type& impl, asio::error_code& ec) {
        ec = asio::error_code();
        if (!impl.might_have_pending_waits) {
            return 0;
        }
        const auto count = cancel_timer(impl.timer_data, 1);
        if (count == 0) {
            impl.might_have_pending_waits = false;
        }
        return count;
    }

    time_type expiry(const implementation_type& impl) const { return impl.expiry; }
    time_type expires_at(const implementation_type& impl) const { return impl.expiry; }
    duration_type expires_from_now(const implementation_type& impl) const {
        return traits::subtract(expiry(impl), traits::now());
    }

    std::size_t expires_at(implementation_type& impl, const time_type& expiry_time, asio::error_code& ec) {
        const auto count = cancel(impl, ec);
        impl.expiry = expiry_time;
        ec = asio::error_code();
        return count;
    }

    std::size_t expires_after(implementation_type& impl, const duration_type& expiry_time, asio::error_code& ec) {
        return expires_at(impl, traits::add(traits::now(), expiry_time), ec);
    }

    std::size_t expires_from_now(implementation_type& impl, const duration_type& expiry_time, asio::error_code& ec) {
        return expires_at(impl, traits::add(traits::now(), expiry_time), ec);
    }

    /// A blocking wait on virtual time returns at once if the time has come, and otherwise would never return on
    /// a thread that does not advance the clock itself: refused.
    void wait(implementation_type& impl, asio::error_code& ec) {
        ec = traits::less_than(traits::now(), impl.expiry) ? asio::error::operation_not_supported : asio::error_code();
    }

    template <typename Handler, typename IoExecutor>
    void async_wait(implementation_type& impl, Handler& handler, const IoExecutor& io_ex) {
        auto slot = asio::get_associated_cancellation_slot(handler);
        using op = wait_handler<Handler, IoExecutor>;
        typename op::ptr p = {asio::detail::addressof(handler), op::ptr::allocate(handler), 0};
        p.p = new (p.v) op(handler, io_ex);
        if (slot.is_connected()) {
            p.p->cancellation_key_ = &slot.template emplace<op_cancellation>(this, &impl.timer_data);
        }
        impl.might_have_pending_waits = true;
        bool due = false;
        {
            mutex::scoped_lock lock(mutex_);
            if (shut_down_) {
                lock.unlock();
                scheduler_.post_immediate_completion(p.p, false);
                p.v = p.p = 0;
                return;
            }
            queue_.enqueue_timer(impl.expiry, impl.timer_data, p.p);
            scheduler_.work_started();
            due = !traits::less_than(traits::now(), impl.expiry);
        }
        p.v = p.p = 0;
        if (due) {
            fire_due();  // as the reactor would on its next run
        }
    }

    /// Completes (posts) every wait whose timer is due at ManualClock::now() on the calling thread.
    void fire_due() {
        op_queue<operation> ops;
        {
            mutex::scoped_lock lock(mutex_);
            queue_.get_ready_timers(ops);
        }
        scheduler_.post_deferred_completions(ops);
    }

    /// The earliest expiry among the pending waits, if any. (The queue's heap is private: its wait duration is
    /// asked for, which asio::wait_traits<ManualClock> reports to the calling thread's ManualTime as a deadline.)
    std::optional<time_type> next_deadline() {
        mutex::scoped_lock lock(mutex_);
        if (queue_.empty()) {
            return std::nullopt;
        }
        auto& time = taskmon::testing::ManualTime::current();
        time.forget_deadlines();
        (void)queue_.wait_duration_usec((std::numeric_limits<long>::max)());
        time_type next{};
        if (!time.next_deadline(next)) {
            return std::nullopt;
        }
        return next;
    }

private:
    std::size_t cancel_timer(timer_queue<traits>::per_timer_data& timer,
                             std::size_t max_cancelled = (std::numeric_limits<std::size_t>::max)()) {
        op_queue<operation> ops;
        std::size_t n = 0;
        {
            mutex::scoped_lock lock(mutex_);
            n = queue_.cancel_timer(timer, ops, max_cancelled);
        }
        scheduler_.post_deferred_completions(ops);
        return n;
    }

    void move_timer(timer_queue<traits>::per_timer_data& target, timer_queue<traits>::per_timer_data& source) {
        op_queue<operation> ops;
        {
            mutex::scoped_lock lock(mutex_);
            queue_.cancel_timer(target, ops);
            queue_.move_timer(target, source);
        }
        scheduler_.post_deferred_completions(ops);
    }

    class op_cancellation {
    public:
        op_cancellation(deadline_timer_service* s, timer_queue<traits>::per_timer_data* p)
            : service_{s}, timer_data_{p} {}

        void operator()(cancellation_type_t type) {
            if (!!(type & (cancellation_type::terminal | cancellation_type::partial | cancellation_type::total))) {
                op_queue<operation> ops;
                {
                    mutex::scoped_lock lock(service_->mutex_);
                    service_->queue_.cancel_timer_by_key(timer_data_, ops, this);
                }
                service_->scheduler_.post_deferred_completions(ops);
            }
        }

    private:
        deadline_timer_service* service_;
        timer_queue<traits>::per_timer_data* timer_data_;
    };

    mutex mutex_;
    timer_queue<traits> queue_;
    scheduler& scheduler_;
    bool shut_down_ = false;
};

}  // namespace asio::detail
