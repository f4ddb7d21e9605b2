// taskmon — coroutine supervision for standalone Asio.
// SPDX-License-Identifier: MIT
//
// Supervisor: an agent runtime. An agent perceives, decides and acts in a loop; the Supervisor runs that loop
// as six long-lived components under a TaskMonitor, so one failing loop is restarted on its own and never
// cancels its siblings. run() returns the run's History, whatever its end.
//
//   taskmon::Supervisor<Grid, Move> robot{io.get_executor(),
//       {.perceive = [&]() -> asio::awaitable<Grid> { co_return co_await camera.capture(); },
//        .decide  = [&](const Grid& g, const auto& ctx) -> asio::awaitable<taskmon::Decision<Move>> { ... },
//        .act     = [&](const Move& m) -> asio::awaitable<taskmon::ActionResult> { ... }},
//       {.max_steps = 50}};
//   auto history = co_await robot.run();      // pause(), resume(), stop(), inject_guidance() from anywhere
//
// Components (names used in logs, stats and history):
//   perception            captures (bounded by capture_timeout) into a keep-latest slot; paced by
//                         capture_interval, or shed_capture_interval while shedding; idle while paused.
//   perception_watchdog   declares a stall when nothing was published within perception_timeout while running
//                         (after a startup grace); restarts perception and holds actuation until it publishes;
//                         fails the run after max_consecutive_stalls.
//   decision_loop         decides on the freshest observation newer than the last decided one, captured after
//                         the previous step finished and younger than max_observation_age; hands the decision
//                         to actuation through a bounded FIFO.
//   actuation_loop        runs each action at most once (an action in flight when its instance died is
//                         recorded as interrupted, never replayed); expires stale decisions; finalizes steps.
//   pause_handler         applies pause() at a safe point (no step in flight) and resume().
//   load_shedding_monitor samples CPU (/proc) and event-loop lag with hysteresis; while shedding, perception
//                         slows down (and the io_semaphore count may be lowered). Never sheds the watchdog,
//                         control or an accepted action.
// The first four are critical (a give-up fails the run); the last two are auxiliary (a give-up degrades it).
//
// Threading: all state lives on one strand; every public member may be called from any thread. Destroying the
// Supervisor stops a run in progress; the coroutine awaiting run() still receives the history.
#pragma once

#include <taskmon/detail/config.hpp>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <asio/any_io_executor.hpp>
#include <asio/awaitable.hpp>
#include <spdlog/logger.h>

#include <taskmon/agent/agent_settings.hpp>
#include <taskmon/agent/agent_status.hpp>
#include <taskmon/agent/cpu_usage.hpp>
#include <taskmon/agent/history.hpp>
#include <taskmon/agent/timeout_error.hpp>
#include <taskmon/component_stats.hpp>
#include <taskmon/detail/supervisor_runtime.hpp>
#include <taskmon/event_subscription.hpp>
#include <taskmon/monitor_event.hpp>

namespace taskmon {

/// What decide() returns: actions to run, or done with a result (optionally with final actions, run first).
template <typename Action, typename Result = std::string>
struct Decision {
    std::vector<Action> actions;
    std::optional<Result> result;  ///< engaged: the agent is done
    /// Engaged: the agent asks a human (the payload says what); after the decision's actions the run waits
    /// (AgentStatus::waiting_for_input) until resume_with() answers, and the answer reaches the next decide().
    std::optional<std::string> interrupt_payload{};

