// taskmon — coroutine supervision for standalone Asio.
// SPDX-License-Identifier: MIT
//
// SqliteRunJournal: the RunJournal (taskmon/agent/run_journal.hpp) in one SQLite 3 file. Optional: needs
// libsqlite3 (CMake target taskmon::durable, pkg-config taskmon-durable).
//
//   taskmon::SqliteRunJournal journal{"runs.db"};
//   journal.begin_run("run-1", settings, std::chrono::system_clock::now());
//
// The file is in WAL mode. With synchronous=NORMAL (the default) a commit is in the write-ahead log, handed to the
// operating system, when a call returns: it survives a crash of the process (kill -9), not a power loss or a
// kernel crash, which may lose the last commits (never corrupt the file). full_sync (synchronous=FULL) syncs the
// log at every commit and survives those too, at the cost of an fsync per call (docs/benchmarks.md, "Run
// journal"). Every call is one transaction; a call that throws rolled its transaction back. Inside group() each
// call is a savepoint of the group's one transaction, so a group of calls costs one commit (and one fsync with
// full_sync).
#pragma once

#include <taskmon/agent/detail/sqlite_connection.hpp>
#include <taskmon/agent/detail/sqlite_journal_rows.hpp>
#include <taskmon/agent/detail/sqlite_journal_schema.hpp>
#include <taskmon/agent/run_journal.hpp>

#include <sqlite3.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <functional>
#include <limits>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace taskmon {

struct SqliteJournalOptions {
    /// synchronous=FULL: every commit is synced to the disk (survives a power loss); NORMAL otherwise.
    bool full_sync = false;
    /// How long a call waits for another connection's lock on the same file before it fails (SQLITE_BUSY).
    std::chrono::milliseconds busy_timeout{5000};
    /// The most pages (of 4096 bytes) the file may grow to; a write past it fails with SQLITE_FULL. For tests of
    /// a full disk and for quotas; never below the file's current size (SQLite keeps the larger).
    std::optional<std::uint32_t> max_page_count;
    /// PRAGMA quick_check at open, so a corrupt or truncated file is refused at once rather than at the first
    /// read of a damaged page. Reads the whole file: about 1 ms per MB (docs/benchmarks.md).
    bool quick_check_at_open = true;
    /// For tests: called with "<point>:before" before a write's transaction begins, "<point>:commit" when every
    /// row is written and the transaction not yet committed, and "<point>:after" once it is. Points: begin_run,
    /// checkpoint, intent, action_result, interrupt, resume, status, resume_run, guidance. An exception thrown
    /// from it propagates: before and commit leave nothing written (rolled back), after leaves the write committed
    /// (inside group(): released into the group's transaction, which commits after its last call).
    std::function<void(std::string_view write_point)> fault_hook;
};

class SqliteRunJournal final : public RunJournal {
public:
    /// Opens the journal at `path`, creating the file when missing and migrating its schema forward. Throws
    /// std::invalid_argument for bad options, JournalError naming the file when it cannot be opened for writing
    /// (read-only file or directory), is not a database or another program's, is corrupt or truncated, or has a
    /// newer schema (the file is left untouched then).
    explicit SqliteRunJournal(std::string path, SqliteJournalOptions options = {})
        : options_(validated(std::move(options))), db_(std::move(path), true) {
        open();
    }

    const std::string& path() const noexcept { return db_.path(); }
    /// The schema version of the file (after migration: sqlite_journal_schema_version).
    std::uint32_t schema_version() { return read_user_version(); }

    void begin_run(std::string_view run_id, std::string_view settings_blob,
                   std::chrono::system_clock::time_point now) override {
        require_id(run_id, "begin_run", "run id");
        write("begin_run", [&] {
            if (find_run(run_id)) refuse("begin_run: run " + quoted(run_id) + " exists already");
            auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(now.time_since_epoch()).count();
            db_.prepare(
                   "INSERT INTO runs (run_id, status, created_unix_ns, settings, result, last_step) "
                   "VALUES (?1, 'running', ?2, ?3, x'', 0)")
                .bind(1, run_id)
                .bind(2, static_cast<std::int64_t>(ns))
                .bind_blob(3, settings_blob)
                .run();
        });
    }

