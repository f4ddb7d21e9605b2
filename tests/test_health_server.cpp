// Tests for taskmon/health_server.hpp over loopback: curl (spawned with posix_spawn) and raw sockets as clients,
// against a server on an io_context run by a background thread. Checks status codes and bodies, the limits
// (size, read timeout, connection count), many concurrent clients, and that abusive clients never stall the
// io_context (a timer on it keeps ticking and a well-behaved request is answered meanwhile). The shell test
// tests/scripts/health_server_curl.sh covers the metric values and the clean shutdown of a whole program.
#include <taskmon/health_server.hpp>
#include <taskmon/monitor_metrics.hpp>
#include <taskmon/task_monitor.hpp>

#include "taskmon_catch.hpp"

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/executor_work_guard.hpp>
#include <asio/io_context.hpp>
#include <asio/steady_timer.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>
#include <spdlog/sinks/null_sink.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <future>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

extern char** environ;

using namespace std::chrono_literals;

namespace {

std::shared_ptr<spdlog::logger> quiet_logger() {
    return std::make_shared<spdlog::logger>("health-server-test", std::make_shared<spdlog::sinks::null_sink_mt>());
}

asio::awaitable<void> runs_forever() {
    asio::steady_timer timer{co_await asio::this_coro::executor};
    for (;;) {
        timer.expires_after(1h);
        co_await timer.async_wait(asio::use_awaitable);
    }
}

/// A running curl: spawned at once, collected by wait().
class Curl {
public:
    /// With `stdin_data`, curl's stdin is a pipe that delivers it and then stays open, silent, until
    /// close_stdin() or wait() (with telnet://, a client that stalls in the middle of its request).
    explicit Curl(std::vector<std::string> args, std::optional<std::string> stdin_data = std::nullopt) {
        args.insert(args.begin(), {"curl", "-sS", "--max-time", "20", "-o", "-", "-w", "\n%{http_code}"});
        int fds[2];
        if (pipe(fds) != 0) throw std::runtime_error("pipe failed");
        posix_spawn_file_actions_t actions;
        posix_spawn_file_actions_init(&actions);
        posix_spawn_file_actions_adddup2(&actions, fds[1], 1);
        posix_spawn_file_actions_addclose(&actions, fds[0]);
        int in[2] = {-1, -1};
        if (stdin_data) {
            if (pipe(in) != 0) throw std::runtime_error("pipe failed");
            posix_spawn_file_actions_adddup2(&actions, in[0], 0);
            posix_spawn_file_actions_addclose(&actions, in[1]);
            stdin_ = in[1];
        }
        std::vector<char*> argv;
        for (auto& a : args) argv.push_back(a.data());
        argv.push_back(nullptr);
        const int rc = posix_spawnp(&pid_, "curl", &actions, nullptr, argv.data(), environ);
        posix_spawn_file_actions_destroy(&actions);
        ::close(fds[1]);
        if (in[0] >= 0) ::close(in[0]);
        if (stdin_data && rc == 0) {
            (void)::write(stdin_, stdin_data->data(), stdin_data->size());
        }
        if (rc != 0) {
            ::close(fds[0]);
            throw std::runtime_error(std::string("cannot run curl (Debian: curl): ") + std::strerror(rc));
        }
        fd_ = fds[0];
    }
    Curl(const Curl&) = delete;
    Curl& operator=(const Curl&) = delete;
    ~Curl() {
        if (fd_ >= 0) wait();
    }

    struct Result {
        int exit_code = -1;  ///< curl's: 0 ok, 7 cannot connect, 52 empty reply, 56 receive failure, 28 timeout
        int status = 0;      ///< HTTP status, 0 when none was received
        std::string body;
    };

    void close_stdin() {
        if (stdin_ >= 0) ::close(stdin_);
        stdin_ = -1;
    }

