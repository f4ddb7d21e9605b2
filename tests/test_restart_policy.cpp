// Tests for taskmon/restart_policy.hpp: backoff formula, jitter kinds, validation.
#include <taskmon/restart_policy.hpp>

#include "enum_names.hpp"
#include "taskmon_catch.hpp"

#include <chrono>
#include <limits>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

using namespace std::chrono_literals;
using taskmon::JitterKind;
using taskmon::RestartPolicy;
using ns = std::chrono::nanoseconds;

TEST_CASE("Nominal backoff doubles from base and stops at the cap", "[restart_policy]") {
    RestartPolicy policy;
    std::vector<ns> delays;
    for (int k = 1; k <= 8; ++k) {
        delays.push_back(taskmon::nominal_backoff(policy, k));
    }
    CHECK(delays == std::vector<ns>{2s, 4s, 8s, 16s, 32s, 60s, 60s, 60s});
    // A huge k neither overflows nor exceeds the cap.
    CHECK(taskmon::nominal_backoff(policy, 100000) == 60s);
}

TEST_CASE("Backoff honours the multiplier and millisecond durations", "[restart_policy]") {
    RestartPolicy policy{.base_backoff = 1500ms, .max_backoff = 10s, .backoff_multiplier = 1.5};
    CHECK(taskmon::nominal_backoff(policy, 1) == 1500ms);
    CHECK(taskmon::nominal_backoff(policy, 2) == 2250ms);
    CHECK(taskmon::nominal_backoff(policy, 3) == 3375ms);
    CHECK(taskmon::nominal_backoff(policy, 10) == 10s);
    RestartPolicy zero{.base_backoff = 0ms, .max_backoff = 0ms};
    CHECK(taskmon::nominal_backoff(zero, 5) == 0s);
}

TEST_CASE("Jitter stays within each kind's bounds and under the cap", "[restart_policy]") {
    auto random = taskmon::seeded_random_source(42);
    for (int k = 1; k <= 10; ++k) {
        RestartPolicy policy;
        const auto d = taskmon::nominal_backoff(policy, k);
        policy.jitter = JitterKind::full;
        for (int i = 0; i < 100; ++i) {
            const auto j = taskmon::jittered_backoff(policy, k, 0s, random);
            CHECK(j >= 0s);
            CHECK(j <= d);
        }
        policy.jitter = JitterKind::equal;
        for (int i = 0; i < 100; ++i) {
            const auto j = taskmon::jittered_backoff(policy, k, 0s, random);
            CHECK(j >= d / 2);
            CHECK(j <= d);
        }
        policy.jitter = JitterKind::proportional;
        policy.jitter_ratio = 0.2;
        for (int i = 0; i < 100; ++i) {
            const auto j = taskmon::jittered_backoff(policy, k, 0s, random);
            CHECK(j >= ns{static_cast<ns::rep>(0.8 * static_cast<double>(d.count())) - 1});
            CHECK(j <=
                  std::min<ns>(policy.max_backoff, ns{static_cast<ns::rep>(1.2 * static_cast<double>(d.count())) + 1}));
        }
    }
}

TEST_CASE("Decorrelated jitter draws from [base, 3 x previous] capped at max", "[restart_policy]") {
    RestartPolicy policy{.base_backoff = 1s, .max_backoff = 20s, .jitter = JitterKind::decorrelated};
    auto random = taskmon::seeded_random_source(7);
    ns previous = 0s;
    for (int k = 1; k <= 50; ++k) {
        const auto j = taskmon::jittered_backoff(policy, k, previous, random);
        const auto high = k == 1 ? ns{3s} : std::max<ns>(1s, 3 * previous);
        CHECK(j >= 1s);
        CHECK(j <= std::min<ns>(20s, high));
        previous = j;
    }
}

TEST_CASE("The same seed gives the same jitter sequence", "[restart_policy]") {
    RestartPolicy policy{.jitter = JitterKind::full};
    auto a = taskmon::seeded_random_source(123);
    auto b = taskmon::seeded_random_source(123);
    auto c = taskmon::seeded_random_source(124);
    std::vector<ns> sa, sb, sc;
    for (int k = 1; k <= 20; ++k) {
        sa.push_back(taskmon::jittered_backoff(policy, k, 0s, a));
        sb.push_back(taskmon::jittered_backoff(policy, k, 0s, b));
        sc.push_back(taskmon::jittered_backoff(policy, k, 0s, c));
    }
    CHECK(sa == sb);
    CHECK(sa != sc);
}

TEST_CASE("An injected random source is used at the extremes", "[restart_policy]") {
    RestartPolicy policy{.jitter = JitterKind::full};
    CHECK(taskmon::jittered_backoff(policy, 3, 0s, [] { return 0.0; }) == 0s);
    CHECK(taskmon::jittered_backoff(policy, 3, 0s, [] { return 0.5; }) == 4s);
    policy.jitter = JitterKind::proportional;
    policy.jitter_ratio = 1.0;
    // 60 s * (1 + 1.0 * (2 * 0.999 - 1)) would be ~120 s: clamped to max_backoff.
    CHECK(taskmon::jittered_backoff(policy, 8, 0s, [] { return 0.999; }) == 60s);
    policy.jitter = JitterKind::none;
    CHECK(taskmon::jittered_backoff(policy, 2, 0s, [] { return 0.3; }) == 4s);
}

