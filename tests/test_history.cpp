#include <taskmon/agent/history.hpp>

#include <chrono>
#include <string>
#include <type_traits>
#include <vector>

#include "enum_names.hpp"
#include "taskmon_catch.hpp"

using namespace std::chrono_literals;
using taskmon::ActionOutcome;
using taskmon::ActionResult;
using taskmon::AgentStatus;
using taskmon::DecisionFate;
using taskmon::HistoryEvent;
using taskmon::HistoryEventKind;
using taskmon::StepOutcome;

using History = taskmon::History<std::string, std::string>;

namespace {

History::Step step(std::uint64_t n, StepOutcome outcome, bool done = false) {
    History::Step s;
    s.number = n;
    s.outcome = outcome;
    s.done = done;
    s.started_at = std::chrono::seconds{n};
    s.finished_at = std::chrono::seconds{n} + 500ms;
    return s;
}

}  // namespace

TEST_CASE("history: ActionResult helpers") {
    CHECK(ActionResult::ok().success);
    CHECK(ActionResult::ok("text").extracted_content == std::optional<std::string>{"text"});
    const auto f = ActionResult::failure("boom");
    CHECK_FALSE(f.success);
    CHECK(f.error == "boom");
}

TEST_CASE("history: an empty history is not done, has no result, no errors and no duration") {
    History h;
    CHECK_FALSE(h.is_done());
    CHECK_FALSE(h.is_successful());
    CHECK_FALSE(h.final_result().has_value());
    CHECK(h.errors().empty());
    CHECK(h.number_of_steps() == 0);
    CHECK(h.total_duration() == 0ns);
    CHECK(h.status_path() == std::vector<AgentStatus>{AgentStatus::pending});
}

TEST_CASE("history: a completed run is done and successful with the final result") {
    History h;
    h.steps.push_back(step(1, StepOutcome::succeeded));
    auto last = step(2, StepOutcome::succeeded, true);
    last.result = "cleaned 12 cells";
    last.fate = DecisionFate::executed;
    h.steps.push_back(last);
    h.status = AgentStatus::completed;
    h.ended_at = 3s;
    CHECK(h.is_done());
    CHECK(h.is_successful());
    CHECK(h.final_result() == std::optional<std::string>{"cleaned 12 cells"});
    CHECK(h.number_of_steps() == 2);
    CHECK(h.total_duration() == 3s);
    CHECK(h.steps[1].duration() == 500ms);
}

TEST_CASE("history: number_of_steps counts the steps evicted from the front") {
    History h;
    h.steps.push_back(step(7, StepOutcome::succeeded));
    h.steps.push_back(step(8, StepOutcome::succeeded));
    h.counters.steps_evicted = 6;
    CHECK(h.number_of_steps() == 8);
}

TEST_CASE("history: a done decision whose step failed is not done") {
    History h;
    auto last = step(1, StepOutcome::failed, true);
    last.result = "claimed";
    h.steps.push_back(last);
    h.status = AgentStatus::failed;
    CHECK_FALSE(h.is_done());
    CHECK_FALSE(h.final_result().has_value());
    CHECK_FALSE(h.is_successful());
}

TEST_CASE("history: errors lists step errors, failed and interrupted actions, and the run's failure") {
    History h;
    auto s1 = step(1, StepOutcome::failed);
    s1.error = "decide() timed out after 60s";
    h.steps.push_back(s1);
    auto s2 = step(2, StepOutcome::failed);
    s2.error = "action 1 failed";
    taskmon::ActionRecord<std::string> ok{"left", ActionOutcome::succeeded, ActionResult::ok(), 1s, 2s};
    taskmon::ActionRecord<std::string> bad{"right", ActionOutcome::failed, ActionResult::failure("wall"), 2s, 3s};
    taskmon::ActionRecord<std::string> lost{"up", ActionOutcome::interrupted,
                                            ActionResult::failure("actuation_loop crashed"), 3s, std::nullopt};
    taskmon::ActionRecord<std::string> skipped{"down", ActionOutcome::skipped, ActionResult::failure("skipped"),
                                               std::nullopt, std::nullopt};
    s2.actions = {ok, bad, lost, skipped};
    h.steps.push_back(s2);
    h.status = AgentStatus::failed;
    h.reason = "3 consecutive step failures";
    CHECK(h.errors() == std::vector<std::string>{"decide() timed out after 60s", "action 1 failed", "wall",
                                                 "actuation_loop crashed", "3 consecutive step failures"});
}

TEST_CASE("history: total_duration covers the last step or event while the run is going") {
    History h;
    h.steps.push_back(step(4, StepOutcome::succeeded));
    CHECK(h.total_duration() == 4500ms);
    h.events.push_back(HistoryEvent{HistoryEventKind::load_shedding_entered, 7s, "load_shedding_monitor",
                                    "cpu_percent=99", std::nullopt, std::nullopt, std::nullopt});
    CHECK(h.total_duration() == 7s);
}

TEST_CASE("history: events_of and status_path read the event log") {
    History h;
    h.events.push_back(HistoryEvent{HistoryEventKind::status_changed, 0s, "", "run() called", AgentStatus::pending,
                                    AgentStatus::running, std::nullopt});
    h.events.push_back(HistoryEvent{HistoryEventKind::watchdog_stall, 15s, "perception_watchdog", "", std::nullopt,
                                    std::nullopt, std::nullopt});
    h.events.push_back(HistoryEvent{HistoryEventKind::status_changed, 20s, "", "done", AgentStatus::running,
                                    AgentStatus::completed, 3});
    CHECK(h.events_of(HistoryEventKind::watchdog_stall).size() == 1);
    CHECK(h.events_of(HistoryEventKind::hook_error).empty());
    CHECK(h.status_path() ==
          std::vector<AgentStatus>{AgentStatus::pending, AgentStatus::running, AgentStatus::completed});
}

TEST_CASE("history: outcome names") {
    CHECK(taskmon::to_string(ActionOutcome::interrupted) == "interrupted");
    CHECK(taskmon::to_string(DecisionFate::expired) == "expired");
    CHECK(taskmon::to_string(StepOutcome::failed) == "failed");
    CHECK(taskmon::to_string(HistoryEventKind::component_gave_up) == "component_gave_up");
}

TEST_CASE("history: fmt formats every ActionOutcome, DecisionFate, StepOutcome and HistoryEventKind as its name") {
    taskmon_test::check_enum_names(ActionOutcome::succeeded, ActionOutcome::interrupted);
    taskmon_test::check_enum_names(DecisionFate::executed, DecisionFate::expired);
    taskmon_test::check_enum_names(StepOutcome::succeeded, StepOutcome::failed);
    taskmon_test::check_enum_names(HistoryEventKind::status_changed, HistoryEventKind::terminal_refused);
}

// The former names stay for one release, as deprecated aliases of the same types.
#if defined(__GNUC__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
#endif
static_assert(std::is_same_v<taskmon::Event, HistoryEvent>);
static_assert(std::is_same_v<taskmon::EventKind, HistoryEventKind>);
#if defined(__GNUC__)
#pragma GCC diagnostic pop
#endif
