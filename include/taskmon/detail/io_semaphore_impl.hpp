// taskmon — coroutine supervision for standalone Asio.
// SPDX-License-Identifier: MIT
//
// Implementation of the global io_semaphore (included at the end of <taskmon/io_semaphore.hpp>).
#pragma once

#include <taskmon/io_semaphore.hpp>

#include <taskmon/detail/log_text.hpp>

#include <cstdlib>
#include <iostream>
#include <string_view>

namespace taskmon {

inline std::size_t default_io_semaphore_count(unsigned hardware_threads) noexcept {
    return hardware_threads == 0 ? 8 : static_cast<std::size_t>(hardware_threads);
}

inline IoConcurrencySetting parse_io_concurrency(const char* value, std::size_t default_count) {
    IoConcurrencySetting setting;
    setting.count = default_count;
    if (value == nullptr) {
        return setting;
    }
    const std::string_view text(value);
    const auto reject = [&](std::string_view why) {
        // Quoted and escaped: the value is printed on one line whatever it holds ("12\n" would take two).
        setting.rejection = std::string(io_concurrency_env_var) + "=" + detail::quote(text) +
                            " is rejected: " + std::string(why) + "; using the default of " +
                            std::to_string(default_count);
        return setting;
    };
    if (text.empty()) {
        return reject("it is empty, expected a positive integer");
    }
    std::size_t count = 0;
    for (const char c : text) {
        if (c < '0' || c > '9') {
            return reject("it is not a positive integer (digits only)");
        }
        count = count * 10 + static_cast<std::size_t>(c - '0');
        if (count > AsyncSemaphore::max_count()) {
            return reject("it exceeds the largest count, " + std::to_string(AsyncSemaphore::max_count()));
        }
    }
    if (count == 0) {
        return reject("the count must be at least 1");
    }
    setting.count = count;
    setting.from_env = true;
    return setting;
}

inline AsyncSemaphore& with_io_semaphore() {
    // Deliberately leaked: permits released during static destruction or by threads still running at exit
    // must find their semaphore alive.
    static AsyncSemaphore* const instance = [] {
        const IoConcurrencySetting setting =
            parse_io_concurrency(std::getenv(io_concurrency_env_var), default_io_semaphore_count());
        if (!setting.rejection.empty()) {
            std::cerr << "taskmon: " << setting.rejection << '\n';
        }
        return new AsyncSemaphore(setting.count);
    }();
    return *instance;
}

inline asio::awaitable<SemaphorePermit> io_semaphore() { return with_io_semaphore().acquire(); }

inline void set_io_semaphore_count(std::size_t count) { with_io_semaphore().set_count(count); }

inline SemaphoreStats get_io_semaphore_stats() { return with_io_semaphore().stats(); }

}  // namespace taskmon
