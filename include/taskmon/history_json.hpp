// taskmon — coroutine supervision for standalone Asio.
// SPDX-License-Identifier: MIT
//
// The former path of <taskmon/ops/history_json.hpp>, kept for one release.
#pragma once

#include <taskmon/ops/history_json.hpp>
