// Test helpers for TaskMonitor groups (test_component_group.cpp, test_component_group_edge.cpp): members that
// play a scripted role (ready after a delay, fail or complete on given starts, ignore cancellation for a while)
// and a journal of what they did, in virtual time.
#pragma once

#include <taskmon/component_group.hpp>
#include <taskmon/task_monitor.hpp>

#include "monitor_harness.hpp"

#include <asio/this_coro.hpp>

#include <algorithm>
#include <chrono>
#include <exception>
#include <optional>
#include <stdexcept>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

namespace taskmon_test {

/// What one member does on each start.
struct Role {
    std::vector<Duration> fail_after{};        ///< i-th start throws this long after ready(); later starts run on
    std::optional<Duration> complete_after{};  ///< returns normally this long after ready() (if it does not fail)
    Duration ready_after{};                    ///< calls ready() after this
    std::vector<Duration> ready_after_nth{};   ///< i-th start: calls ready() after this (else ready_after)
    Duration stop_delay{};                     ///< once cancelled, keeps running this long (ignoring cancellation)
    std::vector<int> factory_throws{};         ///< factory calls (0-based) that throw instead of making a task
    int factory_calls = 0;
    int starts = 0;
    int live = 0;
    int max_live = 0;  ///< never more than 1: never two live instances
};

/// "start a", "ready a", "exit a" with their virtual times, in order.
struct Journal {
    explicit Journal(Harness& harness) : h{harness}, origin{harness.time.now()} {}

    Harness& h;
    taskmon::testing::ManualClock::time_point origin;
    std::vector<std::pair<std::string, Duration>> entries;

    void log(const std::string& what) { entries.emplace_back(what, h.time.now() - origin); }

    [[nodiscard]] Names of(const std::string& prefix) const {
        Names out;
        for (const auto& [what, at] : entries) {
            if (what.rfind(prefix, 0) == 0) {
                out.push_back(what.substr(prefix.size()));
            }
        }
        return out;
    }

    [[nodiscard]] Names all() const {
        Names out;
        for (const auto& [what, at] : entries) {
            out.push_back(what);
        }
        return out;
    }

    [[nodiscard]] std::optional<Duration> find(const std::string& what, int nth = 0) const {
        for (const auto& [w, t] : entries) {
            if (w == what && nth-- == 0) {
                return t;
            }
        }
        return std::nullopt;
    }

    [[nodiscard]] Duration at(const std::string& what, int nth = 0) const {
        const auto t = find(what, nth);
        if (!t) {
            FAIL("no journal entry " << what << " #" << nth);
        }
        return *t;
    }
};

struct LiveGuard {
    Journal& journal;
    Role& role;
    std::string name;
    LiveGuard(Journal& j, Role& r, std::string n) : journal{j}, role{r}, name{std::move(n)} {
        role.max_live = std::max(role.max_live, ++role.live);
        journal.log("start " + name);
    }
    LiveGuard(const LiveGuard&) = delete;
    LiveGuard& operator=(const LiveGuard&) = delete;
    ~LiveGuard() {
        --role.live;
        journal.log("exit " + name);
    }
};

inline asio::awaitable<void> play(Journal& journal, std::string name, Role& role, taskmon::ComponentContext ctx) {
    const auto index = static_cast<std::size_t>(role.starts++);
    LiveGuard guard{journal, role, name};
    std::exception_ptr cancelled;
    try {
        const auto ready_after = index < role.ready_after_nth.size() ? role.ready_after_nth[index] : role.ready_after;
        if (ready_after > Duration::zero()) {
            co_await sleep_for(ready_after);
        }
        ctx.ready();
        journal.log("ready " + name);
        if (index < role.fail_after.size()) {
            co_await sleep_for(role.fail_after[index]);
            throw std::runtime_error(name + " broke");
        }
        if (role.complete_after) {
            co_await sleep_for(*role.complete_after);
            co_return;
        }
        co_await sleep_for(std::chrono::hours{24});
    } catch (const std::system_error&) {
        cancelled = std::current_exception();
    }
    if (!cancelled) {
        co_return;  // a day went by
    }
    if (role.stop_delay > Duration::zero()) {
        journal.log("stopping " + name);
        co_await asio::this_coro::reset_cancellation_state();  // else the next co_await throws at once
        co_await sleep_ignoring_cancellation(role.stop_delay);
    }
    std::rethrow_exception(cancelled);
}

inline taskmon::GroupMember member(Journal& journal, const std::string& name, Role& role,
                                   taskmon::RestartPolicy policy = {}, bool significant = false) {
    return taskmon::GroupMember{.name = name,
                                .context_factory =
                                    [&journal, &role, name](taskmon::ComponentContext ctx) {
                                        const int call = role.factory_calls++;
                                        if (std::find(role.factory_throws.begin(), role.factory_throws.end(), call) !=
                                            role.factory_throws.end()) {
                                            throw std::runtime_error(name + " factory broke");
                                        }
                                        return play(journal, name, role, std::move(ctx));
                                    },
                                .policy = policy,
                                .significant = significant};
}

/// Members' policy: 1 s backoff, generous limits, ready() needed within a minute.
inline const taskmon::RestartPolicy quick{.max_restart_attempts = 100,
                                          .base_backoff = std::chrono::seconds{1},
                                          .max_backoff = std::chrono::seconds{1},
                                          .startup_timeout = std::chrono::minutes{1}};

}  // namespace taskmon_test
