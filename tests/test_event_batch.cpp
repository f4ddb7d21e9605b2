// Tests for taskmon/detail/event_batch.hpp: the events of one change keep their order, in place and beyond.
#include <taskmon/detail/event_batch.hpp>

#include "taskmon_catch.hpp"

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

using taskmon::MonitorEvent;
using taskmon::MonitorEventKind;
using taskmon::detail::EventBatch;

namespace {

MonitorEvent numbered(std::uint64_t sequence) {
    MonitorEvent e;
    e.kind = MonitorEventKind::failed;
    e.sequence = sequence;
    // Longer than any small-string buffer: a lost or doubled destruction shows under ASan.
    e.reason = "reason number " + std::to_string(sequence) + " that does not fit in place";
    return e;
}

std::vector<std::uint64_t> sequences(std::span<const MonitorEvent> events) {
    std::vector<std::uint64_t> out;
    for (const auto& e : events) {
        out.push_back(e.sequence);
    }
    return out;
}

}  // namespace

TEST_CASE("EventBatch keeps its events in order, in place and after it outgrew its place", "[event_batch]") {
    for (const std::size_t n : {std::size_t{0}, std::size_t{1}, EventBatch::inline_capacity,
                                EventBatch::inline_capacity + 1, 3 * EventBatch::inline_capacity}) {
        INFO("n = " << n);
        EventBatch batch;
        std::vector<std::uint64_t> expected;
        for (std::size_t i = 1; i <= n; ++i) {
            batch.push_back(numbered(i));
            expected.push_back(i);
        }
        CHECK(batch.size() == n);
        CHECK(batch.empty() == (n == 0));
        CHECK(sequences(batch) == expected);
        if (n > 0) {
            CHECK(batch.front().sequence == 1);
            CHECK(batch.back().sequence == n);
            CHECK(batch.back().reason == numbered(n).reason);
        }
    }
}

TEST_CASE("EventBatch: clear() empties it, and it fills again from its place", "[event_batch]") {
    EventBatch batch;
    for (std::uint64_t i = 1; i <= EventBatch::inline_capacity + 2; ++i) {
        batch.push_back(numbered(i));
    }
    batch.clear();
    CHECK(batch.empty());
    CHECK(batch.begin() == batch.end());
    batch.push_back(numbered(7));
    batch.back().component = "after clear";
    CHECK(sequences(batch) == std::vector<std::uint64_t>{7});
    CHECK(batch.front().component == "after clear");
}
