// worker_pool: a bounded job queue served by a supervised group of workers (the worker-pool cookbook,
// docs/cookbook_worker_pool.md, whose recipe is the code between the "worker pool recipe" lines below).
//
//   workers    the group "workers" (one_for_one) of three workers taking jobs from an asio::experimental::channel
//              with room for four; a job takes 40 to 160 ms. Every ninth job is corrupt and throws: the job is
//              reported, its worker fails and is restarted alone after 200 ms, the other two carry on
//   producer   a spawned task offering 36 jobs as fast as it can: each submit() waits while the buffer is full,
//              and the waits are printed (the back-pressure)
//
// After 3 seconds, or on SIGINT / SIGTERM, the monitor is closed: the workers waiting in async_receive (and the
// producer, if it still waits in async_send) end at once, a job cut short is reported; then the pool is shut and
// the jobs still in its buffer are reported. Exits 0 when every accepted job was processed exactly once or
// reported, 1 when one was lost or a component ignored the close, 3 if the pool gave up (more than 10 worker
// restarts in 10 seconds).
#include <taskmon/component_group.hpp>
#include <taskmon/task_monitor.hpp>

#include <asio/experimental/as_tuple.hpp>
#include <asio/experimental/channel.hpp>
#include <asio/io_context.hpp>
#include <asio/signal_set.hpp>
#include <asio/steady_timer.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>
#include <fmt/format.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <csignal>
#include <cstdint>
#include <exception>
#include <functional>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

using namespace std::chrono_literals;

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

namespace {

constexpr std::uint64_t total_jobs = 36;
constexpr std::uint64_t corrupt_every = 9;

/// What became of each job, for the check at the end (everything runs on the io_context's one thread).
struct Ledger {
    std::vector<std::uint64_t> accepted;     // in the order submit() returned
    std::map<std::uint64_t, int> processed;  // id -> times a worker ran it to the end
    std::map<std::uint64_t, int> reported;   // id -> times it was reported unfinished
};

/// Why an accepted job was not processed, from what the pool reported with it.
std::string describe(const std::exception_ptr& why) {
    if (!why) {
        return "still queued at the shutdown";
    }
    try {
        std::rethrow_exception(why);
    } catch (const std::system_error& e) {
        return e.code() == asio::error::operation_aborted ? "cut short by the close" : e.what();
    } catch (const std::exception& e) {
        return e.what();
    }
}

/// A job's work: 40 to 160 ms of "I/O"; a corrupt one throws at the end of it.
asio::awaitable<void> run_job(const Job& job, Ledger& ledger, spdlog::logger& log) {
    asio::steady_timer transfer{co_await asio::this_coro::executor,
                                std::chrono::milliseconds{40 + (job.id * 37) % 121}};
    co_await transfer.async_wait(asio::use_awaitable);
    if (job.text == "corrupt") {
        throw std::runtime_error(fmt::format("corrupt input in job {}", job.id));
    }
    ++ledger.processed[job.id];
    log.info("job {} done", job.id);
}

/// The producer: offers every job in turn; a submit() that had to wait for room in the buffer is printed.
asio::awaitable<void> produce(WorkPool& pool, Ledger& ledger, spdlog::logger& log) {
    for (std::uint64_t id = 1; id <= total_jobs; ++id) {
        const auto offered = std::chrono::steady_clock::now();
        // Named, not a temporary inside the co_await expression: g++ 12 destroys such a temporary wrongly (a free of
        // an address its string never allocated).
        Job job{.id = id, .text = id % corrupt_every == 0 ? "corrupt" : "ok"};
        co_await submit(pool, std::move(job));
        ledger.accepted.push_back(id);
        const auto waited =
            std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - offered);
        if (waited >= 1ms) {
            log.info("producer: job {} accepted after waiting {} ms for room in the buffer", id, waited.count());
        }
    }
    log.info("producer: all {} jobs accepted", total_jobs);
}

