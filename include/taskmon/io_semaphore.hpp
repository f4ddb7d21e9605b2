// taskmon — coroutine supervision for standalone Asio.
// SPDX-License-Identifier: MIT
//
// io_semaphore: the process-wide AsyncSemaphore that bounds concurrent I/O of everything under the monitor.
//
//     {
//         auto permit = co_await taskmon::io_semaphore();   // waits for a permit
//         co_await do_io();
//     }                                                    // released here
//
// The count defaults to std::thread::hardware_concurrency() (8 when that is unknown) and can be set with the
// environment variable TASKMON_IO_CONCURRENCY (a positive integer) or at run time with
// set_io_semaphore_count(). The instance is created on first use and never destroyed, so permits held by
// static objects or detached threads stay valid until the process exits.
#pragma once

#include <taskmon/detail/config.hpp>
#include <taskmon/async_semaphore.hpp>

#include <asio/awaitable.hpp>

#include <cstddef>
#include <string>
#include <thread>

namespace taskmon {

/// Name of the environment variable that sets the global count.
inline constexpr const char* io_concurrency_env_var = "TASKMON_IO_CONCURRENCY";

/// The global count when the environment does not set it: hardware_threads, or 8 when that is 0 (unknown).
std::size_t default_io_semaphore_count(unsigned hardware_threads = std::thread::hardware_concurrency()) noexcept;

/// The outcome of reading TASKMON_IO_CONCURRENCY.
struct IoConcurrencySetting {
    std::size_t count = 0;  ///< the count to use
    bool from_env = false;  ///< true when the variable's value was accepted
    std::string rejection;  ///< non-empty when the variable was set to an invalid value: what was wrong
};

/// Interprets a value of TASKMON_IO_CONCURRENCY (nullptr = unset). Accepts decimal digits only, from 1 to
/// AsyncSemaphore::max_count(); anything else (empty, signs, spaces, "0", overflow) is rejected and
/// default_count is used, with the reason in `rejection`. Never throws for bad input.
IoConcurrencySetting parse_io_concurrency(const char* value, std::size_t default_count);

/// The global semaphore, created on first use from TASKMON_IO_CONCURRENCY or the default. A rejected value
/// is reported once on std::cerr (the library does not touch the application's loggers).
AsyncSemaphore& with_io_semaphore();

/// Waits for a permit of the global semaphore: `co_await with_io_semaphore().acquire()`.
asio::awaitable<SemaphorePermit> io_semaphore();

/// with_io_semaphore().set_count(count); throws std::invalid_argument for 0.
void set_io_semaphore_count(std::size_t count);

/// with_io_semaphore().stats().
SemaphoreStats get_io_semaphore_stats();

}  // namespace taskmon

#include <taskmon/detail/io_semaphore_impl.hpp>
