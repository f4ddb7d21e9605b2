// taskmon — coroutine supervision for standalone Asio.
// SPDX-License-Identifier: MIT
//
// The strands the monitor makes of its executor, and the check that a handler runs on one (internal).
#pragma once

#include <taskmon/detail/config.hpp>

#include <asio/any_io_executor.hpp>
#include <asio/io_context.hpp>
#include <asio/strand.hpp>

#include <typeinfo>

namespace taskmon::detail {

/// A strand of `executor`, type-erased. On an io_context's own executor the strand is made of that concrete
/// executor: a strand<io_context::executor_type> (24 bytes) fits any_io_executor's small-object buffer, so the
/// executor copies Asio makes per coroutine and per handler (work tracking) never allocate, where a
/// strand<any_io_executor> (72 bytes) is copied to the heap each time.
inline asio::any_io_executor make_strand_executor(const asio::any_io_executor& executor) {
    using IoExecutor = asio::io_context::executor_type;
    if (executor.target_type() == typeid(IoExecutor)) {
        return asio::make_strand(*executor.target<IoExecutor>());
    }
    return asio::make_strand(executor);
}

/// Whether the calling thread runs a handler of `strand` (a strand made by make_strand_executor). For the debug
/// assertions that handlers meant for one strand run on it; an executor of another type answers true.
inline bool running_in_strand(const asio::any_io_executor& strand) noexcept {
    if (const auto* s = strand.target<asio::strand<asio::io_context::executor_type>>()) {
        return s->running_in_this_thread();
    }
    if (const auto* s = strand.target<asio::strand<asio::any_io_executor>>()) {
        return s->running_in_this_thread();
    }
    return true;
}

}  // namespace taskmon::detail
