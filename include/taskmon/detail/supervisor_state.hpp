// taskmon — coroutine supervision for standalone Asio.
// SPDX-License-Identifier: MIT
//
// Internal: SupervisorState, the runtime of a Supervisor (see taskmon/supervisor.hpp and
// detail/supervisor_runtime.hpp): the six component loops, the status machine and the TaskMonitor. It depends on
// the clock alone; every typed part of a step (perceive, decide, act, the step records) goes through the
// AgentBinding. Held by shared pointer: control calls post to the strand holding a reference, the run and
// every component instance keep it alive, so destroying the Supervisor never leaves a posted call or a running
// loop with a dangling pointer.
//
// The parts that need no coroutine live beside it: the step ledger (detail/step_ledger.hpp, behind the
// binding), the perception watchdog's arithmetic (detail/stall_watch.hpp) and the predicate wait the loops
// park in (detail/condition_wait.hpp).
#pragma once

#include <taskmon/detail/config.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <exception>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include <asio/any_io_executor.hpp>
#include <asio/awaitable.hpp>
#include <asio/basic_waitable_timer.hpp>
#include <asio/bind_cancellation_slot.hpp>
#include <asio/cancellation_signal.hpp>
#include <asio/co_spawn.hpp>
#include <asio/post.hpp>
#include <asio/strand.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>
#include <fmt/format.h>
#include <spdlog/logger.h>
#include <spdlog/spdlog.h>

#include <taskmon/agent_settings.hpp>
#include <taskmon/agent_status.hpp>
#include <taskmon/detail/bounded_queue.hpp>
#include <taskmon/detail/call_deadline.hpp>
#include <taskmon/detail/condition_wait.hpp>
#include <taskmon/detail/exit_outcome.hpp>
#include <taskmon/detail/latest_slot.hpp>
#include <taskmon/detail/load_sampler.hpp>
#include <taskmon/detail/log_text.hpp>
#include <taskmon/detail/stall_watch.hpp>
#include <taskmon/detail/supervisor_runtime.hpp>
#include <taskmon/history.hpp>
#include <taskmon/io_semaphore.hpp>
#include <taskmon/monitor_event.hpp>
#include <taskmon/supervisor.hpp>
#include <taskmon/task_monitor.hpp>

namespace taskmon::detail {

inline std::string seconds_text(std::chrono::nanoseconds d) { return format_seconds(d) + "s"; }

/// The runtime of one Supervisor run and its six component loops.
///
/// Invariants: everything below the atomics is touched only on strand_, the binding too; the atomics
/// (status_, run_claimed_) may be read from any thread. The object is owned by shared_ptr: by the Supervisor,
/// by every control call posted to the strand, by run() while it runs and by every component instance, so it
/// outlives them all; it owns the binding.
template <typename Clock>
class SupervisorState final : public SupervisorRuntime {
public:
    using Duration = typename Clock::duration;
    using TimePoint = typename Clock::time_point;

    /// Throws std::invalid_argument for invalid `settings` (AgentSettings::validate) or a null `binding`.
    SupervisorState(asio::any_io_executor executor, AgentSettings settings, RunHooks hooks,
                    std::shared_ptr<spdlog::logger> logger, CpuSource cpu_source, std::shared_ptr<AgentBinding> binding)
        : strand_(asio::make_strand(executor)),
          binding_(checked(std::move(binding))),
          events_(binding_->events()),
          counters_(binding_->counters()),
          settings_(validated(std::move(settings))),
          hooks_(std::move(hooks)),
          logger_(logger ? std::move(logger) : spdlog::default_logger()),
          cpu_source_(std::move(cpu_source)),
          monitor_(executor, settings_.critical_restart_policy, logger_),
          slot_(strand_),
          queue_(strand_, settings_.decision_queue_capacity),
          gate_(LoadThresholds{settings_.shed_enter_cpu_percent, settings_.shed_leave_cpu_percent,
                               settings_.shed_enter_lag, settings_.shed_leave_lag}) {
        if (!cpu_source_) {
            cpu_source_ = [sampler = std::make_shared<CpuSampler>()] { return sampler->sample(); };
        }
    }

    /// A run cut off without an end (its io_context destroyed mid-run) still gives back the io_semaphore count
    /// it lowered while shedding.
    ~SupervisorState() {
        if (!io_semaphore_restore_) return;
        try {
            set_io_semaphore_count(*io_semaphore_restore_);
        } catch (...) {  // NOLINT(bugprone-empty-catch): the semaphore is closed; nothing to give back
        }
    }

    SupervisorState(const SupervisorState&) = delete;
    SupervisorState& operator=(const SupervisorState&) = delete;

    /// Supervisor::run(): runs on the strand, completes on the caller's executor with the binding's History
    /// sealed. Throws std::logic_error at once on a second call.
    asio::awaitable<void> run() override {
        if (run_claimed_.exchange(true)) throw std::logic_error("Supervisor::run() may be called only once");
        return run_from_caller(self());
    }

