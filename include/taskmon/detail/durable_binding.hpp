// taskmon — coroutine supervision for standalone Asio.
// SPDX-License-Identifier: MIT
//
// Internal: DurableAgentBinding, the typed half of a durable Supervisor run (taskmon/agent/durable_run.hpp). A
// TypedAgentBinding that also writes the run to its journal through the JournalWriter (so the strand never
// blocks on the disk):
//   - prepare_run (in run(), before the status becomes running): begin_run, or the resume of a run that is not
//     terminal (a stopped one is reopened first): its History and the agent's state restored from the
//     checkpoints, and the step in flight at the crash finalized from its journaled actions (committed ones keep
//     their result, UNKNOWN ones go through reconcile(), none runs again);
//   - before_act (awaited by the actuation loop): the intent, synced before act();
//   - after_act: the result, queued on the writer and not awaited; record (each finalized step): its checkpoint,
//     queued too. The writer runs calls in order, so both are durable before the next intent is, and a failed one
//     refuses every later write of the run. Not awaiting them leaves one round trip to the writer per action:
//     a crash loses nothing more, since the next action is dispatched only once its intent (queued behind them)
//     is written;
//   - guidance_injected: the guidance, queued; the checkpoint of the step whose decide() received it consumes it;
//   - finish_run: the run's terminal status.
#pragma once

#include <taskmon/agent/durable_run.hpp>
#include <taskmon/agent/journal_writer.hpp>
#include <taskmon/agent/run_journal.hpp>
#include <taskmon/detail/agent_binding.hpp>
#include <taskmon/detail/durable_codec.hpp>

#include <asio/awaitable.hpp>
#include <fmt/format.h>
#include <spdlog/logger.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <cstdint>
#include <exception>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

namespace taskmon::detail {

template <typename Observation, typename Action, typename Result>
class DurableAgentBinding final : public TypedAgentBinding<Observation, Action, Result> {
    using Base = TypedAgentBinding<Observation, Action, Result>;
    using typename Base::TypedStep;

public:
    using Functions = AgentFunctions<Observation, Action, Result>;
    using Hooks = SupervisorHooks<Action, Result>;
    using Step = StepRecord<Action, Result>;

    DurableAgentBinding(Functions agent, const AgentSettings& settings, Hooks& hooks, DurableRun<Action, Result> run,
                        std::shared_ptr<spdlog::logger> logger)
        : Base(std::move(agent), settings, hooks),
          run_(validated(std::move(run))),
          io_{run_.serialize_action, run_.deserialize_action, run_.serialize_result, run_.deserialize_result},
          logger_(logger ? std::move(logger) : spdlog::default_logger()) {}

    bool durable() const noexcept override { return true; }

    asio::awaitable<std::string> before_act(StepInFlight& step, std::size_t index) override {
        auto& typed = static_cast<TypedStep&>(step);
        ActionIntent intent;
        std::string failure;
        try {
            intent.action_blob = run_.serialize_action(typed.decision->actions[index]);
        } catch (const std::exception& e) {
            failure = std::string{"serialize_action threw: "} + e.what();
        }
        if (!failure.empty()) co_return failure;
        intent.run_id = run_.run_id;
        intent.step = step.progress.number;
        intent.action_index = static_cast<std::uint32_t>(index);
        intent.idempotency_key = idempotency_key(intent.run_id, intent.step, intent.action_index, intent.action_blob);
        typed.key = intent.idempotency_key;
        auto write = [intent = std::move(intent)](RunJournal& journal) { journal.record_intent(intent); };
        auto attempted = attempt(std::move(write));  // named: no temporary inside co_await (g++ 12)
        co_return co_await std::move(attempted);
    }

    asio::awaitable<std::string> after_act(StepInFlight& step, std::size_t index,
                                           const ActionProgress& action) override {
        auto& typed = static_cast<TypedStep&>(step);
        const JournalOutcome outcome =
            action.outcome == ActionOutcome::succeeded ? JournalOutcome::succeeded : JournalOutcome::failed;
        auto write = [key = typed.key, outcome, blob = encode_action_outcome(action.outcome, action.result)](
                         RunJournal& journal) { journal.record_action_result(key, outcome, blob); };
        queue(fmt::format("the result of action {} of step {}", index + 1, step.progress.number), std::move(write));
        co_return std::string{};
    }

