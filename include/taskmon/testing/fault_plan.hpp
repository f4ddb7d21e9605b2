// taskmon — coroutine supervision for standalone Asio.
// SPDX-License-Identifier: MIT
//
// FaultPlan: the faults of a simulated run as data, written as one line to replay them; shrink() finds a smallest
// plan that still makes a run fail.
//
//   auto plan = faults.plan();                         // what a FaultInjector injected
//   std::puts(plan.to_string().c_str());               // "throws_later:db#3+120000000000;hangs:gateway-1#2+5000"
//   FaultInjector replay{sim, FaultPlan::parse(text)};  // the same faults, not drawn
//   auto smallest = shrink(plan, [&](const FaultPlan& p) { return run_fails(seed, p); });
#pragma once

#include <taskmon/testing/manual_time.hpp>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

namespace taskmon::testing {

/// What an injected fault does to an instance.
enum class FaultKind {
    factory_throws,   ///< the factory throws instead of making the instance
    throws_at_start,  ///< the instance throws before it does anything
    throws_later,     ///< the instance throws after a drawn time, if it is still running
    hangs,            ///< the instance does nothing and ignores cancellation for a drawn time, then throws
    stalls,           ///< after a drawn time the instance stops making progress (and heartbeating) until stopped
    slow_stop,        ///< asked to stop, the instance ends a drawn time later
    fault_point,      ///< a TASKMON_MAYBE_FAIL point in the program's own code fired (taskmon/fault_point.hpp)
};

[[nodiscard]] constexpr const char* to_string(FaultKind kind) noexcept {
    switch (kind) {
        case FaultKind::factory_throws: return "factory_throws";
        case FaultKind::throws_at_start: return "throws_at_start";
        case FaultKind::throws_later: return "throws_later";
        case FaultKind::hangs: return "hangs";
        case FaultKind::stalls: return "stalls";
        case FaultKind::slow_stop: return "slow_stop";
        case FaultKind::fault_point: return "fault_point";
    }
    return "unknown";
}

/// The chance of each fault, drawn once per instance (each in [0, 1]), and the longest drawn delay. The faults of
/// an instance are drawn in the order of the fields; an instance whose factory throws draws nothing more, one
/// that throws at start or hangs runs none of the component's code.
struct FaultRates {
    double factory_throws = 0.0;
    double throws_at_start = 0.0;
    double throws_later = 0.0;
    double hangs = 0.0;
    double stalls = 0.0;
    double slow_stop = 0.0;
    /// Delays are drawn uniformly in [1 ns, max_delay]; must be positive.
    std::chrono::nanoseconds max_delay = std::chrono::minutes{10};
};

/// One fault the injector drew.
struct InjectedFault {
    FaultKind kind = FaultKind::throws_at_start;
    std::string component;
    std::uint64_t instance = 0;          ///< the component's instances (factory calls) counted from 1
    ManualClock::time_point drawn_at{};  ///< virtual time of the draw (the factory call)
    std::chrono::nanoseconds delay{};    ///< throws_later, hangs, stalls, slow_stop: the drawn time
};

/// The faults of a run, in the order they were injected. Its text form (to_string, parse) is one line:
/// entries `kind:component#instance` separated by `;`, with `+delay` in nanoseconds for the kinds that draw one;
/// `%`, `;`, `#`, `+` and `:` in a name are written as `%25`, `%3B`, `%23`, `%2B`, `%3A`.
struct FaultPlan {
    std::vector<InjectedFault> faults;

    [[nodiscard]] std::string to_string() const {
        std::string out;
        for (const auto& f : faults) {
            if (!out.empty()) {
                out += ';';
            }
            out += taskmon::testing::to_string(f.kind);
            out += ':';
            for (const char c : f.component) {
                switch (c) {
                    case '%': out += "%25"; break;
                    case ';': out += "%3B"; break;
                    case '#': out += "%23"; break;
                    case '+': out += "%2B"; break;
                    case ':': out += "%3A"; break;
                    default: out += c;
                }
            }
            out += '#' + std::to_string(f.instance);
            if (has_delay(f.kind)) {
                out += '+' + std::to_string(f.delay.count());
            }
        }
        return out;
    }

