// taskmon — coroutine supervision for standalone Asio.
// SPDX-License-Identifier: MIT
//
// SupervisorState's step loops: perception, decision_loop, actuation_loop, their recovery, a step's end (internal).
// The definitions are `inline`, as they were inside the class: GCC gives functions declared inline larger
// inlining limits.
#pragma once

#include <taskmon/detail/supervisor_state.hpp>

namespace taskmon::detail {

template <typename Clock>
inline asio::awaitable<void> SupervisorState<Clock>::perception(Deadline& deadline) {
    if (components_[components::perception].instances > 1) grant_grace();
    Timer timer{strand_};
    // A park outlives no instance: a perception restarted while parked (cancelled) must be watched again.
    struct Unpark {
        StallWatch<Clock>& watch;
        ~Unpark() { watch.unpark(Clock::now()); }
    } unpark_at_exit{stall_watch_};
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
        } else if (wants_capture()) {
            co_await asio::post(strand_, asio::use_awaitable);  // let the other components run
        } else {
            // On demand: the next capture is the one the next step decides on, so it starts once no step is in
            // flight and nothing fresh waits in the slot. Back to back, the capture made during each step was
            // superseded before any step could use it: one of two captures per step was wasted. Parked so,
            // perception's silence is no stall.
            stall_watch_.park();
            co_await wait_until([this] { return wants_capture() || !running() || ending(); });
            stall_watch_.unpark(Clock::now());
        }
    }
}

template <typename Clock>
inline asio::awaitable<void> SupervisorState<Clock>::decision_loop(Deadline& deadline) {
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
        if (answer_) {
            input.interrupt_id = std::move(answer_->first);
            input.interrupt_value = std::move(answer_->second);
            answer_.reset();
        }
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
        step->interrupt_payload = std::move(decision.interrupt);
        step->phase = StepPhase::queued;
        if (!queue_.try_push(step)) co_await queue_.async_push(step, asio::use_awaitable);
    }
}

template <typename Clock>
inline void SupervisorState<Clock>::recover_decision() {
    if (!current_) return;
    if (current_->phase == StepPhase::deciding) {
        finalize(current_, StepOutcome::failed, std::nullopt, "decision_loop failed while deciding");
    } else if (current_->phase == StepPhase::queued && queue_.empty()) {
        finalize(current_, StepOutcome::failed, DecisionFate::interrupted,
                 "decision_loop failed before handing the decision to actuation");
    }
}

template <typename Clock>
inline asio::awaitable<void> SupervisorState<Clock>::actuation_loop(Deadline& deadline) {
    if (binding_->durable() && current_ && current_->phase == StepPhase::acting && !current_->finalized) {
        // The action in flight died with our previous instance (act() threw: its effect is unknown). Its result
        // is committed as interrupted before the step is finalized, so that a resume never runs it again.
        ActionProgress lost;
        lost.outcome = ActionOutcome::interrupted;
        lost.result = ActionResult::failure("actuation_loop failed during the action");
        const InFlightPtr in_flight = current_;
        auto commit = binding_->after_act(*in_flight, in_flight->action_index, lost);
        const std::string refused = co_await std::move(commit);
        if (!refused.empty()) {
            fail_for_journal(fmt::format("the interrupted action {} of step {} was not recorded: {}",
                                         in_flight->action_index + 1, in_flight->progress.number, refused));
        }
    }
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
            if (binding_->durable()) {
                // The intent is synced before the action is dispatched (at most once across crashes).
                auto intent = binding_->before_act(*step, i);
                const std::string refused = co_await std::move(intent);
                if (step->finalized) co_return;
                if (!refused.empty() || ending()) {
                    const auto why = !refused.empty() ? fmt::format("its intent was not written: {}", refused)
                                                      : fmt::format("the run is {}", machine_.status());
                    if (!refused.empty()) {
                        fail_for_journal(
                            fmt::format("action {} of step {} not dispatched: {}", i + 1, step->progress.number, why));
                    }
                    skip_remaining(*step, i, why);
                    finalize(step, StepOutcome::failed, DecisionFate::interrupted,
                             fmt::format("action {} not dispatched: {}", i + 1, why), false);
                    co_return;
                }
                now = Clock::now();
                rec.started_at = offset(now);
            }
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
            if (binding_->durable()) {
                auto commit = binding_->after_act(*step, i, rec);
                const std::string refused = co_await std::move(commit);
                if (step->finalized) co_return;
                if (!refused.empty()) {
                    const auto why = fmt::format("the result of action {} of step {} was not written: {}", i + 1,
                                                 step->progress.number, refused);
                    fail_for_journal(why);
                    skip_remaining(*step, i + 1, why);
                    finalize(step, StepOutcome::failed, DecisionFate::interrupted, why, false);
                    co_return;
                }
            }
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
        // A decision's question is asked after its actions, whether they succeeded or not (a failed one is in the
        // History for the operator to see), unless the run ended meanwhile.
        auto payload = std::move(step->interrupt_payload);
        if (all_ok) finalize(step, StepOutcome::succeeded, DecisionFate::executed, "");
        if (payload && running()) {
            auto asking = ask_for_input(step->progress.number, std::move(*payload));
            co_await std::move(asking);
        }
    }
}

