// Tests for taskmon/detail/restart_decision.hpp: what follows a failure, decided from values alone (no monitor,
// no io_context, no clock).
#include <taskmon/detail/restart_decision.hpp>

#include "taskmon_catch.hpp"

#include <chrono>
#include <optional>
#include <variant>
#include <vector>

using namespace std::chrono_literals;
using taskmon::FailureClass;
using taskmon::GiveUpMode;
using taskmon::RestartPolicy;
using taskmon::RestartType;
using namespace taskmon::detail;

namespace {

using TimePoint = std::chrono::steady_clock::time_point;
const TimePoint t0{std::chrono::hours{1000}};  // any fixed instant: the decisions read no clock

RestartHistory<TimePoint> history(const std::vector<TimePoint>& window, int consecutive = 0) {
    RestartHistory<TimePoint> h;
    h.window = window;
    h.consecutive = consecutive;
    return h;
}

}  // namespace

TEST_CASE("route_failure: temporary, disabled and factory-less components end; fatal gives up; a unit absorbs",
          "[restart_decision]") {
    const FailureFacts plain;
    CHECK(route_failure(plain, FailureClass::counted) == FailureRoute::restart);
    CHECK(route_failure(plain, FailureClass::not_counted) == FailureRoute::restart);
    CHECK(route_failure(plain, FailureClass::fatal) == FailureRoute::gives_up);
    CHECK(route_failure({.restart_type = RestartType::temporary}, FailureClass::fatal) == FailureRoute::ends_temporary);
    CHECK(route_failure({.enabled = false}, FailureClass::counted) == FailureRoute::ends_disabled);
    CHECK(route_failure({.has_factory = false}, FailureClass::counted) == FailureRoute::ends_without_factory);
    // A fatal failure of a quarantine trial reopens the breaker (decide_restart), it does not give up again.
    CHECK(route_failure({.in_trial = true}, FailureClass::fatal) == FailureRoute::restart);
    CHECK(route_failure({.joins_group_restart = true}, FailureClass::counted) == FailureRoute::joins_group_restart);
    // Ending comes first: a disabled member is not restarted by joining its unit either.
    CHECK(route_failure({.enabled = false, .joins_group_restart = true}, FailureClass::counted) ==
          FailureRoute::ends_disabled);
    static_assert(route_failure(FailureFacts{}, FailureClass::counted) == FailureRoute::restart);
}

TEST_CASE("decide_restart: exponential backoff from the consecutive count, restart time from now",
          "[restart_decision]") {
    const RestartPolicy policy{.base_backoff = 2s, .max_backoff = 60s};
    const std::vector<TimePoint> none;
    const auto first = decide_restart(history(none), policy, true, t0, std::nullopt);
    REQUIRE(std::holds_alternative<RestartAt<TimePoint>>(first));
    CHECK(std::get<RestartAt<TimePoint>>(first).attempt == 1);
    CHECK(std::get<RestartAt<TimePoint>>(first).delay == 2s);
    CHECK(std::get<RestartAt<TimePoint>>(first).at == t0 + 2s);
    const auto fourth = decide_restart(history(none, 3), policy, true, t0, std::nullopt);
    CHECK(std::get<RestartAt<TimePoint>>(fourth).attempt == 4);
    CHECK(std::get<RestartAt<TimePoint>>(fourth).delay == 16s);
}

TEST_CASE("decide_restart: the window limit holds when the restart would happen, not when it is decided",
          "[restart_decision]") {
    const RestartPolicy policy{.max_restart_attempts = 2, .restart_window = 10s, .base_backoff = 4s, .max_backoff = 4s};
    // Two restarts 7 s and 3 s ago: the one decided now would happen in 4 s, when the older one is 11 s old.
    const std::vector<TimePoint> two{t0 - 7s, t0 - 3s};
    CHECK(std::holds_alternative<RestartAt<TimePoint>>(decide_restart(history(two), policy, true, t0, std::nullopt)));
    // 5 s ago instead: still within the window at t0 + 4 s: the limit is reached.
    const std::vector<TimePoint> full{t0 - 5s, t0 - 3s};
    const auto refused = decide_restart(history(full), policy, true, t0, std::nullopt);
    REQUIRE(std::holds_alternative<GiveUp>(refused));
    CHECK(std::get<GiveUp>(refused).mode == GiveUpMode::stop);
    CHECK(std::get<GiveUp>(refused).limit == 2);
    // A failure that does not count is restarted whatever the window holds.
    CHECK(std::holds_alternative<RestartAt<TimePoint>>(decide_restart(history(full), policy, false, t0, std::nullopt)));
}