    Result wait() {
        close_stdin();
        std::string out;
        char buf[4096];
        for (;;) {
            const auto n = ::read(fd_, buf, sizeof buf);
            if (n > 0) {
                out.append(buf, static_cast<std::size_t>(n));
            } else if (n == 0 || errno != EINTR) {
                break;
            }
        }
        ::close(fd_);
        fd_ = -1;
        int wstatus = 0;
        waitpid(pid_, &wstatus, 0);
        Result r;
        r.exit_code = WIFEXITED(wstatus) ? WEXITSTATUS(wstatus) : -1;
        const auto nl = out.rfind('\n');
        r.status = nl == std::string::npos ? 0 : std::atoi(out.c_str() + nl + 1);
        r.body = nl == std::string::npos ? out : out.substr(0, nl);
        return r;
    }

private:
    pid_t pid_ = 0;
    int fd_ = -1;
    int stdin_ = -1;
};

Curl::Result curl(std::vector<std::string> args) { return Curl{std::move(args)}.wait(); }

/// A raw loopback TCP client for what curl will not send (garbage, a request that never completes).
class RawClient {
public:
    explicit RawClient(std::uint16_t port) : fd_{::socket(AF_INET, SOCK_STREAM, 0)} {
        sockaddr_in addr{};
        addr.sin_family = AF_INET;
        addr.sin_port = htons(port);
        addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        if (::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
            throw std::runtime_error(std::string("connect: ") + std::strerror(errno));
        }
    }
    RawClient(const RawClient&) = delete;
    RawClient& operator=(const RawClient&) = delete;
    ~RawClient() { ::close(fd_); }

    void send(const std::string& data) const { (void)::send(fd_, data.data(), data.size(), MSG_NOSIGNAL); }

    /// Everything received until the server closes the connection or `timeout` passes; `closed` tells which.
    struct Received {
        std::string data;
        bool closed = false;
    };
    Received receive_all(std::chrono::milliseconds timeout) const {
        Received r;
        const auto deadline = std::chrono::steady_clock::now() + timeout;
        for (;;) {
            const auto left =
                std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
            if (left <= 0ms) return r;
            pollfd p{fd_, POLLIN, 0};
            if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) return r;
            char buf[4096];
            const auto n = ::recv(fd_, buf, sizeof buf, 0);
            if (n <= 0) {
                r.closed = true;
                return r;
            }
            r.data.append(buf, static_cast<std::size_t>(n));
        }
    }

private:
    int fd_;
};

/// An io_context on a background thread with a monitor, its metrics, a heartbeat timer, and a server.
struct Fixture {
    asio::io_context io;
    std::shared_ptr<spdlog::logger> logger = quiet_logger();
    taskmon::TaskMonitor monitor{io.get_executor(), {}, logger};
    taskmon::MonitorMetrics metrics{monitor};
    std::atomic<int> ticks{0};
    bool heartbeat_stopped = false;  // used on the io thread only
    asio::steady_timer heartbeat{io};
    std::unique_ptr<taskmon::HealthServer> server;
    std::thread thread;

    explicit Fixture(taskmon::HealthServerSettings settings = {}) {
        settings.port = 0;
        monitor.supervise("db", [] { return runs_forever(); });
        server = std::make_unique<taskmon::HealthServer>(
            io.get_executor(),
            taskmon::HealthEndpoints{.health = [this] { return taskmon::check_health(monitor); },
                                     .metrics = [this] { return metrics.collect(); }},
            settings, logger);
        tick();
        thread = std::thread{[this] { io.run(); }};
    }
    ~Fixture() { stop(); }

    void tick() {
        heartbeat.expires_after(5ms);
        heartbeat.async_wait([this](asio::error_code ec) {
            // cancel() cannot stop a completion already queued: the flag does.
            if (ec || heartbeat_stopped) return;
            ++ticks;
            tick();
        });
    }

    /// Closes the server, then the monitor; io.run() must then return by itself (no work left behind).
    void stop() {
        if (!thread.joinable()) return;
        std::promise<std::exception_ptr> promise;
        auto done = promise.get_future();
        asio::co_spawn(
            io,
            [this]() -> asio::awaitable<void> {
                co_await server->close();
                heartbeat_stopped = true;
                heartbeat.cancel();
                co_await monitor.close();
            },
            [&promise](std::exception_ptr e) { promise.set_value(e); });
        const bool closed = done.wait_for(10s) == std::future_status::ready;
        CHECK(closed);
        if (!closed) io.stop();  // a failed close must not hang the test
        thread.join();           // run() returned: the server left no work behind
        if (closed) CHECK_FALSE(done.get());
    }

    std::string url(const std::string& path) const {
        return "http://127.0.0.1:" + std::to_string(server->local_endpoint().port()) + path;
    }
    std::uint16_t port() const { return server->local_endpoint().port(); }

