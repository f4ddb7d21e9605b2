// taskmon — coroutine supervision for standalone Asio.
// SPDX-License-Identifier: MIT
//
// FaultInjector: makes a component's instances fail as real ones do, at rates you choose, drawn from a
// simulation's seed, and records every fault it injected.
//
//   taskmon::testing::Simulation sim{seed};
//   taskmon::testing::FaultInjector faults{sim};
//   faults.set_rates("db", {.throws_later = 0.5, .slow_stop = 0.2, .max_delay = std::chrono::minutes{5}});
//   monitor.supervise("db", faults.wrap("db", db_factory));
//   faults.set_group_rates("shard", {.throws_at_start = 0.1});        // every member without rates of its own
//   monitor.supervise_group("shard", faults.wrap("shard", members));
//   sim.run_for(std::chrono::hours{24});
//   faults.injected();   // each fault: kind, component, instance, when it was drawn, the drawn delay
#pragma once

#include <taskmon/component_context.hpp>
#include <taskmon/component_group.hpp>
#include <taskmon/fault_point.hpp>
#include <taskmon/testing/fault_plan.hpp>
#include <taskmon/testing/manual_clock.hpp>
#include <taskmon/testing/simulation.hpp>

#include <asio/awaitable.hpp>
#include <asio/co_spawn.hpp>
#include <asio/error.hpp>
#include <asio/experimental/deferred.hpp>
#include <asio/experimental/parallel_group.hpp>
#include <asio/redirect_error.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

namespace taskmon::testing {

/// What an injected fault throws, so that a classifier or a test can tell it from the component's own failures.
class InjectedError : public std::runtime_error {
public:
    InjectedError(FaultKind kind, const std::string& component)
        : std::runtime_error{std::string{"injected fault: "} + to_string(kind) + " (" + component + ")"}, kind_{kind} {}
    [[nodiscard]] FaultKind kind() const noexcept { return kind_; }

private:
    FaultKind kind_;
};

/// Wraps component factories so that their instances fail at the configured rates, every draw from the
/// simulation's generator (one seed, one sequence of faults). Invariants: every fault it injects is in injected()
/// in the order drawn; a component without rates is wrapped without faults. Single-threaded, as the simulation
/// is. The simulation must outlive every call of a wrapped factory; the instances share the injector's books, so
/// they may end after the injector (as the ones still pending when a simulation is destroyed do).
class FaultInjector {
public:
    /// Also decides, on the constructing thread and until destroyed, which TASKMON_MAYBE_FAIL points fire. Faults
    /// are drawn from a generator of their own, seeded from the simulation's seed: the scheduling of a run does
    /// not depend on whether its faults were drawn or replayed from a plan.
    explicit FaultInjector(Simulation& sim) : FaultInjector(sim, std::nullopt) {}

    /// Replays `plan` instead of drawing: each fault of the plan is injected into the instance (or the firing of a
    /// fault point) it names, and nothing else; rates and chances are ignored. With the same seed and the plan of
    /// a run (plan()), the run is the same run.
    FaultInjector(Simulation& sim, FaultPlan plan) : FaultInjector(sim, std::optional<FaultPlan>{std::move(plan)}) {}

    ~FaultInjector() {
        if (taskmon::detail::installed_fault_points() == books_.get()) {
            taskmon::detail::installed_fault_points() = previous_hook_;
        }
    }

    FaultInjector(const FaultInjector&) = delete;
    FaultInjector& operator=(const FaultInjector&) = delete;

    /// The faults injected so far, as a plan to replay (FaultPlan::to_string() writes it on one line).
    [[nodiscard]] FaultPlan plan() const { return FaultPlan{books_->injected}; }

    /// Sets the rates of `component` (for its next instances). Throws std::invalid_argument naming the field if a
    /// rate is outside [0, 1] or max_delay is not positive; nothing changes then.
    void set_rates(const std::string& component, const FaultRates& rates) {
        check(rates, "component '" + component + "'");
        books_->rates[component] = rates;
    }

    /// Sets the rates of the members of `group` (those wrapped with wrap(group, members)) that have no rates of
    /// their own. Throws std::invalid_argument as set_rates() does; nothing changes then.
    void set_group_rates(const std::string& group, const FaultRates& rates) {
        check(rates, "group '" + group + "'");
        books_->group_rates[group] = rates;
    }

