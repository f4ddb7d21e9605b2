// taskmon — coroutine supervision for standalone Asio.
// SPDX-License-Identifier: MIT
//
// Internal: the blobs a durable Supervisor run writes to its journal (detail/durable_binding.hpp): a step record,
// an action's result, the History. A small length-prefixed codec: integers as 8 little-endian bytes (so a file
// reads the same on every platform), strings as their length and bytes, optionals as a flag and the value; the
// user's Action and Result through the user's serializers. Each blob starts with a tag naming its kind and
// version, so a future encoding is told apart instead of misread.
#pragma once

#include <taskmon/agent/agent_status.hpp>
#include <taskmon/agent/history.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace taskmon::detail {

class BlobWriter {
public:
    void u64(std::uint64_t value) {
        for (int i = 0; i < 8; ++i) out_.push_back(static_cast<char>((value >> (8 * i)) & 0xffU));
    }
    void i64(std::int64_t value) { u64(static_cast<std::uint64_t>(value)); }
    void boolean(bool value) { u64(value ? 1 : 0); }
    void text(std::string_view value) {
        u64(value.size());
        out_.append(value);
    }
    void offset(Offset value) { i64(value.count()); }
    template <typename T, typename Put>
    void optional(const std::optional<T>& value, Put put) {
        boolean(value.has_value());
        if (value) put(*value);
    }
    std::string take() { return std::move(out_); }

private:
    std::string out_;
};

class BlobReader {
public:
    BlobReader(std::string_view in, const char* what) : in_(in), what_(what) {}

    std::uint64_t u64() {
        need(8);
        std::uint64_t value = 0;
        for (std::size_t i = 0; i < 8; ++i) value |= std::uint64_t{static_cast<std::uint8_t>(in_[pos_ + i])} << (8 * i);
        pos_ += 8;
        return value;
    }
    std::int64_t i64() { return static_cast<std::int64_t>(u64()); }
    bool boolean() { return u64() != 0; }
    std::string text() {
        const std::uint64_t size = u64();
        need(size);
        std::string value{in_.substr(pos_, static_cast<std::size_t>(size))};
        pos_ += static_cast<std::size_t>(size);
        return value;
    }
    Offset offset() { return Offset{i64()}; }
    /// An enum stored as its underlying value; a value past `last` is a corrupt blob.
    template <typename Enum>
    Enum enumeration(Enum last) {
        const std::uint64_t value = u64();
        if (value > static_cast<std::uint64_t>(last)) fail("enum value " + std::to_string(value) + " out of range");
        return static_cast<Enum>(value);
    }
    template <typename T, typename Get>
    std::optional<T> optional(Get get) {
        if (!boolean()) return std::nullopt;
        return get();
    }
    void expect_tag(std::string_view tag) {
        if (text() != tag) fail("not a " + std::string{tag} + " blob (another version or kind)");
    }
    void expect_end() {
        if (pos_ != in_.size()) fail(std::to_string(in_.size() - pos_) + " bytes left over");
    }

private:
    void need(std::uint64_t size) {
        if (size > in_.size() - pos_) fail("truncated");
    }
    [[noreturn]] void fail(const std::string& why) const {
        throw std::runtime_error(std::string{"durable run: cannot decode the "} + what_ + ": " + why);
    }

    std::string_view in_;
    std::size_t pos_ = 0;
    const char* what_;
};

/// The user's serializers, as the codec needs them.
template <typename Action, typename Result>
struct DurableSerializers {
    std::function<std::string(const Action&)> serialize_action;
    std::function<Action(std::string_view)> deserialize_action;
    std::function<std::string(const Result&)> serialize_result;
    std::function<Result(std::string_view)> deserialize_result;
};

inline void put_action_result(BlobWriter& w, const ActionResult& r) {
    w.boolean(r.success);
    w.text(r.error);
    w.optional(r.extracted_content, [&](const std::string& c) { w.text(c); });
}
inline ActionResult get_action_result(BlobReader& r) {
    ActionResult out;
    out.success = r.boolean();
    out.error = r.text();
    out.extracted_content = r.optional<std::string>([&] { return r.text(); });
    return out;
}