    void checkpoint(std::string_view run_id, const StepCheckpoint& checkpoint) override {
        write("checkpoint", [&] {
            RunRecord run = running_run(run_id, "checkpoint");
            if (checkpoint.step != run.last_step + 1) {
                refuse("checkpoint: run " + quoted(run_id) + " expects step " + std::to_string(run.last_step + 1) +
                       " after step " + std::to_string(run.last_step) + ", got step " +
                       std::to_string(checkpoint.step) +
                       (checkpoint.step <= run.last_step ? " (a repeat)" : " (a gap)"));
            }
            for (const auto& id : checkpoint.consumed_interrupts) {
                auto interrupt = find_interrupt(run_id, id);
                if (!interrupt || !interrupt->value_blob) {
                    refuse("checkpoint: interrupt " + quoted(id) + " of run " + quoted(run_id) +
                           (interrupt ? " is not resumed" : " does not exist"));
                }
                auto consumed = db_.prepare(
                    "UPDATE interrupts SET consumed_step = ?3 "
                    "WHERE run_id = ?1 AND interrupt_id = ?2 AND consumed_step IS NULL");
                consumed.bind(1, run_id).bind(2, id).bind(3, checkpoint.step).run();
                if (sqlite3_changes(db_.handle()) != 1) {
                    refuse("checkpoint: interrupt " + quoted(id) + " of run " + quoted(run_id) +
                           " is consumed already");
                }
            }
            if (checkpoint.consumed_guidance != 0) {
                db_.prepare(
                       "UPDATE guidance SET consumed_step = ?3 WHERE run_id = ?1 AND seq IN (SELECT seq FROM guidance "
                       "WHERE run_id = ?1 AND consumed_step IS NULL ORDER BY seq LIMIT ?2)")
                    .bind(1, run_id)
                    .bind(2, std::uint64_t{checkpoint.consumed_guidance})
                    .bind(3, checkpoint.step)
                    .run();
                const auto consumed = static_cast<std::uint64_t>(sqlite3_changes(db_.handle()));
                if (consumed != checkpoint.consumed_guidance) {
                    refuse("checkpoint: step " + std::to_string(checkpoint.step) + " of run " + quoted(run_id) +
                           " consumed " + std::to_string(checkpoint.consumed_guidance) + " guidance items, but " +
                           std::to_string(consumed) + " are pending");
                }
            }
            auto insert = db_.prepare(
                "INSERT INTO checkpoints (run_id, step, record, state, history) VALUES (?1, ?2, ?3, ?4, ?5)");
            insert.bind(1, run_id).bind(2, checkpoint.step).bind_blob(3, checkpoint.record_blob);
            insert.bind_blob(4, checkpoint.state_blob);
            if (checkpoint.history_blob.empty()) {
                insert.bind_null(5);
            } else {
                insert.bind_blob(5, checkpoint.history_blob);
            }
            insert.run();
            db_.prepare("UPDATE runs SET last_step = ?2 WHERE run_id = ?1")
                .bind(1, run_id)
                .bind(2, checkpoint.step)
                .run();
        });
    }