    /// Sets the chance in [0, 1] that the fault point `point` (TASKMON_MAYBE_FAIL(point) in the program's code)
    /// fires each time it is reached; a point without a chance never fires and draws nothing. Throws
    /// std::invalid_argument naming the point for a chance outside [0, 1] or an empty name; nothing changes then.
    void set_point(const std::string& point, double chance) {
        if (point.empty()) {
            throw std::invalid_argument("FaultInjector::set_point: the point's name must not be empty");
        }
        if (!(chance >= 0.0 && chance <= 1.0)) {
            throw std::invalid_argument("FaultInjector::set_point: chance of point '" + point + "' is " +
                                        std::to_string(chance) + ", outside [0, 1]");
        }
        books_->points[point] = chance;
    }

    /// A factory that calls `factory` and injects the faults of `component` into what it makes.
    [[nodiscard]] RestartFactory wrap(const std::string& component, RestartFactory factory) {
        if (!factory) {
            throw std::invalid_argument("FaultInjector::wrap: factory of component '" + component + "' is empty");
        }
        books_->wrapped.insert(component);
        return [books = books_, component, factory = std::move(factory)]() -> asio::awaitable<void> {
            const auto plan = books->draw(component);
            return run(factory(), plan, books, component, books->instances[component]);
        };
    }

    /// The same for a factory that takes a ComponentContext.
    [[nodiscard]] ContextFactory wrap(const std::string& component, ContextFactory factory) {
        if (!factory) {
            throw std::invalid_argument("FaultInjector::wrap: factory of component '" + component + "' is empty");
        }
        books_->wrapped.insert(component);
        return [books = books_, component,
                factory = std::move(factory)](ComponentContext context) -> asio::awaitable<void> {
            const auto plan = books->draw(component);
            return run(factory(std::move(context)), plan, books, component, books->instances[component]);
        };
    }

    /// The members of `group` with their factories wrapped, each under its own name (wrap() above): a member
    /// takes its own rates if it has any, else the group's (set_group_rates()). Throws std::invalid_argument
    /// naming the member if one has no factory or two; nothing is wrapped then.
    [[nodiscard]] std::vector<GroupMember> wrap(const std::string& group, std::vector<GroupMember> members) {
        for (const auto& m : members) {
            if (static_cast<bool>(m.factory) == static_cast<bool>(m.context_factory)) {
                throw std::invalid_argument("FaultInjector::wrap: member '" + m.name + "' of group '" + group +
                                            "' must have exactly one of factory and context_factory");
            }
        }
        for (auto& m : members) {
            if (m.factory) {
                m.factory = wrap(m.name, std::move(m.factory));
            } else {
                m.context_factory = wrap(m.name, std::move(m.context_factory));
            }
            books_->group_of[m.name] = group;
        }
        return members;
    }

    /// For a replayed plan (FaultInjector{sim, plan}), once every factory is wrapped: throws
    /// std::invalid_argument naming the first fault of the plan whose component no factory was wrapped for (a
    /// plan of another program, or a misspelt name), which would never be injected. Fault points are not checked:
    /// their names are known only when the program reaches them.
    void check_plan() const {
        if (!books_->planned) {
            return;
        }
        for (const auto& [key, faults] : *books_->planned) {
            for (const auto& f : faults) {
                if (f.kind != FaultKind::fault_point && books_->wrapped.count(f.component) == 0) {
                    throw std::invalid_argument("FaultInjector: the plan names component '" + f.component + "' (" +
                                                to_string(f.kind) + " of instance " + std::to_string(f.instance) +
                                                "), which has no wrapped factory");
                }
            }
        }
    }

    /// Every fault injected so far, in the order drawn.
    [[nodiscard]] const std::vector<InjectedFault>& injected() const noexcept { return books_->injected; }

    /// Instances of wrapped factories running now, of `component`.
    [[nodiscard]] int live(std::string_view component) const {
        const auto it = books_->running.find(component);
        return it == books_->running.end() ? 0 : it->second.first;
    }

    /// Every time an instance of a wrapped factory started while another instance of the same component still ran
    /// (the monitor promises it never happens), as a message naming the seed, the virtual time, the handlers run
    /// and both instances. Empty in a correct run.
    [[nodiscard]] const std::vector<std::string>& violations() const noexcept { return books_->violations; }

