// taskmon — coroutine supervision for standalone Asio.
// SPDX-License-Identifier: MIT
//
// The rows of SqliteRunJournal's tables (detail/sqlite_journal_schema.hpp) read back into the journal's value
// types: each SELECT's columns in the order its reader expects them.
#pragma once

#include <taskmon/agent/detail/sqlite_connection.hpp>
#include <taskmon/agent/run_journal.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace taskmon::detail {

inline constexpr std::string_view sqlite_run_columns =
    "SELECT run_id, status, created_unix_ns, settings, result, last_step FROM runs";
inline constexpr std::string_view sqlite_action_columns =
    "SELECT idempotency_key, run_id, step, action_index, action, outcome, result FROM actions";
inline constexpr std::string_view sqlite_interrupt_columns =
    "SELECT run_id, interrupt_id, step, payload, value FROM interrupts";

/// A row of sqlite_run_columns; a status this code does not know (a file edited by hand) is a JournalError.
inline RunRecord read_run_row(const SqliteStatement& row, const std::string& path) {
    RunRecord run;
    run.run_id = row.text(0);
    auto status = run_status_from_string(row.text(1));
    if (!status) throw JournalError(path, "run '" + run.run_id + "' has an unknown status '" + row.text(1) + "'");
    run.status = *status;
    run.created_unix_ns = row.integer(2);
    run.settings_blob = row.blob(3);
    run.result_blob = row.blob(4);
    run.last_step = row.unsigned_integer(5);
    return run;
}

/// A row of sqlite_action_columns: no outcome (NULL) is an action without a result, UNKNOWN.
inline JournalActionRecord read_action_row(const SqliteStatement& row) {
    JournalActionRecord action;
    action.intent = ActionIntent{row.text(1), row.unsigned_integer(2), static_cast<std::uint32_t>(row.integer(3)),
                                 row.text(0), row.blob(4)};
    if (!row.is_null(5)) {
        auto outcome = row.text(5) == "succeeded" ? JournalOutcome::succeeded : JournalOutcome::failed;
        action.result = ActionResultRecord{outcome, row.blob(6)};
    }
    return action;
}

/// A row of sqlite_interrupt_columns: no value (NULL) is a pending interrupt.
inline InterruptRecord read_interrupt_row(const SqliteStatement& row) {
    InterruptRecord interrupt{row.text(0), row.text(1), row.unsigned_integer(2), row.blob(3), std::nullopt};
    if (!row.is_null(4)) interrupt.value_blob = row.blob(4);
    return interrupt;
}

}  // namespace taskmon::detail
