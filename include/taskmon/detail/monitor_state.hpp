// taskmon — coroutine supervision for standalone Asio.
// SPDX-License-Identifier: MIT
//
// The shared state behind BasicTaskMonitor (internal; include <taskmon/task_monitor.hpp>).
#pragma once

#include <taskmon/task_monitor.hpp>


#include <taskmon/component_stats.hpp>
#include <taskmon/detail/exit_outcome.hpp>
#include <taskmon/detail/listener_registry.hpp>
#include <taskmon/detail/monitor_event.hpp>
#include <taskmon/detail/waiter_list.hpp>
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
#include <asio/post.hpp>
#include <asio/strand.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/wait_traits.hpp>
#include <spdlog/spdlog.h>

#include <chrono>
#include <cstdint>
#include <algorithm>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <tuple>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace taskmon {

namespace detail {

/// Why the monitor asked an instance to stop.
enum class StopCause { none, restart, disable, close };

/// The state shared by a monitor and every callback it has outstanding. Kept alive by those callbacks, so a
/// monitor can be destroyed while its components still run.
///
/// Invariants (all guarded by mutex_):
/// - a component has at most one live instance (`instance`), and while it has one, restart_scheduled is false;
/// - restart_scheduled is true only between the decision to restart and the new instance starting; a timer or
///   post carrying an older restart_gen is stale and ignored;
/// - after closed_ is set no factory is called and no instance is started;
/// - events get their sequence number under mutex_, in the order of the changes they report.
/// Timers, co_spawn and completion callbacks run on strand_; cancellation of an instance is emitted on the
/// component's strand (the pool strand its coroutine runs on), since cancellation_signal is not thread-safe.
template <typename Clock>
class MonitorState : public std::enable_shared_from_this<MonitorState<Clock>> {
public:
    using clock = Clock;
    using time_point = typename Clock::time_point;
    using Timer = asio::basic_waitable_timer<Clock, asio::wait_traits<Clock>, asio::any_io_executor>;
    using Strand = asio::strand<asio::any_io_executor>;

    MonitorState(asio::any_io_executor executor, RestartPolicy policy, std::shared_ptr<spdlog::logger> logger,
                 RandomSource random, std::size_t strand_pool_size)
        : strand_pool_size_{strand_pool_size},
          executor_{std::move(executor)},
          strand_{asio::make_strand(executor_)},
          policy_{policy},
          logger_{logger ? std::move(logger) : spdlog::default_logger()},
          random_{random ? std::move(random) : nondeterministic_random_source()},
          clock_origin_{Clock::now()},
          wall_origin_{std::chrono::system_clock::now()},
          close_timer_{strand_} {}

    struct Instance {
        Instance(std::uint64_t i, time_point s, std::shared_ptr<const RestartFactory> f)
            : id{i}, started{s}, origin{std::move(f)} {}
        std::uint64_t id;
        time_point started;
        // The factory this instance came from: a coroutine lambda's frame refers to the closure object, so the
        // closure must outlive the instance even if the factory is replaced.
        std::shared_ptr<const RestartFactory> origin;
        StopCause stop = StopCause::none;
        asio::cancellation_signal signal;
    };

    struct Component {
        Component(std::string n, const asio::any_io_executor& s) : name{std::move(n)}, strand{&s} {}
        std::string name;
        const asio::any_io_executor* strand;  // the pool strand its instances run on (strands_ never shrinks)
        std::shared_ptr<const RestartFactory> factory;
        std::shared_ptr<const RestartPolicy> own_policy;  // null: the monitor's policy
        std::unique_ptr<Timer> timer;  // backoff; strand_ only
        std::shared_ptr<Instance> instance;
        bool registered = false;
        bool enabled = false;
        bool restart_scheduled = false;
        bool manual_pending = false;  // the scheduled restart was requested by restart()
        bool starting = false;        // the factory is being called
        std::uint64_t restart_gen = 0;
        // Times of automatic restarts within the restart window, oldest first; at most max_restart_attempts long.
        // (A vector, not a deque: an empty libstdc++ deque already allocates ~600 bytes.)
        std::vector<time_point> window;
        int consecutive = 0;            // k of the backoff formula
        std::chrono::nanoseconds last_delay{};
        std::optional<time_point> next_restart;
        ComponentStats stats;
    };

