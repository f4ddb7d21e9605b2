// taskmon — coroutine supervision for standalone Asio.
// SPDX-License-Identifier: MIT
//
// Internal: the timeline's lane states that have a colour of their own, for the SVG writer (fills, legend order)
// and for the translation of events (an event kind named like one of these states sets that state).
#pragma once

#include <string_view>

namespace taskmon::detail::timeline {

/// The lane states with a colour of their own (fill, text colour), in legend order.
struct StateStyle {
    std::string_view name;
    std::string_view fill;
    std::string_view text;
};
inline constexpr StateStyle state_styles[] = {
    {"running", "#43a047", "#ffffff"},
    {"backing_off", "#ffb300", "#3e2723"},
    {"restarting", "#ffd54f", "#3e2723"},
    {"quarantined", "#8e24aa", "#ffffff"},
    {"gave_up", "#d32f2f", "#ffffff"},
    {"failed", "#8e1c1c", "#ffffff"},
    {"unresponsive", "#5d4037", "#ffffff"},
    {"stopping", "#bdbdbd", "#212121"},
    {"stopped", "#9e9e9e", "#212121"},
    {"completed", "#64b5f6", "#0d2a40"},
    // run statuses not named above
    {"pending", "#e0e0e0", "#212121"},
    {"paused", "#78909c", "#ffffff"},
    {"max_steps_reached", "#fb8c00", "#ffffff"},
    // overlays
    {"load_shedding", "#ff7043", "#ffffff"},
};
inline constexpr StateStyle unknown_state_style{"", "#546e7a", "#ffffff"};

inline const StateStyle* find_state_style(std::string_view name) noexcept {
    for (const auto& s : state_styles) {
        if (s.name == name) return &s;
    }
    return nullptr;
}

}  // namespace taskmon::detail::timeline