    bool record_intent(const ActionIntent& intent) override {
        require_id(intent.idempotency_key, "record_intent", "idempotency key");
        require_step(intent.step, "record_intent");
        bool recorded = false;
        write("intent", [&] {
            std::string slot = "step " + std::to_string(intent.step) + " action " + std::to_string(intent.action_index);
            // The same intent again is answered before the run's state is looked at: a resume may repeat an
            // intent of a run that has been interrupted or checkpointed since, and repeating it changes nothing.
            if (auto existing = lookup_action(intent.idempotency_key)) {
                const ActionIntent& old = existing->intent;
                if (old.run_id != intent.run_id || old.step != intent.step || old.action_index != intent.action_index) {
                    refuse("record_intent: idempotency key " + quoted(intent.idempotency_key) +
                           " is recorded for run " + quoted(old.run_id) + " step " + std::to_string(old.step) +
                           " action " + std::to_string(old.action_index) + ", not for run " + quoted(intent.run_id) +
                           " " + slot);
                }
                if (old.action_blob != intent.action_blob) {
                    refuse("record_intent: idempotency key " + quoted(intent.idempotency_key) +
                           " is recorded with another action blob");
                }
                return;  // the same intent again: already durable
            }
            RunRecord run = running_run(intent.run_id, "record_intent");
            if (intent.step <= run.last_step) {
                refuse("record_intent: step " + std::to_string(intent.step) + " of run " + quoted(intent.run_id) +
                       " is checkpointed already (last step " + std::to_string(run.last_step) + ")");
            }
            auto other = db_.prepare(
                "SELECT idempotency_key FROM actions WHERE run_id = ?1 AND step = ?2 AND action_index = ?3");
            other.bind(1, intent.run_id).bind(2, intent.step).bind(3, std::int64_t{intent.action_index});
            if (other.step()) {
                refuse("record_intent: run " + quoted(intent.run_id) + " " + slot + " has an intent with key " +
                       quoted(other.text(0)) + " already, not " + quoted(intent.idempotency_key));
            }
            db_.prepare(
                   "INSERT INTO actions (idempotency_key, run_id, step, action_index, action) "
                   "VALUES (?1, ?2, ?3, ?4, ?5)")
                .bind(1, intent.idempotency_key)
                .bind(2, intent.run_id)
                .bind(3, intent.step)
                .bind(4, std::int64_t{intent.action_index})
                .bind_blob(5, intent.action_blob)
                .run();
            recorded = true;
        });
        return recorded;
    }

    void record_action_result(std::string_view key, JournalOutcome outcome, std::string_view result_blob) override {
        write("action_result", [&] {
            auto existing = lookup_action(key);
            if (!existing) refuse("record_action_result: no intent has idempotency key " + quoted(key));
            if (existing->result) {
                refuse("record_action_result: the action with idempotency key " + quoted(key) +
                       " has a result already (" + std::string(to_string(existing->result->outcome)) + ")");
            }
            db_.prepare("UPDATE actions SET outcome = ?2, result = ?3 WHERE idempotency_key = ?1")
                .bind(1, key)
                .bind(2, to_string(outcome))
                .bind_blob(3, result_blob)
                .run();
        });
    }

    void record_interrupt(std::string_view run_id, std::string_view interrupt_id, std::uint64_t step,
                          std::string_view payload_blob) override {
        require_id(interrupt_id, "record_interrupt", "interrupt id");
        require_step(step, "record_interrupt");
        write("interrupt", [&] {
            if (auto pending = pending_interrupt(run_id)) {
                refuse("record_interrupt: run " + quoted(run_id) + " has a pending interrupt " +
                       quoted(pending->interrupt_id) + " already; resume it before asking " + quoted(interrupt_id));
            }
            RunRecord run = running_run(run_id, "record_interrupt");
            if (step <= run.last_step) {
                refuse("record_interrupt: step " + std::to_string(step) + " of run " + quoted(run_id) +
                       " is checkpointed already (last step " + std::to_string(run.last_step) + ")");
            }
            if (find_interrupt(run_id, interrupt_id)) {
                refuse("record_interrupt: run " + quoted(run_id) + " has an interrupt " + quoted(interrupt_id) +
                       " already");
            }
            db_.prepare("INSERT INTO interrupts (run_id, interrupt_id, step, payload) VALUES (?1, ?2, ?3, ?4)")
                .bind(1, run_id)
                .bind(2, interrupt_id)
                .bind(3, step)
                .bind_blob(4, payload_blob)
                .run();
            update_status(run_id, RunStatus::interrupted, std::nullopt);
        });
    }