    void pause() override { post_control(Control::pause); }
    void resume() override { post_control(Control::resume); }
    void stop(std::string reason) override {
        asio::post(strand_,
                   [self = self(), reason = std::move(reason)]() mutable { self->request_stop(std::move(reason)); });
    }
    void inject_guidance(std::string text) override {
        asio::post(strand_, [self = self(), text = std::move(text)]() mutable {
            self->pending_guidance_.push_back(std::move(text));
            self->notify();
        });
    }
    /// The Supervisor object is gone: a run in progress (or one still to be started by a run() awaitable
    /// that outlived it) stops; its awaiter still receives the history.
    void detach() override {
        if (run_claimed_.load()) stop("the Supervisor was destroyed");
    }

    AgentStatus status() const noexcept override { return status_.load(std::memory_order_acquire); }

    void set_instance_fault(std::function<void(const char*, std::uint64_t)> fault) override {
        instance_fault_ = std::move(fault);
    }

    std::map<std::string, ComponentStats> get_component_stats() const override {
        return monitor_.get_component_stats();
    }
    EventSubscription subscribe(MonitorEventListener listener) override {
        return monitor_.subscribe(std::move(listener));
    }
    const AgentSettings& settings() const noexcept override { return settings_; }

private:
    using Timer = asio::basic_waitable_timer<Clock>;
    using StallCheckKind = typename StallWatch<Clock>::Check::Kind;
    /// The one step in flight (steps do not overlap: the next observation must postdate the previous step).
    using InFlightPtr = std::shared_ptr<StepInFlight>;

    enum class Control { pause, resume };

    struct ComponentInfo {
        std::uint64_t instances = 0;
        bool cancel_requested = false;  ///< a restart we asked for: its operation_aborted is not a failure
        bool gave_up = false;
    };

    static AgentSettings validated(AgentSettings settings) {
        settings.validate();
        return settings;
    }
    static std::shared_ptr<AgentBinding> checked(std::shared_ptr<AgentBinding> binding) {
        if (!binding) throw std::invalid_argument("SupervisorState: the agent binding is null");
        return binding;
    }
    static Duration clock_duration(std::chrono::nanoseconds d) { return std::chrono::duration_cast<Duration>(d); }

    std::shared_ptr<SupervisorState> self() { return std::static_pointer_cast<SupervisorState>(shared_from_this()); }
    std::weak_ptr<SupervisorState> weak_self() { return self(); }

    // --- bookkeeping (strand) --------------------------------------------------------------------------------

    Offset offset(TimePoint t) const { return std::chrono::duration_cast<Offset>(t - started_at_); }
    Offset now_offset() const { return offset(Clock::now()); }
    TimePoint time_at(Offset offset) const { return started_at_ + clock_duration(offset); }

    /// Called after every state change: wakes exactly the waits whose condition now holds.
    void notify() { waits_.notify(); }

    /// Waits on the strand until pred() holds, or until `deadline` (see ConditionWait::wait_until).
    /// Cancellation (any type) throws operation_aborted.
    template <typename Pred>
    asio::awaitable<void> wait_until(Pred pred, std::optional<TimePoint> deadline = std::nullopt) {
        return waits_.wait_until(weak_from_this(), std::move(pred), deadline);
    }

    /// Appends an event; the caller sets the typed fields of its kind on the event returned.
    HistoryEvent& record(HistoryEventKind kind, std::string component, std::string message,
                         std::optional<std::uint64_t> step = std::nullopt) {
        return events_.emplace_back(HistoryEvent{kind, now_offset(), std::move(component), std::move(message),
                                                 std::nullopt, std::nullopt, step});
    }

    /// Logging never throws: a throwing sink or error handler must not break a loop or escape run().
    template <typename... Args>
    void log(spdlog::level::level_enum level, fmt::format_string<Args...> format, Args&&... args) const noexcept {
        try {
            logger_->log(level, format, std::forward<Args>(args)...);
        } catch (...) {  // NOLINT(bugprone-empty-catch): nowhere left to report it
        }
    }

    template <typename Hook, typename... Args>
    void call_hook(const char* name, const Hook& hook, const Args&... args) {
        if (hook) guarded_hook(name, [&] { hook(args...); });
    }

    /// Runs `call` (a hook); what it throws is counted, recorded and logged, never propagated.
    template <typename Call>
    void guarded_hook(const char* name, Call call) {
        try {
            call();
        } catch (...) {
            const auto what = describe(std::current_exception());
            ++counters_.hook_errors;
            record(HistoryEventKind::hook_error, "", fmt::format("hook={} error={}", name, quote(what)));
            log(spdlog::level::err, "Hook {} threw hook={} error={}", name, name, quote(what));
        }
    }

