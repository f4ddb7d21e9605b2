// taskmon — coroutine supervision for standalone Asio.
// SPDX-License-Identifier: MIT
//
// The former path of <taskmon/ops/monitor_metrics.hpp>, kept for one release.
#pragma once

#include <taskmon/ops/monitor_metrics.hpp>
