// Tests for taskmon/ops/history_json.hpp: a lossless round trip of every field of a History (hand-made edge cases
// and a real Supervisor run in virtual time), the JSON shape, the errors for malformed input, and invalid UTF-8
// written as U+FFFD.
#include <taskmon/agent/supervisor.hpp>
#include <taskmon/ops/history_json.hpp>
#include <taskmon/testing/manual_clock.hpp>

#include "supervisor_harness.hpp"
#include "taskmon_catch.hpp"

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/io_context.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>
#include <spdlog/sinks/null_sink.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

using namespace std::chrono_literals;
using taskmon::ActionOutcome;
using taskmon::ActionResult;
using taskmon::AgentStatus;
using taskmon::DecisionFate;
using taskmon::HistoryEvent;
using taskmon::HistoryEventKind;
using taskmon::JsonFieldError;
using taskmon::Offset;
using taskmon::StepOutcome;
using json = nlohmann::json;

namespace robot {

/// A user's Action type with its own JSON mapping, found by ADL like taskmon's.
struct Move {
    std::string direction;
    int cells = 0;
};
void to_json(json& j, const Move& m) { j = json{{"direction", m.direction}, {"cells", m.cells}}; }
void from_json(const json& j, Move& m) {
    m.direction = j.at("direction").get<std::string>();
    m.cells = j.at("cells").get<int>();
    if (m.cells < 0) throw std::invalid_argument("Move.cells must not be negative");
}

}  // namespace robot

