// taskmon — coroutine supervision for standalone Asio.
// SPDX-License-Identifier: MIT
//
// Internal: SvgWriter, which draws a Timeline as a standalone SVG document: the layout (rows, axis, legend), the
// spans and marks with their tooltips, the grid and the legend. render_svg() (taskmon/ops/timeline.hpp) checks the
// style and calls it.
#pragma once

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstddef>
#include <iterator>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <fmt/format.h>

#include <taskmon/agent/history.hpp>
#include <taskmon/detail/timeline_states.hpp>
#include <taskmon/detail/timeline_text.hpp>
#include <taskmon/detail/timeline_time.hpp>
#include <taskmon/ops/timeline_model.hpp>

namespace taskmon::detail::timeline {

class SvgWriter {
public:
    SvgWriter(const Timeline& t, const TimelineStyle& style) : t_(t), style_(style) {}

    std::string render() {
        layout();
        begin();
        draw_rows();
        draw_axis();
        draw_legend();
        out_ += "</svg>\n";
        return std::move(out_);
    }

private:
    static constexpr double margin = 16;
    static constexpr double char_width = 0.62;  // of the font size, a generous average for sans-serif
    static constexpr double label_font = 10;

    double x(Offset at) const {
        const double span = static_cast<double>(std::max(t_.end, Offset{1}).count());
        return plot_x0_ + (plot_x1_ - plot_x0_) * static_cast<double>(at.count()) / span;
    }
    static double text_width(std::string_view text, double font) {
        return static_cast<double>(text_length(text)) * font * char_width;
    }
    template <typename... Args>
    void put(fmt::format_string<Args...> format, Args&&... args) {
        fmt::format_to(std::back_inserter(out_), format, std::forward<Args>(args)...);
    }

    void layout() {
        std::size_t longest = 10;  // "run status"
        for (const auto& l : t_.lanes) longest = std::max(longest, text_length(l.name));
        for (const auto& o : t_.overlays) longest = std::max(longest, text_length(display_name(o.state)));
        label_chars_ = std::min<std::size_t>(longest, 32);
        const double label_width = static_cast<double>(label_chars_) * 12 * char_width + 14;
        width_ = style_.width;
        plot_x0_ = margin + label_width;
        plot_x1_ = width_ - margin - 12;
        double y = 62;
        if (!t_.run.spans.empty() || !t_.run.marks.empty()) {
            run_y_ = y;
            y += style_.lane_height;
        }
        for (const auto& o : t_.overlays) {
            const bool in_status_row = std::any_of(t_.run.spans.begin(), t_.run.spans.end(),
                                                   [&](const TimelineSpan& s) { return s.state == o.state; });
            if (!in_status_row &&
                std::find(overlay_names_.begin(), overlay_names_.end(), o.state) == overlay_names_.end()) {
                overlay_names_.push_back(o.state);
            }
        }
        overlay_y_ = y;
        y += 24.0 * static_cast<double>(overlay_names_.size());
        if (!overlay_names_.empty() || run_y_) y += 6;
        lanes_y_ = y;
        y += style_.lane_height * static_cast<double>(std::max<std::size_t>(t_.lanes.size(), 1));
        axis_y_ = y + 4;
        legend_y_ = axis_y_ + 58;
        collect_legend();
        const double per_row = std::max(1.0, std::floor((width_ - 2 * margin) / 190.0));
        legend_rows_ = static_cast<int>(std::ceil(static_cast<double>(legend_.size()) / per_row));
        height_ = legend_y_ + 20.0 * legend_rows_ + margin;
    }

    void collect_legend() {
        std::vector<std::string> states;
        const auto add = [&](const std::string& s) {
            if (std::find(states.begin(), states.end(), s) == states.end()) states.push_back(s);
        };
        for (const auto& l : t_.lanes) {
            for (const auto& s : l.spans) add(s.state);
        }
        for (const auto& s : t_.run.spans) add(s.state);
        for (const auto& o : t_.overlays) add(o.state);
        for (const auto& s : state_styles) {
            if (std::find(states.begin(), states.end(), s.name) != states.end()) {
                legend_.push_back({false, std::string{s.name}, {}});
            }
        }
        for (const auto& s : states) {
            if (find_state_style(s) == nullptr) legend_.push_back({false, s, {}});
        }
        bool kinds[4] = {false, false, false, false};
        for (const auto& l : t_.lanes) {
            for (const auto& m : l.marks) kinds[static_cast<int>(m.kind)] = true;
        }
        for (const auto& m : t_.run.marks) kinds[static_cast<int>(m.kind)] = true;
        constexpr std::string_view mark_names[] = {"restart (#n, backoff)", "failure", "warning", "note"};
        for (int k = 0; k < 4; ++k) {
            if (kinds[k]) legend_.push_back({true, std::string{mark_names[k]}, static_cast<TimelineMarkKind>(k)});
        }
    }

