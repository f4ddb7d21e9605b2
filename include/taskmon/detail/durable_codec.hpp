// taskmon — coroutine supervision for standalone Asio.
// SPDX-License-Identifier: MIT
//
// Internal: the blobs a durable Supervisor run writes to its journal (detail/durable_binding.hpp): a checkpoint's
// record (the step and the History's counters), the History events recorded since the previous checkpoint, an
// action's result. A small length-prefixed codec: integers as 8 little-endian bytes (so a file
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

inline void put_counters(BlobWriter& w, const HistoryCounters& c) {
    visit_counters(c, [&](std::uint64_t v) { w.u64(v); });
    w.u64(c.restarts.size());
    for (const auto& [name, count] : c.restarts) {
        w.text(name);
        w.u64(count);
    }
}

inline HistoryCounters get_counters(BlobReader& r) {
    HistoryCounters c;
    visit_counters(c, [&](std::uint64_t& v) { v = r.u64(); });
    const std::uint64_t restarts = r.u64();
    for (std::uint64_t i = 0; i < restarts; ++i) {
        std::string name = r.text();
        c.restarts[name] = r.u64();
    }
    return c;
}

/// What one checkpoint's record blob holds: the step, and the History's counters and the ledger's consecutive
/// failures once it was recorded (what a resume restores from the last checkpoint alone).
template <typename Action, typename Result>
struct CheckpointContents {
    StepRecord<Action, Result> step;
    HistoryCounters counters;
    std::size_t consecutive_failures = 0;
};

/// A checkpoint's record blob. Its size does not grow with the run: the History's steps are the record blobs of
/// the checkpoints, its events the history blobs (encode_events), each written once.
template <typename Action, typename Result>
std::string encode_checkpoint_record(const StepRecord<Action, Result>& step, const HistoryCounters& counters,
                                     std::size_t consecutive_failures, const DurableSerializers<Action, Result>& io) {
    BlobWriter w;
    w.text("taskmon.checkpoint.v2");
    put_step(w, step, io);
    put_counters(w, counters);
    w.u64(consecutive_failures);
    return w.take();
}

template <typename Action, typename Result>
CheckpointContents<Action, Result> decode_checkpoint_record(std::string_view blob,
                                                            const DurableSerializers<Action, Result>& io) {
    BlobReader r{blob, "checkpoint record"};
    r.expect_tag("taskmon.checkpoint.v2");
    CheckpointContents<Action, Result> out;
    out.step = get_step(r, io);
    out.counters = get_counters(r);
    out.consecutive_failures = static_cast<std::size_t>(r.u64());
    r.expect_end();
    return out;
}

/// A checkpoint's history blob: the History events recorded since the previous checkpoint, in order; "" (no
/// history blob) when there are none.
template <typename Iterator>
std::string encode_events(Iterator first, Iterator last) {
    if (first == last) return {};
    BlobWriter w;
    w.text("taskmon.events.v1");
    w.u64(static_cast<std::uint64_t>(last - first));
    for (; first != last; ++first) put_event(w, *first);
    return w.take();
}

/// Appends the events of one history blob to `out`.
inline void decode_events(std::string_view blob, std::vector<HistoryEvent>& out) {
    BlobReader r{blob, "history events"};
    r.expect_tag("taskmon.events.v1");
    const std::uint64_t count = r.u64();
    for (std::uint64_t i = 0; i < count; ++i) out.push_back(get_event(r));
    r.expect_end();
}

}  // namespace taskmon::detail
