// taskmon — coroutine supervision for standalone Asio.
// SPDX-License-Identifier: MIT
//
// The member functions of BasicTaskMonitor (internal; include <taskmon/task_monitor.hpp>). They are defined out
// of the class, so not inline. Under TASKMON_SEPARATE_COMPILATION task_monitor.hpp does not include this header:
// a translation unit that includes task_monitor.hpp compiles none of them, nor parses the MonitorState behind
// them; taskmon/separate_compilation.hpp instantiates them for the steady clock,
// taskmon/testing/separate_compilation.hpp for ManualClock (TASKMON_SEPARATE_COMPILATION_MANUAL_CLOCK), and
// taskmon/custom_clock.hpp brings them in for another clock.
#pragma once

#include <taskmon/task_monitor.hpp>

#include <taskmon/detail/monitor_state.hpp>
#if defined(TASKMON_SEPARATE_COMPILATION) && defined(TASKMON_SEPARATE_COMPILATION_MANUAL_CLOCK)
#include <taskmon/testing/manual_clock.hpp>
#endif

#include <memory>
#include <stdexcept>
#include <utility>

namespace taskmon {

template <typename Clock>
BasicTaskMonitor<Clock>::BasicTaskMonitor(asio::any_io_executor executor, RestartPolicy policy,
                                          std::shared_ptr<spdlog::logger> logger, RandomSource random,
                                          std::size_t strand_pool_size)
    : state_{make_state(std::move(executor), policy, std::move(logger), std::move(random), strand_pool_size)} {}

template <typename Clock>
BasicTaskMonitor<Clock>::~BasicTaskMonitor() {
    if (state_) {
        state_->listeners()->clear();
        state_->close(nullptr);
    }
}

template <typename Clock>
void BasicTaskMonitor<Clock>::set_restart_factories(std::map<std::string, RestartFactory> factories) {
    state_->set_restart_factories(std::move(factories));
}

template <typename Clock>
void BasicTaskMonitor<Clock>::set_restart_factories(std::map<std::string, ContextFactory> factories) {
    state_->set_restart_factories(std::move(factories));
}

template <typename Clock>
void BasicTaskMonitor<Clock>::register_task(const std::string& name, asio::awaitable<void> task) {
    state_->register_task(name, std::move(task));
}

template <typename Clock>
void BasicTaskMonitor<Clock>::spawn(const std::string& name, asio::awaitable<void> task) {
    (void)state_->template spawn_task<detail::SpawnMode::named>(name, std::move(task));
}

template <typename Clock>
SpawnResult BasicTaskMonitor<Clock>::try_spawn(const std::string& name, asio::awaitable<void> task) {
    return state_->template spawn_task<detail::SpawnMode::try_named>(name, std::move(task));
}

template <typename Clock>
std::string BasicTaskMonitor<Clock>::spawn_numbered(std::string_view prefix, asio::awaitable<void> task) {
    return state_->template spawn_task<detail::SpawnMode::numbered>(std::string{prefix}, std::move(task)).name;
}

template <typename Clock>
SpawnResult BasicTaskMonitor<Clock>::try_spawn_numbered(std::string_view prefix, asio::awaitable<void> task) {
    return state_->template spawn_task<detail::SpawnMode::try_numbered>(std::string{prefix}, std::move(task));
}

template <typename Clock>
void BasicTaskMonitor<Clock>::enable(const std::vector<std::string>& names) {
    state_->enable(names);
}

template <typename Clock>
void BasicTaskMonitor<Clock>::disable(const std::vector<std::string>& names) {
    state_->disable(names);
}

template <typename Clock>
void BasicTaskMonitor<Clock>::supervise(const std::string& name, RestartFactory factory,
                                        std::optional<RestartPolicy> policy) {
    state_->supervise(name, std::move(factory), std::move(policy));
}

template <typename Clock>
void BasicTaskMonitor<Clock>::supervise(const std::string& name, ContextFactory factory,
                                        std::optional<RestartPolicy> policy) {
    state_->supervise(name, std::move(factory), std::move(policy));
}

template <typename Clock>
void BasicTaskMonitor<Clock>::supervise(const std::string& name, RestartFactory factory,
                                        const PolicyOverrides& overrides) {
    state_->supervise(name, std::move(factory), std::optional<RestartPolicy>{overrides.applied_to(policy())});
}

template <typename Clock>
void BasicTaskMonitor<Clock>::supervise(const std::string& name, ContextFactory factory,
                                        const PolicyOverrides& overrides) {
    state_->supervise(name, std::move(factory), std::optional<RestartPolicy>{overrides.applied_to(policy())});
}

template <typename Clock>
void BasicTaskMonitor<Clock>::supervise_group(const std::string& name, std::vector<GroupMember> members,
                                              const GroupPolicy& policy, const std::string& parent) {
    state_->supervise_group(name, std::move(members), policy, parent);
}

template <typename Clock>
std::map<std::string, GroupStats> BasicTaskMonitor<Clock>::get_group_stats() const {
    return state_->group_snapshot();
}

template <typename Clock>
void BasicTaskMonitor<Clock>::restart(const std::string& name) {
    state_->restart(name);
}

template <typename Clock>
void BasicTaskMonitor<Clock>::reset(const std::string& name) {
    state_->reset(name);
}

template <typename Clock>
void BasicTaskMonitor<Clock>::replace_policy(const std::string& name, RestartPolicy policy) {
    state_->update_policy(name, std::move(policy));
}

template <typename Clock>
void BasicTaskMonitor<Clock>::update_policy(const std::string& name, const PolicyOverrides& overrides) {
    state_->update_policy(name, overrides);
}

template <typename Clock>
std::shared_ptr<void> BasicTaskMonitor<Clock>::begin_remove(const std::string& name) {
    return state_->begin_remove(name);
}

template <typename Clock>
void BasicTaskMonitor<Clock>::wait_removed(const std::shared_ptr<State>& state, std::shared_ptr<void> record,
                                           detail::RemoveWaiters::Prepared waiter) {
    state->async_wait_removed(std::move(record), std::move(waiter));
}

template <typename Clock>
void BasicTaskMonitor<Clock>::wait_escalation(const std::shared_ptr<State>& state,
                                              detail::EscalationWaiters::Prepared waiter) {
    state->async_wait_escalation(std::move(waiter));
}

template <typename Clock>
EventSubscription BasicTaskMonitor<Clock>::subscribe(MonitorEventListener listener) {
    const auto id = state_->subscribe(std::move(listener));
    return EventSubscription{state_->listeners(), id};
}

template <typename Clock>
std::map<std::string, ComponentStats> BasicTaskMonitor<Clock>::get_component_stats() const {
    return state_->snapshot();
}

template <typename Clock>
asio::awaitable<void> BasicTaskMonitor<Clock>::close() {
    return async_close(asio::use_awaitable);
}

template <typename Clock>
void BasicTaskMonitor<Clock>::close_with(const std::shared_ptr<State>& state, detail::CloseWaiters::Prepared waiter) {
    state->async_close(std::move(waiter));
}

template <typename Clock>
typename BasicTaskMonitor<Clock>::executor_type BasicTaskMonitor<Clock>::get_executor() const noexcept {
    return state_->executor();
}

template <typename Clock>
asio::any_io_executor BasicTaskMonitor<Clock>::executor_of(const std::shared_ptr<State>& state) noexcept {
    return state->executor();
}

template <typename Clock>
const RestartPolicy& BasicTaskMonitor<Clock>::policy() const noexcept {
    return state_->policy();
}

template <typename Clock>
std::shared_ptr<typename BasicTaskMonitor<Clock>::State> BasicTaskMonitor<Clock>::make_state(
    asio::any_io_executor executor, const RestartPolicy& policy, std::shared_ptr<spdlog::logger> logger,
    RandomSource random, std::size_t strand_pool_size) {
    validate(policy, "TaskMonitor policy");
    if (!executor) {
        throw std::invalid_argument("TaskMonitor: executor must not be empty");
    }
    return std::make_shared<State>(std::move(executor), policy, std::move(logger), std::move(random), strand_pool_size);
}

#if defined(TASKMON_SEPARATE_COMPILATION)
// Compiled once, by the translation unit that includes taskmon/separate_compilation.hpp (this header is included
// elsewhere only through taskmon/custom_clock.hpp, for another clock); the test clock's only where a program asks
// for it (taskmon::compiled_testing), so a production program's library carries no test code.
extern template class BasicTaskMonitor<std::chrono::steady_clock>;
#if defined(TASKMON_SEPARATE_COMPILATION_MANUAL_CLOCK)
extern template class BasicTaskMonitor<testing::ManualClock>;
#endif
#endif

}  // namespace taskmon
