// taskmon — coroutine supervision for standalone Asio.
// SPDX-License-Identifier: MIT
//
// History as JSON (optional: needs nlohmann/json 3.11, CMake target taskmon::json): to_json/from_json for a
// Supervisor run's History and every type in it, found by ADL, so they also work inside your own JSON.
//
//   #include <taskmon/ops/history_json.hpp>
//   nlohmann::json j = history;                                   // History<Move> → JSON
//   std::ofstream{"run.json"} << j.dump(2);
//   auto back = nlohmann::json::parse(text).get<taskmon::History<Move>>();   // and back, field for field
//
// A round trip gives a History equal field by field, as long as its strings are valid UTF-8:
// - Enums are their names ("max_steps_reached"); offsets and durations are integer nanoseconds in fields
//   named `*_ns`; started_wall_time is UTC text with nanoseconds ("2026-12-02T10:25:42.123456789Z").
// - An empty optional is null (null or an absent key read back as empty), but for HistoryEvent's typed fields
//   (instance, consecutive_stalls, max_consecutive_stalls, silent_for_ns), set only for a kind or two: those
//   keys are left out when empty, so the events of every other kind are written as they were, and a reader
//   that does not know the keys ignores them. The format stays "taskmon.history.v1".
// - Action and Result go through their own to_json/from_json (std::string needs nothing). A Result or
//   Action whose JSON is null cannot be told apart from an empty optional.
// - JSON text is UTF-8 (dump() throws type_error.316 for anything else), so each byte of a string that is not
//   part of valid UTF-8 (an exception message from a device) is written as U+FFFD, as the timeline's SVG does;
//   valid text, U+FFFD included, is written unchanged. That holds for every string of the History: errors,
//   reasons, extracted content, event components and messages, the names in counters.restarts (two names that
//   become the same add their counts) and an Action or Result that is a std::string. The strings inside an
//   Action or Result of another type are its own to_json's to keep valid.
// - The History object carries "format": "taskmon.history.v1"; another value is refused, an absent one
//   accepted.
// Reading is strict: every non-optional field must be present with the right JSON type (integers for
// counters and times, no fractions, no negative counts); unknown keys are ignored. Bad input throws
// taskmon::JsonFieldError (a std::invalid_argument) naming the field by its path, e.g.
// `taskmon JSON: steps[2].actions[0].outcome: unknown ActionOutcome "exploded" (expected succeeded, failed,
// skipped or interrupted)`, and leaves the target unchanged. from_json checks types, not the History's
// invariants (step numbering, terminal status): those are the Supervisor's.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <limits>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <taskmon/agent/agent_status.hpp>
#include <taskmon/agent/history.hpp>
#include <taskmon/detail/utf8.hpp>

namespace taskmon {

/// The value of the "format" key of a History's JSON.
inline constexpr std::string_view history_json_format = "taskmon.history.v1";

/// Bad JSON given to one of taskmon's from_json functions. what() is "taskmon JSON: <path>: <problem>".
class JsonFieldError : public std::invalid_argument {
public:
    JsonFieldError(std::string path, std::string problem)
        : std::invalid_argument(compose(path, problem)), path_(std::move(path)), problem_(std::move(problem)) {}

    /// Where, from the value given to from_json: "steps[2].actions[0].outcome"; empty for the value itself.
    [[nodiscard]] const std::string& path() const noexcept { return path_; }
    /// What was wrong: "missing", "expected a string, got number", ...
    [[nodiscard]] const std::string& problem() const noexcept { return problem_; }

    /// The same error seen from the enclosing value: `parent` is a key ("steps") or an index ("[2]").
    [[nodiscard]] JsonFieldError within(std::string_view parent) const {
        std::string path{parent};
        if (!path_.empty()) {
            if (path_.front() != '[') path += '.';
            path += path_;
        }
        return JsonFieldError{std::move(path), problem_};
    }

private:
    static std::string compose(const std::string& path, const std::string& problem) {
        return path.empty() ? "taskmon JSON: " + problem : "taskmon JSON: " + path + ": " + problem;
    }