    /// How many faults of `kind` were injected.
    [[nodiscard]] std::size_t count(FaultKind kind) const noexcept {
        std::size_t n = 0;
        for (const auto& f : books_->injected) {
            n += f.kind == kind ? 1 : 0;
        }
        return n;
    }

private:
    FaultInjector(Simulation& sim, std::optional<FaultPlan> plan)
        : books_{std::make_shared<Books>(sim, std::move(plan))},
          previous_hook_{std::exchange(taskmon::detail::installed_fault_points(), books_.get())} {}

    /// What one instance will do, drawn when its factory is called.
    struct Plan {
        bool throws_at_start = false;
        bool hangs = false;
        std::chrono::nanoseconds stall_after{};  // zero: does not stall
        std::chrono::nanoseconds hang{};
        std::chrono::nanoseconds throws_after{};  // zero: does not throw later
        std::chrono::nanoseconds slow_stop{};     // zero: stops at once
    };

    /// `whose`: "component 'x'" or "group 'g'".
    static void check(const FaultRates& r, const std::string& whose) {
        const auto rate = [&](double p, const char* field) {
            if (!(p >= 0.0 && p <= 1.0)) {
                throw std::invalid_argument("FaultInjector::set_rates: " + std::string{field} + " of " + whose +
                                            " is " + std::to_string(p) + ", outside [0, 1]");
            }
        };
        rate(r.factory_throws, "factory_throws");
        rate(r.throws_at_start, "throws_at_start");
        rate(r.throws_later, "throws_later");
        rate(r.hangs, "hangs");
        rate(r.stalls, "stalls");
        rate(r.slow_stop, "slow_stop");
        if (r.max_delay <= std::chrono::nanoseconds::zero()) {
            throw std::invalid_argument("FaultInjector::set_rates: max_delay of " + whose + " must be positive");
        }
    }

    /// What the injector knows, shared with the factories it wrapped and the instances they made: an instance
    /// still running when the simulation is destroyed ends after the injector may have gone.
    struct Books final : taskmon::detail::FaultPointHook {
        Books(Simulation& s, std::optional<FaultPlan> fixed)
            : sim{&s}, random{s.seed() ^ 0x6a09e667f3bcc909ULL} {  // (a constant: any other seed's stream)
            if (fixed) {
                planned.emplace();
                for (auto& f : fixed->faults) {
                    auto key = std::make_pair(f.component, f.instance);
                    (*planned)[std::move(key)].push_back(f);
                }
            }
        }

        /// The planned faults of `component`'s `instance` (of a point's reach), in the order they are drawn.
        std::vector<InjectedFault> planned_for(const std::string& component, std::uint64_t instance) const {
            const auto it = planned->find(std::make_pair(component, instance));
            if (it == planned->end()) {
                return {};
            }
            auto faults = it->second;
            std::stable_sort(faults.begin(), faults.end(),
                             [](const auto& a, const auto& b) { return a.kind < b.kind; });
            return faults;
        }

        bool fires(std::string_view point) override {
            const std::string name{point};
            const auto reach = ++reaches[name];
            if (planned) {
                for (const auto& f : planned_for(name, reach)) {
                    if (f.kind == FaultKind::fault_point) {
                        record(FaultKind::fault_point, name, reach);
                        return true;
                    }
                }
                return false;
            }
            const auto it = points.find(point);
            if (it == points.end() || !random.chance(it->second)) {
                return false;
            }
            record(FaultKind::fault_point, name, reach);
            return true;
        }

        std::chrono::nanoseconds delay(const FaultRates& r) {
            return std::chrono::nanoseconds{
                1 + static_cast<std::int64_t>(random.below(static_cast<std::uint64_t>(r.max_delay.count())))};
        }

        void record(FaultKind kind, const std::string& component, std::uint64_t instance,
                    std::chrono::nanoseconds d = {}) {
            injected.push_back({kind, component, instance, sim->now(), d});
            sim->trace()
                .add(std::string_view{to_string(kind)})
                .add(component)
                .add(static_cast<std::int64_t>(d.count()));
        }

