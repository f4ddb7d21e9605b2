#include <taskmon/agent/agent_settings.hpp>

#include <chrono>
#include <functional>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

#include "taskmon_catch.hpp"

using namespace std::chrono_literals;
using taskmon::AgentSettings;

namespace {

std::string validation_error(const AgentSettings& s) {
    try {
        s.validate();
    } catch (const std::invalid_argument& e) {
        return e.what();
    }
    return {};
}

}  // namespace

TEST_CASE("agent_settings: the documented defaults, and they are valid") {
    const AgentSettings s;
    CHECK(s.max_steps == 100);
    CHECK(s.max_failures == 3);
    CHECK(s.max_actions_per_step == 10);
    CHECK(s.perception_timeout == 15s);
    CHECK(s.max_observation_age == 10s);
    CHECK(s.shed_capture_interval == 2s);
    CHECK(s.decision_queue_capacity == 5);
    CHECK(s.shed_enter_cpu_percent == 98.0);
    CHECK(s.shed_leave_cpu_percent == 96.0);
    CHECK_NOTHROW(s.validate());
}

TEST_CASE("agent_settings: designated initializers accept chrono literals") {
    const AgentSettings s{.max_steps = 5, .capture_timeout = 1500ms, .perception_timeout = 2s};
    CHECK(s.max_steps == 5);
    CHECK(s.capture_timeout == 1500ms);
    CHECK_NOTHROW(s.validate());
}

TEST_CASE("agent_settings: every invalid field is named in the exception") {
    struct Case {
        const char* field;
        std::function<void(AgentSettings&)> spoil;
    };
    const std::vector<Case> cases{
        {"max_steps", [](AgentSettings& s) { s.max_steps = 0; }},
        {"max_failures", [](AgentSettings& s) { s.max_failures = 0; }},
        {"max_actions_per_step", [](AgentSettings& s) { s.max_actions_per_step = 0; }},
        {"capture_timeout", [](AgentSettings& s) { s.capture_timeout = 0s; }},
        {"capture_interval", [](AgentSettings& s) { s.capture_interval = -1ms; }},
        {"shed_capture_interval", [](AgentSettings& s) { s.shed_capture_interval = 50ms; }},
        {"max_observation_age", [](AgentSettings& s) { s.max_observation_age = -1s; }},
        {"decide_timeout", [](AgentSettings& s) { s.decide_timeout = 0s; }},
        {"act_timeout", [](AgentSettings& s) { s.act_timeout = 0s; }},
        {"decision_queue_capacity", [](AgentSettings& s) { s.decision_queue_capacity = 0; }},
        {"max_decision_age", [](AgentSettings& s) { s.max_decision_age = 0s; }},
        {"perception_timeout", [](AgentSettings& s) { s.perception_timeout = 0s; }},
        {"watchdog_startup_grace", [](AgentSettings& s) { s.watchdog_startup_grace = -1s; }},
        {"max_consecutive_stalls", [](AgentSettings& s) { s.max_consecutive_stalls = 0; }},
        {"load_sample_interval", [](AgentSettings& s) { s.load_sample_interval = 0s; }},
        {"shed_enter_cpu_percent", [](AgentSettings& s) { s.shed_enter_cpu_percent = 101.0; }},
        {"shed_enter_cpu_percent", [](AgentSettings& s) { s.shed_enter_cpu_percent = 0.0; }},
        {"shed_leave_cpu_percent", [](AgentSettings& s) { s.shed_leave_cpu_percent = 98.0; }},
        {"shed_leave_cpu_percent", [](AgentSettings& s) { s.shed_leave_cpu_percent = -1.0; }},
        {"shed_enter_lag", [](AgentSettings& s) { s.shed_enter_lag = 0ms; }},
        {"shed_leave_lag", [](AgentSettings& s) { s.shed_leave_lag = 500ms; }},
    };
    for (const auto& c : cases) {
        AgentSettings s;
        c.spoil(s);
        const auto message = validation_error(s);
        INFO("field " << c.field << ": " << message);
        CHECK(message.rfind(std::string{"AgentSettings."} + c.field + " ", 0) == 0);
    }
}

TEST_CASE("agent_settings: NaN thresholds are rejected") {
    AgentSettings s;
    s.shed_enter_cpu_percent = std::numeric_limits<double>::quiet_NaN();
    CHECK_THROWS_AS(s.validate(), std::invalid_argument);
}

TEST_CASE("agent_settings: capture_interval 0 (back to back) is allowed") {
    AgentSettings s;
    s.capture_interval = 0ms;
    s.shed_capture_interval = 0ms;
    CHECK_NOTHROW(s.validate());
}

TEST_CASE("agent_settings: restart policies are validated and named, with the field inside them") {
    AgentSettings s;
    s.critical_restart_policy.max_backoff = 1s;  // below the default base_backoff of 2 s
    CHECK(validation_error(s) ==
          "AgentSettings.critical_restart_policy: max_backoff must not be less than base_backoff");
    AgentSettings t;
    t.auxiliary_restart_policy.backoff_multiplier = 0.5;
    CHECK(validation_error(t).rfind("AgentSettings.auxiliary_restart_policy: backoff_multiplier", 0) == 0);
}

TEST_CASE("agent_settings: auxiliary components back off longer than critical ones by default") {
    const AgentSettings s;
    CHECK(s.auxiliary_restart_policy.base_backoff > s.critical_restart_policy.base_backoff);
    CHECK(s.auxiliary_restart_policy.max_backoff > s.critical_restart_policy.max_backoff);
    CHECK(s.critical_restart_policy.max_restart_attempts == 5);
}
