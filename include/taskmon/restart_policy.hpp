// taskmon — coroutine supervision for standalone Asio.
// SPDX-License-Identifier: MIT
//
// RestartPolicy: when and how fast a supervised component is restarted, and when the monitor gives up on it.
#pragma once

#include <taskmon/detail/enum_formatter.hpp>
#include <taskmon/duration.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <exception>
#include <functional>
#include <limits>
#include <memory>
#include <optional>
#include <random>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>

namespace taskmon {

/// What a normal return of a component means (Erlang's child restart types).
enum class RestartType {
    permanent,  ///< always restarted, also after a normal return
    transient,  ///< restarted after a failure or unexpected cancellation; a normal return means done (default)
    temporary,  ///< never restarted
};

/// How the computed backoff delay d is randomised. The result is always clamped to [0, max_backoff].
enum class JitterKind {
    none,          ///< d
    full,          ///< U[0, d]
    equal,         ///< d/2 + U[0, d/2]
    decorrelated,  ///< min(max_backoff, U[base_backoff, 3 * previous delay])
    proportional,  ///< d * (1 + U[-jitter_ratio, +jitter_ratio])
};

/// What happens when a component exceeds its restart limit (or a failure is classified fatal).
enum class GiveUpMode {
    stop,        ///< state gave_up; no further automatic restarts until reset() or restart() (default)
    quarantine,  ///< a circuit breaker: after quarantine_cooldown one trial instance starts (see RestartPolicy)
    escalate,    ///< state gave_up, and the give-up is handed to the monitor's owner (async_wait_escalation)
};

/// How a failure counts, as decided by RestartPolicy::classify_failure.
enum class FailureClass : std::uint8_t {
    counted,      ///< restarted with backoff and counted against the restart window (default)
    not_counted,  ///< restarted with backoff, not counted against the restart window
    fatal,        ///< not restarted: the component gives up at once (in its policy's GiveUpMode)
};

/// Decides how a failure counts. Receives the instance's exception: a std::system_error with
/// asio::error::operation_aborted for an unexpected cancellation, a taskmon::LivenessTimeout for a missed
/// watchdog or startup deadline. Called on the monitor's strand, never under the monitor's lock; the monitor's
/// strand waits for it, so it should decide quickly (it may call the monitor: its mutating calls post their work).
/// An exception it throws is logged and the failure counts as FailureClass::counted.
using FailureClassifier = std::function<FailureClass(const std::exception_ptr&)>;

namespace detail {

/// True if `error` holds an exception of (a type derived from) one of `Exceptions`.
template <typename... Exceptions>
[[nodiscard]] bool holds_any_of(const std::exception_ptr& error) {
    if constexpr (sizeof...(Exceptions) == 0) {
        return false;
    } else {
        return [&]<typename First, typename... Rest>(std::type_identity<First>, std::type_identity<Rest>...) {
            try {
                std::rethrow_exception(error);
            } catch (const First&) {
                return true;
            } catch (...) {
                return holds_any_of<Rest...>(error);
            }
        }(std::type_identity<Exceptions>{}...);
    }
}

}  // namespace detail

/// A classifier giving `result` to failures whose exception is (derived from) one of `Exceptions`, and
/// FailureClass::counted to every other failure:
///   .classify_failure = taskmon::classify_as<taskmon::FailureClass::fatal, std::invalid_argument>()
template <FailureClass result, typename... Exceptions>
[[nodiscard]] FailureClassifier classify_as() {
    static_assert(sizeof...(Exceptions) > 0, "classify_as needs at least one exception type");
    return [](const std::exception_ptr& error) {
        return error && detail::holds_any_of<Exceptions...>(error) ? result : FailureClass::counted;
    };
}

[[nodiscard]] constexpr std::string_view to_string(GiveUpMode mode) noexcept {
    switch (mode) {
        case GiveUpMode::stop: return "stop";
        case GiveUpMode::quarantine: return "quarantine";
        case GiveUpMode::escalate: return "escalate";
    }
    return "unknown";
}

[[nodiscard]] constexpr std::string_view to_string(FailureClass kind) noexcept {
    switch (kind) {
        case FailureClass::counted: return "counted";
        case FailureClass::not_counted: return "not_counted";
        case FailureClass::fatal: return "fatal";
    }
    return "unknown";
}

/// The enumerator's name ("transient"); fmt::format("{}", type) prints the same.
[[nodiscard]] constexpr std::string_view to_string(RestartType type) noexcept {
    switch (type) {
        case RestartType::permanent: return "permanent";
        case RestartType::transient: return "transient";
        case RestartType::temporary: return "temporary";
    }
    return "unknown";
}

/// The enumerator's name ("decorrelated"); fmt::format("{}", kind) prints the same.
[[nodiscard]] constexpr std::string_view to_string(JitterKind kind) noexcept {
    switch (kind) {
        case JitterKind::none: return "none";
        case JitterKind::full: return "full";
        case JitterKind::equal: return "equal";
        case JitterKind::decorrelated: return "decorrelated";
        case JitterKind::proportional: return "proportional";
    }
    return "unknown";
}

/// The max_restart_attempts that never gives up: no number of restarts within the restart_window is refused, so
/// the component is restarted (with backoff) for as long as it keeps failing. The monitor still remembers when
/// each automatic restart of the last restart_window happened (ComponentStats::restarts_in_window), 8 bytes
/// each, up to the latest 10,000 (restarts_in_window saturates there).
inline constexpr int unlimited_restart_attempts = std::numeric_limits<int>::max();

struct PolicyOverrides;

/// Restart policy of a monitor (its default) or of one component. Designed for designated initializers, which
/// must name fields in this order (defaults after the `=`):
///   max_restart_attempts = 5, restart_window = 1h, base_backoff = 2s, max_backoff = 60s,
///   backoff_multiplier = 2.0, jitter = none, jitter_ratio = 0.0, reset_backoff_after = 10min,
///   restart_type = transient, shutdown_timeout = 5s, watchdog_timeout = 0, idle_timeout = 0, startup_timeout = 0,
///   give_up_mode = stop, quarantine_cooldown = 15min, max_quarantine_cooldown = 4h, classify_failure = {}
///   taskmon::RestartPolicy{.max_restart_attempts = 5, .base_backoff = 2s, .max_backoff = 60s}
/// Durations take any std::chrono::duration (taskmon::Duration): 2s, 500ms, 250us, 1.5s.
/// Presets start from a known shape, and with() changes some fields in any order:
///   taskmon::RestartPolicy::connection().with({.max_backoff = 10s, .watchdog_timeout = 30s})
/// A component's policy passed as a RestartPolicy replaces the monitor's whole policy; a braced list of some
/// fields (PolicyOverrides, taskmon/policy_overrides.hpp) is applied on top of it.
/// The k-th consecutive restart waits min(max_backoff, base_backoff * backoff_multiplier^(k-1)), then jitter.
/// k resets to 0 once a component has been ready (see startup_timeout) for reset_backoff_after without failing.
/// A restart is refused (the component gives up, in give_up_mode) when, at the time it would happen (after its
/// backoff), max_restart_attempts counted restarts already happened within the restart_window before it; so no
/// restart_window ever holds more than max_restart_attempts of them, however the backoff varies. Counted: the
/// automatic restarts after a counted failure (or a permanent component's return), at the time their factory is
/// called. Not counted: manual restart() / reset(), not_counted failures, quarantine trials, and the restart of a
/// group member that its group restarts for another member's failure. unlimited_restart_attempts never gives up.
///
/// Liveness (all off by default; a component reports through its ComponentContext, see component_context.hpp):
/// - startup_timeout > 0: the instance must call ready() within it; until then it is not ready. With 0 an
///   instance is ready as soon as it starts.
/// - watchdog_timeout > 0: once ready, a busy instance must heartbeat() at least this often; an idle() one at
///   least every idle_timeout (0: never, so a loop legitimately waiting for work never trips it).
///   extend_deadline(d) pushes the deadline to at least now + d for a long operation.
/// A missed deadline cancels the instance and counts as a failure with reason "watchdog timeout" or "startup
/// timeout", through the normal backoff and window.
struct RestartPolicy {
    int max_restart_attempts = 5;  ///< >= 0; 0 gives up at the first failure; unlimited_restart_attempts never
    Duration restart_window = std::chrono::hours{1};
    Duration base_backoff = std::chrono::seconds{2};
    Duration max_backoff = std::chrono::seconds{60};
    double backoff_multiplier = 2.0;
    JitterKind jitter = JitterKind::none;
    double jitter_ratio = 0.0;  ///< used by JitterKind::proportional, in [0, 1]
    Duration reset_backoff_after = std::chrono::minutes{10};
    RestartType restart_type = RestartType::transient;
    /// How long a requested stop (close, disable, restart, remove_and_wait, a liveness timeout) waits for the
    /// instance to exit before it is reported unresponsive (stop_timeout).
    Duration shutdown_timeout = std::chrono::seconds{5};

