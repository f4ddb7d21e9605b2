// taskmon — coroutine supervision for standalone Asio.
// SPDX-License-Identifier: MIT
//
// The former path of <taskmon/agent/cpu_usage.hpp>, kept for one release.
#pragma once

#include <taskmon/agent/cpu_usage.hpp>