    /// True when the heartbeat advances within a second (the io_context is not stalled).
    bool io_alive() {
        const int before = ticks.load();
        const auto deadline = std::chrono::steady_clock::now() + 1s;
        while (std::chrono::steady_clock::now() < deadline) {
            if (ticks.load() >= before + 2) return true;
            std::this_thread::sleep_for(1ms);
        }
        return false;
    }
};

}  // namespace

TEST_CASE("HealthServer answers the probes and /metrics to curl") {
    Fixture f;
    // The component starts asynchronously: wait until the monitor reports it running.
    for (int i = 0; i < 200 && !taskmon::check_health(f.monitor).ready; ++i) std::this_thread::sleep_for(5ms);

    auto r = curl({f.url("/livez")});
    CHECK(r.exit_code == 0);
    CHECK(r.status == 200);
    CHECK(r.body == "ok\n");
    r = curl({f.url("/readyz?verbose")});
    CHECK(r.status == 200);
    CHECK(r.body == "[+]db ok\nreadiness check passed\n");
    r = curl({f.url("/readyz?verbose=0")});
    CHECK(r.body == "ok\n");
    r = curl({f.url("/metrics")});
    CHECK(r.status == 200);
    CHECK(r.body.find("taskmon_component_up{component=\"db\"} 1\n") != std::string::npos);
    CHECK(curl({f.url("/")}).status == 404);
    CHECK(curl({"-X", "DELETE", f.url("/livez")}).status == 405);
    // A response is counted once its write completed, which can be just after curl has read it and exited.
    for (int i = 0; i < 2000 && f.server->stats().responses < 6; ++i) std::this_thread::sleep_for(5ms);
    CHECK(f.server->stats().responses >= 6);
}

TEST_CASE("HealthServer answers 503 with the reasons when not ready or not live") {
    Fixture f;
    f.monitor.disable({"db"});  // stopped: live, not ready
    for (int i = 0; i < 200 && f.monitor.get_component_stats().at("db").state != taskmon::ComponentState::stopped;
         ++i) {
        std::this_thread::sleep_for(5ms);
    }
    auto r = curl({f.url("/readyz")});
    CHECK(r.status == 503);
    CHECK(r.body == "failed: db: stopped\n");
    r = curl({f.url("/readyz?verbose")});
    CHECK(r.status == 503);
    CHECK(r.body == "[-]db failed: stopped\nreadiness check failed\n");
    CHECK(curl({f.url("/livez")}).status == 200);
}

TEST_CASE("HealthServer: malformed requests get 400 and the io_context keeps running") {
    Fixture f;
    RawClient garbage{f.port()};
    garbage.send("\x16\x03\x01 this is not HTTP\r\n\r\n");
    auto r = garbage.receive_all(5s);
    CHECK(r.closed);
    CHECK(r.data.rfind("HTTP/1.1 400 Bad Request\r\n", 0) == 0);

    RawClient bad_version{f.port()};
    bad_version.send("GET /livez HTTP/9.x\r\n\r\n");
    r = bad_version.receive_all(5s);
    CHECK(r.data.rfind("HTTP/1.1 400 ", 0) == 0);

    CHECK(curl({"-X", "GE T", f.url("/livez")}).status == 400);
    CHECK(f.server->stats().bad_requests == 3);
    CHECK(f.io_alive());
    CHECK(curl({f.url("/livez")}).exit_code == 0);
}

TEST_CASE("HealthServer: oversized requests get 431 or 413") {
    Fixture f{{.max_request_bytes = 1024}};
    auto r = curl({"-H", "X-Big: " + std::string(4000, 'a'), f.url("/livez")});
    CHECK(r.status == 431);
    r = curl({"-H", "Expect:", "--data-binary", std::string(100000, 'b'), f.url("/livez")});
    CHECK(r.status == 413);
    CHECK(f.server->stats().too_large == 2);
    CHECK(curl({f.url("/livez")}).exit_code == 0);

    // The limit is exact: a request of max_request_bytes is served, one byte more is refused.
    const auto request_of_size = [](std::size_t size) {
        const std::string head = "GET /livez HTTP/1.1\r\nHost: x\r\nX-Pad: ";
        const std::string tail = "\r\n\r\n";
        return head + std::string(size - head.size() - tail.size(), 'p') + tail;
    };
    RawClient exact{f.port()};
    exact.send(request_of_size(1024));
    CHECK(exact.receive_all(5s).data.rfind("HTTP/1.1 200 OK\r\n", 0) == 0);
    RawClient over{f.port()};
    over.send(request_of_size(1025));
    CHECK(over.receive_all(5s).data.rfind("HTTP/1.1 431 ", 0) == 0);
    // Exactly the limit without the end of the headers, then more in a later read: still 431 (not 400).
    RawClient in_two_reads{f.port()};
    in_two_reads.send("GET /livez HTTP/1.1\r\nX-Pad: " + std::string(1024 - 28, 'p'));
    CHECK(in_two_reads.receive_all(100ms).data.empty());  // read, parsed, waiting for more
    in_two_reads.send("more\r\n\r\n");
    CHECK(in_two_reads.receive_all(5s).data.rfind("HTTP/1.1 431 ", 0) == 0);
    // Headers within the limit, the body beyond it, all in one segment: 413.
    RawClient body{f.port()};
    body.send("POST /livez HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n" + std::string(5000, 'b'));
    CHECK(body.receive_all(5s).data.rfind("HTTP/1.1 413 ", 0) == 0);
}