    StepVerdict record(StepInFlight& step, bool judge) override {
        // The answer and the guidance this step's decide() received are consumed by its checkpoint (used once, also
        // after a crash; a crash before the checkpoint hands them to the next decide() again).
        auto& context = static_cast<TypedStep&>(step).context;
        std::vector<std::string> consumed;
        if (context.interrupt_value) consumed.push_back(context.interrupt_id);
        const auto guidance = static_cast<std::uint32_t>(context.guidance.size());
        StepVerdict verdict = Base::record(step, judge);
        enqueue_checkpoint(std::move(consumed), guidance);
        return verdict;
    }

    void guidance_injected(const std::string& text) override {
        auto write = [id = run_.run_id, text](RunJournal& journal) { journal.record_guidance(id, text); };
        queue("guidance injected with inject_guidance()", std::move(write));
    }

    asio::awaitable<std::string> record_interrupt(std::string id, std::uint64_t step, std::string payload) override {
        auto write = [run = run_.run_id, id = std::move(id), step, payload = std::move(payload)](RunJournal& journal) {
            journal.record_interrupt(run, id, step, payload);
        };
        auto attempted = attempt(std::move(write));  // named: no temporary inside co_await (g++ 12)
        co_return co_await std::move(attempted);
    }

    asio::awaitable<std::string> resume_interrupt(std::string id, std::string value) override {
        auto write = [run = run_.run_id, id = std::move(id), value = std::move(value)](RunJournal& journal) {
            journal.resume_interrupt(run, id, value);
        };
        auto attempted = attempt(std::move(write));  // named: no temporary inside co_await (g++ 12)
        co_return co_await std::move(attempted);
    }

    RestoredInputs restored_inputs() override { return std::move(restored_); }

protected:
    asio::awaitable<void> prepare_run() override {
        auto load = [id = run_.run_id](RunJournal& journal) { return journal.load(id); };
        auto loading = run_.writer->call(std::move(load));
        std::optional<RunSnapshot> snapshot = co_await std::move(loading);
        if (!snapshot) {
            auto begin = [id = run_.run_id](RunJournal& journal) {
                journal.begin_run(id, "", std::chrono::system_clock::now());
            };
            auto beginning = run_.writer->call(std::move(begin));
            co_await std::move(beginning);
            co_return;
        }
        if (is_terminal(snapshot->run.status)) {
            throw std::logic_error(
                fmt::format("Supervisor::run(): the durable run '{}' is already {}; a run is resumed "
                            "only before it ended",
                            run_.run_id, to_string(snapshot->run.status)));
        }
        if (snapshot->run.status == RunStatus::stopped) {
            // Stopped cleanly: reopened (running, or interrupted again with its interrupt pending), then resumed
            // as after a crash.
            auto reopen = [id = run_.run_id](RunJournal& journal) {
                journal.resume_run(id);
                return journal.load(id);
            };
            auto reopening = run_.writer->call(std::move(reopen));  // named: no temporary inside co_await (g++ 12)
            snapshot = co_await std::move(reopening);
            if (!snapshot) throw std::logic_error("Supervisor::run(): the durable run '" + run_.run_id + "' vanished");
        }
        auto restoring = restore(*snapshot);  // named: no temporary inside co_await (g++ 12)
        co_await std::move(restoring);
        if (snapshot->pending_interrupt) restored_.pending = snapshot->pending_interrupt->interrupt_id;
        restored_.guidance = std::move(snapshot->pending_guidance);
        if (!snapshot->resumed_interrupts.empty()) {
            // One interrupt per step: at most one answer is waiting for its step.
            const auto& answered = snapshot->resumed_interrupts.back();
            restored_.answered.emplace(answered.interrupt_id, answered.value_blob.value_or(""));
        }
        co_await settle_step_in_flight(*snapshot);
    }

