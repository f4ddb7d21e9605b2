#include <taskmon/detail/step_ledger.hpp>

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "taskmon_catch.hpp"

using taskmon::ActionOutcome;
using taskmon::ActionRecord;
using taskmon::ActionResult;
using taskmon::AgentStatus;
using taskmon::DecisionFate;
using taskmon::StepOutcome;
using taskmon::detail::StepLimits;
using taskmon::detail::StepVerdict;

using History = taskmon::History<std::string, std::string>;
using Ledger = taskmon::detail::StepLedger<std::string, std::string>;
using Step = History::Step;

namespace {

Step step(std::uint64_t number, StepOutcome outcome, std::optional<DecisionFate> fate,
          std::vector<ActionOutcome> actions = {}, std::string error = {}) {
    Step s;
    s.number = number;
    s.outcome = outcome;
    s.fate = fate;
    s.error = std::move(error);
    for (const auto a : actions) {
        s.actions.push_back(ActionRecord<std::string>{"act", a, ActionResult{}, std::nullopt, std::nullopt});
    }
    return s;
}

Step executed(std::uint64_t number, std::vector<ActionOutcome> actions = {ActionOutcome::succeeded}) {
    return step(number, StepOutcome::succeeded, DecisionFate::executed, std::move(actions));
}

Step failed(std::uint64_t number, std::optional<DecisionFate> fate = DecisionFate::failed, std::string error = "boom") {
    return step(number, StepOutcome::failed, fate, {}, std::move(error));
}

constexpr StepLimits roomy{100, 3, 0};

}  // namespace

TEST_CASE("step_ledger: each fate is counted in exactly one decision counter and each action in one") {
    History h;
    Ledger ledger{h, roomy};
    CHECK_FALSE(ledger.record(executed(1, {ActionOutcome::succeeded, ActionOutcome::succeeded})).status);
    CHECK_FALSE(ledger
                    .record(step(2, StepOutcome::failed, DecisionFate::failed,
                                 {ActionOutcome::succeeded, ActionOutcome::failed, ActionOutcome::skipped}))
                    .status);
    CHECK_FALSE(ledger
                    .record(step(3, StepOutcome::failed, DecisionFate::interrupted,
                                 {ActionOutcome::interrupted, ActionOutcome::skipped}))
                    .status);
    CHECK_FALSE(ledger.record(executed(4)).status);  // resets the failures in a row
    CHECK_FALSE(ledger.record(step(5, StepOutcome::failed, DecisionFate::expired, {ActionOutcome::skipped})).status);
    CHECK_FALSE(ledger.record(failed(6, std::nullopt, "decide() failed: boom")).status);

    const auto& c = h.counters;
    CHECK(c.steps == 6);
    CHECK(c.steps_failed == 4);
    CHECK(c.decisions_executed == 2);
    CHECK(c.decisions_failed == 1);
    CHECK(c.decisions_interrupted == 1);
    CHECK(c.decisions_expired == 1);  // a step without a fate (decide() failed) is in none of them
    CHECK(c.actions_succeeded == 4);
    CHECK(c.actions_failed == 1);
    CHECK(c.actions_skipped == 3);
    CHECK(c.actions_interrupted == 1);
    CHECK(h.steps.size() == 6);
    CHECK(ledger.recorded() == 6);
    CHECK(ledger.last().number == 6);
    CHECK(ledger.consecutive_failures() == 2);
}

TEST_CASE("step_ledger: a succeeded step that said done completes the run") {
    History h;
    Ledger ledger{h, roomy};
    auto done = executed(1);
    done.done = true;
    done.result = "all clean";
    const StepVerdict v = ledger.record(std::move(done));
    CHECK(v.status == AgentStatus::completed);
    CHECK(v.reason == "step 1 said done");
    CHECK(h.final_result() == std::optional<std::string>{"all clean"});
}

TEST_CASE("step_ledger: a failed step that said done does not complete the run") {
    History h;
    Ledger ledger{h, roomy};
    auto s = failed(1);
    s.done = true;
    CHECK_FALSE(ledger.record(std::move(s)).status);
}

TEST_CASE("step_ledger: max_failures failed steps in a row fail the run with the last error") {
    History h;
    Ledger ledger{h, StepLimits{100, 2, 0}};
    CHECK_FALSE(ledger.record(failed(1, DecisionFate::failed, "first")).status);
    CHECK(ledger.consecutive_failures() == 1);
    const auto v = ledger.record(failed(2, std::nullopt, "second"));
    CHECK(v.status == AgentStatus::failed);
    CHECK(v.reason == "2 consecutive step failures; last: second");
}

TEST_CASE("step_ledger: a succeeded step resets the failures in a row") {
    History h;
    Ledger ledger{h, StepLimits{100, 2, 0}};
    CHECK_FALSE(ledger.record(failed(1)).status);
    CHECK_FALSE(ledger.record(executed(2)).status);
    CHECK(ledger.consecutive_failures() == 0);
    CHECK_FALSE(ledger.record(failed(3)).status);
    CHECK(ledger.consecutive_failures() == 1);
}

