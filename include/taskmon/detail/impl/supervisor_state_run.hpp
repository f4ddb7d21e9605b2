// taskmon — coroutine supervision for standalone Asio.
// SPDX-License-Identifier: MIT
//
// SupervisorState's run: run() on the strand, starting the six components, stop() and settling the end (internal).
// The definitions are `inline`, as they were inside the class: GCC gives functions declared inline larger
// inlining limits.
#pragma once

#include <taskmon/detail/supervisor_state.hpp>

#include <iterator>

namespace taskmon::detail {

template <typename Clock>
inline void SupervisorState<Clock>::request_stop(std::string reason) {
    if (ending()) {
        log(spdlog::level::info, "stop() ignored: the run is already {} reason={}", machine_.status(), quote(reason));
        return;
    }
    if (machine_.status() == AgentStatus::pending) {
        change_status(AgentStatus::stopped, std::move(reason));
    } else {
        change_status(AgentStatus::stopping, std::move(reason));
    }
}

template <typename Clock>
inline asio::awaitable<void> SupervisorState<Clock>::run_on_strand() {
    started_at_ = Clock::now();
    steps_begun_ = counters_.steps;  // a resumed durable run goes on from its last checkpoint; 0 otherwise
    const auto started_wall_time = std::chrono::system_clock::now();
    if (change_status(AgentStatus::running, "run() started")) {
        call_hook("on_run_start", hooks_.on_run_start);
        // A resumed durable run: an answer not used yet goes to the next decide(); a pending interrupt waits again;
        // guidance not delivered yet comes before what was injected since (which is journaled now, after it).
        auto restored = binding_->restored_inputs();
        for (const auto& text : pending_guidance_) binding_->guidance_injected(text);
        pending_guidance_.insert(pending_guidance_.begin(), std::make_move_iterator(restored.guidance.begin()),
                                 std::make_move_iterator(restored.guidance.end()));
        guidance_live_ = true;
        if (restored.answered) {
            register_interrupt(restored.answered->first, true);
            answer_ = std::move(restored.answered);
        }
        if (restored.pending) {
            register_interrupt(*restored.pending, false);
            waiting_for_ = restored.pending;
            change_status(AgentStatus::waiting_for_input,
                          fmt::format("resumed waiting for input: interrupt={}", *restored.pending));
        }
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
        guidance_live_ = false;  // guidance injected from now on reaches no decide() of this run
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

template <typename Clock>
inline void SupervisorState<Clock>::start_components() {
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

template <typename Clock>
inline void SupervisorState<Clock>::settle_leftovers() {
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

}  // namespace taskmon::detail