    asio::awaitable<void> finish_run() override {
        if (!this->sealed_) co_return;
        auto& history = *this->sealed_;
        RunStatus status = RunStatus::failed;
        switch (history.status) {
            case AgentStatus::completed:
            case AgentStatus::max_steps_reached: status = RunStatus::completed; break;
            case AgentStatus::stopped: status = RunStatus::stopped; break;
            default: status = RunStatus::failed; break;
        }
        std::string result_blob;
        std::string failure;
        try {
            if (auto result = history.final_result()) result_blob = run_.serialize_result(*result);
        } catch (const std::exception& e) {
            failure = std::string{"serialize_result threw: "} + e.what();
        }
        if (failure.empty()) {
            auto write = [id = run_.run_id, status, blob = std::move(result_blob)](RunJournal& journal) {
                journal.set_status(id, status, blob);
            };
            auto attempted = attempt(std::move(write));  // named: no temporary inside co_await (g++ 12)
            failure = co_await std::move(attempted);
        }
        if (!failure.empty()) {
            const auto why = fmt::format("the end of the run ({}) was not written: {}", to_string(status), failure);
            log_error(why);
            history.events.push_back(HistoryEvent{
                .kind = HistoryEventKind::journal_error, .at = history.ended_at, .component = "", .message = why});
        }
    }

private:
    /// What the writer thread alone touches (held by every queued call: it outlives the binding if need be).
    struct WriterSide {
        std::string failed_write;  ///< why the first queued write failed; every later write is refused

        void refuse_after_failed_write() const {
            if (!failed_write.empty()) throw std::runtime_error(failed_write + " (later writes are refused)");
        }
    };

    static DurableRun<Action, Result> validated(DurableRun<Action, Result> run) {
        run.validate();
        return run;
    }

    void log_error(const std::string& why) const noexcept {
        try {
            logger_->error("Durable run {}: {}", run_.run_id, why);
        } catch (...) {  // NOLINT(bugprone-empty-catch): nowhere left to report it
        }
    }

    /// Runs `write` on the writer thread, unless a queued write failed before; "" or what it threw.
    template <typename Write>
    asio::awaitable<std::string> attempt(Write write) {
        std::string failure;
        try {
            auto guarded = [side = side_, write = std::move(write)](RunJournal& journal) mutable {
                side->refuse_after_failed_write();
                write(journal);
            };
            auto call = run_.writer->call(std::move(guarded));  // named: see the actuation loop
            co_await std::move(call);
        } catch (const std::exception& e) {
            failure = e.what();
        }
        co_return failure;
    }

    /// Queues `write` (what it writes: `what`) on the writer, not awaited. The writer keeps the order; the first
    /// failure is logged there and refuses every later write of the run, so the run fails at its next intent
    /// naming it, and its end is not written (a resume settles the run from what was written).
    template <typename Write>
    void queue(std::string what, Write write) {
        // Deferred, not a call with a completion: a completion with no executor of its own would run on Asio's
        // system thread pool, which may still hold the logger while static destructors run at exit (a race
        // ThreadSanitizer reports). The writer thread reports the failure itself, holding no lock.
        auto guarded = [side = side_, write = std::move(write)](RunJournal& journal) mutable {
            if (!side->failed_write.empty()) return;  // refused: the first failure is the one reported
            write(journal);
        };
        auto on_failure = [side = side_, id = run_.run_id, what = std::move(what),
                           logger = logger_](std::exception_ptr failure) noexcept {
            if (!side->failed_write.empty()) return;
            try {
                try {
                    std::rethrow_exception(failure);
                } catch (const std::exception& e) {
                    side->failed_write = fmt::format("{} was not written: {}", what, e.what());
                } catch (...) {
                    side->failed_write = fmt::format("{} was not written: an unknown exception", what);
                }
                logger->error("Durable run {}: {} (later writes are refused)", id, side->failed_write);
            } catch (...) {  // NOLINT(bugprone-empty-catch): nowhere left to report it
            }
        };
        run_.writer->defer(std::move(guarded), std::move(on_failure));
    }