    void record_guidance(std::string_view run_id, std::string_view text) override {
        write("guidance", [&] {
            RunRecord run = existing_run(run_id, "record_guidance");
            if (is_terminal(run.status)) {
                refuse("record_guidance: run " + quoted(run_id) + " is " + std::string(to_string(run.status)) +
                       "; guidance is kept only for a run that has not ended");
            }
            db_.prepare(
                   "INSERT INTO guidance (run_id, seq, text) "
                   "VALUES (?1, (SELECT coalesce(max(seq), 0) + 1 FROM guidance WHERE run_id = ?1), ?2)")
                .bind(1, run_id)
                .bind_blob(2, text)
                .run();
        });
    }

    void resume_interrupt(std::string_view run_id, std::string_view interrupt_id,
                          std::string_view value_blob) override {
        write("resume", [&] {
            RunRecord run = existing_run(run_id, "resume_interrupt");
            auto interrupt = find_interrupt(run_id, interrupt_id);
            if (!interrupt) {
                refuse("resume_interrupt: run " + quoted(run_id) + " has no interrupt " + quoted(interrupt_id));
            }
            if (interrupt->value_blob) {
                refuse("resume_interrupt: interrupt " + quoted(interrupt_id) + " of run " + quoted(run_id) +
                       " is resumed already");
            }
            if (run.status != RunStatus::interrupted) {
                refuse("resume_interrupt: run " + quoted(run_id) + " is " + std::string(to_string(run.status)) +
                       ", not interrupted: interrupt " + quoted(interrupt_id) + " cannot be resumed");
            }
            db_.prepare(
                   "UPDATE interrupts SET value = ?3, resume_order = "
                   "(SELECT coalesce(max(resume_order), 0) + 1 FROM interrupts WHERE run_id = ?1) "
                   "WHERE run_id = ?1 AND interrupt_id = ?2")
                .bind(1, run_id)
                .bind(2, interrupt_id)
                .bind_blob(3, value_blob)
                .run();
            update_status(run_id, RunStatus::running, std::nullopt);
        });
    }

    void set_status(std::string_view run_id, RunStatus status, std::string_view result_blob) override {
        write("status", [&] {
            RunRecord run = existing_run(run_id, "set_status");
            if (status == RunStatus::interrupted || status == RunStatus::running ||
                !is_allowed_run_transition(run.status, status)) {
                std::string why = status == RunStatus::interrupted ? " (record_interrupt does that)"
                                  : status == RunStatus::running   ? " (resume_interrupt does that)"
                                                                   : "";
                refuse("set_status: run " + quoted(run_id) + " cannot go from " + std::string(to_string(run.status)) +
                       " to " + std::string(to_string(status)) + why);
            }
            update_status(run_id, status, result_blob);
        });
    }

    void group(const std::function<void()>& body) override {
        if (in_group_) {  // nested: part of the group already open
            body();
            return;
        }
        db_.set_operation("group");
        detail::SqliteTransaction transaction{db_};
        in_group_ = true;
        struct Leave {
            bool& in_group;
            ~Leave() { in_group = false; }
        } leave{in_group_};
        body();
        db_.set_operation("group");
        if (sqlite3_get_autocommit(db_.handle()) != 0) {
            refuse("group: SQLite rolled the group of calls back after an error; none of its calls is written");
        }
        transaction.commit();
    }

    RunStatus resume_run(std::string_view run_id) override {
        RunStatus reopened = RunStatus::running;
        write("resume_run", [&] {
            RunRecord run = existing_run(run_id, "resume_run");
            if (run.status != RunStatus::stopped) {
                refuse("resume_run: run " + quoted(run_id) + " is " + std::string(to_string(run.status)) +
                       ", not stopped");
            }
            reopened = pending_interrupt(run_id) ? RunStatus::interrupted : RunStatus::running;
            update_status(run_id, reopened, std::nullopt);
        });
        return reopened;
    }

