// taskmon — coroutine supervision for standalone Asio.
// SPDX-License-Identifier: MIT
//
// RunView: the state of one Supervisor run for the health server's live view: its status, current step, whether
// it is paused, sheds load or waits for an operator (with the interrupt id), kept live from the Supervisor's
// hooks (like AgentMetrics::wrap). Each change is handed, as one JSON object of type "run_state", to a sink:
// HealthServer::publish() puts it on the /events streams; run_views_json() is HealthEndpoints::runs, the "runs"
// of /api/tree.
//
//   taskmon::RunView view{"robot"};
//   Robot robot{io.get_executor(), std::move(agent), settings, view.wrap(std::move(hooks))};
//   taskmon::HealthServer server{io.get_executor(),
//       {...,
//        .runs = [&] { return taskmon::run_views_json({view}); },
//        .run_act = [&](const std::string& name, taskmon::RunAction a) {
//            if (name != "robot") throw std::invalid_argument("no run " + name);
//            taskmon::apply(robot, a);
//        },
//        .action_token = ...}};
//   view.set_sink([&server](std::string json) { server.publish(std::move(json)); });
#pragma once

#include <taskmon/agent/agent_status.hpp>
#include <taskmon/agent/cpu_usage.hpp>
#include <taskmon/detail/json_writer.hpp>

#include <cstdint>
#include <functional>
#include <initializer_list>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>

namespace taskmon {

/// One run's state as the live view shows it.
struct RunState {
    std::string name;
    AgentStatus status = AgentStatus::pending;
    std::uint64_t step = 0;            ///< the step started last (1-based; 0 before the first)
    std::uint64_t steps_finished = 0;  ///< steps finalized (on_step_end)
    bool paused = false;               ///< status is paused
    bool shedding = false;             ///< load shedding is active (SupervisorHooks::on_shedding_change)
    bool waiting_for_input = false;    ///< status is waiting_for_input; `interrupt_id` names what resume_with() answers
    std::string interrupt_id{};
    std::string reason{};  ///< of the last status transition
};

namespace detail {
inline void write_run_state(JsonWriter& w, const RunState& s) {
    w.begin_object().key("name").value(s.name).key("status").value(to_string(s.status));
    w.key("step").value(s.step).key("steps_finished").value(s.steps_finished);
    w.key("paused").value(s.paused).key("shedding").value(s.shedding);
    w.key("waiting_for_input").value(s.waiting_for_input).key("interrupt_id");
    if (s.interrupt_id.empty()) {
        w.null();
    } else {
        w.value(s.interrupt_id);
    }
    w.key("reason").value(s.reason).end_object();
}

}  // namespace detail

/// {"type":"run_state","run":{...}}: the event a RunView publishes on every change.
[[nodiscard]] inline std::string run_state_event_json(const RunState& s) {
    detail::JsonWriter w;
    w.begin_object().key("type").value("run_state").key("run");
    detail::write_run_state(w, s);
    w.end_object();
    return std::move(w).str();
}

/// Follows one run. Cheap to copy (copies share the state); the wrapped hooks share it too, so they may outlive
/// this object. Thread safety: the hooks run on the Supervisor's strand; state() and set_sink() may be called
/// from any thread. The sink is called outside the lock, on the Supervisor's strand, in the order of the changes.
class RunView {
public:
    explicit RunView(std::string name) : shared_{std::make_shared<Shared>()} { shared_->state.name = std::move(name); }

    /// Where each change goes (as run_state_event_json); may be set after the Supervisor was constructed.
    void set_sink(std::function<void(std::string json)> sink) const {
        std::lock_guard lock{shared_->mutex};
        shared_->sink = std::make_shared<const std::function<void(std::string)>>(std::move(sink));
    }

    [[nodiscard]] RunState state() const {
        std::lock_guard lock{shared_->mutex};
        return shared_->state;
    }

    /// Returns `hooks` with on_status_change, on_step_start, on_step_end and on_shedding_change extended: the
    /// state is updated and published first, then the given hook (if any) is called.
    template <typename Hooks>
    [[nodiscard]] Hooks wrap(Hooks hooks) const {
        hooks.on_status_change = [shared = shared_,
                                  user = std::move(hooks.on_status_change)](const StatusTransition& t) {
            shared->update([&](RunState& s) {
                s.status = t.to;
                s.paused = t.to == AgentStatus::paused;
                s.waiting_for_input = t.to == AgentStatus::waiting_for_input;
                s.interrupt_id = t.interrupt_id;
                s.reason = t.reason;
            });
            if (user) user(t);
        };
        hooks.on_step_start = [shared = shared_, user = std::move(hooks.on_step_start)](std::uint64_t step) {
            shared->update([&](RunState& s) { s.step = step; });
            if (user) user(step);
        };
        hooks.on_step_end = [shared = shared_, user = std::move(hooks.on_step_end)](const auto& step) {
            shared->update([](RunState& s) { ++s.steps_finished; });
            if (user) user(step);
        };
        hooks.on_shedding_change = [shared = shared_,
                                    user = std::move(hooks.on_shedding_change)](const SheddingChange& change) {
            shared->update([&](RunState& s) { s.shedding = change.shedding; });
            if (user) user(change);
        };
        return hooks;
    }

private:
    struct Shared {
        std::mutex mutex;
        RunState state;
        std::shared_ptr<const std::function<void(std::string)>> sink;

        template <typename Change>
        void update(Change&& change) {
            std::string json;
            std::shared_ptr<const std::function<void(std::string)>> to;
            {
                std::lock_guard lock{mutex};
                change(state);
                to = sink;
                if (to && *to) json = run_state_event_json(state);
            }
            if (to && *to) (*to)(std::move(json));  // user code, outside the lock
        }
    };

    std::shared_ptr<Shared> shared_;
};

/// The "runs" array of /api/tree (HealthEndpoints::runs): the state of each view, in the order given.
[[nodiscard]] inline std::string run_views_json(std::initializer_list<std::reference_wrapper<const RunView>> views) {
    detail::JsonWriter w;
    w.begin_array();
    for (const auto& v : views) detail::write_run_state(w, v.get().state());
    w.end_array();
    return std::move(w).str();
}

}  // namespace taskmon