    using Events = std::vector<MonitorEvent>;
    using Listeners = ListenerRegistry<MonitorEvent>;

    // ---- public operations (any thread) -------------------------------------------------------------

    void set_restart_factories(std::map<std::string, RestartFactory> factories) {
        for (const auto& [name, factory] : factories) {
            check_name(name, "set_restart_factories");
            if (!factory) {
                throw std::invalid_argument("set_restart_factories: factory of component '" + name + "' is empty");
            }
        }
        std::lock_guard lock{mutex_};
        check_open("set_restart_factories");
        for (auto& [name, factory] : factories) {
            find_or_create(name).factory = std::make_shared<const RestartFactory>(std::move(factory));
        }
    }

    void register_task(const std::string& name, asio::awaitable<void> task) {
        check_name(name, "register_task");
        Events events;
        {
            std::lock_guard lock{mutex_};
            check_open("register_task");
            check_not_registered(name, "register_task");
            auto& c = find_or_create(name);
            c.registered = true;
            spawn(c, std::move(task), nullptr, false, events);
        }
        publish(events);
    }

    void supervise(const std::string& name, RestartFactory factory, std::optional<RestartPolicy> policy) {
        check_name(name, "supervise");
        if (!factory) {
            throw std::invalid_argument("supervise: factory of component '" + name + "' is empty");
        }
        if (policy) {
            validate(*policy, "supervise: policy of component '" + name + "'");
        }
        {
            std::lock_guard lock{mutex_};
            check_open("supervise");
            check_not_registered(name, "supervise");
        }
        auto origin = std::make_shared<const RestartFactory>(std::move(factory));
        auto task = (*origin)();  // outside the lock: user code; if it throws nothing has changed
        Events events;
        {
            std::lock_guard lock{mutex_};
            check_open("supervise");
            check_not_registered(name, "supervise");
            auto& c = find_or_create(name);
            c.factory = origin;
            c.own_policy = policy ? std::make_shared<const RestartPolicy>(*policy) : nullptr;
            c.enabled = true;
            c.registered = true;
            spawn(c, std::move(task), std::move(origin), false, events);
        }
        publish(events);
    }

    void enable(const std::vector<std::string>& names) {
        std::lock_guard lock{mutex_};
        check_open("enable");
        check_known(names, "enable");
        for (const auto& name : names) {
            components_.at(name)->enabled = true;
        }
    }

    void disable(const std::vector<std::string>& names) {
        Events events;
        {
            std::lock_guard lock{mutex_};
            check_open("disable");
            check_known(names, "disable");
            for (const auto& name : names) {
                auto& c = *components_.at(name);
                c.enabled = false;
                cancel_pending_restart(c, ComponentState::stopped, events);
                request_stop(c, StopCause::disable);
            }
        }
        publish(events);
    }

