// taskmon — coroutine supervision for standalone Asio.
// SPDX-License-Identifier: MIT
//
// SqliteConnection: the SQLite plumbing of SqliteRunJournal (taskmon/agent/sqlite_journal.hpp): one connection,
// its cached prepared statements, errors as JournalError naming the file, and a transaction guard that rolls back
// unless committed.
#pragma once

#include <taskmon/agent/run_journal.hpp>

#include <sqlite3.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>

namespace taskmon::detail {

class SqliteConnection;

/// One cached prepared statement in use: binds, steps, reads columns; resets and clears its bindings when it goes
/// out of scope, so the cache hands it out clean and it holds no read lock past its use.
class SqliteStatement {
public:
    SqliteStatement(SqliteConnection& connection, sqlite3_stmt* statement) noexcept
        : connection_(&connection), statement_(statement) {}
    SqliteStatement(const SqliteStatement&) = delete;
    SqliteStatement& operator=(const SqliteStatement&) = delete;
    ~SqliteStatement() {
        sqlite3_reset(statement_);
        sqlite3_clear_bindings(statement_);
    }

    SqliteStatement& bind(int index, std::string_view text);
    SqliteStatement& bind_blob(int index, std::string_view bytes);
    SqliteStatement& bind(int index, std::int64_t value);
    SqliteStatement& bind(int index, std::uint64_t value) { return bind(index, static_cast<std::int64_t>(value)); }
    SqliteStatement& bind_null(int index);

    /// True when a row is ready, false when done; throws JournalError on failure.
    bool step();
    /// Steps a statement that returns no row.
    void run() { step(); }

    std::string text(int column) const {
        const auto* data = sqlite3_column_text(statement_, column);
        int size = sqlite3_column_bytes(statement_, column);
        return data == nullptr ? std::string{}
                               : std::string(reinterpret_cast<const char*>(data), static_cast<std::size_t>(size));
    }
    std::string blob(int column) const {
        const void* data = sqlite3_column_blob(statement_, column);
        int size = sqlite3_column_bytes(statement_, column);
        return data == nullptr ? std::string{}
                               : std::string(static_cast<const char*>(data), static_cast<std::size_t>(size));
    }
    std::int64_t integer(int column) const { return sqlite3_column_int64(statement_, column); }
    std::uint64_t unsigned_integer(int column) const { return static_cast<std::uint64_t>(integer(column)); }
    bool is_null(int column) const { return sqlite3_column_type(statement_, column) == SQLITE_NULL; }

private:
    void check_bind(int rc);

    SqliteConnection* connection_;
    sqlite3_stmt* statement_;
};

/// One open database connection. Not thread-safe (opened with SQLITE_OPEN_NOMUTEX): its owner uses it from one
/// thread at a time.
class SqliteConnection {
public:
    /// Opens (creating when `create`) the file at `path`, read-write; throws JournalError naming the file.
    SqliteConnection(std::string path, bool create) : path_(std::move(path)) {
        sqlite3* db = nullptr;
        int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX | (create ? SQLITE_OPEN_CREATE : 0);
        int rc = sqlite3_open_v2(path_.c_str(), &db, flags, nullptr);
        db_.reset(db);  // sqlite3_open_v2 may hand out a handle even when it fails; it must be closed
        if (rc != SQLITE_OK) {
            std::string hint =
                (rc & 0xff) == SQLITE_CANTOPEN ? "; the file's directory must exist and be writable" : "";
            throw JournalError(path_, "cannot open: " + describe(rc) + hint, db == nullptr ? rc : extended_code());
        }
        sqlite3_extended_result_codes(db_.get(), 1);
    }

    const std::string& path() const noexcept { return path_; }
    sqlite3* handle() const noexcept { return db_.get(); }

    /// The last error's extended code on this connection.
    int extended_code() const noexcept { return sqlite3_extended_errcode(db_.get()); }

    /// "<message> (SQLite extended code N)": SQLite's message for the last error on this connection.
    std::string describe(int rc) const {
        std::string message = db_ ? sqlite3_errmsg(db_.get()) : sqlite3_errstr(rc);
        return message + " (SQLite extended code " + std::to_string(db_ ? extended_code() : rc) + ")";
    }

    [[noreturn]] void fail(std::string_view what, int rc) const {
        throw JournalError(path_, std::string(what) + ": " + describe(rc), db_ ? extended_code() : rc);
    }

    /// Runs SQL without results (pragmas, schema, BEGIN/COMMIT), not cached.
    void execute(const char* sql, std::string_view what) {
        char* message = nullptr;
        int rc = sqlite3_exec(db_.get(), sql, nullptr, nullptr, &message);
        sqlite3_free(message);  // describe() reads the same text from the connection
        if (rc != SQLITE_OK) fail(what, rc);
    }