    /// Queues the checkpoint of the step recorded last: its record (the step, the counters), the History events
    /// recorded since the previous checkpoint, the agent's state. Each step and event is written once, so a
    /// checkpoint costs the same at step 10 and at step 100,000.
    void enqueue_checkpoint(std::vector<std::string> consumed = {}, std::uint32_t consumed_guidance = 0) {
        StepCheckpoint checkpoint;
        checkpoint.consumed_interrupts = std::move(consumed);
        checkpoint.consumed_guidance = consumed_guidance;
        const auto& last = this->ledger_.last();
        checkpoint.step = last.number;
        std::string encode_error;
        try {
            checkpoint.record_blob =
                encode_checkpoint_record(last, this->history_.counters, this->ledger_.consecutive_failures(), io_);
            const auto& events = this->history_.events;
            checkpoint.history_blob =
                encode_events(events.begin() + static_cast<std::ptrdiff_t>(events_checkpointed_), events.end());
            if (run_.save_state) checkpoint.state_blob = run_.save_state();
        } catch (const std::exception& e) {
            encode_error = std::string{"encoding it threw: "} + e.what();
        }
        events_checkpointed_ = this->history_.events.size();
        auto write = [id = run_.run_id, checkpoint = std::move(checkpoint),
                      encode_error = std::move(encode_error)](RunJournal& journal) {
            if (!encode_error.empty()) throw std::runtime_error(encode_error);
            journal.checkpoint(id, checkpoint);
        };
        queue(fmt::format("the checkpoint of step {}", last.number), std::move(write));
    }

    /// The History (steps, events, counters) and the agent's state as of the last checkpoint: the counters from
    /// it, the steps History keeps from the checkpoints' records, the events from their history blobs.
    asio::awaitable<void> restore(const RunSnapshot& snapshot) {
        if (!snapshot.last_checkpoint) co_return;
        const std::uint64_t last_step = snapshot.last_checkpoint->step;
        auto last = decode_checkpoint_record(snapshot.last_checkpoint->record_blob, io_);
        const std::uint64_t first_step = last.counters.steps_evicted + 1;
        if (last.step.number != last_step || last.counters.steps != last_step || first_step > last_step) {
            throw std::logic_error(fmt::format(
                "Supervisor::run(): the durable run '{}' has an inconsistent last "
                "checkpoint (step {} records step {} of {}, {} evicted)",
                run_.run_id, last_step, last.step.number, last.counters.steps, last.counters.steps_evicted));
        }
        auto read = [id = run_.run_id, first_step, last_step](RunJournal& journal) {
            return std::pair{journal.checkpoints(id, first_step, last_step), journal.histories(id, 1, last_step)};
        };
        auto reading = run_.writer->call(std::move(read));  // named: no temporary inside co_await (g++ 12)
        auto [records, histories] = co_await std::move(reading);
        if (records.size() != last_step - first_step + 1) {
            throw std::logic_error(
                fmt::format("Supervisor::run(): the durable run '{}' misses checkpoints: {} of "
                            "steps {} to {}",
                            run_.run_id, records.size(), first_step, last_step));
        }
        std::vector<Step> steps;
        steps.reserve(records.size());
        for (const auto& record : records) {
            steps.push_back(record.step == last_step ? std::move(last.step)
                                                     : decode_checkpoint_record(record.record_blob, io_).step);
            if (steps.back().number != record.step) {
                throw std::logic_error(
                    fmt::format("Supervisor::run(): the durable run '{}': checkpoint {} "
                                "records step {}",
                                run_.run_id, record.step, steps.back().number));
            }
        }
        std::vector<HistoryEvent> events;
        for (const auto& [step, blob] : histories) decode_events(blob, events);
        this->history_.counters = std::move(last.counters);
        this->history_.steps = std::move(steps);
        this->history_.events = std::move(events);
        events_checkpointed_ = this->history_.events.size();
        this->ledger_.restore_consecutive_failures(last.consecutive_failures);
        if (run_.restore_state) run_.restore_state(snapshot.last_checkpoint->state_blob);
    }

    HistoryEvent resume_event(HistoryEventKind kind, std::string message, std::uint64_t step) const {
        return HistoryEvent{.kind = kind,
                            .at = Offset{0},
                            .component = "resume",
                            .message = std::move(message),
                            .from = std::nullopt,
                            .to = std::nullopt,
                            .step = step};
    }

