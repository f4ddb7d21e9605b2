// SqliteRunJournal's file (taskmon/agent/sqlite_journal.hpp): what it does with a file it cannot trust (newer
// schema, not a database, truncated), with a file or directory it cannot write, with a full disk, and with a
// process killed (SIGKILL) in the middle of a write. Each failure is a JournalError naming the file, never a crash
// or a silently empty journal, and leaves the file as it was.
#include "journal_harness.hpp"
#include "taskmon_catch.hpp"

#include <taskmon/agent/run_journal.hpp>
#include <taskmon/agent/sqlite_journal.hpp>

#include <sqlite3.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

using taskmon::SqliteRunJournal;
using namespace taskmon_test;

namespace {

bool contains(const std::string& text, std::string_view part) { return text.find(part) != std::string::npos; }

std::string file_bytes(const std::string& path) {
    std::ifstream in{path, std::ios::binary};
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// Runs SQL on the file with SQLite directly, as a tool outside taskmon would.
void raw_sql(const std::string& path, const char* sql) {
    sqlite3* db = nullptr;
    REQUIRE(sqlite3_open(path.c_str(), &db) == SQLITE_OK);
    int rc = sqlite3_exec(db, sql, nullptr, nullptr, nullptr);
    sqlite3_close(db);
    REQUIRE(rc == SQLITE_OK);
}

// The message of the JournalError opening `path` throws.
std::string open_error(const std::string& path, taskmon::SqliteJournalOptions options = {}) {
    return journal_error_message([&] { SqliteRunJournal journal{path, std::move(options)}; });
}

// Runs `check` in a child process and returns its exit status (or 128 + the signal that ended it). As root, the
// child first becomes the user nobody (65534): root ignores file permissions, so a permission check run as root
// would pass without testing anything.
int in_child(const std::function<int()>& check, bool unprivileged) {
    std::fflush(nullptr);
    pid_t child = fork();
    if (child == 0) {
        if (unprivileged && (setgid(65534) != 0 || setuid(65534) != 0)) _exit(90);
        int code = 91;
        try {
            code = check();
        } catch (...) {
        }
        _exit(code);
    }
    int status = 0;
    waitpid(child, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

}  // namespace

TEST_CASE("a new file gets the current schema in WAL mode; reopening keeps it") {
    TempDir dir;
    std::string path = dir.file("journal.db");
    {
        SqliteRunJournal journal{path};
        CHECK(journal.schema_version() == taskmon::detail::sqlite_journal_schema_version);
        journal.begin_run("run-1", "s", t0());
    }
    SqliteRunJournal journal{path};
    CHECK(journal.schema_version() == taskmon::detail::sqlite_journal_schema_version);
    CHECK(journal.list_runs().size() == 1);
    sqlite3* db = nullptr;
    REQUIRE(sqlite3_open(path.c_str(), &db) == SQLITE_OK);
    sqlite3_stmt* mode = nullptr;
    REQUIRE(sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &mode, nullptr) == SQLITE_OK);
    REQUIRE(sqlite3_step(mode) == SQLITE_ROW);
    CHECK(std::string(reinterpret_cast<const char*>(sqlite3_column_text(mode, 0))) == "wal");
    sqlite3_finalize(mode);
    sqlite3_close(db);
}

TEST_CASE("a file of schema 1 is migrated to the current schema at open, keeping its runs") {
    TempDir dir;
    std::string path = dir.file("journal.db");
    // A file as the first schema left it: its tables, version 1, one run with a checkpoint.
    raw_sql(path, taskmon::detail::sqlite_journal_migrations[0]);
    raw_sql(path,
            "INSERT INTO runs VALUES ('run-1', 'running', 1800000000000000000, x'73', x'', 1);"
            "INSERT INTO checkpoints VALUES ('run-1', 1, x'72', x'73', NULL);"
            "PRAGMA user_version = 1;");
    {
        SqliteRunJournal journal{path};
        CHECK(journal.schema_version() == taskmon::detail::sqlite_journal_schema_version);
        auto snapshot = journal.load("run-1");
        REQUIRE(snapshot);
        CHECK(snapshot->run.last_step == 1);
        CHECK(snapshot->last_checkpoint->record_blob == "r");
        journal.record_guidance("run-1", "from the new schema");
    }
    SqliteRunJournal reopened{path};
    CHECK(reopened.load("run-1")->pending_guidance == std::vector<std::string>{"from the new schema"});
}

TEST_CASE("options are validated with a clear exception") {
    TempDir dir;
    taskmon::SqliteJournalOptions negative;
    negative.busy_timeout = std::chrono::milliseconds{-1};
    CHECK_THROWS_WITH(SqliteRunJournal(dir.file("a.db"), negative),
                      "SqliteJournalOptions: busy_timeout must not be negative, got -1 ms");
    taskmon::SqliteJournalOptions zero_pages;
    zero_pages.max_page_count = 0;
    CHECK_THROWS_WITH(SqliteRunJournal(dir.file("a.db"), zero_pages),
                      "SqliteJournalOptions: max_page_count must be at least 1, got 0");
    CHECK_FALSE(std::filesystem::exists(dir.file("a.db")));
    taskmon::SqliteJournalOptions full;
    full.full_sync = true;
    SqliteRunJournal journal{dir.file("full.db"), full};
    journal.begin_run("run-1", "s", t0());
    CHECK(journal.list_runs().size() == 1);
}

TEST_CASE("a file with a newer schema is refused, naming the file and both versions, and left untouched") {
    TempDir dir;
    std::string path = dir.file("journal.db");
    {
        SqliteRunJournal journal{path};
        journal.begin_run("run-1", "s", t0());
    }
    raw_sql(path, "PRAGMA user_version = 99");
    std::string bytes = file_bytes(path);
    auto message = open_error(path);
    CHECK(contains(message, path));
    CHECK(contains(message, "schema version 99, newer than this taskmon knows (" +
                                std::to_string(taskmon::detail::sqlite_journal_schema_version) + ")"));
    CHECK(file_bytes(path) == bytes);
    CHECK_FALSE(std::filesystem::exists(path + "-wal"));
}

TEST_CASE("a file that is not a database is refused, naming the file, and left untouched") {
    TempDir dir;
    std::string path = dir.file("journal.db");
    {
        std::ofstream out{path, std::ios::binary};
        for (int i = 0; i < 200; ++i) out << "this is not an SQLite database. ";
    }
    std::string bytes = file_bytes(path);
    try {
        SqliteRunJournal journal{path};
        FAIL("opening garbage did not throw");
    } catch (const taskmon::JournalError& error) {
        CHECK(error.path() == path);
        CHECK(contains(error.what(), path));
        CHECK(contains(error.what(), "not a taskmon journal"));
        CHECK(error.sqlite_code() == SQLITE_NOTADB);
    }
    CHECK(file_bytes(path) == bytes);
}

TEST_CASE("another program's SQLite database is refused, not filled with the journal's tables") {
    TempDir dir;
    std::string path = dir.file("other.db");
    raw_sql(path, "CREATE TABLE inventory (item TEXT); INSERT INTO inventory VALUES ('sock')");
    std::string bytes = file_bytes(path);
    auto message = open_error(path);
    CHECK(contains(message, path));
    CHECK(contains(message, "an SQLite database of another program (schema version 0 with 1 tables)"));
    CHECK(file_bytes(path) == bytes);
}

TEST_CASE("a truncated database file is refused at open, naming the file") {
    TempDir dir;
    std::string path = dir.file("journal.db");
    {
        SqliteRunJournal journal{path};
        journal.begin_run("run-1", "s", t0());
        std::string state(1024, 's');
        for (std::uint64_t step = 1; step <= 100; ++step) {
            journal.checkpoint("run-1", {step, "record", state, {}, {}});
        }
    }
    REQUIRE_FALSE(std::filesystem::exists(path + "-wal"));  // closed cleanly: everything is in the file
    auto size = std::filesystem::file_size(path);
    REQUIRE(size > 100 * 1024);
    std::filesystem::resize_file(path, size / 2);
    auto message = open_error(path);
    CHECK(contains(message, "run journal " + path + ": "));
    CHECK(contains(message, "corrupt"));
    // Without quick_check the damage is still an error, not an empty run: here SQLite already finds at open that
    // the file is shorter than its header says; other damage shows at the first read of a bad page.
    taskmon::SqliteJournalOptions unchecked;
    unchecked.quick_check_at_open = false;
    auto at_read = journal_error_message([&] {
        SqliteRunJournal journal{path, unchecked};
        journal.load("run-1");
    });
    CHECK(contains(at_read, "run journal " + path + ": "));
    CHECK(contains(at_read, "malformed"));
}

TEST_CASE("a database file with a damaged page is refused at open by quick_check, naming the file") {
    TempDir dir;
    std::string path = dir.file("journal.db");
    {
        SqliteRunJournal journal{path};
        journal.begin_run("run-1", "s", t0());
        std::string state(1024, 's');
        for (std::uint64_t step = 1; step <= 100; ++step) journal.checkpoint("run-1", {step, "record", state, {}, {}});
    }
    auto size = std::filesystem::file_size(path);
    {
        // One 4 KB page in the middle of the file overwritten; the file keeps its size.
        std::fstream file{path, std::ios::binary | std::ios::in | std::ios::out};
        file.seekp(static_cast<std::streamoff>(size / 2 / 4096 * 4096));
        std::string garbage(4096, '\xab');
        file.write(garbage.data(), static_cast<std::streamsize>(garbage.size()));
    }
    REQUIRE(std::filesystem::file_size(path) == size);
    auto message = open_error(path);
    CHECK(contains(message, "run journal " + path + ": open: the file is corrupt or truncated (quick_check: "));
}

TEST_CASE("an empty file is a new journal") {
    TempDir dir;
    std::string path = dir.file("journal.db");
    std::ofstream{path}.close();
    SqliteRunJournal journal{path};
    CHECK(journal.schema_version() == taskmon::detail::sqlite_journal_schema_version);
    journal.begin_run("run-1", "s", t0());
    CHECK(journal.list_runs().size() == 1);
}

TEST_CASE("a read-only directory or file is refused with a clear error") {
    TempDir dir;
    bool root = geteuid() == 0;
    if (root) {
        WARN(
            "running as root, which ignores file permissions: the checks run in a child process as the user "
            "nobody (65534)");
    }
    // The child process (as nobody) must reach the files: the temporary directory is 0700 and root's.
    std::filesystem::permissions(dir.path(), std::filesystem::perms::owner_all | std::filesystem::perms::others_exec |
                                                 std::filesystem::perms::group_exec);
    auto locked = dir.path() / "locked";
    std::filesystem::create_directory(locked);
    std::filesystem::permissions(locked, std::filesystem::perms::owner_read | std::filesystem::perms::owner_exec |
                                             std::filesystem::perms::others_read | std::filesystem::perms::others_exec);
    std::string in_locked = (locked / "journal.db").string();
    CHECK(in_child(
              [&] {
                  auto message = open_error(in_locked);
                  std::fprintf(stderr, "read-only directory: %s\n", message.c_str());
                  return contains(message, in_locked) && contains(message, "cannot open") ? 0 : 1;
              },
              root) == 0);

    auto open_dir = dir.path() / "open";
    std::filesystem::create_directory(open_dir);
    std::filesystem::permissions(open_dir, std::filesystem::perms::all);
    std::string read_only = (open_dir / "journal.db").string();
    {
        SqliteRunJournal journal{read_only};
        journal.begin_run("run-1", "s", t0());
    }
    std::filesystem::permissions(read_only, std::filesystem::perms::owner_read | std::filesystem::perms::others_read);
    std::string bytes = file_bytes(read_only);
    CHECK(in_child(
              [&] {
                  auto message = open_error(read_only);
                  std::fprintf(stderr, "read-only file: %s\n", message.c_str());
                  return contains(message, read_only) && contains(message, "read-only") ? 0 : 1;
              },
              root) == 0);
    CHECK(file_bytes(read_only) == bytes);
}

TEST_CASE("a full disk (max_page_count) is an error, the write is rolled back, and earlier data is intact") {
    TempDir dir;
    std::string path = dir.file("journal.db");
    taskmon::SqliteJournalOptions options;
    options.max_page_count = 40;  // 160 KB of 4 KB pages: the schema takes about 10
    std::string before;
    {
        SqliteRunJournal journal{path, options};
        journal.begin_run("run-1", "s", t0());
        std::string state(3000, 's');
        std::optional<taskmon::JournalError> full;
        std::uint64_t step = 0;
        for (; step < 1000 && !full; ++step) {
            before = dump(journal);
            try {
                // Two rows in one transaction: the checkpoint and the run's last step.
                journal.checkpoint("run-1", {step + 1, "record", state, state, {}});
            } catch (const taskmon::JournalError& error) {
                full = error;
            }
        }
        REQUIRE(full);
        CHECK(full->sqlite_code() == SQLITE_FULL);
        CHECK(contains(full->what(), path));
        CHECK(contains(full->what(), "checkpoint"));
        CHECK(step > 2);
        CHECK(dump(journal) == before);
        // A smaller write that fits still succeeds: the journal is usable after the failure.
        journal.record_intent(intent_for("run-1", step, 0));
        before = dump(journal);
    }
    SqliteRunJournal reopened{path};
    CHECK(dump(reopened) == before);
}

TEST_CASE("group() commits its calls together; a call that throws inside it changes nothing, the others stand") {
    TempDir dir;
    std::string path = dir.file("journal.db");
    std::string expected;
    {
        SqliteRunJournal journal{path};
        journal.begin_run("run-1", "s", t0());
        auto intent = intent_for("run-1", 1, 0);
        std::string refused;
        journal.group([&] {
            journal.record_intent(intent);
            // Refused (a gap): rolled back to its own savepoint, not the group's start.
            refused = journal_error_message([&] { journal.checkpoint("run-1", step_checkpoint(3)); });
            journal.group([&] {
                journal.record_action_result(intent.idempotency_key, taskmon::JournalOutcome::succeeded, "ok");
            });
            journal.checkpoint("run-1", step_checkpoint(1));
        });
        CHECK(contains(refused, "expects step 1 after step 0, got step 3 (a gap)"));
        auto snapshot = journal.load("run-1");
        CHECK(snapshot->run.last_step == 1);
        CHECK(journal.find_action(intent.idempotency_key)->result->result_blob == "ok");
        expected = dump(journal);

        // A body that throws out of the group: none of its calls is written.
        CHECK_THROWS_WITH(journal.group([&] {
            journal.checkpoint("run-1", step_checkpoint(2));
            throw std::runtime_error("the group's caller gave up");
        }),
                          "the group's caller gave up");
        CHECK(dump(journal) == expected);
    }
    SqliteRunJournal reopened{path};
    CHECK(dump(reopened) == expected);
}

TEST_CASE("a process killed inside a group before it committed leaves none of the group's calls") {
    TempDir dir;
    std::string path = dir.file("journal.db");
    std::string before;
    {
        SqliteRunJournal journal{path};
        journal.begin_run("run-1", "s", t0());
        before = dump(journal);
    }
    int status = in_child(
        [&] {
            taskmon::SqliteJournalOptions options;
            options.fault_hook = [](std::string_view at) {
                if (at == "checkpoint:after") raise(SIGKILL);  // the intent released into the group, not committed
            };
            SqliteRunJournal journal{path, options};
            journal.group([&] {
                journal.record_intent(intent_for("run-1", 1, 0));
                journal.checkpoint("run-1", step_checkpoint(1));
            });
            return 0;
        },
        false);
    CHECK(status == 128 + SIGKILL);
    SqliteRunJournal reopened{path};
    CHECK(dump(reopened) == before);
}

namespace {

// Kills a child process (SIGKILL, as kill -9) at each of the write's three points, then reopens the file in this
// process: before and commit must leave the state before the write (the uncommitted transaction is discarded at
// recovery), after the state after it.
void check_kill_points(std::string_view point) {
    const CrashCase crash = crash_case(point);
    TempDir dir;
    const auto [before, after] = crash_states(crash, dir);
    for (std::string_view stage : {"before", "commit", "after"}) {
        std::string armed = crash.point + ":" + std::string(stage);
        INFO("SIGKILL at " << armed);
        std::string path = dir.file("killed-" + std::string(stage) + ".db");
        {
            SqliteRunJournal journal{path};
            crash.setup(journal);
        }
        int status = in_child(
            [&] {
                taskmon::SqliteJournalOptions options;
                options.fault_hook = [&](std::string_view at) {
                    if (at == armed) raise(SIGKILL);
                };
                SqliteRunJournal journal{path, options};
                crash.write(journal);
                return 0;
            },
            false);
        CHECK(status == 128 + SIGKILL);
        SqliteRunJournal reopened{path};
        CHECK(dump(reopened) == (stage == "after" ? after : before));
    }
}

}  // namespace

TEST_CASE("a process killed around begin_run leaves the state before or after it") { check_kill_points("begin_run"); }
TEST_CASE("a process killed around a checkpoint leaves the state before or after it") {
    check_kill_points("checkpoint");
}
TEST_CASE("a process killed around an intent leaves the state before or after it") { check_kill_points("intent"); }
TEST_CASE("a process killed around an action result leaves the state before or after it") {
    check_kill_points("action_result");
}
TEST_CASE("a process killed around an interrupt leaves the state before or after it") {
    check_kill_points("interrupt");
}
TEST_CASE("a process killed around a resume leaves the state before or after it") { check_kill_points("resume"); }
TEST_CASE("a process killed around a status change leaves the state before or after it") {
    check_kill_points("status");
}
TEST_CASE("a process killed around a resume_run leaves the state before or after it") {
    check_kill_points("resume_run");
}
TEST_CASE("a process killed around a guidance write leaves the state before or after it") {
    check_kill_points("guidance");
}