    Duration watchdog_timeout{};  ///< 0: no watchdog
    Duration idle_timeout{};      ///< watchdog deadline while idle(); 0: none
    Duration startup_timeout{};   ///< 0: ready at start; else ready() must come within it

    GiveUpMode give_up_mode = GiveUpMode::stop;
    /// quarantine: the first cooldown before a trial instance; doubled at each failed trial, up to the max.
    /// A trial that stays ready for reset_backoff_after closes the breaker and clears the window.
    Duration quarantine_cooldown = std::chrono::minutes{15};
    Duration max_quarantine_cooldown = std::chrono::hours{4};

    /// Empty: every failure is FailureClass::counted.
    FailureClassifier classify_failure{};

    /// The defaults with restart_type permanent: restarted after every end, a normal return too (a server loop
    /// that must always run).
    [[nodiscard]] static RestartPolicy permanent() { return RestartPolicy{.restart_type = RestartType::permanent}; }
    /// The defaults (restart_type transient): restarted after a failure; a normal return means done.
    [[nodiscard]] static RestartPolicy transient() { return RestartPolicy{}; }
    /// The defaults with restart_type temporary: never restarted; its failure is reported, and that is all.
    [[nodiscard]] static RestartPolicy temporary() { return RestartPolicy{.restart_type = RestartType::temporary}; }
    /// A component holding a connection to a service that may be away for a while (a database, a broker): never
    /// gives up, restarted after every end (permanent), backing off from 100 ms to at most 30 s with full jitter,
    /// so that a fleet reconnecting after an outage spreads out instead of arriving at once.
    [[nodiscard]] static RestartPolicy connection() {
        return RestartPolicy{.max_restart_attempts = unlimited_restart_attempts,
                             .base_backoff = std::chrono::milliseconds{100},
                             .max_backoff = std::chrono::seconds{30},
                             .jitter = JitterKind::full,
                             .restart_type = RestartType::permanent};
    }

