// taskmon — coroutine supervision for standalone Asio.
// SPDX-License-Identifier: MIT
//
// executor_target<T>(): what a type-erased executor wraps, with its type checked (internal).
#pragma once

#include <taskmon/detail/config.hpp>

#include <asio/any_io_executor.hpp>

#include <typeinfo>

namespace taskmon::detail {

/// What `executor` wraps, if it is a `T`; null otherwise (and always without RTTI). Asio 1.22's const
/// any_executor::target<T>() casts whatever it holds without checking T (the non-const one checks), so the type
/// is compared here.
template <typename T>
const T* executor_target(const asio::any_io_executor& executor) noexcept {
#if !defined(ASIO_NO_TYPEID)
    return executor.target_type() == typeid(T) ? executor.template target<T>() : nullptr;
#else
    (void)executor;
    return nullptr;
#endif
}

}  // namespace taskmon::detail
