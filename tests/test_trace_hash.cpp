// TraceHash: the running hash that compares two simulated runs.
#include <taskmon/testing/trace_hash.hpp>

#include "taskmon_catch.hpp"

#include <cstdint>

using taskmon::testing::TraceHash;

TEST_CASE("TraceHash: equal sequences hash equal; framing tells apart what concatenation would not", "[trace_hash]") {
    CHECK(TraceHash{}.add("ab").add("c").value() == TraceHash{}.add("ab").add("c").value());
    CHECK(TraceHash{}.add("ab").add("c").value() != TraceHash{}.add("a").add("bc").value());
    CHECK(TraceHash{}.add(std::uint64_t{1}).value() != TraceHash{}.add(std::uint64_t{2}).value());
}