    std::string path_;
    std::string problem_;
};

namespace detail::history_json {

using json = nlohmann::json;

inline std::string type_problem(std::string_view expected, const json& j) {
    return fmt::format("expected {}, got {}", expected, j.type_name());
}

inline void require_object(const json& j) {
    if (!j.is_object()) throw JsonFieldError{"", type_problem("an object", j)};
}

/// Reads `object[name]` with `read`; a missing key or a bad value throws JsonFieldError naming `name`.
template <typename Read>
auto field(const json& object, const char* name, Read&& read) {
    const auto it = object.find(name);
    if (it == object.end()) throw JsonFieldError{name, "missing"};
    try {
        return read(*it);
    } catch (const JsonFieldError& e) {
        throw e.within(name);
    }
}

/// Like field(), for an optional: an absent key or null is nullopt.
template <typename Read>
auto optional_field(const json& object, const char* name, Read&& read)
    -> std::optional<decltype(read(std::declval<const json&>()))> {
    const auto it = object.find(name);
    if (it == object.end() || it->is_null()) return std::nullopt;
    try {
        return read(*it);
    } catch (const JsonFieldError& e) {
        throw e.within(name);
    }
}

inline bool read_bool(const json& j) {
    if (!j.is_boolean()) throw JsonFieldError{"", type_problem("a boolean", j)};
    return j.get<bool>();
}

inline std::string read_string(const json& j) {
    if (!j.is_string()) throw JsonFieldError{"", type_problem("a string", j)};
    return j.get<std::string>();
}

inline std::uint64_t read_count(const json& j) {
    if (!j.is_number_integer()) throw JsonFieldError{"", type_problem("a non-negative integer", j)};
    if (!j.is_number_unsigned() && j.get<std::int64_t>() < 0) {
        throw JsonFieldError{"", fmt::format("expected a non-negative integer, got {}", j.get<std::int64_t>())};
    }
    return j.get<std::uint64_t>();
}

inline Offset read_nanoseconds(const json& j) {
    if (!j.is_number_integer()) throw JsonFieldError{"", type_problem("an integer number of nanoseconds", j)};
    if (j.is_number_unsigned() &&
        j.get<std::uint64_t>() > static_cast<std::uint64_t>(std::numeric_limits<Offset::rep>::max())) {
        throw JsonFieldError{"", fmt::format("{} nanoseconds is out of range", j.get<std::uint64_t>())};
    }
    return Offset{j.get<Offset::rep>()};
}

/// The user's Action or Result through its own from_json; whatever it throws becomes a JsonFieldError.
template <typename T>
T read_user(const json& j) {
    try {
        return j.get<T>();
    } catch (const JsonFieldError&) {
        throw;
    } catch (const std::exception& e) {
        throw JsonFieldError{"", e.what()};
    }
}

template <typename Read>
auto read_array(const json& j, Read&& read) {
    if (!j.is_array()) throw JsonFieldError{"", type_problem("an array", j)};
    std::vector<decltype(read(j))> out;
    out.reserve(j.size());
    for (std::size_t i = 0; i < j.size(); ++i) {
        try {
            out.push_back(read(j[i]));
        } catch (const JsonFieldError& e) {
            throw e.within(fmt::format("[{}]", i));
        }
    }
    return out;
}

/// Every name to_string() gives a value of `Enum` (an enum on std::uint8_t), in value order. Scans the whole
/// underlying range, so enumerators added later are read without a change here.
template <typename Enum>
const std::vector<std::pair<std::string_view, Enum>>& enum_names() {
    static_assert(std::is_same_v<std::underlying_type_t<Enum>, std::uint8_t>);
    static const auto names = [] {
        std::vector<std::pair<std::string_view, Enum>> out;
        for (unsigned v = 0; v <= std::numeric_limits<std::uint8_t>::max(); ++v) {
            const auto value = static_cast<Enum>(v);
            const auto name = to_string(value);
            if (name == "unknown") continue;
            bool seen = false;
            for (const auto& [known, _] : out) seen = seen || known == name;
            if (!seen) out.emplace_back(name, value);
        }
        return out;
    }();
    return names;
}

template <typename Enum>
std::string write_enum(Enum value, const char* type) {
    const auto name = to_string(value);
    if (name == "unknown") {
        throw std::invalid_argument(
            fmt::format("taskmon JSON: {} value {} has no name", type, static_cast<unsigned>(value)));
    }
    return std::string{name};
}

template <typename Enum>
Enum read_enum(const json& j, const char* type) {
    if (!j.is_string()) throw JsonFieldError{"", type_problem(fmt::format("a name ({})", type), j)};
    const auto& name = j.get_ref<const std::string&>();
    const auto& names = enum_names<Enum>();
    std::string expected;
    for (std::size_t i = 0; i < names.size(); ++i) {
        if (names[i].first == name) return names[i].second;
        expected += i == 0 ? "" : i + 1 == names.size() ? " or " : ", ";
        expected += names[i].first;
    }
    throw JsonFieldError{"", fmt::format("unknown {} \"{}\" (expected {})", type, name, expected)};
}

/// "2026-12-02T10:25:42.123456789Z": UTC, always nine fractional digits. Every time point of the clock fits
/// (years 1677 to 2262 with nanosecond ticks); the arithmetic is in seconds, so none overflows.
inline std::string format_wall_time(std::chrono::system_clock::time_point time) {
    using namespace std::chrono;
    const std::int64_t ns = duration_cast<nanoseconds>(time.time_since_epoch()).count();
    std::int64_t secs = ns / 1'000'000'000;
    std::int64_t fraction = ns % 1'000'000'000;
    if (fraction < 0) {
        fraction += 1'000'000'000;
        --secs;
    }
    std::int64_t day = secs / 86'400;
    std::int64_t second_of_day = secs % 86'400;
    if (second_of_day < 0) {
        second_of_day += 86'400;
        --day;
    }
    const year_month_day date{sys_days{days{day}}};
    return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:09}Z", static_cast<int>(date.year()),
                       static_cast<unsigned>(date.month()), static_cast<unsigned>(date.day()), second_of_day / 3'600,
                       second_of_day / 60 % 60, second_of_day % 60, fraction);
}