    void begin() {
        put("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
        put("<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{0:.0f}\" height=\"{1:.0f}\" viewBox=\"0 0 {0:.0f} "
            "{1:.0f}\" font-family=\"{2}\" font-size=\"12\">\n",
            width_, height_, xml_escape(style_.font_family));
        put("<title>{}</title>\n", xml_escape(style_.title));
        put("<defs><pattern id=\"hatch\" patternUnits=\"userSpaceOnUse\" width=\"6\" height=\"6\" "
            "patternTransform=\"rotate(45)\"><rect width=\"6\" height=\"6\" fill=\"#ffb300\"/><rect width=\"2\" "
            "height=\"6\" fill=\"#fff3c4\"/></pattern></defs>\n");
        put("<clipPath id=\"row-labels\"><rect x=\"{:.1f}\" y=\"0\" width=\"{:.1f}\" height=\"{:.0f}\"/></clipPath>\n",
            margin, plot_x0_ - 6 - margin, height_);
        put("<rect width=\"100%\" height=\"100%\" fill=\"#ffffff\"/>\n");
        put("<text x=\"{:.1f}\" y=\"26\" font-size=\"16\" font-weight=\"bold\" fill=\"#212121\">{}</text>\n", margin,
            xml_escape(shorten(style_.title, 90)));
        std::string subtitle = fmt::format("from {} · {} · {} component{}", format_utc(t_.origin),
                                           short_duration(t_.end), t_.lanes.size(), t_.lanes.size() == 1 ? "" : "s");
        put("<text x=\"{:.1f}\" y=\"44\" font-size=\"11\" fill=\"#616161\">{}</text>\n", margin, xml_escape(subtitle));
    }

    static const StateStyle& style_of(std::string_view state) {
        const auto* s = find_state_style(state);
        return s != nullptr ? *s : unknown_state_style;
    }
    static std::string fill_of(std::string_view state) {
        return state == "backing_off" ? std::string{"url(#hatch)"} : std::string{style_of(state).fill};
    }

    void row_label(double y, double h, std::string_view name, bool bold) {
        put("<text x=\"{:.1f}\" y=\"{:.1f}\" text-anchor=\"end\" fill=\"#212121\" clip-path=\"url(#row-labels)\"{}>{}"
            "<title>{}</title></text>\n",
            plot_x0_ - 8, y + h / 2 + 4, bold ? " font-weight=\"bold\"" : "", xml_escape(shorten(name, label_chars_)),
            xml_escape(name));
    }

    void span(const TimelineSpan& s, double y, double h, const char* cls) {
        const double x0 = x(s.begin);
        const double w = std::max(1.0, x(s.end) - x0);
        const auto& st = style_of(s.state);
        put("<rect class=\"{}\" data-state=\"{}\" x=\"{:.2f}\" y=\"{:.1f}\" width=\"{:.2f}\" height=\"{:.1f}\" "
            "fill=\"{}\"><title>{}: {} – {}{}{}</title></rect>\n",
            cls, xml_escape(s.state), x0, y, w, h, fill_of(s.state), xml_escape(display_name(s.state)),
            short_duration(s.begin), short_duration(s.end), s.detail.empty() ? "" : " — ", xml_escape(s.detail));
        // The name inside, where it fits (always for states without a colour of their own).
        const auto name = display_name(s.state);
        const bool wanted = s.state != "running" || std::string_view{cls} == "status";
        if (wanted && w >= text_width(name, label_font) + 10) {
            put("<text x=\"{:.2f}\" y=\"{:.1f}\" font-size=\"{}\" fill=\"{}\" pointer-events=\"none\">{}</text>\n",
                x0 + 7, y + h / 2 + 3.5, label_font, s.state == "backing_off" ? "#3e2723" : st.text, xml_escape(name));
        }
    }

    void glyph(TimelineMarkKind kind, double cx, double top, double bottom) {
        const double mid = (top + bottom) / 2;
        switch (kind) {
            case TimelineMarkKind::restart:
                put("<line x1=\"{0:.2f}\" y1=\"{1:.1f}\" x2=\"{0:.2f}\" y2=\"{2:.1f}\" stroke=\"#0d47a1\" "
                    "stroke-width=\"2\"/><path d=\"M{3:.2f},{4:.1f} l4,-6 l-8,0 z\" fill=\"#0d47a1\"/>",
                    cx, top - 2, bottom + 2, cx, top - 1);
                break;
            case TimelineMarkKind::failure:
                put("<path d=\"M{0:.2f},{1:.1f} l8,8 M{0:.2f},{2:.1f} l8,-8\" stroke=\"#b71c1c\" stroke-width=\"2.5\" "
                    "stroke-linecap=\"round\"/><path d=\"M{0:.2f},{1:.1f} l8,8 M{0:.2f},{2:.1f} l8,-8\" "
                    "stroke=\"#ffffff\" "
                    "stroke-width=\"0.8\" stroke-linecap=\"round\"/>",
                    cx - 4, mid - 4, mid + 4);
                break;
            case TimelineMarkKind::warning:
                put("<path d=\"M{:.2f},{:.1f} l5,9 l-10,0 z\" fill=\"#ef6c00\" stroke=\"#ffffff\" "
                    "stroke-width=\"0.8\"/>",
                    cx, mid - 5);
                break;
            case TimelineMarkKind::note:
                put("<path d=\"M{:.2f},{:.1f} l4,4 l-4,4 l-4,-4 z\" fill=\"#37474f\" stroke=\"#ffffff\" "
                    "stroke-width=\"0.8\"/>",
                    cx, mid - 4);
                break;
        }
    }

    /// Marks with their labels above the bar, or below it when the space above is taken; a label that fits in
    /// neither is left out (the mark's tooltip still has it).
    void marks(const std::vector<TimelineMark>& marks, double bar_top, double bar_bottom, double row_top,
               double row_bottom) {
        const char* names[] = {"restart", "failure", "warning", "note"};
        double free_above = -1e9;
        double free_below = -1e9;
        for (const auto& m : marks) {
            const double cx = x(m.at);
            put("<g class=\"mark {}\"><title>{} · {}</title>", names[static_cast<int>(m.kind)], short_duration(m.at),
                xml_escape(m.detail.empty() ? m.label : m.detail));
            glyph(m.kind, cx, bar_top, bar_bottom);
            if (!m.label.empty()) {
                const auto label = shorten(m.label, 24);
                const double w = text_width(label, label_font);
                const double left = std::clamp(cx + 4, plot_x0_, plot_x1_ - w);
                if (left >= free_above) {
                    put("<text x=\"{:.2f}\" y=\"{:.1f}\" font-size=\"{}\" fill=\"#263238\">{}</text>", left,
                        row_top + 10, label_font, xml_escape(label));
                    free_above = left + w + 4;
                } else if (left >= free_below) {
                    put("<text x=\"{:.2f}\" y=\"{:.1f}\" font-size=\"{}\" fill=\"#263238\">{}</text>", left,
                        row_bottom - 3, label_font, xml_escape(label));
                    free_below = left + w + 4;
                }
            }
            put("</g>\n");
        }
    }

    void draw_rows() {
        const double h = style_.lane_height;
        const double bar = std::round(h * 0.36);
        // Grid lines first, under everything.
        const auto scale = axis_scale(t_.end > Offset::zero() ? t_.end : Offset{std::chrono::seconds{1}});
        const auto ticks = tick_offsets(t_.end, scale.step);
        put("<g class=\"grid\" stroke=\"#eceff1\" stroke-width=\"1\">");
        for (const Offset at : ticks) {
            put("<line x1=\"{0:.2f}\" y1=\"{1:.1f}\" x2=\"{0:.2f}\" y2=\"{2:.1f}\"/>", x(at), run_y_.value_or(lanes_y_),
                axis_y_);
        }
        put("</g>\n");
        if (run_y_) {
            const double y = *run_y_;
            put("<g class=\"run\">\n<rect x=\"{:.1f}\" y=\"{:.1f}\" width=\"{:.1f}\" height=\"{:.1f}\" "
                "fill=\"#f5f7f8\"/>\n",
                margin, y, width_ - 2 * margin, h);
            row_label(y, h, t_.run.spans.empty() ? "run" : "run status", true);
            const double top = y + (h - bar) / 2;
            for (const auto& s : t_.run.spans) span(s, top, bar, "status");
            marks(t_.run.marks, top, top + bar, y, y + h);
            put("</g>\n");
        }
        for (std::size_t i = 0; i < overlay_names_.size(); ++i) {
            const double y = overlay_y_ + 24.0 * static_cast<double>(i);
            put("<g class=\"overlay\" data-overlay=\"{}\">\n", xml_escape(overlay_names_[i]));
            row_label(y, 24, display_name(overlay_names_[i]), false);
            for (const auto& o : t_.overlays) {
                if (o.state == overlay_names_[i]) span(o, y + 5, 14, "overlay-span");
            }
            put("</g>\n");
        }
        for (std::size_t i = 0; i < t_.lanes.size(); ++i) {
            const auto& lane = t_.lanes[i];
            const double y = lanes_y_ + h * static_cast<double>(i);
            put("<g class=\"lane\" data-lane=\"{}\">\n", xml_escape(lane.name));
            put("<rect x=\"{:.1f}\" y=\"{:.1f}\" width=\"{:.1f}\" height=\"{:.1f}\" fill=\"{}\"/>\n", margin, y,
                width_ - 2 * margin, h, i % 2 == 0 ? "#fafafa" : "#ffffff");
            row_label(y, h, lane.name, false);
            const double top = y + (h - bar) / 2;
            for (const auto& s : lane.spans) span(s, top, bar, "span");
            marks(lane.marks, top, top + bar, y, y + h);
            put("</g>\n");
        }
        if (t_.lanes.empty()) {
            put("<text x=\"{:.1f}\" y=\"{:.1f}\" fill=\"#757575\">no components recorded</text>\n", plot_x0_,
                lanes_y_ + h / 2 + 4);
        }
        // Pauses and other run-wide stretches, shaded across the component lanes.
        for (const auto& o : t_.overlays) {
            put("<rect class=\"overlay-shade\" x=\"{:.2f}\" y=\"{:.1f}\" width=\"{:.2f}\" height=\"{:.1f}\" "
                "fill=\"{}\" fill-opacity=\"0.14\" pointer-events=\"none\"/>\n",
                x(o.begin), lanes_y_, std::max(1.0, x(o.end) - x(o.begin)), h * static_cast<double>(t_.lanes.size()),
                style_of(o.state).fill);
        }
        // Status changes: a dashed line from the status row down through the lanes.
        if (run_y_) {
            for (std::size_t i = 1; i < t_.run.spans.size(); ++i) {
                put("<line class=\"status-change\" x1=\"{0:.2f}\" y1=\"{1:.1f}\" x2=\"{0:.2f}\" y2=\"{2:.1f}\" "
                    "stroke=\"#546e7a\" stroke-width=\"1\" stroke-dasharray=\"3,3\" pointer-events=\"none\"/>\n",
                    x(t_.run.spans[i].begin), *run_y_ + h, axis_y_);
            }
        }
    }

    void draw_axis() {
        const auto scale = axis_scale(t_.end > Offset::zero() ? t_.end : Offset{std::chrono::seconds{1}});
        const auto ticks = tick_offsets(t_.end, scale.step);
        put("<g class=\"axis\">\n<line x1=\"{:.2f}\" y1=\"{:.1f}\" x2=\"{:.2f}\" y2=\"{:.1f}\" stroke=\"#455a64\"/>\n",
            plot_x0_, axis_y_, plot_x1_, axis_y_);
        for (const Offset at : ticks) {
            put("<line x1=\"{0:.2f}\" y1=\"{1:.1f}\" x2=\"{0:.2f}\" y2=\"{2:.1f}\" stroke=\"#455a64\"/>"
                "<text x=\"{0:.2f}\" y=\"{3:.1f}\" text-anchor=\"middle\" font-size=\"11\" "
                "fill=\"#37474f\">{4}</text>\n",
                x(at), axis_y_, axis_y_ + 5, axis_y_ + 18, tick_label(at, scale));
        }
        put("<text x=\"{:.2f}\" y=\"{:.1f}\" text-anchor=\"end\" font-size=\"11\" fill=\"#616161\">time since "
            "the start of the run</text>\n</g>\n",
            plot_x1_, axis_y_ + 34);
    }

    void draw_legend() {
        put("<g class=\"legend\" font-size=\"11\">\n");
        const int per_row = std::max(1, static_cast<int>(std::floor((width_ - 2 * margin) / 190.0)));
        for (std::size_t i = 0; i < legend_.size(); ++i) {
            const double lx = margin + 190.0 * static_cast<double>(static_cast<int>(i) % per_row);
            const double ly = legend_y_ + 20.0 * static_cast<double>(static_cast<int>(i) / per_row);
            const auto& item = legend_[i];
            if (item.mark) {
                glyph(item.kind, lx + 8, ly - 9, ly + 3);
            } else {
                put("<rect x=\"{:.1f}\" y=\"{:.1f}\" width=\"16\" height=\"11\" fill=\"{}\"/>", lx, ly - 9,
                    fill_of(item.name));
            }
            put("<text x=\"{:.1f}\" y=\"{:.1f}\" fill=\"#37474f\">{}</text>\n", lx + 22, ly,
                xml_escape(item.mark ? item.name : display_name(item.name)));
        }
        put("</g>\n");
    }

    struct LegendItem {
        bool mark;
        std::string name;
        TimelineMarkKind kind;
    };

    const Timeline& t_;
    const TimelineStyle& style_;
    std::string out_;
    std::size_t label_chars_ = 10;
    double width_ = 0;
    double height_ = 0;
    double plot_x0_ = 0;
    double plot_x1_ = 0;
    std::optional<double> run_y_;
    double overlay_y_ = 0;
    double lanes_y_ = 0;
    double axis_y_ = 0;
    double legend_y_ = 0;
    int legend_rows_ = 0;
    std::vector<std::string> overlay_names_;
    std::vector<LegendItem> legend_;
};

}  // namespace taskmon::detail::timeline
