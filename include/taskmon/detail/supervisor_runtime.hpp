// taskmon — coroutine supervision for standalone Asio.
// SPDX-License-Identifier: MIT
//
// Internal: the seam between the two halves of a Supervisor.
//
// - The runtime (SupervisorRuntime, implemented by SupervisorState<Clock> in detail/supervisor_state.hpp) runs
//   the six component loops, the status machine, the watchdog, pause handling, load shedding and the
//   TaskMonitor. It never sees the agent's types: observations travel as shared_ptr<const void>, a step in
//   flight as StepInFlight.
// - The agent binding (AgentBinding, implemented by TypedAgentBinding<Observation, Action, Result> in
//   detail/agent_binding.hpp) holds the agent's functions, the typed hooks and the History, and performs each
//   typed part of a step when the runtime asks.
//
// Only the binding is compiled per agent type. The runtime depends on the clock alone, so under
// TASKMON_SEPARATE_COMPILATION it is compiled once (taskmon::compiled) for the clocks taskmon ships, and
// supervisor.hpp does not include it.
#pragma once

#include <taskmon/detail/config.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <asio/any_io_executor.hpp>
#include <asio/awaitable.hpp>
#include <spdlog/logger.h>

#include <taskmon/agent/agent_settings.hpp>
#include <taskmon/agent/agent_status.hpp>
#include <taskmon/agent/cpu_usage.hpp>
#include <taskmon/agent/history.hpp>
#include <taskmon/component_stats.hpp>
#include <taskmon/detail/call_deadline.hpp>
#include <taskmon/detail/step_ledger.hpp>
#include <taskmon/event_subscription.hpp>
#include <taskmon/monitor_event.hpp>

namespace taskmon {
namespace testing {
struct ManualClock;
}  // namespace testing

namespace detail {

/// The runtime's share of an ActionRecord: everything but the action.
struct ActionProgress {
    ActionOutcome outcome = ActionOutcome::skipped;
    ActionResult result;
    std::optional<Offset> started_at;
    std::optional<Offset> finished_at;
};

/// The runtime's share of a StepRecord: everything but the decision's result and actions.
struct StepProgress {
    std::uint64_t number = 0;
    std::uint64_t observation_sequence = 0;
    Offset observation_age{};
    StepOutcome outcome = StepOutcome::failed;
    std::optional<DecisionFate> fate;
    bool done = false;
    std::vector<ActionProgress> actions;  ///< one per action of the accepted decision; empty before
    std::string error;
    Offset started_at{};
    std::optional<Offset> decided_at;  ///< engaged once the decision was accepted
    Offset finished_at{};
};

/// Where the one step in flight is.
enum class StepPhase : std::uint8_t {
    deciding,  ///< decide() runs
    queued,    ///< the decision waits in the queue to actuation
    accepted,  ///< actuation took it; no action started
    acting,    ///< an action runs (action_index)
};

/// A step in flight. The binding's derived type holds the typed decision.
struct StepInFlight {
    StepInFlight() = default;
    StepInFlight(const StepInFlight&) = delete;
    StepInFlight& operator=(const StepInFlight&) = delete;
    virtual ~StepInFlight() = default;

    StepProgress progress;
    StepPhase phase = StepPhase::deciding;
    std::size_t action_index = 0;
    bool finalized = false;                        ///< recorded in the history; never recorded twice
    std::optional<std::string> interrupt_payload;  ///< the decision asks a human (Decision::interrupt)
};

/// What a decide() call is told that only the runtime knows (the binding adds the rest of the context).
struct DecideInput {
    std::vector<std::string> guidance;
    bool shedding = false;
    std::string interrupt_id;  ///< with interrupt_value: the answer to that interrupt (resume_with)
    std::optional<std::string> interrupt_value;
};

/// What the runtime needs to know of a decision.
struct DecisionShape {
    bool done = false;                     ///< the agent is done
    std::size_t actions = 0;               ///< how many actions it asks for
    std::optional<std::string> interrupt;  ///< the payload of Decision::interrupt
};

/// The inputs a resumed durable run brings back from its journal: interrupts and guidance not yet used.
struct RestoredInputs {
    std::optional<std::string> pending;  ///< the id of an interrupt not answered yet: the run waits again
    std::optional<std::pair<std::string, std::string>> answered;  ///< (id, value) answered, not yet used
    std::vector<std::string> guidance;                            ///< injected, not yet delivered; oldest first
};

/// The typed half of a Supervisor, as the runtime sees it. Every call is made on the runtime's strand.
class AgentBinding {
public:
    AgentBinding() = default;
    AgentBinding(const AgentBinding&) = delete;
    AgentBinding& operator=(const AgentBinding&) = delete;
    virtual ~AgentBinding() = default;

