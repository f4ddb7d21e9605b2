// taskmon — coroutine supervision for standalone Asio.
// SPDX-License-Identifier: MIT
//
// Internal: the checks behind SupervisionProperties. Each reads a monitor's events one at a time, in the order of
// their sequence numbers, and returns what is wrong (empty while all is well). They take values and keep their
// own books: no simulation, clock or monitor is needed to test them.
#pragma once

#include <taskmon/monitor_event.hpp>
#include <taskmon/restart_policy.hpp>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace taskmon::testing::detail {

/// A failure of a component's instance or factory: each raises the component's failure_count by one.
[[nodiscard]] constexpr bool is_failure(MonitorEventKind k) noexcept {
    return k == MonitorEventKind::failed || k == MonitorEventKind::cancelled_unexpectedly ||
           k == MonitorEventKind::factory_failed || k == MonitorEventKind::watchdog_timeout ||
           k == MonitorEventKind::startup_timeout;
}

/// The kinds about a group (their `component`, when set, is the member that caused them, not their subject).
[[nodiscard]] constexpr bool is_group_kind(MonitorEventKind k) noexcept {
    return k == MonitorEventKind::group_started || k == MonitorEventKind::group_restarting ||
           k == MonitorEventKind::group_restarted || k == MonitorEventKind::group_gave_up ||
           k == MonitorEventKind::group_shutdown;
}

/// "  (event 12, restarted of 'db')": where a message points.
inline std::string describe_event(const MonitorEvent& e) {
    std::string s = " (event " + std::to_string(e.sequence) + ", " + std::string{to_string(e.kind)};
    if (!e.component.empty()) {
        s += " of '" + e.component + "'";
    } else if (!e.group.empty()) {
        s += " of group '" + e.group + "'";
    }
    return s + ")";
}

/// Puts events back in sequence order and finds a lost one. Events of one thread arrive in order; a gap that is
/// never filled (or an event seen twice) is an event lost (or duplicated) between the monitor and its listeners.
class EventOrder {
public:
    /// Takes an event and calls `on(event)` for each event now in order: this one at once if it is the next
    /// (the usual case, with no copy), then any held ones it released. An event that opens a gap is held; one
    /// seen before sets `error`.
    template <typename On>
    void accept(const MonitorEvent& e, std::string& error, On&& on) {
        if (!next_) {
            next_ = e.sequence;  // the first event seen: the listener may have subscribed late
        }
        if (e.sequence < *next_ || held_.count(e.sequence) != 0) {
            error = "event " + std::to_string(e.sequence) + " was delivered twice";
            return;
        }
        if (e.sequence != *next_) {
            held_.emplace(e.sequence, e);
            return;
        }
        ++*next_;
        on(e);
        while (!held_.empty() && held_.begin()->first == *next_) {
            const auto released = std::move(held_.begin()->second);
            held_.erase(held_.begin());
            ++*next_;
            on(released);
        }
    }

    /// What is wrong once nothing more can arrive (the monitor closed, its last handler ran): a gap.
    [[nodiscard]] std::string missing() const {
        if (held_.empty()) {
            return {};
        }
        return "event " + std::to_string(*next_) + " never arrived (event " + std::to_string(held_.begin()->first) +
               " did)";
    }

private:
    std::optional<std::uint64_t> next_;
    std::map<std::uint64_t, MonitorEvent> held_;  // events that came before the ones they follow
};

/// Every failure counted once and reported once: each component event carries the component's failure_count,
/// which a failure event raises by exactly one and no other event changes. A failure counted without its event,
/// or reported twice, breaks the chain. A removed component's name starts again from zero: at its `removed`, or,
/// if its instance outlived the removal (`unresponsive`), at that instance's `stopped`, which comes later.
/// Precondition: it sees a component's events from its first (subscribe before the monitor starts anything).
class FailureCountCheck {
public:
    std::string on_event(const MonitorEvent& e) {
        if (e.component.empty() || is_group_kind(e.kind) || e.kind == MonitorEventKind::escalated) {
            return {};  // (escalated repeats its gave_up's count; a group's escalation has no component)
        }
        auto& books = counts_[e.component];
        const int expected = books.count + (is_failure(e.kind) ? 1 : 0);
        std::string error;
        if (e.failure_count != expected) {
            error = "component '" + e.component + "' has failure_count " + std::to_string(e.failure_count) +
                    ", expected " + std::to_string(expected) + describe_event(e);
        }
        books.count = e.failure_count;
        if (e.kind == MonitorEventKind::removed && e.unresponsive != 0) {
            books.leaving = e.task_id;  // its last event is that instance's exit
        } else if (e.kind == MonitorEventKind::removed ||
                   (books.leaving && e.kind == MonitorEventKind::stopped && e.task_id == *books.leaving)) {
            counts_.erase(e.component);
        }
        return error;
    }

private:
    struct Books {
        int count = 0;
        std::optional<std::uint64_t> leaving;  // removed while this instance still ran
    };
    std::map<std::string, Books, std::less<>> counts_;
};

