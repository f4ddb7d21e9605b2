// taskmon — coroutine supervision for standalone Asio.
// SPDX-License-Identifier: MIT
//
// Umbrella header: includes every public header of the library.
#pragma once

#include <taskmon/detail/config.hpp>
#include <taskmon/version.hpp>

// TaskMonitor
#include <taskmon/component_context.hpp>
#include <taskmon/component_group.hpp>
#include <taskmon/component_stats.hpp>
#include <taskmon/duration.hpp>
#include <taskmon/event_subscription.hpp>
#include <taskmon/fault_point.hpp>
#include <taskmon/monitor_closed.hpp>
#include <taskmon/monitor_event.hpp>
#include <taskmon/policy_overrides.hpp>
#include <taskmon/restart_policy.hpp>
#include <taskmon/spawn_result.hpp>
#include <taskmon/state_wait.hpp>
#include <taskmon/task_monitor.hpp>

// Health (live / ready) of a TaskMonitor or a Supervisor
#include <taskmon/ops/health.hpp>

// io_semaphore
#include <taskmon/async_semaphore.hpp>
#include <taskmon/io_semaphore.hpp>

// Supervisor
#include <taskmon/agent/agent_settings.hpp>
#include <taskmon/agent/agent_status.hpp>
#include <taskmon/agent/cpu_usage.hpp>
#include <taskmon/agent/history.hpp>
#include <taskmon/agent/supervisor.hpp>
#include <taskmon/agent/timeout_error.hpp>

// Operations (core: no extra dependency; the optional integrations have their own headers and targets)
#include <taskmon/ops/timeline.hpp>
