// taskmon — coroutine supervision for standalone Asio.
// SPDX-License-Identifier: MIT
//
// The group engine (internal): the supervision trees of supervise_group() and the restart units that stop and start
// their members in order. It owns the groups and decides, for a failed member, who restarts it; it drives a unit
// one step at a time. It holds no lock, arms no timer and calls no factory: the monitor calls it with its mutex held
// (the monitor's `engine_` is guarded by that mutex, so clang's -Wthread-safety checks every call), runs the starts
// and timers a step asks for, and lends the engine the few calls into the core listed in `Port` below.
#pragma once

#include <taskmon/component_group.hpp>
#include <taskmon/detail/component_lifecycle.hpp>
#include <taskmon/detail/event_batch.hpp>
#include <taskmon/detail/group_strategy.hpp>
#include <taskmon/detail/monitor_records.hpp>
#include <taskmon/detail/restart_decision.hpp>
#include <taskmon/monitor_event.hpp>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace taskmon::detail {

/// Who carries out the restart of a failed group member: decided first, before any accounting of the member's own.
enum class GroupVerdict {
    gives_up,         ///< a counted restart beyond the group's max_restarts: the group gives up
    member_restarts,  ///< a one_for_one component that no unit drives restarts on its own
    group_restarts,   ///< the group restarts what its strategy names
};

/// The group engine of monitor state `Host` on `Clock`. `Port` is the host's handle for the engine, with exactly
/// these calls into the core (each made with the host's mutex held, as every call into the engine is):
/// - `closing()`: the monitor is closing (units stop what they drive and start nothing);
/// - `restart_type(c)`: the restart type of component `c`'s policy;
/// - `take_over(cp)`: a unit drives `cp` from now on: its own pending restart (backoff or trial) is withdrawn;
/// - `stop(cp)`: asks `cp`'s live instance to stop (for the group, or for close);
/// - `report_unresponsive(c, now, events)`: `c`'s instance outlived its stop deadline;
/// - `schedule_start(cp)`: `cp` is the unit's next start; returns the restart generation the start must carry;
/// - `ready_time(instance)`: when a live instance became ready, if it did;
/// - `group_event(kind, g, now)`: a numbered event about group `g`;
/// - `escalate(event, events)`: hands a top-level give-up to the monitor's owner;
/// - `resume(unit)`: runs `unit` again soon, on the monitor's strand (a new unit, or one whose work changed);
/// - `retire(unit)`: `unit` was absorbed into another: its timer is cancelled on the monitor's strand.
/// It reads and writes the records (monitor_records.hpp) of the components it drives as far as a unit concerns them:
/// `unit`, `unit_role`, the reported `state` and `next_restart`, and the group accounting (`counted_in_group`).
template <typename Clock, typename Host, typename Port>
class GroupEngine {
public:
    using Records = MonitorRecords<Clock, Host>;
    using time_point = typename Clock::time_point;
    using duration = typename Clock::duration;
    using Component = typename Records::Component;
    using ComponentPtr = typename Records::ComponentPtr;
    using Member = typename Records::Member;
    using Group = typename Records::Group;
    using RestartUnit = typename Records::RestartUnit;
    using Events = EventBatch;

    explicit GroupEngine(Port port) : port_{port} {}

    // ---- the trees -----------------------------------------------------------------------------------

    [[nodiscard]] bool contains(std::string_view name) const { return groups_.find(name) != groups_.end(); }

    [[nodiscard]] Group* find(std::string_view name) const {
        const auto it = groups_.find(name);
        return it == groups_.end() ? nullptr : it->second.get();
    }

    /// Every group, by name. Groups are never removed: they live as long as the monitor.
    [[nodiscard]] const std::map<std::string, std::unique_ptr<Group>, std::less<>>& groups() const { return groups_; }

    /// Takes group `g` (its policy and parent set) for good: groups live as long as the monitor, so the components
    /// that the caller makes its members next may point to it whatever happens after.
    Group& adopt(std::unique_ptr<Group> g);

    /// Group `g` (adopted, its members in place) joins its parent's members last and starts its members in order,
    /// after the members of its tree still being started.
    void start(Group& g, time_point now);

    /// close(): every group stops (the end states keep telling how a group ended) and every tree's components
    /// are stopped in reverse start order by a unit of its own; `each_tree` sees each tree's components first.
    template <typename EachTree>
    void close(time_point now, EachTree&& each_tree);

    static Group& root_of(Group& g);

