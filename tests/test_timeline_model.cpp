// Tests for taskmon/ops/timeline_model.hpp (and its former path taskmon/timeline_model.hpp): the Timeline is plain
// data, with the documented defaults, and render_svg() draws what it holds, however it was made.
#include <taskmon/ops/timeline.hpp>
#include <taskmon/timeline_model.hpp>

#include "taskmon_catch.hpp"

#include <chrono>
#include <cstddef>
#include <string>
#include <string_view>

using namespace std::chrono_literals;
using taskmon::Timeline;
using taskmon::TimelineLane;
using taskmon::TimelineMark;
using taskmon::TimelineMarkKind;
using taskmon::TimelineSpan;
using taskmon::TimelineStyle;

namespace {

std::size_t occurrences(std::string_view text, std::string_view needle) {
    std::size_t n = 0;
    for (auto at = text.find(needle); at != std::string_view::npos; at = text.find(needle, at + needle.size())) {
        ++n;
    }
    return n;
}

}  // namespace

TEST_CASE("timeline_model: the documented defaults", "[timeline_model]") {
    const Timeline t;
    CHECK(t.run.name == "run");
    CHECK(t.run.spans.empty());
    CHECK(t.lanes.empty());
    CHECK(t.overlays.empty());
    CHECK(t.end == 0ns);
    const TimelineStyle style;
    CHECK(style.width == 1200);
    CHECK(style.lane_height == 44);
    CHECK(style.title == "taskmon run timeline");
    CHECK(TimelineMark{}.kind == TimelineMarkKind::note);
}

TEST_CASE("timeline_model: a Timeline made or changed by hand is drawn as it is", "[timeline_model]") {
    Timeline t;
    t.end = 60s;
    t.lanes.push_back(
        TimelineLane{"ingest",
                     {TimelineSpan{"running", 0s, 20s, ""}, TimelineSpan{"backing_off", 20s, 25s, "boom"}},
                     {TimelineMark{TimelineMarkKind::restart, 25s, "#1 5s", "restarted after boom"}}});
    t.lanes.push_back(TimelineLane{"writer", {TimelineSpan{"running", 0s, 60s, ""}}, {}});
    auto svg = taskmon::render_svg(t);
    CHECK(occurrences(svg, "<g class=\"lane\"") == 2);
    CHECK(occurrences(svg, "restarted after boom") == 1);
    CHECK(occurrences(svg, "ingest") >= 1);

    // Plain data: a lane renamed and one removed before rendering show as such.
    t.lanes[0].name = "ingest-renamed";
    t.lanes.pop_back();
    svg = taskmon::render_svg(t, TimelineStyle{.title = "edited by hand"});
    CHECK(occurrences(svg, "<g class=\"lane\"") == 1);
    CHECK(occurrences(svg, "ingest-renamed") >= 1);
    CHECK(occurrences(svg, "writer") == 0);
    CHECK(occurrences(svg, "<title>edited by hand</title>") == 1);
}