/// No restart_window holds more than max_restart_attempts counted automatic restarts of a component. It counts a
/// restart when its `restarted` event follows a restart_scheduled decided on a failure the classifier counted
/// (a restart is remembered when it happens, a failure counted when its restart is decided), and forgets all at each
/// event that may clear the monitor's own window (reset, a manual restart, a closed breaker, a policy update, a
/// give-up): it counts a subset of what the monitor counts, so it never fails a correct run.
class RestartWindowCheck {
public:
    /// The policy that applies to a component.
    using PolicyOf = std::function<const RestartPolicy&(std::string_view component)>;

    explicit RestartWindowCheck(PolicyOf policy_of) : policy_of_{std::move(policy_of)} {}

    std::string on_event(const MonitorEvent& e) {
        if (e.component.empty() || is_group_kind(e.kind)) {
            return {};
        }
        auto& books = books_[e.component];
        switch (e.kind) {
            case MonitorEventKind::failed:
            case MonitorEventKind::cancelled_unexpectedly:
            case MonitorEventKind::factory_failed:
            case MonitorEventKind::watchdog_timeout:
            case MonitorEventKind::startup_timeout:
                books.failure_counted = e.failure_class == FailureClass::counted;
                books.pending_counted = false;
                break;
            case MonitorEventKind::restart_scheduled:
                // The restart is decided here, and counted if its failure was: a failure with no decision of its
                // own (one that joined a group restart under way) counts nowhere.
                books.pending_counted = books.failure_counted;
                books.failure_counted = false;
                break;
            case MonitorEventKind::restarted: return on_restarted(e, books);
            case MonitorEventKind::started:     // a retried first start: the monitor counts it (long before any
                books.pending_counted = false;  // restarted), and this check, counting a subset, does not
                books.failure_counted = false;
                break;
            case MonitorEventKind::reset:
            case MonitorEventKind::restart_requested:
            case MonitorEventKind::restart_merged:
            case MonitorEventKind::quarantine_closed:
            case MonitorEventKind::quarantined:
            case MonitorEventKind::policy_updated:
            case MonitorEventKind::gave_up:
            case MonitorEventKind::removed: books_.erase(e.component); break;
            default: break;
        }
        return {};
    }

private:
    using Time = std::chrono::system_clock::time_point;
    struct Books {
        std::vector<Time> restarts;    // counted automatic restarts, oldest first
        bool failure_counted = false;  // the latest failure was counted, and no restart was decided since
        bool pending_counted = false;  // the restart decided since counts
    };

    static constexpr bool automatic(RestartReason r) noexcept {
        return r == RestartReason::failed || r == RestartReason::cancelled_unexpectedly ||
               r == RestartReason::factory_failed || r == RestartReason::watchdog_timeout ||
               r == RestartReason::startup_timeout;
    }

    std::string on_restarted(const MonitorEvent& e, Books& books) {
        const bool counted = books.pending_counted && automatic(e.restart_reason);
        books.pending_counted = false;
        books.failure_counted = false;
        const auto& policy = policy_of_(e.component);
        if (!counted || policy.max_restart_attempts == unlimited_restart_attempts) {
            return {};
        }
        books.restarts.push_back(e.time);
        const auto from = e.time - std::chrono::duration_cast<Time::duration>(policy.restart_window);
        std::erase_if(books.restarts, [from](Time t) { return t <= from; });
        if (books.restarts.size() > static_cast<std::size_t>(policy.max_restart_attempts)) {
            const std::chrono::nanoseconds window = policy.restart_window;
            const bool whole_ms = window % std::chrono::milliseconds{1} == std::chrono::nanoseconds::zero();
            const auto window_text =
                whole_ms ? std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(window).count()) + " ms"
                         : std::to_string(window.count()) + " ns";
            return "component '" + e.component + "' restarted " + std::to_string(books.restarts.size()) +
                   " times within its restart_window of " + window_text + ", more than max_restart_attempts " +
                   std::to_string(policy.max_restart_attempts) + describe_event(e);
        }
        return {};
    }

    PolicyOf policy_of_;
    std::map<std::string, Books, std::less<>> books_;
};

/// A group's members start in order and stop in reverse. At group_started, its component members' `started`
/// events came in declaration order. Between group_restarting and group_restarted, the members it restarts (its
/// nested groups' members in their place) report their stops (stopped or stop_timeout, the first of each) in
/// reverse order, and their `restarted` events in order, all of them after the last stop.
class GroupOrderCheck {
public:
    /// The members of a group (components and nested groups, in start order); nothing if `name` is no group.
    using MembersOf = std::function<std::optional<std::vector<std::string>>(std::string_view name)>;

    explicit GroupOrderCheck(MembersOf members_of) : members_of_{std::move(members_of)} {}

    /// close() began: it stops every tree in reverse order, whatever restart was under way (and ends it without
    /// its group_restarted), so the restarts are no longer checked.
    void close_started() {
        closing_ = true;
        restarts_.clear();
    }