    /// Moves along the transition table; records the change, or a refused terminal trigger.
    bool change_status(AgentStatus to, std::string reason) {
        const AgentStatus from = machine_.status();
        auto change = machine_.transition(to, reason);
        if (!change) {
            if (machine_.is_terminal() && is_terminal(to)) {
                record(HistoryEventKind::terminal_refused, "",
                       fmt::format("status={} refused={} reason={}", from, to, quote(reason)));
            } else {
                log(spdlog::level::debug, "Status change refused from={} to={} reason={}", from, to, quote(reason));
            }
            return false;
        }
        events_.push_back(HistoryEvent{
            HistoryEventKind::status_changed, now_offset(), "", change->reason, change->from, change->to, {}});
        status_.store(to, std::memory_order_release);
        const auto level = to == AgentStatus::failed ? spdlog::level::err : spdlog::level::info;
        log(level, "Agent status {} -> {} from={} to={} reason={}", change->from, change->to, change->from, change->to,
            quote(change->reason));
        call_hook("on_status_change", hooks_.on_status_change, *change);
        notify();
        return true;
    }

    bool running() const { return machine_.status() == AgentStatus::running; }
    bool ending() const { return machine_.is_terminal() || machine_.status() == AgentStatus::stopping; }

    // --- control ---------------------------------------------------------------------------------------------

    void post_control(Control control) {
        asio::post(strand_, [self = self(), control] { self->apply_control(control); });
    }

    void apply_control(Control control) {
        const char* what = control == Control::pause ? "pause" : "resume";
        if (ending()) {
            log(spdlog::level::info, "{}() ignored: the run is {}", what, machine_.status());
            return;
        }
        if (const auto it = components_.find(components::pause_handler);
            it != components_.end() && it->second.gave_up) {
            log(spdlog::level::err, "{}() dropped: component pause_handler gave up", what);
            return;
        }
        controls_.push_back(control);
        notify();
    }

    void request_stop(std::string reason) {
        if (ending()) {
            log(spdlog::level::info, "stop() ignored: the run is already {} reason={}", machine_.status(),
                quote(reason));
            return;
        }
        if (machine_.status() == AgentStatus::pending) {
            change_status(AgentStatus::stopped, std::move(reason));
        } else {
            change_status(AgentStatus::stopping, std::move(reason));
        }
    }

    // --- components ------------------------------------------------------------------------------------------

    using Deadline = CallDeadline<Clock>;
    using DeadlinePtr = std::shared_ptr<Deadline>;
    using ComponentBody = asio::awaitable<void> (SupervisorState::*)(Deadline&);

    /// One instance of a component as the TaskMonitor runs it (on its own strand): hops onto our strand, where
    /// all Supervisor state lives. The instance runs bound to its own CallDeadline's signal: the bounded calls
    /// of perception, decision_loop and actuation_loop emit their timeouts there; cancellation from the monitor
    /// is posted to our strand and forwarded there (so every emission happens on our strand).
    /// `self` keeps the state alive while the instance runs (null: the Supervisor is gone; nothing to run).
    static asio::awaitable<void> enter(std::shared_ptr<SupervisorState> self, const char* name, ComponentBody body) {
        if (!self) co_return;
        const auto& strand = self->strand_;
        auto deadline = std::make_shared<Deadline>(strand);
        asio::cancellation_state outer = co_await asio::this_coro::cancellation_state;
        auto outer_slot = outer.slot();
        if (outer_slot.is_connected()) {
            outer_slot.assign([deadline, strand](asio::cancellation_type_t type) {
                asio::post(strand, [deadline, type] { deadline->cancel(type); });
            });
        }
        std::exception_ptr error;
        try {
            co_await asio::co_spawn(strand, self->instance(name, ((*self).*body)(*deadline), deadline),
                                    asio::bind_cancellation_slot(deadline->slot(), asio::use_awaitable));
        } catch (...) {
            error = std::current_exception();
        }
        if (outer_slot.is_connected()) outer_slot.clear();
        if (error) std::rethrow_exception(error);
    }

    /// Wraps one instance of a component: counts restarts and records every failure before the monitor sees it.
    asio::awaitable<void> instance(const char* name, asio::awaitable<void> body, DeadlinePtr deadline) {
        auto& info = components_[name];
        info.cancel_requested = false;  // a restart requested before this instance existed was not for it
        if (++info.instances > 1) {
            ++counters_.restarts[name];
            auto& restarted =
                record(HistoryEventKind::component_restarted, name, fmt::format("instance={}", info.instances));
            restarted.instance = info.instances;
        }
        std::exception_ptr error;
        try {
            if (instance_fault_) instance_fault_(name, info.instances);
            co_await std::move(body);
        } catch (...) {
            error = std::current_exception();
        }
        deadline->finish();
        if (!error) co_return;
        // Every exit while the run closes is requested; so is the cancellation of a restart we asked for.
        const auto outcome = classify_exit(error);
        const bool aborted = outcome.kind == ExitOutcome::aborted;
        const bool requested = closing_ || (aborted && info.cancel_requested);
        info.cancel_requested = false;
        if (!requested) {
            const auto what = aborted ? std::string{"unexpected cancellation"} : outcome.reason;
            record(HistoryEventKind::component_failed, name, fmt::format("error={}", quote(what)));
            notify();
        }
        std::rethrow_exception(error);
    }

