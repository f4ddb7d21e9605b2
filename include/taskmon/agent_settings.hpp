// taskmon — coroutine supervision for standalone Asio.
// SPDX-License-Identifier: MIT
//
// The former path of <taskmon/agent/agent_settings.hpp>, kept for one release.
#pragma once

#include <taskmon/agent/agent_settings.hpp>