/// The result blob of one action in the journal: its outcome in the History and act()'s result.
inline std::string encode_action_outcome(ActionOutcome outcome, const ActionResult& result) {
    BlobWriter w;
    w.text("taskmon.action.v1");
    w.u64(static_cast<std::uint64_t>(outcome));
    put_action_result(w, result);
    return w.take();
}
inline std::pair<ActionOutcome, ActionResult> decode_action_outcome(std::string_view blob) {
    BlobReader r{blob, "action result"};
    r.expect_tag("taskmon.action.v1");
    const auto outcome = r.enumeration(ActionOutcome::interrupted);
    ActionResult result = get_action_result(r);
    r.expect_end();
    return {outcome, std::move(result)};
}

template <typename Action, typename Result>
void put_step(BlobWriter& w, const StepRecord<Action, Result>& s, const DurableSerializers<Action, Result>& io) {
    w.u64(s.number);
    w.u64(s.observation_sequence);
    w.offset(s.observation_age);
    w.u64(static_cast<std::uint64_t>(s.outcome));
    w.optional(s.fate, [&](DecisionFate f) { w.u64(static_cast<std::uint64_t>(f)); });
    w.boolean(s.done);
    w.optional(s.result, [&](const Result& result) { w.text(io.serialize_result(result)); });
    w.u64(s.actions.size());
    for (const auto& a : s.actions) {
        w.text(io.serialize_action(a.action));
        w.u64(static_cast<std::uint64_t>(a.outcome));
        put_action_result(w, a.result);
        w.optional(a.started_at, [&](Offset o) { w.offset(o); });
        w.optional(a.finished_at, [&](Offset o) { w.offset(o); });
    }
    w.text(s.error);
    w.offset(s.started_at);
    w.optional(s.decided_at, [&](Offset o) { w.offset(o); });
    w.offset(s.finished_at);
}

template <typename Action, typename Result>
StepRecord<Action, Result> get_step(BlobReader& r, const DurableSerializers<Action, Result>& io) {
    StepRecord<Action, Result> s;
    s.number = r.u64();
    s.observation_sequence = r.u64();
    s.observation_age = r.offset();
    s.outcome = r.enumeration(StepOutcome::failed);
    s.fate = r.optional<DecisionFate>([&] { return r.enumeration(DecisionFate::expired); });
    s.done = r.boolean();
    s.result = r.optional<Result>([&] { return io.deserialize_result(r.text()); });
    const std::uint64_t actions = r.u64();
    for (std::uint64_t i = 0; i < actions; ++i) {
        ActionRecord<Action> a{io.deserialize_action(r.text()), ActionOutcome::skipped, {}, std::nullopt, std::nullopt};
        a.outcome = r.enumeration(ActionOutcome::interrupted);
        a.result = get_action_result(r);
        a.started_at = r.optional<Offset>([&] { return r.offset(); });
        a.finished_at = r.optional<Offset>([&] { return r.offset(); });
        s.actions.push_back(std::move(a));
    }
    s.error = r.text();
    s.started_at = r.offset();
    s.decided_at = r.optional<Offset>([&] { return r.offset(); });
    s.finished_at = r.offset();
    return s;
}

/// One step: the checkpoint's record blob.
template <typename Action, typename Result>
std::string encode_step(const StepRecord<Action, Result>& step, const DurableSerializers<Action, Result>& io) {
    BlobWriter w;
    w.text("taskmon.step.v1");
    put_step(w, step, io);
    return w.take();
}

inline void put_event(BlobWriter& w, const HistoryEvent& e) {
    const auto put_u64 = [&](std::uint64_t v) { w.u64(v); };
    const auto put_status = [&](AgentStatus s) { w.u64(static_cast<std::uint64_t>(s)); };
    w.u64(static_cast<std::uint64_t>(e.kind));
    w.offset(e.at);
    w.text(e.component);
    w.text(e.message);
    w.optional(e.from, put_status);
    w.optional(e.to, put_status);
    w.optional(e.step, put_u64);
    w.optional(e.instance, put_u64);
    w.optional(e.consecutive_stalls, put_u64);
    w.optional(e.max_consecutive_stalls, put_u64);
    w.optional(e.silent_for, [&](Offset o) { w.offset(o); });
}