    static Decision act(std::vector<Action> actions) { return Decision{std::move(actions), std::nullopt}; }
    static Decision interrupt(std::string payload, std::vector<Action> actions = {}) {
        return Decision{std::move(actions), std::nullopt, std::move(payload)};
    }
    bool is_interrupt() const noexcept { return interrupt_payload.has_value(); }
    static Decision done(Result result, std::vector<Action> final_actions = {}) {
        return Decision{std::move(final_actions), std::move(result)};
    }
    bool is_done() const noexcept { return result.has_value(); }
};

/// What decide() gets besides the observation.
template <typename Action, typename Result = std::string>
struct DecisionContext {
    std::uint64_t step = 0;  ///< number of the step being decided (1-based)
    std::uint64_t observation_sequence = 0;
    std::chrono::nanoseconds observation_age{};
    std::vector<std::string> guidance;  ///< injected with inject_guidance() since the last decide()
    std::size_t consecutive_failures = 0;
    bool shedding = false;  ///< load shedding is active
    std::optional<StepRecord<Action, Result>> previous_step;
    /// The answer given with resume_with() to the interrupt `interrupt_id`, delivered to this decide() only.
    std::string interrupt_id{};
    std::optional<std::string> interrupt_value{};
};

/// The user's agent. Each function is called on the Supervisor's strand and may switch executors inside. It
/// runs inside the calling component's coroutine (no co_spawn per call), bounded by that component's deadline
/// timer: on timeout, terminal cancellation is emitted on the operation it awaits, and the call ends with
/// TimeoutError once it exits. It shares the component's cancellation state, so it must not reset it or turn
/// throw_if_cancelled off.
template <typename Observation, typename Action, typename Result = std::string>
struct AgentFunctions {
    std::function<asio::awaitable<Observation>()> perceive{};
    std::function<asio::awaitable<Decision<Action, Result>>(const Observation&, const DecisionContext<Action, Result>&)>
        decide{};
    /// A returned failure is a failed action; an exception means the action's effect is unknown: the
    /// actuation_loop instance dies, the action is recorded as interrupted and never replayed.
    std::function<asio::awaitable<ActionResult>(const Action&)> act{};
    /// act() with the action's idempotency key (taskmon::idempotency_key of the run id, step, index and action
    /// blob in a durable run; empty in a plain run), for a receiver that deduplicates by key. Exactly one of
    /// act and act_with_key is set.
    std::function<asio::awaitable<ActionResult>(const Action&, std::string_view key)> act_with_key{};
};

/// Optional callbacks, run synchronously on the Supervisor's strand (keep them short). A throwing hook is
/// recorded in the history (hook_error) and logged; it never escapes run() or affects the run.
template <typename Action, typename Result = std::string>
struct SupervisorHooks {
    std::function<void()> on_run_start{};                                  ///< after pending → running
    std::function<void(std::uint64_t step)> on_step_start{};               ///< before decide()
    std::function<void(const StepRecord<Action, Result>&)> on_step_end{};  ///< after the step is recorded
    std::function<void(const History<Action, Result>&)> on_run_end{};      ///< after the components closed
    std::function<void(const StatusTransition&)> on_status_change{};       ///< after every transition
    std::function<void(const SheddingChange&)> on_shedding_change{};       ///< after shedding starts or ends
};

/// The six component names.
namespace components {
inline constexpr const char* perception = "perception";
inline constexpr const char* perception_watchdog = "perception_watchdog";
inline constexpr const char* decision_loop = "decision_loop";
inline constexpr const char* actuation_loop = "actuation_loop";
inline constexpr const char* pause_handler = "pause_handler";
inline constexpr const char* load_shedding_monitor = "load_shedding_monitor";
/// The critical components: a give-up of one fails the run. The one place this is decided.
inline constexpr std::array<const char*, 4> critical{perception, perception_watchdog, decision_loop, actuation_loop};
/// True for the names in `critical`.
constexpr bool is_critical(std::string_view name) noexcept {
    return std::find(critical.begin(), critical.end(), name) != critical.end();
}
}  // namespace components
template <typename Action, typename Result>
struct DurableRun;  // taskmon/agent/durable_run.hpp

namespace detail {
template <typename Observation, typename Action, typename Result>
class TypedAgentBinding;
struct SupervisorAccess;
/// Defined in detail/durable_binding.hpp (included by taskmon/agent/durable_run.hpp).
template <typename Observation, typename Action, typename Result>
std::shared_ptr<TypedAgentBinding<Observation, Action, Result>> make_durable_binding(
    AgentFunctions<Observation, Action, Result> agent, const AgentSettings& settings,
    SupervisorHooks<Action, Result>& hooks, DurableRun<Action, Result> durable, std::shared_ptr<spdlog::logger> logger);
}  // namespace detail

/// The agent runtime. Observation, Action and Result are the user's types (Observation is held by shared
/// pointer, never copied per consumer). Clock drives every timeout and interval: tests use
/// taskmon::testing::ManualClock. Only the typed parts of a step are compiled per agent type; the loops depend
/// on Clock alone (compiled once under TASKMON_SEPARATE_COMPILATION, docs/building.md).
template <typename Observation, typename Action, typename Result = std::string,
          typename Clock = std::chrono::steady_clock>
class Supervisor {
public:
    using DecisionType = Decision<Action, Result>;
    using Context = DecisionContext<Action, Result>;
    using Functions = AgentFunctions<Observation, Action, Result>;
    using Hooks = SupervisorHooks<Action, Result>;
    using HistoryType = History<Action, Result>;
    using Step = StepRecord<Action, Result>;

    /// Throws std::invalid_argument naming the problem: an invalid setting (AgentSettings::validate) or a
    /// missing agent function ("AgentFunctions.decide is empty"). `logger` defaults to spdlog's default logger;
    /// `cpu_source` to reading /proc.
    Supervisor(asio::any_io_executor executor, Functions agent, AgentSettings settings = {}, Hooks hooks = {},
               std::shared_ptr<spdlog::logger> logger = nullptr, CpuSource cpu_source = {})
        : binding_(std::make_shared<Binding>(std::move(agent), settings, hooks)),
          state_(detail::SupervisorRuntimeFactory<Clock>::make(std::move(executor), std::move(settings),
                                                               Binding::run_hooks(hooks), std::move(logger),
                                                               std::move(cpu_source), binding_)) {}