    /// The components of `g` and of its nested groups, in start order.
    static void leaves_of(const Group& g, std::vector<ComponentPtr>& out);

    // ---- failures (host's mutex held) ----------------------------------------------------------------

    /// Who carries out the restart of failed member `m` of `g` that would happen at `at`.
    GroupVerdict verdict(Group& g, const Member& m, time_point now, time_point at, bool counted);

    /// Carries out `verdict` for member `m` of `g`, failed with `reason`, whose restart waits `delay` (until `at`).
    /// For member_restarts it only counts the member's own restart against the group's limit (when it happens);
    /// the caller schedules that restart.
    void member_failed(GroupVerdict verdict, Group& g, const Member& m, const std::string& reason,
                       std::chrono::nanoseconds delay, time_point at, bool counted, time_point now, Events& events);

    /// `g` gives up (its limit was exceeded, or a member escalated): its parent restarts it as a failed member
    /// or, at the top of the tree, its members are stopped and it is escalated to the monitor's owner.
    void give_up(Group& g, const std::string& cause, std::optional<int> limit, const std::string& reason,
                 std::chrono::nanoseconds delay, time_point now, Events& events);

    /// `c` ended for good (completed, failed without restart, gave up): a significant member may end its group.
    void member_ended(Component& c, time_point now, Events& events);

    /// `c` failed on its own while a unit that has not started it yet drives it: the unit lets it go (it stays
    /// down, or waits for its quarantine trial), and its restart counted by the unit no longer happens.
    static void release_unstarted(Component& c);

    /// The restart of one_for_one member `c` on its own happened at `now`, or never will (`happened` false): it
    /// leaves the group's pending restarts, and joins its window if it happened.
    static void settle_counted(Component& c, time_point now, bool happened);

    // ---- units ---------------------------------------------------------------------------------------

    /// What a unit does next: start one more component (the host calls its factory, outside the lock), look
    /// again at `wake` (or on the exit or readiness it waits for), or nothing (done, or waiting).
    struct UnitStep {
        ComponentPtr start;
        std::uint32_t gen = 0;  // the restart generation the start carries (Port::schedule_start)
        bool first_start = false;
        std::optional<time_point> wake;
    };

    /// Takes unit `u` as far as it can go without the host: stops requested, deadlines reported, groups settled.
    UnitStep step(RestartUnit& u, time_point now, Events& events);

private:
    static void leaves_of(const Member& m, std::vector<ComponentPtr>& out);

    /// `g` and every group nested in it.
    static void subtree_of(Group& g, std::vector<Group*>& out);

    /// The components `u` drives, in start order.
    static std::vector<ComponentPtr> leaves_of(const RestartUnit& u);

    /// `g` starts over with a fresh budget (restarted as a whole by its parent): no restart counts any more.
    static void fresh_budget(Group& g);

    /// A counted restart of `g` decided against `budget` happened at `now`, or never will (`happened` false).
    static void settle_group_restart(Group& g, std::uint32_t budget, time_point now, bool happened);

    /// The counted group restarts of `u` happened at `now` (its members start), or never will.
    static void settle_counted(RestartUnit& u, time_point now, bool happened);

    static bool has_ended(const Member& m);

    /// Significant member `who` of `g` ended: shuts `g` down if its auto_shutdown says so.
    void significant_ended(Group& g, const std::string& who, time_point now, Events& events);

    /// Hands `leaves` (components of the tree under `root`) to a new unit that stops them in reverse order and,
    /// if `restart`, starts them again in order from `resume_at`. Units already driving any of them (or any of
    /// `before`, which it does not stop) are absorbed, with what they still had to do. Quarantined and given-up
    /// components are left alone by a restart; temporary and disabled ones are stopped, not restarted (a
    /// temporary one never started yet is started).
    RestartUnit& enlist(Group& root, const std::vector<ComponentPtr>& leaves, bool restart, time_point resume_at,
                        const std::vector<ComponentPtr>& before = {});

    /// Moves what `old` drives into `unit`. `old` by value: the caller's may be a component's own `unit`.
    void absorb(const std::shared_ptr<RestartUnit>& unit, std::shared_ptr<RestartUnit> old);

    /// The unit did everything: its components are on their own again, its groups settle.
    void finish(RestartUnit& u, const std::vector<ComponentPtr>& leaves, time_point now, Events& events);

    Port port_;
    std::map<std::string, std::unique_ptr<Group>, std::less<>> groups_;
};

}  // namespace taskmon::detail

#include <taskmon/detail/impl/group_engine.hpp>
