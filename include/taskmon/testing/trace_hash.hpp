// taskmon — coroutine supervision for standalone Asio.
// SPDX-License-Identifier: MIT
//
// TraceHash: a running hash of what a simulated run did, to compare two runs of one seed without keeping them.
//
//   taskmon::testing::TraceHash hash;
//   hash.add("started").add(std::string_view{"db"}).add(std::uint64_t{3});
//   hash.value();   // equal for equal sequences of additions, on every platform
#pragma once

#include <cstdint>
#include <string_view>

namespace taskmon::testing {

/// 64-bit FNV-1a over the additions, each framed by its length or width so that ("ab", "c") and ("a", "bc") differ.
/// The value depends on the values added only: integers are added byte by byte, least significant first.
class TraceHash {
public:
    TraceHash& add(std::string_view text) noexcept {
        add(static_cast<std::uint64_t>(text.size()));
        for (const char c : text) {
            byte(static_cast<unsigned char>(c));
        }
        return *this;
    }

    TraceHash& add(std::uint64_t value) noexcept {
        for (int i = 0; i < 8; ++i) {
            byte(static_cast<unsigned char>(value >> (8 * i)));
        }
        return *this;
    }

    TraceHash& add(std::int64_t value) noexcept { return add(static_cast<std::uint64_t>(value)); }

    [[nodiscard]] std::uint64_t value() const noexcept { return hash_; }

private:
    void byte(unsigned char b) noexcept {
        hash_ ^= b;
        hash_ *= 0x100000001b3ULL;  // the FNV prime for 64 bits
    }

    std::uint64_t hash_ = 0xcbf29ce484222325ULL;  // the FNV offset basis for 64 bits
};

}  // namespace taskmon::testing