    asio::awaitable<void> perception(Deadline& deadline) {
        if (components_[components::perception].instances > 1) grant_grace();
        Timer timer{strand_};
        for (;;) {
            co_await wait_until([this] { return running() || ending(); });
            if (ending()) co_return;  // close() cancels us; nothing more to capture
            const TimePoint start = Clock::now();
            std::shared_ptr<const void> observation;
            try {
                deadline.arm(deadline_after(start, clock_duration(settings_.capture_timeout)));
                observation = co_await binding_->perceive(deadline, capture_timeout_text_);
            } catch (...) {
                if (!is_operation_aborted(std::current_exception())) ++counters_.capture_failures;
                throw;
            }
            slot_.publish(std::move(observation), start);  // captured_at: when the capture began
            on_publish(Clock::now());
            const Duration interval =
                clock_duration(shedding_ ? settings_.shed_capture_interval : settings_.capture_interval);
            if (interval > Duration::zero()) {
                timer.expires_at(start + interval);
                co_await timer.async_wait(asio::use_awaitable);
            } else {
                co_await asio::post(strand_, asio::use_awaitable);  // let the other components run
            }
        }
    }

    void on_publish(TimePoint now) {
        ++counters_.observations_published;
        if (stall_watch_.on_publish(now)) {
            record(HistoryEventKind::watchdog_recovered, components::perception_watchdog,
                   fmt::format("sequence={}", slot_.sequence()));
            log(spdlog::level::info, "Perception recovered component=perception sequence={}", slot_.sequence());
        }
        notify();
    }

    void grant_grace() { stall_watch_.grant_grace(Clock::now()); }

    asio::awaitable<void> perception_watchdog(Deadline&) {
        Timer timer{strand_};
        for (;;) {
            timer.expires_after(stall_watch_.period());
            co_await timer.async_wait(asio::use_awaitable);
            if (!running()) continue;  // suspended while paused; resume grants a fresh grace
            const auto found = stall_watch_.check(Clock::now());
            if (found.kind == StallCheckKind::quiet) continue;

            ++counters_.watchdog_stalls;
            const auto silent = seconds_text(found.silent_for);
            auto& stall = record(
                HistoryEventKind::watchdog_stall, components::perception_watchdog,
                fmt::format("silent_for={} stall={}/{}", silent, found.stalls, settings_.max_consecutive_stalls));
            stall.consecutive_stalls = found.stalls;
            stall.max_consecutive_stalls = settings_.max_consecutive_stalls;
            stall.silent_for = std::chrono::duration_cast<Offset>(found.silent_for);
            log(spdlog::level::warn, "Perception stalled: nothing published for {} component=perception stall={}/{}",
                silent, found.stalls, settings_.max_consecutive_stalls);
            if (found.kind == StallCheckKind::give_up) {
                change_status(AgentStatus::failed, fmt::format("perception stalled {} times in a row", found.stalls));
                continue;
            }
            // The watch holds actuation and granted a fresh grace until perception publishes again.
            components_[components::perception].cancel_requested = true;
            monitor_.restart(components::perception);
            notify();
        }
    }

    asio::awaitable<void> decision_loop(Deadline& deadline) {
        recover_decision();
        for (;;) {
            // One wait for both conditions: a safe point and an observation captured after the previous step
            // finished (so a publish of a stale one, or the end of a step, wakes nobody).
            co_await wait_until([this] { return (may_start_step() && fresh_observation()) || ending(); });
            if (ending()) co_return;
            const auto& snapshot = *slot_.latest();  // the freshest at the moment we resume
            last_seen_sequence_ = snapshot.sequence;
            const TimePoint now = Clock::now();
            if (now - snapshot.captured_at > clock_duration(settings_.max_observation_age)) {
                continue;  // counted as dropped when a later observation is decided (or at the end)
            }

            counters_.observations_dropped += snapshot.sequence - last_decided_sequence_ - 1;
            last_decided_sequence_ = snapshot.sequence;
            InFlightPtr step = binding_->make_step();
            auto& progress = step->progress;
            progress.number = ++steps_begun_;
            progress.observation_sequence = snapshot.sequence;
            progress.observation_age = std::chrono::duration_cast<Offset>(now - snapshot.captured_at);
            progress.started_at = offset(now);
            current_ = step;
            call_hook("on_step_start", hooks_.on_step_start, progress.number);

            DecideInput input;
            input.shedding = shedding_;
            if (!pending_guidance_.empty()) {
                input.guidance.assign(std::make_move_iterator(pending_guidance_.begin()),
                                      std::make_move_iterator(pending_guidance_.end()));
                pending_guidance_.clear();
                record(HistoryEventKind::guidance_delivered, components::decision_loop,
                       fmt::format("items={}", input.guidance.size()), progress.number);
            }

            std::exception_ptr error;
            DecisionShape decision;
            try {
                // The timeout runs from the call, after on_step_start (a clock read only when there is a hook).
                // No temporary with a destructor in the co_await expression (g++ 12 destroys such temporaries
                // twice): the binding takes everything by reference and copies the observation's pointer.
                const TimePoint called_at = hooks_.on_step_start ? Clock::now() : now;
                deadline.arm(deadline_after(called_at, clock_duration(settings_.decide_timeout)));
                decision = co_await binding_->decide(*step, snapshot.value, input, deadline, decide_timeout_text_);
            } catch (...) {
                error = std::current_exception();
            }
            // decide() ignored the close() cancellation past the shutdown_timeout: run() has already recorded the
            // step (moved into the history). Touch nothing and hand nothing on.
            if (step->finalized) co_return;
            if (error) {
                if (is_operation_aborted(error)) std::rethrow_exception(error);  // our instance ends
                finalize(step, StepOutcome::failed, std::nullopt, "decide() failed: " + describe(error));
                continue;
            }
            progress.decided_at = now_offset();
            progress.done = decision.done;
            progress.actions.resize(decision.actions);  // each skipped until it runs
            step->phase = StepPhase::queued;
            if (!queue_.try_push(step)) co_await queue_.async_push(step, asio::use_awaitable);
        }
    }

