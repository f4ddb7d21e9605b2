// Tests for the worker-pool cookbook (docs/cookbook_worker_pool.md): a bounded job queue on Asio's channel served
// by a supervised group of workers. The recipe below is the cookbook's fragment and examples/worker_pool.cpp's
// code, line for line (CTest's cookbook_worker_pool.same_recipe compares the three). Virtual time throughout.
#include <taskmon/component_group.hpp>
#include <taskmon/task_monitor.hpp>

#include "monitor_harness.hpp"

#include <asio/co_spawn.hpp>
#include <asio/experimental/as_tuple.hpp>
#include <asio/experimental/channel.hpp>
#include <asio/io_context.hpp>
#include <asio/use_awaitable.hpp>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <exception>
#include <functional>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

// worker pool recipe: begin
struct Job {
    std::uint64_t id = 0;  // default-constructible: the channel hands a Job{} along with every error
    std::string text;
};

// One thread, or every user on one strand; io.run() on several threads needs concurrent_channel (see "Threads").
using JobChannel = asio::experimental::channel<void(asio::error_code, Job)>;

/// What the workers share. Declared before the monitor: workers refer to it until close() has ended them.
struct WorkPool {
    JobChannel jobs;                                                 // its buffer holds jobs.capacity() jobs
    std::function<asio::awaitable<void>(const Job&)> handle;         // runs one job; throws if the job fails
    std::function<void(const Job&, std::exception_ptr)> unfinished;  // an accepted job not done, and why
};

/// Hands `job` to the pool, waiting while the buffer is full. Throws, and the job was not accepted:
/// channel_cancelled if the caller is cancelled while it waits, channel_closed once shut_pool() ran.
inline asio::awaitable<void> submit(WorkPool& pool, Job job) {
    auto [ec] = co_await pool.jobs.async_send(asio::error_code{}, std::move(job),
                                              asio::experimental::as_tuple(asio::use_awaitable));
    if (ec == asio::experimental::error::channel_cancelled && !pool.jobs.is_open()) {
        ec = asio::experimental::error::channel_closed;  // shut_pool() cancelled this wait
    }
    if (ec) {
        throw asio::system_error(ec);  // channel_closed, or channel_cancelled: a cancellation
    }
}

/// One worker: takes jobs until it is cancelled, or until the pool is shut and empty.
inline asio::awaitable<void> work_loop(WorkPool& pool) {
    for (;;) {
        auto [ec, job] = co_await pool.jobs.async_receive(asio::experimental::as_tuple(asio::use_awaitable));
        if (ec == asio::experimental::error::channel_closed) {
            co_return;  // `completed`: a transient worker is not restarted
        }
        if (ec) {
            throw asio::system_error(ec);  // channel_cancelled: the monitor takes it for a cancellation
        }
        std::exception_ptr failure;
        try {
            co_await pool.handle(job);
        } catch (...) {
            failure = std::current_exception();  // handled below: no co_await in a catch block
        }
        if (failure) {
            pool.unfinished(job, failure);    // reported, not retried: it may have half happened
            std::rethrow_exception(failure);  // `failed` and restarted, or `stopped` when close() cut it short
        }
    }
}

/// `count` workers in the group "workers" (one_for_one: a failed worker is restarted alone, the others keep
/// their jobs). The group's max_restarts per restart_window is the pool's restart budget.
template <typename Monitor>
void supervise_workers(Monitor& monitor, WorkPool& pool, int count, const taskmon::RestartPolicy& worker,
                       const taskmon::GroupPolicy& group) {
    std::vector<taskmon::GroupMember> members;
    for (int i = 1; i <= count; ++i) {
        members.push_back(
            {.name = "worker-" + std::to_string(i), .factory = [&pool] { return work_loop(pool); }, .policy = worker});
    }
    monitor.supervise_group("workers", std::move(members), group);
}

/// After the monitor's close(): reports the jobs no worker took, fails the sends still waiting, and makes every
/// later send fail at once. In this order: Asio 1.22's close() leaves waiting sends parked and the buffer unread.
inline void shut_pool(WorkPool& pool) {
    pool.jobs.cancel();
    while (pool.jobs.try_receive([&pool](asio::error_code, Job job) { pool.unfinished(job, nullptr); })) {
    }
    pool.jobs.close();
}
// worker pool recipe: end

using namespace std::chrono_literals;
using taskmon::ComponentState;
using taskmon::MonitorEventKind;
using taskmon::RestartPolicy;
using taskmon_test::Duration;
using taskmon_test::Harness;
using taskmon_test::Monitor;
using taskmon_test::Recorder;
using taskmon_test::sleep_for;

