// Built by consumer.pkg_config_durable: writes a run into a journal in the build directory, reopens the file and
// reads it back, so the program must link SQLite through taskmon-durable.pc.
#include <taskmon/agent/sqlite_journal.hpp>
#include <taskmon/version.hpp>

#include <fmt/core.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <string>

int main() {
    const char* path = "consumer_durable.db";
    for (const char* suffix : {"", "-wal", "-shm"}) std::filesystem::remove(std::string(path) + suffix);
    {
        taskmon::SqliteRunJournal journal{path};
        journal.begin_run("run-1", "settings", std::chrono::system_clock::now());
        journal.checkpoint(
            "run-1", {.step = 1, .record_blob = "r", .state_blob = "s", .history_blob = {}, .consumed_interrupts = {}});
    }
    taskmon::SqliteRunJournal reopened{path};
    auto snapshot = reopened.load("run-1");
    if (!snapshot || snapshot->run.last_step != 1 || snapshot->last_checkpoint->state_blob != "s") {
        std::fputs("the journal did not read back what was written\n", stderr);
        return 1;
    }
    fmt::print("taskmon {} consumer ok\n", TASKMON_VERSION_STRING);
}
