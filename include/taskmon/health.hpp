// taskmon — coroutine supervision for standalone Asio.
// SPDX-License-Identifier: MIT
//
// The former path of <taskmon/ops/health.hpp>, kept for one release.
#pragma once

#include <taskmon/ops/health.hpp>
