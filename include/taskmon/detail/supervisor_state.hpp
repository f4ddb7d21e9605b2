// taskmon — coroutine supervision for standalone Asio.
// SPDX-License-Identifier: MIT
//
// Internal: SupervisorState, the runtime of a Supervisor (see taskmon/agent/supervisor.hpp and
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
#include <mutex>
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
#include <asio/detached.hpp>
#include <asio/post.hpp>
#include <asio/strand.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>
#include <fmt/format.h>
#include <spdlog/logger.h>
#include <spdlog/spdlog.h>

#include <taskmon/agent/agent_settings.hpp>
#include <taskmon/agent/agent_status.hpp>
#include <taskmon/agent/history.hpp>
#include <taskmon/agent/supervisor.hpp>
#include <taskmon/detail/bounded_queue.hpp>
#include <taskmon/detail/call_deadline.hpp>
#include <taskmon/detail/condition_wait.hpp>
#include <taskmon/detail/exit_outcome.hpp>
#include <taskmon/detail/latest_slot.hpp>
#include <taskmon/detail/load_sampler.hpp>
#include <taskmon/detail/log_text.hpp>
#include <taskmon/detail/stall_watch.hpp>
#include <taskmon/detail/strand_executor.hpp>
#include <taskmon/detail/supervisor_runtime.hpp>
#include <taskmon/io_semaphore.hpp>
#include <taskmon/monitor_event.hpp>
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
        : strand_(make_strand_executor(executor)),
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
    /// Checked at once under interrupts_mutex_ (no user code runs under it); the answer is applied on the strand.
    void resume_with(std::string interrupt_id, std::string value) override {
        {
            std::lock_guard lock{interrupts_mutex_};
            auto known = interrupts_.find(interrupt_id);
            if (known == interrupts_.end()) {
                throw std::invalid_argument(fmt::format("resume_with: no decision asked interrupt '{}'", interrupt_id));
            }
            if (known->second) {
                throw std::invalid_argument(
                    fmt::format("resume_with: interrupt '{}' was already answered", interrupt_id));
            }
            known->second = true;
        }
        asio::co_spawn(strand_, answer_interrupt(self(), std::move(interrupt_id), std::move(value)), asio::detached);
    }
    void inject_guidance(std::string text) override {
        asio::post(strand_, [self = self(), text = std::move(text)]() mutable {
            if (self->guidance_live_) self->binding_->guidance_injected(text);
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
    void guarded_hook(const char* name, Call call);

    /// Moves along the transition table; records the change, or a refused terminal trigger.
    bool change_status(AgentStatus to, std::string reason);

    bool running() const { return machine_.status() == AgentStatus::running; }
    bool ending() const { return machine_.is_terminal() || machine_.status() == AgentStatus::stopping; }

    // --- control ---------------------------------------------------------------------------------------------

    void post_control(Control control) {
        asio::post(strand_, [self = self(), control] { self->apply_control(control); });
    }

    void apply_control(Control control);

    void request_stop(std::string reason);

    // --- components ------------------------------------------------------------------------------------------

    using Deadline = CallDeadline<Clock>;
    using DeadlinePtr = std::shared_ptr<Deadline>;
    using ComponentBody = asio::awaitable<void> (SupervisorState::*)(Deadline&);

    /// One instance of a component as the TaskMonitor runs it (on its own strand): hops onto our strand, where
    /// all Supervisor state lives. The instance runs bound to its own CallDeadline's signal: the bounded calls
    /// of perception, decision_loop and actuation_loop emit their timeouts there; cancellation from the monitor
    /// is posted to our strand and forwarded there (so every emission happens on our strand).
    /// `self` keeps the state alive while the instance runs (null: the Supervisor is gone; nothing to run).
    static asio::awaitable<void> enter(std::shared_ptr<SupervisorState> self, const char* name, ComponentBody body);

    /// Wraps one instance of a component: counts restarts and records every failure before the monitor sees it.
    asio::awaitable<void> instance(const char* name, asio::awaitable<void> body, DeadlinePtr deadline);

    asio::awaitable<void> perception(Deadline& deadline);

    void on_publish(TimePoint now);

    void grant_grace() { stall_watch_.grant_grace(Clock::now()); }

    asio::awaitable<void> perception_watchdog(Deadline&);

    asio::awaitable<void> decision_loop(Deadline& deadline);

    /// The slot holds an observation not yet seen, captured after the previous step finished.
    bool fresh_observation() const {
        const auto& latest = slot_.latest();
        return latest && latest->sequence > last_seen_sequence_ && latest->captured_at >= previous_step_finished_at_;
    }

    bool may_start_step() const {
        return running() && controls_.empty() && !current_ && steps_begun_ < settings_.max_steps;
    }

    /// With capture_interval 0: a capture now is one a step will use (a step may start, and none is waiting).
    bool wants_capture() const { return may_start_step() && !fresh_observation(); }

    /// After a decision_loop restart: a step whose decide() was in flight failed; one whose hand-over to
    /// actuation was cut off is interrupted (its decision never reached actuation, so nothing ran).
    void recover_decision();

    asio::awaitable<void> actuation_loop(Deadline& deadline);

    /// After an actuation_loop restart: the action that was in flight is interrupted (never replayed), the
    /// rest of its decision is skipped.
    void recover_actuation() {
        if (!current_ || current_->phase != StepPhase::acting) return;
        interrupt_in_flight(*current_, "actuation_loop failed during the action");
        finalize(current_, StepOutcome::failed, DecisionFate::interrupted,
                 fmt::format("action {} interrupted: actuation_loop failed", current_->action_index + 1));
    }

    void interrupt_in_flight(StepInFlight& step, const std::string& why);

    /// The asking step (Decision::interrupt) was finalized: the run waits for resume_with(), the interrupt
    /// written first in a durable run.
    asio::awaitable<void> ask_for_input(std::uint64_t step, std::string payload);
    /// Registers `id` (answered or not) for resume_with()'s check.
    void register_interrupt(const std::string& id, bool answered) {
        std::lock_guard lock{interrupts_mutex_};
        interrupts_[id] = answered;
    }
    /// resume_with() on the strand: the answer written (durable), then the run goes on.
    static asio::awaitable<void> answer_interrupt(std::shared_ptr<SupervisorState> self, std::string id,
                                                  std::string value);

    /// A durable run's journal refused a write: recorded (journal_error), logged, and the run fails.
    void fail_for_journal(const std::string& why);

    static void skip_remaining(StepInFlight& step, std::size_t from, const std::string& why) {
        for (std::size_t i = from; i < step.progress.actions.size(); ++i) {
            step.progress.actions[i].outcome = ActionOutcome::skipped;
            step.progress.actions[i].result = ActionResult::failure("skipped: " + why);
        }
    }

    /// Ends a step: hands it to the ledger and applies the ledger's verdict. `judge` is false for steps cut off
    /// by the end of the run. A step already finalized is left alone (a step is recorded once).
    void finalize(const InFlightPtr& step, StepOutcome outcome, std::optional<DecisionFate> fate, std::string error,
                  bool judge = true);

    asio::awaitable<void> pause_handler(Deadline&);

    asio::awaitable<void> load_shedding_monitor(Deadline&);

    /// Enters or leaves shedding: records, logs and reports it (on_shedding_change). `sample` decided it; null
    /// when none did (the run ended, the monitor gave up).
    void set_shedding(bool on, const std::string& reason, const LoadSample* sample = nullptr);

    /// While shedding: the global io_semaphore's count down to shed_io_semaphore_count (never up). Returns the
    /// change as key=value text for the event, or "".
    std::string lower_io_semaphore();

    std::string restore_io_semaphore();

    /// Every monitor event that leaves a component without a running instance for good (a give-up above all)
    /// reaches component_ended() on our strand. The listener runs on the monitor's strand, so it only posts.
    void watch_components();

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
    void component_ended(const std::string& name, const std::string& error, int restart_count);

    // --- run -------------------------------------------------------------------------------------------------

    /// Runs on the caller's executor; `self` keeps the state alive until the run returned.
    static asio::awaitable<void> run_from_caller(std::shared_ptr<SupervisorState> self) {
        co_await asio::co_spawn(self->strand_, self->run_on_strand(), asio::use_awaitable);
    }

    asio::awaitable<void> run_on_strand();

    std::string stop_reason() const {
        for (auto it = events_.rbegin(); it != events_.rend(); ++it) {
            if (it->kind == HistoryEventKind::status_changed && it->to == AgentStatus::stopping) return it->message;
        }
        return "stop() called";
    }

    void start_components();

    /// After the components closed: the step in flight (if any) ends interrupted; nothing vanishes.
    void settle_leftovers();

    // --- state -----------------------------------------------------------------------------------------------

    asio::any_io_executor strand_;  ///< make_strand_executor(): a strand of the concrete executor when it can be
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
    bool guidance_live_ = false;  ///< the run is live: injected guidance also goes to binding_->guidance_injected
    std::optional<std::string> waiting_for_;                     ///< the interrupt the run waits on
    std::optional<std::pair<std::string, std::string>> answer_;  ///< (id, value) for the next decide()

    std::mutex interrupts_mutex_;
    std::map<std::string, bool> interrupts_;  ///< every interrupt asked: true once answered; interrupts_mutex_

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

// The member functions, by responsibility (as Asio keeps its definitions in impl/).
#include <taskmon/detail/impl/supervisor_state_components.hpp>
#include <taskmon/detail/impl/supervisor_state_loops.hpp>
#include <taskmon/detail/impl/supervisor_state_run.hpp>
#include <taskmon/detail/impl/supervisor_state_shedding.hpp>
#include <taskmon/detail/impl/supervisor_state_status.hpp>
#include <taskmon/detail/impl/supervisor_state_watchdog.hpp>