namespace {

using History = taskmon::History<robot::Move, std::string>;
using TextHistory = taskmon::History<std::string, std::string>;
using SystemTime = std::chrono::system_clock::time_point;

// ---- field-by-field equality -------------------------------------------------------------------------------------

void check_equal(const ActionResult& a, const ActionResult& b) {
    CHECK(a.success == b.success);
    CHECK(a.error == b.error);
    CHECK(a.extracted_content == b.extracted_content);
}

template <typename Action>
void check_equal(const taskmon::ActionRecord<Action>& a, const taskmon::ActionRecord<Action>& b,
                 const std::function<void(const Action&, const Action&)>& same_action) {
    same_action(a.action, b.action);
    CHECK(a.outcome == b.outcome);
    check_equal(a.result, b.result);
    CHECK(a.started_at == b.started_at);
    CHECK(a.finished_at == b.finished_at);
}

template <typename Action>
void check_equal(const taskmon::History<Action, std::string>& a, const taskmon::History<Action, std::string>& b,
                 const std::function<void(const Action&, const Action&)>& same_action) {
    CHECK(a.status == b.status);
    CHECK(a.reason == b.reason);
    CHECK(a.started_wall_time == b.started_wall_time);
    CHECK(a.ended_at == b.ended_at);
    for (const auto& [name, member] : taskmon::detail::history_json::counter_fields) {
        INFO("counter " << name);
        CHECK(a.counters.*member == b.counters.*member);
    }
    CHECK(a.counters.restarts == b.counters.restarts);
    REQUIRE(a.steps.size() == b.steps.size());
    for (std::size_t i = 0; i < a.steps.size(); ++i) {
        INFO("step " << i);
        const auto& x = a.steps[i];
        const auto& y = b.steps[i];
        CHECK(x.number == y.number);
        CHECK(x.observation_sequence == y.observation_sequence);
        CHECK(x.observation_age == y.observation_age);
        CHECK(x.outcome == y.outcome);
        CHECK(x.fate == y.fate);
        CHECK(x.done == y.done);
        CHECK(x.result == y.result);
        CHECK(x.error == y.error);
        CHECK(x.started_at == y.started_at);
        CHECK(x.decided_at == y.decided_at);
        CHECK(x.finished_at == y.finished_at);
        REQUIRE(x.actions.size() == y.actions.size());
        for (std::size_t k = 0; k < x.actions.size(); ++k) check_equal(x.actions[k], y.actions[k], same_action);
    }
    REQUIRE(a.events.size() == b.events.size());
    for (std::size_t i = 0; i < a.events.size(); ++i) {
        INFO("event " << i);
        const auto& x = a.events[i];
        const auto& y = b.events[i];
        CHECK(x.kind == y.kind);
        CHECK(x.at == y.at);
        CHECK(x.component == y.component);
        CHECK(x.message == y.message);
        CHECK(x.from == y.from);
        CHECK(x.to == y.to);
        CHECK(x.step == y.step);
        CHECK(x.instance == y.instance);
        CHECK(x.consecutive_stalls == y.consecutive_stalls);
        CHECK(x.max_consecutive_stalls == y.max_consecutive_stalls);
        CHECK(x.silent_for == y.silent_for);
    }
}

void same_move(const robot::Move& a, const robot::Move& b) {
    CHECK(a.direction == b.direction);
    CHECK(a.cells == b.cells);
}
void same_text(const std::string& a, const std::string& b) { CHECK(a == b); }

// ---- a History with every edge case ------------------------------------------------------------------------------

constexpr std::uint64_t u64_max = std::numeric_limits<std::uint64_t>::max();
constexpr Offset offset_max = Offset::max();
constexpr Offset offset_min = Offset::min();

History edge_cases() {
    History h;
    h.status = AgentStatus::max_steps_reached;
    h.reason = "max_steps=3 reached \"quoted\" \\ backslash \n newline \t tab ü 日本";
    h.started_wall_time = SystemTime{} + 1'764'671'142'123'456'789ns;  // 2025-12-02T10:25:42.123456789Z
    h.ended_at = 123'456'789'012ns;

    robot::Move north{"north", 2};
    History::Step s1;
    s1.number = 1;
    s1.observation_sequence = 7;
    s1.observation_age = 0ns;
    s1.outcome = StepOutcome::succeeded;
    s1.fate = DecisionFate::executed;
    s1.done = false;
    s1.started_at = 1ns;
    s1.decided_at = 2ns;
    s1.finished_at = 3ns;
    s1.actions.push_back({north, ActionOutcome::succeeded, ActionResult::ok("vacuumed (1,2)"), 2ns, 3ns});
    s1.actions.push_back({robot::Move{"", 0}, ActionOutcome::succeeded, ActionResult::ok(""), 2ns, 3ns});
    h.steps.push_back(s1);

    History::Step s2;  // decide() failed: no fate, no decided_at, no actions
    s2.number = 2;
    s2.observation_sequence = u64_max;
    s2.observation_age = offset_max;
    s2.outcome = StepOutcome::failed;
    s2.error = "decide() timed out after 60s";
    s2.started_at = offset_min;
    s2.finished_at = offset_max;
    h.steps.push_back(s2);

    History::Step s3;  // done with an empty result, actions of every outcome
    s3.number = 3;
    s3.outcome = StepOutcome::failed;
    s3.fate = DecisionFate::interrupted;
    s3.done = true;
    s3.result = "";
    s3.started_at = -5s;
    s3.decided_at = 0ns;
    s3.finished_at = 10s;
    s3.actions.push_back({north, ActionOutcome::failed, ActionResult::failure("wheel slipped"), 1s, 2s});
    s3.actions.push_back({north, ActionOutcome::interrupted, ActionResult::failure("instance died"), 2s, std::nullopt});
    s3.actions.push_back(
        {north, ActionOutcome::skipped, ActionResult::failure("an earlier action failed"), std::nullopt, std::nullopt});
    h.steps.push_back(s3);

    for (auto fate : {DecisionFate::failed, DecisionFate::expired}) {
        History::Step s;
        s.number = h.steps.size() + 1;
        s.fate = fate;
        h.steps.push_back(s);
    }

    h.events.push_back(HistoryEvent{HistoryEventKind::status_changed, 0ns, "", "run() started", AgentStatus::pending,
                                    AgentStatus::running, std::nullopt});
    h.events.push_back(HistoryEvent{HistoryEventKind::status_changed, 1s, "", "pause()", AgentStatus::running,
                                    AgentStatus::paused, std::nullopt});
    h.events.push_back(HistoryEvent{HistoryEventKind::component_failed, 2s, "perception",
                                    "error=\"std::runtime_error: <bad> & \"worse\"\"", std::nullopt, std::nullopt, 0});
    h.events.push_back(HistoryEvent{HistoryEventKind::decision_expired, 3s, "actuation_loop", "age=31s", std::nullopt,
                                    std::nullopt, u64_max});
    // Every kind, every status as `to`, to check every name both ways.
    for (unsigned k = 0; k <= static_cast<unsigned>(HistoryEventKind::terminal_refused); ++k) {
        h.events.push_back(
            HistoryEvent{static_cast<HistoryEventKind>(k), Offset{k}, "c", "", std::nullopt, std::nullopt, k});
    }
    for (unsigned s = 0; s < taskmon::agent_status_count; ++s) {
        h.events.push_back(HistoryEvent{HistoryEventKind::status_changed, 4s, "", "", std::nullopt,
                                        static_cast<AgentStatus>(s), std::nullopt});
    }
    // The typed fields: as the Supervisor sets them, at their limits, and on a kind they are not for (written and
    // read whatever the kind).
    h.events.push_back(HistoryEvent{.kind = HistoryEventKind::component_restarted,
                                    .at = 5s,
                                    .component = "perception",
                                    .message = "instance=2",
                                    .instance = 2});
    h.events.push_back(HistoryEvent{.kind = HistoryEventKind::watchdog_stall,
                                    .at = 6s,
                                    .component = "perception_watchdog",
                                    .message = "silent_for=4.0s stall=1/3",
                                    .consecutive_stalls = 1,
                                    .max_consecutive_stalls = 3,
                                    .silent_for = 4s});
    h.events.push_back(HistoryEvent{.kind = HistoryEventKind::watchdog_stall,
                                    .at = 7s,
                                    .consecutive_stalls = u64_max,
                                    .max_consecutive_stalls = 0,
                                    .silent_for = offset_min});
    h.events.push_back(
        HistoryEvent{.kind = HistoryEventKind::hook_error, .at = 8s, .instance = u64_max, .silent_for = offset_max});

    h.counters.observations_published = u64_max;
    std::uint64_t n = 1;
    for (const auto& [name, member] : taskmon::detail::history_json::counter_fields) h.counters.*member = n++;
    h.counters.restarts = {{"perception", 3}, {"pause_handler", 0}, {"odd \"name\" ü", u64_max}};
    return h;
}

History round_trip(const History& h) {
    const json j = h;
    const auto text = j.dump(2);
    return json::parse(text).get<History>();
}

json edge_cases_json() { return json(edge_cases()); }

/// Expects from_json to throw a JsonFieldError at `path` whose message contains `problem`.
template <typename T = History>
void expect_error(const json& j, const std::string& path, const std::string& problem) {
    try {
        (void)j.get<T>();
        FAIL("no exception for a bad " << path);
    } catch (const JsonFieldError& e) {
        CHECK(e.path() == path);
        CHECK_THAT(e.problem(), Catch::Matchers::Contains(problem));
        CHECK_THAT(std::string{e.what()}, Catch::Matchers::Contains("taskmon JSON: " + path));
    }
}

// The library's rule: bad input is a std::invalid_argument.
static_assert(std::is_base_of_v<std::invalid_argument, JsonFieldError>);

// ---- a real run ----------------------------------------------------------------------------------------------------

using taskmon_test::sleep_for;

/// A Supervisor run in virtual time with failed actions, a perception failure and restart, a pause, and done.
TextHistory real_run() {
    taskmon_test::SupervisorHarness h;
    h.agent.perceive_fn = [](int n) -> asio::awaitable<int> {
        co_await sleep_for(10ms);
        if (n == 4) throw std::runtime_error("lidar checksum error");
        co_return n;
    };
    h.agent.decide_fn = [](int, const taskmon_test::Context& ctx) {
        if (ctx.step == 8) return taskmon_test::Decision::done("clean", {"vacuum"});
        return taskmon_test::Decision::act({"move-" + std::to_string(ctx.step), "vacuum"});
    };
    h.agent.act_fn = [](const std::string& action) -> asio::awaitable<ActionResult> {
        co_await sleep_for(50ms);
        if (action == "move-3") co_return ActionResult::failure("wheel slipped");
        co_return ActionResult::ok(action);
    };
    taskmon::AgentSettings settings;
    settings.capture_interval = 100ms;
    settings.critical_restart_policy = {.max_restart_attempts = 5, .base_backoff = 300ms, .max_backoff = 2s};
    auto robot = h.make(settings);
    h.start(*robot);
    h.at(500ms, [&] { robot->pause(); });
    h.at(1s, [&] { robot->resume(); });
    REQUIRE(h.finish(1h));
    return *h.history;
}

}  // namespace

