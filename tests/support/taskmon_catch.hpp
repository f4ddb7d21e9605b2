// Includes Catch2's test macros from v3 when it is installed, else from the single-header v2.
#pragma once

#if __has_include(<catch2/catch_test_macros.hpp>)
#include <catch2/catch_approx.hpp>
#include <catch2/catch_test_macros.hpp>
#include <catch2/matchers/catch_matchers_string.hpp>
#define TASKMON_CATCH_VERSION 3
#else
#include <catch2/catch.hpp>
#define TASKMON_CATCH_VERSION 2
#endif
