// taskmon — coroutine supervision for standalone Asio.
// SPDX-License-Identifier: MIT
//
// The records MonitorState keeps (internal): a component and its live instance, a group, and the restart unit that
// drives a group's members through an ordered stop and start. Plain data, guarded by the monitor's mutex unless a
// field says otherwise; the monitor's handlers change them.
#pragma once

#include <taskmon/detail/config.hpp>

#include <taskmon/component_context.hpp>
#include <taskmon/component_group.hpp>
#include <taskmon/component_stats.hpp>
#include <taskmon/detail/component_lifecycle.hpp>
#include <taskmon/detail/name_index.hpp>
#include <taskmon/detail/watch_schedule.hpp>
#include <taskmon/monitor_event.hpp>
#include <taskmon/restart_policy.hpp>

#include <asio/any_io_executor.hpp>
#include <asio/awaitable.hpp>
#include <asio/basic_waitable_timer.hpp>
#include <asio/cancellation_signal.hpp>
#include <asio/wait_traits.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

namespace taskmon::detail {

/// Why the monitor asked an instance to stop.
enum class StopCause : std::uint8_t { none, restart, disable, close, remove, liveness, group };

/// What a restart unit does with a component it drives (Component::unit_role, meaningful while `unit` is set).
enum class UnitRole : std::uint8_t {
    stop,     ///< stop it and keep it stopped
    restart,  ///< stop it, then start it again in its turn
    started,  ///< started again by the unit already
    kept,     ///< started by a unit this one absorbed, then given up or quarantined: neither stopped nor started
};

/// The unit starts it again, or did (it waits for the unit's backoff, and counts as restarting).
constexpr bool unit_restarts(UnitRole role) noexcept { return role == UnitRole::restart || role == UnitRole::started; }

/// A unit started it already: the unit's stop leaves it alone, and a failure of its own does not take it out.
constexpr bool unit_started(UnitRole role) noexcept { return role == UnitRole::started || role == UnitRole::kept; }

/// What a component's instances are made from: a plain factory or one that takes the instance's context. (A
/// variant, not both functions side by side: 40 bytes, which with the shared_ptr control block fits glibc's 64-byte
/// class where two functions took the 96-byte one; one per supervised component.)
struct ComponentFactory {
    std::variant<RestartFactory, ContextFactory> make;

    [[nodiscard]] bool takes_context() const noexcept { return make.index() == 1; }

    asio::awaitable<void> operator()(ComponentContext context) const {
        if (const auto* contextual = std::get_if<ContextFactory>(&make)) {
            return (*contextual)(std::move(context));
        }
        return std::get<RestartFactory>(make)();
    }
};

/// The reason of the restart of a permanent component that returned (restart_scheduled, restarted).
inline constexpr const char* completed_normally = "completed normally";

/// The records of MonitorState `State` on `Clock`.
template <typename Clock, typename State>
struct MonitorRecords {
    using time_point = typename Clock::time_point;
    using Timer = asio::basic_waitable_timer<Clock, asio::wait_traits<Clock>, asio::any_io_executor>;

    static std::int64_t now_ns() noexcept {
        return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch()).count();
    }

    struct Component;
    struct Group;
    struct RestartUnit;

    /// An instance's liveness record (see InstanceLiveness); made only for instances that take a context or
    /// run under a liveness policy.
    class Liveness final : public InstanceLiveness {
    public:
        Liveness(std::uint64_t id, std::uint64_t generation, std::int64_t started, std::weak_ptr<State> state,
                 std::weak_ptr<Component> component) noexcept
            : InstanceLiveness{id, generation, started}, state_{std::move(state)}, component_{std::move(component)} {}

        using InstanceLiveness::mark_ready;

    private:
        [[nodiscard]] std::int64_t now() const noexcept override { return now_ns(); }

        void on_ready() noexcept override {
            if (auto state = state_.lock()) {
                try {
                    state->notify_ready(component_, this);
                } catch (...) {  // NOLINT(bugprone-empty-catch): post allocation failed; the watch still sees it
                }
            }
        }

        std::weak_ptr<State> state_;
        std::weak_ptr<Component> component_;
    };

    /// The facts of a component's instance, kept in its record (Component::instance): those of the live instance
    /// while the lifecycle is live (Component::live()), of the last one after it exited, until the next start
    /// overwrites them. Its task id is the component's task_id. Not an allocation of its own: one allocation per
    /// start fewer, and 64 bytes fewer per component (the 56-byte record, in glibc's 80-byte class with its
    /// shared_ptr control block, against 32 bytes more in the component's record).
    struct Instance {
        time_point started{};
        std::shared_ptr<Liveness> liveness;  // null: ready at start, nothing to watch
        time_point stop_deadline{};          // a requested stop is reported unresponsive after it
        FailureClass trip_class = FailureClass::counted;
        StopCause stop = StopCause::none;
        bool tripped_startup : 1 = false;  // StopCause::liveness: which deadline it missed
        bool reported_unresponsive : 1 = false;
        bool reported_in_close : 1 = false;  // close() waited for it in full and need not wait any longer
        bool ready_reported : 1 = false;     // its `ready` event was published
        // It came from its component's current factory, so a replaced factory must be kept until it exits
        // (RestartRecord::retired_factory): a coroutine lambda's frame refers to the closure object.
        bool from_factory : 1 = false;
    };

