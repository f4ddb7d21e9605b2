// echo_server: a TCP echo server under a TaskMonitor (the "TCP server" cookbook, docs/cookbook_tcp_server.md).
//
//   acceptor   a supervised component (factory + policy): takes a permit of the global io_semaphore, accepts one
//              connection, and hands both to monitor.try_spawn_numbered(); restarted with backoff if accepting
//              fails, and escalated to main() when it keeps failing
//   conn-N     one spawned task per connection: echoes lines until the peer closes; listed in the stats while
//              it runs, gone when it ends (its start and end are debug lines: SPDLOG_LEVEL=debug shows them)
//   reporter   a supervised component that logs the server's figures every 10 seconds
//
// The io_semaphore's count is the connection limit: connection N+1 waits in the kernel's backlog until one ends.
// SIGINT / SIGTERM close the monitor: the accept loop and every connection are cancelled and waited for (at
// most shutdown_timeout), then the program exits 0 (1 if a task ignored the cancellation, 3 after an
// escalation, 2 for bad arguments or a port it can not bind).
//
// Usage: echo_server [PORT [MAX_CONNECTIONS]]
//   PORT             on 127.0.0.1; 0 (the default) picks a free port. Prints "listening on 127.0.0.1:PORT".
//   MAX_CONNECTIONS  connections served at once (default 64)
#include <taskmon/io_semaphore.hpp>
#include <taskmon/task_monitor.hpp>

#include <asio/buffer.hpp>
#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/post.hpp>
#include <asio/redirect_error.hpp>
#include <asio/signal_set.hpp>
#include <asio/steady_timer.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/write.hpp>
// g++ 12 at -O1 (the asan preset) reports a maybe-uninitialized inside Asio's own use_future.hpp (the
// promise_handler constructor); silenced for that header only.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <asio/use_future.hpp>
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif
#include <fmt/format.h>
#include <spdlog/cfg/env.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <atomic>
#include <charconv>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <future>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <vector>

using namespace std::chrono_literals;
using asio::ip::tcp;

namespace {

struct ServerFigures {
    std::atomic<std::uint64_t> accepted{0};
    std::atomic<std::uint64_t> open{0};  // connections being served now
    std::atomic<std::uint64_t> bytes_echoed{0};
};

/// Counts one open connection for as long as it lives (however its task ends).
class OpenConnection {
public:
    explicit OpenConnection(ServerFigures& figures) : figures_{figures} { ++figures_.open; }
    ~OpenConnection() { --figures_.open; }
    OpenConnection(const OpenConnection&) = delete;
    OpenConnection& operator=(const OpenConnection&) = delete;

private:
    ServerFigures& figures_;
};

/// One connection: echoes what it reads until the peer closes. Holds its connection permit until it ends.
/// Cancellation (close()) ends the pending read or write with operation_aborted, which ends the task.
asio::awaitable<void> serve(tcp::socket socket, [[maybe_unused]] taskmon::SemaphorePermit permit,
                            ServerFigures& figures) {
    const OpenConnection counted{figures};
    std::vector<char> data(1024);
    for (;;) {
        std::error_code ec;
        const std::size_t n =
            co_await socket.async_read_some(asio::buffer(data), asio::redirect_error(asio::use_awaitable, ec));
        if (ec == asio::error::eof) {
            co_return;  // the peer closed its side: a normal end, `completed`
        }
        if (ec) {
            throw std::system_error(ec, "read");  // reset by peer and the like: reported as a failure
        }
        co_await asio::async_write(socket, asio::buffer(data.data(), n), asio::use_awaitable);
        figures.bytes_echoed += n;
    }
}

/// The accept loop: one permit of the global io_semaphore per connection, taken before accepting, so excess
/// connections wait in the kernel's backlog rather than as accepted sockets nobody serves.
asio::awaitable<void> accept_loop(taskmon::TaskMonitor& monitor, tcp::acceptor& acceptor, ServerFigures& figures,
                                  spdlog::logger& log) {
    for (;;) {
        auto permit = co_await taskmon::io_semaphore();  // close() cancels this wait too
        auto socket = co_await acceptor.async_accept(asio::use_awaitable);
        ++figures.accepted;
        std::error_code ec;
        const auto peer = socket.remote_endpoint(ec);
        // The monitor names it "conn-<task_id>": names never repeat, also across restarts of this loop.
        const auto spawned = monitor.try_spawn_numbered("conn-", serve(std::move(socket), std::move(permit), figures));
        if (spawned.status == taskmon::SpawnStatus::monitor_closed) {
            co_return;  // the monitor is closing: the connection was dropped with its task; end
        }
        log.debug("Accepted {} from {}:{}", spawned.name, peer.address().to_string(), peer.port());
    }
}

/// Logs the server's figures every `interval`.
asio::awaitable<void> report(const taskmon::TaskMonitor& monitor, const ServerFigures& figures, spdlog::logger& log,
                             std::chrono::seconds interval) {
    asio::steady_timer timer{co_await asio::this_coro::executor};
    for (;;) {
        timer.expires_after(interval);
        co_await timer.async_wait(asio::use_awaitable);
        const auto semaphore = taskmon::get_io_semaphore_stats();
        // permits_in_use counts the accept loop's permit too: it takes one before it accepts.
        log.info("echo_server connections={} permits_in_use={} waiting={} accepted={} bytes_echoed={} components={}",
                 figures.open.load(), semaphore.in_use, semaphore.waiting, figures.accepted.load(),
                 figures.bytes_echoed.load(), monitor.get_component_stats().size());
    }
}

/// A non-negative decimal argument no larger than `max`; throws std::invalid_argument naming `what`.
std::size_t parse_number(std::string_view text, std::size_t max, const char* what) {
    std::size_t value = 0;
    const auto* end = text.data() + text.size();
    const auto [ptr, ec] = std::from_chars(text.data(), end, value);
    if (text.empty() || ec != std::errc{} || ptr != end || value > max) {
        throw std::invalid_argument(fmt::format("{} must be a number from 0 to {}, got '{}'", what, max, text));
    }
    return value;
}

}  // namespace