    std::string on_event(const MonitorEvent& e) {
        if (closing_ && e.kind == MonitorEventKind::group_restarting) {
            return {};
        }
        switch (e.kind) {
            case MonitorEventKind::started: started_at_[e.component] = e.sequence; return {};
            case MonitorEventKind::group_started: return check_started(e);
            case MonitorEventKind::group_restarting: begin_restart(e); return {};
            case MonitorEventKind::group_restarted: restarts_.erase(e.group); return {};
            case MonitorEventKind::group_gave_up:
            case MonitorEventKind::group_shutdown: restarts_.erase(e.group); return {};
            case MonitorEventKind::closed: restarts_.clear(); return {};
            case MonitorEventKind::stop_timeout: unresponsive_.insert(e.task_id); return on_stop(e);
            case MonitorEventKind::stopped:
                // An instance that outlived its shutdown_timeout was reported then; its exit, whenever it comes,
                // is not a stop of the restart under way.
                return unresponsive_.erase(e.task_id) != 0 ? std::string{} : on_stop(e);
            case MonitorEventKind::restarted:
                return e.restart_reason == RestartReason::group ? on_start(e) : std::string{};
            case MonitorEventKind::removed: started_at_.erase(e.component); return {};
            default: return {};
        }
    }

private:
    struct Restart {
        std::vector<std::string> leaves;  // in start order
        std::set<std::string, std::less<>> stopped;
        std::optional<std::size_t> last_stop;   // position in leaves of the latest stop reported
        std::optional<std::size_t> last_start;  // position of the latest restart
    };

    std::string check_started(const MonitorEvent& e) const {
        std::optional<std::uint64_t> previous;
        std::string previous_name;
        for (const auto& m : e.members) {
            if (members_of_(m)) {
                continue;  // a nested group starts on its own (group_started of its own)
            }
            const auto it = started_at_.find(m);
            if (it == started_at_.end()) {
                continue;
            }
            if (previous && it->second < *previous) {
                return "group '" + e.group + "' started member '" + m + "' before '" + previous_name +
                       "', which is declared before it" + describe_event(e);
            }
            previous = it->second;
            previous_name = m;
        }
        return {};
    }

    void leaves_of(const std::string& name, std::vector<std::string>& out, int depth = 0) const {
        const auto members = depth > 64 ? std::nullopt : members_of_(name);  // (a tree is never that deep)
        if (!members) {
            out.push_back(name);
            return;
        }
        for (const auto& m : *members) {
            leaves_of(m, out, depth + 1);
        }
    }

    /// A restart that begins while others of the same tree are under way (a member failed while they started
    /// their members again) joins them: the stopping starts over for all of them, in reverse order again.
    void begin_restart(const MonitorEvent& e) {
        Restart r;
        for (const auto& m : e.members) {
            leaves_of(m, r.leaves);
        }
        for (auto& [group, other] : restarts_) {
            const bool shared = std::any_of(other.leaves.begin(), other.leaves.end(), [&r](const std::string& x) {
                return std::find(r.leaves.begin(), r.leaves.end(), x) != r.leaves.end();
            });
            if (shared) {
                other.stopped.clear();
                other.last_stop.reset();
                other.last_start.reset();
            }
        }
        restarts_[e.group] = std::move(r);
    }

    static std::optional<std::size_t> position(const Restart& r, std::string_view name) {
        const auto it = std::find(r.leaves.begin(), r.leaves.end(), name);
        if (it == r.leaves.end()) {
            return std::nullopt;
        }
        return static_cast<std::size_t>(it - r.leaves.begin());
    }

    std::string on_stop(const MonitorEvent& e) {
        for (auto& [group, r] : restarts_) {
            const auto at = position(r, e.component);
            if (!at || !r.stopped.insert(e.component).second) {
                continue;  // not in this restart, or its second report (stop_timeout, then stopped)
            }
            if (r.last_start) {
                return "group '" + group + "' stopped member '" + e.component + "' after it started '" +
                       r.leaves[*r.last_start] + "' again" + describe_event(e);
            }
            if (r.last_stop && *at > *r.last_stop) {
                return "group '" + group + "' stopped member '" + e.component + "' after '" + r.leaves[*r.last_stop] +
                       "', which is declared before it (stops go in reverse order)" + describe_event(e);
            }
            r.last_stop = at;
        }
        return {};
    }

    std::string on_start(const MonitorEvent& e) {
        for (auto& [group, r] : restarts_) {
            const auto at = position(r, e.component);
            if (!at) {
                continue;
            }
            if (r.last_start && *at < *r.last_start) {
                return "group '" + group + "' started member '" + e.component + "' after '" + r.leaves[*r.last_start] +
                       "', which is declared after it" + describe_event(e);
            }
            r.last_start = at;
        }
        return {};
    }

    MembersOf members_of_;
    bool closing_ = false;
    std::map<std::string, std::uint64_t, std::less<>> started_at_;  // a component's latest `started`
    std::map<std::string, Restart, std::less<>> restarts_;          // group restarts under way
    std::set<std::uint64_t> unresponsive_;  // instances reported by stop_timeout that have not exited yet
};

}  // namespace taskmon::testing::detail