    /// The slot holds an observation not yet seen, captured after the previous step finished.
    bool fresh_observation() const {
        const auto& latest = slot_.latest();
        return latest && latest->sequence > last_seen_sequence_ && latest->captured_at >= previous_step_finished_at_;
    }

    bool may_start_step() const {
        return running() && controls_.empty() && !current_ && steps_begun_ < settings_.max_steps;
    }

    /// After a decision_loop restart: a step whose decide() was in flight failed; one whose hand-over to
    /// actuation was cut off is interrupted (its decision never reached actuation, so nothing ran).
    void recover_decision() {
        if (!current_) return;
        if (current_->phase == StepPhase::deciding) {
            finalize(current_, StepOutcome::failed, std::nullopt, "decision_loop failed while deciding");
        } else if (current_->phase == StepPhase::queued && queue_.empty()) {
            finalize(current_, StepOutcome::failed, DecisionFate::interrupted,
                     "decision_loop failed before handing the decision to actuation");
        }
    }

    asio::awaitable<void> actuation_loop(Deadline& deadline) {
        recover_actuation();
        for (;;) {
            InFlightPtr step;
            if (current_ && current_->phase == StepPhase::accepted) {
                step = current_;  // taken before our previous instance died, nothing started: safe to run
            } else if (auto popped = queue_.try_pop()) {
                step = std::move(*popped);
            } else {
                step = co_await queue_.async_pop(asio::use_awaitable);
            }
            if (step->finalized) continue;  // already settled by a decision_loop recovery
            step->phase = StepPhase::accepted;
            const TimePoint decided_at = time_at(*step->progress.decided_at);
            const TimePoint expiry = decided_at + clock_duration(settings_.max_decision_age);
            co_await wait_until([this] { return !stall_watch_.stalled() || ending(); }, expiry);  // watchdog hold
            if (ending()) co_return;  // the run ends; run() records the step as interrupted
            TimePoint now = Clock::now();
            if (now >= expiry) {
                const auto age = seconds_text(now - decided_at);
                record(HistoryEventKind::decision_expired, components::actuation_loop,
                       fmt::format("age={} max_decision_age={}", age, seconds_text(settings_.max_decision_age)),
                       step->progress.number);
                skip_remaining(*step, 0, "decision expired");
                finalize(step, StepOutcome::failed, DecisionFate::expired,
                         "decision expired after " + age + " waiting for actuation");
                continue;
            }
            const std::size_t actions = step->progress.actions.size();
            if (actions > settings_.max_actions_per_step) {
                skip_remaining(*step, 0, "too many actions");
                finalize(step, StepOutcome::failed, DecisionFate::failed,
                         fmt::format("decision has {} actions; max_actions_per_step is {}", actions,
                                     settings_.max_actions_per_step));
                continue;
            }
            bool all_ok = true;
            for (std::size_t i = 0; i < actions; ++i) {
                auto& rec = step->progress.actions[i];
                step->phase = StepPhase::acting;
                step->action_index = i;
                rec.started_at = offset(now);  // the previous action's end, or the check above
                ActionResult result;
                try {
                    result = co_await bounded_call<ActionResult>(
                        deadline, deadline_after(now, clock_duration(settings_.act_timeout)), act_timeout_text_,
                        [this, in_flight = step.get(), i] { return binding_->act(*in_flight, i); });
                } catch (const DeadlineExceeded& e) {  // ours; a TimeoutError act() throws means "effect unknown"
                    result = ActionResult::failure(e.what());
                }
                // act() ignored the close() cancellation past the shutdown_timeout: run() has already recorded
                // the step (moved into the history) as interrupted. Touch nothing and start nothing.
                if (step->finalized) co_return;
                now = Clock::now();
                rec.finished_at = offset(now);
                rec.result = std::move(result);
                rec.outcome = rec.result.success ? ActionOutcome::succeeded : ActionOutcome::failed;
                if (!rec.result.success) {
                    all_ok = false;
                    skip_remaining(*step, i + 1, "an earlier action failed");
                    finalize(step, StepOutcome::failed, DecisionFate::failed,
                             fmt::format("action {} failed: {}", i + 1, rec.result.error));
                    break;
                }
                if (ending() && i + 1 < actions) {
                    // The run ends (act() finished despite the cancellation): no further action starts.
                    all_ok = false;
                    const auto why = fmt::format("the run is {}", machine_.status());
                    skip_remaining(*step, i + 1, why);
                    finalize(step, StepOutcome::failed, DecisionFate::interrupted,
                             fmt::format("actions {}-{} not started: {}", i + 2, actions, why), false);
                    co_return;
                }
            }
            if (all_ok) finalize(step, StepOutcome::succeeded, DecisionFate::executed, "");
        }
    }