// ---- round trips -------------------------------------------------------------------------------------------------

TEST_CASE("history_json: every field survives a round trip through JSON text, edge cases included") {
    const auto original = edge_cases();
    const auto back = round_trip(original);
    check_equal<robot::Move>(original, back, same_move);
    // And a second trip gives the very same JSON.
    CHECK(json(back) == json(original));
}

TEST_CASE("history_json: a real Supervisor run survives a round trip") {
    const auto original = real_run();
    REQUIRE(original.status == AgentStatus::completed);
    REQUIRE(original.steps.size() == 8);
    REQUIRE_FALSE(original.events_of(HistoryEventKind::component_restarted).empty());
    REQUIRE(original.counters.actions_failed == 1);
    const auto back = json::parse(json(original).dump()).get<TextHistory>();
    check_equal<std::string>(original, back, same_text);
    CHECK(back.is_successful());
    CHECK(back.final_result() == original.final_result());
    CHECK(back.status_path() == original.status_path());
    CHECK(back.errors() == original.errors());
    CHECK(back.total_duration() == original.total_duration());
}

TEST_CASE("history_json: wall times keep their nanoseconds, before and after 1970 and at the clock's limits") {
    using std::chrono::system_clock;
    const std::vector<SystemTime> times{
        SystemTime{},
        SystemTime{} + 1ns,
        SystemTime{} - 1ns,
        SystemTime{} + 951'782'400s,  // 2000-02-29
        SystemTime{} + 1'764'671'142'123'456'789ns,
        system_clock::time_point::min(),
        system_clock::time_point::max(),
    };
    for (const auto t : times) {
        History h;
        h.started_wall_time = t;
        const json j = h;
        INFO(j["started_wall_time"].get<std::string>());
        CHECK(j.get<History>().started_wall_time == t);
    }
    History h;
    h.started_wall_time = SystemTime{} + 1'764'671'142'123'456'789ns;
    CHECK(json(h)["started_wall_time"] == "2025-12-02T10:25:42.123456789Z");
    h.started_wall_time = SystemTime{} - 1ns;
    CHECK(json(h)["started_wall_time"] == "1969-12-31T23:59:59.999999999Z");
    // Fewer fractional digits, or none, are accepted on input.
    auto j = json(History{});
    j["started_wall_time"] = "2025-12-02T10:25:42.5Z";
    CHECK(j.get<History>().started_wall_time == SystemTime{} + 1'764'671'142'500'000'000ns);
    j["started_wall_time"] = "2025-12-02T10:25:42Z";
    CHECK(j.get<History>().started_wall_time == SystemTime{} + 1'764'671'142s);
}

TEST_CASE("history_json: the JSON uses names for enums, *_ns integers for offsets and null for empty optionals") {
    const json j = edge_cases();
    CHECK(j["format"] == "taskmon.history.v1");
    CHECK(j["status"] == "max_steps_reached");
    CHECK(j["ended_at_ns"] == 123'456'789'012);
    CHECK(j["counters"]["restarts"]["perception"] == 3);
    const auto& s1 = j["steps"][0];
    CHECK(s1["fate"] == "executed");
    CHECK(s1["outcome"] == "succeeded");
    CHECK(s1["result"].is_null());
    CHECK(s1["decided_at_ns"] == 2);
    CHECK(s1["actions"][0]["action"] == json{{"direction", "north"}, {"cells", 2}});
    CHECK(s1["actions"][0]["result"] ==
          json{{"success", true}, {"error", ""}, {"extracted_content", "vacuumed (1,2)"}});
    const auto& s2 = j["steps"][1];
    CHECK(s2["fate"].is_null());
    CHECK(s2["decided_at_ns"].is_null());
    CHECK(s2["observation_sequence"] == u64_max);
    CHECK(j["steps"][2]["result"] == "");  // engaged but empty: not null
    CHECK(j["steps"][2]["actions"][2]["started_at_ns"].is_null());
    const auto& e0 = j["events"][0];
    CHECK(e0 == json{{"kind", "status_changed"},
                     {"at_ns", 0},
                     {"component", ""},
                     {"message", "run() started"},
                     {"from", "pending"},
                     {"to", "running"},
                     {"step", nullptr}});
    CHECK(json(HistoryEventKind::load_shedding_entered) == "load_shedding_entered");
    CHECK(json(ActionOutcome::interrupted) == "interrupted");
    CHECK(json(DecisionFate::expired).get<DecisionFate>() == DecisionFate::expired);
}

TEST_CASE("history_json: the functions are found by ADL for each type, so they work inside the user's own JSON") {
    const auto h = edge_cases();
    const json report{{"robot", "R2"}, {"history", h}, {"last_event", h.events.back()}, {"counters", h.counters}};
    const auto back = report["history"].get<History>();
    check_equal<robot::Move>(h, back, same_move);
    CHECK(report["last_event"].get<HistoryEvent>().to == h.events.back().to);
    CHECK(report["counters"].get<taskmon::HistoryCounters>().restarts == h.counters.restarts);
    auto step = report["history"]["steps"][2].get<History::Step>();
    CHECK(step.actions.size() == 3);
    CHECK(report["history"]["steps"][0]["actions"][0].get<taskmon::ActionRecord<robot::Move>>().action.cells == 2);
}

TEST_CASE("history_json: absent optional keys read as empty and unknown keys are ignored") {
    auto j = edge_cases_json();
    j["steps"][0].erase("fate");
    j["steps"][0].erase("decided_at_ns");
    j["events"][0].erase("from");
    j["steps"][0]["a_future_field"] = 42;
    j.erase("format");
    const auto h = j.get<History>();
    CHECK_FALSE(h.steps[0].fate.has_value());
    CHECK_FALSE(h.steps[0].decided_at.has_value());
    CHECK_FALSE(h.events[0].from.has_value());
    CHECK(h.events[0].to == AgentStatus::running);
}

TEST_CASE("history_json: HistoryEvent's typed fields are written when set and left out when empty") {
    const HistoryEvent stall{.kind = HistoryEventKind::watchdog_stall,
                             .at = 6s,
                             .component = "perception_watchdog",
                             .message = "silent_for=4.5s stall=2/3",
                             .consecutive_stalls = 2,
                             .max_consecutive_stalls = 3,
                             .silent_for = 4'500ms};
    const json js = stall;
    CHECK(js["consecutive_stalls"] == 2);
    CHECK(js["max_consecutive_stalls"] == 3);
    CHECK(js["silent_for_ns"] == 4'500'000'000);
    CHECK_FALSE(js.contains("instance"));
    const auto stall_back = js.get<HistoryEvent>();
    CHECK(stall_back.consecutive_stalls == 2);
    CHECK(stall_back.max_consecutive_stalls == 3);
    CHECK(stall_back.silent_for == 4'500ms);
    CHECK_FALSE(stall_back.instance);

    const HistoryEvent restarted{.kind = HistoryEventKind::component_restarted,
                                 .at = 1s,
                                 .component = "perception",
                                 .message = "instance=7",
                                 .instance = 7};
    const json jr = restarted;
    CHECK(jr == json{{"kind", "component_restarted"},
                     {"at_ns", 1'000'000'000},
                     {"component", "perception"},
                     {"message", "instance=7"},
                     {"from", nullptr},
                     {"to", nullptr},
                     {"step", nullptr},
                     {"instance", 7}});
    CHECK(jr.get<HistoryEvent>().instance == 7);

    // An event without them is written exactly as before the fields existed: none of their keys, not even null.
    const auto h = edge_cases();
    const json j = h;
    REQUIRE(j["events"].size() == h.events.size());
    for (std::size_t i = 0; i < h.events.size(); ++i) {
        INFO("event " << i);
        const auto& e = j["events"][i];
        CHECK(e.contains("instance") == h.events[i].instance.has_value());
        CHECK(e.contains("consecutive_stalls") == h.events[i].consecutive_stalls.has_value());
        CHECK(e.contains("max_consecutive_stalls") == h.events[i].max_consecutive_stalls.has_value());
        CHECK(e.contains("silent_for_ns") == h.events[i].silent_for.has_value());
    }
}

TEST_CASE("history_json: a document without the typed fields, or with them null, reads with the fields empty") {
    // Events as a writer without the typed fields writes them: the numbers are only in the message.
    auto j = json(TextHistory{});
    j["events"] = json::parse(R"([
        {"kind": "component_restarted", "at_ns": 410000000, "component": "perception", "message": "instance=2",
         "from": null, "to": null, "step": null},
        {"kind": "watchdog_stall", "at_ns": 4100000000, "component": "perception_watchdog",
         "message": "silent_for=4.1s stall=1/3", "from": null, "to": null, "step": null},
        {"kind": "watchdog_stall", "at_ns": 8200000000, "component": "perception_watchdog",
         "message": "silent_for=4.1s stall=2/3", "from": null, "to": null, "step": null, "instance": null,
         "consecutive_stalls": null, "max_consecutive_stalls": null, "silent_for_ns": null}
    ])");
    const auto h = j.get<TextHistory>();
    REQUIRE(h.events.size() == 3);
    for (const auto& e : h.events) {
        CAPTURE(e.message);
        CHECK_FALSE(e.instance);
        CHECK_FALSE(e.consecutive_stalls);
        CHECK_FALSE(e.max_consecutive_stalls);
        CHECK_FALSE(e.silent_for);
    }
    CHECK(h.events[0].message == "instance=2");  // kept as text; nothing is parsed out of it
    // Written back as they were: no key for a field that is empty (and the nulls are left out).
    const json back = h;
    CHECK(back["events"][0] == j["events"][0]);
    CHECK(back["events"][1] == j["events"][1]);
    CHECK_FALSE(back["events"][2].contains("instance"));
    CHECK_FALSE(back["events"][2].contains("silent_for_ns"));
}

TEST_CASE("history_json: a real Supervisor run keeps its restart instances through JSON") {
    const auto original = real_run();
    const auto restarts = original.events_of(HistoryEventKind::component_restarted);
    REQUIRE_FALSE(restarts.empty());
    const json j = original;
    const auto back = json::parse(j.dump()).get<TextHistory>();
    const auto restarts_back = back.events_of(HistoryEventKind::component_restarted);
    REQUIRE(restarts_back.size() == restarts.size());
    for (std::size_t i = 0; i < restarts.size(); ++i) {
        CAPTURE(i);
        REQUIRE(restarts[i].instance.has_value());
        CHECK(*restarts[i].instance >= 2);
        CHECK(restarts_back[i].instance == restarts[i].instance);
    }
}

// ---- malformed input -----------------------------------------------------------------------------------------------

TEST_CASE("history_json: malformed input names the field by its path") {
    SECTION("not an object") { expect_error(json::array(), "", "expected an object, got array"); }
    SECTION("a missing field") {
        auto j = edge_cases_json();
        j.erase("status");
        expect_error(j, "status", "missing");
    }
    SECTION("a missing field deep inside") {
        auto j = edge_cases_json();
        j["steps"][2]["actions"][1].erase("outcome");
        expect_error(j, "steps[2].actions[1].outcome", "missing");
    }
    SECTION("a wrong type") {
        auto j = edge_cases_json();
        j["steps"][1]["done"] = "yes";
        expect_error(j, "steps[1].done", "expected a boolean, got string");
    }
    SECTION("an unknown enum name lists the valid ones") {
        auto j = edge_cases_json();
        j["steps"][2]["actions"][0]["outcome"] = "exploded";
        expect_error(j, "steps[2].actions[0].outcome",
                     "unknown ActionOutcome \"exploded\" (expected succeeded, failed, skipped or interrupted)");
    }
    SECTION("an enum given as a number") {
        auto j = edge_cases_json();
        j["events"][0]["to"] = 1;
        expect_error(j, "events[0].to", "expected a name (AgentStatus), got number");
    }
    SECTION("a negative count") {
        auto j = edge_cases_json();
        j["counters"]["steps"] = -1;
        expect_error(j, "counters.steps", "expected a non-negative integer, got -1");
    }
    SECTION("a negative count in the restarts map") {
        auto j = edge_cases_json();
        j["counters"]["restarts"]["perception"] = -3;
        expect_error(j, "counters.restarts.perception", "non-negative");
    }
    SECTION("a fractional offset") {
        auto j = edge_cases_json();
        j["events"][3]["at_ns"] = 1.5;
        expect_error(j, "events[3].at_ns", "expected an integer number of nanoseconds, got number");
    }
    SECTION("an offset beyond the range of nanoseconds") {
        auto j = edge_cases_json();
        j["ended_at_ns"] = u64_max;
        expect_error(j, "ended_at_ns", "out of range");
    }
    SECTION("a bad wall time") {
        for (const char* text : {"2025-13-02T10:25:42Z", "2025-02-30T10:25:42Z", "2025-12-02 10:25:42Z",
                                 "2025-12-02T10:25:42", "2025-12-02T24:00:00Z", "2025-12-02T10:25:42.Z",
                                 "2025-12-02T10:25:42.1234567891Z", "yesterday", "9999-12-31T23:59:59Z"}) {
            INFO(text);
            auto j = edge_cases_json();
            j["started_wall_time"] = text;
            expect_error(j, "started_wall_time", "");
        }
    }
    SECTION("another format") {
        auto j = edge_cases_json();
        j["format"] = "taskmon.history.v2";
        expect_error(j, "format", "unsupported format \"taskmon.history.v2\"");
    }
    SECTION("an array where an object is expected") {
        auto j = edge_cases_json();
        j["steps"][0]["actions"][0]["result"] = json::array();
        expect_error(j, "steps[0].actions[0].result", "expected an object, got array");
    }
    SECTION("steps not an array") {
        auto j = edge_cases_json();
        j["steps"] = json::object();
        expect_error(j, "steps", "expected an array, got object");
    }
    SECTION("the user's Action type refuses its JSON") {
        auto j = edge_cases_json();
        j["steps"][0]["actions"][1]["action"]["cells"] = -1;
        expect_error(j, "steps[0].actions[1].action", "Move.cells must not be negative");
        j["steps"][0]["actions"][1]["action"] = "north";
        expect_error(j, "steps[0].actions[1].action", "");
    }
    SECTION("a Result of the wrong type") {
        auto j = edge_cases_json();
        j["steps"][2]["result"] = 12;
        expect_error(j, "steps[2].result", "");
    }
    SECTION("a typed field of an event of the wrong type") {
        auto j = edge_cases_json();
        std::size_t restarted = 0;
        while (!j["events"][restarted].contains("instance")) ++restarted;
        j["events"][restarted]["instance"] = -1;
        expect_error(j, "events[" + std::to_string(restarted) + "].instance",
                     "expected a non-negative integer, got -1");
        j["events"][restarted]["instance"] = "2";
        expect_error(j, "events[" + std::to_string(restarted) + "].instance", "expected a non-negative integer");
        j = edge_cases_json();
        j["events"][restarted]["silent_for_ns"] = 1.5;
        expect_error(j, "events[" + std::to_string(restarted) + "].silent_for_ns",
                     "expected an integer number of nanoseconds, got number");
    }
    SECTION("a nested type read on its own names its own fields") {
        expect_error<HistoryEvent>(json{{"kind", "status_changed"}, {"at_ns", 0}}, "component", "missing");
        expect_error<ActionResult>(json{{"success", 1}, {"error", ""}}, "success", "expected a boolean");
    }
}

TEST_CASE("history_json: a failed read leaves the target unchanged") {
    const auto original = edge_cases();
    auto target = original;
    auto j = edge_cases_json();
    j["steps"][4]["outcome"] = "maybe";
    j["status"] = "completed";  // read before the bad step: must not be applied either
    CHECK_THROWS_AS(taskmon::from_json(j, target), JsonFieldError);
    check_equal<robot::Move>(original, target, same_move);
}

TEST_CASE("history_json: a value without a name is refused on output, not written as a number") {
    CHECK_THROWS_WITH(json(static_cast<AgentStatus>(200)),
                      Catch::Matchers::Contains("AgentStatus value 200 has no name"));
    CHECK_THROWS_AS(json(static_cast<HistoryEventKind>(250)), std::invalid_argument);
}

// ---- invalid UTF-8 -----------------------------------------------------------------------------------------------

TEST_CASE("history_json: strings with invalid UTF-8 are written with U+FFFD, so the JSON dumps and parses back") {
    const std::string fffd = "\xEF\xBF\xBD";
    const std::string valid = "ü 日本 😀 \xEF\xBF\xBD \"q\" \\ \n";  // valid text, U+FFFD included: kept as it is
    TextHistory h;
    h.status = AgentStatus::failed;
    h.reason =
        "perception failed: sensor \xB0"
        "C";
    h.counters.restarts = {{"lidar\xFF", 2}, {"lidar\xFE", 3}, {"camera", 1}};
    TextHistory::Step step;
    step.number = 1;
    step.outcome = StepOutcome::failed;
    step.fate = DecisionFate::failed;
    step.done = true;
    step.result = "done\xC0\xAF";                  // overlong
    step.error = "action 1 failed: \xED\xA0\x80";  // a surrogate
    step.actions.push_back({"move\xE2\x82", ActionOutcome::failed, ActionResult{false, "checksum \x80\x81", "raw \xF5"},
                            1s, 2s});  // cut short; stray continuations; beyond U+10FFFF
    step.actions.push_back({valid, ActionOutcome::succeeded, ActionResult::ok(valid), 2s, 3s});
    h.steps.push_back(step);
    h.events.push_back(HistoryEvent{HistoryEventKind::component_failed, 1s, "lidar\xFF",
                                    "error=\"std::runtime_error: bad \xFF byte\"", std::nullopt, std::nullopt, 1});
    h.events.push_back(HistoryEvent{HistoryEventKind::hook_error, 2s, valid, valid, std::nullopt, std::nullopt, 1});

    const json j = h;
    std::string text;
    REQUIRE_NOTHROW(text = j.dump(2));  // dump() throws type_error.316 on any invalid UTF-8 left in
    const auto back = json::parse(text).get<TextHistory>();

    CHECK(back.reason == "perception failed: sensor " + fffd + "C");
    CHECK(back.counters.restarts == std::map<std::string, std::uint64_t>{{"camera", 1}, {"lidar" + fffd, 5}});
    REQUIRE(back.steps.size() == 1);
    const auto& s = back.steps[0];
    CHECK(s.result == "done" + fffd + fffd);
    CHECK(s.error == "action 1 failed: " + fffd + fffd + fffd);
    REQUIRE(s.actions.size() == 2);
    CHECK(s.actions[0].action == "move" + fffd + fffd);
    CHECK(s.actions[0].result.error == "checksum " + fffd + fffd);
    CHECK(s.actions[0].result.extracted_content == "raw " + fffd);
    CHECK(s.actions[1].action == valid);
    CHECK(s.actions[1].result.extracted_content == valid);
    REQUIRE(back.events.size() == 2);
    CHECK(back.events[0].component == "lidar" + fffd);
    CHECK(back.events[0].message == "error=\"std::runtime_error: bad " + fffd + " byte\"");
    CHECK(back.events[1].component == valid);
    CHECK(back.events[1].message == valid);
    // Only the invalid bytes changed: everything else is as it was.
    CHECK(back.status == h.status);
    CHECK(back.steps[0].actions[0].started_at == 1s);
    CHECK(back.events[0].at == 1s);
    // And the replaced History round-trips exactly, to the same JSON.
    CHECK(json(back) == j);
    CHECK(json::parse(json(back).dump()).get<TextHistory>().steps[0].error == s.error);
}

TEST_CASE("history_json: restart counts of names that become the same add up, saturating at 2^64 - 1") {
    TextHistory h;
    h.counters.restarts = {{"a\xFF", u64_max}, {"a\xFE", 2}, {"b", 7}};
    const json j = h;
    CHECK(j["counters"]["restarts"]["a\xEF\xBF\xBD"] == u64_max);
    CHECK(j["counters"]["restarts"]["b"] == 7);
    CHECK(j["counters"]["restarts"].size() == 2);
}

TEST_CASE("history_json: an Action of the user's own type is written by its own to_json") {
    History h;
    History::Step step;
    step.number = 1;
    step.actions.push_back({robot::Move{"north", 1}, ActionOutcome::failed, ActionResult::failure("\xFF"), 1s, 2s});
    h.steps.push_back(step);
    const json j = h;
    CHECK(j["steps"][0]["actions"][0]["action"] == json{{"direction", "north"}, {"cells", 1}});
    CHECK(j["steps"][0]["actions"][0]["result"]["error"] == "\xEF\xBF\xBD");
    CHECK_NOTHROW(j.dump());
}