TEST_CASE("decide_restart: the jitter draw is an input; a missing draw means the nominal backoff",
          "[restart_decision]") {
    const RestartPolicy policy{.base_backoff = 2s, .jitter = taskmon::JitterKind::full};
    const std::vector<TimePoint> none;
    CHECK(needs_draw(history(none), policy));
    CHECK(std::get<RestartAt<TimePoint>>(decide_restart(history(none), policy, true, t0, 0.25)).delay == 500ms);
    CHECK(std::get<RestartAt<TimePoint>>(decide_restart(history(none), policy, true, t0, std::nullopt)).delay == 2s);
    CHECK_FALSE(needs_draw(history(none), RestartPolicy{}));
    auto trial = history(none);
    trial.in_trial = true;
    CHECK_FALSE(needs_draw(trial, policy));  // a failed trial reopens the breaker: no backoff to jitter
}

TEST_CASE("decide_restart: quarantine opens at the limit, reopens after a failed trial with the cooldown doubled",
          "[restart_decision]") {
    const RestartPolicy policy{.max_restart_attempts = 1,
                               .give_up_mode = GiveUpMode::quarantine,
                               .quarantine_cooldown = 30s,
                               .max_quarantine_cooldown = 100s};
    const std::vector<TimePoint> one{t0 - 1s};
    const auto opened = decide_restart(history(one), policy, true, t0, std::nullopt);
    REQUIRE(std::holds_alternative<QuarantineUntil<TimePoint>>(opened));
    CHECK(std::get<QuarantineUntil<TimePoint>>(opened).cooldown == 30s);
    CHECK(std::get<QuarantineUntil<TimePoint>>(opened).until == t0 + 30s);
    auto trial = history({});
    trial.in_trial = true;
    trial.quarantine_cooldown = 60s;
    const auto reopened = decide_restart(trial, policy, true, t0, std::nullopt);
    REQUIRE(std::holds_alternative<QuarantineUntil<TimePoint>>(reopened));
    CHECK(std::get<QuarantineUntil<TimePoint>>(reopened).cooldown == 100s);  // 120 s, capped
    CHECK(next_quarantine_cooldown(policy, 0s) == 30s);
    CHECK(next_quarantine_cooldown(policy, 30s) == 60s);
}

TEST_CASE("give_up_decision: a fatal failure gives up with limit 0; escalate keeps its mode", "[restart_decision]") {
    const auto fatal = give_up_decision(RestartPolicy{.give_up_mode = GiveUpMode::escalate}, 0s, true, t0);
    REQUIRE(std::holds_alternative<GiveUp>(fatal));
    CHECK(std::get<GiveUp>(fatal).mode == GiveUpMode::escalate);
    CHECK(std::get<GiveUp>(fatal).limit == 0);
    const auto full = give_up_decision(RestartPolicy{.max_restart_attempts = 7}, 0s, false, t0);
    CHECK(std::get<GiveUp>(full).limit == 7);
}

TEST_CASE("restarts_within and forget_restarts_before count and drop by the restart window", "[restart_decision]") {
    std::vector<TimePoint> window{t0 - 20s, t0 - 10s, t0 - 5s, t0};
    CHECK(restarts_within<TimePoint>(window, 10s, t0) == 2);  // (t0 - 10 s, t0]
    CHECK(restarts_within<TimePoint>(window, 10s, t0 + 6s) == 1);
    forget_restarts_before(window, std::chrono::milliseconds{10s}, t0);
    CHECK(window == std::vector<TimePoint>{t0 - 5s, t0});
}

TEST_CASE("remember_restart appends, and forgets the oldest past unlimited_window_memory", "[restart_decision]") {
    std::vector<TimePoint> window;
    remember_restart(window, t0);
    remember_restart(window, t0 + 1s);
    CHECK(window == std::vector<TimePoint>{t0, t0 + 1s});
    window.assign(unlimited_window_memory, t0);
    window.front() = t0 - 1s;
    remember_restart(window, t0 + 2s);
    CHECK(window.size() == unlimited_window_memory);
    CHECK(window.front() == t0);  // the oldest went
    CHECK(window.back() == t0 + 2s);
}