TEST_CASE("step_ledger: the max_steps-th step ends the run as max_steps_reached") {
    History h;
    Ledger ledger{h, StepLimits{2, 3, 0}};
    CHECK_FALSE(ledger.record(executed(1)).status);
    const auto v = ledger.record(executed(2));
    CHECK(v.status == AgentStatus::max_steps_reached);
    CHECK(v.reason == "max_steps=2 steps finalized");
}

TEST_CASE("step_ledger: done wins over failures and max_steps and failures win over max_steps") {
    SECTION("done on the last step") {
        History h;
        Ledger ledger{h, StepLimits{1, 1, 0}};
        auto done = executed(1);
        done.done = true;
        CHECK(ledger.record(std::move(done)).status == AgentStatus::completed);
    }
    SECTION("the last failure on the last step") {
        History h;
        Ledger ledger{h, StepLimits{1, 1, 0}};
        CHECK(ledger.record(failed(1)).status == AgentStatus::failed);
    }
}

TEST_CASE("step_ledger: a step cut off by the end of the run is recorded but calls for nothing") {
    History h;
    Ledger ledger{h, StepLimits{1, 1, 0}};
    const auto v = ledger.record(failed(1, DecisionFate::interrupted, "the run ended"), false);
    CHECK_FALSE(v.status);
    CHECK(v.reason.empty());
    CHECK(h.counters.steps == 1);
    CHECK(h.counters.decisions_interrupted == 1);
    CHECK(ledger.consecutive_failures() == 1);
}

TEST_CASE("step_ledger: max_history_items keeps the newest steps and counts the evicted ones") {
    History h;
    Ledger ledger{h, StepLimits{100, 3, 2}};
    for (std::uint64_t n = 1; n <= 5; ++n) CHECK_FALSE(ledger.record(executed(n)).status);
    REQUIRE(h.steps.size() == 2);
    CHECK(h.steps.front().number == 4);
    CHECK(ledger.last().number == 5);
    CHECK(h.counters.steps == 5);
    CHECK(h.counters.steps_evicted == 3);
    CHECK(h.number_of_steps() == 5);
    CHECK(h.counters.decisions_executed == 5);  // evicted steps stay counted
}

TEST_CASE("step_ledger: max_steps counts evicted steps") {
    History h;
    Ledger ledger{h, StepLimits{3, 3, 1}};
    CHECK_FALSE(ledger.record(executed(1)).status);
    CHECK_FALSE(ledger.record(executed(2)).status);
    CHECK(ledger.record(executed(3)).status == AgentStatus::max_steps_reached);
    CHECK(h.steps.size() == 1);
}

TEST_CASE("step_ledger: an outcome contradicting the fate is refused and changes nothing") {
    History h;
    Ledger ledger{h, roomy};
    CHECK_THROWS_WITH(ledger.record(step(1, StepOutcome::succeeded, DecisionFate::failed)),
                      "step 1: outcome succeeded contradicts fate failed");
    CHECK_THROWS_WITH(ledger.record(step(1, StepOutcome::succeeded, std::nullopt)),
                      "step 1: outcome succeeded contradicts fate none (decide() failed)");
    CHECK_THROWS_WITH(ledger.record(step(1, StepOutcome::failed, DecisionFate::executed)),
                      "step 1: outcome failed contradicts fate executed");
    CHECK_THROWS_AS(ledger.record(step(1, StepOutcome::failed, DecisionFate::executed)), std::logic_error);
    CHECK(h.steps.empty());
    CHECK(h.counters.steps == 0);
    CHECK(h.counters.decisions_executed == 0);
    CHECK(h.counters.decisions_failed == 0);
    CHECK(ledger.consecutive_failures() == 0);
}

TEST_CASE("step_ledger: a step recorded twice or out of order is refused and changes nothing") {
    History h;
    Ledger ledger{h, roomy};
    CHECK_THROWS_WITH(ledger.record(executed(2)), "step 2 recorded out of order: the next step is 1");
    CHECK_FALSE(ledger.record(failed(1)).status);
    CHECK_THROWS_WITH(ledger.record(executed(1)), "step 1 recorded out of order: the next step is 2");
    CHECK(h.steps.size() == 1);
    CHECK(h.counters.steps == 1);
    CHECK(h.counters.decisions_executed == 0);
    CHECK(ledger.consecutive_failures() == 1);
}

TEST_CASE("step_ledger: zero max_steps or max_failures is refused") {
    History h;
    CHECK_THROWS_WITH((Ledger{h, StepLimits{0, 3, 0}}), "StepLimits.max_steps must be > 0");
    CHECK_THROWS_WITH((Ledger{h, StepLimits{10, 0, 0}}), "StepLimits.max_failures must be > 0");
}
