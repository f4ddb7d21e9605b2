#include <taskmon/io_semaphore.hpp>

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/io_context.hpp>
#include <asio/post.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>

#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "taskmon_catch.hpp"

extern char** environ;

namespace {

// Restores the global count when a test that changes it ends.
struct RestoreGlobalCount {
    std::size_t saved = taskmon::get_io_semaphore_stats().capacity;
    ~RestoreGlobalCount() { taskmon::set_io_semaphore_count(saved); }
};

struct ChildOutput {
    int exit_status = -1;
    std::string text;  // stdout and stderr
};

constexpr const char* child_test_name = "io_semaphore child process: print the global count";

// Runs this test program again in a fresh process, so that the global instance is created there under the given
// TASKMON_IO_CONCURRENCY (nullptr = unset).
ChildOutput run_child(const char* env_value) {
    std::vector<std::string> env_strings;
    for (char** e = environ; *e != nullptr; ++e) {
        if (std::strncmp(*e, "TASKMON_IO_CONCURRENCY=", 23) != 0) {
            env_strings.emplace_back(*e);
        }
    }
    if (env_value != nullptr) {
        env_strings.push_back(std::string("TASKMON_IO_CONCURRENCY=") + env_value);
    }
    std::vector<char*> envp;
    for (auto& s : env_strings) {
        envp.push_back(s.data());
    }
    envp.push_back(nullptr);
    std::string exe = "/proc/self/exe";
    std::string name = child_test_name;
    char* argv[] = {exe.data(), name.data(), nullptr};

    int fds[2];
    if (pipe(fds) != 0) {
        throw std::runtime_error("pipe failed");
    }
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, fds[1], 1);
    posix_spawn_file_actions_adddup2(&actions, fds[1], 2);
    posix_spawn_file_actions_addclose(&actions, fds[0]);
    pid_t pid = 0;
    const int rc = posix_spawn(&pid, exe.c_str(), &actions, nullptr, argv, envp.data());
    posix_spawn_file_actions_destroy(&actions);
    close(fds[1]);
    ChildOutput out;
    if (rc != 0) {
        close(fds[0]);
        throw std::runtime_error(std::string("posix_spawn failed: ") + std::strerror(rc));
    }
    char buffer[4096];
    for (;;) {
        const ssize_t n = read(fds[0], buffer, sizeof buffer);
        if (n <= 0) {
            break;
        }
        out.text.append(buffer, static_cast<std::size_t>(n));
    }
    close(fds[0]);
    int status = 0;
    waitpid(pid, &status, 0);
    out.exit_status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    return out;
}

std::size_t reported_count(const std::string& text) {
    const auto at = text.find("global_count=");
    if (at == std::string::npos) {
        return 0;
    }
    return std::stoul(text.substr(at + 13));
}

}  // namespace

// Not run by default ([.]): the body of the child process started by run_child().
TEST_CASE("io_semaphore child process: print the global count", "[.][child]") {
    const std::size_t count = taskmon::get_io_semaphore_stats().capacity;  // creates the instance
    std::cout << "global_count=" << count << std::endl;
}

TEST_CASE("io_semaphore: the default count follows the hardware, 8 when unknown") {
    CHECK(taskmon::default_io_semaphore_count(0) == 8);
    CHECK(taskmon::default_io_semaphore_count(1) == 1);
    CHECK(taskmon::default_io_semaphore_count(2) == 2);
    CHECK(taskmon::default_io_semaphore_count(64) == 64);
    const unsigned hw = std::thread::hardware_concurrency();
    CHECK(taskmon::default_io_semaphore_count() == (hw == 0 ? 8u : hw));
}

TEST_CASE("io_semaphore: TASKMON_IO_CONCURRENCY accepts positive integers") {
    auto s = taskmon::parse_io_concurrency(nullptr, 6);
    CHECK(s.count == 6);
    CHECK_FALSE(s.from_env);
    CHECK(s.rejection.empty());

    s = taskmon::parse_io_concurrency("3", 6);
    CHECK(s.count == 3);
    CHECK(s.from_env);
    CHECK(s.rejection.empty());

    s = taskmon::parse_io_concurrency("0001", 6);
    CHECK(s.count == 1);

    s = taskmon::parse_io_concurrency(std::to_string(taskmon::AsyncSemaphore::max_count()).c_str(), 6);
    CHECK(s.count == taskmon::AsyncSemaphore::max_count());
}

TEST_CASE("io_semaphore: TASKMON_IO_CONCURRENCY rejects anything else and keeps the default") {
    const char* bad[] = {
        "", "0", "000", "-1", "+4", " 4", "4 ", "4x", "abc", "2.5", "1e3", "2147483648", "99999999999999999999999"};
    for (const char* value : bad) {
        INFO("value: \"" << value << "\"");
        const auto s = taskmon::parse_io_concurrency(value, 6);
        CHECK(s.count == 6);
        CHECK_FALSE(s.from_env);
        CHECK(s.rejection.find("TASKMON_IO_CONCURRENCY=\"" + std::string(value) + "\"") != std::string::npos);
        CHECK(s.rejection.find("default of 6") != std::string::npos);
    }
    CHECK(taskmon::parse_io_concurrency("0", 6).rejection.find("at least 1") != std::string::npos);
    CHECK(taskmon::parse_io_concurrency("x", 6).rejection.find("not a positive integer") != std::string::npos);
    CHECK(taskmon::parse_io_concurrency("2147483648", 6).rejection.find("largest count") != std::string::npos);
}

