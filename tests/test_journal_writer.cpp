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
        writer.defer(
            [&order, &deferred_on](RunJournal& journal) {
                deferred_on = std::this_thread::get_id();
                journal.begin_run("run-1", "", t0());
                order.emplace_back("deferred");
            },
            [&order](std::exception_ptr) noexcept { order.emplace_back("deferred failed"); });
        writer.async_call([&order](RunJournal&) { order.emplace_back("call 2"); }, done());
        gate.set_value();
    }  // the destructor runs all three, in order, then joins
    io.run();
    CHECK(order == std::vector<std::string>{"call 1", "deferred", "call 2"});
    CHECK(deferred_on != caller);
    SqliteRunJournal journal{dir.file("journal.db")};
    CHECK(journal.load("run-1"));
}

TEST_CASE("calls queued while the writer is busy are committed as one group, each completing after it") {
    TempDir dir;
    const std::string path = dir.file("journal.db");
    std::vector<std::size_t> sizes;  // written by the writer thread only, read after it joined
    std::vector<std::string> outcomes;
    asio::io_context io;
    {
        std::promise<void> gate;
        auto opened = gate.get_future();
        auto journal = std::make_unique<ForwardingJournal>(std::make_unique<SqliteRunJournal>(path));
        journal->group_sizes = &sizes;
        JournalWriter writer{std::move(journal)};
        const auto record = [&io, &outcomes](std::string name) {
            return asio::bind_executor(io.get_executor(), [&outcomes, name](std::exception_ptr error) {
                outcomes.push_back(name + (error ? " failed" : " ok"));
            });
        };
        std::promise<void> entered;
        writer.async_call(
            [&opened, &entered](RunJournal&) {
                entered.set_value();
                opened.wait();
            },
            record("gate"));
        entered.get_future().wait();  // the writer holds the gate alone: everything below queues behind it
        for (int i = 0; i < 5; ++i) {
            writer.async_call([i](RunJournal& j) { j.begin_run("run-" + std::to_string(i), "", t0()); },
                              record("run-" + std::to_string(i)));
        }
        // A refused call inside the group changes nothing and fails alone.
        writer.async_call([](RunJournal& j) { j.begin_run("run-0", "", t0()); }, record("again"));
        gate.set_value();
    }
    io.run();
    // The gate ran alone; the six calls queued behind it in one group.
    CHECK(sizes == std::vector<std::size_t>{6});
    CHECK(outcomes == std::vector<std::string>{"gate ok", "run-0 ok", "run-1 ok", "run-2 ok", "run-3 ok", "run-4 ok",
                                               "again failed"});
    CHECK(SqliteRunJournal{path}.list_runs().size() == 5);
}

TEST_CASE("a group whose commit fails fails every call and deferred work of it, and writes none of them") {
    TempDir dir;
    const std::string path = dir.file("journal.db");
    std::vector<std::string> outcomes;
    std::vector<std::string> deferred_failures;  // written by the writer thread only, read after it joined
    asio::io_context io;
    {
        std::promise<void> gate;
        auto opened = gate.get_future();
        auto journal = std::make_unique<ForwardingJournal>(std::make_unique<SqliteRunJournal>(path));
        journal->fail_group = true;
        JournalWriter writer{std::move(journal)};
        std::promise<void> entered;
        writer.async_call(
            [&opened, &entered](RunJournal&) {
                entered.set_value();
                opened.wait();
            },
            asio::bind_executor(io.get_executor(), [](std::exception_ptr) {}));
        entered.get_future().wait();  // the writer holds the gate alone: the two below form one group
        writer.async_call([](RunJournal& j) { j.begin_run("run-1", "", t0()); },
                          asio::bind_executor(io.get_executor(), [&outcomes](std::exception_ptr error) {
                              try {
                                  if (error) std::rethrow_exception(error);
                                  outcomes.emplace_back("ok");
                              } catch (const std::exception& e) {
                                  outcomes.emplace_back(e.what());
                              }
                          }));
        writer.defer([](RunJournal& j) { j.begin_run("run-2", "", t0()); },
                     [&deferred_failures](std::exception_ptr error) noexcept {
                         try {
                             std::rethrow_exception(error);
                         } catch (const std::exception& e) {
                             deferred_failures.emplace_back(e.what());
                         }
                     });
        gate.set_value();
    }
    io.run();
    CHECK(outcomes == std::vector<std::string>{"the group's commit failed"});
    CHECK(deferred_failures == std::vector<std::string>{"the group's commit failed"});
    CHECK(SqliteRunJournal{path}.list_runs().empty());
}

TEST_CASE("a null journal is refused") {
    CHECK_THROWS_WITH(JournalWriter{nullptr}, "JournalWriter: the journal is null");
}