    /// The History's events and counters; the runtime writes them, the binding writes the steps. Stable for
    /// the binding's lifetime.
    virtual std::vector<HistoryEvent>& events() noexcept = 0;
    virtual HistoryCounters& counters() noexcept = 0;

    /// A new step in flight, of the binding's derived type.
    virtual std::shared_ptr<StepInFlight> make_step() = 0;
    /// perceive() as a bounded call (await_bounded) under `deadline`, which the runtime armed; the observation,
    /// type-erased. `deadline` and `what` outlive the awaitable.
    virtual asio::awaitable<std::shared_ptr<const void>> perceive(CallDeadlineEnd& deadline,
                                                                  const std::string& what) = 0;
    /// decide() on `observation` (from perceive()) as a bounded call under `deadline`, which the runtime armed;
    /// takes the guidance out of `input`, keeps the decision in `step` and returns its shape. `step`,
    /// `deadline` and `what` outlive the awaitable. The runtime accepts the decision by setting
    /// step.progress.decided_at; the binding records a decision's result and actions only then.
    virtual asio::awaitable<DecisionShape> decide(StepInFlight& step, const std::shared_ptr<const void>& observation,
                                                  DecideInput& input, CallDeadlineEnd& deadline,
                                                  const std::string& what) = 0;
    /// act() on action `index` of `step`'s decision (the user's awaitable itself); `step` outlives it.
    virtual asio::awaitable<ActionResult> act(StepInFlight& step, std::size_t index) = 0;
    /// Records the finalized `step` in the History (StepLedger::record) and returns the verdict.
    virtual StepVerdict record(StepInFlight& step, bool judge) = 0;
    /// The on_step_end hook with the step recorded last, if there is one; throws what the hook throws.
    virtual void on_step_end() = 0;
    /// The run ended: sets the History's final fields.
    virtual void end_run(AgentStatus status, std::string reason, std::chrono::system_clock::time_point started,
                         Offset ended_at) = 0;
    /// The on_run_end hook with the History, if there is one; throws what the hook throws.
    virtual void on_run_end() = 0;
    /// Keeps a copy of the History as run() returns it (after on_run_end and what it recorded).
    virtual void seal() = 0;