TEST_CASE("io_semaphore: a rejected TASKMON_IO_CONCURRENCY is reported on one line, escaped") {
    const auto s = taskmon::parse_io_concurrency("12\n", 6);
    CHECK(s.count == 6);
    CHECK(s.rejection ==
          "TASKMON_IO_CONCURRENCY=\"12\\n\" is rejected: it is not a positive integer (digits only); using the "
          "default of 6");
    CHECK(s.rejection.find('\n') == std::string::npos);
    CHECK(taskmon::parse_io_concurrency("\x1b[2J", 6).rejection.find("\"\\x1b[2J\"") != std::string::npos);
}

TEST_CASE("io_semaphore: the global instance takes its count from the environment or the default") {
    const ChildOutput unset = run_child(nullptr);
    INFO(unset.text);
    CHECK(unset.exit_status == 0);
    CHECK(reported_count(unset.text) == taskmon::default_io_semaphore_count());
    CHECK(unset.text.find("TASKMON_IO_CONCURRENCY") == std::string::npos);

    const ChildOutput three = run_child("3");
    INFO(three.text);
    CHECK(three.exit_status == 0);
    CHECK(reported_count(three.text) == 3);
    CHECK(three.text.find("TASKMON_IO_CONCURRENCY") == std::string::npos);

    const ChildOutput rejected = run_child("lots");
    INFO(rejected.text);
    CHECK(rejected.exit_status == 0);
    CHECK(reported_count(rejected.text) == taskmon::default_io_semaphore_count());
    CHECK(rejected.text.find("taskmon: TASKMON_IO_CONCURRENCY=\"lots\" is rejected") != std::string::npos);
}

TEST_CASE("io_semaphore: with_io_semaphore is one instance that io_semaphore() and the free functions use") {
    RestoreGlobalCount restore;
    taskmon::AsyncSemaphore& sem = taskmon::with_io_semaphore();
    CHECK(&sem == &taskmon::with_io_semaphore());
    taskmon::set_io_semaphore_count(2);
    CHECK(sem.stats().capacity == 2);

    asio::io_context ctx;
    bool done = false;
    asio::co_spawn(
        ctx,
        [&]() -> asio::awaitable<void> {
            auto a = co_await taskmon::io_semaphore();
            CHECK(a.semaphore() == &sem);
            auto s = taskmon::get_io_semaphore_stats();
            CHECK(s.capacity == 2);
            CHECK(s.in_use == 1);
            CHECK(s.available == 1);
            auto b = co_await sem.acquire();
            s = taskmon::get_io_semaphore_stats();
            CHECK(s.available == 0);
            CHECK(s.in_use == 2);
            CHECK_FALSE(sem.try_acquire());
            done = true;
        },
        asio::detached);
    ctx.run();
    CHECK(done);
    const auto s = taskmon::get_io_semaphore_stats();
    CHECK(s.in_use == 0);
    CHECK(s.available == 2);
    CHECK(s.waiting == 0);
}

TEST_CASE("io_semaphore: set_io_semaphore_count rejects 0 and changes nothing") {
    RestoreGlobalCount restore;
    taskmon::set_io_semaphore_count(5);
    CHECK_THROWS_AS(taskmon::set_io_semaphore_count(0), std::invalid_argument);
    CHECK(taskmon::get_io_semaphore_stats().capacity == 5);
}

TEST_CASE("io_semaphore: concurrency through the global never exceeds its count (200 coroutines, 2 threads)") {
    RestoreGlobalCount restore;
    taskmon::set_io_semaphore_count(4);
    asio::io_context ctx;
    std::atomic<int> in_flight{0};
    std::atomic<int> max_in_flight{0};
    std::atomic<int> finished{0};
    for (int i = 0; i < 200; ++i) {
        asio::co_spawn(
            ctx,
            [&]() -> asio::awaitable<void> {
                for (int round = 0; round < 3; ++round) {
                    auto permit = co_await taskmon::io_semaphore();
                    const int n = in_flight.fetch_add(1) + 1;
                    int seen = max_in_flight.load();
                    while (n > seen && !max_in_flight.compare_exchange_weak(seen, n)) {
                    }
                    co_await asio::post(co_await asio::this_coro::executor, asio::use_awaitable);
                    in_flight.fetch_sub(1);
                }
                finished.fetch_add(1);
            },
            asio::detached);
    }
    std::thread other([&] { ctx.run(); });
    ctx.run();
    other.join();
    CHECK(finished == 200);
    CHECK(max_in_flight.load() >= 1);
    CHECK(max_in_flight.load() <= 4);
    const auto s = taskmon::get_io_semaphore_stats();
    CHECK(s.in_use == 0);
    CHECK(s.available == 4);
    CHECK(s.waiting == 0);
}
