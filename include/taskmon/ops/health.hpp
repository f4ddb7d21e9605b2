// taskmon — coroutine supervision for standalone Asio.
// SPDX-License-Identifier: MIT
//
// HealthReport: liveness and readiness of a TaskMonitor (or a Supervisor), aggregated from its component stats,
// with a reason per failing component and plain-text renderings for probes, logs and systemd STATUS lines.
//
//   auto report = taskmon::check_health(monitor);                       // every component is critical
//   auto report = taskmon::check_health(monitor, taskmon::CriticalComponents::only({"db", "http"}));
//   auto report = taskmon::check_health(agent);                         // a Supervisor: its four critical loops
//   if (!report.live) { /* a critical component gave up: restart the process */ }
//   std::string line = taskmon::health_summary(report);                 // "live, not ready: db: restarting (last error: …)"
//   std::string body = taskmon::probe_details(report, taskmon::HealthProbe::readiness);  // "[+]db ok\n…"
//
// Rules (one function each, so each can change in one place):
//   component_is_live(stats)   false for gave_up, failed (not restarted) and unresponsive; true otherwise.
//   component_is_ready(stats)  true only for running and ready (ComponentStats::ready).
//   live  = every critical component is live.
//   ready = live, every critical component is known and ready, and (for a Supervisor) the run is running.
// Non-critical components are listed with their state and reason but never change live or ready.
// Spawned tasks (TaskMonitor::spawn(), ComponentStats::spawned: one per connection) are not components here:
// never counted, never listed.
#pragma once

#include <taskmon/agent/agent_status.hpp>
#include <taskmon/component_stats.hpp>
#include <taskmon/detail/utf8.hpp>

#include <algorithm>
#include <cstddef>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace taskmon {

template <typename Clock>
class BasicTaskMonitor;
template <typename Observation, typename Action, typename Result, typename Clock>
class Supervisor;

/// The liveness rule of one component: false once it will not run again without outside help (gave_up;
/// failed and not restarted; unresponsive, i.e. ignoring cancellation). Every other state, including states
/// added after this was written, counts as live: an unknown state must not get a healthy process restarted.
[[nodiscard]] constexpr bool component_is_live(const ComponentStats& stats) noexcept {
    switch (stats.state) {
        case ComponentState::gave_up:
        case ComponentState::failed:
        case ComponentState::unresponsive: return false;
        default: return true;
    }
}

/// The readiness rule of one component: running and ready (it called ComponentContext::ready(), or its policy
/// has no startup_timeout). A quarantined component is live (it is still tried) but not ready.
[[nodiscard]] constexpr bool component_is_ready(const ComponentStats& stats) noexcept {
    return stats.state == ComponentState::running && stats.ready;
}

/// Why a component is not live or not ready, in a few words ("gave up after 5 restarts: std::runtime_error:
/// Connection lost", "restarting (last error: …)", "not started"); empty for a live and ready component.
[[nodiscard]] inline std::string component_health_reason(const ComponentStats& stats) {
    const auto with_error = [&](std::string text) {
        if (!stats.last_error.empty()) {
            text += ": ";
            text += stats.last_error;
        }
        return text;
    };
    if (component_is_live(stats) && component_is_ready(stats)) {
        return {};
    }
    switch (stats.state) {
        case ComponentState::gave_up:
            return with_error("gave up after " + std::to_string(stats.restart_count) + " restart" +
                              (stats.restart_count == 1 ? "" : "s"));
        case ComponentState::failed: return with_error("failed and is not restarted");
        case ComponentState::unresponsive: return "unresponsive: ignored cancellation past its shutdown_timeout";
        case ComponentState::restarting:
            return stats.last_error.empty() ? "restarting" : "restarting (last error: " + stats.last_error + ")";
        case ComponentState::running: return "running, not ready yet";
        case ComponentState::not_started: return "not started";
        case ComponentState::stopping: return "stopping";
        case ComponentState::stopped: return "stopped";
        case ComponentState::completed: return "completed";
        case ComponentState::quarantined: return with_error("quarantined until its next trial");
    }
    return with_error("in state " + std::string{to_string(stats.state)});
}

/// Which components decide live and ready. Default: every component the monitor knows (an empty monitor is
/// then not ready: nothing was registered yet). only(names): exactly these; a named component the monitor does
/// not know (yet) is not ready ("not registered") but live; only({}) makes every report live and ready.
/// Spawned tasks are never components of a report: a spawned task named here counts as not registered.
class CriticalComponents {
public:
    /// Every known component.
    CriticalComponents() = default;
    [[nodiscard]] static CriticalComponents all() { return {}; }
    [[nodiscard]] static CriticalComponents only(std::set<std::string> names) {
        CriticalComponents c;
        c.names_ = std::move(names);
        return c;
    }