        /// Draws the faults of the next instance of `component`; throws InjectedError if its factory is to throw.
        Plan draw(const std::string& component) {
            const auto instance = ++instances[component];
            Plan plan;
            if (planned) {
                for (const auto& f : planned_for(component, instance)) {
                    switch (f.kind) {
                        case FaultKind::factory_throws:
                            record(f.kind, component, instance);
                            throw InjectedError{f.kind, component};
                        case FaultKind::throws_at_start:
                            record(f.kind, component, instance);
                            plan.throws_at_start = true;
                            return plan;
                        case FaultKind::throws_later: plan.throws_after = f.delay; break;
                        case FaultKind::hangs:
                            plan.hangs = true;
                            plan.hang = f.delay;
                            break;
                        case FaultKind::stalls: plan.stall_after = f.delay; break;
                        case FaultKind::slow_stop: plan.slow_stop = f.delay; break;
                        case FaultKind::fault_point: continue;  // (a point's name that is also a component's)
                    }
                    record(f.kind, component, instance, f.delay);
                }
                return plan;
            }
            const auto* found = rates_of(component);
            if (found == nullptr) {
                return plan;
            }
            const auto& r = *found;
            if (random.chance(r.factory_throws)) {
                record(FaultKind::factory_throws, component, instance);
                throw InjectedError{FaultKind::factory_throws, component};
            }
            if (random.chance(r.throws_at_start)) {
                plan.throws_at_start = true;
                record(FaultKind::throws_at_start, component, instance);
                return plan;
            }
            if (random.chance(r.throws_later)) {
                plan.throws_after = delay(r);
                record(FaultKind::throws_later, component, instance, plan.throws_after);
            }
            if (random.chance(r.hangs)) {
                plan.hangs = true;
                plan.hang = delay(r);
                record(FaultKind::hangs, component, instance, plan.hang);
            }
            if (random.chance(r.stalls)) {
                plan.stall_after = delay(r);
                record(FaultKind::stalls, component, instance, plan.stall_after);
            }
            if (random.chance(r.slow_stop)) {
                plan.slow_stop = delay(r);
                record(FaultKind::slow_stop, component, instance, plan.slow_stop);
            }
            return plan;
        }

        /// A component's own rates, else its group's; null if neither has any.
        const FaultRates* rates_of(const std::string& component) const {
            if (const auto it = rates.find(component); it != rates.end()) {
                return &it->second;
            }
            if (const auto g = group_of.find(component); g != group_of.end()) {
                if (const auto it = group_rates.find(g->second); it != group_rates.end()) {
                    return &it->second;
                }
            }
            return nullptr;
        }

        Simulation* sim;
        std::map<std::string, FaultRates, std::less<>> rates;
        std::map<std::string, FaultRates, std::less<>> group_rates;
        std::map<std::string, std::string, std::less<>> group_of;     // a member's group, as wrapped
        std::set<std::string, std::less<>> wrapped;                   // components with a wrapped factory
        std::map<std::string, std::uint64_t, std::less<>> instances;  // factory calls so far
        std::vector<InjectedFault> injected;
        std::map<std::string, std::pair<int, std::uint64_t>, std::less<>> running;  // how many run, the latest
        std::map<std::string, double, std::less<>> points;                          // fault points' chances
        std::map<std::string, std::uint64_t, std::less<>> reaches;                  // times each point was reached
        SeededRandom random;                                                        // the faults' own stream
        std::optional<std::map<std::pair<std::string, std::uint64_t>, std::vector<InjectedFault>>> planned;
        std::vector<std::string> violations;
    };

    /// Waits `d` of virtual time, cancellation ignored. The caller disables cancellation first: once a coroutine
    /// is cancelled, Asio throws at its next co_await of another coroutine.
    static asio::awaitable<void> sleep_through_cancellation(std::chrono::nanoseconds d) {
        ManualTimer timer{co_await asio::this_coro::executor, d};
        std::error_code ignored;
        co_await timer.async_wait(asio::redirect_error(asio::use_awaitable, ignored));
    }

    /// Runs `task` until it ends or `d` passes, whichever comes first (the other is cancelled). When `d` passes
    /// first: throws_later throws InjectedError; stalls waits, doing nothing (no heartbeat) until the instance is
    /// stopped. A parallel group waiting for one, not awaitable_operators' `||`, which waits for one to succeed:
    /// the task's own failure must end it at once.
    static asio::awaitable<void> interrupt_after(asio::awaitable<void> task, std::chrono::nanoseconds d, FaultKind kind,
                                                 std::string component) {
        const auto ex = co_await asio::this_coro::executor;
        auto [order, task_error, timer_error, fired] =
            co_await asio::experimental::make_parallel_group(
                asio::co_spawn(ex, std::move(task), asio::experimental::deferred),
                asio::co_spawn(ex, sleep_fired(d), asio::experimental::deferred))
                .async_wait(asio::experimental::wait_for_one(), asio::use_awaitable);
        if (order[0] == 0) {
            if (task_error) {
                std::rethrow_exception(task_error);
            }
            co_return;
        }
        if (timer_error) {
            std::rethrow_exception(timer_error);
        }
        if (!fired) {  // both were cancelled: the instance is being stopped (what its task threw then is dropped)
            throw std::system_error{asio::error::operation_aborted};
        }
        if (kind == FaultKind::stalls) {
            ManualTimer never{ex, ManualClock::time_point::max()};  // (a runner never jumps to it)
            co_await never.async_wait(asio::use_awaitable);         // ends when the instance is stopped
        }
        throw InjectedError{kind, component};
    }

