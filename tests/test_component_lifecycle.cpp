// Tests for taskmon/detail/component_lifecycle.hpp: the tables of lifecycle and membership changes the monitor may
// make.
#include <taskmon/detail/component_lifecycle.hpp>

#include "taskmon_catch.hpp"

#include <array>
#include <set>
#include <string>
#include <utility>

using taskmon::detail::is_allowed_transition;
using taskmon::detail::Lifecycle;

namespace {

constexpr std::array all{Lifecycle::idle, Lifecycle::scheduled, Lifecycle::starting, Lifecycle::live};

}  // namespace

TEST_CASE("Lifecycle: exactly the listed changes are allowed", "[component_lifecycle]") {
    const std::set<std::pair<Lifecycle, Lifecycle>> allowed{
        {Lifecycle::idle, Lifecycle::scheduled},      // a restart decided
        {Lifecycle::idle, Lifecycle::live},           // a first instance from register_task, supervise, spawn
        {Lifecycle::scheduled, Lifecycle::starting},  // its timer fired: the factory is called
        {Lifecycle::scheduled, Lifecycle::idle},      // cancelled, or taken over by a group unit
        {Lifecycle::starting, Lifecycle::live},       // the factory returned a task
        {Lifecycle::starting, Lifecycle::idle},       // the factory threw, or it was stopped meanwhile
        {Lifecycle::live, Lifecycle::idle},           // the instance exited
    };
    for (const auto from : all) {
        for (const auto to : all) {
            INFO(std::string{to_string(from)} << " -> " << to_string(to));
            CHECK(is_allowed_transition(from, to) == (allowed.count({from, to}) == 1));
        }
    }
}

TEST_CASE("Lifecycle: never two instances, never a start without a decision", "[component_lifecycle]") {
    // The monitor's central promises, as the table states them.
    static_assert(!is_allowed_transition(Lifecycle::live, Lifecycle::live));
    static_assert(!is_allowed_transition(Lifecycle::live, Lifecycle::starting));
    static_assert(!is_allowed_transition(Lifecycle::live, Lifecycle::scheduled));  // decided only after the exit
    static_assert(!is_allowed_transition(Lifecycle::idle, Lifecycle::starting));   // a factory runs only when due
    static_assert(!is_allowed_transition(Lifecycle::starting, Lifecycle::starting));
    CHECK(to_string(Lifecycle::scheduled) == "scheduled");
}

TEST_CASE("Membership: exactly the listed changes are allowed", "[component_lifecycle]") {
    using taskmon::detail::Membership;
    constexpr std::array every{Membership::declared, Membership::registered, Membership::removing, Membership::removed};
    const std::set<std::pair<Membership, Membership>> allowed{
        {Membership::declared, Membership::registered},  // registered, or started by restart() / reset()
        {Membership::declared, Membership::removing},    // removed while known by its factory alone
        {Membership::registered, Membership::removing},  // remove_and_wait()
        {Membership::registered, Membership::removed},   // a spawned task ended
        {Membership::removing, Membership::removed},     // its instance exited, or it waits detached
    };
    for (const auto from : every) {
        for (const auto to : every) {
            INFO(std::string{to_string(from)} << " -> " << to_string(to));
            CHECK(is_allowed_transition(from, to) == (allowed.count({from, to}) == 1));
        }
    }
    // A component that left never comes back: its name is registered again as a new record.
    static_assert(!is_allowed_transition(Membership::removed, Membership::registered));
    static_assert(taskmon::detail::is_leaving(Membership::removed));
    static_assert(!taskmon::detail::is_leaving(Membership::registered));
}