    void restart(const std::string& name) {
        Events events;
        {
            std::lock_guard lock{mutex_};
            check_open("restart");
            check_known({name}, "restart");
            auto& c = *components_.at(name);
            if (!c.factory) {
                throw std::invalid_argument("restart: component '" + name + "' has no restart factory");
            }
            const auto now = Clock::now();
            if (c.starting || (c.instance && c.instance->stop == StopCause::restart)) {
                events.push_back(event(MonitorEventKind::restart_merged, c, now));
            } else if (c.restart_scheduled) {
                // Merge into the pending restart and run it now instead of after the rest of the backoff.
                events.push_back(event(MonitorEventKind::restart_merged, c, now));
                c.manual_pending = true;
                schedule_start(c, std::chrono::nanoseconds::zero());
            } else if (c.instance) {
                events.push_back(event(MonitorEventKind::restart_requested, c, now));
                c.stats.state = ComponentState::restarting;
                c.stats.is_restarting = true;
                request_stop(c, StopCause::restart);
            } else {
                events.push_back(event(MonitorEventKind::restart_requested, c, now));
                c.registered = true;  // starting a component known only by its factory registers it
                if (c.stats.state == ComponentState::gave_up) {
                    // A manual restart after giving up is a reset: the component gets a fresh budget.
                    c.window.clear();
                    c.consecutive = 0;
                }
                c.manual_pending = true;
                c.restart_scheduled = true;
                c.stats.state = ComponentState::restarting;
                c.stats.is_restarting = true;
                schedule_start(c, std::chrono::nanoseconds::zero());
            }
        }
        publish(events);
    }

    /// Adds a listener (see BasicTaskMonitor::subscribe) and returns its id in listeners().
    std::uint64_t subscribe(MonitorEventListener listener) {
        if (!listener) {
            throw std::invalid_argument("subscribe: listener must not be empty");
        }
        std::lock_guard lock{mutex_};  // against close(): no subscription once closed_ is set
        check_open("subscribe");
        return listeners_->add(std::move(listener));
    }

    /// The listener registry; shared so that subscriptions can refer to it weakly.
    const std::shared_ptr<Listeners>& listeners() const noexcept { return listeners_; }

    std::map<std::string, ComponentStats> snapshot() const {
        std::lock_guard lock{mutex_};
        const auto now = Clock::now();
        std::map<std::string, ComponentStats> out;
        for (const auto& [name, c] : components_) {
            ComponentStats s = c->stats;
            s.enabled = c->enabled;
            const auto window = std::chrono::duration_cast<typename Clock::duration>(policy_of(*c).restart_window);
            s.restarts_in_window = 0;
            for (const auto& t : c->window) {
                if (t > now - window) {
                    ++s.restarts_in_window;
                }
            }
            s.next_restart_at = c->next_restart ? std::optional{wall(*c->next_restart)} : std::nullopt;
            out.emplace(name, std::move(s));
        }
        return out;
    }

