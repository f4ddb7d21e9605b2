// SeededRandom: the simulation's generator, one sequence per seed, draws in range, bad arguments refused.
#include <taskmon/testing/seeded_random.hpp>

#include "taskmon_catch.hpp"

#include <cstdint>
#include <vector>

using taskmon::testing::SeededRandom;

TEST_CASE("SeededRandom: one seed, one sequence; draws stay in range; bad arguments are refused", "[seeded_random]") {
    SeededRandom a{42}, b{42}, c{43};
    std::vector<std::uint64_t> from_a, from_b, from_c;
    for (int i = 0; i < 5; ++i) {
        from_a.push_back(a());
        from_b.push_back(b());
        from_c.push_back(c());
    }
    CHECK(from_a == from_b);
    CHECK(from_a != from_c);
    SeededRandom r{1};
    std::vector<int> counts(6, 0);
    for (int i = 0; i < 6000; ++i) {
        const auto v = r.below(6);
        REQUIRE(v < 6);
        ++counts[static_cast<std::size_t>(v)];
        const double u = r.uniform();
        REQUIRE(u >= 0.0);
        REQUIRE(u < 1.0);
    }
    for (const int n : counts) {
        CHECK(n > 850);  // 1,000 expected each; a bias or a stuck value would show
        CHECK(n < 1150);
    }
    CHECK_FALSE(r.chance(0.0));
    CHECK(r.chance(1.0));
    CHECK_THROWS_WITH(r.chance(-0.1), "SeededRandom::chance: probability -0.100000 is outside [0, 1]");
    CHECK_THROWS_WITH(r.below(0), "SeededRandom::below: n must be positive");
}