    [[nodiscard]] bool is_all() const noexcept { return !names_.has_value(); }
    [[nodiscard]] bool contains(const std::string& name) const { return !names_ || names_->count(name) != 0; }
    /// The explicit set; empty for all().
    [[nodiscard]] const std::set<std::string>& names() const noexcept {
        static const std::set<std::string> none;
        return names_ ? *names_ : none;
    }

private:
    std::optional<std::set<std::string>> names_;
};

/// One component in a report.
struct ComponentHealth {
    std::string name;
    bool known = true;  ///< false: named critical but not (yet) in the monitor; state is then not_started
    ComponentState state = ComponentState::not_started;
    bool critical = false;
    bool live = true;    ///< component_is_live()
    bool ready = false;  ///< component_is_ready() (false when unknown)
    std::string reason;  ///< component_health_reason(), "not registered" when unknown; empty when live and ready
};

/// One reason a probe fails: a component ("db"), "agent" (a Supervisor's run status) or "monitor" (nothing
/// registered).
struct HealthFailure {
    std::string subject;
    std::string reason;
};

/// Which probe a rendering is for: liveness (restart me when it fails) or readiness (send me work).
enum class HealthProbe { liveness, readiness };

[[nodiscard]] constexpr std::string_view to_string(HealthProbe probe) noexcept {
    return probe == HealthProbe::liveness ? "liveness" : "readiness";
}

/// A snapshot of health. Invariants: live == liveness_failures.empty(); ready == readiness_failures.empty();
/// !live implies !ready (every liveness failure is also a readiness failure). components is sorted by name.
struct HealthReport {
    bool live = true;
    bool ready = true;
    std::vector<HealthFailure> liveness_failures;
    std::vector<HealthFailure> readiness_failures;
    std::vector<ComponentHealth> components;  ///< every known component plus named critical ones not known
    std::optional<AgentStatus> agent_status;  ///< set for a Supervisor's report

    [[nodiscard]] bool passes(HealthProbe probe) const noexcept {
        return probe == HealthProbe::liveness ? live : ready;
    }
    [[nodiscard]] const std::vector<HealthFailure>& failures(HealthProbe probe) const noexcept {
        return probe == HealthProbe::liveness ? liveness_failures : readiness_failures;
    }
    /// The named component, or nullptr.
    [[nodiscard]] const ComponentHealth* find(std::string_view name) const noexcept {
        const auto it = std::find_if(components.begin(), components.end(),
                                     [&](const ComponentHealth& c) { return c.name == name; });
        return it == components.end() ? nullptr : &*it;
    }
};

/// The report for a snapshot of component stats (as from get_component_stats()). Entries with `spawned` set are
/// skipped: they neither change live or ready nor appear in the report.
[[nodiscard]] inline HealthReport check_health(const std::map<std::string, ComponentStats>& stats,
                                               const CriticalComponents& critical = {}) {
    HealthReport report;
    const auto add = [&](ComponentHealth c) {
        if (c.critical && !c.live) {
            report.liveness_failures.push_back({c.name, c.reason});
        }
        if (c.critical && (!c.live || !c.ready)) {
            report.readiness_failures.push_back({c.name, c.reason});
        }
        report.components.push_back(std::move(c));
    };
    // std::map and std::set are both sorted: merge the known components with the named ones not known.
    auto named = critical.names().begin();
    const auto named_end = critical.names().end();
    const auto add_unknown_before = [&](const std::string* limit) {
        for (; named != named_end && (limit == nullptr || *named < *limit); ++named) {
            add(ComponentHealth{*named, false, ComponentState::not_started, true, true, false, "not registered"});
        }
        if (limit != nullptr && named != named_end && *named == *limit) {
            ++named;
        }
    };
    bool any = false;
    for (const auto& [name, s] : stats) {
        if (s.spawned) {
            continue;  // a named one stays in `named`: reported as not registered
        }
        any = true;
        add_unknown_before(&name);
        add(ComponentHealth{name, true, s.state, critical.contains(name), component_is_live(s), component_is_ready(s),
                            component_health_reason(s)});
    }
    add_unknown_before(nullptr);
    if (critical.is_all() && !any) {
        report.readiness_failures.push_back({"monitor", "no component is registered"});
    }
    report.live = report.liveness_failures.empty();
    report.ready = report.readiness_failures.empty();
    return report;
}

/// The report for a TaskMonitor (one consistent snapshot of its stats).
template <typename Clock>
[[nodiscard]] HealthReport check_health(const BasicTaskMonitor<Clock>& monitor,
                                        const CriticalComponents& critical = {}) {
    return check_health(monitor.get_component_stats(), critical);
}