    /// After an actuation_loop restart: the action that was in flight is interrupted (never replayed), the
    /// rest of its decision is skipped.
    void recover_actuation() {
        if (!current_ || current_->phase != StepPhase::acting) return;
        interrupt_in_flight(*current_, "actuation_loop failed during the action");
        finalize(current_, StepOutcome::failed, DecisionFate::interrupted,
                 fmt::format("action {} interrupted: actuation_loop failed", current_->action_index + 1));
    }

    void interrupt_in_flight(StepInFlight& step, const std::string& why) {
        auto& rec = step.progress.actions[step.action_index];
        rec.outcome = ActionOutcome::interrupted;
        rec.result = ActionResult::failure(why);
        record(HistoryEventKind::action_interrupted, components::actuation_loop,
               fmt::format("action={} reason={}", step.action_index + 1, quote(why)), step.progress.number);
        skip_remaining(step, step.action_index + 1, why);
    }

    static void skip_remaining(StepInFlight& step, std::size_t from, const std::string& why) {
        for (std::size_t i = from; i < step.progress.actions.size(); ++i) {
            step.progress.actions[i].outcome = ActionOutcome::skipped;
            step.progress.actions[i].result = ActionResult::failure("skipped: " + why);
        }
    }

    /// Ends a step: hands it to the ledger and applies the ledger's verdict. `judge` is false for steps cut off
    /// by the end of the run. A step already finalized is left alone (a step is recorded once).
    void finalize(const InFlightPtr& step, StepOutcome outcome, std::optional<DecisionFate> fate, std::string error,
                  bool judge = true) {
        if (step->finalized) return;
        step->finalized = true;
        auto& rec = step->progress;
        rec.outcome = outcome;
        rec.fate = fate;
        rec.error = std::move(error);
        const TimePoint now = Clock::now();
        rec.finished_at = offset(now);
        previous_step_finished_at_ = now;
        if (outcome == StepOutcome::failed) {
            log(spdlog::level::warn, "Step {} failed step={} error={}", rec.number, rec.number, quote(rec.error));
        }
        // The step is finalized: its progress is not read again.
        const StepVerdict verdict = binding_->record(*step, judge);
        if (current_ == step) current_.reset();
        if (verdict.status) change_status(*verdict.status, verdict.reason);
        guarded_hook("on_step_end", [this] { binding_->on_step_end(); });
        notify();
    }

    asio::awaitable<void> pause_handler(Deadline&) {
        for (;;) {
            co_await wait_until([this] { return !controls_.empty(); });
            const Control control = controls_.front();
            if (control == Control::pause) {
                co_await wait_until([this] { return !current_ || ending(); });  // the safe point
                if (!change_status(AgentStatus::paused, "pause() called")) {
                    log(spdlog::level::info, "pause() ignored: the run is {}", machine_.status());
                }
            } else if (change_status(AgentStatus::running, "resume() called")) {
                grant_grace();
            } else {
                log(spdlog::level::info, "resume() ignored: the run is {}", machine_.status());
            }
            controls_.pop_front();
            notify();
        }
    }

    asio::awaitable<void> load_shedding_monitor(Deadline&) {
        Timer timer{strand_};
        for (;;) {
            const auto lag = co_await sleep_and_measure_lag(timer, clock_duration(settings_.load_sample_interval));
            if (!gate_.update(LoadSample{cpu_source_(), lag})) continue;
            set_shedding(gate_.shedding(), gate_.reason());
        }
    }

    void set_shedding(bool on, const std::string& reason) {
        shedding_ = on;
        if (on) ++counters_.load_shedding_entries;
        const auto io = on ? lower_io_semaphore() : restore_io_semaphore();
        record(on ? HistoryEventKind::load_shedding_entered : HistoryEventKind::load_shedding_left,
               components::load_shedding_monitor, reason + io);
        log(spdlog::level::info, "Load shedding {} component=load_shedding_monitor {}{}", on ? "entered" : "left",
            reason, io);
        notify();
    }

    /// While shedding: the global io_semaphore's count down to shed_io_semaphore_count (never up). Returns the
    /// change as key=value text for the event, or "".
    std::string lower_io_semaphore() {
        const std::size_t target = settings_.shed_io_semaphore_count;
        const std::size_t current = get_io_semaphore_stats().capacity;
        if (target == 0 || target >= current) return {};
        io_semaphore_restore_ = current;
        set_io_semaphore_count(target);
        return fmt::format(" io_semaphore_count={}->{}", current, target);
    }

    std::string restore_io_semaphore() {
        if (!io_semaphore_restore_) return {};
        const std::size_t count = *io_semaphore_restore_;
        io_semaphore_restore_.reset();
        const std::size_t current = get_io_semaphore_stats().capacity;
        set_io_semaphore_count(count);
        return fmt::format(" io_semaphore_count={}->{}", current, count);
    }

