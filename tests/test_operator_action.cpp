// Tests for taskmon/ops/operator_action.hpp: the actions' names both ways, and apply() of a run action to any type
// with pause(), resume() and stop() (apply() of a component action on a live monitor is in
// tests/test_health_server.cpp, through the health server's API).
#include <taskmon/ops/operator_action.hpp>

#include "taskmon_catch.hpp"

#include <string>
#include <vector>

namespace {

/// A run that records what it was asked to do.
struct RecordingRun {
    std::vector<std::string> calls;
    void pause() { calls.emplace_back("pause"); }
    void resume() { calls.emplace_back("resume"); }
    void stop(std::string reason) { calls.push_back("stop: " + reason); }
};

}  // namespace

TEST_CASE("OperatorAction and RunAction names parse back to their actions, and nothing else parses") {
    using taskmon::OperatorAction;
    using taskmon::RunAction;
    for (const auto a :
         {OperatorAction::restart, OperatorAction::reset, OperatorAction::disable, OperatorAction::enable}) {
        CHECK(taskmon::parse_operator_action(taskmon::to_string(a)) == a);
    }
    for (const auto a : {RunAction::pause, RunAction::resume, RunAction::stop}) {
        CHECK(taskmon::parse_run_action(taskmon::to_string(a)) == a);
    }
    CHECK(taskmon::to_string(OperatorAction::restart) == "restart");
    CHECK(taskmon::to_string(RunAction::pause) == "pause");
    for (const char* wrong : {"", "Restart", "restart ", "pause", "stop"}) {
        CHECK_FALSE(taskmon::parse_operator_action(wrong));
    }
    for (const char* wrong : {"", "Pause", "restart", "resume\n"}) {
        CHECK_FALSE(taskmon::parse_run_action(wrong));
    }
}

TEST_CASE("apply() of a RunAction calls the run's function of that name") {
    RecordingRun run;
    taskmon::apply(run, taskmon::RunAction::pause);
    taskmon::apply(run, taskmon::RunAction::resume);
    taskmon::apply(run, taskmon::RunAction::stop);
    REQUIRE(run.calls.size() == 3);
    CHECK(run.calls[0] == "pause");
    CHECK(run.calls[1] == "resume");
    CHECK(run.calls[2].starts_with("stop"));
}