namespace {

/// Virtual time since the clock's epoch.
Duration now() { return taskmon::testing::ManualClock::now().time_since_epoch(); }

/// What a report says: the exception's what(), "cancelled" for operation_aborted, "queued" for the null a job still
/// in the buffer is reported with.
std::string describe(const std::exception_ptr& why) {
    if (!why) {
        return "queued";
    }
    try {
        std::rethrow_exception(why);
    } catch (const asio::system_error& e) {
        return e.code() == asio::error::operation_aborted ? "cancelled" : e.what();
    } catch (const std::exception& e) {
        return e.what();
    }
}

/// A pool in virtual time with what happened to each job: a job takes `job_time`; one whose text is "poison"
/// throws once it has run. Everything a worker calls is recorded.
struct PoolRun {
    Harness h;
    Recorder recorder;
    Duration job_time;
    std::map<std::uint64_t, int> processed;           // id -> times run to the end
    std::map<std::uint64_t, Duration> taken_at;       // id -> when a worker started it
    std::map<std::uint64_t, std::string> unfinished;  // id -> describe(why)
    int reports = 0;                                  // calls of `unfinished`, to catch a job reported twice
    WorkPool pool;
    Monitor monitor;
    taskmon::EventSubscription subscription;

    PoolRun(std::size_t capacity, Duration job)
        : job_time{job},
          pool{JobChannel{h.io, capacity},
               [this](const Job& j) -> asio::awaitable<void> {
                   taken_at[j.id] = now();
                   co_await sleep_for(job_time);
                   if (j.text == "poison") {
                       throw std::runtime_error("corrupt job " + std::to_string(j.id));
                   }
                   ++processed[j.id];
               },
               [this](const Job& j, std::exception_ptr why) {
                   ++reports;
                   unfinished[j.id] = describe(why);
               }},
          monitor{h.io.get_executor(), RestartPolicy{.shutdown_timeout = 5s}, h.logger},
          subscription{monitor.subscribe(recorder.listener())} {}

    void start_workers(int count) {
        supervise_workers(
            monitor, pool, count,
            RestartPolicy{.max_restart_attempts = taskmon::unlimited_restart_attempts,
                          .base_backoff = 1s,
                          .shutdown_timeout = 5s},
            taskmon::GroupPolicy{
                .strategy = taskmon::RestartStrategy::one_for_one, .max_restarts = 10, .restart_window = 1min});
    }

    /// Closes the monitor, then the pool; returns how long the monitor's close took.
    Duration close() {
        const auto took = h.close(monitor);
        shut_pool(pool);
        return took;
    }

    [[nodiscard]] std::size_t unresponsive() const {
        const auto closed = recorder.of(MonitorEventKind::closed);
        REQUIRE(closed.size() == 1);
        return closed.front().unresponsive;
    }

    /// Components that ended, by kind: "stopped worker-1", "failed worker-2"...
    [[nodiscard]] std::vector<std::string> exits() const {
        std::vector<std::string> out;
        for (const auto& e : recorder.events) {
            if (e.kind == MonitorEventKind::stopped || e.kind == MonitorEventKind::failed ||
                e.kind == MonitorEventKind::cancelled_unexpectedly || e.kind == MonitorEventKind::completed) {
                out.push_back(std::string{to_string(e.kind)} + " " + e.component);
            }
        }
        return out;
    }
};

/// Submits `jobs` in order; `accepted` gets each id, with the time, once the pool took it.
asio::awaitable<void> produce(WorkPool& pool, std::vector<Job> jobs,
                              std::vector<std::pair<std::uint64_t, Duration>>& accepted) {
    for (auto& job : jobs) {
        const auto id = job.id;
        co_await submit(pool, std::move(job));
        accepted.emplace_back(id, now());
    }
}

std::vector<Job> numbered(std::uint64_t first, std::uint64_t last, std::uint64_t poison = 0) {
    std::vector<Job> out;
    for (auto id = first; id <= last; ++id) {
        out.push_back({.id = id, .text = id == poison ? "poison" : "job"});
    }
    return out;
}

std::vector<std::uint64_t> ids_of(const std::vector<std::pair<std::uint64_t, Duration>>& accepted) {
    std::vector<std::uint64_t> out;
    for (const auto& [id, when] : accepted) {
        out.push_back(id);
    }
    return out;
}

}  // namespace

