// Tests for taskmon/detail/liveness_check.hpp: the liveness check of an instance, decided from values alone.
#include <taskmon/detail/liveness_check.hpp>

#include "taskmon_catch.hpp"

#include <chrono>
#include <optional>

using namespace std::chrono_literals;
using taskmon::RestartPolicy;
using namespace taskmon::detail;

namespace {

using TimePoint = std::chrono::steady_clock::time_point;
const TimePoint t0{std::chrono::hours{1000}};

LivenessFacts<TimePoint> watched(std::optional<TimePoint> ready) {
    LivenessFacts<TimePoint> f;
    f.started = t0;
    f.ready = ready;
    f.watched = true;
    f.last_beat = ready.value_or(t0);
    return f;
}

}  // namespace

TEST_CASE("evaluate_liveness: the startup deadline, before and after", "[liveness_check]") {
    const RestartPolicy policy{.watchdog_timeout = 5s, .startup_timeout = 30s};
    const auto before = evaluate_liveness(watched(std::nullopt), policy, t0 + 10s);
    CHECK(before.missed == LivenessMiss::none);
    CHECK(before.next == t0 + 30s);
    const auto after = evaluate_liveness(watched(std::nullopt), policy, t0 + 30s);
    CHECK(after.missed == LivenessMiss::startup);
    CHECK(after.timeout == 30s);
    CHECK_FALSE(after.next);
}

TEST_CASE("evaluate_liveness: the watchdog from the last heartbeat, idle_timeout while idle, extended deadlines",
          "[liveness_check]") {
    const RestartPolicy policy{.watchdog_timeout = 5s, .idle_timeout = 60s};
    auto f = watched(t0);
    f.last_beat = t0 + 2s;
    CHECK(evaluate_liveness(f, policy, t0 + 4s).next == t0 + 7s);
    const auto missed = evaluate_liveness(f, policy, t0 + 7s);
    CHECK(missed.missed == LivenessMiss::watchdog);
    CHECK(missed.timeout == 5s);
    // Idle: the idle deadline, but looked at again within one watchdog_timeout (it may turn busy unannounced).
    f.idle = true;
    const auto idle = evaluate_liveness(f, policy, t0 + 7s);
    CHECK(idle.missed == LivenessMiss::none);
    CHECK(idle.next == t0 + 12s);
    CHECK(evaluate_liveness(f, policy, t0 + 62s).missed == LivenessMiss::watchdog);
    CHECK(evaluate_liveness(f, policy, t0 + 62s).timeout == 60s);
    // An extended deadline later than the heartbeat's wins.
    f.idle = false;
    f.extended_until = t0 + 20s;
    CHECK(evaluate_liveness(f, policy, t0 + 10s).missed == LivenessMiss::none);
    CHECK(evaluate_liveness(f, policy, t0 + 10s).next == t0 + 20s);
    CHECK(evaluate_liveness(f, policy, t0 + 20s).missed == LivenessMiss::watchdog);
}

TEST_CASE("evaluate_liveness: a trial's probation closes the breaker after reset_backoff_after ready",
          "[liveness_check]") {
    const RestartPolicy policy{.reset_backoff_after = 10s};
    LivenessFacts<TimePoint> f;  // no liveness record: ready when it started
    f.started = t0;
    f.ready = t0;
    f.in_trial = true;
    const auto during = evaluate_liveness(f, policy, t0 + 3s);
    CHECK_FALSE(during.breaker_closes);
    CHECK(during.next == t0 + 10s);
    CHECK(evaluate_liveness(f, policy, t0 + 10s).breaker_closes);
    f.in_trial = false;
    CHECK_FALSE(evaluate_liveness(f, policy, t0 + 10s).next);  // nothing to watch
}

TEST_CASE("liveness_deadline: startup while not ready, then the heartbeat's, idle's or an extended one",
          "[liveness_check]") {
    const RestartPolicy policy{.watchdog_timeout = 5s, .idle_timeout = 60s, .startup_timeout = 30s};
    const auto startup = liveness_deadline(watched(std::nullopt), policy);
    REQUIRE(startup);
    CHECK(startup->at == t0 + 30s);
    CHECK(startup->miss == LivenessMiss::startup);
    CHECK(startup->timeout == 30s);

    auto f = watched(t0 + 1s);
    f.last_beat = t0 + 2s;
    const auto beat = liveness_deadline(f, policy);
    REQUIRE(beat);
    CHECK(beat->at == t0 + 7s);
    CHECK(beat->miss == LivenessMiss::watchdog);
    CHECK(beat->timeout == 5s);
    f.idle = true;
    CHECK(liveness_deadline(f, policy)->at == t0 + 62s);
    CHECK(liveness_deadline(f, policy)->timeout == 60s);
    f.idle = false;
    f.extended_until = t0 + 20s;
    CHECK(liveness_deadline(f, policy)->at == t0 + 20s);
    f.extended_until = t0 + 3s;  // an extension the heartbeat's deadline already passed: the later one holds
    CHECK(liveness_deadline(f, policy)->at == t0 + 7s);
}

TEST_CASE("liveness_deadline: none without a watch, a timeout, or an idle_timeout while idle", "[liveness_check]") {
    auto unwatched = watched(t0);
    unwatched.watched = false;
    CHECK_FALSE(liveness_deadline(unwatched, RestartPolicy{.watchdog_timeout = 5s}));
    CHECK_FALSE(liveness_deadline(watched(t0), RestartPolicy{}));
    CHECK_FALSE(liveness_deadline(watched(std::nullopt), RestartPolicy{.watchdog_timeout = 5s}));
    auto idle = watched(t0);
    idle.idle = true;
    CHECK_FALSE(liveness_deadline(idle, RestartPolicy{.watchdog_timeout = 5s}));
    // Idle with no idle_timeout has no deadline, yet the check looks again within one watchdog_timeout.
    CHECK(evaluate_liveness(idle, RestartPolicy{.watchdog_timeout = 5s}, t0 + 1s).next == t0 + 6s);
}