    /// close() for BasicTaskMonitor::close(): `handler` completes through its associated executor (default: the
    /// monitor's executor), with post semantics, once the close is done. While it waits it is parked in
    /// close_waiters_, so the shutdown of the execution context destroys it (and the coroutine it resumes) like
    /// any pending operation.
    template <typename Handler>
    void async_close(Handler handler) {
        auto executor = asio::get_associated_executor(handler, executor_);  // before the handler is moved
        close_then([waiter = asio::bind_executor(executor, [h = std::move(handler)](asio::error_code) mutable {
                        std::move(h)();
                    })](MonitorState& state) mutable {
            if (state.close_completed_) {
                state.close_waiters_.complete_now(std::move(waiter), state.strand_, asio::error_code{});
            } else {
                state.close_waiters_.park(std::move(waiter), std::tuple<>{}, state.strand_);
            }
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
            std::lock_guard lock{mutex_};
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

    bool closed() const {
        std::lock_guard lock{mutex_};
        return closed_;
    }

    const asio::any_io_executor& executor() const noexcept { return executor_; }
    const RestartPolicy& policy() const noexcept { return policy_; }

private:
    // ---- validation (throws before anything changes) -------------------------------------------------

    static void check_name(const std::string& name, const char* what) {
        if (name.empty()) {
            throw std::invalid_argument(std::string{what} + ": component name must not be empty");
        }
    }

    void check_open(const char* what) const {
        if (closed_) {
            throw std::logic_error(std::string{what} + ": the TaskMonitor is closed");
        }
    }

    void check_not_registered(const std::string& name, const char* what) const {
        auto it = components_.find(name);
        if (it != components_.end() && it->second->registered) {
            throw std::invalid_argument(std::string{what} + ": duplicate component name '" + name + "'");
        }
    }

    void check_known(const std::vector<std::string>& names, const char* what) const {
        for (const auto& name : names) {
            if (components_.find(name) == components_.end()) {
                throw std::invalid_argument(std::string{what} + ": unknown component '" + name + "'");
            }
        }
    }

    // ---- helpers (mutex_ held) -----------------------------------------------------------------------

    Component& find_or_create(const std::string& name) {
        auto it = components_.find(name);
        if (it == components_.end()) {
            it = components_.emplace(name, std::make_unique<Component>(name, strand_for_next_component())).first;
        }
        return *it->second;
    }

    /// Round-robin over a pool of strand_pool_size_ strands, created as first needed (one per component if 0).
    const asio::any_io_executor& strand_for_next_component() {
        if (strand_pool_size_ == 0 || strands_.size() < strand_pool_size_) {
            return strands_.emplace_back(asio::make_strand(executor_));
        }
        return strands_[components_.size() % strand_pool_size_];
    }

    const RestartPolicy& policy_of(const Component& c) const { return c.own_policy ? *c.own_policy : policy_; }

    std::chrono::system_clock::time_point wall(time_point t) const {
        return wall_origin_ + std::chrono::duration_cast<std::chrono::system_clock::duration>(t - clock_origin_);
    }

    /// The event `kind` of `c`, numbered and stamped with `now`, with the component's counters as they are.
    MonitorEvent event(MonitorEventKind kind, const Component& c, time_point now) {
        MonitorEvent e;
        e.kind = kind;
        e.component = c.name;
        e.sequence = ++next_sequence_;
        e.time = wall(now);
        e.task_id = c.stats.task_id;
        e.restart_count = c.stats.restart_count;
        e.failure_count = c.stats.failure_count;
        return e;
    }

    /// Starts a new instance of `c` on its strand. Its exit is reported to on_exit on strand_.
    void spawn(Component& c, asio::awaitable<void> task, std::shared_ptr<const RestartFactory> origin,
               bool is_restart, Events& events) {
        const auto now = Clock::now();
        auto instance = std::make_shared<Instance>(++next_task_id_, now, std::move(origin));
        c.instance = instance;
        ++live_instances_;
        c.restart_scheduled = false;
        c.manual_pending = false;
        c.next_restart.reset();
        auto& s = c.stats;
        s.task_id = instance->id;
        s.state = ComponentState::running;
        s.task_done = false;
        s.task_cancelled = false;
        s.is_restarting = false;
        if (is_restart) {
            ++s.restart_count;
            s.last_restart_time = wall(now);
            events.push_back(event(MonitorEventKind::restarted, c, now));
        } else {
            events.push_back(event(MonitorEventKind::started, c, now));
        }
        auto slot = instance->signal.slot();
        asio::co_spawn(*c.strand, std::move(task),
                       asio::bind_cancellation_slot(
                           slot, asio::bind_executor(strand_, [self = this->shared_from_this(), cp = &c,
                                                               instance](std::exception_ptr error) {
                               self->on_exit(*cp, instance, error);
                           })));
    }

    /// Asks the live instance (if any) to stop; the exit arrives at on_exit.
    void request_stop(Component& c, StopCause cause) {
        if (!c.instance) {
            return;
        }
        const bool already = c.instance->stop != StopCause::none;
        if (c.instance->stop != StopCause::close) {
            c.instance->stop = cause;  // close wins; otherwise the latest request decides what follows the exit
        }
        if (cause != StopCause::restart) {
            c.stats.state = ComponentState::stopping;
            c.stats.is_restarting = false;
        }
        if (!already) {
            asio::post(*c.strand,
                       [instance = c.instance] { instance->signal.emit(asio::cancellation_type::terminal); });
        }
    }

    /// Drops a scheduled restart (backoff or manual) of `c`.
    void cancel_pending_restart(Component& c, ComponentState new_state, Events& events) {
        if (!c.restart_scheduled && !c.starting) {
            return;
        }
        events.push_back(event(MonitorEventKind::restart_cancelled, c, Clock::now()));
        c.restart_scheduled = false;
        c.manual_pending = false;
        ++c.restart_gen;
        c.next_restart.reset();
        if (!c.instance) {
            c.stats.state = new_state;
            c.stats.is_restarting = false;
            c.stats.task_done = true;
        }
        asio::post(strand_, [self = this->shared_from_this(), cp = &c] {
            if (cp->timer) {
                cp->timer->cancel();
            }
        });
    }

    /// Starts the scheduled restart of `c` after `delay` (on strand_).
    void schedule_start(Component& c, std::chrono::nanoseconds delay) {
        const auto gen = ++c.restart_gen;
        const auto deadline = Clock::now() + std::chrono::duration_cast<typename Clock::duration>(delay);
        asio::post(strand_, [self = this->shared_from_this(), cp = &c, gen, delay, deadline] {
            if (delay == std::chrono::nanoseconds::zero()) {
                if (cp->timer) {
                    cp->timer->cancel();  // a backoff this restart replaces (restart() merged into it)
                }
                self->start_restart(*cp, gen);
                return;
            }
            {
                std::lock_guard lock{self->mutex_};
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
                    self->start_restart(*cp, gen);
                }
            });
        });
    }

    /// Decides what follows a failure, unexpected cancellation or permanent-type return: a backoff, or giving
    /// up when the sliding window is full.
    void schedule_restart(Component& c, const std::string& reason, time_point now, Events& events) {
        const auto& policy = policy_of(c);
        const auto window = std::chrono::duration_cast<typename Clock::duration>(policy.restart_window);
        const auto expired = std::find_if(c.window.begin(), c.window.end(),
                                          [&](const time_point& t) { return t > now - window; });
        c.window.erase(c.window.begin(), expired);
        auto& s = c.stats;
        if (static_cast<int>(c.window.size()) >= policy.max_restart_attempts) {
            s.state = ComponentState::gave_up;
            s.task_done = true;
            s.is_restarting = false;
            c.next_restart.reset();
            auto e = event(MonitorEventKind::gave_up, c, now);
            e.limit = policy.max_restart_attempts;
            e.window = policy.restart_window;
            e.reason = reason;
            events.push_back(std::move(e));
            return;
        }
        ++c.consecutive;
        const auto delay = jittered_backoff(policy, c.consecutive, c.last_delay, random_);
        c.last_delay = delay;
        c.window.push_back(now);
        c.restart_scheduled = true;
        c.manual_pending = false;
        c.next_restart = now + std::chrono::duration_cast<typename Clock::duration>(delay);
        s.state = ComponentState::restarting;
        s.is_restarting = true;
        auto e = event(MonitorEventKind::restart_scheduled, c, now);
        e.attempt = c.consecutive;
        e.delay = delay;
        e.reason = reason;
        events.push_back(std::move(e));
        schedule_start(c, delay);
    }

    // ---- completion handlers (strand_) ---------------------------------------------------------------

    void start_restart(Component& c, std::uint64_t gen) {
        std::shared_ptr<const RestartFactory> factory;
        {
            std::lock_guard lock{mutex_};
            if (gen != c.restart_gen || !c.restart_scheduled || closed_ || c.instance) {
                return;
            }
            c.restart_scheduled = false;
            c.starting = true;
            ++starting_;
            factory = c.factory;
        }
        std::optional<asio::awaitable<void>> task;
        std::exception_ptr factory_error;
        try {
            task.emplace((*factory)());
        } catch (...) {
            factory_error = std::current_exception();
        }
        Events events;
        {
            std::lock_guard lock{mutex_};
            const bool manual = c.manual_pending;
            c.starting = false;
            --starting_;
            c.manual_pending = false;
            if (closed_ || (!c.enabled && !manual) || gen != c.restart_gen) {
                // Stopped while the factory ran (close or disable): do not start anything.
                c.stats.state = ComponentState::stopped;
                c.stats.is_restarting = false;
                c.stats.task_done = true;
                c.next_restart.reset();
            } else if (factory_error) {
                auto& s = c.stats;
                ++s.failure_count;
                s.last_error = describe(factory_error);
                const auto now = Clock::now();
                auto e = event(MonitorEventKind::factory_failed, c, now);
                e.reason = s.last_error;
                events.push_back(std::move(e));
                schedule_restart(c, s.last_error, now, events);
            } else {
                spawn(c, std::move(*task), std::move(factory), true, events);
            }
        }
        task.reset();
        publish(events);
        maybe_finish_close();
    }

    void on_exit(Component& c, const std::shared_ptr<Instance>& instance, std::exception_ptr error) {
        auto outcome = classify_exit(error);
        Events events;
        {
            std::lock_guard lock{mutex_};
            if (c.instance == instance) {
                c.instance.reset();
                --live_instances_;
            }
            const auto now = Clock::now();
            auto& s = c.stats;
            s.task_done = true;
            s.task_cancelled = outcome.kind == ExitOutcome::aborted;
            const auto& policy = policy_of(c);
            if (now - instance->started >= policy.reset_backoff_after) {
                c.consecutive = 0;  // it ran long enough to count as stable
            }
            if (instance->stop == StopCause::restart && !closed_) {
                if (outcome.kind == ExitOutcome::failed) {
                    s.last_error = outcome.reason;  // it threw while being stopped: report it, then restart
                    auto e = event(MonitorEventKind::stopped, c, now);
                    e.task_id = instance->id;
                    e.reason = outcome.reason;
                    events.push_back(std::move(e));
                }
                c.manual_pending = true;
                c.restart_scheduled = true;
                s.state = ComponentState::restarting;
                s.is_restarting = true;
                schedule_start(c, std::chrono::nanoseconds::zero());
            } else if (instance->stop != StopCause::none || closed_) {
                if (s.state != ComponentState::gave_up) {
                    s.state = instance->stop == StopCause::none && outcome.kind == ExitOutcome::returned
                                  ? ComponentState::completed
                                  : ComponentState::stopped;
                }
                s.is_restarting = false;
                auto e = event(MonitorEventKind::stopped, c, now);
                if (outcome.kind == ExitOutcome::failed) {
                    s.last_error = outcome.reason;
                    e.reason = outcome.reason;
                }
                e.task_id = instance->id;
                events.push_back(std::move(e));
            } else if (outcome.kind == ExitOutcome::returned) {
                if (policy.restart_type == RestartType::permanent && c.enabled && c.factory) {
                    schedule_restart(c, "completed normally", now, events);
                } else {
                    s.state = ComponentState::completed;
                    auto e = event(MonitorEventKind::completed, c, now);
                    e.task_id = instance->id;
                    e.restart_type = policy.restart_type;
                    events.push_back(std::move(e));
                }
            } else {
                ++s.failure_count;
                s.last_error = outcome.reason;
                auto e = event(outcome.kind == ExitOutcome::aborted ? MonitorEventKind::cancelled_unexpectedly
                                                                    : MonitorEventKind::failed,
                               c, now);
                e.task_id = instance->id;
                e.reason = outcome.reason;
                events.push_back(std::move(e));
                if (policy.restart_type == RestartType::temporary) {
                    s.state = ComponentState::failed;
                } else if (!c.enabled) {
                    s.state = ComponentState::failed;
                    events.push_back(event(MonitorEventKind::not_enabled, c, now));
                } else if (!c.factory) {
                    s.state = ComponentState::failed;
                    events.push_back(event(MonitorEventKind::no_factory, c, now));
                } else {
                    schedule_restart(c, outcome.reason, now, events);
                }
            }
        }
        publish(events);
        maybe_finish_close();
    }

    void begin_close() {
        std::chrono::nanoseconds longest{-1};
        Events events;
        {
            std::lock_guard lock{mutex_};
            closing_ = true;
            const auto now = Clock::now();
            for (auto& [name, c] : components_) {
                if (c->restart_scheduled || c->starting) {
                    events.push_back(event(MonitorEventKind::restart_cancelled, *c, now));
                    c->restart_scheduled = false;
                    c->manual_pending = false;
                    ++c->restart_gen;
                    c->next_restart.reset();
                    if (!c->instance) {
                        c->stats.state = ComponentState::stopped;
                        c->stats.is_restarting = false;
                        c->stats.task_done = true;
                    }
                }
                if (c->timer) {
                    c->timer->cancel();  // backoff timers first: no factory runs after close starts
                }
            }
            for (auto& [name, c] : components_) {
                if (c->instance) {
                    request_stop(*c, StopCause::close);
                    longest = std::max<std::chrono::nanoseconds>(longest, policy_of(*c).shutdown_timeout);
                }
            }
        }
        publish(events);
        if (longest >= std::chrono::nanoseconds::zero()) {
            close_timer_.expires_after(std::chrono::duration_cast<typename Clock::duration>(longest));
            close_timer_.async_wait([self = this->shared_from_this()](std::error_code ec) {
                if (!ec) {
                    self->on_close_deadline();
                }
            });
        }
        maybe_finish_close();
    }

    void on_close_deadline() {
        Events events;
        {
            std::lock_guard lock{mutex_};
            const auto now = Clock::now();
            for (auto& [name, c] : components_) {
                if (c->instance) {
                    c->stats.state = ComponentState::unresponsive;
                    auto e = event(MonitorEventKind::stop_timeout, *c, now);
                    e.delay = policy_of(*c).shutdown_timeout;
                    events.push_back(std::move(e));
                }
            }
        }
        publish(events);
        finish_close();
    }

    void maybe_finish_close() {
        {
            std::lock_guard lock{mutex_};
            if (!closing_ || close_completed_ || live_instances_ != 0 || starting_ != 0) {
                return;
            }
        }
        close_timer_.cancel();
        finish_close();
    }

    void finish_close() {
        if (close_completed_) {
            return;
        }
        close_completed_ = true;
        MonitorEvent e;
        e.kind = MonitorEventKind::closed;
        {
            std::lock_guard lock{mutex_};
            e.sequence = ++next_sequence_;
            e.time = wall(Clock::now());
            e.count = components_.size();
            for (const auto& [name, c] : components_) {
                if (c->instance) {
                    ++e.unresponsive;
                }
            }
        }
        publish(std::span<const MonitorEvent>{&e, 1});
        close_waiters_.complete_all(asio::error_code{});
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
    Strand strand_;
    RestartPolicy policy_;
    std::shared_ptr<spdlog::logger> logger_;
    RandomSource random_;  // mutex_
    time_point clock_origin_;
    std::chrono::system_clock::time_point wall_origin_;
    std::shared_ptr<Listeners> listeners_ = std::make_shared<Listeners>();

    mutable std::mutex mutex_;
    std::map<std::string, std::unique_ptr<Component>> components_;  // never erased: pointers stay valid
    // Components' strands, type-erased once: copies of an any_io_executor share its heap-held strand, where each
    // conversion from a strand<> would allocate. Only grows, so references stay valid.
    std::deque<asio::any_io_executor> strands_;
    std::uint64_t next_task_id_ = 0;
    std::uint64_t next_sequence_ = 0;
    std::size_t live_instances_ = 0;  // components with a live instance
    std::size_t starting_ = 0;        // components whose factory is being called
    bool closed_ = false;

    // strand_ only
    Timer close_timer_;
    bool closing_ = false;  // also read under mutex_
    bool close_completed_ = false;
    WaiterList<std::tuple<>> close_waiters_;  // completions of close(); destroyed unrun at context shutdown
};

}  // namespace detail

}  // namespace taskmon