    /// What a component keeps once it has failed, been scheduled to restart or been driven by a group's unit:
    /// its restart history, its breaker and its place in a group restart. Allocated then (edit_restarts()), so
    /// that a component that only ever started carries one pointer instead of these 160 bytes.
    struct RestartRecord {
        // When the counted automatic restarts of the last restart window happened (their factory was called),
        // oldest first; at most max_restart_attempts long. (A vector, not a deque: an empty libstdc++ deque
        // already allocates ~600 bytes.)
        std::vector<time_point> window;
        std::string last_error;
        std::optional<time_point> next_restart;
        std::optional<RestartReason> restart_cause;  // what its next `restarted` reports (next_restart_cause)
        time_point last_restart{};                   // valid when restart_count > 0
        std::chrono::nanoseconds last_delay{};
        std::chrono::nanoseconds quarantine_cooldown{};
        int failure_count = 0;
        int consecutive = 0;  // k of the backoff formula
        int trials = 0;       // quarantine trials since the breaker last closed
        // A one_for_one member restarting on its own: its scheduled restart also counts against the group's
        // max_restarts (with the group's budget then) when it happens.
        std::optional<std::uint32_t> counted_in_group;
        int restart_count = 0;  // restarts performed, automatic and manual (ComponentStats::restart_count)
        // The unit driving it through a group restart, an ordered start or stop (while it is set, the unit
        // alone starts it: no restart of its own).
        std::shared_ptr<RestartUnit> unit;
        // The factory its live instance came from, replaced since (set_restart_factories, or during the call of
        // a restart's factory): kept until that instance exits.
        std::shared_ptr<const ComponentFactory> retired_factory;

        /// The record of a component that has none yet: every field at its initial value.
        [[nodiscard]] static const RestartRecord& none() noexcept {
            static const RestartRecord empty;
            return empty;
        }
    };

    struct Component {
        Component(std::string n, const asio::any_io_executor& s)
            : name{std::move(n)}, strand{&s}, name_hash{detail::name_hash(name)} {}
        std::string name;
        const asio::any_io_executor* strand;  // the pool strand its instances run on (strands_ never shrinks)
        std::shared_ptr<const ComponentFactory> factory;
        std::shared_ptr<const RestartPolicy> own_policy;  // null: the monitor's policy
        std::unique_ptr<Timer> timer;                     // backoff and quarantine cooldown; strand_ only
        std::unique_ptr<RestartRecord> history;           // null until edit_restarts(); mutex_ (not strand_) guards it
        std::uint64_t task_id = 0;                        // of the live instance, or of the last one
        // From here on the fields are ordered, and the flags packed, to leave no padding: the record is 168
        // bytes, the most that fits glibc's 192-byte allocator class with its shared_ptr control block (176
        // took 208). The small fields after `instance` live in its tail padding ([[no_unique_address]]: it is
        // not trivially copyable, so the Itanium ABI lets them). The flags change under mutex_ only, as every
        // field but the timer, stop_signal and watch_slot does.
        [[no_unique_address]] Instance instance;             // its facts; valid while live() (see Instance)
        ComponentState state = ComponentState::not_started;  // as reported (ComponentStats::state)
        Lifecycle lifecycle = Lifecycle::idle;               // what the monitor does with it
        Membership membership = Membership::declared;
        // Groups (supervise_group): its role in the unit driving it (RestartRecord::unit), and the group below.
        UnitRole unit_role = UnitRole::stop;
        bool enabled : 1 = false;
        bool manual_pending : 1 = false;   // the scheduled restart was requested by restart() or reset()
        bool restart_counted : 1 = false;  // the scheduled restart joins `window` when it happens (schedule_restart)
        bool task_cancelled : 1 = false;
        bool in_trial : 1 = false;     // the live instance is a quarantine trial
        bool spawned : 1 = false;      // spawn(): leaves components_ when its task ends, never restarted
        bool significant : 1 = false;  // its end may end its group (GroupPolicy::auto_shutdown)
        // Cancels its live instance: bound by each start's co_spawn, emitted by a requested stop; used on the
        // component's strand only (cancellation_signal is not thread-safe). One per component, re-used by every
        // instance: a stop requested for one instance can never reach the next, since the stop's post to the
        // strand happens before the exit that leads to the next start, and the strand runs posts in order.
        asio::cancellation_signal stop_signal;
        std::uint32_t restart_gen = 0;  // compared for equality only: wrapping is harmless
        std::uint32_t generation = 0;
        // Its place in the monitor's watch schedule (liveness, stop deadlines, trial probation; WatchSchedule,
        // 0: none); strand_ only. Not a bit-field, so that it shares no memory location with the flags.
        std::uint32_t watch_slot = 0;
        std::uint32_t name_hash;  // of `name`, which never changes (NameIndex)
        Group* group = nullptr;