    // Durable runs (taskmon/agent/durable_run.hpp). A plain binding says false and the loops never call the two
    // below, so a plain run pays no coroutine frame per action.
    virtual bool durable() const noexcept { return false; }
    /// Before act() on action `index`: its intent written and synced. Returns "" or why it could not be (the
    /// action is then not dispatched).
    virtual asio::awaitable<std::string> before_act(StepInFlight& /*step*/, std::size_t /*index*/) {
        co_return std::string{};
    }
    /// Once action `index` returned, failed or was interrupted (`action` says which): its result committed.
    /// Returns "" or why it could not be.
    virtual asio::awaitable<std::string> after_act(StepInFlight& /*step*/, std::size_t /*index*/,
                                                   const ActionProgress& /*action*/) {
        co_return std::string{};
    }
    /// The interrupt `id` asked after step `step - 1`, written before the run waits; "" or why it failed.
    virtual asio::awaitable<std::string> record_interrupt(std::string /*id*/, std::uint64_t /*step*/,
                                                          std::string /*payload*/) {
        co_return std::string{};
    }
    /// The answer to `id`, written before the run goes on; "" or why it failed.
    virtual asio::awaitable<std::string> resume_interrupt(std::string /*id*/, std::string /*value*/) {
        co_return std::string{};
    }
    /// Read once as the run starts.
    virtual RestoredInputs restored_inputs() { return {}; }
    /// Guidance injected while the run is live (and, at its start, what was injected before), in order: a
    /// durable binding journals it, so that it survives a crash until a decide() received it.
    virtual void guidance_injected(const std::string& /*text*/) {}
};

/// The hooks that do not involve the agent's types; the runtime calls them.
struct RunHooks {
    std::function<void()> on_run_start;
    std::function<void(std::uint64_t step)> on_step_start;
    std::function<void(const StatusTransition&)> on_status_change;
    std::function<void(const SheddingChange&)> on_shedding_change;
};

/// The runtime half of a Supervisor, as the Supervisor handle sees it. Held by shared pointer; every member
/// may be called from any thread (they post to the runtime's strand) unless it says otherwise.
class SupervisorRuntime : public std::enable_shared_from_this<SupervisorRuntime> {
public:
    SupervisorRuntime() = default;
    SupervisorRuntime(const SupervisorRuntime&) = delete;
    SupervisorRuntime& operator=(const SupervisorRuntime&) = delete;
    virtual ~SupervisorRuntime() = default;

    /// Runs until a terminal status; completes on the awaiting coroutine's executor once the binding's
    /// History is sealed. Throws std::logic_error at once (not when awaited) on a second call.
    virtual asio::awaitable<void> run() = 0;
    virtual void pause() = 0;
    virtual void resume() = 0;
    virtual void stop(std::string reason) = 0;
    virtual void inject_guidance(std::string text) = 0;
    virtual void resume_with(std::string interrupt_id, std::string value) = 0;
    /// The Supervisor handle is gone: a run in progress stops; its awaiter still receives the history.
    virtual void detach() = 0;
    virtual AgentStatus status() const noexcept = 0;
    virtual std::map<std::string, ComponentStats> get_component_stats() const = 0;
    virtual EventSubscription subscribe(MonitorEventListener listener) = 0;
    virtual const AgentSettings& settings() const noexcept = 0;
    /// Testing seam: called on the strand as each component instance starts (component, instance number, from
    /// 1); what it throws fails that instance as the component's own code would. Set it before run().
    virtual void set_instance_fault(std::function<void(const char*, std::uint64_t)> fault) = 0;
};

/// Makes the runtime of a Supervisor on `Clock`. Defined for every clock in detail/supervisor_state.hpp; under
/// TASKMON_SEPARATE_COMPILATION the steady clock's is declared here and compiled in taskmon::compiled, and
/// ManualClock's under TASKMON_SEPARATE_COMPILATION_MANUAL_CLOCK, in taskmon::compiled_testing.
/// Throws std::invalid_argument for invalid `settings` (AgentSettings::validate).
template <typename Clock>
struct SupervisorRuntimeFactory;

#if defined(TASKMON_SEPARATE_COMPILATION)
template <>
struct SupervisorRuntimeFactory<std::chrono::steady_clock> {
    static std::shared_ptr<SupervisorRuntime> make(asio::any_io_executor executor, AgentSettings settings,
                                                   RunHooks hooks, std::shared_ptr<spdlog::logger> logger,
                                                   CpuSource cpu_source, std::shared_ptr<AgentBinding> binding);
};
#if defined(TASKMON_SEPARATE_COMPILATION_MANUAL_CLOCK)
template <>
struct SupervisorRuntimeFactory<testing::ManualClock> {
    static std::shared_ptr<SupervisorRuntime> make(asio::any_io_executor executor, AgentSettings settings,
                                                   RunHooks hooks, std::shared_ptr<spdlog::logger> logger,
                                                   CpuSource cpu_source, std::shared_ptr<AgentBinding> binding);
};
#endif
#endif

}  // namespace detail
}  // namespace taskmon
