// Test helper: checks how a taskmon enumeration is named and formatted (taskmon/detail/enum_formatter.hpp).
#pragma once

#include "taskmon_catch.hpp"

#include <fmt/format.h>

#include <set>
#include <string>
#include <type_traits>

namespace taskmon_test {

/// For every value from `first` to `last` (a contiguous enumeration): to_string gives a distinct, known name and
/// fmt::format("{}", value) prints exactly that name, also with a width spec. A value outside the enumeration
/// formats as "unknown" (to_string's answer for values a newer header may add).
template <typename E>
void check_enum_names(E first, E last) {
    using U = std::underlying_type_t<E>;
    std::set<std::string> names;
    for (auto i = static_cast<long long>(first); i <= static_cast<long long>(last); ++i) {
        const auto value = static_cast<E>(static_cast<U>(i));
        const std::string name{to_string(value)};
        CAPTURE(i, name);
        CHECK(name != "unknown");
        CHECK(fmt::format("{}", value) == name);
        CHECK(fmt::format("[{:>24}]", value) == fmt::format("[{:>24}]", name));
        names.insert(name);
    }
    CHECK(names.size() == static_cast<std::size_t>(static_cast<long long>(last) - static_cast<long long>(first) + 1));
    CHECK(fmt::format("{}", static_cast<E>(static_cast<U>(100))) == "unknown");
}

}  // namespace taskmon_test