        /// Its live instance, or null: it has one exactly while its lifecycle is live.
        [[nodiscard]] Instance* live() noexcept { return lifecycle == Lifecycle::live ? &instance : nullptr; }
        [[nodiscard]] const Instance* live() const noexcept {
            return lifecycle == Lifecycle::live ? &instance : nullptr;
        }

        /// Its restart record, read-only: RestartRecord::none() until it has one.
        [[nodiscard]] const RestartRecord& restarts() const noexcept {
            return history ? *history : RestartRecord::none();
        }
        /// Its restart record to change, allocated at the first change.
        RestartRecord& edit_restarts() {
            if (!history) {
                history = std::make_unique<RestartRecord>();
            }
            return *history;
        }
        /// Forgets the time of a scheduled restart (nothing to forget without a record).
        void clear_next_restart() noexcept {
            if (history) {
                history->next_restart.reset();
            }
        }
    };
    static_assert(sizeof(void*) != 8 || sizeof(Component) <= 168,
                  "a component record past 168 bytes takes glibc's next allocator class with its control block");
    using ComponentPtr = std::shared_ptr<Component>;

    /// Where a component keeps its place in the watch schedule.
    struct WatchSlotOf {
        std::uint32_t& operator()(const ComponentPtr& c) const noexcept { return c->watch_slot; }
    };
    /// The next check of every watched component, for the monitor's one watch timer.
    using WatchDeadlines = WatchSchedule<time_point, ComponentPtr, WatchSlotOf>;

    /// How NameIndex reads a component's name.
    struct ByName {
        static std::string_view name(const ComponentPtr& c) noexcept { return c->name; }
        static std::uint32_t hash_of(std::string_view name) noexcept { return detail::name_hash(name); }
        static std::uint32_t hash(const ComponentPtr& c) noexcept { return c->name_hash; }
    };
    /// Components by name: the records themselves in a NameIndex, each keyed by its own name (about 33 bytes a
    /// component; a std::set node took 64).
    using ComponentSet = NameIndex<ComponentPtr, ByName>;

    /// A member of a group: a component or a nested group.
    struct Member {
        ComponentPtr component;
        Group* group = nullptr;
        [[nodiscard]] const std::string& name() const { return component ? component->name : group->name; }
    };

    /// A group of supervise_group(). Groups are never removed: they live as long as the state.
    struct Group {
        std::string name;
        GroupPolicy policy;
        Group* parent = nullptr;
        std::vector<Member> members;     // start order
        std::vector<time_point> window;  // when its counted restarts happened, oldest first (policy.max_restarts)
        GroupState state = GroupState::starting;
        int restart_count = 0;
        int pending_restarts = 0;  // counted restarts decided, not yet happened (their unit has not started yet)
        std::uint32_t budget = 0;  // which budget they count against: a fresh budget forgets them
    };

    /// One ordered stop-then-start of some components of one tree: a group's first start, a group restart, an
    /// auto_shutdown, a top-level give-up, or close(). It stops the components it drives that are not yet
    /// restarted in reverse tree order (each waited for up to its shutdown_timeout), waits until resume_at,
    /// then starts those to restart in tree order (each after the one before is ready). A failure among them
    /// makes a new unit that absorbs this one (`merged`), so a component is driven by one unit at most.
    struct RestartUnit {
        enum class Phase { stopping, waiting, starting };
        explicit RestartUnit(Group& r) : root{&r} {}
        Group* root;
        Phase phase = Phase::stopping;
        time_point resume_at{};
        std::unique_ptr<Timer> timer;                        // stop deadlines and the backoff; strand_ only
        std::vector<Group*> starting, restarting, shutting;  // groups whose state it settles when done
        // one_for_one groups that published a group_restarting for a nested group this unit restarts: their own
        // state does not change, but their group_restarted closes that event when the unit is done.
        std::vector<Group*> announced;
        // Groups whose restart by this unit counts against their max_restarts (with the budget it counts
        // against): it joins their window when the unit starts its members.
        std::vector<std::pair<Group*, std::uint32_t>> counted;
        bool merged = false;
    };
};

}  // namespace taskmon::detail