    /// A durable run (taskmon/agent/durable_run.hpp, docs/durable_runs.md): journaled through `durable.writer`,
    /// resumed when the journal holds a run `durable.run_id` that is not terminal. Throws std::invalid_argument as
    /// above, or naming the missing piece of `durable` (DurableRun::validate).
    Supervisor(asio::any_io_executor executor, Functions agent, DurableRun<Action, Result> durable,
               AgentSettings settings = {}, Hooks hooks = {}, std::shared_ptr<spdlog::logger> logger = nullptr,
               CpuSource cpu_source = {})
        : binding_(detail::make_durable_binding<Observation, Action, Result>(std::move(agent), settings, hooks,
                                                                             std::move(durable), logger)),
          state_(detail::SupervisorRuntimeFactory<Clock>::make(std::move(executor), std::move(settings),
                                                               Binding::run_hooks(hooks), std::move(logger),
                                                               std::move(cpu_source), binding_)) {}

    /// A run in progress is stopped (as stop("the Supervisor was destroyed")) and goes on closing its
    /// components on the executor; the coroutine awaiting run() still receives the history.
    ~Supervisor() { state_->detach(); }

    Supervisor(const Supervisor&) = delete;
    Supervisor& operator=(const Supervisor&) = delete;

    /// Runs the agent until a terminal status and returns the history (never throws for anything the agent
    /// or a hook does). Completes on the awaiting coroutine's executor. May be called once: a second call
    /// throws std::logic_error at once. Cancelling the awaiting coroutine is treated as stop().
    asio::awaitable<HistoryType> run() { return Binding::run(state_->run(), binding_); }

    /// Requests a pause: no new step starts; a step in flight finishes; then the status becomes paused.
    void pause() { state_->pause(); }
    /// Requests the end of a pause; the watchdog grants a fresh startup grace.
    void resume() { state_->resume(); }
    /// Ends the run: status stopping, components closed (an action in flight is interrupted), then stopped.
    /// Before run(): the run ends at once as stopped.
    void stop(std::string reason = "stop() called") { state_->stop(std::move(reason)); }
    /// Answers the interrupt `interrupt_id` (a decision's Decision::interrupt; its id is in the
    /// status_changed event's reason and the History's last step: "interrupt-<step>"): the run goes on and
    /// `value` reaches the next decide() in DecisionContext::interrupt_value. Throws std::invalid_argument naming
    /// the id, at once, for an id no decision asked (yet) or one already answered.
    void resume_with(std::string interrupt_id, std::string value) {
        state_->resume_with(std::move(interrupt_id), std::move(value));
    }
    /// Delivers `text` to the next decide() call's context (guidance given while paused arrives on resume).
    void inject_guidance(std::string text) { state_->inject_guidance(std::move(text)); }

    /// The current status (an atomic snapshot).
    [[nodiscard]] AgentStatus status() const noexcept { return state_->status(); }
    /// The six components' stats from the TaskMonitor (empty before run()).
    [[nodiscard]] std::map<std::string, ComponentStats> get_component_stats() const {
        return state_->get_component_stats();
    }
    /// Subscribes to the event stream of the TaskMonitor that runs the six components (see
    /// BasicTaskMonitor::subscribe for where listeners run and how to unsubscribe). Subscribe before run() to
    /// see every event; throws std::logic_error once the run's components are closed.
    [[nodiscard]] EventSubscription subscribe(MonitorEventListener listener) {
        return state_->subscribe(std::move(listener));
    }
    [[nodiscard]] const AgentSettings& settings() const noexcept { return state_->settings(); }
    /// components::critical, for code that sees only this type (taskmon/ops/health.hpp).
    [[nodiscard]] static constexpr const std::array<const char*, 4>& critical_components() noexcept {
        return components::critical;
    }

private:
    using Binding = detail::TypedAgentBinding<Observation, Action, Result>;
    friend struct detail::SupervisorAccess;  // taskmon/testing/supervisor_faults.hpp

    std::shared_ptr<Binding> binding_;                  ///< never null; also owned by state_
    std::shared_ptr<detail::SupervisorRuntime> state_;  ///< never null
};

}  // namespace taskmon

#include <taskmon/detail/agent_binding.hpp>
#if !defined(TASKMON_SEPARATE_COMPILATION)
#include <taskmon/detail/supervisor_state.hpp>
#endif
