// Tests for taskmon/ops/monitor_json.hpp: the JSON of events and snapshots, exact text for known inputs (so a
// change of the format shows here), the escaping of every kind of awkward string, and a snapshot of a real
// monitor with a group.
#include <taskmon/ops/monitor_json.hpp>
#include <taskmon/task_monitor.hpp>

#include "taskmon_catch.hpp"

#include <asio/io_context.hpp>
#include <asio/steady_timer.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>
#include <spdlog/sinks/null_sink.h>

#include <chrono>
#include <map>
#include <memory>
#include <string>

using namespace std::chrono_literals;

namespace {

std::string json_string(std::string_view text) {
    std::string out;
    taskmon::detail::append_json_string(out, text);
    return out;
}

asio::awaitable<void> runs_forever() {
    asio::steady_timer timer{co_await asio::this_coro::executor};
    for (;;) {
        timer.expires_after(1h);
        co_await timer.async_wait(asio::use_awaitable);
    }
}

}  // namespace

TEST_CASE("append_json_string escapes quotes and backslashes and controls and keeps UTF-8 valid") {
    CHECK(json_string("") == R"("")");
    CHECK(json_string("plain") == R"("plain")");
    CHECK(json_string("a\"b\\c") == R"("a\"b\\c")");
    CHECK(json_string("l1\nl2\r\t\b\f") == R"("l1\nl2\r\t\b\f")");
    CHECK(json_string(std::string_view{"nul\0x", 5}) == R"("nul\u0000x")");
    CHECK(json_string("\x01\x1f\x7f") == R"("\u0001\u001f\u007f")");
    CHECK(json_string("caf\xC3\xA9 \xE2\x82\xAC") == "\"caf\xC3\xA9 \xE2\x82\xAC\"");  // valid UTF-8 unchanged
    CHECK(json_string("a\xE2\x80\xA8"
                      "b\xE2\x80\xA9") == R"("a\u2028b\u2029")");
    // Each invalid byte becomes U+FFFD: a stray continuation, a truncated sequence, an overlong form.
    CHECK(json_string("x\x80y") == "\"x\xEF\xBF\xBDy\"");
    CHECK(json_string("\xE2\x82") == "\"\xEF\xBF\xBD\xEF\xBF\xBD\"");
    CHECK(json_string("\xC0\xAF") == "\"\xEF\xBF\xBD\xEF\xBF\xBD\"");
}

TEST_CASE("JsonWriter places commas in nested objects and arrays") {
    taskmon::detail::JsonWriter w;
    w.begin_object();
    w.key("a").value(1);
    w.key("b").begin_array().value("x").value(true).null().begin_object().end_object().end_array();
    w.key("c").value(std::uint64_t{18446744073709551615u});
    w.key("d").value(std::int64_t{-5});
    w.end_object();
    CHECK(w.str() == R"({"a":1,"b":["x",true,null,{}],"c":18446744073709551615,"d":-5})");
}