    /// Every monitor event that leaves a component without a running instance for good (a give-up above all)
    /// reaches component_ended() on our strand. The listener runs on the monitor's strand, so it only posts.
    void watch_components() {
        monitor_events_ = monitor_.subscribe(
            [weak = weak_self(), strand = strand_,
             temporary = std::pair{settings_.critical_restart_policy.restart_type == RestartType::temporary,
                                   settings_.auxiliary_restart_policy.restart_type == RestartType::temporary}](
                const MonitorEvent& e) {
                switch (e.kind) {
                    case MonitorEventKind::failed:
                    case MonitorEventKind::cancelled_unexpectedly:
                        // Final only for a temporary component (never restarted); otherwise a restart follows.
                        if (!(is_critical(e.component) ? temporary.first : temporary.second)) return;
                        break;
                    case MonitorEventKind::gave_up:
                    case MonitorEventKind::not_enabled:
                    case MonitorEventKind::no_factory: break;
                    default: return;
                }
                // Acts on the event itself, not on the stats read later: a restart() in between (the
                // watchdog's) resets a give-up in the stats but must not hide it.
                asio::post(strand, [weak, name = e.component, restart_count = e.restart_count,
                                    error = e.reason.empty() ? std::string{to_string(e.kind)} : e.reason] {
                    if (const auto self = weak.lock(); self && !self->run_returned_) {
                        self->component_ended(name, error, restart_count);
                    }
                });
            });
    }

    /// components::critical (perception, perception_watchdog, decision_loop, actuation_loop); the other two
    /// are auxiliary.
    static bool is_critical(std::string_view name) { return components::is_critical(name); }

    /// After close(): a component that ended for good without its event having been handled yet.
    void check_components() {
        for (const auto& [name, stats] : monitor_.get_component_stats()) {
            if (stats.state == ComponentState::gave_up || stats.state == ComponentState::failed) {
                component_ended(name, stats.last_error, stats.restart_count);
            }
        }
    }

    /// A component will not run again: a critical one fails the run; an auxiliary one degrades it. Once per
    /// component.
    void component_ended(const std::string& name, const std::string& error, int restart_count) {
        const auto it = components_.find(name);
        if (it == components_.end() || it->second.gave_up) return;
        it->second.gave_up = true;
        record(HistoryEventKind::component_gave_up, name,
               fmt::format("restart_count={} last_error={}", restart_count, quote(error)));
        if (is_critical(name)) {
            change_status(AgentStatus::failed, fmt::format("critical component {} gave up: {}", name, error));
        } else if (name == components::load_shedding_monitor) {
            if (gate_.reset("load_shedding_monitor gave up: failing open")) set_shedding(false, gate_.reason());
            log(spdlog::level::err, "Component load_shedding_monitor gave up; load shedding is off (fail open)");
        } else {
            // Requests nobody will apply would block new steps (see may_start_step): drop them, loudly.
            log(spdlog::level::err,
                "Component pause_handler gave up; {} pending pause/resume request(s) dropped, later ones are "
                "dropped too",
                controls_.size());
            controls_.clear();
            notify();
        }
    }

    // --- run -------------------------------------------------------------------------------------------------

    /// Runs on the caller's executor; `self` keeps the state alive until the run returned.
    static asio::awaitable<void> run_from_caller(std::shared_ptr<SupervisorState> self) {
        co_await asio::co_spawn(self->strand_, self->run_on_strand(), asio::use_awaitable);
    }

    asio::awaitable<void> run_on_strand() {
        started_at_ = Clock::now();
        const auto started_wall_time = std::chrono::system_clock::now();
        if (change_status(AgentStatus::running, "run() started")) {
            call_hook("on_run_start", hooks_.on_run_start);
            grant_grace();
            watch_components();
            start_components();
            try {
                co_await wait_until([this] { return ending(); });
            } catch (...) {
                request_stop("run() was cancelled");  // the awaiting coroutine was cancelled
            }
            co_await asio::this_coro::reset_cancellation_state();
            closing_ = true;
            co_await monitor_.close();
            check_components();
            if (shedding_) set_shedding(false, "the run ended");
            if (machine_.status() == AgentStatus::stopping) change_status(AgentStatus::stopped, stop_reason());
            settle_leftovers();
        }
        counters_.observations_dropped += slot_.sequence() - last_decided_sequence_;
        last_decided_sequence_ = slot_.sequence();
        binding_->end_run(machine_.status(), machine_.terminal_reason(), started_wall_time, now_offset());
        run_returned_ = true;
        guarded_hook("on_run_end", [this] { binding_->on_run_end(); });
        binding_->seal();
    }

    std::string stop_reason() const {
        for (auto it = events_.rbegin(); it != events_.rend(); ++it) {
            if (it->kind == HistoryEventKind::status_changed && it->to == AgentStatus::stopping) return it->message;
        }
        return "stop() called";
    }