/// The report for a Supervisor: its critical components are Supervisor::is_critical() (perception,
/// perception_watchdog, decision_loop, actuation_loop). The run's status adds: failed → not live ("agent");
/// any status but running → not ready ("agent", e.g. "run is paused"). Before run() (pending) the
/// components are not registered yet, so the report is live and not ready.
template <typename Observation, typename Action, typename Result, typename Clock>
[[nodiscard]] HealthReport check_health(const Supervisor<Observation, Action, Result, Clock>& agent) {
    using Agent = Supervisor<Observation, Action, Result, Clock>;
    const AgentStatus status = agent.status();
    std::set<std::string> names;
    for (const char* name : Agent::critical_components()) {
        names.insert(name);
    }
    HealthReport report = check_health(agent.get_component_stats(), CriticalComponents::only(std::move(names)));
    report.agent_status = status;
    // A run waiting for an operator is alive but not ready, and says what it waits for.
    const std::string why = "run is " + std::string{to_string(status)} +
                            (status == AgentStatus::waiting_for_input ? ": waiting for an operator (resume_with)" : "");
    if (status == AgentStatus::failed) {
        report.liveness_failures.push_back({"agent", why});
    }
    if (status != AgentStatus::running) {
        report.readiness_failures.push_back({"agent", why});
    }
    report.live = report.liveness_failures.empty();
    report.ready = report.readiness_failures.empty();
    return report;
}

namespace detail {
inline void append_failures(std::string& out, const std::vector<HealthFailure>& failures) {
    for (std::size_t i = 0; i < failures.size(); ++i) {
        out += i == 0 ? "" : "; ";
        out += failures[i].subject;
        out += ": ";
        out += failures[i].reason;
    }
}
}  // namespace detail

/// One line covering both probes, for logs and systemd STATUS: "live, ready (3 components)",
/// "live, not ready: db: restarting (last error: std::runtime_error: Connection lost)", "not live: db: gave up after 5
/// restarts: …" (failures separated by "; "). No newline (a reason's own newlines are replaced by spaces), and
/// valid UTF-8 (each invalid byte of a name or an exception message becomes U+FFFD): /readyz answers in
/// `charset=utf-8` and systemd shows STATUS= as UTF-8.
[[nodiscard]] inline std::string health_summary(const HealthReport& report) {
    std::string out;
    if (!report.live) {
        out = "not live: ";
        detail::append_failures(out, report.liveness_failures);
    } else if (!report.ready) {
        out = "live, not ready: ";
        detail::append_failures(out, report.readiness_failures);
    } else {
        out = "live, ready (" + std::to_string(report.components.size()) + " component" +
              (report.components.size() == 1 ? "" : "s") + ")";
    }
    std::replace(out.begin(), out.end(), '\n', ' ');
    std::replace(out.begin(), out.end(), '\r', ' ');
    return detail::to_valid_utf8(out);
}

/// A probe's short answer, one line: "ok", or "failed: db: gave up after 5 restarts: …; http: not started".
/// Valid UTF-8, as health_summary().
[[nodiscard]] inline std::string probe_summary(const HealthReport& report, HealthProbe probe) {
    if (report.passes(probe)) {
        return "ok";
    }
    std::string out = "failed: ";
    detail::append_failures(out, report.failures(probe));
    std::replace(out.begin(), out.end(), '\n', ' ');
    std::replace(out.begin(), out.end(), '\r', ' ');
    return detail::to_valid_utf8(out);
}

/// A probe's per-component listing in the style of Kubernetes' `?verbose`, one line each, '\n'-terminated:
///   [+]db ok
///   [-]http failed: restarting (last error: std::runtime_error: bind failed)
///   [+]metrics ok (not critical)
///   [!]cache not ready (not critical): restarting
///   [-]agent failed: run is paused                   (Supervisor reports: the run's status)
///   readiness check failed                           (or "liveness check passed")
/// For liveness, a component that is live but not ready is "ok". Valid UTF-8, as health_summary().
[[nodiscard]] inline std::string probe_details(const HealthReport& report, HealthProbe probe) {
    std::string out;
    const auto line = [&](std::string text) {
        std::replace(text.begin(), text.end(), '\n', ' ');
        std::replace(text.begin(), text.end(), '\r', ' ');
        out += detail::to_valid_utf8(text);
        out += '\n';
    };
    for (const auto& c : report.components) {
        const bool ok = probe == HealthProbe::liveness ? c.live : (c.live && c.ready);
        if (c.critical) {
            line(ok ? "[+]" + c.name + " ok" : "[-]" + c.name + " failed: " + c.reason);
        } else {
            line(ok ? "[+]" + c.name + " ok (not critical)"
                    : "[!]" + c.name + (probe == HealthProbe::liveness ? " not live" : " not ready") +
                          " (not critical): " + c.reason);
        }
    }
    for (const auto& f : report.failures(probe)) {
        if (report.find(f.subject) == nullptr) {
            line("[-]" + f.subject + " failed: " + f.reason);
        }
    }
    line(std::string{to_string(probe)} + (report.passes(probe) ? " check passed" : " check failed"));
    return out;
}

}  // namespace taskmon