    /// The step in flight when the process died (actions journaled after the last checkpoint): finalized as
    /// interrupted, each journaled action with its committed result, or reconciled (UNKNOWN). None runs again.
    asio::awaitable<void> settle_step_in_flight(const RunSnapshot& snapshot) {
        if (snapshot.open_actions.empty()) co_return;  // the crash came before any intent: the step is redone
        const std::uint64_t number = snapshot.run.last_step + 1;
        Step step;
        step.number = number;
        step.outcome = StepOutcome::failed;
        step.fate = DecisionFate::interrupted;
        step.error = fmt::format("the process ended during step {}; the run was resumed", number);
        std::vector<HistoryEvent> events;
        for (const auto& open : snapshot.open_actions) {
            if (open.intent.step != number) {
                throw std::logic_error(
                    fmt::format("Supervisor::run(): the durable run '{}' has an action of step {} "
                                "after its last checkpoint (step {})",
                                run_.run_id, open.intent.step, number - 1));
            }
            ActionRecord<Action> action{run_.deserialize_action(open.intent.action_blob),
                                        ActionOutcome::skipped,
                                        {},
                                        std::nullopt,
                                        std::nullopt};
            const auto& key = open.intent.idempotency_key;
            if (!open.unknown()) {
                std::tie(action.outcome, action.result) = decode_action_outcome(open.result->result_blob);
                events.push_back(resume_event(HistoryEventKind::action_skipped_committed,
                                              fmt::format("action={} key={} outcome={}", open.intent.action_index + 1,
                                                          key, to_string(action.outcome)),
                                              number));
            } else {
                co_await reconcile(action, key);
                auto write = [key,
                              outcome = action.outcome == ActionOutcome::succeeded ? JournalOutcome::succeeded
                                                                                   : JournalOutcome::failed,
                              blob = encode_action_outcome(action.outcome, action.result)](RunJournal& journal) {
                    journal.record_action_result(key, outcome, blob);
                };
                auto writing = run_.writer->call(std::move(write));
                co_await std::move(writing);
                events.push_back(
                    resume_event(HistoryEventKind::action_reconciled,
                                 fmt::format("action={} key={} outcome={} reason={}", open.intent.action_index + 1, key,
                                             to_string(action.outcome), action.result.error),
                                 number));
            }
            step.actions.push_back(std::move(action));
        }
        // Not judged: the resumed run decides its own end from its next step on.
        this->ledger_.record(std::move(step), false);
        for (auto& event : events) this->history_.events.push_back(std::move(event));
        enqueue_checkpoint();
    }

    /// An UNKNOWN action: what reconcile() says, or interrupted without one (or when it throws).
    asio::awaitable<void> reconcile(ActionRecord<Action>& action, const std::string& key) {
        action.outcome = ActionOutcome::interrupted;
        action.result = ActionResult::failure("unknown at resume (the process died during the action); no reconcile()");
        if (!run_.reconcile) co_return;
        std::optional<Reconciliation> found;
        std::string failure;
        try {
            auto asking = run_.reconcile(action.action, key);
            found = co_await std::move(asking);
        } catch (const std::exception& e) {
            failure = e.what();
        }
        if (!found) {
            action.result = ActionResult::failure("unknown at resume; reconcile() threw: " + failure);
            co_return;
        }
        action.result = std::move(found->result);
        switch (found->kind) {
            case Reconciliation::Kind::done:
                action.outcome = action.result.success ? ActionOutcome::succeeded : ActionOutcome::failed;
                break;
            case Reconciliation::Kind::not_done: action.outcome = ActionOutcome::skipped; break;
            case Reconciliation::Kind::failed: action.outcome = ActionOutcome::failed; break;
        }
    }

    DurableRun<Action, Result> run_;
    DurableSerializers<Action, Result> io_;
    std::shared_ptr<spdlog::logger> logger_;
    std::shared_ptr<WriterSide> side_ = std::make_shared<WriterSide>();
    std::size_t events_checkpointed_ = 0;  ///< History events already in a checkpoint's history blob
    RestoredInputs restored_;              ///< from prepare_run to the run's start
};

template <typename Observation, typename Action, typename Result>
std::shared_ptr<TypedAgentBinding<Observation, Action, Result>> make_durable_binding(
    AgentFunctions<Observation, Action, Result> agent, const AgentSettings& settings,
    SupervisorHooks<Action, Result>& hooks, DurableRun<Action, Result> durable,
    std::shared_ptr<spdlog::logger> logger) {
    return std::make_shared<DurableAgentBinding<Observation, Action, Result>>(std::move(agent), settings, hooks,
                                                                              std::move(durable), std::move(logger));
}

}  // namespace taskmon::detail
