// taskmon — coroutine supervision for standalone Asio.
// SPDX-License-Identifier: MIT
//
// The former path of <taskmon/agent/timeout_error.hpp>, kept for one release.
#pragma once

#include <taskmon/agent/timeout_error.hpp>