TEST_CASE("HealthServer: a request not complete within read_timeout gets 408 and a closed connection") {
    Fixture f{{.read_timeout = 300ms}};
    RawClient slow{f.port()};
    slow.send("GET /livez HTTP/1.1\r\nHost: x\r\n");  // never finishes its headers
    RawClient silent{f.port()};                       // never sends anything
    // Meanwhile others are served and the io_context runs.
    CHECK(curl({f.url("/livez")}).status == 200);
    CHECK(f.io_alive());
    const auto start = std::chrono::steady_clock::now();
    auto r = slow.receive_all(5s);
    CHECK(r.closed);
    CHECK(r.data.rfind("HTTP/1.1 408 Request Timeout\r\n", 0) == 0);
    CHECK(std::chrono::steady_clock::now() - start < 3s);
    r = silent.receive_all(5s);
    CHECK(r.closed);
    CHECK(r.data.rfind("HTTP/1.1 408 ", 0) == 0);
    CHECK(f.server->stats().timed_out == 2);

    // A real client that stalls mid-request: curl, as a raw TCP client, sends half a request and waits.
    // (curl's telnet blocks reading its stdin, so it prints what it received once stdin ends: end it only
    // after the server has timed the request out.)
    Curl telnet{{"telnet://127.0.0.1:" + std::to_string(f.port())}, std::string{"GET /livez HTTP/1.1\r\nHost: x\r\n"}};
    for (int i = 0; i < 500 && f.server->stats().timed_out < 3; ++i) std::this_thread::sleep_for(10ms);
    CHECK(f.server->stats().timed_out == 3);
    const auto received = telnet.wait();
    CHECK(received.exit_code == 0);
    CHECK(received.body.rfind("HTTP/1.1 408 Request Timeout\r\n", 0) == 0);
}

TEST_CASE("HealthServer: connections over max_connections are closed at once and counted") {
    Fixture f{{.read_timeout = 10s, .max_connections = 4}};
    std::vector<std::unique_ptr<RawClient>> idle;
    for (int i = 0; i < 4; ++i) idle.push_back(std::make_unique<RawClient>(f.port()));
    // Wait until the server has accepted the four.
    for (int i = 0; i < 400 && f.server->stats().open_connections < 4; ++i) std::this_thread::sleep_for(5ms);
    REQUIRE(f.server->stats().open_connections == 4);

    auto r = curl({f.url("/livez")});
    CHECK(r.status == 0);
    CHECK((r.exit_code == 52 || r.exit_code == 56));  // empty reply or connection reset
    CHECK(f.server->stats().rejected_connections >= 1);
    CHECK(f.io_alive());

    idle.clear();
    bool served = false;
    for (int i = 0; i < 100 && !served; ++i) {
        served = curl({f.url("/livez")}).status == 200;
        if (!served) std::this_thread::sleep_for(10ms);
    }
    CHECK(served);
}

