// NameIndex: records found by their own name through an open-addressing table, kept in the order they were added;
// checked against std::set under seeded random inserts and erases, including names whose hashes collide.
#include <taskmon/detail/name_index.hpp>

#include "taskmon_catch.hpp"

#include <cstdint>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

namespace {

struct Record {
    std::string name;
    std::uint32_t hash;
};
using RecordPtr = std::shared_ptr<Record>;

/// The real hash, or one that puts every name in one of four chains (so that probing, wrapping around the end
/// of the table and the backward shift of erase meet long runs).
template <bool Colliding>
struct Traits {
    static std::string_view name(const RecordPtr& r) noexcept { return r->name; }
    static std::uint32_t hash_of(std::string_view name) noexcept {
        const auto h = taskmon::detail::name_hash(name);
        return Colliding ? (h & 3U) * 5U + 13U : h;
    }
    static std::uint32_t hash(const RecordPtr& r) noexcept { return r->hash; }
};

template <bool Colliding>
RecordPtr record(std::string name) {
    const auto h = Traits<Colliding>::hash_of(name);
    return std::make_shared<Record>(Record{std::move(name), h});
}

template <typename Index>
std::set<std::string> names_in(const Index& index) {
    std::set<std::string> names;
    for (const auto& r : index) {
        CHECK(names.insert(r->name).second);  // each record once
    }
    return names;
}

}  // namespace

TEST_CASE("NameIndex: finds each record by its name, refuses a second record of a name", "[name_index]") {
    taskmon::detail::NameIndex<RecordPtr, Traits<false>> index;
    CHECK(index.empty());
    CHECK(index.find("a") == index.end());
    CHECK(index.begin() == index.end());
    const auto a = record<false>("a");
    CHECK(index.insert(a));
    CHECK(index.insert(record<false>("b")));
    CHECK_FALSE(index.insert(record<false>("a")));  // the name is taken
    CHECK(index.size() == 2);
    REQUIRE(index.find("a") != index.end());
    CHECK(*index.find("a") == a);
    CHECK(index.count("b") == 1);
    CHECK(index.count("c") == 0);
    index.erase(index.find("a"));
    CHECK(index.count("a") == 0);
    CHECK(names_in(index) == std::set<std::string>{"b"});
}

TEST_CASE("NameIndex: iterates in the order of insertion; an erase moves the last record into the gap",
          "[name_index]") {
    taskmon::detail::NameIndex<RecordPtr, Traits<false>> index;
    for (const char* name : {"d", "b", "a", "e", "c"}) {
        index.insert(record<false>(name));
    }
    const auto order = [&] {
        std::vector<std::string> names;
        for (const auto& r : index) {
            names.push_back(r->name);
        }
        return names;
    };
    CHECK(order() == std::vector<std::string>{"d", "b", "a", "e", "c"});
    index.erase(index.find("b"));
    CHECK(order() == std::vector<std::string>{"d", "c", "a", "e"});
    index.erase(index.find("e"));  // the last: nothing moves
    CHECK(order() == std::vector<std::string>{"d", "c", "a"});
    CHECK(index.count("c") == 1);  // found at its new place
}

TEMPLATE_TEST_CASE("NameIndex: random inserts and erases agree with std::set", "[name_index]", Traits<false>,
                   Traits<true>) {
    constexpr bool colliding = std::is_same_v<TestType, Traits<true>>;
    for (const std::uint32_t seed : {1U, 2U, 3U}) {
        CAPTURE(seed);
        std::mt19937 random{seed};
        taskmon::detail::NameIndex<RecordPtr, TestType> index;
        std::set<std::string> model;
        // Up to 600 live names: the table grows past its first sizes, and shrinks when most are erased.
        const int names = colliding ? 150 : 600;
        for (int step = 0; step < 3000; ++step) {
            const auto name = "c-" + std::to_string(random() % static_cast<unsigned>(names));
            const bool grow = step < 1500 ? random() % 4 != 0 : random() % 4 == 0;
            if (grow) {
                CHECK(index.insert(record<colliding>(name)) == model.insert(name).second);
            } else if (auto it = index.find(name); it != index.end()) {
                CHECK((*it)->name == name);
                index.erase(it);
                CHECK(model.erase(name) == 1);
            } else {
                CHECK(model.count(name) == 0);
            }
            REQUIRE(index.size() == model.size());
            if (step % 100 == 0) {
                CHECK(names_in(index) == model);
                for (const auto& n : model) {
                    REQUIRE(index.count(n) == 1);
                }
            }
        }
        CHECK(names_in(index) == model);
    }
}

TEST_CASE("name_hash: the same in every run, different for names that differ late", "[name_index]") {
    using taskmon::detail::name_hash;
    CHECK(name_hash("component-1") == name_hash(std::string{"component-1"}));
    std::set<std::uint32_t> low_bits;
    for (int i = 0; i < 64; ++i) {
        low_bits.insert(name_hash("component-" + std::to_string(i)) & 63U);
    }
    CHECK(low_bits.size() > 32);  // 64 sequential names spread over the slots of a 64-slot table
}
