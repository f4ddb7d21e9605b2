// Tests for taskmon/ops/health_server.hpp over loopback: curl (spawned with posix_spawn) and raw sockets as clients,
// against a server on an io_context run by a background thread. Checks status codes and bodies, the limits
// (size, read timeout, connection slots and their eviction, HTTP versions), many concurrent clients, a slowloris
// attack during kubelet-like probes, the rate-limited warnings, and that abusive clients never stall the
// io_context (a timer on it keeps ticking and a well-behaved request is answered meanwhile). The shell test
// tests/scripts/health_server_curl.sh covers the metric values and the clean shutdown of a whole program.
// Real time throughout (the server runs on the steady clock): the tests wait generously and assert what
// happened, not how fast.
#include <taskmon/agent/supervisor.hpp>
#include <taskmon/detail/event_stream_hub.hpp>
#include <taskmon/ops/health_server.hpp>
#include <taskmon/ops/monitor_json.hpp>
#include <taskmon/ops/monitor_metrics.hpp>
#include <taskmon/ops/run_view.hpp>
#include <taskmon/task_monitor.hpp>

#include "taskmon_catch.hpp"

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/executor_work_guard.hpp>
#include <asio/io_context.hpp>
#include <asio/steady_timer.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>
#include <spdlog/sinks/base_sink.h>
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
#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

extern char** environ;

using namespace std::chrono_literals;

namespace {

std::shared_ptr<spdlog::logger> quiet_logger() {
    return std::make_shared<spdlog::logger>("health-server-test", std::make_shared<spdlog::sinks::null_sink_mt>());
}

/// What a logger was given, for the tests that count log lines (the fixture's logger writes nowhere else).
class LogRecorder : public spdlog::sinks::base_sink<std::mutex> {
public:
    /// The messages logged at `level` that start with `prefix`, in order.
    std::vector<std::string> messages(spdlog::level::level_enum level, std::string_view prefix) {
        std::lock_guard lock{mutex_};
        std::vector<std::string> out;
        for (const auto& [l, text] : records_) {
            if (l == level && text.starts_with(prefix)) out.push_back(text);
        }
        return out;
    }

protected:
    void sink_it_(const spdlog::details::log_msg& msg) override {
        records_.emplace_back(msg.level, std::string(msg.payload.data(), msg.payload.size()));
    }
    void flush_() override {}

private:
    std::vector<std::pair<spdlog::level::level_enum, std::string>> records_;
};

/// Polls `condition` every 5 ms until it holds or `timeout` passed; returns its last value.
template <typename Condition>
bool eventually(Condition condition, std::chrono::milliseconds timeout = 10s) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (!condition()) {
        if (std::chrono::steady_clock::now() >= deadline) return condition();
        std::this_thread::sleep_for(5ms);
    }
    return true;
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
    /// A `receive_buffer` > 0 sets SO_RCVBUF before connecting: a client that does not read then stalls a
    /// large response early.
    explicit RawClient(std::uint16_t port, int receive_buffer = 0) : fd_{::socket(AF_INET, SOCK_STREAM, 0)} {
        if (receive_buffer > 0) {
            (void)::setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &receive_buffer, sizeof receive_buffer);
        }
        sockaddr_in addr{};
        addr.sin_family = AF_INET;
        addr.sin_port = htons(port);
        addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        if (::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
            const int error = errno;
            ::close(fd_);
            throw std::runtime_error(std::string("connect: ") + std::strerror(error));
        }
    }
    RawClient(const RawClient&) = delete;
    RawClient& operator=(const RawClient&) = delete;
    ~RawClient() { ::close(fd_); }

    void send(const std::string& data) const { (void)::send(fd_, data.data(), data.size(), MSG_NOSIGNAL); }

    /// True once the server has answered or closed the connection (something to read, or its end), without
    /// waiting or reading.
    bool server_done() const {
        pollfd p{fd_, POLLIN, 0};
        return ::poll(&p, 1, 0) > 0;
    }

    /// Receives into received() until it contains `needle`, the server closes the connection, or `timeout`
    /// passes; true when it contains `needle`.
    bool receive_until(std::string_view needle, std::chrono::milliseconds timeout) {
        const auto deadline = std::chrono::steady_clock::now() + timeout;
        std::size_t from = 0;  // only the new bytes are searched: a stream can bring megabytes
        while (received_.find(needle, from) == std::string::npos) {
            from = received_.size() < needle.size() ? 0 : received_.size() - needle.size() + 1;
            const auto left =
                std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
            if (left <= 0ms) return false;
            pollfd p{fd_, POLLIN, 0};
            if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) return false;
            char buf[4096];
            const auto n = ::recv(fd_, buf, sizeof buf, 0);
            if (n <= 0) return received_.find(needle, from) != std::string::npos;
            received_.append(buf, static_cast<std::size_t>(n));
        }
        return true;
    }
    const std::string& received() const { return received_; }

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
    std::string received_;
};

/// The status code of an HTTP response ("HTTP/1.1 200 OK..." gives 200), 0 when there is none.
int status_of(const std::string& response) {
    return response.rfind("HTTP/1.1 ", 0) == 0 && response.size() >= 12 ? std::atoi(response.c_str() + 9) : 0;
}

/// A kubelet's HTTP probe: a new connection, the request in one segment, the status of the answer (0 when the
/// connection closed without one). The kubelet gives up after 1 s by default; the 10 s here keep a slow machine
/// from failing a test: what counts is that the probe is answered.
int kubelet_probe(std::uint16_t port, const std::string& path) {
    RawClient probe{port};
    probe.send("GET " + path + " HTTP/1.1\r\nHost: 127.0.0.1:" + std::to_string(port) +
               "\r\nUser-Agent: kube-probe/1.29\r\nAccept: */*\r\nConnection: close\r\n\r\n");
    return status_of(probe.receive_all(10s).data);
}

/// `count` slowloris clients on a thread of their own: each sends a request line and the start of a header,
/// then one more byte of it per `period`, never ending it, and reconnects when the server has closed (or
/// answered) its connection. They take turns, period / count apart, so they reconnect one at a time, as
/// their bytes come. Destruction stops them and closes their connections.
class SlowClients {
public:
    SlowClients(std::uint16_t port, std::size_t count, std::chrono::milliseconds period)
        : port_{port}, turn_{period / count}, clients_(count), thread_{[this] { run(); }} {}
    SlowClients(const SlowClients&) = delete;
    SlowClients& operator=(const SlowClients&) = delete;
    ~SlowClients() {
        stop_ = true;
        thread_.join();
    }

