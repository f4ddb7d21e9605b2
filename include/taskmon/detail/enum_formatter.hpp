// taskmon — coroutine supervision for standalone Asio.
// SPDX-License-Identifier: MIT
//
// Internal: one fmt::formatter for every enumeration of namespace taskmon that has a to_string() overload, so
// fmt::format("{}", state), spdlog's logger->info("{}", state) and format specs such as "{:<12}" print the
// enumerator's name. Every public header declaring such an enumeration includes this one; a new enumeration gets
// the formatter by declaring `constexpr std::string_view to_string(E) noexcept` next to it.
//
// Enumerations of other namespaces (nested ones such as taskmon::testing included) are left alone, even when
// they have a to_string() of their own: an application's own formatters never compete with this one.
#pragma once

#include <fmt/format.h>

#include <concepts>
#include <string_view>
#include <type_traits>

namespace taskmon {

namespace detail {
struct TaskmonEnumTag {};
}  // namespace detail

/// Declared, never defined (used in unevaluated operands only): argument-dependent lookup finds it for the
/// enumerations declared in namespace taskmon, and for no other type.
// clang-format off
template <typename E>
    requires std::is_enum_v<E>
detail::TaskmonEnumTag taskmon_enum_tag(E) noexcept;
// clang-format on

namespace detail {

/// Hides taskmon::taskmon_enum_tag from ordinary lookup below, so that only argument-dependent lookup (that is,
/// an enumeration of namespace taskmon) can find it.
void taskmon_enum_tag() = delete;

/// An enumeration of namespace taskmon with a to_string() found by argument-dependent lookup.
template <typename E>
concept NamedTaskmonEnum = std::is_enum_v<E> && requires(E e) {
    { taskmon_enum_tag(e) } -> std::same_as<TaskmonEnumTag>;
    { to_string(e) } -> std::convertible_to<std::string_view>;
};

/// The enumerator's name (called from here, not from namespace fmt, whose own to_string would compete).
template <NamedTaskmonEnum E>
constexpr std::string_view enum_name(E value) noexcept(noexcept(to_string(value))) {
    return to_string(value);
}

}  // namespace detail
}  // namespace taskmon

/// Formats a taskmon enumeration as its name (taskmon::to_string: "gave_up", "restart_scheduled"; "unknown" for
/// a value outside the enumeration). Takes the format spec of a string: "{:<12}", "{:>8}".
template <typename E>
    requires taskmon::detail::NamedTaskmonEnum<E>
struct fmt::formatter<E, char> : fmt::formatter<std::string_view, char> {
    template <typename FormatContext>
    auto format(E value, FormatContext& ctx) const {
        return fmt::formatter<std::string_view, char>::format(taskmon::detail::enum_name(value), ctx);
    }
};