TEST_CASE("monitor_event_json writes every field of the event typed") {
    taskmon::MonitorEvent e;
    e.kind = taskmon::MonitorEventKind::restart_scheduled;
    e.component = "db";
    e.sequence = 42;
    e.time = std::chrono::system_clock::time_point{std::chrono::seconds{1'700'000'000}} + 123ns;
    e.task_id = 7;
    e.attempt = 3;
    e.restart_count = 2;
    e.failure_count = 3;
    e.delay = 250ms;
    e.reason = "std::runtime_error: disk \"full\"\nsecond line \xFF";
    e.group = "storage";
    CHECK(taskmon::monitor_event_json(e) ==
          R"({"kind":"restart_scheduled","component":"db","sequence":42,"time_ns":1700000000000000123,"task_id":7,)"
          R"("attempt":3,"restart_count":2,"failure_count":3,"limit":0,"delay_ns":250000000,"window_ns":0,)"
          R"("reason":"std::runtime_error: disk \"full\"\nsecond line )"
          "\xEF\xBF\xBD"
          R"(","restart_type":"transient","restart_reason":"unknown","failure_class":"counted","count":0,)"
          R"("unresponsive":0,"group":"storage","members":[],"spawned":false})");

    taskmon::MonitorEvent g;
    g.kind = taskmon::MonitorEventKind::group_restarting;
    g.group = "link";
    g.members = {"socket", "reader"};
    g.restart_reason = taskmon::RestartReason::group;
    const auto json = taskmon::monitor_event_json(g);
    CHECK(json.find(R"("kind":"group_restarting")") != std::string::npos);
    CHECK(json.find(R"("members":["socket","reader"])") != std::string::npos);
    CHECK(json.find(R"("restart_reason":"group")") != std::string::npos);
    CHECK(json.find('\n') == std::string::npos);  // one SSE data line
}

TEST_CASE("monitor_snapshot_json writes components with the waits left at now and groups as declared") {
    const auto now = std::chrono::system_clock::time_point{std::chrono::seconds{1'700'000'000}};
    std::map<std::string, taskmon::ComponentStats> components;
    auto& db = components["db"];
    db.state = taskmon::ComponentState::restarting;
    db.enabled = true;
    db.restart_count = 4;
    db.restarts_in_window = 2;
    db.failure_count = 5;
    db.last_error = "e: \x01";
    db.next_restart_at = now + 1500ms;
    db.last_restart_time = now - 1s;
    db.group = "storage";
    auto& q = components["q"];
    q.state = taskmon::ComponentState::quarantined;
    q.next_trial_at = now - 1s;  // due: nothing left
    q.last_heartbeat_age = 3ms;
    q.liveness_deadline = now + 7s;
    std::map<std::string, taskmon::GroupStats> groups;
    groups["storage"] = {.state = taskmon::GroupState::running,
                         .strategy = taskmon::RestartStrategy::rest_for_one,
                         .parent = "",
                         .members = {"db", "cache"},
                         .restart_count = 1,
                         .restarts_in_window = 1};

    const auto json = taskmon::monitor_snapshot_json(components, groups, now, 99);
    CHECK(
        json.starts_with(R"({"format":"taskmon.monitor.v1","time_ns":1700000000000000000,"last_sequence":99,)"
                         R"("components":[{"name":"db","state":"restarting","group":"storage","enabled":true,)"
                         R"("restart_count":4,"restarts_in_window":2,"failure_count":5,"last_error":"e: \u0001",)"
                         R"("last_restart_time_ns":1699999999000000000,"next_restart_at_ns":1700000001500000000,)"
                         R"("backoff_remaining_ns":1500000000,"next_trial_at_ns":null,"cooldown_remaining_ns":null,)"));
    CHECK(json.find(R"("name":"q","state":"quarantined")") != std::string::npos);
    CHECK(json.find(R"("cooldown_remaining_ns":0,"quarantine_cooldown_ns":0,"last_heartbeat_age_ns":3000000,)"
                    R"("liveness_deadline_ns":1700000007000000000,"liveness_remaining_ns":7000000000,)") !=
          std::string::npos);
    CHECK(json.find(R"("liveness_deadline_ns":null,"liveness_remaining_ns":null,)") != std::string::npos);  // db
    CHECK(json.ends_with(R"("groups":[{"name":"storage","state":"running","strategy":"rest_for_one","parent":"",)"
                         R"("members":["db","cache"],"restart_count":1,"restarts_in_window":1}]})"));
}

TEST_CASE("monitor_snapshot_json of a live monitor lists its components and its group in start order") {
    asio::io_context io;
    auto logger = std::make_shared<spdlog::logger>("json", std::make_shared<spdlog::sinks::null_sink_mt>());
    taskmon::TaskMonitor monitor{io.get_executor(), {}, logger};
    monitor.supervise("solo", [] { return runs_forever(); });
    monitor.supervise_group("link",
                            {{.name = "socket", .factory = [] { return runs_forever(); }},
                             {.name = "reader", .factory = [] { return runs_forever(); }}},
                            {.strategy = taskmon::RestartStrategy::one_for_all});
    io.run_for(50ms);
    const auto json = taskmon::monitor_snapshot_json(monitor, 5);
    CHECK(json.find(R"("last_sequence":5)") != std::string::npos);
    CHECK(json.find(R"({"name":"solo","state":"running","group":"")") != std::string::npos);
    CHECK(json.find(R"({"name":"socket","state":"running","group":"link")") != std::string::npos);
    CHECK(json.find(R"("strategy":"one_for_all","parent":"","members":["socket","reader"])") != std::string::npos);
    monitor.disable({"solo", "socket", "reader"});
    io.restart();
    io.run_for(50ms);
}