inline HistoryEvent get_event(BlobReader& r) {
    const auto get_u64 = [&] { return r.u64(); };
    const auto get_status = [&] { return r.enumeration(AgentStatus::waiting_for_input); };
    HistoryEvent e{r.enumeration(HistoryEventKind::action_reconciled)};
    e.at = r.offset();
    e.component = r.text();
    e.message = r.text();
    e.from = r.optional<AgentStatus>(get_status);
    e.to = r.optional<AgentStatus>(get_status);
    e.step = r.optional<std::uint64_t>(get_u64);
    e.instance = r.optional<std::uint64_t>(get_u64);
    e.consecutive_stalls = r.optional<std::uint64_t>(get_u64);
    e.max_consecutive_stalls = r.optional<std::uint64_t>(get_u64);
    e.silent_for = r.optional<Offset>([&] { return r.offset(); });
    return e;
}

/// Every counter, in the order of HistoryCounters' members.
template <typename Counters, typename Visit>
void visit_counters(Counters& c, Visit visit) {
    for (auto* field :
         {&c.observations_published, &c.observations_dropped, &c.capture_failures, &c.steps, &c.steps_evicted,
          &c.steps_failed, &c.decisions_executed, &c.decisions_failed, &c.decisions_interrupted, &c.decisions_expired,
          &c.actions_succeeded, &c.actions_failed, &c.actions_skipped, &c.actions_interrupted, &c.watchdog_stalls,
          &c.load_shedding_entries, &c.hook_errors}) {
        visit(*field);
    }
}

/// The History's steps, events and counters, and the ledger's consecutive failures: the checkpoint's history
/// blob, from which a resume restores them.
template <typename Action, typename Result>
std::string encode_history(const History<Action, Result>& h, std::size_t consecutive_failures,
                           const DurableSerializers<Action, Result>& io) {
    BlobWriter w;
    w.text("taskmon.history.v1");
    visit_counters(h.counters, [&](std::uint64_t v) { w.u64(v); });
    w.u64(h.counters.restarts.size());
    for (const auto& [name, count] : h.counters.restarts) {
        w.text(name);
        w.u64(count);
    }
    w.u64(consecutive_failures);
    w.u64(h.steps.size());
    for (const auto& step : h.steps) put_step(w, step, io);
    w.u64(h.events.size());
    for (const auto& event : h.events) put_event(w, event);
    return w.take();
}

/// Restores what encode_history wrote into `h` (steps, events, counters); returns the consecutive failures.
template <typename Action, typename Result>
std::size_t decode_history(std::string_view blob, History<Action, Result>& h,
                           const DurableSerializers<Action, Result>& io) {
    BlobReader r{blob, "history"};
    r.expect_tag("taskmon.history.v1");
    HistoryCounters counters;
    visit_counters(counters, [&](std::uint64_t& v) { v = r.u64(); });
    const std::uint64_t restarts = r.u64();
    for (std::uint64_t i = 0; i < restarts; ++i) {
        std::string name = r.text();
        counters.restarts[name] = r.u64();
    }
    const auto consecutive_failures = static_cast<std::size_t>(r.u64());
    std::vector<StepRecord<Action, Result>> steps;
    const std::uint64_t step_count = r.u64();
    for (std::uint64_t i = 0; i < step_count; ++i) steps.push_back(get_step(r, io));
    std::vector<HistoryEvent> events;
    const std::uint64_t event_count = r.u64();
    for (std::uint64_t i = 0; i < event_count; ++i) events.push_back(get_event(r));
    r.expect_end();
    h.counters = std::move(counters);
    h.steps = std::move(steps);
    h.events = std::move(events);
    return consecutive_failures;
}

}  // namespace taskmon::detail