/// Every accepted job processed exactly once or reported exactly once, and nothing else.
bool accounted(const Ledger& ledger, spdlog::logger& log) {
    bool ok = true;
    for (const auto id : ledger.accepted) {
        const auto processed = ledger.processed.count(id) == 1 ? ledger.processed.at(id) : 0;
        const auto reported = ledger.reported.count(id) == 1 ? ledger.reported.at(id) : 0;
        if (processed + reported != 1) {
            log.error("job {} was processed {} and reported {} time(s)", id, processed, reported);
            ok = false;
        }
    }
    if (ledger.processed.size() + ledger.reported.size() != ledger.accepted.size()) {
        log.error("a job that was never accepted was processed or reported");
        ok = false;
    }
    return ok;
}

}  // namespace

int main() {
    auto log = spdlog::stdout_logger_mt("worker_pool");
    log->set_pattern("%H:%M:%S.%e %-7l %v");

    // One thread runs everything: the plain channel needs no lock (see the cookbook's "Threads").
    asio::io_context io;
    Ledger ledger;
    // The pool before the monitor: the workers refer to it until close() has ended them.
    WorkPool pool{JobChannel{io, 4}, [&](const Job& job) { return run_job(job, ledger, *log); },
                  [&](const Job& job, std::exception_ptr why) {
                      ++ledger.reported[job.id];
                      log->warn("job {} not processed: {}", job.id, describe(why));
                  }};
    taskmon::TaskMonitor monitor{io.get_executor(),
                                 taskmon::RestartPolicy{.max_restart_attempts = 5,
                                                        .restart_window = 1min,
                                                        .base_backoff = 200ms,
                                                        .max_backoff = 2s,
                                                        .shutdown_timeout = 2s},
                                 log};
    std::size_t unresponsive = 0;
    auto on_closed = monitor.subscribe([&unresponsive](const taskmon::MonitorEvent& e) {
        if (e.kind == taskmon::MonitorEventKind::closed) {
            unresponsive = e.unresponsive;
        }
    });

    // A worker's own limit is lifted: the group's budget, 10 restarts in 10 s for the whole pool, decides.
    supervise_workers(
        monitor, pool, 3,
        taskmon::RestartPolicy{.max_restart_attempts = taskmon::unlimited_restart_attempts,
                               .base_backoff = 200ms,
                               .max_backoff = 2s,
                               .shutdown_timeout = 2s},
        taskmon::GroupPolicy{
            .strategy = taskmon::RestartStrategy::one_for_one, .max_restarts = 10, .restart_window = 10s});
    monitor.spawn("producer", produce(pool, ledger, *log));

    // One way out, taken after 3 s, on SIGINT / SIGTERM, or when the pool gives up: close the monitor, then shut
    // the pool, and cancel what else keeps io.run() busy.
    asio::signal_set signals{io, SIGINT, SIGTERM};
    asio::steady_timer run_time{io, 3s};
    int status = 0;
    bool closing = false;
    const auto shut_down = [&](std::string_view why) {
        if (std::exchange(closing, true)) {
            return;
        }
        log->info("{}: closing", why);
        signals.cancel();
        run_time.cancel();
        monitor.async_close([&] {
            shut_pool(pool);  // after the close: no worker is left to take what the buffer holds
            if (unresponsive > 0) {
                io.stop();  // a component ignored the cancellation: do not wait for it
            }
        });
    };
    signals.async_wait([&](std::error_code ec, int signal) {
        if (!ec) {
            shut_down(signal == SIGINT ? "SIGINT" : "SIGTERM");
        }
    });
    run_time.async_wait([&](std::error_code ec) {
        if (!ec) {
            shut_down("time is up");
        }
    });
    monitor.async_wait_escalation([&](std::error_code ec, const taskmon::MonitorEvent& e) {
        if (!ec) {  // else the close ended the wait
            log->critical("the worker pool gave up: {}", e.reason);
            status = 3;
            shut_down("escalation");
        }
    });
    io.run();

    const bool ok = accounted(ledger, *log);
    int restarts = 0;
    for (const auto& [name, stats] : monitor.get_component_stats()) {
        if (stats.group == "workers") {
            restarts += stats.restart_count;
        }
    }
    log->info("worker_pool: accepted={} processed={} reported={} worker_restarts={} unresponsive={}",
              ledger.accepted.size(), ledger.processed.size(), ledger.reported.size(), restarts, unresponsive);
    if (status == 0 && (!ok || unresponsive > 0)) {
        status = 1;
    }
    if (status == 0) {
        log->info("worker_pool: every accepted job processed once or reported; closed cleanly");
    }
    return status;
}
