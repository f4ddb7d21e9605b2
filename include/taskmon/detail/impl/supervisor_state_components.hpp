// taskmon — coroutine supervision for standalone Asio.
// SPDX-License-Identifier: MIT
//
// SupervisorState's component instances: each of the six as the TaskMonitor runs it, and one that ends (internal).
// The definitions are `inline`, as they were inside the class: GCC gives functions declared inline larger
// inlining limits.
#pragma once

#include <taskmon/detail/supervisor_state.hpp>

namespace taskmon::detail {

template <typename Clock>
inline asio::awaitable<void> SupervisorState<Clock>::enter(std::shared_ptr<SupervisorState> self, const char* name,
                                                           ComponentBody body) {
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

template <typename Clock>
inline asio::awaitable<void> SupervisorState<Clock>::instance(const char* name, asio::awaitable<void> body,
                                                              DeadlinePtr deadline) {
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

template <typename Clock>
inline void SupervisorState<Clock>::watch_components() {
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

template <typename Clock>
inline void SupervisorState<Clock>::component_ended(const std::string& name, const std::string& error,
                                                    int restart_count) {
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

}  // namespace taskmon::detail
