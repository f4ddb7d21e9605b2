// Tests for taskmon/ops/health_endpoints.hpp: answer_health_request() routes a GET to the endpoint functions, with
// no server and no socket.
#include <taskmon/event_subscription.hpp>
#include <taskmon/ops/health_endpoints.hpp>

#include "taskmon_catch.hpp"

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

TEST_CASE("answer_health_request routes and reports a throwing endpoint as 500") {
    taskmon::HealthEndpoints endpoints{
        .health = [] { return taskmon::HealthReport{}; },
        .metrics = []() -> std::vector<taskmon::MetricFamily> { throw std::runtime_error("scrape failed"); }};
    CHECK(taskmon::answer_health_request(endpoints, "/livez").status == 200);
    CHECK(taskmon::answer_health_request(endpoints, "/livez?x=1&verbose").body == "liveness check passed\n");
    const auto r = taskmon::answer_health_request(endpoints, "/metrics");
    CHECK(r.status == 500);
    CHECK(r.body == "endpoint failed: scrape failed\n");
    CHECK(taskmon::answer_health_request({}, "/livez").status == 404);
    CHECK(taskmon::answer_health_request(endpoints, "not a target").status == 400);
    CHECK(taskmon::answer_health_request(endpoints, "/api/tree").status == 404);
    CHECK(taskmon::answer_health_request(endpoints, "/events").status == 404);
    endpoints.tree = [](std::uint64_t last) { return "{\"last_sequence\":" + std::to_string(last) + "}"; };
    endpoints.subscribe = [](const taskmon::MonitorEventListener&) { return taskmon::EventSubscription{}; };
    const auto tree = taskmon::answer_health_request(endpoints, "/api/tree", 7);
    CHECK(tree.status == 200);
    CHECK(tree.content_type == "application/json");
    CHECK(tree.body == R"({"last_sequence":7})");
    CHECK(taskmon::answer_health_request(endpoints, "/events").content_type == "text/event-stream");
}