    /// The plan of to_string()'s text. Throws std::invalid_argument naming the entry and what is wrong with it.
    [[nodiscard]] static FaultPlan parse(std::string_view text) {
        FaultPlan plan;
        std::size_t index = 0;
        while (!text.empty()) {
            const auto end = text.find(';');
            const auto entry = text.substr(0, end);
            text = end == std::string_view::npos ? std::string_view{} : text.substr(end + 1);
            ++index;
            const auto bad = [&](const std::string& why) {
                return std::invalid_argument("FaultPlan::parse: entry " + std::to_string(index) + " ('" +
                                             std::string{entry} + "'): " + why);
            };
            const auto colon = entry.find(':');
            const auto hash = entry.rfind('#');
            if (colon == std::string_view::npos || hash == std::string_view::npos || hash < colon) {
                throw bad("expected kind:component#instance");
            }
            InjectedFault f;
            if (!kind_of(entry.substr(0, colon), f.kind)) {
                throw bad("unknown kind '" + std::string{entry.substr(0, colon)} + "'");
            }
            f.component = decode(entry.substr(colon + 1, hash - colon - 1));
            if (f.component.empty()) {
                throw bad("empty component name");
            }
            auto rest = entry.substr(hash + 1);
            const auto plus = rest.find('+');
            if (!number(rest.substr(0, plus), f.instance) || f.instance == 0) {
                throw bad("the instance must be a positive number");
            }
            if (has_delay(f.kind) != (plus != std::string_view::npos)) {
                throw bad(has_delay(f.kind) ? "this kind needs a +delay in nanoseconds" : "this kind takes no delay");
            }
            if (plus != std::string_view::npos) {
                std::uint64_t ns = 0;
                if (!number(rest.substr(plus + 1), ns) || ns == 0 ||
                    ns > static_cast<std::uint64_t>(std::chrono::nanoseconds::max().count())) {
                    throw bad("the delay must be a positive number of nanoseconds");
                }
                f.delay = std::chrono::nanoseconds{static_cast<std::int64_t>(ns)};
            }
            plan.faults.push_back(std::move(f));
        }
        return plan;
    }

    /// Whether faults of `kind` carry a drawn delay.
    [[nodiscard]] static constexpr bool has_delay(FaultKind kind) noexcept {
        return kind == FaultKind::throws_later || kind == FaultKind::hangs || kind == FaultKind::stalls ||
               kind == FaultKind::slow_stop;
    }

private:
    static bool kind_of(std::string_view name, FaultKind& kind) {
        for (const auto k : {FaultKind::factory_throws, FaultKind::throws_at_start, FaultKind::throws_later,
                             FaultKind::hangs, FaultKind::stalls, FaultKind::slow_stop, FaultKind::fault_point}) {
            if (name == taskmon::testing::to_string(k)) {
                kind = k;
                return true;
            }
        }
        return false;
    }

    static bool number(std::string_view text, std::uint64_t& out) {
        const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
        return ec == std::errc{} && end == text.data() + text.size() && !text.empty();
    }

    static std::string decode(std::string_view text) {
        std::string out;
        for (std::size_t i = 0; i < text.size(); ++i) {
            if (text[i] == '%' && i + 2 < text.size()) {
                const auto code = text.substr(i + 1, 2);
                const char c = code == "25"   ? '%'
                               : code == "3B" ? ';'
                               : code == "23" ? '#'
                               : code == "2B" ? '+'
                               : code == "3A" ? ':'
                                              : '\0';
                if (c != '\0') {
                    out += c;
                    i += 2;
                    continue;
                }
            }
            out += text[i];
        }
        return out;
    }
};

/// A smallest sub-plan of `plan` that still makes `fails` return true, by removing faults a group at a time
/// (delta debugging: groups of half the plan, then of a quarter, and so on down to single faults; a group whose
/// removal keeps the run failing is dropped, and the search goes on from the smaller plan). `fails(plan)` must
/// run the program with the same seed and that plan; it is called at most `max_runs` times. Returns `plan` itself
/// if it does not fail. Throws std::invalid_argument if `fails` is empty.
[[nodiscard]] inline FaultPlan shrink(FaultPlan plan, const std::function<bool(const FaultPlan&)>& fails,
                                      std::size_t max_runs = 1000) {
    if (!fails) {
        throw std::invalid_argument("shrink: the failure check must not be empty");
    }
    std::size_t runs = 0;
    const auto still_fails = [&](const FaultPlan& candidate) { return ++runs <= max_runs && fails(candidate); };
    if (!still_fails(plan)) {
        return plan;
    }
    std::size_t group = std::max<std::size_t>(plan.faults.size() / 2, 1);
    while (!plan.faults.empty() && runs < max_runs) {
        bool removed = false;
        for (std::size_t start = 0; start < plan.faults.size() && runs < max_runs;) {
            FaultPlan candidate;
            const auto stop = std::min(start + group, plan.faults.size());
            candidate.faults.insert(candidate.faults.end(), plan.faults.begin(),
                                    plan.faults.begin() + static_cast<std::ptrdiff_t>(start));
            candidate.faults.insert(candidate.faults.end(), plan.faults.begin() + static_cast<std::ptrdiff_t>(stop),
                                    plan.faults.end());
            if (still_fails(candidate)) {
                plan = std::move(candidate);  // this group was not needed; the next group now starts here
                removed = true;
            } else {
                start = stop;
            }
        }
        if (!removed) {
            if (group == 1) {
                break;  // no single fault can go: a smallest plan (1-minimal)
            }
            group = std::max<std::size_t>(group / 2, 1);
        }
    }
    return plan;
}

}  // namespace taskmon::testing
