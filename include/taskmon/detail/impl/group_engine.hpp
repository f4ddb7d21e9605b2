// taskmon — coroutine supervision for standalone Asio.
// SPDX-License-Identifier: MIT
//
// GroupEngine's definitions (internal): failures in a tree, and the steps of a restart unit.
// The definitions are `inline`, as they were inside the class: GCC gives functions declared inline larger
// inlining limits, and the restart and close paths depend on it.
#pragma once

#include <taskmon/detail/group_engine.hpp>

namespace taskmon::detail {

template <typename Clock, typename Host, typename Port>
inline auto GroupEngine<Clock, Host, Port>::adopt(std::unique_ptr<Group> group) -> Group& {
    return *groups_.emplace(group->name, std::move(group)).first->second;
}

template <typename Clock, typename Host, typename Port>
inline void GroupEngine<Clock, Host, Port>::start(Group& g, time_point now) {
    if (g.parent) {
        g.parent->members.push_back(Member{nullptr, &g});
    }
    std::vector<ComponentPtr> leaves;
    leaves_of(g, leaves);
    // The tree's other members still being started (or restarted) go first: the new group joins its parent's
    // members last.
    std::vector<ComponentPtr> tree;
    leaves_of(root_of(g), tree);
    enlist(root_of(g), leaves, true, now, tree).starting.push_back(&g);
}

template <typename Clock, typename Host, typename Port>
template <typename EachTree>
inline void GroupEngine<Clock, Host, Port>::close(time_point now, EachTree&& each_tree) {
    for (auto& [name, g] : groups_) {
        if (g->state != GroupState::gave_up && g->state != GroupState::shut_down) {
            g->state = GroupState::stopped;  // the end states keep telling how the group ended
        }
        if (g->parent) {
            continue;
        }
        std::vector<ComponentPtr> leaves;
        leaves_of(*g, leaves);
        each_tree(std::as_const(leaves));
        enlist(*g, leaves, false, now);
    }
}

template <typename Clock, typename Host, typename Port>
inline auto GroupEngine<Clock, Host, Port>::root_of(Group& g) -> Group& {
    auto* r = &g;
    while (r->parent) {
        r = r->parent;
    }
    return *r;
}

template <typename Clock, typename Host, typename Port>
inline void GroupEngine<Clock, Host, Port>::leaves_of(const Group& g, std::vector<ComponentPtr>& out) {
    for (const auto& m : g.members) {
        leaves_of(m, out);
    }
}

template <typename Clock, typename Host, typename Port>
inline void GroupEngine<Clock, Host, Port>::leaves_of(const Member& m, std::vector<ComponentPtr>& out) {
    if (m.component) {
        out.push_back(m.component);
    } else {
        leaves_of(*m.group, out);
    }
}

template <typename Clock, typename Host, typename Port>
inline void GroupEngine<Clock, Host, Port>::subtree_of(Group& g, std::vector<Group*>& out) {
    out.push_back(&g);
    for (const auto& m : g.members) {
        if (m.group) {
            subtree_of(*m.group, out);
        }
    }
}

template <typename Clock, typename Host, typename Port>
inline auto GroupEngine<Clock, Host, Port>::leaves_of(const RestartUnit& u) -> std::vector<ComponentPtr> {
    std::vector<ComponentPtr> all;
    leaves_of(*u.root, all);
    std::erase_if(all, [&u](const ComponentPtr& c) { return c->restarts().unit.get() != &u; });
    return all;
}

template <typename Clock, typename Host, typename Port>
inline void GroupEngine<Clock, Host, Port>::fresh_budget(Group& g) {
    g.window.clear();
    g.pending_restarts = 0;
    ++g.budget;
}

template <typename Clock, typename Host, typename Port>
inline void GroupEngine<Clock, Host, Port>::settle_group_restart(Group& g, std::uint32_t budget, time_point now,
                                                                 bool happened) {
    if (g.budget != budget) {
        return;  // counted against a budget renewed since
    }
    --g.pending_restarts;
    if (happened) {
        remember_restart(g.window, now);
    }
}

template <typename Clock, typename Host, typename Port>
inline void GroupEngine<Clock, Host, Port>::settle_counted(RestartUnit& u, time_point now, bool happened) {
    for (const auto& [g, budget] : u.counted) {
        settle_group_restart(*g, budget, now, happened);
    }
    u.counted.clear();
}

template <typename Clock, typename Host, typename Port>
inline void GroupEngine<Clock, Host, Port>::settle_counted(Component& c, time_point now, bool happened) {
    if (!c.history) {
        return;
    }
    if (const auto budget = std::exchange(c.history->counted_in_group, std::nullopt)) {
        settle_group_restart(*c.group, *budget, now, happened);
    }
}

template <typename Clock, typename Host, typename Port>
inline void GroupEngine<Clock, Host, Port>::release_unstarted(Component& c) {
    if (c.restarts().unit && !unit_started(c.unit_role)) {
        c.history->unit.reset();
        c.unit_role = UnitRole::stop;
        c.restart_counted = false;
    }
}

template <typename Clock, typename Host, typename Port>
inline auto GroupEngine<Clock, Host, Port>::verdict(Group& g, const Member& m, time_point now, time_point at,
                                                    bool counted) -> GroupVerdict {
    forget_restarts_before(g.window, g.policy.restart_window, now);
    if (counted && !group_restart_allowed(std::span<const time_point>{g.window}, g.pending_restarts, g.policy, at)) {
        return GroupVerdict::gives_up;
    }
    return group_owns_restart(g.policy.strategy, m.component != nullptr, m.component && m.component->restarts().unit)
               ? GroupVerdict::group_restarts
               : GroupVerdict::member_restarts;
}

template <typename Clock, typename Host, typename Port>
inline void GroupEngine<Clock, Host, Port>::member_failed(GroupVerdict verdict, Group& g, const Member& m,
                                                          const std::string& reason, std::chrono::nanoseconds delay,
                                                          time_point at, bool counted, time_point now, Events& events) {
    if (verdict == GroupVerdict::gives_up) {
        give_up(g, m.name(), g.policy.max_restarts, reason, delay, now, events);
        return;
    }
    if (verdict == GroupVerdict::member_restarts) {
        if (counted) {
            ++g.pending_restarts;
            m.component->edit_restarts().counted_in_group = g.budget;
        }
        return;
    }
    const auto position = static_cast<std::size_t>(
        std::find_if(g.members.begin(), g.members.end(),
                     [&m](const Member& x) { return x.component == m.component && x.group == m.group; }) -
        g.members.begin());
    const auto range = affected_members(g.policy.strategy, position, g.members.size());
    const auto first = g.members.begin() + static_cast<std::ptrdiff_t>(range.first);
    const auto last = g.members.begin() + static_cast<std::ptrdiff_t>(range.last);
    std::vector<ComponentPtr> leaves;
    std::vector<Group*> groups;
    std::vector<std::string> names;
    for (auto it = first; it != last; ++it) {
        leaves_of(*it, leaves);
        names.push_back(it->name());
        if (it->group) {
            subtree_of(*it->group, groups);
        }
    }
    for (auto* x : groups) {
        fresh_budget(*x);  // a group restarted by its parent starts over with a fresh budget (as in OTP)
    }
    const bool announces = !groups.empty() && g.policy.strategy == RestartStrategy::one_for_one;
    if (g.policy.strategy != RestartStrategy::one_for_one) {
        groups.push_back(&g);
    }
    for (auto* x : groups) {
        x->state = GroupState::restarting;
    }
    if (!groups.empty()) {
        // Made only when published: an event made and dropped would leave a gap in the sequence numbers.
        auto e = port_.group_event(MonitorEventKind::group_restarting, g, now);
        e.component = m.name();
        e.delay = delay;
        e.reason = reason;
        e.members = std::move(names);
        events.push_back(std::move(e));
    }  // else a one_for_one member that a unit drives: restarted with that unit, no group restart of its own
    auto& unit = enlist(root_of(g), leaves, true, at);
    unit.restarting.insert(unit.restarting.end(), groups.begin(), groups.end());
    if (announces) {
        unit.announced.push_back(&g);
    }
    if (counted) {
        ++g.pending_restarts;
        unit.counted.emplace_back(&g, g.budget);
    }
}

template <typename Clock, typename Host, typename Port>
inline void GroupEngine<Clock, Host, Port>::give_up(Group& g, const std::string& cause, std::optional<int> limit,
                                                    const std::string& reason, std::chrono::nanoseconds delay,
                                                    time_point now, Events& events) {
    auto e = port_.group_event(MonitorEventKind::group_gave_up, g, now);
    e.component = cause;
    if (limit) {
        e.limit = *limit;
        e.window = g.policy.restart_window;
    }
    e.reason = reason;
    events.push_back(e);
    if (g.parent) {
        fresh_budget(g);  // restarted as a whole: a fresh budget
        const Member failed{nullptr, &g};
        const auto at = now + std::chrono::duration_cast<duration>(delay);
        member_failed(verdict(*g.parent, failed, now, at, true), *g.parent, failed,
                      "group '" + g.name + "' gave up: " + reason, delay, at, true, now, events);
        return;
    }
    std::vector<Group*> groups;
    subtree_of(g, groups);
    for (auto* x : groups) {
        x->state = GroupState::gave_up;
    }
    std::vector<ComponentPtr> leaves;
    leaves_of(g, leaves);
    enlist(g, leaves, false, now);
    e.kind = MonitorEventKind::escalated;
    e.component.clear();
    port_.escalate(std::move(e), events);
}

template <typename Clock, typename Host, typename Port>
inline void GroupEngine<Clock, Host, Port>::member_ended(Component& c, time_point now, Events& events) {
    if (c.group && c.significant) {
        significant_ended(*c.group, c.name, now, events);
    }
}

template <typename Clock, typename Host, typename Port>
inline auto GroupEngine<Clock, Host, Port>::has_ended(const Member& m) -> bool {
    if (m.group) {
        return group_has_ended(m.group->state);
    }
    const auto& c = *m.component;
    const auto s = c.state;
    return c.lifecycle == Lifecycle::idle && !c.restarts().unit &&
           (s == ComponentState::completed || s == ComponentState::failed || s == ComponentState::gave_up);
}

template <typename Clock, typename Host, typename Port>
inline void GroupEngine<Clock, Host, Port>::significant_ended(Group& g, const std::string& who, time_point now,
                                                              Events& events) {
    if (group_has_ended(g.state) || g.state == GroupState::stopped || g.policy.auto_shutdown == AutoShutdown::never) {
        return;
    }
    if (g.policy.auto_shutdown == AutoShutdown::all_significant) {
        for (const auto& m : g.members) {
            const bool significant = m.component ? m.component->significant : m.group->policy.significant;
            if (significant && !has_ended(m)) {
                return;
            }
        }
    }
    std::vector<Group*> groups;
    subtree_of(g, groups);
    for (auto* x : groups) {
        x->state = GroupState::shutting_down;
    }
    auto e = port_.group_event(MonitorEventKind::group_shutdown, g, now);
    e.component = who;
    for (const auto& m : g.members) {
        e.members.push_back(m.name());
    }
    events.push_back(std::move(e));
    std::vector<ComponentPtr> leaves;
    leaves_of(g, leaves);
    auto& unit = enlist(root_of(g), leaves, false, now);
    unit.shutting.insert(unit.shutting.end(), groups.begin(), groups.end());
    if (g.parent && g.policy.significant) {
        significant_ended(*g.parent, g.name, now, events);
    }
}

template <typename Clock, typename Host, typename Port>
inline auto GroupEngine<Clock, Host, Port>::enlist(Group& root, const std::vector<ComponentPtr>& leaves, bool restart,
                                                   time_point resume_at, const std::vector<ComponentPtr>& before)
    -> RestartUnit& {
    auto unit = std::make_shared<RestartUnit>(root);
    unit->resume_at = resume_at;
    for (const auto& c : before) {
        if (c->restarts().unit && c->restarts().unit != unit) {
            absorb(unit, c->restarts().unit);
        }
    }
    for (const auto& c : leaves) {
        if (c->restarts().unit && c->restarts().unit != unit) {
            absorb(unit, c->restarts().unit);
        }
    }
    for (const auto& cp : leaves) {
        auto& c = *cp;
        const bool stuck = c.state == ComponentState::gave_up || c.state == ComponentState::quarantined;
        if (restart && stuck) {
            if (c.restarts().unit == unit) {
                // Absorbed: kept as it is, stopped, or (started by the unit absorbed) running.
                c.unit_role = unit_started(c.unit_role) ? UnitRole::kept : UnitRole::stop;
                c.restart_counted = false;
            }
            continue;
        }
        if (c.lifecycle == Lifecycle::scheduled && c.restarts().counted_in_group) {
            // Its own restart, which the unit replaces, counted against its group: it counts when the unit
            // starts it.
            unit->counted.emplace_back(c.group, *c.restarts().counted_in_group);
            c.history->counted_in_group.reset();
        }
        port_.take_over(cp);
        c.edit_restarts().unit = unit;
        // A temporary member is started once (its first start), never restarted.
        const bool again =
            restart && c.enabled && c.factory && (port_.restart_type(c) != RestartType::temporary || c.generation == 0);
        c.unit_role = again ? UnitRole::restart : UnitRole::stop;
        if (again) {
            c.state = ComponentState::restarting;
        } else {
            c.restart_counted = false;  // its own restart, replaced by this unit, will not happen
        }
        if (!again && !c.live() && (c.state == ComponentState::restarting || c.state == ComponentState::quarantined)) {
            c.state = ComponentState::stopped;
        }
    }
    for (const auto& c : leaves_of(*unit)) {
        if (c->unit_role == UnitRole::restart) {
            c->edit_restarts().next_restart = unit->resume_at;  // absorbed ones too: the unit starts them together
        }
    }
    port_.resume(unit);
    return *unit;
}

template <typename Clock, typename Host, typename Port>
inline void GroupEngine<Clock, Host, Port>::absorb(const std::shared_ptr<RestartUnit>& unit,
                                                   std::shared_ptr<RestartUnit> old) {
    for (const auto& c : leaves_of(*old)) {
        c->edit_restarts().unit = unit;
    }
    old->merged = true;
    unit->resume_at = std::max(unit->resume_at, old->resume_at);
    for (auto list :
         {&RestartUnit::starting, &RestartUnit::restarting, &RestartUnit::shutting, &RestartUnit::announced}) {
        auto& to = (*unit).*list;
        const auto& from = (*old).*list;
        to.insert(to.end(), from.begin(), from.end());
    }
    unit->counted.insert(unit->counted.end(), old->counted.begin(), old->counted.end());
    old->counted.clear();
    port_.retire(std::move(old));
}

template <typename Clock, typename Host, typename Port>
inline auto GroupEngine<Clock, Host, Port>::step(RestartUnit& u, time_point now, Events& events) -> UnitStep {
    UnitStep next;
    const bool closing = port_.closing();
    const auto leaves = leaves_of(u);
    if (u.phase == RestartUnit::Phase::stopping) {
        for (auto it = leaves.rbegin(); it != leaves.rend(); ++it) {
            auto& c = **it;
            if (unit_started(c.unit_role) || !c.live() || c.live()->reported_unresponsive) {
                continue;
            }
            if (c.live()->stop == StopCause::none) {
                port_.stop(*it);
                c.state = c.unit_role == UnitRole::restart && !closing ? ComponentState::restarting
                                                                       : ComponentState::stopping;
            }
            if (now < c.live()->stop_deadline) {
                next.wake = c.live()->stop_deadline;  // or its exit, whichever comes first
                return next;
            }
            port_.report_unresponsive(c, now, events);  // it may still exit: it is not started again before
        }
        u.phase = RestartUnit::Phase::waiting;
    }
    if (u.phase == RestartUnit::Phase::waiting) {
        // Started ones count too: an absorbed unit may have started some already.
        const bool to_start = std::any_of(leaves.begin(), leaves.end(),
                                          [](const ComponentPtr& c) { return unit_restarts(c->unit_role); });
        if (to_start && !closing && now < u.resume_at) {
            next.wake = u.resume_at;
            return next;
        }
        u.phase = RestartUnit::Phase::starting;
        settle_counted(u, now, to_start && !closing);  // a stop-only unit restarts nothing
    }
    for (const auto& cp : leaves) {
        auto& c = *cp;
        if (!unit_restarts(c.unit_role)) {
            continue;
        }
        if (c.unit_role == UnitRole::started) {
            if (c.live() && c.group->policy.start_after_ready && !port_.ready_time(*c.live())) {
                return next;  // on_ready (or its failure) advances
            }
            continue;
        }
        if (closing || !c.enabled || !c.factory) {
            c.unit_role = UnitRole::stop;
            c.restart_counted = false;
            if (!c.live()) {
                c.state = ComponentState::stopped;
                c.clear_next_restart();
            }
            continue;
        }
        if (c.live()) {
            return next;  // an instance that outlived its stop: never two live instances
        }
        c.unit_role = UnitRole::started;
        next.start = cp;
        next.gen = port_.schedule_start(cp);
        next.first_start = c.generation == 0;
        return next;
    }
    finish(u, leaves, now, events);
    return next;
}

template <typename Clock, typename Host, typename Port>
inline void GroupEngine<Clock, Host, Port>::finish(RestartUnit& u, const std::vector<ComponentPtr>& leaves,
                                                   time_point now, Events& events) {
    u.merged = true;                // done: stale timers and posts find nothing to do
    settle_counted(u, now, false);  // (none left: they were settled when it began to start)
    for (const auto& c : leaves) {
        if (c->history) {
            c->history->unit.reset();
        }
        c->unit_role = UnitRole::stop;
    }
    if (port_.closing()) {
        return;
    }
    // Each group once, in the order listed (never by address): from `from` to `to`, then its event, if any.
    // `restarts`: it counts in restart_count, which thereby equals the number of its group_restarted events.
    // `only_restarted`: its event lists the members this unit restarted, not all of them (a one_for_one parent
    // whose nested group was restarted: it stays running and closes the group_restarting it published).
    const auto settle = [&](std::vector<Group*>& groups, GroupState from, GroupState to,
                            std::optional<MonitorEventKind> kind, bool restarts, bool only_restarted = false) {
        std::vector<Group*> done;
        for (auto* g : groups) {
            if (std::find(done.begin(), done.end(), g) != done.end()) {
                continue;
            }
            done.push_back(g);
            if (g->state != from) {
                continue;  // (a group that gave up or shut down meanwhile)
            }
            g->state = to;
            if (restarts) {
                ++g->restart_count;
            }
            if (kind) {
                auto e = port_.group_event(*kind, *g, now);
                for (const auto& m : g->members) {
                    if (!only_restarted || (m.group && std::find(u.restarting.begin(), u.restarting.end(), m.group) !=
                                                           u.restarting.end())) {
                        e.members.push_back(m.name());
                    }
                }
                events.push_back(std::move(e));
            }
        }
    };
    settle(u.starting, GroupState::starting, GroupState::running, MonitorEventKind::group_started, false);
    settle(u.restarting, GroupState::restarting, GroupState::running, MonitorEventKind::group_restarted, true);
    settle(u.shutting, GroupState::shutting_down, GroupState::shut_down, std::nullopt, false);
    std::erase_if(u.announced, [&u](Group* g) {  // restarted itself as well: its group_restarted is out
        return std::find(u.restarting.begin(), u.restarting.end(), g) != u.restarting.end();
    });
    settle(u.announced, GroupState::running, GroupState::running, MonitorEventKind::group_restarted, true, true);
}

}  // namespace taskmon::detail