template <typename Clock>
inline asio::awaitable<void> SupervisorState<Clock>::ask_for_input(std::uint64_t step, std::string payload) {
    // One interrupt per step at most, so the step names it; the journal keeps it for the next step (step + 1),
    // after the asking step's checkpoint (queued before it on the writer).
    const std::string id = fmt::format("interrupt-{}", step);
    register_interrupt(id, false);
    waiting_for_ = id;
    change_status(AgentStatus::waiting_for_input,
                  fmt::format("decide() asked for input: interrupt={} payload={}", id, quote(payload)));
    if (!binding_->durable()) co_return;
    auto writing = binding_->record_interrupt(id, step + 1, std::move(payload));
    const std::string refused = co_await std::move(writing);
    if (!refused.empty()) fail_for_journal(fmt::format("the interrupt {} was not written: {}", id, refused));
}

template <typename Clock>
inline asio::awaitable<void> SupervisorState<Clock>::answer_interrupt(std::shared_ptr<SupervisorState> self,
                                                                      std::string id, std::string value) {
    if (self->binding_->durable()) {
        auto writing = self->binding_->resume_interrupt(id, value);
        const std::string refused = co_await std::move(writing);
        if (!refused.empty()) {
            self->fail_for_journal(fmt::format("the answer to {} was not written: {}", id, refused));
            co_return;
        }
    }
    if (self->machine_.status() != AgentStatus::waiting_for_input || self->waiting_for_ != id) {
        self->log(spdlog::level::info, "resume_with({}) ignored: the run is {}", quote(id), self->machine_.status());
        co_return;
    }
    self->waiting_for_.reset();
    self->answer_.emplace(id, std::move(value));
    self->change_status(AgentStatus::running, fmt::format("resume_with: interrupt={}", id));
    self->grant_grace();
    self->notify();
}

template <typename Clock>
inline void SupervisorState<Clock>::fail_for_journal(const std::string& why) {
    log(spdlog::level::err, "Run journal failed: {}", why);
    record(HistoryEventKind::journal_error, components::actuation_loop, why);
    change_status(AgentStatus::failed, "run journal: " + why);
    notify();
}

template <typename Clock>
inline void SupervisorState<Clock>::interrupt_in_flight(StepInFlight& step, const std::string& why) {
    auto& rec = step.progress.actions[step.action_index];
    rec.outcome = ActionOutcome::interrupted;
    rec.result = ActionResult::failure(why);
    record(HistoryEventKind::action_interrupted, components::actuation_loop,
           fmt::format("action={} reason={}", step.action_index + 1, quote(why)), step.progress.number);
    skip_remaining(step, step.action_index + 1, why);
}

template <typename Clock>
inline void SupervisorState<Clock>::finalize(const InFlightPtr& step, StepOutcome outcome,
                                             std::optional<DecisionFate> fate, std::string error, bool judge) {
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

}  // namespace taskmon::detail
