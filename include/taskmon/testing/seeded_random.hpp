// taskmon — coroutine supervision for standalone Asio.
// SPDX-License-Identifier: MIT
//
// SeededRandom: the random source of a simulation, the same sequence for a seed on every platform and build.
//
//   taskmon::testing::SeededRandom random{42};
//   if (random.chance(0.1)) { ... }            // true with probability 0.1
//   auto i = random.below(ready.size());       // an index, uniform in [0, size)
#pragma once

#include <array>
#include <cstdint>
#include <limits>
#include <stdexcept>
#include <string>

namespace taskmon::testing {

/// xoshiro256** (Blackman and Vigna), its state filled by splitmix64 from the seed. Not std::mt19937 with
/// <random>'s distributions: their results differ between standard libraries, and a seed must replay the same
/// run wherever it is replayed. Invariant: the state is never all zero (splitmix64 cannot produce four zeros).
class SeededRandom {
public:
    using result_type = std::uint64_t;

    explicit SeededRandom(std::uint64_t seed) noexcept : seed_{seed} {
        std::uint64_t x = seed;
        for (auto& word : state_) {
            word = splitmix64(x);
        }
    }

    /// The seed it was made from.
    [[nodiscard]] std::uint64_t seed() const noexcept { return seed_; }

    static constexpr result_type min() noexcept { return 0; }
    static constexpr result_type max() noexcept { return std::numeric_limits<result_type>::max(); }

    /// The next 64 random bits.
    result_type operator()() noexcept {
        const auto result = rotl(state_[1] * 5, 7) * 9;
        const auto t = state_[1] << 17;
        state_[2] ^= state_[0];
        state_[3] ^= state_[1];
        state_[1] ^= state_[2];
        state_[0] ^= state_[3];
        state_[2] ^= t;
        state_[3] = rotl(state_[3], 45);
        return result;
    }

    /// Uniform in [0, 1), with 53 random bits.
    double uniform() noexcept { return static_cast<double>((*this)() >> 11) * 0x1.0p-53; }

    /// Uniform in [0, n); n must be positive. Lemire's multiply-and-reject: no modulo bias.
    std::uint64_t below(std::uint64_t n) {
        if (n == 0) {
            throw std::invalid_argument("SeededRandom::below: n must be positive");
        }
        auto product = static_cast<Wide>((*this)()) * n;
        auto low = static_cast<std::uint64_t>(product);
        if (low < n) {
            const auto threshold = (0 - n) % n;
            while (low < threshold) {
                product = static_cast<Wide>((*this)()) * n;
                low = static_cast<std::uint64_t>(product);
            }
        }
        return static_cast<std::uint64_t>(product >> 64);
    }

    /// True with probability `p`, in [0, 1] (0 never draws: a zero chance costs nothing and changes no sequence).
    bool chance(double p) {
        if (!(p >= 0.0 && p <= 1.0)) {  // also rejects NaN
            throw std::invalid_argument("SeededRandom::chance: probability " + std::to_string(p) +
                                        " is outside [0, 1]");
        }
        return p > 0.0 && uniform() < p;
    }

private:
    __extension__ using Wide = unsigned __int128;  // g++ and clang; __extension__ keeps -Wpedantic quiet

    static constexpr std::uint64_t rotl(std::uint64_t x, int k) noexcept { return (x << k) | (x >> (64 - k)); }

    static constexpr std::uint64_t splitmix64(std::uint64_t& x) noexcept {
        std::uint64_t z = (x += 0x9e3779b97f4a7c15ULL);
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
        return z ^ (z >> 31);
    }

    std::uint64_t seed_;
    std::array<std::uint64_t, 4> state_{};
};

}  // namespace taskmon::testing
