// taskmon — coroutine supervision for standalone Asio.
// SPDX-License-Identifier: MIT
//
// SupervisionProperties: what a monitor promises, checked after every handler of a simulation. It reads the
// monitor's events and adds to the simulation one property per promise; the first that fails stops the run with
// a PropertyViolation naming the seed, the handler, the virtual time and the event.
//
//   taskmon::testing::Simulation sim{seed};
//   taskmon::BasicTaskMonitor<taskmon::testing::ManualClock> monitor{sim.get_executor(), policy, logger,
//                                                                     sim.random_source()};
//   taskmon::testing::SupervisionProperties properties{sim, monitor, policy};
//   properties.set_policy("gateway", gateway_policy);   // each component supervised with a policy of its own
//   properties.watch(faults);                           // a FaultInjector: never two live instances
//   properties.watch_permits("pool", pool);             // an AsyncSemaphore: no permit leaked by close()
//   ...
//   properties.expect_close();                          // when the close starts: it must end by its deadline
//   asio::co_spawn(sim.get_executor(), monitor.close(), on_closed);
#pragma once

#include <taskmon/async_semaphore.hpp>
#include <taskmon/component_group.hpp>
#include <taskmon/event_subscription.hpp>
#include <taskmon/monitor_event.hpp>
#include <taskmon/restart_policy.hpp>
#include <taskmon/testing/detail/supervision_checks.hpp>
#include <taskmon/testing/fault_injection.hpp>
#include <taskmon/testing/simulation.hpp>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace taskmon::testing {

/// The promises of a TaskMonitor (docs/simulation.md, "Built-in properties"), each a property of `sim`:
/// - "events in order, none lost": the events reach a listener in sequence order, each once, none missing at the
///   end of a handler (on one thread, all of a handler's events are delivered before the next handler runs);
/// - "each failure counted and reported once": every failure event raises the component's failure_count by one,
///   and nothing else changes it;
/// - "restarts within the window": no restart_window holds more than max_restart_attempts counted automatic
///   restarts of a component (against the policies this object was told);
/// - "group order": a group's members start in declaration order and, in a group restart, stop in reverse
///   order and start again in order once all have stopped;
/// - "close() by its deadline" (after expect_close()): the closed event comes by the latest shutdown_timeout of
///   an ungrouped component, or the sum of the grouped components' timeouts if that is later;
/// - "no permit leaked" (watch_permits()): once the monitor closed with every instance ended, no permit of the
///   semaphore is held;
/// - "never two live instances" (watch(FaultInjector)): no instance of a wrapped factory starts while another of
///   its component still runs.
/// Each event is also folded into the simulation's trace (its kind, component and group), so that two runs of a
/// seed that differ in what the monitor did hash differently.
/// Invariants: the checks see every event the monitor published after this object subscribed, in sequence order;
/// the policies they compare against are the ones set here (the monitor does not expose its own).
/// The monitor, the simulation and this object must outlive the runs of the simulation that check it.
class SupervisionProperties {
public:
    /// Subscribes to `monitor` and adds the properties to `sim`. `policy` is the monitor's policy: the one that
    /// applies to every component not given one with set_policy(). Construct it before the monitor's first
    /// supervise(), register_task() or spawn(): the checks count from each component's first event.
    template <typename Monitor>
    SupervisionProperties(Simulation& sim, Monitor& monitor, RestartPolicy policy)
        : books_{std::make_shared<Books>(sim, std::move(policy), [&monitor] { return monitor.get_group_stats(); })} {
        add_properties();
        subscription_ = monitor.subscribe([books = books_](const MonitorEvent& e) { books->on_event(e); });
    }

    SupervisionProperties(const SupervisionProperties&) = delete;
    SupervisionProperties& operator=(const SupervisionProperties&) = delete;

    /// The policy `component` was supervised with (supervise(name, factory, policy), a GroupMember's policy, or
    /// update_policy()). Throws std::invalid_argument for an empty name.
    void set_policy(const std::string& component, RestartPolicy policy) {
        if (component.empty()) {
            throw std::invalid_argument("SupervisionProperties::set_policy: the component's name must not be empty");
        }
        books_->policies[component] = std::move(policy);
    }

