// taskmon — coroutine supervision for standalone Asio.
// SPDX-License-Identifier: MIT
//
// Records found by their own name: the monitor's index of its components (internal).
#pragma once

#include <taskmon/detail/config.hpp>

#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string_view>
#include <utility>
#include <vector>

namespace taskmon::detail {

/// The hash a record keeps of its name (NameIndex compares it before the names).
inline std::uint32_t name_hash(std::string_view name) noexcept {
    // FNV-1a: a few instructions per byte on the short names components have, with no per-process seed, so a
    // seeded simulation visits components in the same order in every run.
    std::uint32_t h = 2166136261U;
    for (const char ch : name) {
        h = (h ^ static_cast<unsigned char>(ch)) * 16777619U;
    }
    // A final mix, so the low bits the table indexes by depend on every byte ("c-1" .. "c-99" differ late).
    h ^= h >> 16;
    h *= 0x7feb352dU;
    h ^= h >> 15;
    return h;
}

/// Pointers to records, found by the name each record holds, kept in the order they were added: a dense array
/// of the pointers and an open-addressing hash table (linear probing) of their positions in it. `Traits` gives
/// `name(p)` (a std::string_view), `hash_of(name)` and `hash(p)`, which is hash_of(name(p)) kept in the record
/// so that neither a probe nor a move reads the name.
///
/// Not a node per record: a record costs its 16-byte pointer and a 4-byte position at a load of 3/8 to 3/4 (about
/// 28 bytes with the slack of both arrays), where a std::set node was 48 bytes (glibc's 64-byte class).
/// Iteration reads the dense array in the order of registration, which is also the order of the records in
/// memory: closing 100,000 components in hash order, which visits their coroutine frames at random, took 20 %
/// longer than in that order. An erase moves the last record into the gap (the order of the others is kept).
///
/// Invariants: `slots_` is empty or of a power-of-two size; a slot holds 0 or i + 1 for the record at
/// records_[i], every i has exactly one slot, and that slot is in the probe sequence of the record's hash with no
/// empty slot between its home slot and itself (erase shifts later slots back to keep that); no two records share
/// a name; records_.size() is at most 3/4 of the slots. Inserting or erasing invalidates iterators.
template <typename Ptr, typename Traits>
class NameIndex {
public:
    using iterator = typename std::vector<Ptr>::const_iterator;
    using const_iterator = iterator;

    [[nodiscard]] iterator begin() const noexcept { return records_.begin(); }
    [[nodiscard]] iterator end() const noexcept { return records_.end(); }
    [[nodiscard]] std::size_t size() const noexcept { return records_.size(); }
    [[nodiscard]] bool empty() const noexcept { return records_.empty(); }

    /// The record named `name`; end() if none.
    [[nodiscard]] iterator find(std::string_view name) const noexcept {
        if (slots_.empty()) {
            return end();
        }
        const auto h = Traits::hash_of(name);
        for (std::size_t i = h & mask(); slots_[i] != 0; i = next(i)) {
            const auto& r = records_[slots_[i] - 1];
            if (Traits::hash(r) == h && Traits::name(r) == name) {
                return begin() + static_cast<std::ptrdiff_t>(slots_[i] - 1);
            }
        }
        return end();
    }

    [[nodiscard]] std::size_t count(std::string_view name) const noexcept { return find(name) == end() ? 0 : 1; }

    /// Adds `p` last unless a record of its name is here; returns whether it was added. Throws std::bad_alloc, or
    /// std::length_error past 2^32 - 1 records, and changes nothing then.
    bool insert(const Ptr& p) {
        if (find(Traits::name(p)) != end()) {
            return false;
        }
        if (records_.size() >= max_records) {
            throw std::length_error("NameIndex: more than 2^32 - 1 records");
        }
        if ((records_.size() + 1) * 4 > slots_.size() * 3) {
            rehash(slots_.empty() ? min_slots : slots_.size() * 2);
        }
        records_.push_back(p);
        slots_[free_slot(Traits::hash(p))] = static_cast<std::uint32_t>(records_.size());
        return true;
    }

    /// Removes the record `it` points to; the last record takes its place. The arrays shrink (when they can
    /// allocate) once less than 1/8 of them is used.
    void erase(iterator it) noexcept {
        const auto at = static_cast<std::size_t>(it - begin());
        remove_slot(slot_of(at));
        const std::size_t last = records_.size() - 1;
        if (at != last) {
            slots_[slot_of(last)] = static_cast<std::uint32_t>(at + 1);
            records_[at] = std::move(records_[last]);
        }
        records_.pop_back();
        if (slots_.size() > min_slots && records_.size() * 8 < slots_.size()) {
            try {
                rehash(slots_.size() / 2);
                records_.shrink_to_fit();
            } catch (...) {  // NOLINT(bugprone-empty-catch): no memory to shrink into; the arrays stay as they are
            }
        }
    }

private:
    static constexpr std::size_t min_slots = 16;
    static constexpr std::size_t max_records = UINT32_MAX;

    [[nodiscard]] std::size_t mask() const noexcept { return slots_.size() - 1; }
    [[nodiscard]] std::size_t next(std::size_t i) const noexcept { return (i + 1) & mask(); }

    /// The first empty slot of the probe sequence of `hash`.
    [[nodiscard]] std::size_t free_slot(std::uint32_t hash) const noexcept {
        std::size_t i = hash & mask();
        while (slots_[i] != 0) {
            i = next(i);
        }
        return i;
    }

    /// The slot of the record at records_[at].
    [[nodiscard]] std::size_t slot_of(std::size_t at) const noexcept {
        std::size_t i = Traits::hash(records_[at]) & mask();
        while (slots_[i] != at + 1) {
            i = next(i);
        }
        return i;
    }

    /// Empties slot `i`. Backward shift: a later slot of the same run whose home is not cyclically in (i, j] moves
    /// into the gap, so that no probe meets an empty slot before its record.
    void remove_slot(std::size_t i) noexcept {
        slots_[i] = 0;
        for (std::size_t j = next(i); slots_[j] != 0; j = next(j)) {
            const std::size_t home = Traits::hash(records_[slots_[j] - 1]) & mask();
            const bool stays = i <= j ? (i < home && home <= j) : (i < home || home <= j);
            if (!stays) {
                slots_[i] = slots_[j];
                slots_[j] = 0;
                i = j;
            }
        }
    }

    void rehash(std::size_t n) {
        std::vector<std::uint32_t> fresh(n);  // the only step that allocates: on failure nothing changed
        fresh.swap(slots_);
        for (std::size_t at = 0; at < records_.size(); ++at) {
            slots_[free_slot(Traits::hash(records_[at]))] = static_cast<std::uint32_t>(at + 1);
        }
    }

    std::vector<Ptr> records_;
    std::vector<std::uint32_t> slots_;
};

}  // namespace taskmon::detail