    /// Waits `d`; returns whether it passed (false: cancelled). Returns rather than throws: the wait is cancelled
    /// each time its task ends first, and an exception's unwinding was an eighth of a campaign's instructions.
    static asio::awaitable<bool> sleep_fired(std::chrono::nanoseconds d) {
        ManualTimer timer{co_await asio::this_coro::executor, d};
        std::error_code ec;
        co_await timer.async_wait(asio::redirect_error(asio::use_awaitable, ec));
        co_return !ec;
    }

    /// The awaitable that runs `task` with the faults of `plan` that interrupt it (throws_later, stalls), the
    /// earlier of the two if both were drawn; `task` itself if neither was.
    static asio::awaitable<void> interrupted(asio::awaitable<void> task, const Plan& plan,
                                             const std::string& component) {
        const bool throws = plan.throws_after > std::chrono::nanoseconds::zero();
        const bool stalls = plan.stall_after > std::chrono::nanoseconds::zero();
        if (throws && (!stalls || plan.throws_after <= plan.stall_after)) {
            return interrupt_after(std::move(task), plan.throws_after, FaultKind::throws_later, component);
        }
        if (stalls) {
            return interrupt_after(std::move(task), plan.stall_after, FaultKind::stalls, component);
        }
        return task;
    }

    /// Counts an instance as running for as long as its coroutine frame lives.
    class LiveInstance {
    public:
        LiveInstance(std::shared_ptr<Books> books, const std::string& component, std::uint64_t instance)
            : books_{std::move(books)}, component_{component} {
            auto& [count, latest] = books_->running[component_];
            if (count != 0) {
                const auto& sim = *books_->sim;
                books_->violations.push_back("seed " + std::to_string(sim.seed()) + ", t=" +
                                             std::to_string(sim.now().time_since_epoch().count()) + " ns, after " +
                                             std::to_string(sim.handlers_run()) + " handlers: instance " +
                                             std::to_string(instance) + " of component '" + component_ +
                                             "' started while instance " + std::to_string(latest) + " was running");
            }
            ++count;
            latest = instance;
        }
        ~LiveInstance() { --books_->running.find(component_)->second.first; }
        LiveInstance(const LiveInstance&) = delete;
        LiveInstance& operator=(const LiveInstance&) = delete;

    private:
        std::shared_ptr<Books> books_;
        std::string component_;
    };

    /// The instance: `task` with the faults of `plan`.
    static asio::awaitable<void> run(asio::awaitable<void> task, Plan plan, std::shared_ptr<Books> books,
                                     std::string component, std::uint64_t instance) {
        const LiveInstance running{std::move(books), component, instance};
        if (plan.throws_at_start) {
            throw InjectedError{FaultKind::throws_at_start, component};
        }
        if (plan.hangs) {
            co_await asio::this_coro::reset_cancellation_state(asio::disable_cancellation());
            co_await sleep_through_cancellation(plan.hang);
            throw InjectedError{FaultKind::hangs, component};
        }
        if (plan.slow_stop == std::chrono::nanoseconds::zero()) {
            co_await interrupted(std::move(task), plan, component);  // whatever ends it ends the instance
            co_return;
        }
        std::exception_ptr error;  // (no co_await inside a handler: the slow stop waits after it)
        bool stopped = false;
        try {
            co_await interrupted(std::move(task), plan, component);
        } catch (const std::system_error& e) {
            stopped = e.code() == asio::error::operation_aborted;
            error = std::current_exception();
        } catch (...) {
            error = std::current_exception();
        }
        if (stopped) {
            co_await asio::this_coro::reset_cancellation_state(asio::disable_cancellation());
            co_await sleep_through_cancellation(plan.slow_stop);  // asked to stop: ends as it would, later
        }
        if (error) {
            std::rethrow_exception(error);
        }
    }

    std::shared_ptr<Books> books_;
    taskmon::detail::FaultPointHook* previous_hook_;
};

}  // namespace taskmon::testing
