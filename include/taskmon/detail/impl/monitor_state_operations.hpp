// taskmon — coroutine supervision for standalone Asio.
// SPDX-License-Identifier: MIT
//
// MonitorState's the public operations (any thread): validate, change state under mutex_, publish after it (internal).
// The definitions are `inline`, as they were inside the class: GCC gives functions declared inline larger
// inlining limits, and the hot paths (restart, start and close) depend on it.
#pragma once

#include <taskmon/detail/monitor_state.hpp>

namespace taskmon::detail {

template <typename Clock>
template <typename Factory>
inline void MonitorState<Clock>::set_restart_factories(std::map<std::string, Factory> factories) {
    for (const auto& [name, factory] : factories) {
        check_name(name, "set_restart_factories");
        if (!factory) {
            throw std::invalid_argument("set_restart_factories: factory of component '" + name + "' is empty");
        }
    }
    MutexLock lock{mutex_};
    check_open("set_restart_factories");
    for (const auto& [name, factory] : factories) {
        check_not_detached(name, "set_restart_factories");
    }
    for (auto& [name, factory] : factories) {
        replace_factory(*find_or_create(name), make_factory(std::move(factory)));
    }
}

template <typename Clock>
inline void MonitorState<Clock>::register_task(const std::string& name, asio::awaitable<void> task) {
    check_name(name, "register_task");
    check_task(task, "register_task", name);
    Events events;
    {
        MutexLock lock{mutex_};
        check_open("register_task");
        check_not_registered(name, "register_task");
        auto c = find_or_create(name);
        transition(c->membership, Membership::registered);
        spawn(c, std::move(task), nullptr, reserve_instance(c), events);
    }
    publish(events);
}

template <typename Clock>
template <SpawnMode Mode>
inline SpawnResult MonitorState<Clock>::spawn_task(const std::string& name, asio::awaitable<void> task) {
    constexpr bool numbered = Mode == SpawnMode::numbered || Mode == SpawnMode::try_numbered;
    constexpr bool refusals_throw = Mode == SpawnMode::named || Mode == SpawnMode::numbered;
    constexpr const char* what = Mode == SpawnMode::named       ? "spawn"
                                 : Mode == SpawnMode::try_named ? "try_spawn"
                                 : Mode == SpawnMode::numbered  ? "spawn_numbered"
                                                                : "try_spawn_numbered";
    if constexpr (!numbered) {
        check_name(name, what);
        check_task(task, what, name);
    } else if (auto problem = name_problem(name)) {
        throw std::invalid_argument(
            fmt::format("{}: the name prefix {}{}", what, name.empty() ? "" : quote(name) + " ", *problem));
    } else if (!task.valid()) {
        throw std::invalid_argument(fmt::format("{}: the coroutine to name {}<id> is {}", what, name, empty_awaitable));
    }
    SpawnResult result;  // spawn() returns no name: its hot path copies the name once, into the record
    Events events;
    {
        MutexLock lock{mutex_};
        if (closed_) {
            if constexpr (refusals_throw) {
                check_open(what);
            }
            result.status = SpawnStatus::monitor_closed;
            if constexpr (!numbered) {
                result.name = name;
            }
            return result;
        }
        Reservation reservation;  // no liveness record: a spawned task has no context to heartbeat with
        ComponentPtr c;
        if constexpr (numbered) {
            std::string generated = name;
            do {
                reservation.id = ++next_task_id_;
                generated.resize(name.size());
                fmt::format_to(std::back_inserter(generated), "{}", reservation.id);
            } while (!name_free(generated));  // a name the user gave: the next id
            c = make_component(std::move(generated));
            result.name = c->name;
        } else {
            if constexpr (!refusals_throw) {
                if (!name_free(name)) {
                    result.status = SpawnStatus::name_taken;
                    result.name = name;
                    return result;
                }
                result.name = name;
            }
            check_not_detached(name, what);
            if (components_.find(std::string_view{name}) != components_.end()) {
                throw std::invalid_argument(std::string{what} + ": duplicate component name '" + name + "'");
            }
            if (engine_.contains(name)) {
                throw std::invalid_argument(std::string{what} + ": '" + name + "' is the name of a group");
            }
            reservation.id = ++next_task_id_;
            c = make_component(name);
        }
        transition(c->membership, Membership::registered);
        c->spawned = true;
        insert(c);
        spawn(c, std::move(task), nullptr, std::move(reservation), events);
    }
    publish(events);
    return result;
}

template <typename Clock>
template <typename Factory>
inline void MonitorState<Clock>::supervise(const std::string& name, Factory factory,
                                           std::optional<RestartPolicy> policy) {
    check_name(name, "supervise");
    if (!factory) {
        throw std::invalid_argument("supervise: factory of component '" + name + "' is empty");
    }
    if (policy) {
        validate(*policy, "supervise: policy of component '" + name + "'");
    }
    // Made (and, if this throws, released) outside the lock: copying or destroying a classifier is user code.
    const auto own = policy ? std::make_shared<const RestartPolicy>(std::move(*policy)) : nullptr;
    auto origin = make_factory(std::move(factory));
    Reservation reservation;
    ComponentPtr provisional;
    bool fresh = false;  // provisional was made here: its strand is released if it never joins components_
    {
        MutexLock lock{mutex_};
        check_open("supervise");
        check_not_registered(name, "supervise");
        // A record for the liveness back-reference; it joins components_ only if the factory succeeds.
        auto it = components_.find(std::string_view{name});
        fresh = it == components_.end();
        provisional = fresh ? make_component(name) : *it;
        reservation = reserve_instance(provisional, origin.get(), own.get());
    }
    std::optional<asio::awaitable<void>> task;
    try {
        task.emplace((*origin)(context_of(reservation)));  // outside the lock: user code
        if (!task->valid()) {
            throw std::invalid_argument(empty_result(name, "supervise: the factory"));
        }
    } catch (...) {
        MutexLock lock{mutex_};
        release(reservation);  // if it throws nothing has changed
        if (fresh) {
            release_strand(*provisional);
        }
        throw;
    }
    Events events;
    {
        MutexLock lock{mutex_};
        auto it = components_.find(std::string_view{name});
        try {
            check_open("supervise");
            check_not_registered(name, "supervise");
            if ((it != components_.end() && *it != provisional) || is_leaving(provisional->membership)) {
                throw std::invalid_argument("supervise: component '" + name + "' changed concurrently");
            }
        } catch (...) {
            if (fresh) {
                release_strand(*provisional);
            }
            throw;
        }
        if (it == components_.end()) {
            insert(provisional);
        }
        auto& c = *provisional;
        c.factory = origin;
        c.own_policy = own;
        c.enabled = true;
        transition(c.membership, Membership::registered);
        spawn(provisional, std::move(*task), std::move(origin), std::move(reservation), events);
    }
    if (own) {
        warn_if_max_backoff_unreachable(*own, "the policy of component '" + name + "'");
    }
    publish(events);
}

template <typename Clock>
inline void MonitorState<Clock>::enable(const std::vector<std::string>& names) {
    MutexLock lock{mutex_};
    check_open("enable");
    check_known(names, "enable");
    for (const auto& name : names) {
        check_not_removing(name, "enable");
    }
    for (const auto& name : names) {
        at(name).enabled = true;
    }
}

template <typename Clock>
inline void MonitorState<Clock>::disable(const std::vector<std::string>& names) {
    Events events;
    {
        MutexLock lock{mutex_};
        check_open("disable");
        check_known(names, "disable");
        for (const auto& name : names) {
            const auto& c = *components_.find(std::string_view{name});
            c->enabled = false;
            cancel_pending_restart(c, ComponentState::stopped, events);
            request_stop(c, StopCause::disable);
        }
    }
    publish(events);
}

template <typename Clock>
inline void MonitorState<Clock>::restart(const std::string& name) {
    Events events;
    {
        MutexLock lock{mutex_};
        const auto& cp = open_component(name, "restart");
        auto& c = *cp;
        if (!c.factory) {
            throw std::invalid_argument("restart: component '" + name + "' has no restart factory");
        }
        const auto now = Clock::now();
        if (c.restarts().unit || c.lifecycle == Lifecycle::starting ||
            (c.live() && c.live()->stop == StopCause::restart)) {
            events.push_back(event(MonitorEventKind::restart_merged, c, now));
        } else if (c.lifecycle == Lifecycle::scheduled) {
            // Merge into the pending restart (or quarantine trial) and run it now.
            events.push_back(event(MonitorEventKind::restart_merged, c, now));
            if (c.state == ComponentState::quarantined) {
                clear_budget(c);  // a manual restart out of quarantine is a reset, not a trial
            }
            c.manual_pending = true;
            schedule_start(cp, std::chrono::nanoseconds::zero());
        } else if (c.live()) {
            events.push_back(event(MonitorEventKind::restart_requested, c, now));
            if (c.in_trial) {
                clear_budget(c);  // a manual restart ends a quarantine trial like reset()
            }
            c.state = ComponentState::restarting;
            request_stop(cp, StopCause::restart);
        } else {
            events.push_back(event(MonitorEventKind::restart_requested, c, now));
            if (c.state == ComponentState::gave_up) {
                clear_budget(c);  // a manual restart after giving up is a reset: a fresh budget
            }
            start_now(cp);
        }
    }
    publish(events);
}

template <typename Clock>
inline void MonitorState<Clock>::reset(const std::string& name) {
    Events events;
    {
        MutexLock lock{mutex_};
        const auto& cp = open_component(name, "reset");
        auto& c = *cp;
        const bool stuck = c.state == ComponentState::gave_up || c.state == ComponentState::quarantined;
        if (stuck && !c.factory) {
            throw std::invalid_argument("reset: component '" + name + "' has no restart factory");
        }
        clear_budget(c);
        events.push_back(event(MonitorEventKind::reset, c, Clock::now()));
        if (c.state == ComponentState::quarantined && c.lifecycle == Lifecycle::scheduled && !c.restarts().unit) {
            c.manual_pending = true;  // the pending trial becomes a plain restart, now
            c.state = ComponentState::restarting;
            schedule_start(cp, std::chrono::nanoseconds::zero());
        } else if (c.state == ComponentState::gave_up && c.lifecycle == Lifecycle::idle && !c.restarts().unit) {
            start_now(cp);
        }
    }
    publish(events);
}

template <typename Clock>
inline void MonitorState<Clock>::update_policy(const std::string& name, RestartPolicy policy) {
    (void)replace_policy(name, std::move(policy), nullptr);
}

template <typename Clock>
inline void MonitorState<Clock>::update_policy(const std::string& name, const PolicyOverrides& overrides) {
    for (;;) {
        std::shared_ptr<const RestartPolicy> current;
        {
            MutexLock lock{mutex_};
            current = open_component(name, "update_policy")->own_policy;  // null: the monitor's policy_
        }
        if (replace_policy(name, overrides.applied_to(current ? *current : policy_), &current)) {
            return;
        }
    }
}

template <typename Clock>
inline bool MonitorState<Clock>::replace_policy(const std::string& name, RestartPolicy policy,
                                                const std::shared_ptr<const RestartPolicy>* expected) {
    validate(policy, "update_policy: policy of component '" + name + "'");
    // Made and released outside the lock: a policy holds the user's classifier, whose copy and destruction are
    // user code.
    const auto installed = std::make_shared<const RestartPolicy>(std::move(policy));
    std::shared_ptr<const RestartPolicy> replaced;
    Events events;
    {
        MutexLock lock{mutex_};
        const auto& cp = open_component(name, "update_policy");
        if (expected && cp->own_policy != *expected) {
            return false;  // changed meanwhile: the overrides apply to the new one
        }
        if (cp->significant && installed->restart_type == RestartType::permanent) {
            throw std::invalid_argument("update_policy: component '" + name + "' " + permanent_significant);
        }
        replaced = std::exchange(cp->own_policy, installed);
        events.push_back(event(MonitorEventKind::policy_updated, *cp, Clock::now()));
        if (cp->live()) {
            post_watch(cp);  // new liveness timeouts apply from the next check
        }
    }
    warn_if_max_backoff_unreachable(*installed, "the policy of component '" + name + "'");
    publish(events);
    return true;
}

template <typename Clock>
inline void MonitorState<Clock>::supervise_group(const std::string& name, std::vector<GroupMember> members,
                                                 const GroupPolicy& policy, const std::string& parent) {
    check_name(name, "supervise_group", "group");
    const auto where = "supervise_group: group '" + name + "'";
    validate(policy, where + " policy");
    std::set<std::string_view> seen;
    for (const auto& m : members) {
        if (m.name.empty()) {
            throw std::invalid_argument(where + ": a member name is empty");
        }
        check_name(m.name, where, "member");
        if (m.name == name || !seen.insert(m.name).second) {
            throw std::invalid_argument(where + ": duplicate member name '" + m.name + "'");
        }
        if (!m.factory == !m.context_factory) {
            throw std::invalid_argument(where + ": member '" + m.name +
                                        "' needs exactly one of factory and context_factory");
        }
        if (m.policy) {
            validate(*m.policy, where + ": policy of member '" + m.name + "'");
        }
        if (m.significant && (m.policy ? *m.policy : policy_).restart_type == RestartType::permanent) {
            throw std::invalid_argument(where + ": member '" + m.name + "' " + permanent_significant);
        }
    }
    // Made (and, if this throws, released) outside the lock: copying or destroying a classifier is user code.
    std::vector<std::shared_ptr<const RestartPolicy>> own;
    own.reserve(members.size());
    for (const auto& m : members) {
        own.push_back(m.policy ? std::make_shared<const RestartPolicy>(*m.policy) : nullptr);
    }
    auto group = std::make_unique<Group>();
    group->name = name;
    group->policy = policy;
    std::vector<ComponentPtr> made;
    Events events;
    {
        MutexLock lock{mutex_};
        check_open("supervise_group");
        check_not_detached(name, where);
        if (engine_.contains(name) || components_.count(name) != 0) {
            throw std::invalid_argument(where + ": the name is already used by a group or component");
        }
        if (!parent.empty()) {
            group->parent = engine_.find(parent);
            if (!group->parent) {
                throw std::invalid_argument(where + ": unknown parent group " + single_quoted(parent));
            }
            const auto state = group->parent->state;
            if (group_has_ended(state)) {
                throw std::invalid_argument(where + ": parent group '" + parent + "' is " +
                                            std::string{to_string(state)});
            }
        }
        for (const auto& m : members) {
            check_not_detached(m.name, where);
            if (engine_.contains(m.name) || components_.count(m.name) != 0) {
                throw std::invalid_argument(where + ": member name '" + m.name +
                                            "' is already used by a group or component");
            }
        }
        for (std::size_t i = 0; i < members.size(); ++i) {  // nothing has changed so far
            auto& m = members[i];
            auto c = make_component(m.name);
            c->factory = m.factory ? make_factory(std::move(m.factory)) : make_factory(std::move(m.context_factory));
            c->own_policy = own[i];
            c->enabled = true;
            transition(c->membership, Membership::registered);
            c->group = group.get();
            c->significant = m.significant;
            made.push_back(std::move(c));
        }
        auto& g = engine_.adopt(std::move(group));
        for (auto& c : made) {
            insert(c);
            g.members.push_back(Member{c, nullptr});
        }
        engine_.start(g, Clock::now());
    }
    for (std::size_t i = 0; i < members.size(); ++i) {
        if (own[i]) {
            warn_if_max_backoff_unreachable(*own[i], "the policy of component '" + members[i].name + "'");
        }
    }
    publish(events);
}

template <typename Clock>
inline auto MonitorState<Clock>::group_snapshot() const -> std::map<std::string, GroupStats> {
    MutexLock lock{mutex_};
    const auto now = Clock::now();
    std::map<std::string, GroupStats> out;
    for (const auto& [name, g] : engine_.groups()) {
        GroupStats s;
        s.state = g->state;
        s.strategy = g->policy.strategy;
        if (g->parent) {
            s.parent = g->parent->name;
        }
        for (const auto& m : g->members) {
            s.members.push_back(m.name());
        }
        s.restart_count = g->restart_count;
        const auto window = std::chrono::duration_cast<duration>(g->policy.restart_window);
        s.restarts_in_window = static_cast<int>(
            std::count_if(g->window.begin(), g->window.end(), [&](const time_point& t) { return t > now - window; }));
        out.emplace(name, std::move(s));
    }
    return out;
}

template <typename Clock>
inline auto MonitorState<Clock>::subscribe(MonitorEventListener listener) -> std::uint64_t {
    if (!listener) {
        throw std::invalid_argument("subscribe: listener must not be empty");
    }
    MutexLock lock{mutex_};  // against close(): no subscription once closed_ is set
    check_open("subscribe");
    return listeners_->add(std::move(listener));
}

template <typename Clock>
inline auto MonitorState<Clock>::snapshot() const -> std::map<std::string, ComponentStats> {
    MutexLock lock{mutex_};
    const auto now = Clock::now();
    std::map<std::string, ComponentStats> out;
    for (const auto& c : components_) {
        out.emplace(c->name, stats_of(*c, now));
    }
    return out;
}

template <typename Clock>
inline void MonitorState<Clock>::async_close(typename CloseWaiters::Prepared waiter) {
    close_then([waiter = std::move(waiter)](MonitorState& state) mutable {
        if (state.close_completed_) {
            state.close_waiters_.complete_now(std::move(waiter), asio::error_code{});
        } else {
            state.close_waiters_.park(std::move(waiter), std::tuple<>{}, state.strand_);
        }
    });
}

template <typename Clock>
inline auto MonitorState<Clock>::begin_remove(const std::string& name) -> std::shared_ptr<void> {
    Events events;
    ComponentPtr cp;
    {
        MutexLock lock{mutex_};
        check_open("remove_and_wait");
        check_known({name}, "remove_and_wait");
        cp = *components_.find(std::string_view{name});
        auto& c = *cp;
        if (c.group) {
            throw std::invalid_argument("remove_and_wait: component '" + name + "' is a member of group '" +
                                        c.group->name + "'");
        }
        if (c.membership != Membership::removing) {
            transition(c.membership, Membership::removing);
            c.enabled = false;
            cancel_pending_restart(cp, ComponentState::stopped, events);
            if (c.live() && c.live()->reported_unresponsive) {
                c.live()->stop = StopCause::remove;  // it already outlived a requested stop: gone now
                erase(c, true, events);
            } else if (c.live()) {
                request_stop(cp, StopCause::remove);
            } else if (c.lifecycle != Lifecycle::starting) {
                erase(c, false, events);
            }
        }
    }
    publish(events);
    return cp;
}

template <typename Clock>
inline void MonitorState<Clock>::async_wait_removed(std::shared_ptr<void> record,
                                                    typename RemoveWaiters::Prepared waiter) {
    asio::post(strand_, [self = this->shared_from_this(), cp = std::static_pointer_cast<Component>(record),
                         waiter = std::move(waiter)]() mutable {
        std::optional<asio::error_code> result;
        {
            MutexLock lock{self->mutex_};
            if (cp->membership == Membership::removed) {
                result = cp->live() ? asio::error::timed_out : asio::error_code{};
            } else if (self->close_completed_) {
                result = asio::error::timed_out;
            }
        }
        if (result) {
            self->remove_waiters_.complete_now(std::move(waiter), *result);
        } else {
            self->remove_waiters_.park(std::move(waiter), std::shared_ptr<void>{std::move(cp)}, self->strand_);
        }
    });
}

template <typename Clock>
inline void MonitorState<Clock>::async_wait_escalation(typename EscalationWaiters::Prepared waiter) {
    asio::post(strand_, [self = this->shared_from_this(), waiter = std::move(waiter)]() mutable {
        self->escalation_waiters_.park(std::move(waiter), std::tuple<>{}, self->strand_);
        self->deliver_escalations();
    });
}

template <typename Clock>
template <typename Then>
inline void MonitorState<Clock>::close_then(Then then) {
    bool first = false;
    {
        MutexLock lock{mutex_};
        first = !closed_;
        closed_ = true;  // from here on no factory is called and nothing is started
    }
    asio::post(strand_, [self = this->shared_from_this(), first, then = std::move(then)]() mutable {
        if (first) {
            self->begin_close();
        }
        then(*self);
    });
}

template <typename Clock>
inline void MonitorState<Clock>::notify_ready(const std::weak_ptr<Component>& component, const Liveness* liveness) {
    asio::post(strand_, [self = this->shared_from_this(), component, liveness] {
        if (auto cp = component.lock()) {
            self->on_ready(cp, liveness);
        }
    });
}

}  // namespace taskmon::detail