    /// set_policy() for each member of a group that has a policy of its own.
    void set_policies(const std::vector<GroupMember>& members) {
        for (const auto& m : members) {
            if (m.policy) {
                set_policy(m.name, *m.policy);
            }
        }
    }

    /// Adds "never two live instances": the injector's own check of the instances it made. It must outlive the
    /// simulation's runs.
    void watch(const FaultInjector& faults) {
        books_->sim->add_property("never two live instances", [&faults]() -> std::string {
            return faults.violations().empty() ? std::string{} : faults.violations().front();
        });
    }

    /// Adds "no permit leaked" for a semaphore the components use: `stats` reads it (AsyncSemaphore::stats,
    /// taskmon::get_io_semaphore_stats). Throws std::invalid_argument for an empty name or function.
    void watch_permits(std::string name, std::function<SemaphoreStats()> stats) {
        if (name.empty() || !stats) {
            throw std::invalid_argument(
                "SupervisionProperties::watch_permits: the name and the function must not "
                "be empty");
        }
        if (books_->semaphores.empty()) {
            add_permit_property();
        }
        books_->semaphores.emplace_back(std::move(name), std::move(stats));
    }

    /// The same for an AsyncSemaphore, which must outlive the simulation's runs.
    void watch_permits(std::string name, const AsyncSemaphore& semaphore) {
        watch_permits(std::move(name), [&semaphore] { return semaphore.stats(); });
    }

    /// The close starts now: from here its closed event must come by the deadline computed from the components
    /// the monitor has (their policies as set here), and the stops it makes are not checked as a group restart's
    /// (a close interrupts a restart under way). Call it right before starting close(). Returns the deadline.
    Simulation::time_point expect_close() {
        auto& b = *books_;
        if (!b.close_deadline) {
            add_close_property();
        }
        b.groups.close_started();
        Simulation::duration ungrouped{}, grouped{};
        for (const auto& [name, c] : b.components) {
            const auto timeout = std::chrono::duration_cast<Simulation::duration>(b.policy_of(name).shutdown_timeout);
            if (c.grouped) {
                grouped += timeout;
            } else {
                ungrouped = std::max(ungrouped, timeout);
            }
        }
        b.close_deadline = b.sim->now() + std::max(ungrouped, grouped);
        return *b.close_deadline;
    }

    /// Events checked so far.
    [[nodiscard]] std::size_t events_checked() const noexcept { return books_->checked; }

    /// Whether the closed event was seen.
    [[nodiscard]] bool closed() const noexcept { return books_->closed.has_value(); }

private:
    struct Component {
        bool grouped = false;
        std::optional<std::uint64_t> removed_at;  // removed, this instance still running
    };

    /// What the listener learns and the properties read; shared by both, so that neither outlives it.
    struct Books {
        using GroupSource = std::function<std::map<std::string, GroupStats>()>;

        Books(const Books&) = delete;  // its checks hold `this`
        Books& operator=(const Books&) = delete;

        Books(Simulation& s, RestartPolicy p, GroupSource g)
            : sim{&s},
              policy{std::move(p)},
              group_source{std::move(g)},
              window{[this](std::string_view c) -> const RestartPolicy& { return policy_of(c); }},
              groups{[this](std::string_view name) -> std::optional<std::vector<std::string>> {
                  const auto it = group_stats.find(name);
                  if (it == group_stats.end()) {
                      return std::nullopt;
                  }
                  return it->second.members;
              }} {}

        const RestartPolicy& policy_of(std::string_view component) const {
            const auto it = policies.find(component);
            return it == policies.end() ? policy : it->second;
        }

        void on_event(const MonitorEvent& e) {
            order.accept(e, errors.order, [this](const MonitorEvent& ready) { check(ready); });
        }

