// taskmon — coroutine supervision for standalone Asio.
// SPDX-License-Identifier: MIT
//
// Umbrella header: includes every public header of the library.
#pragma once

#include <taskmon/detail/config.hpp>
#include <taskmon/version.hpp>