TEST_CASE("worker pool: every accepted job is processed exactly once or reported, across a worker's failure",
          "[cookbook][worker_pool]") {
    PoolRun run{2, 1s};
    run.start_workers(2);
    std::vector<std::pair<std::uint64_t, Duration>> accepted;
    run.monitor.spawn("producer", produce(run.pool, numbered(1, 10, 4), accepted));
    // 10 jobs of 1 s on two workers, one of them down for its 1 s backoff: about 6 s.
    REQUIRE(run.h.runner.run_until([&] { return run.processed.size() + run.unfinished.size() == 10; }, 1min));

    CHECK(ids_of(accepted) == std::vector<std::uint64_t>{1, 2, 3, 4, 5, 6, 7, 8, 9, 10});
    for (std::uint64_t id = 1; id <= 10; ++id) {
        INFO("job " << id);
        CHECK(run.processed.count(id) == (id == 4 ? 0U : 1U));
        if (id != 4) {
            CHECK(run.processed.at(id) == 1);  // exactly once: a restart re-runs nothing
        }
    }
    CHECK(run.unfinished == std::map<std::uint64_t, std::string>{{4, "corrupt job 4"}});
    CHECK(run.reports == 1);

    // The worker that ran job 4 failed once and was restarted alone; its sibling kept its instance.
    const auto failed = run.recorder.of(MonitorEventKind::failed);
    REQUIRE(failed.size() == 1);
    CHECK(failed.front().reason == "std::runtime_error: corrupt job 4");
    CHECK(failed.front().group == "workers");
    const auto stats = run.monitor.get_component_stats();
    const auto& sick = stats.at(failed.front().component);
    const auto& sibling = stats.at(failed.front().component == "worker-1" ? "worker-2" : "worker-1");
    CHECK(sick.restart_count == 1);
    CHECK(sick.state == ComponentState::running);
    CHECK(sibling.restart_count == 0);
    CHECK(sibling.generation == 1);

    CHECK(run.close() == Duration::zero());  // both workers wait in async_receive: they end at once
    CHECK(run.unresponsive() == 0);
    CHECK(run.reports == 1);  // nothing was left in the buffer
}

TEST_CASE("worker pool: a producer waits while the buffer is full and resumes when a worker takes a job",
          "[cookbook][worker_pool]") {
    PoolRun run{2, 10s};
    run.start_workers(1);
    std::vector<std::pair<std::uint64_t, Duration>> accepted;
    run.monitor.spawn("producer", produce(run.pool, numbered(1, 5), accepted));

    // Job 1 goes straight to the waiting worker, jobs 2 and 3 fill the buffer; job 4 waits for room.
    run.h.runner.run_for(5s);
    CHECK(ids_of(accepted) == std::vector<std::uint64_t>{1, 2, 3});
    CHECK(run.taken_at == std::map<std::uint64_t, Duration>{{1, 0s}});
    CHECK(run.monitor.get_component_stats().count("producer") == 1);  // still running: held back in submit()

    REQUIRE(run.h.runner.run_until([&] { return run.processed.size() == 5; }, 1min));
    // Each wait ends when the worker takes a job out of the buffer: job 4 at job 2's start, job 5 at job 3's.
    CHECK(accepted == std::vector<std::pair<std::uint64_t, Duration>>{{1, 0s}, {2, 0s}, {3, 0s}, {4, 10s}, {5, 20s}});
    CHECK(run.taken_at == std::map<std::uint64_t, Duration>{{1, 0s}, {2, 10s}, {3, 20s}, {4, 30s}, {5, 40s}});

    CHECK(run.close() == Duration::zero());
    CHECK(run.unresponsive() == 0);
    CHECK(run.unfinished.empty());
}

TEST_CASE("worker pool: close() ends the workers waiting in async_receive and the producers waiting in async_send",
          "[cookbook][worker_pool]") {
    SECTION("an idle pool: every worker waits for a job") {
        PoolRun run{4, 1s};
        run.start_workers(3);
        run.h.runner.run_for(10s);
        REQUIRE(run.monitor.get_group_stats().at("workers").members.size() == 3);

        CHECK(run.close() == Duration::zero());
        CHECK(run.unresponsive() == 0);
        // Stopped as a cancellation, not an error: the monitor takes the channel's channel_cancelled for one.
        CHECK(run.exits() == std::vector<std::string>{"stopped worker-3", "stopped worker-2", "stopped worker-1"});
        for (const auto& e : run.recorder.of(MonitorEventKind::stopped)) {
            CHECK(e.reason.empty());
        }
        CHECK(run.h.lines_with("stopped with an error").empty());
    }
    SECTION("a saturated pool: workers busy, buffer full, two producers waiting for room") {
        PoolRun run{2, 1h};
        run.start_workers(2);
        std::vector<std::pair<std::uint64_t, Duration>> accepted;
        run.monitor.spawn("producer-a", produce(run.pool, numbered(1, 3), accepted));
        run.monitor.spawn("producer-b", produce(run.pool, numbered(11, 13), accepted));
        run.h.runner.run_for(1min);
        // Two jobs running, two in the buffer, one job of each producer waiting in submit().
        REQUIRE(accepted.size() == 4);
        REQUIRE(run.taken_at.size() == 2);

        CHECK(run.close() == Duration::zero());
        CHECK(run.unresponsive() == 0);
        CHECK(run.h.lines_with("stopped with an error").empty());
        const auto exits = run.exits();
        CHECK(exits.size() == 4);
        for (const char* name : {"stopped worker-1", "stopped worker-2", "stopped producer-a", "stopped producer-b"}) {
            CHECK(std::count(exits.begin(), exits.end(), name) == 1);
        }
        // Every accepted job is accounted for, once: the two cut short by close(), the two left in the buffer.
        // The jobs the producers were still offering were never accepted, and never reported.
        std::map<std::uint64_t, std::string> expected;
        for (const auto& [id, when] : accepted) {
            expected[id] = run.taken_at.count(id) == 1 ? "cancelled" : "queued";
        }
        CHECK(run.unfinished == expected);
        CHECK(run.reports == 4);
        CHECK(run.processed.empty());
    }
}