/// Reads what format_wall_time() writes; the fraction may have 0 to 9 digits.
inline std::chrono::system_clock::time_point read_wall_time(const json& j) {
    using namespace std::chrono;
    if (!j.is_string()) throw JsonFieldError{"", type_problem("a UTC time as text", j)};
    const auto& text = j.get_ref<const std::string&>();
    const auto bad = [&] {
        return JsonFieldError{"", fmt::format("expected a UTC time like \"2026-12-02T10:25:42.123456789Z\", got "
                                              "\"{}\"",
                                              text)};
    };
    std::size_t pos = 0;
    const auto number = [&](std::size_t digits) {
        int value = 0;
        for (std::size_t i = 0; i < digits; ++i, ++pos) {
            if (pos >= text.size() || text[pos] < '0' || text[pos] > '9') throw bad();
            value = value * 10 + (text[pos] - '0');
        }
        return value;
    };
    const auto expect = [&](char c) {
        if (pos >= text.size() || text[pos] != c) throw bad();
        ++pos;
    };
    const int y = number(4);
    expect('-');
    const int mo = number(2);
    expect('-');
    const int d = number(2);
    expect('T');
    const int hh = number(2);
    expect(':');
    const int mm = number(2);
    expect(':');
    const int ss = number(2);
    std::int64_t fraction = 0;
    if (pos < text.size() && text[pos] == '.') {
        ++pos;
        int digits = 0;
        while (pos < text.size() && text[pos] >= '0' && text[pos] <= '9' && digits < 9) {
            fraction = fraction * 10 + (text[pos++] - '0');
            ++digits;
        }
        if (digits == 0) throw bad();
        for (; digits < 9; ++digits) fraction *= 10;
    }
    expect('Z');
    if (pos != text.size()) throw bad();
    const year_month_day date{year{y}, month{static_cast<unsigned>(mo)}, day{static_cast<unsigned>(d)}};
    if (!date.ok() || hh > 23 || mm > 59 || ss > 59) throw bad();
    std::int64_t secs =
        static_cast<std::int64_t>(sys_days{date}.time_since_epoch().count()) * 86'400 + hh * 3'600 + mm * 60 + ss;
    if (secs < 0 && fraction > 0) {  // so that the earliest time point does not overflow on the way
        ++secs;
        fraction -= 1'000'000'000;
    }
    std::int64_t ns = 0;
    if (__builtin_mul_overflow(secs, std::int64_t{1'000'000'000}, &ns) || __builtin_add_overflow(ns, fraction, &ns)) {
        throw JsonFieldError{"", fmt::format("\"{}\" is out of the clock's range", text)};
    }
    return system_clock::time_point{duration_cast<system_clock::duration>(nanoseconds{ns})};
}

/// One of our strings as JSON: each byte that is not part of valid UTF-8 becomes U+FFFD, so that dump() (which
/// throws type_error.316 for invalid UTF-8) can write it.
inline json text_json(std::string_view text) { return json(to_valid_utf8(text)); }

/// A value through its own to_json (an Action, a Result, an enum, a number), but a std::string as text_json():
/// nlohmann/json maps a std::string Action or Result with no user code in between that could make it valid.
template <typename T>
json user_json(const T& value) {
    if constexpr (std::is_same_v<T, std::string>) {
        return text_json(value);
    } else {
        return json(value);
    }
}

template <typename T>
json optional_json(const std::optional<T>& value) {
    return value ? user_json(*value) : json(nullptr);
}

/// counters.restarts with valid UTF-8 names; names that become the same (they differed only in invalid bytes)
/// add their counts, saturating at 2^64 - 1.
inline json restarts_json(const std::map<std::string, std::uint64_t>& restarts) {
    std::map<std::string, std::uint64_t> out;
    for (const auto& [name, count] : restarts) {
        auto& total = out[to_valid_utf8(name)];
        total = count > std::numeric_limits<std::uint64_t>::max() - total ? std::numeric_limits<std::uint64_t>::max()
                                                                          : total + count;
    }
    return json(out);
}

inline json optional_ns(const std::optional<Offset>& value) { return value ? json(value->count()) : json(nullptr); }

inline ActionResult read_action_result(const json& j) {
    require_object(j);
    ActionResult r;
    r.success = field(j, "success", read_bool);
    r.error = field(j, "error", read_string);
    r.extracted_content = optional_field(j, "extracted_content", read_string);
    return r;
}

template <typename Action>
ActionRecord<Action> read_action_record(const json& j) {
    require_object(j);
    ActionRecord<Action> r;
    r.action = field(j, "action", read_user<Action>);
    r.outcome = field(j, "outcome", [](const json& v) { return read_enum<ActionOutcome>(v, "ActionOutcome"); });
    r.result = field(j, "result", read_action_result);
    r.started_at = optional_field(j, "started_at_ns", read_nanoseconds);
    r.finished_at = optional_field(j, "finished_at_ns", read_nanoseconds);
    return r;
}

template <typename Action, typename Result>
StepRecord<Action, Result> read_step(const json& j) {
    require_object(j);
    StepRecord<Action, Result> s;
    s.number = field(j, "number", read_count);
    s.observation_sequence = field(j, "observation_sequence", read_count);
    s.observation_age = field(j, "observation_age_ns", read_nanoseconds);
    s.outcome = field(j, "outcome", [](const json& v) { return read_enum<StepOutcome>(v, "StepOutcome"); });
    s.fate = optional_field(j, "fate", [](const json& v) { return read_enum<DecisionFate>(v, "DecisionFate"); });
    s.done = field(j, "done", read_bool);
    s.result = optional_field(j, "result", read_user<Result>);
    s.actions = field(j, "actions", [](const json& v) { return read_array(v, read_action_record<Action>); });
    s.error = field(j, "error", read_string);
    s.started_at = field(j, "started_at_ns", read_nanoseconds);
    s.decided_at = optional_field(j, "decided_at_ns", read_nanoseconds);
    s.finished_at = field(j, "finished_at_ns", read_nanoseconds);
    return s;
}

inline AgentStatus read_status(const json& j) { return read_enum<AgentStatus>(j, "AgentStatus"); }

inline HistoryEvent read_event(const json& j) {
    require_object(j);
    HistoryEvent e{};
    e.kind = field(j, "kind", [](const json& v) { return read_enum<HistoryEventKind>(v, "HistoryEventKind"); });
    e.at = field(j, "at_ns", read_nanoseconds);
    e.component = field(j, "component", read_string);
    e.message = field(j, "message", read_string);
    e.from = optional_field(j, "from", read_status);
    e.to = optional_field(j, "to", read_status);
    e.step = optional_field(j, "step", read_count);
    e.instance = optional_field(j, "instance", read_count);
    e.consecutive_stalls = optional_field(j, "consecutive_stalls", read_count);
    e.max_consecutive_stalls = optional_field(j, "max_consecutive_stalls", read_count);
    e.silent_for = optional_field(j, "silent_for_ns", read_nanoseconds);
    return e;
}

/// HistoryCounters' fields, in declaration order, with their JSON names (restarts is separate).
inline constexpr std::pair<const char*, std::uint64_t HistoryCounters::*> counter_fields[] = {
    {"observations_published", &HistoryCounters::observations_published},
    {"observations_dropped", &HistoryCounters::observations_dropped},
    {"capture_failures", &HistoryCounters::capture_failures},
    {"steps", &HistoryCounters::steps},
    {"steps_evicted", &HistoryCounters::steps_evicted},
    {"steps_failed", &HistoryCounters::steps_failed},
    {"decisions_executed", &HistoryCounters::decisions_executed},
    {"decisions_failed", &HistoryCounters::decisions_failed},
    {"decisions_interrupted", &HistoryCounters::decisions_interrupted},
    {"decisions_expired", &HistoryCounters::decisions_expired},
    {"actions_succeeded", &HistoryCounters::actions_succeeded},
    {"actions_failed", &HistoryCounters::actions_failed},
    {"actions_skipped", &HistoryCounters::actions_skipped},
    {"actions_interrupted", &HistoryCounters::actions_interrupted},
    {"watchdog_stalls", &HistoryCounters::watchdog_stalls},
    {"load_shedding_entries", &HistoryCounters::load_shedding_entries},
    {"hook_errors", &HistoryCounters::hook_errors},
};

inline HistoryCounters read_counters(const json& j) {
    require_object(j);
    HistoryCounters c;
    for (const auto& [name, member] : counter_fields) c.*member = field(j, name, read_count);
    c.restarts = field(j, "restarts", [](const json& v) {
        if (!v.is_object()) throw JsonFieldError{"", type_problem("an object of component: count", v)};
        std::map<std::string, std::uint64_t> out;
        for (auto it = v.begin(); it != v.end(); ++it) out.emplace(it.key(), field(v, it.key().c_str(), read_count));
        return out;
    });
    return c;
}

template <typename Action, typename Result>
History<Action, Result> read_history(const json& j) {
    require_object(j);
    if (const auto format = optional_field(j, "format", read_string); format && *format != history_json_format) {
        throw JsonFieldError{"format",
                             fmt::format("unsupported format \"{}\" (expected \"{}\")", *format, history_json_format)};
    }
    History<Action, Result> h;
    h.status = field(j, "status", read_status);
    h.reason = field(j, "reason", read_string);
    h.started_wall_time = field(j, "started_wall_time", read_wall_time);
    h.ended_at = field(j, "ended_at_ns", read_nanoseconds);
    h.counters = field(j, "counters", read_counters);
    h.steps = field(j, "steps", [](const json& v) { return read_array(v, read_step<Action, Result>); });
    h.events = field(j, "events", [](const json& v) { return read_array(v, read_event); });
    return h;
}

}  // namespace detail::history_json

// --- enums: their names -----------------------------------------------------------------------------------------

inline void to_json(nlohmann::json& j, AgentStatus value) {
    j = detail::history_json::write_enum(value, "AgentStatus");
}
inline void from_json(const nlohmann::json& j, AgentStatus& value) {
    value = detail::history_json::read_enum<AgentStatus>(j, "AgentStatus");
}
inline void to_json(nlohmann::json& j, ActionOutcome value) {
    j = detail::history_json::write_enum(value, "ActionOutcome");
}
inline void from_json(const nlohmann::json& j, ActionOutcome& value) {
    value = detail::history_json::read_enum<ActionOutcome>(j, "ActionOutcome");
}
inline void to_json(nlohmann::json& j, DecisionFate value) {
    j = detail::history_json::write_enum(value, "DecisionFate");
}
inline void from_json(const nlohmann::json& j, DecisionFate& value) {
    value = detail::history_json::read_enum<DecisionFate>(j, "DecisionFate");
}
inline void to_json(nlohmann::json& j, StepOutcome value) {
    j = detail::history_json::write_enum(value, "StepOutcome");
}
inline void from_json(const nlohmann::json& j, StepOutcome& value) {
    value = detail::history_json::read_enum<StepOutcome>(j, "StepOutcome");
}
inline void to_json(nlohmann::json& j, HistoryEventKind value) {
    j = detail::history_json::write_enum(value, "HistoryEventKind");
}
inline void from_json(const nlohmann::json& j, HistoryEventKind& value) {
    value = detail::history_json::read_enum<HistoryEventKind>(j, "HistoryEventKind");
}

// --- records ------------------------------------------------------------------------------------------------------

/// {"success": true, "error": "", "extracted_content": "text" | null}
inline void to_json(nlohmann::json& j, const ActionResult& r) {
    j = nlohmann::json{{"success", r.success},
                       {"error", detail::history_json::text_json(r.error)},
                       {"extracted_content", detail::history_json::optional_json(r.extracted_content)}};
}
inline void from_json(const nlohmann::json& j, ActionResult& r) { r = detail::history_json::read_action_result(j); }

/// {"action": <Action>, "outcome": "succeeded", "result": {...}, "started_at_ns": n | null, "finished_at_ns": ...}
template <typename Action>
void to_json(nlohmann::json& j, const ActionRecord<Action>& r) {
    j = nlohmann::json{{"action", detail::history_json::user_json(r.action)},
                       {"outcome", r.outcome},
                       {"result", r.result},
                       {"started_at_ns", detail::history_json::optional_ns(r.started_at)},
                       {"finished_at_ns", detail::history_json::optional_ns(r.finished_at)}};
}
template <typename Action>
void from_json(const nlohmann::json& j, ActionRecord<Action>& r) {
    r = detail::history_json::read_action_record<Action>(j);
}

/// Every field of the step under its own name; offsets as `*_ns`; fate and result null when empty.
template <typename Action, typename Result>
void to_json(nlohmann::json& j, const StepRecord<Action, Result>& s) {
    j = nlohmann::json{{"number", s.number},
                       {"observation_sequence", s.observation_sequence},
                       {"observation_age_ns", s.observation_age.count()},
                       {"outcome", s.outcome},
                       {"fate", detail::history_json::optional_json(s.fate)},
                       {"done", s.done},
                       {"result", detail::history_json::optional_json(s.result)},
                       {"actions", s.actions},
                       {"error", detail::history_json::text_json(s.error)},
                       {"started_at_ns", s.started_at.count()},
                       {"decided_at_ns", detail::history_json::optional_ns(s.decided_at)},
                       {"finished_at_ns", s.finished_at.count()}};
}
template <typename Action, typename Result>
void from_json(const nlohmann::json& j, StepRecord<Action, Result>& s) {
    s = detail::history_json::read_step<Action, Result>(j);
}

/// {"kind": "status_changed", "at_ns": n, "component": "", "message": "", "from": "pending" | null, "to": ...,
/// "step": n | null}, and the typed fields that are set: "instance": n, "consecutive_stalls": n,
/// "max_consecutive_stalls": n, "silent_for_ns": n (left out when empty, see the top of this header).
inline void to_json(nlohmann::json& j, const HistoryEvent& e) {
    j = nlohmann::json{{"kind", e.kind},
                       {"at_ns", e.at.count()},
                       {"component", detail::history_json::text_json(e.component)},
                       {"message", detail::history_json::text_json(e.message)},
                       {"from", detail::history_json::optional_json(e.from)},
                       {"to", detail::history_json::optional_json(e.to)},
                       {"step", detail::history_json::optional_json(e.step)}};
    if (e.instance) j["instance"] = *e.instance;
    if (e.consecutive_stalls) j["consecutive_stalls"] = *e.consecutive_stalls;
    if (e.max_consecutive_stalls) j["max_consecutive_stalls"] = *e.max_consecutive_stalls;
    if (e.silent_for) j["silent_for_ns"] = e.silent_for->count();
}
inline void from_json(const nlohmann::json& j, HistoryEvent& e) { e = detail::history_json::read_event(j); }

/// Every counter by its member name; restarts as {"component": count}.
inline void to_json(nlohmann::json& j, const HistoryCounters& c) {
    j = nlohmann::json::object();
    for (const auto& [name, member] : detail::history_json::counter_fields) j[name] = c.*member;
    j["restarts"] = detail::history_json::restarts_json(c.restarts);
}
inline void from_json(const nlohmann::json& j, HistoryCounters& c) { c = detail::history_json::read_counters(j); }

/// {"format": "taskmon.history.v1", "status", "reason", "started_wall_time", "ended_at_ns", "counters",
/// "steps", "events"}
template <typename Action, typename Result>
void to_json(nlohmann::json& j, const History<Action, Result>& h) {
    j = nlohmann::json{{"format", std::string{history_json_format}},
                       {"status", h.status},
                       {"reason", detail::history_json::text_json(h.reason)},
                       {"started_wall_time", detail::history_json::format_wall_time(h.started_wall_time)},
                       {"ended_at_ns", h.ended_at.count()},
                       {"counters", h.counters},
                       {"steps", h.steps},
                       {"events", h.events}};
}
template <typename Action, typename Result>
void from_json(const nlohmann::json& j, History<Action, Result>& h) {
    h = detail::history_json::read_history<Action, Result>(j);
}

}  // namespace taskmon