TEST_CASE("jittered_backoff of a draw is pure: NaN or no draw means no jitter, other draws are clamped to [0, 1]",
          "[restart_policy]") {
    const auto nan = std::numeric_limits<double>::quiet_NaN();
    const auto inf = std::numeric_limits<double>::infinity();
    struct Row {
        JitterKind jitter;
        std::optional<double> draw;
        ns delay;  // k = 3: nominal 8 s
    };
    for (const auto& [jitter, draw, delay] : std::vector<Row>{{JitterKind::full, std::nullopt, 8s},
                                                              {JitterKind::full, nan, 8s},
                                                              {JitterKind::full, -nan, 8s},
                                                              {JitterKind::full, 0.5, 4s},
                                                              {JitterKind::full, 2.0, 8s},
                                                              {JitterKind::full, inf, 8s},
                                                              {JitterKind::full, -inf, 0s},
                                                              {JitterKind::equal, nan, 8s},
                                                              {JitterKind::equal, -3.0, 4s},
                                                              {JitterKind::decorrelated, nan, 8s},
                                                              {JitterKind::decorrelated, 1.0, 6s},
                                                              {JitterKind::proportional, nan, 8s},
                                                              {JitterKind::proportional, 1.0, 12s},
                                                              {JitterKind::none, 0.1, 8s}}) {
        INFO(taskmon::to_string(jitter) << " draw " << (draw ? std::to_string(*draw) : std::string{"none"}));
        const RestartPolicy policy{.jitter = jitter, .jitter_ratio = 0.5};
        CHECK(taskmon::jittered_backoff(policy, 3, 2s, draw) == delay);
    }
    // The RandomSource form: a NaN from the source is no jitter; a source is not called without jitter.
    const RestartPolicy full{.jitter = JitterKind::full};
    CHECK(taskmon::jittered_backoff(full, 3, 0s, [nan] { return nan; }) == 8s);
    int calls = 0;
    CHECK(taskmon::jittered_backoff(RestartPolicy{}, 3, 0s, [&calls] { return ++calls, 0.5; }) == 8s);
    CHECK(calls == 0);
    CHECK_THROWS_AS(taskmon::jittered_backoff(full, 3, 0s, []() -> double { throw std::runtime_error("no"); }),
                    std::runtime_error);
}

TEST_CASE("validate() names the offending field", "[restart_policy]") {
    const auto message = [](RestartPolicy p) -> std::string {
        try {
            taskmon::validate(p, "policy");
        } catch (const std::invalid_argument& e) {
            return e.what();
        }
        return "valid";
    };
    CHECK(message({}) == "valid");
    CHECK(message({.max_restart_attempts = 0}) == "valid");
    CHECK(message({.max_restart_attempts = -3}) == "policy: max_restart_attempts must not be negative");
    CHECK(message({.restart_window = 0s}) == "policy: restart_window must be positive");
    CHECK(message({.base_backoff = 3s, .max_backoff = 2s}) == "policy: max_backoff must not be less than base_backoff");
    CHECK(message({.backoff_multiplier = 0.99}) == "policy: backoff_multiplier must be a finite number >= 1");
    CHECK(message({.jitter_ratio = 2.0}) == "policy: jitter_ratio must be in [0, 1]");
    CHECK(message({.shutdown_timeout = -1ms}) == "policy: shutdown_timeout must not be negative");
}

TEST_CASE("validate() rejects durations too long to convert to nanoseconds", "[restart_policy]") {
    const auto message = [](RestartPolicy p) -> std::string {
        try {
            taskmon::validate(p, "policy");
        } catch (const std::invalid_argument& e) {
            return e.what();
        }
        return "valid";
    };
    // milliseconds::max() as "forever" used to overflow when converted to nanoseconds (UB; a negative timeout).
    using std::chrono::milliseconds;
    CHECK(message({.shutdown_timeout = milliseconds::max()}) == "policy: shutdown_timeout must not exceed 100 years");
    CHECK(message({.restart_window = milliseconds::max()}) == "policy: restart_window must not exceed 100 years");
    CHECK(message({.reset_backoff_after = milliseconds::max()}) ==
          "policy: reset_backoff_after must not exceed 100 years");
    CHECK(message({.max_backoff = milliseconds::max()}) == "policy: max_backoff must not exceed 100 years");
    CHECK(message({.base_backoff = milliseconds::max(), .max_backoff = milliseconds::max()}) ==
          "policy: base_backoff must not exceed 100 years");
    CHECK(message({.restart_window = std::chrono::hours{24 * 365 * 100}}) == "valid");
}

TEST_CASE("fmt formats every RestartType and JitterKind as its name", "[restart_policy]") {
    taskmon_test::check_enum_names(taskmon::RestartType::permanent, taskmon::RestartType::temporary);
    taskmon_test::check_enum_names(JitterKind::none, JitterKind::proportional);
    CHECK(fmt::format("{} {}", taskmon::RestartType::transient, JitterKind::decorrelated) == "transient decorrelated");
}

TEST_CASE("unlimited_restart_attempts is a valid max_restart_attempts", "[restart_policy]") {
    static_assert(taskmon::unlimited_restart_attempts == std::numeric_limits<int>::max());
    CHECK_NOTHROW(taskmon::validate(RestartPolicy{.max_restart_attempts = taskmon::unlimited_restart_attempts}));
}