    /// The cached statement for `sql`, prepared on first use (the text is the cache's key).
    SqliteStatement prepare(std::string_view sql) {
        auto found = statements_.find(sql);
        if (found == statements_.end()) {
            sqlite3_stmt* raw = nullptr;
            int rc = sqlite3_prepare_v3(db_.get(), sql.data(), static_cast<int>(sql.size()), SQLITE_PREPARE_PERSISTENT,
                                        &raw, nullptr);
            if (rc != SQLITE_OK) fail("cannot prepare a statement", rc);
            found = statements_.emplace(std::string(sql), StatementHandle(raw)).first;
        }
        return SqliteStatement{*this, found->second.get()};
    }

    /// Finalizes the cached statements (before a schema change, or to close).
    void clear_statements() noexcept { statements_.clear(); }

    /// Names the step of the current call for error messages ("checkpoint", ...).
    void set_operation(std::string_view operation) { operation_ = operation; }
    const std::string& operation() const noexcept { return operation_; }

private:
    struct CloseDb {
        void operator()(sqlite3* db) const noexcept { sqlite3_close_v2(db); }
    };
    struct FinalizeStatement {
        void operator()(sqlite3_stmt* statement) const noexcept { sqlite3_finalize(statement); }
    };
    using StatementHandle = std::unique_ptr<sqlite3_stmt, FinalizeStatement>;
    struct StringHash {
        using is_transparent = void;
        std::size_t operator()(std::string_view text) const noexcept { return std::hash<std::string_view>{}(text); }
    };

    std::string path_;
    std::string operation_;
    // Declared before the statements: they are finalized first, then the connection closes.
    std::unique_ptr<sqlite3, CloseDb> db_;
    std::unordered_map<std::string, StatementHandle, StringHash, std::equal_to<>> statements_;
};

inline void SqliteStatement::check_bind(int rc) {
    if (rc != SQLITE_OK) connection_->fail(connection_->operation() + ": cannot bind a value", rc);
}
inline SqliteStatement& SqliteStatement::bind(int index, std::string_view text) {
    check_bind(sqlite3_bind_text64(statement_, index, text.data(), text.size(), SQLITE_TRANSIENT, SQLITE_UTF8));
    return *this;
}
inline SqliteStatement& SqliteStatement::bind_blob(int index, std::string_view bytes) {
    // A zero-length blob with a null pointer would be bound as NULL: point at something.
    const char* data = bytes.empty() ? "" : bytes.data();
    check_bind(sqlite3_bind_blob64(statement_, index, data, bytes.size(), SQLITE_TRANSIENT));
    return *this;
}
inline SqliteStatement& SqliteStatement::bind(int index, std::int64_t value) {
    check_bind(sqlite3_bind_int64(statement_, index, value));
    return *this;
}
inline SqliteStatement& SqliteStatement::bind_null(int index) {
    check_bind(sqlite3_bind_null(statement_, index));
    return *this;
}
inline bool SqliteStatement::step() {
    int rc = sqlite3_step(statement_);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    connection_->fail(connection_->operation(), rc);
}

/// BEGIN IMMEDIATE (the write lock up front, so a busy database fails at the start, not half-way) ... COMMIT;
/// rolls back when destroyed uncommitted, so an exception (a failed statement, SQLITE_FULL, a throwing fault hook)
/// leaves nothing half-written. Inside a transaction already open (a group of calls, RunJournal::group) it is a
/// savepoint instead: commit() releases it into the outer transaction, and destruction uncommitted rolls back to
/// it, undoing this call alone.
class SqliteTransaction {
public:
    explicit SqliteTransaction(SqliteConnection& connection, bool write = true)
        : connection_(connection), nested_(sqlite3_get_autocommit(connection.handle()) == 0) {
        if (nested_) {
            connection_.execute("SAVEPOINT taskmon_call", "cannot begin a savepoint");
        } else {
            connection_.execute(write ? "BEGIN IMMEDIATE" : "BEGIN", "cannot begin a transaction");
        }
    }
    SqliteTransaction(const SqliteTransaction&) = delete;
    SqliteTransaction& operator=(const SqliteTransaction&) = delete;
    ~SqliteTransaction() {
        // After some errors (SQLITE_FULL among them) SQLite has already rolled back the whole transaction: then
        // there is nothing left to roll back.
        if (committed_ || sqlite3_get_autocommit(connection_.handle()) != 0) return;
        if (nested_) {
            sqlite3_exec(connection_.handle(), "ROLLBACK TO taskmon_call; RELEASE taskmon_call", nullptr, nullptr,
                         nullptr);
        } else {
            sqlite3_exec(connection_.handle(), "ROLLBACK", nullptr, nullptr, nullptr);
        }
    }

    void commit() {
        if (nested_) {
            connection_.execute("RELEASE taskmon_call", "cannot release a savepoint");
        } else {
            connection_.execute("COMMIT", "cannot commit");
        }
        committed_ = true;
    }

private:
    SqliteConnection& connection_;
    bool nested_;
    bool committed_ = false;
};

}  // namespace taskmon::detail