int main(int argc, char** argv) {
    std::uint16_t port = 0;
    std::size_t max_connections = 64;
    try {
        if (argc > 3) {
            throw std::invalid_argument("too many arguments");
        }
        if (argc > 1) {
            port = static_cast<std::uint16_t>(parse_number(argv[1], 65535, "PORT"));
        }
        if (argc > 2) {
            max_connections = parse_number(argv[2], taskmon::AsyncSemaphore::max_count(), "MAX_CONNECTIONS");
            if (max_connections == 0) {
                throw std::invalid_argument("MAX_CONNECTIONS must be at least 1");
            }
        }
    } catch (const std::invalid_argument& e) {
        std::fprintf(stderr, "echo_server: %s\nusage: echo_server [PORT [MAX_CONNECTIONS]]\n", e.what());
        return 2;
    }

    spdlog::cfg::load_env_levels();  // SPDLOG_LEVEL=debug shows every connection's start and end
    auto log = spdlog::stdout_logger_mt("echo_server");
    taskmon::set_io_semaphore_count(max_connections);

    asio::io_context io;
    // Bound here, not in the accept loop: the port is known (and a bind error reported) before anything starts,
    // and a restarted accept loop keeps listening on the same socket.
    tcp::acceptor acceptor{io};
    try {
        const tcp::endpoint endpoint{asio::ip::make_address("127.0.0.1"), port};
        acceptor.open(endpoint.protocol());
        acceptor.set_option(tcp::acceptor::reuse_address(true));
        acceptor.bind(endpoint);
        acceptor.listen();
    } catch (const std::system_error& e) {
        std::fprintf(stderr, "echo_server: cannot listen on 127.0.0.1:%u: %s\n", static_cast<unsigned>(port), e.what());
        return 2;
    }
    std::printf("listening on 127.0.0.1:%u\n", static_cast<unsigned>(acceptor.local_endpoint().port()));
    std::fflush(stdout);

    ServerFigures figures;
    // The monitor's policy (the reporter's, and the shutdown_timeout close() gives each connection).
    taskmon::TaskMonitor monitor{io.get_executor(),
                                 taskmon::RestartPolicy{.max_restart_attempts = 10,
                                                        .restart_window = 1min,
                                                        .base_backoff = 100ms,
                                                        .max_backoff = 10s,
                                                        .shutdown_timeout = 2s},
                                 log};
    std::atomic<std::size_t> unresponsive{0};
    auto on_closed = monitor.subscribe([&unresponsive](const taskmon::MonitorEvent& e) {
        if (e.kind == taskmon::MonitorEventKind::closed) {
            unresponsive = e.unresponsive;
        }
    });

    // Accepting may fail (EMFILE: out of file descriptors): retry with backoff; five failures within a minute
    // escalate to main().
    monitor.supervise(
        "acceptor", [&] { return accept_loop(monitor, acceptor, figures, *log); },
        taskmon::RestartPolicy{.max_restart_attempts = 5,
                               .restart_window = 1min,
                               .base_backoff = 100ms,
                               .max_backoff = 1s,
                               .shutdown_timeout = 2s,
                               .give_up_mode = taskmon::GiveUpMode::escalate});
    monitor.supervise("reporter", [&] { return report(monitor, figures, *log, 10s); });

    asio::signal_set signals{io, SIGINT, SIGTERM};
    signals.async_wait([&](std::error_code ec, int signal) {
        if (ec) {
            return;  // cancelled: main() is closing the monitor itself
        }
        log->info("Received {}; closing", signal == SIGINT ? "SIGINT" : "SIGTERM");
        monitor.async_close([] {});  // main()'s escalation wait then ends without one
    });

    // The next escalation, or nothing once a close finished. A callback makes both ends a value; with use_future
    // the normal end (operation_aborted) would arrive as an exception. Taken before the threads start.
    std::promise<std::optional<taskmon::MonitorEvent>> escalation;
    auto escalated = escalation.get_future();
    monitor.async_wait_escalation([&escalation](std::error_code ec, taskmon::MonitorEvent e) {
        escalation.set_value(ec ? std::nullopt : std::optional{std::move(e)});
    });
    std::vector<std::thread> threads;  // see docs/threads.md: components run in parallel, each on its strand
    for (int i = 0; i < 2; ++i) {
        threads.emplace_back([&io] { io.run(); });
    }

    int status = 0;
    if (const auto e = escalated.get()) {  // main() does not run the executor: it may block
        log->critical("Shutting down: component {} gave up: {}", e->component, e->reason);
        status = 3;
        monitor.async_close(asio::use_future).get();
    }
    // Both paths: the monitor is closed. What remains pending is the signal wait (cancel it) and a task that
    // outlived its shutdown_timeout (do not wait for it).
    asio::post(io, [&signals] { signals.cancel(); });
    if (unresponsive > 0) {
        log->error("echo_server: {} task(s) ignored cancellation; exiting without them", unresponsive.load());
        io.stop();
        status = status == 0 ? 1 : status;
    }
    for (auto& t : threads) {
        t.join();
    }
    if (status == 0) {
        log->info("echo_server: closed cleanly");
    }
    return status;
}
