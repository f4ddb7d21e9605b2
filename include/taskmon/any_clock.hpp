// taskmon — coroutine supervision for standalone Asio.
// SPDX-License-Identifier: MIT
//
// The former name of taskmon/custom_clock.hpp, kept for one release.
#pragma once

#include <taskmon/custom_clock.hpp>