    /// This policy with the fields `overrides` sets replaced (taskmon/policy_overrides.hpp):
    ///   RestartPolicy::permanent().with({.watchdog_timeout = 10s})
    [[nodiscard]] RestartPolicy with(const PolicyOverrides& overrides) const&;
    [[nodiscard]] RestartPolicy with(const PolicyOverrides& overrides) &&;
};

/// Throws std::invalid_argument naming the first invalid field of `policy`; `context` prefixes the message
/// (e.g. the component name).
inline void validate(const RestartPolicy& policy, std::string_view context = "RestartPolicy") {
    const auto fail = [&](std::string_view field, std::string_view why) {
        throw std::invalid_argument(std::string{context} + ": " + std::string{field} + " " + std::string{why});
    };
    using std::chrono::nanoseconds;
    if (policy.max_restart_attempts < 0) fail("max_restart_attempts", "must not be negative");
    if (policy.restart_window <= nanoseconds::zero()) fail("restart_window", "must be positive");
    if (policy.base_backoff < nanoseconds::zero()) fail("base_backoff", "must not be negative");
    if (policy.max_backoff < nanoseconds::zero()) fail("max_backoff", "must not be negative");
    if (policy.max_backoff < policy.base_backoff) fail("max_backoff", "must not be less than base_backoff");
    if (!(policy.backoff_multiplier >= 1.0) || !std::isfinite(policy.backoff_multiplier)) {
        fail("backoff_multiplier", "must be a finite number >= 1");
    }
    if (!(policy.jitter_ratio >= 0.0 && policy.jitter_ratio <= 1.0)) fail("jitter_ratio", "must be in [0, 1]");
    if (policy.reset_backoff_after < nanoseconds::zero()) fail("reset_backoff_after", "must not be negative");
    if (policy.shutdown_timeout < nanoseconds::zero()) fail("shutdown_timeout", "must not be negative");
    if (policy.watchdog_timeout < nanoseconds::zero()) fail("watchdog_timeout", "must not be negative");
    if (policy.idle_timeout < nanoseconds::zero()) fail("idle_timeout", "must not be negative");
    if (policy.idle_timeout > nanoseconds::zero() && policy.watchdog_timeout == nanoseconds::zero()) {
        fail("idle_timeout", "needs a watchdog_timeout");
    }
    if (policy.startup_timeout < nanoseconds::zero()) fail("startup_timeout", "must not be negative");
    if (policy.quarantine_cooldown <= nanoseconds::zero()) fail("quarantine_cooldown", "must be positive");
    if (policy.max_quarantine_cooldown < policy.quarantine_cooldown) {
        fail("max_quarantine_cooldown", "must not be less than quarantine_cooldown");
    }
    // Durations are added to clock readings: bound them so that no deadline overflows.
    constexpr auto longest = longest_duration_setting;
    const auto too_long = [&](std::string_view field, nanoseconds value) {
        if (value > longest) fail(field, "must not exceed 100 years");
    };
    too_long("restart_window", policy.restart_window);
    too_long("base_backoff", policy.base_backoff);
    too_long("max_backoff", policy.max_backoff);
    too_long("reset_backoff_after", policy.reset_backoff_after);
    too_long("shutdown_timeout", policy.shutdown_timeout);
    too_long("watchdog_timeout", policy.watchdog_timeout);
    too_long("idle_timeout", policy.idle_timeout);
    too_long("startup_timeout", policy.startup_timeout);
    too_long("max_quarantine_cooldown", policy.max_quarantine_cooldown);
    switch (policy.jitter) {
        case JitterKind::none:
        case JitterKind::full:
        case JitterKind::equal:
        case JitterKind::decorrelated:
        case JitterKind::proportional: break;
        default: fail("jitter", "is not a JitterKind");
    }
    switch (policy.restart_type) {
        case RestartType::permanent:
        case RestartType::transient:
        case RestartType::temporary: break;
        default: fail("restart_type", "is not a RestartType");
    }
    switch (policy.give_up_mode) {
        case GiveUpMode::stop:
        case GiveUpMode::quarantine:
        case GiveUpMode::escalate: break;
        default: fail("give_up_mode", "is not a GiveUpMode");
    }
}

/// A source of uniform random numbers in [0, 1). Called on the monitor's strand, one call at a time, never under
/// the monitor's lock, only for a restart whose policy has jitter. The monitor clamps a result outside [0, 1] to
/// it; a NaN, or an exception the source throws, is logged (error level) and that restart waits its nominal
/// backoff (no jitter).
using RandomSource = std::function<double()>;

/// A reproducible RandomSource (std::mt19937_64 seeded with `seed`).
[[nodiscard]] inline RandomSource seeded_random_source(std::uint64_t seed) {
    auto engine = std::make_shared<std::mt19937_64>(seed);
    return [engine] { return std::uniform_real_distribution<double>{0.0, 1.0}(*engine); };
}

/// A RandomSource seeded from std::random_device (the monitor's default).
[[nodiscard]] inline RandomSource nondeterministic_random_source() {
    std::random_device device;
    return seeded_random_source((static_cast<std::uint64_t>(device()) << 32U) ^ device());
}

/// The un-jittered delay before the k-th consecutive restart (k >= 1).
[[nodiscard]] inline std::chrono::nanoseconds nominal_backoff(const RestartPolicy& policy, int k) {
    using ns = std::chrono::nanoseconds;
    const double base = static_cast<double>(ns{policy.base_backoff}.count());
    const double cap = static_cast<double>(ns{policy.max_backoff}.count());
    const double exponent = static_cast<double>(std::max(k, 1) - 1);
    const double raw = base * std::pow(policy.backoff_multiplier, exponent);
    const double delay = std::isfinite(raw) ? std::min(cap, raw) : cap;
    return ns{static_cast<ns::rep>(delay)};
}

/// True when a crash loop under `policy` gives up before any restart waits the full max_backoff: the
/// max_restart_attempts restarts all fit in one restart_window and the last of them still waits less than
/// max_backoff (the defaults do: 2, 4, 8, 16, 32 s, then the 6th restart is refused). The monitor logs a
/// warning for such a policy, since max_backoff then never applies.
[[nodiscard]] inline bool gives_up_before_max_backoff(const RestartPolicy& policy) {
    const int attempts = policy.max_restart_attempts;
    constexpr int longest_check = 10'000;  // beyond it (an unusual policy) no warning is given
    if (attempts > longest_check || policy.base_backoff == policy.max_backoff) {
        return false;
    }
    if (attempts == 0) {
        return true;
    }
    std::chrono::nanoseconds total{};
    for (int k = 1; k <= attempts; ++k) {
        const auto delay = nominal_backoff(policy, k);
        if (delay >= policy.max_backoff) {
            return false;
        }
        total += delay;
        if (total >= policy.restart_window) {
            return false;  // older restarts leave the window before the limit is reached
        }
    }
    return true;
}

/// The delay before the k-th consecutive restart with the policy's jitter applied to the draw `u` and clamped to
/// [0, max_backoff]. `u` is a uniform draw from [0, 1): a finite draw outside [0, 1] is clamped to it; no draw
/// (nullopt) or a NaN means no jitter, the nominal delay. `previous` is the delay actually used before the
/// previous restart (decorrelated jitter). Pure: the same arguments always give the same delay.
[[nodiscard]] inline std::chrono::nanoseconds jittered_backoff(const RestartPolicy& policy, int k,
                                                               std::chrono::nanoseconds previous,
                                                               std::optional<double> u) {
    using ns = std::chrono::nanoseconds;
    const double d = static_cast<double>(nominal_backoff(policy, k).count());
    const double base = static_cast<double>(ns{policy.base_backoff}.count());
    const double cap = static_cast<double>(ns{policy.max_backoff}.count());
    double result = d;
    if (u && !std::isnan(*u)) {
        const double x = std::clamp(*u, 0.0, 1.0);
        switch (policy.jitter) {
            case JitterKind::none: break;
            case JitterKind::full: result = x * d; break;
            case JitterKind::equal: result = d / 2.0 + x * (d / 2.0); break;
            case JitterKind::decorrelated: {
                const double prev = k <= 1 ? base : static_cast<double>(previous.count());
                const double high = std::max(base, 3.0 * prev);
                result = base + x * (high - base);
                break;
            }
            case JitterKind::proportional: result = d * (1.0 + policy.jitter_ratio * (2.0 * x - 1.0)); break;
        }
    }
    // Every operand above is finite and bounded by validate() (durations up to 100 years), so `result` is too.
    result = std::clamp(result, 0.0, cap);
    return ns{static_cast<ns::rep>(result)};
}

/// The same with a draw from `random` (called once if the policy's jitter needs a draw and `random` is not empty).
/// What `random` throws propagates; a NaN it returns means no jitter.
[[nodiscard]] inline std::chrono::nanoseconds jittered_backoff(const RestartPolicy& policy, int k,
                                                               std::chrono::nanoseconds previous,
                                                               const RandomSource& random) {
    std::optional<double> u;
    if (policy.jitter != JitterKind::none && random) {
        u = random();
    }
    return jittered_backoff(policy, k, previous, u);
}

}  // namespace taskmon

// PolicyOverrides, which RestartPolicy::with() takes.
#include <taskmon/policy_overrides.hpp>