    std::optional<RunSnapshot> load(std::string_view run_id) override {
        db_.set_operation("load");
        detail::SqliteTransaction read{db_, false};  // one consistent view of the run
        auto run = find_run(run_id);
        if (!run) return std::nullopt;
        RunSnapshot snapshot;
        snapshot.run = std::move(*run);
        auto last = db_.prepare(
            "SELECT step, record, state, history FROM checkpoints "
            "WHERE run_id = ?1 ORDER BY step DESC LIMIT 1");
        if (last.bind(1, run_id).step()) {
            snapshot.last_checkpoint =
                CheckpointRecord{last.unsigned_integer(0), last.blob(1), last.blob(2), last.blob(3)};
        }
        auto history = db_.prepare(
            "SELECT step, history FROM checkpoints "
            "WHERE run_id = ?1 AND history IS NOT NULL ORDER BY step DESC LIMIT 1");
        if (history.bind(1, run_id).step()) snapshot.last_history.emplace(history.unsigned_integer(0), history.blob(1));
        auto actions = db_.prepare(std::string(detail::sqlite_action_columns) +
                                   " WHERE run_id = ?1 AND step > ?2 ORDER BY step, action_index");
        actions.bind(1, run_id).bind(2, snapshot.run.last_step);
        while (actions.step()) snapshot.open_actions.push_back(detail::read_action_row(actions));
        auto interrupts = db_.prepare(std::string(detail::sqlite_interrupt_columns) +
                                      " WHERE run_id = ?1 AND consumed_step IS NULL ORDER BY resume_order");
        interrupts.bind(1, run_id);
        while (interrupts.step()) {
            InterruptRecord interrupt = detail::read_interrupt_row(interrupts);
            if (interrupt.value_blob) {
                snapshot.resumed_interrupts.push_back(std::move(interrupt));
            } else {
                snapshot.pending_interrupt = std::move(interrupt);
            }
        }
        auto guidance =
            db_.prepare("SELECT text FROM guidance WHERE run_id = ?1 AND consumed_step IS NULL ORDER BY seq");
        guidance.bind(1, run_id);
        while (guidance.step()) snapshot.pending_guidance.push_back(guidance.blob(0));
        read.commit();
        return snapshot;
    }

    std::vector<CheckpointRecord> checkpoints(std::string_view run_id, std::uint64_t first,
                                              std::uint64_t last) override {
        db_.set_operation("checkpoints");
        std::vector<CheckpointRecord> out;
        auto rows = db_.prepare(
            "SELECT step, record, state, history FROM checkpoints "
            "WHERE run_id = ?1 AND step BETWEEN ?2 AND ?3 ORDER BY step");
        rows.bind(1, run_id).bind(2, stored_step(first)).bind(3, stored_step(last));
        while (rows.step())
            out.push_back(CheckpointRecord{rows.unsigned_integer(0), rows.blob(1), rows.blob(2), rows.blob(3)});
        return out;
    }

    std::vector<std::pair<std::uint64_t, std::string>> histories(std::string_view run_id, std::uint64_t first,
                                                                 std::uint64_t last) override {
        db_.set_operation("histories");
        std::vector<std::pair<std::uint64_t, std::string>> out;
        // Through the partial index checkpoints_with_history: only the checkpoints that carry one are visited.
        auto rows = db_.prepare(
            "SELECT step, history FROM checkpoints "
            "WHERE run_id = ?1 AND history IS NOT NULL AND step BETWEEN ?2 AND ?3 ORDER BY step");
        rows.bind(1, run_id).bind(2, stored_step(first)).bind(3, stored_step(last));
        while (rows.step()) out.emplace_back(rows.unsigned_integer(0), rows.blob(1));
        return out;
    }

    std::vector<RunRecord> list_runs() override {
        db_.set_operation("list_runs");
        std::vector<RunRecord> runs;
        auto all = db_.prepare(std::string(detail::sqlite_run_columns) + " ORDER BY created_unix_ns, run_id");
        while (all.step()) runs.push_back(detail::read_run_row(all, path()));
        return runs;
    }

    std::optional<JournalActionRecord> find_action(std::string_view key) override {
        db_.set_operation("find_action");
        return lookup_action(key);
    }

private:
    std::optional<JournalActionRecord> lookup_action(std::string_view key) {
        auto found = db_.prepare(std::string(detail::sqlite_action_columns) + " WHERE idempotency_key = ?1");
        if (!found.bind(1, key).step()) return std::nullopt;
        return detail::read_action_row(found);
    }

