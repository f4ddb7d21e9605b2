// taskmon — coroutine supervision for standalone Asio.
// SPDX-License-Identifier: MIT
//
// The strands the monitor makes of its executor, and the check that a handler runs on one (internal).
#pragma once

#include <taskmon/detail/config.hpp>
#include <taskmon/detail/executor_target.hpp>

#include <asio/any_io_executor.hpp>
#include <asio/io_context.hpp>
#include <asio/strand.hpp>

namespace taskmon::detail {

/// A strand of `executor`, type-erased. On an io_context's own executor the strand is made of that concrete
/// executor: a strand<io_context::executor_type> (24 bytes) fits any_io_executor's small-object buffer, so the
/// executor copies Asio makes per coroutine and per handler (work tracking) never allocate, where a
/// strand<any_io_executor> (72 bytes) is copied to the heap each time.
inline asio::any_io_executor make_strand_executor(const asio::any_io_executor& executor) {
    using IoExecutor = asio::io_context::executor_type;
    if (const auto* io = executor_target<IoExecutor>(executor)) {
        return asio::make_strand(*io);
    }
    return asio::make_strand(executor);
}

/// Whether the calling thread runs a handler of `strand` (a strand made by make_strand_executor). For the debug
/// assertions that handlers meant for one strand run on it; an executor of another type answers true.
inline bool running_in_strand(const asio::any_io_executor& strand) noexcept {
    if (const auto* s = executor_target<asio::strand<asio::io_context::executor_type>>(strand)) {
        return s->running_in_this_thread();
    }
    if (const auto* s = executor_target<asio::strand<asio::any_io_executor>>(strand)) {
        return s->running_in_this_thread();
    }
    return true;
}

}  // namespace taskmon::detail
