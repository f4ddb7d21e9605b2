// Tests for taskmon/detail/restart_cause.hpp: the cause the next `restarted` of a component reports.
#include <taskmon/detail/restart_cause.hpp>

#include "taskmon_catch.hpp"

#include <initializer_list>
#include <optional>

using taskmon::MonitorEventKind;
using taskmon::RestartReason;
using taskmon::detail::next_restart_cause;

namespace {

/// The cause after `kinds`, in order, starting with none.
std::optional<RestartReason> after(std::initializer_list<MonitorEventKind> kinds, bool in_group = false) {
    std::optional<RestartReason> cause;
    for (const auto kind : kinds) {
        cause = next_restart_cause(cause, kind, in_group);
    }
    return cause;
}

}  // namespace

TEST_CASE("next_restart_cause: the failure sets the cause; the backoff keeps it", "[restart_cause]") {
    using K = MonitorEventKind;
    CHECK(after({K::started, K::failed, K::restart_scheduled}) == RestartReason::failed);
    CHECK(after({K::watchdog_timeout, K::stopped, K::restart_scheduled}) == RestartReason::watchdog_timeout);
    CHECK(after({K::factory_failed, K::restart_scheduled}) == RestartReason::factory_failed);
    CHECK(after({K::failed, K::quarantined}) == RestartReason::quarantine_trial);
    CHECK(after({K::restart_scheduled}) == RestartReason::completed);  // no failure before: a permanent return
}

TEST_CASE("next_restart_cause: restart() and a group's stop count only when nothing else did", "[restart_cause]") {
    using K = MonitorEventKind;
    CHECK(after({K::restart_requested, K::stopped}) == RestartReason::manual);
    CHECK(after({K::failed, K::restart_scheduled, K::restart_merged}) == RestartReason::failed);
    CHECK(after({K::restart_merged}) == RestartReason::manual);
    CHECK(after({K::stopped}, true) == RestartReason::group);
    CHECK(after({K::stopped}, false) == std::nullopt);
    CHECK(after({K::failed, K::stopped}, true) == RestartReason::failed);
}

TEST_CASE("next_restart_cause: the restart, a give-up or a cancellation forgets the cause", "[restart_cause]") {
    using K = MonitorEventKind;
    for (const auto end :
         {K::restarted, K::gave_up, K::escalated, K::restart_cancelled, K::completed, K::not_enabled, K::no_factory}) {
        CHECK(after({K::failed, K::restart_scheduled, end}) == std::nullopt);
    }
    CHECK(after({K::failed, K::ready, K::stop_timeout, K::policy_updated}) == RestartReason::failed);
}

TEST_CASE("next_restart_cause: a first instance started after its factory failed forgets the failure",
          "[restart_cause]") {
    using K = MonitorEventKind;
    // Its first start is reported as started, not restarted; a group restart of it later is the group's.
    CHECK(after({K::factory_failed, K::restart_scheduled, K::started}) == std::nullopt);
    CHECK(after({K::factory_failed, K::restart_scheduled, K::started, K::stopped}, true) == RestartReason::group);
}