        void check(const MonitorEvent& e) {
            ++checked;
            sim->trace().add(static_cast<std::uint64_t>(e.kind)).add(e.component).add(e.group);
            if (!detail::is_group_kind(e.kind) && !e.component.empty()) {
                named.insert(e.component);  // (a set lookup, not an insert, once the name is known)
            }
            if ((e.kind == MonitorEventKind::group_started || e.kind == MonitorEventKind::group_restarting) &&
                !knows_tree_of(e)) {
                // The tree as the monitor holds it (a listener may call get_group_stats()): the events name a
                // group's direct members only, and a group under constant failures may never report started.
                // Asked only when the event names a group or member not seen yet (a new group, a nested group
                // added to its parent): a copy at every group event was 5 % of a campaign's instructions.
                const auto all = group_source();
                group_stats = {all.begin(), all.end()};
            }
            keep_first(errors.failures, failures.on_event(e));
            keep_first(errors.window, window.on_event(e));
            keep_first(errors.groups, groups.on_event(e));
            if (e.kind == MonitorEventKind::started) {
                components[e.component].grouped = !e.group.empty();
            } else if (e.kind == MonitorEventKind::removed && e.unresponsive == 0) {
                components.erase(e.component);  // (one whose instance outlived it still holds up a close)
            } else if (e.kind == MonitorEventKind::stopped && !e.component.empty()) {
                if (const auto it = components.find(e.component);
                    it != components.end() && it->second.removed_at && *it->second.removed_at == e.task_id) {
                    components.erase(it);
                }
            } else if (e.kind == MonitorEventKind::closed) {
                closed = e;
            }
            if (e.kind == MonitorEventKind::removed && e.unresponsive != 0) {
                if (const auto it = components.find(e.component); it != components.end()) {
                    it->second.removed_at = e.task_id;  // gone when that instance exits
                }
            }
        }

        bool knows_tree_of(const MonitorEvent& e) const {
            const auto it = group_stats.find(e.group);
            if (it == group_stats.end()) {
                return false;
            }
            if (e.kind == MonitorEventKind::group_started) {
                return it->second.members == e.members;  // (all of them, in order)
            }
            return std::all_of(e.members.begin(), e.members.end(), [this](const std::string& m) {
                return group_stats.find(m) != group_stats.end() || named.find(m) != named.end();
            });
        }

        static void keep_first(std::string& first, std::string error) {
            if (first.empty()) {
                first = std::move(error);
            }
        }

        Simulation* sim;
        RestartPolicy policy;
        GroupSource group_source;
        std::map<std::string, GroupStats, std::less<>> group_stats;  // the tree, as last asked for
        std::set<std::string, std::less<>> named;                    // components that had an event
        std::map<std::string, RestartPolicy, std::less<>> policies;
        detail::EventOrder order;
        detail::FailureCountCheck failures;
        detail::RestartWindowCheck window;
        detail::GroupOrderCheck groups;
        std::map<std::string, Component, std::less<>> components;  // those started and not removed
        std::vector<std::pair<std::string, std::function<SemaphoreStats()>>> semaphores;
        std::optional<Simulation::time_point> close_deadline;
        std::optional<MonitorEvent> closed;
        std::size_t checked = 0;
        struct {
            std::string order, failures, window, groups;
        } errors;
    };

    void add_properties() {
        auto& sim = *books_->sim;
        sim.add_property("events in order, none lost", [books = books_] {
            return books->errors.order.empty() ? books->order.missing() : books->errors.order;
        });
        sim.add_property("each failure counted and reported once", [books = books_] { return books->errors.failures; });
        sim.add_property("restarts within the window", [books = books_] { return books->errors.window; });
        sim.add_property("group order", [books = books_] { return books->errors.groups; });
    }

    // Added when first asked for: each property is called after every handler.
    void add_close_property() {
        books_->sim->add_property("close() by its deadline", [books = books_]() -> std::string {
            const auto& b = *books;
            if (!b.close_deadline || b.closed || b.sim->now() <= *b.close_deadline) {
                return {};
            }
            return "the monitor has not closed " +
                   std::to_string(
                       std::chrono::duration_cast<std::chrono::milliseconds>(b.sim->now() - *b.close_deadline)
                           .count()) +
                   " ms after its deadline";
        });
    }

    void add_permit_property() {
        books_->sim->add_property("no permit leaked", [books = books_]() -> std::string {
            const auto& b = *books;
            if (!b.closed || b.closed->unresponsive != 0) {
                return {};  // an instance that outlived close() may still hold its permit
            }
            for (const auto& [name, stats] : b.semaphores) {
                if (const auto s = stats(); s.in_use != 0) {
                    return "semaphore '" + name + "' has " + std::to_string(s.in_use) +
                           " permits in use after the monitor closed with every instance ended";
                }
            }
            return {};
        });
    }

    std::shared_ptr<Books> books_;
    EventSubscription subscription_;
};

}  // namespace taskmon::testing
