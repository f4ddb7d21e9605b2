// JournalWriter (taskmon/agent/journal_writer.hpp): a call runs on the writer thread and completes on the caller's
// executor, an exception reaches the awaiting coroutine, calls run in order, and the destructor runs every queued
// call before it returns.
#include "journal_harness.hpp"
#include "taskmon_catch.hpp"

#include <taskmon/agent/journal_writer.hpp>
#include <taskmon/agent/run_journal.hpp>
#include <taskmon/agent/sqlite_journal.hpp>

#include <asio/bind_executor.hpp>
#include <asio/co_spawn.hpp>
#include <asio/io_context.hpp>
#include <asio/strand.hpp>
#include <asio/use_awaitable.hpp>

#include <exception>
#include <future>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

using taskmon::JournalWriter;
using taskmon::RunJournal;
using taskmon::SqliteRunJournal;
using namespace taskmon_test;

TEST_CASE("a call runs on the writer thread and resumes the coroutine on its own strand") {
    TempDir dir;
    asio::io_context io;
    auto strand = asio::make_strand(io);
    JournalWriter writer{std::make_unique<SqliteRunJournal>(dir.file("journal.db"))};
    std::thread::id caller = std::this_thread::get_id();
    std::thread::id writer_thread;
    bool on_strand_after = false;
    std::optional<taskmon::RunSnapshot> loaded;
    std::exception_ptr failure;
    // The functions are named before the co_await: g++ 12 miscompiles lambdas with captures inside one.
    auto begin = [&](RunJournal& journal) {
        writer_thread = std::this_thread::get_id();
        journal.begin_run("run-1", "settings", t0());
    };
    auto load = [](RunJournal& journal) { return journal.load("run-1"); };
    auto body = [&]() -> asio::awaitable<void> {
        co_await writer.call(begin);
        on_strand_after = strand.running_in_this_thread();
        loaded = co_await writer.call(load);
    };
    asio::co_spawn(strand, body(), [&](std::exception_ptr error) { failure = error; });
    io.run();
    CHECK_FALSE(failure);
    CHECK(writer_thread != std::thread::id{});
    CHECK(writer_thread != caller);
    CHECK(on_strand_after);
    REQUIRE(loaded);
    CHECK(loaded->run.settings_blob == "settings");
}

TEST_CASE("an exception from the journal propagates to the awaiting coroutine") {
    TempDir dir;
    asio::io_context io;
    JournalWriter writer{std::make_unique<SqliteRunJournal>(dir.file("journal.db"))};
    std::string caught;
    bool continued = false;
    auto body = [&]() -> asio::awaitable<void> {
        auto begin = [](RunJournal& journal) { journal.begin_run("run-1", "s", t0()); };
        co_await writer.call(begin);
        try {
            co_await writer.call(begin);
        } catch (const taskmon::JournalError& error) {
            caught = error.what();
        }
        // The writer goes on after a failed call.
        auto list = [](RunJournal& journal) { return journal.list_runs(); };
        auto runs = co_await writer.call(list);
        continued = runs.size() == 1;
    };
    asio::co_spawn(io, body(), [](std::exception_ptr error) {
        if (error) std::rethrow_exception(error);
    });
    io.run();
    CHECK(caught.find("begin_run: run 'run-1' exists already") != std::string::npos);
    CHECK(continued);
}

TEST_CASE("async_call with a callback completes on the bound executor, in call order") {
    TempDir dir;
    asio::io_context io;
    JournalWriter writer{std::make_unique<SqliteRunJournal>(dir.file("journal.db"))};
    std::vector<std::string> completed;
    for (int i = 0; i < 5; ++i) {
        std::string id = "run-" + std::to_string(i);
        auto begin = [id](RunJournal& journal) {
            journal.begin_run(id, "s", t0());
            return journal.list_runs().size();
        };
        auto done = [&completed, id](std::exception_ptr error, std::size_t runs) {
            completed.push_back(id + (error ? " failed" : " saw " + std::to_string(runs)));
        };
        writer.async_call(begin, asio::bind_executor(io.get_executor(), done));
    }
    io.run();  // returns once every completion ran: each call holds work on io until it completes
    CHECK(completed ==
          std::vector<std::string>{"run-0 saw 1", "run-1 saw 2", "run-2 saw 3", "run-3 saw 4", "run-4 saw 5"});
}

TEST_CASE("the destructor runs every queued call before it returns") {
    TempDir dir;
    std::string path = dir.file("journal.db");
    asio::io_context io;
    int completions = 0;
    {
        // Declared before the writer, whose destructor runs the call that waits on the gate.
        std::promise<void> release;
        auto gate = release.get_future();
        JournalWriter writer{std::make_unique<SqliteRunJournal>(path)};
        // The first call holds the writer thread until every other call is queued.
        writer.async_call([&gate](RunJournal&) { gate.wait(); },
                          asio::bind_executor(io.get_executor(), [&](std::exception_ptr) { ++completions; }));
        for (int i = 0; i < 20; ++i) {
            auto begin = [i](RunJournal& journal) { journal.begin_run("run-" + std::to_string(i), "s", t0()); };
            writer.async_call(begin, asio::bind_executor(io.get_executor(), [&](std::exception_ptr error) {
                                  if (!error) ++completions;
                              }));
        }
        release.set_value();
    }
    // Every write is in the file; the completions wait on io, which has not run yet.
    CHECK(SqliteRunJournal{path}.list_runs().size() == 20);
    CHECK(completions == 0);
    io.run();
    CHECK(completions == 21);
}

TEST_CASE("defer runs on the writer thread in order with the calls, and the destructor runs it") {
    TempDir dir;
    std::vector<std::string> order;  // written by the writer thread only, read after it joined
    std::thread::id deferred_on;
    const std::thread::id caller = std::this_thread::get_id();
    asio::io_context io;  // the calls complete here, after the writer is gone
    const auto done = [&io] { return asio::bind_executor(io.get_executor(), [](std::exception_ptr) {}); };
    {
        std::promise<void> gate;  // before the writer: its destructor runs the call that waits on it
        auto opened = gate.get_future();
        JournalWriter writer{std::make_unique<SqliteRunJournal>(dir.file("journal.db"))};
        writer.async_call(
            [&opened, &order](RunJournal&) {
                opened.wait();  // holds the writer until everything below is queued
                order.emplace_back("call 1");
            },
            done());
        writer.defer([&order, &deferred_on](RunJournal& journal) noexcept {
            deferred_on = std::this_thread::get_id();
            try {
                journal.begin_run("run-1", "", t0());
                order.emplace_back("deferred");
            } catch (...) {
                order.emplace_back("deferred threw");
            }
        });
        writer.async_call([&order](RunJournal&) { order.emplace_back("call 2"); }, done());
        gate.set_value();
    }  // the destructor runs all three, in order, then joins
    io.run();
    CHECK(order == std::vector<std::string>{"call 1", "deferred", "call 2"});
    CHECK(deferred_on != caller);
    SqliteRunJournal journal{dir.file("journal.db")};
    CHECK(journal.load("run-1"));
}

TEST_CASE("a null journal is refused") {
    CHECK_THROWS_WITH(JournalWriter{nullptr}, "JournalWriter: the journal is null");
}
