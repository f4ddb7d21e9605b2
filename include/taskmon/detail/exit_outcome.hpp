// taskmon — coroutine supervision for standalone Asio.
// SPDX-License-Identifier: MIT
//
// How a supervised coroutine ended, shared by TaskMonitor and Supervisor so both classify exits alike.
#pragma once

#include <taskmon/detail/config.hpp>

#include <taskmon/detail/exception_inspection.hpp>
#include <taskmon/detail/log_text.hpp>

#include <asio/error.hpp>
#include <asio/experimental/channel_error.hpp>
#include <asio/multiple_exceptions.hpp>

#include <exception>
#include <string>
#include <system_error>

namespace taskmon::detail {

/// Outcome of an instance: normal return, failure (exception), or cancellation (operation_aborted).
struct ExitOutcome {
    enum Kind { returned, failed, aborted } kind = returned;
    std::string reason;
};

/// A system_error is a cancellation when its code says so: Asio's operation_aborted, the standard
/// operation_canceled, or channel_cancelled, which an Asio channel's cancelled send or receive ends with.
inline ExitOutcome classify_system_error(const std::system_error& e) {
    const bool aborted = e.code() == asio::error::operation_aborted || e.code() == std::errc::operation_canceled ||
                         e.code() == asio::experimental::error::channel_cancelled;
    return {aborted ? ExitOutcome::aborted : ExitOutcome::failed, describe(e)};
}

inline ExitOutcome classify_exit(const std::exception_ptr& error) {
    if (!error) {
        return {};
    }
#ifdef TASKMON_HAS_EXCEPTION_INSPECTION
    // The same tests as the catch clauses below, in the same order, without a second throw.
    if (const auto* multiple = caught_as<asio::multiple_exceptions>(error)) {
        if (multiple->first_exception()) {
            return classify_exit(multiple->first_exception());
        }
        return {ExitOutcome::failed, describe(*multiple)};
    }
    if (const auto* e = caught_as<std::system_error>(error)) {
        return classify_system_error(*e);
    }
    if (const auto* e = caught_as<std::exception>(error)) {
        return {ExitOutcome::failed, describe(*e)};
    }
    return {ExitOutcome::failed, "unknown exception"};
#else
    try {
        std::rethrow_exception(error);
    } catch (const asio::multiple_exceptions& multiple) {
        // awaitable operators wrap errors in multiple_exceptions: classify the first one.
        if (multiple.first_exception()) {
            return classify_exit(multiple.first_exception());
        }
        return {ExitOutcome::failed, describe(multiple)};
    } catch (const std::system_error& e) {
        return classify_system_error(e);
    } catch (const std::exception& e) {
        return {ExitOutcome::failed, describe(e)};
    } catch (...) {
        return {ExitOutcome::failed, "unknown exception"};
    }
#endif
}

/// True when `error` is a cancellation (operation_aborted, operation_canceled or channel_cancelled, also inside the
/// asio::multiple_exceptions that awaitable operators throw).
inline bool is_operation_aborted(const std::exception_ptr& error) {
    return error && classify_exit(error).kind == ExitOutcome::aborted;
}

}  // namespace taskmon::detail