    static SqliteJournalOptions validated(SqliteJournalOptions options) {
        if (options.busy_timeout.count() < 0) {
            throw std::invalid_argument("SqliteJournalOptions: busy_timeout must not be negative, got " +
                                        std::to_string(options.busy_timeout.count()) + " ms");
        }
        if (options.busy_timeout.count() > std::numeric_limits<int>::max()) {
            throw std::invalid_argument("SqliteJournalOptions: busy_timeout must be at most " +
                                        std::to_string(std::numeric_limits<int>::max()) + " ms, got " +
                                        std::to_string(options.busy_timeout.count()) + " ms");
        }
        if (options.max_page_count && *options.max_page_count == 0) {
            throw std::invalid_argument("SqliteJournalOptions: max_page_count must be at least 1, got 0");
        }
        return options;
    }

    static std::string quoted(std::string_view text) { return "'" + std::string(text) + "'"; }

    [[noreturn]] void refuse(const std::string& what) const { throw JournalError(db_.path(), what); }

    void require_id(std::string_view id, std::string_view operation, std::string_view what) const {
        if (id.empty()) refuse(std::string(operation) + ": the " + std::string(what) + " is empty");
    }
    void require_step(std::uint64_t step, std::string_view operation) const {
        // Steps are stored as SQLite's signed 64-bit integers.
        if (step > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) {
            refuse(std::string(operation) + ": step " + std::to_string(step) + " is out of range");
        }
    }

    /// A step bound of a read, as SQLite stores steps (signed 64 bits): a bound past them reads to the end.
    static std::uint64_t stored_step(std::uint64_t step) noexcept {
        return std::min<std::uint64_t>(step, std::numeric_limits<std::int64_t>::max());
    }

    void hook(std::string_view point, std::string_view stage) {
        if (options_.fault_hook) options_.fault_hook(std::string(point) + ":" + std::string(stage));
    }

    /// One durable write: the hook's three points around a transaction that `body` fills.
    template <class Body>
    void write(std::string_view point, Body&& body) {
        db_.set_operation(std::string(point));
        if (in_group_ && sqlite3_get_autocommit(db_.handle()) != 0) {
            // SQLite rolled the group's transaction back after an error of an earlier call: writing now would
            // commit this call alone while the group reports failure.
            refuse(std::string(point) + ": refused: SQLite rolled back the group of calls it belongs to");
        }
        hook(point, "before");
        {
            detail::SqliteTransaction transaction{db_};
            body();
            hook(point, "commit");
            transaction.commit();
        }
        hook(point, "after");
    }

    std::uint32_t read_user_version() {
        auto version = db_.prepare("PRAGMA user_version");
        version.step();
        return static_cast<std::uint32_t>(version.integer(0));
    }

    void open() {
        if (sqlite3_db_readonly(db_.handle(), "main") == 1) {
            throw JournalError(path(), "the file is read-only; a journal must be writable", SQLITE_READONLY);
        }
        sqlite3_busy_timeout(db_.handle(), static_cast<int>(options_.busy_timeout.count()));
        db_.set_operation("open: cannot read the schema version (not a taskmon journal, or corrupt)");
        std::uint32_t version = read_user_version();
        if (version > detail::sqlite_journal_schema_version) {
            throw JournalError(
                path(), "the file has schema version " + std::to_string(version) + ", newer than this taskmon knows (" +
                            std::to_string(detail::sqlite_journal_schema_version) + "); open it with a newer taskmon");
        }
        if (version == 0) refuse_foreign_database();
        if (options_.quick_check_at_open && version > 0) quick_check();
        db_.set_operation("open: cannot switch to WAL mode");
        {
            auto mode = db_.prepare("PRAGMA journal_mode = WAL");
            std::string got = mode.step() ? mode.text(0) : std::string{};
            if (got != "wal") throw JournalError(path(), "open: cannot switch to WAL mode (journal mode: " + got + ")");
        }
        db_.execute(options_.full_sync ? "PRAGMA synchronous = FULL" : "PRAGMA synchronous = NORMAL",
                    "open: cannot set synchronous");
        if (options_.max_page_count) {
            db_.set_operation("open: cannot set max_page_count");
            db_.prepare("PRAGMA max_page_count = " + std::to_string(*options_.max_page_count)).run();
        }
        if (version < detail::sqlite_journal_schema_version) migrate();
    }