    std::uint64_t connects() const { return connects_.load(); }

private:
    void run() {
        auto next = std::chrono::steady_clock::now();
        while (!stop_) {
            for (auto& client : clients_) {
                if (stop_) return;
                if (client && client->server_done()) client.reset();
                if (client) {
                    client->send("a");
                } else {
                    try {
                        client = std::make_unique<RawClient>(port_);
                        client->send("GET /livez HTTP/1.1\r\nHost: x\r\nX-Slow: ");
                        ++connects_;
                    } catch (const std::runtime_error&) {
                        // Not connected (the listen queue is full): this client tries again at its next turn.
                    }
                }
                next += turn_;
                std::this_thread::sleep_until(next);
            }
        }
    }

    const std::uint16_t port_;
    const std::chrono::milliseconds turn_;
    std::vector<std::unique_ptr<RawClient>> clients_;
    std::atomic<bool> stop_{false};
    std::atomic<std::uint64_t> connects_{0};
    std::thread thread_;  // last: starts once the members it uses exist
};

using Robot = taskmon::Supervisor<int, std::string>;

/// A Supervisor run that never ends by itself: each step decides no action, one step per capture (20 ms).
std::unique_ptr<Robot> make_robot(asio::io_context& io, const taskmon::RunView& view) {
    taskmon::AgentSettings settings;
    settings.max_steps = 1'000'000;
    settings.capture_interval = 20ms;
    return std::make_unique<Robot>(
        io.get_executor(),
        Robot::Functions{.perceive = []() -> asio::awaitable<int> { co_return 1; },
                         .decide = [](const int&, const Robot::Context&) -> asio::awaitable<Robot::DecisionType> {
                             co_return Robot::DecisionType::act({});
                         },
                         .act = [](const std::string&) -> asio::awaitable<taskmon::ActionResult> {
                             co_return taskmon::ActionResult::ok();
                         }},
        settings, view.wrap(Robot::Hooks{}), quiet_logger());
}

/// An io_context on a background thread with a monitor, its metrics, a heartbeat timer, and a server whose
/// log is recorded; with `with_run`, also a Supervisor run "robot" on the page (RunView) and its run actions.
struct Fixture {
    asio::io_context io;
    std::shared_ptr<LogRecorder> log = std::make_shared<LogRecorder>();
    std::shared_ptr<spdlog::logger> logger = std::make_shared<spdlog::logger>("health-server-test", log);
    taskmon::TaskMonitor monitor{io.get_executor(), {}, logger};
    taskmon::MonitorMetrics metrics{monitor};
    std::atomic<int> ticks{0};
    bool heartbeat_stopped = false;  // used on the io thread only
    asio::steady_timer heartbeat{io};
    taskmon::RunView run_view{"robot"};
    std::unique_ptr<Robot> robot;
    bool run_finished = false;  // used on the io thread only
    std::unique_ptr<taskmon::HealthServer> server;
    std::thread thread;

