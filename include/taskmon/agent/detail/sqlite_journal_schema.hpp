// taskmon — coroutine supervision for standalone Asio.
// SPDX-License-Identifier: MIT
//
// The SQLite journal's schema (docs/durable_runs.md, "Schema") and its migrations. PRAGMA user_version holds the
// schema version of a file: 0 for a new, empty file. migrations[i] takes a file from version i to i + 1; a file is
// migrated forward in one transaction at open, and a file newer than sqlite_journal_schema_version is refused.
#pragma once

#include <array>
#include <cstdint>

namespace taskmon::detail {

inline constexpr std::array<const char*, 2> sqlite_journal_migrations{
    // 0 → 1: the first schema.
    R"sql(
CREATE TABLE runs (
    run_id          TEXT    NOT NULL PRIMARY KEY,
    status          TEXT    NOT NULL,
    created_unix_ns INTEGER NOT NULL,
    settings        BLOB    NOT NULL,
    result          BLOB    NOT NULL,
    last_step       INTEGER NOT NULL
);
CREATE TABLE checkpoints (
    run_id  TEXT    NOT NULL REFERENCES runs (run_id),
    step    INTEGER NOT NULL,
    record  BLOB    NOT NULL,
    state   BLOB    NOT NULL,
    history BLOB,
    PRIMARY KEY (run_id, step)
);
CREATE INDEX checkpoints_with_history ON checkpoints (run_id, step) WHERE history IS NOT NULL;
CREATE TABLE actions (
    idempotency_key TEXT    NOT NULL PRIMARY KEY,
    run_id          TEXT    NOT NULL REFERENCES runs (run_id),
    step            INTEGER NOT NULL,
    action_index    INTEGER NOT NULL,
    action          BLOB    NOT NULL,
    outcome         TEXT,
    result          BLOB,
    UNIQUE (run_id, step, action_index)
);
CREATE TABLE interrupts (
    run_id        TEXT    NOT NULL REFERENCES runs (run_id),
    interrupt_id  TEXT    NOT NULL,
    step          INTEGER NOT NULL,
    payload       BLOB    NOT NULL,
    value         BLOB,
    resume_order  INTEGER,
    consumed_step INTEGER,
    PRIMARY KEY (run_id, interrupt_id)
);
)sql",
    // 1 → 2: guidance for a run's next decide(), kept until a checkpoint consumes it.
    R"sql(
CREATE TABLE guidance (
    run_id        TEXT    NOT NULL REFERENCES runs (run_id),
    seq           INTEGER NOT NULL,
    text          BLOB    NOT NULL,
    consumed_step INTEGER,
    PRIMARY KEY (run_id, seq)
);
)sql",
};

/// The newest schema this code knows.
inline constexpr std::uint32_t sqlite_journal_schema_version = sqlite_journal_migrations.size();

}  // namespace taskmon::detail