TEST_CASE("worker pool: shut_pool() fails a send waiting outside the monitor, and every later one at once",
          "[cookbook][worker_pool]") {
    PoolRun run{1, 1h};
    run.start_workers(1);
    std::vector<std::pair<std::uint64_t, Duration>> accepted;
    run.monitor.spawn("producer", produce(run.pool, numbered(1, 2), accepted));
    run.h.runner.run_for(1min);
    REQUIRE(ids_of(accepted) == std::vector<std::uint64_t>{1, 2});  // job 1 running, job 2 fills the buffer
    std::optional<std::string> outside;  // a producer the monitor does not know: close() does not cancel it
    asio::co_spawn(run.h.io, submit(run.pool, Job{.id = 99, .text = "job"}),
                   [&](std::exception_ptr e) { outside = e ? describe(e) : "accepted"; });
    run.h.runner.run_for(1min);
    REQUIRE_FALSE(outside.has_value());  // waiting for room

    run.h.close(run.monitor);
    run.h.runner.run_for(1s);
    CHECK_FALSE(outside.has_value());  // the monitor's close() does not reach it
    shut_pool(run.pool);
    run.h.runner.run_for(1s);
    CHECK(outside == asio::system_error(asio::experimental::error::channel_closed).what());  // not "accepted"
    CHECK(run.unfinished == std::map<std::uint64_t, std::string>{{1, "cancelled"}, {2, "queued"}});

    std::optional<std::string> late;
    asio::co_spawn(run.h.io, submit(run.pool, Job{.id = 100, .text = "job"}),
                   [&](std::exception_ptr e) { late = e ? describe(e) : "accepted"; });
    run.h.runner.run_for(1s);
    CHECK(late == asio::system_error(asio::experimental::error::channel_closed).what());
    CHECK(run.unresponsive() == 0);
}

TEST_CASE("worker pool: a pool whose jobs keep failing gives up as a whole and is escalated to its owner",
          "[cookbook][worker_pool]") {
    PoolRun run{2, 1s};
    // One restart per minute for the pool: the second failure gives the group up.
    supervise_workers(
        run.monitor, run.pool, 1,
        RestartPolicy{
            .max_restart_attempts = taskmon::unlimited_restart_attempts, .base_backoff = 1s, .shutdown_timeout = 5s},
        taskmon::GroupPolicy{
            .strategy = taskmon::RestartStrategy::one_for_one, .max_restarts = 1, .restart_window = 1min});
    std::optional<taskmon::MonitorEvent> escalated;
    run.monitor.async_wait_escalation([&](std::error_code ec, taskmon::MonitorEvent e) {
        if (!ec) {
            escalated = std::move(e);
        }
    });
    std::vector<std::pair<std::uint64_t, Duration>> accepted;
    std::vector<Job> poison;
    for (std::uint64_t id = 1; id <= 6; ++id) {
        poison.push_back({.id = id, .text = "poison"});
    }
    run.monitor.spawn("producer", produce(run.pool, std::move(poison), accepted));
    REQUIRE(run.h.runner.run_until([&] { return escalated.has_value(); }, 1h));

    // Job 1 fails the worker at 1 s, the restarted worker takes job 2 at 2 s and fails at 3 s: one too many.
    CHECK(escalated->group == "workers");
    CHECK(escalated->component.empty());
    CHECK(run.monitor.get_group_stats().at("workers").state == taskmon::GroupState::gave_up);
    CHECK(run.monitor.get_component_stats().at("worker-1").restart_count == 1);
    CHECK(ids_of(accepted) == std::vector<std::uint64_t>{1, 2, 3, 4});  // job 5 waits: nobody takes jobs now

    CHECK(run.close() == Duration::zero());
    CHECK(run.unresponsive() == 0);
    CHECK(run.unfinished == std::map<std::uint64_t, std::string>{
                                {1, "corrupt job 1"}, {2, "corrupt job 2"}, {3, "queued"}, {4, "queued"}});
    CHECK(run.reports == 4);
}