    /// `metrics_override`, when given, serves /metrics instead of the monitor's metrics.
    /// `action_token`, when given, enables the operator actions.
    explicit Fixture(taskmon::HealthServerSettings settings = {},
                     std::function<std::vector<taskmon::MetricFamily>()> metrics_override = {},
                     std::string action_token = {}, bool with_run = false) {
        settings.port = 0;
        monitor.supervise("db", [] { return runs_forever(); });
        if (!metrics_override) metrics_override = [this] { return metrics.collect(); };
        if (with_run) robot = make_robot(io, run_view);
        server = std::make_unique<taskmon::HealthServer>(
            io.get_executor(),
            taskmon::HealthEndpoints{
                .health = [this] { return taskmon::check_health(monitor); },
                .metrics = std::move(metrics_override),
                .tree = [this](std::uint64_t last) { return taskmon::monitor_snapshot_json(monitor, last); },
                .subscribe = [this](taskmon::MonitorEventListener l) { return monitor.subscribe(std::move(l)); },
                .act = [this](const std::string& name,
                              taskmon::OperatorAction action) { taskmon::apply(monitor, name, action); },
                .action_token = std::move(action_token),
                .runs = with_run ? std::function<std::string()>{[this] { return taskmon::run_views_json({run_view}); }}
                                 : std::function<std::string()>{},
                .run_act = !with_run ? std::function<void(const std::string&, taskmon::RunAction)>{}
                                     : [this](const std::string& name, taskmon::RunAction action) {
                                           if (name != "robot") throw std::invalid_argument("no run named " + name);
                                           taskmon::apply(*robot, action);
                                       }},
            settings, logger);
        if (robot) {
            run_view.set_sink([this](std::string json) { server->publish(std::move(json)); });
            asio::co_spawn(
                io,
                [this]() -> asio::awaitable<void> {
                    auto running = robot->run();
                    (void)co_await std::move(running);
                    run_finished = true;
                },
                asio::detached);
        }
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
                if (robot) {
                    robot->stop("the test ends");
                    asio::steady_timer poll{io};
                    while (!run_finished) {  // run() completes once its components closed
                        poll.expires_after(1ms);
                        co_await poll.async_wait(asio::use_awaitable);
                    }
                }
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

    /// The evictions and rejections the max_connections warnings logged so far, and how many warnings.
    struct OverflowLog {
        std::size_t lines = 0;
        std::uint64_t evicted = 0;
        std::uint64_t rejected = 0;
    };
    OverflowLog overflow_log() {
        OverflowLog out;
        for (const auto& line : log->messages(spdlog::level::warn, "health server: max_connections")) {
            const auto counts = line.find("reached: ");
            unsigned long long evicted = 0;
            unsigned long long rejected = 0;
            REQUIRE(counts != std::string::npos);
            REQUIRE(std::sscanf(line.c_str() + counts,
                                "reached: %llu connections evicted (no complete request yet), %llu", &evicted,
                                &rejected) == 2);
            ++out.lines;
            out.evicted += evicted;
            out.rejected += rejected;
        }
        return out;
    }

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

TEST_CASE("HealthServer: a request line without an HTTP version (HTTP/0.9) gets 400 at once") {
    Fixture f{{.read_timeout = 60s}};  // a 408 would come long after the 10 s the clients wait
    RawClient simple{f.port()};
    simple.send("GET /livez\r\n");  // all an HTTP/0.9 client sends before it waits for the body
    auto r = simple.receive_all(10s);
    CHECK(r.closed);
    CHECK(r.data.rfind("HTTP/1.1 400 Bad Request\r\n", 0) == 0);
    CHECK(r.data.find("no HTTP version in the request line") != std::string::npos);
    // An empty line after it, which http_parser takes for the end of an HTTP/0.9 request with no headers.
    RawClient with_blank_line{f.port()};
    with_blank_line.send("\r\nGET /livez\n\r\n");
    CHECK(with_blank_line.receive_all(10s).data.rfind("HTTP/1.1 400 ", 0) == 0);
    // In pieces: the verdict waits for the end of the line, not for a version that may still come.
    RawClient split{f.port()};
    split.send("GET /livez");
    CHECK(split.receive_all(100ms).data.empty());
    split.send(" HTTP/1.1\r\n\r\n");
    CHECK(status_of(split.receive_all(10s).data) == 200);
    const auto stats = f.server->stats();
    CHECK(stats.bad_requests == 2);
    CHECK(stats.timed_out == 0);
}

TEST_CASE("HealthServer: HTTP/9.9 and other major versions but 1 get 505 while HTTP/1.x is served") {
    Fixture f{{.read_timeout = 60s}};
    const auto answer = [&](const std::string& request) {
        RawClient client{f.port()};
        client.send(request);
        return client.receive_all(10s).data;
    };
    const auto r = answer("GET /livez HTTP/9.9\r\nHost: x\r\n\r\n");
    CHECK(r.rfind("HTTP/1.1 505 HTTP Version Not Supported\r\n", 0) == 0);
    CHECK(r.ends_with("\r\n\r\nHTTP/9.9 is not supported; use HTTP/1.1\n"));
    CHECK(status_of(answer("GET /livez HTTP/9.9\r\n")) == 505);  // at the end of the line, before any header
    CHECK(status_of(answer("GET /livez HTTP/2.0\r\nHost: x\r\n\r\n")) == 505);
    CHECK(status_of(answer("GET /livez HTTP/0.9\r\n\r\n")) == 505);
    CHECK(f.server->stats().bad_requests == 4);
    CHECK(status_of(answer("GET /livez HTTP/1.0\r\n\r\n")) == 200);
    CHECK(status_of(answer("GET /livez HTTP/1.1\r\nHost: x\r\n\r\n")) == 200);
    CHECK(status_of(answer("GET /livez HTTP/1.2\r\nHost: x\r\n\r\n")) == 200);  // as HTTP/1.1 (RFC 9110 §2.5)
    CHECK(f.server->stats().bad_requests == 4);
}

TEST_CASE("HealthServer: a new connection over max_connections evicts the oldest one without a complete request") {
    Fixture f{{.read_timeout = 60s, .max_connections = 4}};
    // A client that has its answer and keeps the connection open: the server lingers, reading, until
    // read_timeout.
    RawClient answered{f.port()};
    answered.send("GET /livez HTTP/1.1\r\n\r\n");
    REQUIRE(eventually([&] { return f.server->stats().responses == 1; }));
    std::vector<std::unique_ptr<RawClient>> idle;
    const auto add_idle = [&] {
        const auto open = f.server->stats().open_connections;
        idle.push_back(std::make_unique<RawClient>(f.port()));
        // One at a time, so that the accept order is the order of `idle`.
        REQUIRE(eventually([&] { return f.server->stats().open_connections == open + 1; }));
    };
    for (int i = 0; i < 3; ++i) add_idle();

    // First a new connection takes the slot of the lingering close, which costs its client nothing.
    CHECK(curl({f.url("/livez")}).status == 200);
    CHECK(status_of(answered.receive_all(5s).data) == 200);
    for (const auto& client : idle) CHECK_FALSE(client->server_done());
    CHECK(f.server->stats().evicted_connections == 0);
    CHECK(eventually([&] { return f.server->stats().open_connections == 3; }));

    // Then it evicts the oldest connection still without a complete request: closed without an answer.
    add_idle();
    CHECK(curl({f.url("/livez")}).status == 200);
    auto r = idle[0]->receive_all(5s);
    CHECK(r.closed);
    CHECK(r.data.empty());
    for (std::size_t i = 1; i < idle.size(); ++i) CHECK_FALSE(idle[i]->server_done());
    auto stats = f.server->stats();
    CHECK(stats.evicted_connections == 1);
    CHECK(stats.rejected_connections == 0);

    // Once the curl's connection is gone, one more idle connection fills the slots again; the next request
    // evicts the next oldest.
    REQUIRE(eventually([&] { return f.server->stats().open_connections == 3; }));
    add_idle();
    CHECK(curl({f.url("/readyz")}).exit_code == 0);
    CHECK(idle[1]->receive_all(5s).closed);
    for (std::size_t i = 2; i < idle.size(); ++i) CHECK_FALSE(idle[i]->server_done());
    stats = f.server->stats();
    CHECK(stats.evicted_connections == 2);
    CHECK(stats.rejected_connections == 0);
    CHECK(stats.timed_out == 0);
    CHECK(f.io_alive());
}

TEST_CASE("HealthServer: /livez probes all succeed while 100 slowloris clients compete for 32 connection slots") {
    // read_timeout is far longer than the test: only eviction can give the probes a slot.
    Fixture f{{.read_timeout = 60s}};
    constexpr std::size_t slots = 32;  // the default max_connections
    SlowClients slowloris{f.port(), 100, 1s};
    // Within a second all 100 have connected; 68 were evicted and keep reconnecting, a byte a second each.
    REQUIRE(eventually([&] { return f.server->stats().evicted_connections >= 100 - slots; }));
    CHECK(f.server->stats().open_connections == slots);

    int answered = 0;
    for (int i = 0; i < 12; ++i) {
        const int status = kubelet_probe(f.port(), "/livez");
        CHECK(status == 200);
        answered += status == 200 ? 1 : 0;
        std::this_thread::sleep_for(250ms);  // meanwhile evicted slow clients reconnect and fill the slots again
    }
    CHECK(answered == 12);
    const auto stats = f.server->stats();
    CHECK(stats.rejected_connections == 0);  // the slow clients never write a response: one can always go
    CHECK(stats.evicted_connections > 100 - slots);
    CHECK(stats.timed_out == 0);
    CHECK(slowloris.connects() > 100);
    CHECK(f.io_alive());
}

TEST_CASE("HealthServer: a client that never completes its request holds its slot for read_timeout and no longer") {
    // write_timeout is far longer than the test: the slot's end must come from read_timeout alone.
    Fixture f{{.read_timeout = 500ms, .write_timeout = 60s}};
    RawClient slow{f.port()};
    const auto start = std::chrono::steady_clock::now();
    slow.send("GET /livez HTTP/1.1\r\nX-Slow: ");
    // A byte every 50 ms, before and after the 408: a lingering close reading on would keep the slot.
    RawClient::Received received;
    while (!received.closed && std::chrono::steady_clock::now() - start < 20s) {
        slow.send("a");
        const auto r = slow.receive_all(50ms);
        received.data += r.data;
        received.closed = r.closed;
    }
    const auto held = std::chrono::steady_clock::now() - start;
    CHECK(received.closed);
    CHECK(received.data.rfind("HTTP/1.1 408 Request Timeout\r\n", 0) == 0);
    CHECK(held < 10s);  // 0.5 s and the scheduling of a busy machine; a slot held until write_timeout: 60 s
    CHECK(eventually([&] { return f.server->stats().open_connections == 0; }));
    const auto stats = f.server->stats();
    CHECK(stats.timed_out == 1);
    CHECK(stats.responses == 1);
    CHECK(stats.evicted_connections == 0);
}

TEST_CASE("HealthServer: max_connections warnings come at most once a second and count every eviction") {
    Fixture f{{.read_timeout = 60s, .max_connections = 2}};
    const auto start = std::chrono::steady_clock::now();
    std::vector<std::unique_ptr<RawClient>> clients;
    for (int i = 0; i < 200; ++i) clients.push_back(std::make_unique<RawClient>(f.port()));
    // Each connection beyond the 2 slots evicts the oldest, which never sent anything.
    CHECK(eventually([&] { return f.server->stats().evicted_connections == 198; }));
    CHECK(f.server->stats().accepted == 200);
    // The first warning comes at once, the rest within a second of the last eviction (a timer, not close()).
    CHECK(eventually([&] { return f.overflow_log().evicted == 198; }, 5s));
    const auto elapsed = std::chrono::duration_cast<std::chrono::seconds>(std::chrono::steady_clock::now() - start);
    const auto log = f.overflow_log();
    CHECK(log.lines >= 1);
    CHECK(log.lines <= static_cast<std::size_t>(2 + elapsed.count()));  // not one per eviction (198)
    CHECK(log.evicted == 198);
    CHECK(log.rejected == 0);
}

TEST_CASE("HealthServer: connections writing a response keep their slots and a new connection is rejected") {
    // A /metrics response larger than the kernel can buffer for a client that does not read (the server's send
    // buffer grows to tcp_wmem's maximum; the client's receive buffer is small): its write waits. The family
    // name (checked and copied, not escaped) carries the size, so that rendering it stays cheap.
    std::size_t wmem_max = 8 << 20;
    std::ifstream{"/proc/sys/net/ipv4/tcp_wmem"} >> wmem_max >> wmem_max >> wmem_max;
    const taskmon::MetricFamily padding{
        .name = std::string(wmem_max + (1 << 20), 'p'), .help = {}, .type = taskmon::MetricType::gauge, .samples = {}};
    Fixture f{{.write_timeout = 60s, .max_connections = 2}, [&] { return std::vector{padding}; }};
    std::vector<std::unique_ptr<RawClient>> readers_that_stall;
    for (int i = 0; i < 2; ++i) {
        readers_that_stall.push_back(std::make_unique<RawClient>(f.port(), 4096));
        readers_that_stall.back()->send("GET /metrics HTTP/1.1\r\n\r\n");
    }
    // Both are being answered, and neither answer fits in the buffers.
    REQUIRE(eventually([&] { return readers_that_stall[0]->server_done() && readers_that_stall[1]->server_done(); }));
    REQUIRE(f.server->stats().responses == 0);

    CHECK(kubelet_probe(f.port(), "/livez") == 0);  // closed at once: the writers keep their slots
    auto stats = f.server->stats();
    CHECK(stats.rejected_connections == 1);
    CHECK(stats.evicted_connections == 0);

    // The writes fail once their clients go, and free the slots.
    readers_that_stall.clear();
    CHECK(eventually([&] { return f.server->stats().open_connections == 0; }));
    CHECK(kubelet_probe(f.port(), "/livez") == 200);
    stats = f.server->stats();
    CHECK(stats.responses == 1);
    CHECK(stats.timed_out == 0);
    f.stop();  // close() logs what the rate limit may still hold back
    const auto log = f.overflow_log();
    CHECK(log.rejected == 1);
    CHECK(log.evicted == 0);
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
    CHECK(stats.rejected_connections + stats.evicted_connections == static_cast<std::uint64_t>(closed));
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
    CHECK_THROWS_AS(taskmon::HealthServer(io.get_executor(), {}, S{.port = 0, .event_queue_capacity = 0}, logger),
                    std::invalid_argument);
    CHECK_THROWS_AS(taskmon::HealthServer(io.get_executor(), {}, S{.port = 0, .event_keepalive = 0ms}, logger),
                    std::invalid_argument);
    CHECK_THROWS_WITH(
        taskmon::HealthServer(io.get_executor(), {}, S{.port = 0, .event_replay_capacity = (1u << 20) + 1}, logger),
        "HealthServerSettings.event_replay_capacity must not exceed 1,048,576");
    taskmon::HealthServer first{io.get_executor(), {}, S{.port = 0}, logger};
    CHECK_THROWS_AS(taskmon::HealthServer(io.get_executor(), {}, S{.port = first.local_endpoint().port()}, logger),
                    std::system_error);
    io.run_for(10ms);
}

namespace {

asio::awaitable<void> fails_at_once() {
    co_await asio::post(co_await asio::this_coro::executor, asio::use_awaitable);
    throw std::runtime_error("boom \"quoted\"\nsecond line");
}

/// An /events client: connected, request sent, snapshot received (else the test fails).
std::unique_ptr<RawClient> open_stream(std::uint16_t port, int receive_buffer = 0) {
    auto client = std::make_unique<RawClient>(port, receive_buffer);
    client->send("GET /events HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n");
    return client;
}

}  // namespace

TEST_CASE("HealthServer: /events streams the snapshot then each event live and /api/tree answers the snapshot") {
    Fixture f;
    REQUIRE(
        eventually([&] { return f.monitor.get_component_stats().at("db").state == taskmon::ComponentState::running; }));
    auto stream = open_stream(f.port());
    REQUIRE(stream->receive_until("event: snapshot\ndata: {", 10s));
    REQUIRE(stream->receive_until("}\n\n", 10s));
    const auto& head = stream->received();
    CHECK(head.starts_with("HTTP/1.1 200 OK\r\n"));
    CHECK(head.find("Content-Type: text/event-stream\r\n") != std::string::npos);
    CHECK(head.find("\r\n\r\nretry: 2000\n\nid: ") != std::string::npos);
    CHECK(head.find(R"("format":"taskmon.monitor.v1")") != std::string::npos);
    CHECK(head.find(R"({"name":"db","state":"running")") != std::string::npos);
    CHECK(eventually([&] { return f.server->stats().event_clients == 1; }));
    CHECK(f.server->stats().open_connections == 0);  // a stream holds no connection slot

    // A forced failure: a component that throws at once arrives as events, with its sequence as the id.
    f.monitor.supervise("boom", [] { return fails_at_once(); });
    REQUIRE(stream->receive_until(R"("kind":"failed","component":"boom")", 10s));
    const auto& text = stream->received();
    const auto failed = text.find(R"({"kind":"failed","component":"boom","sequence":)");
    REQUIRE(failed != std::string::npos);
    const auto sequence = std::stoull(text.substr(text.find(R"("sequence":)", failed) + 11));
    // Its id is `<epoch>-<position>`, the epoch that of the snapshot's id.
    const auto id_line = text.rfind("\nid: ", failed);
    REQUIRE(id_line != std::string::npos);
    const auto snapshot_id = text.substr(text.find("\nid: ") + 5);
    const auto epoch = snapshot_id.substr(0, snapshot_id.find('-'));
    CHECK_FALSE(epoch.empty());
    CHECK(text.substr(id_line + 5, epoch.size() + 1) == epoch + "-");
    CHECK(text.find(R"("reason":"std::runtime_error: boom \"quoted\"\nsecond line")") != std::string::npos);
    CHECK(eventually([&] { return f.server->stats().events_sent >= 2; }));  // started, failed (counted once written)

    const auto tree = curl({f.url("/api/tree")});
    CHECK(tree.status == 200);
    CHECK(tree.body.find(R"({"name":"boom","state":)") != std::string::npos);
    CHECK(tree.body.find(R"("last_sequence":)" + std::to_string(sequence)) == std::string::npos);  // it moved on
    CHECK(f.server->stats().event_clients == 1);
}

TEST_CASE("HealthServer: an /events client that never reads is dropped and counted and the monitor is not slowed") {
    Fixture f{{.event_queue_capacity = 4096}};
    REQUIRE(
        eventually([&] { return f.monitor.get_component_stats().at("db").state == taskmon::ComponentState::running; }));
    auto reader = open_stream(f.port());
    REQUIRE(reader->receive_until("event: snapshot", 10s));
    auto idle = open_stream(f.port(), 4096);  // never reads beyond this point
    REQUIRE(eventually([&] { return f.server->stats().event_clients == 2; }));
    bool reader_got_marker = false;
    std::thread reading{
        [&] { reader_got_marker = reader->receive_until(R"("kind":"started","component":"marker")", 30s); }};
    // Manual restarts publish an event each (restart_requested or restart_merged): the idle stream's socket
    // buffers fill (megabytes), then its queue of 4,096, and it is dropped; restart() never waits for a stream.
    // 8 calls a millisecond at most (~20 events): the reading stream's queue then holds ~200 ms of events, so
    // it keeps up on a loaded machine too.
    const auto start = std::chrono::steady_clock::now();
    int calls = 0;
    auto slowest = std::chrono::steady_clock::duration::zero();
    while (f.server->stats().event_clients_dropped == 0 && std::chrono::steady_clock::now() - start < 20s) {
        const auto before = std::chrono::steady_clock::now();
        f.monitor.restart("db");
        slowest = std::max(slowest, std::chrono::steady_clock::now() - before);
        if (++calls % 8 == 0) std::this_thread::sleep_for(1ms);
    }
    CHECK(f.server->stats().event_clients_dropped == 1);
    CHECK(eventually([&] { return f.server->stats().event_clients == 1; }));
    CHECK(f.log->messages(spdlog::level::warn, "health server: /events client dropped").size() == 1);
    // The reading stream keeps up and is not dropped.
    f.monitor.supervise("marker", [] { return runs_forever(); });
    reading.join();
    CHECK(reader_got_marker);
    CHECK(f.server->stats().event_clients_dropped == 1);
    INFO("slowest restart() call: " << std::chrono::duration_cast<std::chrono::microseconds>(slowest).count() << " us");
    CHECK(slowest < 1s);
    CHECK(curl({f.url("/livez")}).status == 200);
    INFO("restart() calls until the drop: " << calls);
}

TEST_CASE("HealthServer: 200 /events clients at once all get a live event and a 201st gets 503") {
    Fixture f;
    std::vector<std::unique_ptr<RawClient>> clients;
    for (int i = 0; i < 200; ++i) {
        clients.push_back(open_stream(f.port()));
        REQUIRE(clients.back()->receive_until("event: snapshot", 10s));
    }
    CHECK(eventually([&] { return f.server->stats().event_clients == 200; }));
    auto extra = open_stream(f.port());
    const auto refused = extra->receive_all(10s);
    CHECK(status_of(refused.data) == 503);
    CHECK(f.server->stats().event_clients_rejected == 1);
    CHECK(curl({f.url("/livez")}).status == 200);  // streams hold no connection slot
    f.monitor.supervise("boom", [] { return fails_at_once(); });
    int received = 0;
    for (auto& c : clients) received += c->receive_until(R"("kind":"failed","component":"boom")", 10s) ? 1 : 0;
    CHECK(received == 200);
    CHECK(f.server->stats().event_clients_dropped == 0);
}

TEST_CASE("HealthServer: close() ends open /events streams") {
    Fixture f;
    auto stream = open_stream(f.port());
    REQUIRE(stream->receive_until("event: snapshot", 10s));
    f.stop();  // checks that close() completes and io.run() returns
    CHECK(stream->receive_all(5s).closed);
}

namespace {

/// The id of the last complete event in a stream's text ("" when none), as an EventSource keeps it.
std::string last_event_id(const std::string& text) {
    const auto at = text.rfind("\nid: ", text.rfind("\n\n"));
    if (at == std::string::npos) return {};
    return text.substr(at + 5, text.find('\n', at + 5) - at - 5);
}

/// An /events client that reconnects as an EventSource does, with `Last-Event-ID: id`.
std::unique_ptr<RawClient> resume_stream(std::uint16_t port, const std::string& id) {
    auto client = std::make_unique<RawClient>(port);
    client->send("GET /events HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\nLast-Event-ID: " + id +
                 "\r\n\r\n");
    return client;
}

/// What follows the response's head and `retry:` field: the events, or the snapshot first.
std::string stream_body(const std::string& text) {
    const auto retry = text.find("\r\n\r\nretry: ");
    return retry == std::string::npos ? std::string{} : text.substr(text.find("\n\n", retry + 4) + 2);
}

std::string marker(int n) { return R"({"type":"test_marker","n":)" + std::to_string(n) + "}"; }

}  // namespace

TEST_CASE("HealthServer: a client reconnecting with Last-Event-ID gets exactly the events it missed, no snapshot") {
    Fixture f;
    REQUIRE(
        eventually([&] { return f.monitor.get_component_stats().at("db").state == taskmon::ComponentState::running; }));
    // A witness stream stays open throughout: it receives every event live, in the log's order.
    auto witness = open_stream(f.port());
    REQUIRE(witness->receive_until("event: snapshot", 10s));
    auto first = open_stream(f.port());
    REQUIRE(first->receive_until("event: snapshot", 10s));
    REQUIRE(first->receive_until("}\n\n", 10s));
    f.monitor.restart("db");
    f.server->publish(marker(1));
    REQUIRE(first->receive_until(marker(1), 10s));
    const auto id = last_event_id(first->received());
    REQUIRE_FALSE(id.empty());
    first.reset();  // the connection drops

    // Missed meanwhile: monitor events and events of another type.
    f.monitor.restart("db");
    f.monitor.supervise("boom", [] { return fails_at_once(); });
    f.server->publish(marker(2));
    f.server->publish(marker(3));
    REQUIRE(witness->receive_until(marker(3), 10s));
    auto resumed = resume_stream(f.port(), id);
    REQUIRE(resumed->receive_until(marker(3), 10s));
    const auto body = stream_body(resumed->received());
    CHECK(body.find("event: snapshot") == std::string::npos);
    CHECK(body.starts_with("id: "));
    // Exactly what the witness received after that id, up to the last marker, in the same order.
    const auto& seen = witness->received();
    const auto after = seen.find("\nid: " + id + "\n");
    REQUIRE(after != std::string::npos);
    const auto from = seen.find("\n\n", after + 1) + 2;
    const auto to = seen.find(marker(3)) + marker(3).size();
    CHECK(body.substr(0, body.find(marker(3)) + marker(3).size()) == seen.substr(from, to - from));
    CHECK(body.find(marker(1)) == std::string::npos);  // read before the drop: not sent again
    CHECK(body.find(marker(2)) != std::string::npos);
    CHECK(body.find(R"("component":"db")") != std::string::npos);  // restart_requested or restart_merged
    CHECK(body.find(R"("kind":"started","component":"boom")") != std::string::npos);
    CHECK(f.server->stats().event_streams_resumed == 1);
    CHECK(f.server->stats().event_resumes_refused == 0);
    // It is live from there on.
    f.server->publish(marker(4));
    CHECK(resumed->receive_until(marker(4), 10s));
    CHECK(eventually([&] { return f.server->stats().event_clients == 2; }));
}

TEST_CASE(
    "HealthServer: a Last-Event-ID too old, malformed, of another server's lifetime or with replay off gets "
    "the snapshot") {
    const auto snapshot_for = [](const Fixture& f, const std::string& id) {
        auto client = resume_stream(f.port(), id);
        REQUIRE(client->receive_until("event: snapshot\ndata: {", 10s));
        return stream_body(client->received()).starts_with("id: ");
    };
    SECTION("too old, malformed, another epoch") {
        Fixture f{{.event_replay_capacity = 3}};
        auto first = open_stream(f.port());
        REQUIRE(first->receive_until("event: snapshot", 10s));
        f.server->publish(marker(1));
        REQUIRE(first->receive_until(marker(1), 10s));
        const auto id = last_event_id(first->received());
        const auto epoch = id.substr(0, id.find('-'));
        first.reset();
        for (int i = 2; i <= 5; ++i) f.server->publish(marker(i));  // 4 missed: one more than kept
        CHECK(snapshot_for(f, id));
        CHECK(snapshot_for(f, "garbage"));
        CHECK(snapshot_for(f, epoch + "-"));
        CHECK(snapshot_for(f, epoch + "-99999999999999999999999"));  // beyond 64 bits
        CHECK(snapshot_for(f, epoch + "-1000"));                     // not published yet
        CHECK(snapshot_for(f, "1" + epoch + id.substr(epoch.size())));
        CHECK(snapshot_for(f, "123-1"));  // an id of an earlier process: positions start at 1 again
        CHECK(f.server->stats().event_resumes_refused == 7);
        CHECK(f.server->stats().event_streams_resumed == 0);
        // The last 3 are still kept: an id just before them resumes.
        auto resumed =
            resume_stream(f.port(), epoch + "-" + std::to_string(std::stoull(id.substr(epoch.size() + 1)) + 1));
        REQUIRE(resumed->receive_until(marker(5), 10s));
        const auto body = stream_body(resumed->received());
        CHECK(body.find("event: snapshot") == std::string::npos);
        CHECK(body.find(marker(2)) == std::string::npos);
        CHECK(body.find(marker(3)) != std::string::npos);
        CHECK(f.server->stats().event_streams_resumed == 1);
    }
    SECTION("replay disabled") {
        Fixture f{{.event_replay_capacity = 0}};
        auto first = open_stream(f.port());
        REQUIRE(first->receive_until("event: snapshot", 10s));
        f.server->publish(marker(1));
        REQUIRE(first->receive_until(marker(1), 10s));
        const auto id = last_event_id(first->received());
        first.reset();
        f.logger->set_level(spdlog::level::debug);
        f.server->publish(marker(2));
        CHECK(snapshot_for(f, id));
        CHECK(f.server->stats().event_resumes_refused == 1);
        CHECK(eventually(
            [&] { return f.log->messages(spdlog::level::debug, "health server: /events Last-Event-ID").size() == 1; }));
    }
}

namespace {

constexpr const char* test_token = "0123456789abcdef0123456789abcdef";

/// curl's arguments for an action request with `extra` headers and options.
Curl::Result post_action(const Fixture& f, const std::string& path, std::vector<std::string> extra) {
    std::vector<std::string> args{"-X", "POST"};
    args.insert(args.end(), extra.begin(), extra.end());
    args.push_back(f.url(path));
    return curl(std::move(args));
}

}  // namespace

TEST_CASE("HealthServer: operator actions are refused (403) when no token is configured") {
    Fixture f;
    const auto r = post_action(f, "/api/components/db/restart",
                               {"-H", std::string{"Authorization: Bearer "} + test_token, "-H", "X-Taskmon-Action: 1"});
    CHECK(r.status == 403);
    CHECK(r.body == "operator actions are disabled (no action token configured)\n");
    CHECK(eventually([&] { return f.server->stats().actions_refused == 1; }));
    CHECK(f.server->stats().actions == 0);
    CHECK(f.monitor.get_component_stats().at("db").restart_count == 0);
    CHECK(f.log->messages(spdlog::level::warn, "health server: operator action refused action=restart").size() == 1);
    const auto page = curl({f.url("/ui")});
    CHECK(page.status == 200);
    CHECK(page.body.find("<body data-actions=\"0\" data-run-actions=\"0\">") != std::string::npos);
    CHECK(page.body.size() < 100 * 1024);
}

TEST_CASE("HealthServer: operator actions check the request and the token and the CSRF guard before they act") {
    Fixture f{{}, {}, test_token};
    REQUIRE(
        eventually([&] { return f.monitor.get_component_stats().at("db").state == taskmon::ComponentState::running; }));
    const std::string auth = std::string{"Authorization: Bearer "} + test_token;
    const std::string guard = "X-Taskmon-Action: 1";
    // Malformed: 400.
    CHECK(post_action(f, "/api/components/db/explode", {"-H", auth, "-H", guard}).status == 400);
    CHECK(post_action(f, "/api/components/d%zz/restart", {"-H", auth, "-H", guard}).status == 400);
    CHECK(post_action(f, "/api/components//restart", {"-H", auth, "-H", guard}).status == 400);
    CHECK(post_action(f, "/api/components/db/restart", {"-H", auth, "-H", guard, "-d", "x"}).status == 400);
    // The token: missing 401 (with the scheme to use), wrong 403 (also one byte off, and a prefix of it).
    const auto missing = curl({"-X", "POST", "-H", guard, "-D", "-", f.url("/api/components/db/restart")});
    CHECK(missing.status == 401);
    CHECK(missing.body.find("WWW-Authenticate: Bearer realm=\"taskmon\"") != std::string::npos);
    std::string off_by_one = test_token;
    off_by_one.back() = 'e';
    CHECK(post_action(f, "/api/components/db/restart", {"-H", "Authorization: Bearer " + off_by_one, "-H", guard})
              .status == 403);
    CHECK(post_action(f, "/api/components/db/restart", {"-H", "Authorization: Bearer 0123456789abcdef", "-H", guard})
              .status == 403);
    CHECK(post_action(f, "/api/components/db/restart",
                      {"-H", std::string{"Authorization: Basic "} + test_token, "-H", guard})
              .status == 403);
    // The CSRF guard: the custom header, and no foreign Origin.
    CHECK(post_action(f, "/api/components/db/restart", {"-H", auth}).status == 403);
    CHECK(post_action(f, "/api/components/db/restart", {"-H", auth, "-H", guard, "-H", "Origin: http://evil.example"})
              .status == 403);
    CHECK(f.monitor.get_component_stats().at("db").restart_count == 0);  // nothing was done so far
    CHECK(eventually([&] { return f.server->stats().actions_refused == 10; }));

    // Accepted: same origin, a percent-escaped name; an unknown component is refused by the monitor (409).
    const auto origin = "Origin: http://127.0.0.1:" + std::to_string(f.port());
    const auto done = post_action(f, "/api/components/d%62/restart", {"-H", auth, "-H", guard, "-H", origin});
    CHECK(done.status == 200);
    CHECK(done.body == R"({"action":"restart","component":"db","status":"done"})"
                       "\n");
    CHECK(eventually([&] { return f.monitor.get_component_stats().at("db").restart_count == 1; }));
    CHECK(post_action(f, "/api/components/db/disable", {"-H", auth, "-H", guard}).status == 200);
    CHECK(
        eventually([&] { return f.monitor.get_component_stats().at("db").state == taskmon::ComponentState::stopped; }));
    CHECK(post_action(f, "/api/components/db/enable", {"-H", auth, "-H", guard}).status == 200);
    CHECK(post_action(f, "/api/components/db/reset", {"-H", auth, "-H", guard}).status == 200);
    CHECK(post_action(f, "/api/components/nope/restart", {"-H", auth, "-H", guard}).status == 409);
    CHECK(eventually([&] { return f.server->stats().actions == 4 && f.server->stats().actions_refused == 11; }));
    CHECK(f.log->messages(spdlog::level::warn, "health server: operator action action=").size() == 4);
    CHECK(f.log->messages(spdlog::level::warn, "health server: operator action refused").size() == 11);
    for (const auto& line : f.log->messages(spdlog::level::warn, "health server: operator action")) {
        CHECK(line.find(test_token) == std::string::npos);  // the token is never logged
    }
    CHECK(curl({f.url("/ui")}).body.find("<body data-actions=\"1\" data-run-actions=\"0\">") != std::string::npos);
    // Other POSTs stay 405.
    CHECK(curl({"-X", "POST", "-H", auth, f.url("/livez")}).status == 405);
}

TEST_CASE("HealthServer: an action token shorter than 16 characters or with spaces is refused") {
    asio::io_context io;
    using S = taskmon::HealthServerSettings;
    CHECK_THROWS_AS(taskmon::HealthServer(io.get_executor(), {.action_token = "secret"}, S{.port = 0}, quiet_logger()),
                    std::invalid_argument);
    CHECK_THROWS_AS(
        taskmon::HealthServer(io.get_executor(), {.action_token = "0123456789 abcdef"}, S{.port = 0}, quiet_logger()),
        std::invalid_argument);
}

TEST_CASE("HealthServer: a Supervisor run's state is in /api/tree and each change arrives live on /events") {
    Fixture f{{}, {}, {}, true};
    REQUIRE(eventually([&] { return f.run_view.state().status == taskmon::AgentStatus::running; }));
    const auto tree = curl({f.url("/api/tree")});
    CHECK(tree.status == 200);
    CHECK(tree.body.find(R"("runs":[{"name":"robot","status":"running","step":)") != std::string::npos);
    CHECK(tree.body.find(R"("format":"taskmon.monitor.v1")") != std::string::npos);  // the monitor's snapshot

    auto stream = open_stream(f.port());
    REQUIRE(stream->receive_until("event: snapshot\ndata: {", 10s));
    REQUIRE(stream->receive_until(R"("runs":[{"name":"robot",)", 10s));
    f.robot->pause();
    REQUIRE(stream->receive_until(R"(data: {"type":"run_state","run":{"name":"robot","status":"paused",)", 10s));
    const auto& text = stream->received();
    const auto paused = text.find(R"("status":"paused")");
    CHECK(text.find(R"("paused":true,"shedding":false,"waiting_for_input":false,"interrupt_id":null,)"
                    R"("reason":"pause() called"})",
                    paused) != std::string::npos);
    CHECK(f.run_view.state().paused);
    CHECK(eventually([&] { return f.server->stats().events_published >= 1; }));
    // Not a MonitorEvent, but with an id as every event (a reconnecting client resumes after it).
    const auto data = text.find(R"(data: {"type":"run_state")");
    const auto id = text.rfind("\n\nid: ", data);
    REQUIRE(id != std::string::npos);
    CHECK(text.find('\n', id + 2) == data - 1);
    f.robot->resume();
    CHECK(stream->receive_until(R"({"type":"run_state","run":{"name":"robot","status":"running",)", 10s));
}

TEST_CASE("HealthServer: run actions are checked like component actions and every action is published") {
    {
        Fixture off;  // no run_act: refused as disabled
        CHECK(post_action(off, "/api/runs/robot/pause",
                          {"-H", std::string{"Authorization: Bearer "} + test_token, "-H", "X-Taskmon-Action: 1"})
                  .status == 403);
    }
    Fixture f{{}, {}, test_token, true};
    REQUIRE(eventually([&] { return f.run_view.state().status == taskmon::AgentStatus::running; }));
    auto stream = open_stream(f.port());
    REQUIRE(stream->receive_until("event: snapshot\ndata: {", 10s));
    const std::string auth = std::string{"Authorization: Bearer "} + test_token;
    const std::string guard = "X-Taskmon-Action: 1";
    CHECK(post_action(f, "/api/runs/robot/pause", {"-H", guard}).status == 401);
    CHECK(
        post_action(f, "/api/runs/robot/pause", {"-H", "Authorization: Bearer 0123456789abcdef", "-H", guard}).status ==
        403);
    CHECK(post_action(f, "/api/runs/robot/pause", {"-H", auth}).status == 403);  // the CSRF guard
    CHECK(post_action(f, "/api/runs/robot/jump", {"-H", auth, "-H", guard}).status == 400);
    CHECK(post_action(f, "/api/runs/nobody/pause", {"-H", auth, "-H", guard}).status == 409);
    CHECK(f.run_view.state().status == taskmon::AgentStatus::running);  // nothing was done so far

    const auto paused = post_action(f, "/api/runs/robot/pause", {"-H", auth, "-H", guard});
    CHECK(paused.status == 200);
    CHECK(paused.body == R"({"action":"pause","run":"robot","status":"done"})"
                         "\n");
    REQUIRE(stream->receive_until(R"({"type":"operator_action","target":"run","name":"robot","action":"pause",)"
                                  R"("origin":{"via":"http_api","remote_address":"127.0.0.1"},"time_ns":)",
                                  10s));
    REQUIRE(stream->receive_until(R"({"type":"run_state","run":{"name":"robot","status":"paused",)", 10s));
    CHECK(post_action(f, "/api/runs/robot/resume", {"-H", auth, "-H", guard}).status == 200);
    REQUIRE(stream->receive_until(R"({"type":"run_state","run":{"name":"robot","status":"running",)", 10s));
    CHECK(post_action(f, "/api/components/db/restart", {"-H", auth, "-H", guard}).status == 200);
    REQUIRE(stream->receive_until(R"({"type":"operator_action","target":"component","name":"db","action":"restart",)"
                                  R"("origin":{"via":"http_api","remote_address":"127.0.0.1"},)",
                                  10s));
    CHECK(post_action(f, "/api/runs/robot/stop", {"-H", auth, "-H", guard}).status == 200);
    REQUIRE(stream->receive_until(R"({"type":"run_state","run":{"name":"robot","status":"stopped",)", 10s));

    CHECK(eventually([&] { return f.server->stats().actions == 4 && f.server->stats().actions_refused == 5; }));
    CHECK(f.log
              ->messages(spdlog::level::warn,
                         "health server: operator action action=pause run=\"robot\" "
                         "from=127.0.0.1")
              .size() == 1);
    // The 400 (no such action) is logged with the action parsed so far, the default.
    CHECK(f.log->messages(spdlog::level::warn, "health server: operator action refused action=pause run=").size() == 5);
    CHECK(curl({f.url("/ui")}).body.find("<body data-actions=\"1\" data-run-actions=\"1\">") != std::string::npos);
}

TEST_CASE(
    "EventStreamHub: one shared log, each stream reads from its own position; a stream too far behind overflows") {
    taskmon::detail::EventStreamHub hub{3};
    const auto event = [](std::uint64_t sequence) {
        taskmon::MonitorEvent e;
        e.sequence = sequence;
        return e;
    };
    const auto sequences = [](const taskmon::detail::EventStreamHub::Taken& taken) {
        std::vector<std::uint64_t> out;
        for (const auto& e : taken.events) out.push_back(e->event.sequence);
        return out;
    };
    CHECK_FALSE(hub.publish(event(1)));    // no stream: nothing kept, nobody to wake
    CHECK(hub.add(7).last_sequence == 1);  // its snapshot covers sequence 1
    CHECK(hub.add(8).last_sequence == 1);
    CHECK(hub.publish(event(2)));        // the first of a burst asks for a wake-up ...
    CHECK_FALSE(hub.publish(event(3)));  // ... the rest of it does not
    hub.wake_done();
    CHECK(sequences(hub.take(7, 2)) == std::vector<std::uint64_t>{3});  // up to 2 was in its snapshot
    CHECK(hub.publish(event(4)));
    CHECK(sequences(hub.take(7)) == std::vector<std::uint64_t>{4});
    CHECK(hub.publish_json("{}") == false);  // a wake-up is pending already
    // Stream 8 has read nothing: 2, 3, 4 and the JSON event are four, one more than the capacity.
    CHECK(hub.overflowed(8));
    CHECK(hub.take(8).overflowed);
    CHECK_FALSE(hub.overflowed(7));
    const auto taken = hub.take(7);
    REQUIRE(taken.events.size() == 1);
    CHECK_FALSE(taken.events[0]->monitor);
    CHECK(taken.events[0]->json == "{}");
    hub.remove(8);
    CHECK(hub.take(8).events.empty());  // a removed stream reads nothing
    CHECK(hub.last_sequence() == 4);
}

TEST_CASE(
    "EventStreamHub: with retain, the last events are kept with no stream open and a stream resumes after an "
    "id of its epoch") {
    taskmon::detail::EventStreamHub hub{8, 3};
    const auto event = [](std::uint64_t sequence) {
        taskmon::MonitorEvent e;
        e.sequence = sequence;
        return e;
    };
    const auto id = [&](std::uint64_t position) { return hub.epoch() + "-" + std::to_string(position); };
    using Resume = taskmon::detail::EventStreamHub::Resume;
    for (std::uint64_t s = 1; s <= 5; ++s) CHECK_FALSE(hub.publish(event(s)));  // nobody to wake
    // Positions 0..4 were published; 2, 3, 4 are kept. A client that read up to id 2 (position 1) missed 3.
    CHECK(hub.resume(1, id(1)) == Resume::not_retained);
    CHECK(hub.resume(1, id(6)) == Resume::not_retained);  // not published yet
    CHECK(hub.resume(1, "x" + id(2)) == Resume::foreign);
    CHECK(hub.resume(1, hub.epoch() + "-2x") == Resume::foreign);
    REQUIRE(hub.resume(1, id(2)) == Resume::resumed);
    std::vector<std::uint64_t> got;
    for (const auto& e : hub.take(1).events) got.push_back(e->event.sequence);
    CHECK(got == std::vector<std::uint64_t>{3, 4, 5});
    CHECK(hub.resume(2, id(5)) == Resume::resumed);  // read everything: resumes with nothing missed
    CHECK(hub.take(2).events.empty());
    const auto opened = hub.add(3);
    CHECK(opened.last_sequence == 5);
    CHECK(opened.position == 5);
    std::string text;
    hub.append_events(text, {std::make_shared<taskmon::detail::StreamedEvent>(
                                taskmon::detail::StreamedEvent{{}, R"({"type":"x"})", false, 41})});
    CHECK(text == "id: " + id(42) + "\ndata: {\"type\":\"x\"}\n\n");
    taskmon::detail::EventStreamHub disabled{8};
    CHECK(disabled.resume(1, disabled.epoch() + "-0") == Resume::disabled);
    CHECK(disabled.epoch() != hub.epoch());
}