    void start_components() {
        const auto add = [this](const char* name, auto body) {
            components_.try_emplace(name);
            monitor_.supervise(
                name, [weak = weak_self(), name, body] { return enter(weak.lock(), name, body); },
                is_critical(name) ? settings_.critical_restart_policy : settings_.auxiliary_restart_policy);
        };
        add(components::perception, &SupervisorState::perception);
        add(components::perception_watchdog, &SupervisorState::perception_watchdog);
        add(components::decision_loop, &SupervisorState::decision_loop);
        add(components::actuation_loop, &SupervisorState::actuation_loop);
        add(components::pause_handler, &SupervisorState::pause_handler);
        add(components::load_shedding_monitor, &SupervisorState::load_shedding_monitor);
    }

    /// After the components closed: the step in flight (if any) ends interrupted; nothing vanishes.
    void settle_leftovers() {
        for (auto& queued : queue_.drain()) {
            if (queued != current_) {
                skip_remaining(*queued, 0, "the run ended first");
                finalize(queued, StepOutcome::failed, DecisionFate::interrupted, "the run ended first", false);
            }
        }
        if (!current_) return;
        const auto why = fmt::format("the run ended ({})", machine_.status());
        switch (current_->phase) {
            case StepPhase::deciding:
                finalize(current_, StepOutcome::failed, std::nullopt, "decide() was cut off: " + why, false);
                break;
            case StepPhase::queued:
            case StepPhase::accepted:
                skip_remaining(*current_, 0, why);
                finalize(current_, StepOutcome::failed, DecisionFate::interrupted, "decision not run: " + why, false);
                break;
            case StepPhase::acting:
                interrupt_in_flight(*current_, why);
                finalize(current_, StepOutcome::failed, DecisionFate::interrupted,
                         fmt::format("action {} interrupted: {}", current_->action_index + 1, why), false);
                break;
        }
    }

    // --- state -----------------------------------------------------------------------------------------------

    asio::strand<asio::any_io_executor> strand_;
    std::shared_ptr<AgentBinding> binding_;  ///< never null; the agent's functions, typed hooks and History
    std::vector<HistoryEvent>& events_;      ///< the History's, in binding_
    HistoryCounters& counters_;              ///< the History's, in binding_
    AgentSettings settings_;
    std::string capture_timeout_text_ = "perceive() timed out after " + seconds_text(settings_.capture_timeout);
    std::string decide_timeout_text_ = "decide() timed out after " + seconds_text(settings_.decide_timeout);
    std::string act_timeout_text_ = "act() timed out after " + seconds_text(settings_.act_timeout);
    RunHooks hooks_;
    std::shared_ptr<spdlog::logger> logger_;
    CpuSource cpu_source_;
    mutable BasicTaskMonitor<Clock> monitor_;
    std::function<void(const char*, std::uint64_t)> instance_fault_;  ///< see set_instance_fault()
    EventSubscription monitor_events_;                                ///< see watch_components(); strand

    std::atomic<bool> run_claimed_{false};
    std::atomic<AgentStatus> status_{AgentStatus::pending};

    // Everything below is guarded by strand_.
    AgentStatusMachine machine_;
    TimePoint started_at_{};
    std::map<std::string, ComponentInfo> components_;
    bool closing_ = false;
    bool run_returned_ = false;  ///< the history is final

    LatestSlot<std::shared_ptr<const void>, TimePoint> slot_;  ///< perception → decision_loop
    ConditionWait<Clock> waits_{strand_};                      ///< wait_until()'s parked waits, woken by notify()
    BoundedQueue<InFlightPtr> queue_;                          ///< decision_loop → actuation_loop

    InFlightPtr current_;  ///< the step in flight
    std::uint64_t steps_begun_ = 0;
    std::uint64_t last_seen_sequence_ = 0;
    std::uint64_t last_decided_sequence_ = 0;
    TimePoint previous_step_finished_at_{};

    std::deque<Control> controls_;  ///< pause/resume requests, applied in order by pause_handler
    std::deque<std::string> pending_guidance_;

    StallWatch<Clock> stall_watch_{clock_duration(settings_.perception_timeout),
                                   clock_duration(settings_.watchdog_startup_grace),
                                   settings_.max_consecutive_stalls};  ///< perception_watchdog's state

    LoadShedGate gate_;
    bool shedding_ = false;
    std::optional<std::size_t> io_semaphore_restore_;  ///< the count to restore when shedding ends
};

/// Every clock's runtime factory (under TASKMON_SEPARATE_COMPILATION, the steady clock's and ManualClock's
/// are declared in detail/supervisor_runtime.hpp and defined in taskmon/separate_compilation.hpp and
/// taskmon/testing/separate_compilation.hpp).
template <typename Clock>
struct SupervisorRuntimeFactory {
    static std::shared_ptr<SupervisorRuntime> make(asio::any_io_executor executor, AgentSettings settings,
                                                   RunHooks hooks, std::shared_ptr<spdlog::logger> logger,
                                                   CpuSource cpu_source, std::shared_ptr<AgentBinding> binding) {
        return std::make_shared<SupervisorState<Clock>>(std::move(executor), std::move(settings), std::move(hooks),
                                                        std::move(logger), std::move(cpu_source), std::move(binding));
    }
};

}  // namespace taskmon::detail