TEST_CASE("HealthServer: many concurrent curls each get 200 or a closed connection") {
    Fixture f{{.max_connections = 8}};
    std::vector<std::unique_ptr<Curl>> clients;
    for (int i = 0; i < 48; ++i) {
        clients.push_back(
            std::make_unique<Curl>(std::vector<std::string>{f.url(i % 2 ? "/metrics" : "/readyz?verbose")}));
    }
    int ok = 0;
    int closed = 0;
    for (auto& c : clients) {
        const auto r = c->wait();
        if (r.status == 200 || r.status == 503) {
            ++ok;
        } else {
            CHECK(r.status == 0);
            CHECK((r.exit_code == 52 || r.exit_code == 56));
            ++closed;
        }
    }
    CHECK(ok + closed == 48);
    CHECK(ok >= 8);
    const auto stats = f.server->stats();
    CHECK(stats.accepted == 48);
    CHECK(stats.rejected_connections == static_cast<std::uint64_t>(closed));
    CHECK(f.io_alive());
    CHECK(curl({f.url("/livez")}).status == 200);
}

TEST_CASE("HealthServer: close() stops accepting and closes open connections") {
    asio::io_context io;
    auto logger = quiet_logger();
    taskmon::HealthServer server{io.get_executor(), {}, {.port = 0, .read_timeout = 1h}, logger};
    const auto port = server.local_endpoint().port();
    std::thread client_thread;
    RawClient idle{port};
    bool closed = false;
    asio::co_spawn(
        io,
        [&]() -> asio::awaitable<void> {
            asio::steady_timer t{io, 50ms};  // let the server accept the idle connection
            co_await t.async_wait(asio::use_awaitable);
            CHECK(server.stats().open_connections == 1);
            co_await server.close();
            co_await server.close();  // idempotent
            closed = true;
        },
        asio::detached);
    const auto start = std::chrono::steady_clock::now();
    io.run();  // returns: close() leaves no work behind, though the idle client never sent anything
    CHECK(closed);
    CHECK(std::chrono::steady_clock::now() - start < 5s);
    CHECK(idle.receive_all(1s).closed);
    CHECK(server.stats().open_connections == 0);
    CHECK(curl({"http://127.0.0.1:" + std::to_string(port) + "/livez"}).exit_code == 7);  // refused
}

TEST_CASE("HealthServer: destroyed without close() while a connection is open") {
    asio::io_context io;
    std::uint16_t port = 0;
    {
        taskmon::HealthServer server{io.get_executor(), {}, {.port = 0}, quiet_logger()};
        port = server.local_endpoint().port();
        RawClient idle{port};
        io.run_for(50ms);
    }
    io.run();  // the destructor's close finishes on the io_context
    CHECK(curl({"http://127.0.0.1:" + std::to_string(port) + "/livez"}).exit_code == 7);
}

TEST_CASE("HealthServer: bad settings throw std::invalid_argument and a taken port std::system_error") {
    asio::io_context io;
    auto logger = quiet_logger();
    using S = taskmon::HealthServerSettings;
    CHECK_THROWS_AS(taskmon::HealthServer(io.get_executor(), {}, S{.address = "localhost", .port = 0}, logger),
                    std::invalid_argument);
    CHECK_THROWS_AS(taskmon::HealthServer(io.get_executor(), {}, S{.port = 0, .max_request_bytes = 0}, logger),
                    std::invalid_argument);
    CHECK_THROWS_AS(taskmon::HealthServer(io.get_executor(), {}, S{.port = 0, .read_timeout = 0ms}, logger),
                    std::invalid_argument);
    CHECK_THROWS_AS(taskmon::HealthServer(io.get_executor(), {}, S{.port = 0, .max_connections = 0}, logger),
                    std::invalid_argument);
    taskmon::HealthServer first{io.get_executor(), {}, S{.port = 0}, logger};
    CHECK_THROWS_AS(taskmon::HealthServer(io.get_executor(), {}, S{.port = first.local_endpoint().port()}, logger),
                    std::system_error);
    io.run_for(10ms);
}

TEST_CASE("answer_health_request routes and reports a throwing endpoint as 500") {
    taskmon::HealthEndpoints endpoints{
        .health = [] { return taskmon::HealthReport{}; },
        .metrics = []() -> std::vector<taskmon::MetricFamily> { throw std::runtime_error("scrape failed"); }};
    CHECK(taskmon::answer_health_request(endpoints, "/livez").status == 200);
    CHECK(taskmon::answer_health_request(endpoints, "/livez?x=1&verbose").body == "liveness check passed\n");
    const auto r = taskmon::answer_health_request(endpoints, "/metrics");
    CHECK(r.status == 500);
    CHECK(r.body == "endpoint failed: scrape failed\n");
    CHECK(taskmon::answer_health_request({}, "/livez").status == 404);
    CHECK(taskmon::answer_health_request(endpoints, "not a target").status == 400);
}