    /// Schema version 0 is a new, empty file; one with tables is another program's database, which a migration
    /// would fill with the journal's tables.
    void refuse_foreign_database() {
        auto tables = db_.prepare("SELECT count(*) FROM sqlite_schema");
        tables.step();
        if (tables.integer(0) != 0) {
            throw JournalError(path(),
                               "open: the file is an SQLite database of another program (schema version 0 with " +
                                   std::to_string(tables.integer(0)) + " tables), not a taskmon journal");
        }
    }

    void quick_check() {
        db_.set_operation("open: quick_check failed (the file is corrupt or truncated)");
        auto check = db_.prepare("PRAGMA quick_check");
        std::string first;
        if (check.step()) first = check.text(0);
        if (first != "ok") {
            throw JournalError(path(), "open: the file is corrupt or truncated (quick_check: " + first + ")",
                               SQLITE_CORRUPT);
        }
    }

    void migrate() {
        db_.set_operation("open: schema migration");
        detail::SqliteTransaction transaction{db_};
        // Read again under the write lock: another connection may have migrated the file meanwhile.
        std::uint32_t version = read_user_version();
        for (; version < detail::sqlite_journal_schema_version; ++version) {
            db_.execute(detail::sqlite_journal_migrations[version],
                        "open: migrating the schema from version " + std::to_string(version) + " failed");
        }
        db_.execute(("PRAGMA user_version = " + std::to_string(version)).c_str(), "open: cannot set user_version");
        transaction.commit();
    }

    std::optional<RunRecord> find_run(std::string_view run_id) {
        auto found = db_.prepare(std::string(detail::sqlite_run_columns) + " WHERE run_id = ?1");
        if (!found.bind(1, run_id).step()) return std::nullopt;
        return detail::read_run_row(found, path());
    }

    RunRecord existing_run(std::string_view run_id, std::string_view operation) {
        auto run = find_run(run_id);
        if (!run) refuse(std::string(operation) + ": no run " + quoted(run_id));
        return std::move(*run);
    }

    RunRecord running_run(std::string_view run_id, std::string_view operation) {
        RunRecord run = existing_run(run_id, operation);
        if (run.status != RunStatus::running) {
            refuse(std::string(operation) + ": run " + quoted(run_id) + " is " + std::string(to_string(run.status)) +
                   ", not running");
        }
        return run;
    }

    std::optional<InterruptRecord> find_interrupt(std::string_view run_id, std::string_view interrupt_id) {
        auto found =
            db_.prepare(std::string(detail::sqlite_interrupt_columns) + " WHERE run_id = ?1 AND interrupt_id = ?2");
        if (!found.bind(1, run_id).bind(2, interrupt_id).step()) return std::nullopt;
        return detail::read_interrupt_row(found);
    }

    std::optional<InterruptRecord> pending_interrupt(std::string_view run_id) {
        auto found =
            db_.prepare(std::string(detail::sqlite_interrupt_columns) + " WHERE run_id = ?1 AND value IS NULL");
        if (!found.bind(1, run_id).step()) return std::nullopt;
        return detail::read_interrupt_row(found);
    }

    void update_status(std::string_view run_id, RunStatus status, std::optional<std::string_view> result_blob) {
        if (result_blob) {
            db_.prepare("UPDATE runs SET status = ?2, result = ?3 WHERE run_id = ?1")
                .bind(1, run_id)
                .bind(2, to_string(status))
                .bind_blob(3, *result_blob)
                .run();
        } else {
            db_.prepare("UPDATE runs SET status = ?2 WHERE run_id = ?1")
                .bind(1, run_id)
                .bind(2, to_string(status))
                .run();
        }
    }

    SqliteJournalOptions options_;
    detail::SqliteConnection db_;
    bool in_group_ = false;  ///< inside group(): each write is a savepoint of the group's transaction
};

}  // namespace taskmon
