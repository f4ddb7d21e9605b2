// taskmon — coroutine supervision for standalone Asio.
// SPDX-License-Identifier: MIT
//
// Timeline data: what a TimelineRecorder makes (taskmon/ops/timeline.hpp) and render_svg() draws — lanes of spans and
// marks, the run's row, run-wide overlays — and the TimelineStyle it is drawn with. Plain data: change a Timeline
// before rendering if you like. A header of its own because the headers that build and draw a Timeline
// (taskmon/detail/timeline_*.hpp) need these types, and taskmon/ops/timeline.hpp includes those headers.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include <taskmon/agent/history.hpp>

namespace taskmon {

/// One stretch of a lane in one state, as offsets from Timeline::origin.
struct TimelineSpan {
    std::string state;  ///< "running", "backing_off", "gave_up", a run status, an overlay name, ...
    Offset begin{};
    Offset end{};
    std::string detail;  ///< shown as the tooltip (e.g. the reason of a status change)
};

/// What a mark stands for (its glyph).
enum class TimelineMarkKind : std::uint8_t {
    restart,  ///< a new instance started; label "#attempt delay"
    failure,  ///< an instance failed, a give-up, a factory failure
    warning,  ///< a watchdog stall, an expired decision, a hook error, ...
    note,     ///< anything else, including event kinds added after this header was written
};

/// One instant on a lane.
struct TimelineMark {
    TimelineMarkKind kind = TimelineMarkKind::note;
    Offset at{};
    std::string label;   ///< short text drawn beside the mark; may be empty
    std::string detail;  ///< the full text, shown as the tooltip
};

/// A component's row (or the run's row: its status over time and run-wide marks).
struct TimelineLane {
    std::string name;
    std::vector<TimelineSpan> spans;  ///< in time order, not overlapping, none empty
    std::vector<TimelineMark> marks;  ///< in time order
};

/// What render_svg() draws. Every offset is from `origin`, and lies in [0, end].
struct Timeline {
    std::chrono::system_clock::time_point origin{};  ///< wall time of offset 0
    Offset end{};                                    ///< the right edge of the picture
    TimelineLane run{"run", {}, {}};                 ///< a Supervisor's status over time; run-wide marks
    std::vector<TimelineSpan> overlays;              ///< run-wide stretches ("paused", "load_shedding")
    std::vector<TimelineLane> lanes;                 ///< one per component, in the order first seen
};

/// How render_svg() draws. Throws std::invalid_argument from render_svg() when out of range.
struct TimelineStyle {
    std::string title = "taskmon run timeline";
    int width = 1200;      ///< of the whole picture, in pixels; at least 480
    int lane_height = 44;  ///< of one component lane; at least 30
    std::string font_family = "DejaVu Sans, Verdana, Arial, sans-serif";
};

}  // namespace taskmon
