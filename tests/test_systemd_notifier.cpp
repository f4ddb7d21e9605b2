// Tests for taskmon/ops/systemd_notifier.hpp: the sd_notify datagrams, received on a real unix datagram socket the
// test binds and passes in as NOTIFY_SOCKET (injected, never setenv), with a real TaskMonitor in virtual time.
#include <taskmon/ops/systemd_notifier.hpp>
#include <taskmon/task_monitor.hpp>
#include <taskmon/testing/manual_clock.hpp>

#include "monitor_harness.hpp"
#include "taskmon_catch.hpp"

#include <asio/co_spawn.hpp>
#include <asio/io_context.hpp>
#include <asio/local/datagram_protocol.hpp>

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <exception>
#include <stdexcept>
#include <string>
#include <vector>

using namespace std::chrono_literals;
using taskmon::ComponentState;
using taskmon::HealthReport;
using taskmon::SystemdEnvironment;
using taskmon::SystemdNotifierOptions;
using taskmon::testing::ManualClock;
using taskmon_test::factory_of;
using taskmon_test::failing_now;
using taskmon_test::Harness;
using taskmon_test::Monitor;
using taskmon_test::Script;

namespace {

using Notifier = taskmon::BasicSystemdNotifier<ManualClock>;
using Duration = ManualClock::duration;
using Protocol = asio::local::datagram_protocol;

/// A bound unix datagram socket standing in for systemd's notification socket: a file under a fresh temporary
/// directory, or an abstract name ("@...").
class NotifySocket {
public:
    enum class Kind { path, abstract };

    explicit NotifySocket(Kind kind = Kind::path) {
        static std::atomic<int> counter{0};
        const auto unique = std::to_string(::getpid()) + "-" + std::to_string(counter++);
        if (kind == Kind::abstract) {
            const std::string name = "taskmon-test-notify-" + unique;
            socket_.bind(Protocol::endpoint{std::string{'\0'} + name});
            address_ = "@" + name;
        } else {
            std::string dir = "/tmp/taskmon-notify-XXXXXX";
            REQUIRE(::mkdtemp(dir.data()) != nullptr);
            dir_ = dir;
            address_ = dir + "/notify";
            socket_.bind(Protocol::endpoint{address_});
        }
        socket_.non_blocking(true);
    }

    ~NotifySocket() {
        socket_.close();
        if (!dir_.empty()) {
            ::unlink(address_.c_str());
            ::rmdir(dir_.c_str());
        }
    }

    NotifySocket(const NotifySocket&) = delete;
    NotifySocket& operator=(const NotifySocket&) = delete;

    /// The NOTIFY_SOCKET value.
    [[nodiscard]] const std::string& address() const { return address_; }

    /// Every datagram queued so far.
    std::vector<std::string> drain() {
        std::vector<std::string> out;
        std::vector<char> buffer(8192);
        for (;;) {
            std::error_code ec;
            const auto n = socket_.receive(asio::buffer(buffer), 0, ec);
            if (ec == asio::error::would_block) {
                return out;
            }
            REQUIRE_FALSE(ec);
            out.emplace_back(buffer.data(), n);
        }
    }

private:
    asio::io_context io_;
    Protocol::socket socket_{io_, Protocol{}};
    std::string dir_;
    std::string address_;
};

SystemdEnvironment environment(const NotifySocket& socket, std::optional<std::chrono::microseconds> watchdog = {}) {
    return SystemdEnvironment{socket.address(), watchdog};
}

struct Received {
    Duration at;
    std::string message;
};

/// Runs virtual time for `total` in steps of `step`, draining the socket after each; stamps each datagram with
/// the virtual time at which it was seen.
std::vector<Received> run_collecting(Harness& h, NotifySocket& socket, Duration total, Duration step = 500ms) {
    std::vector<Received> out;
    const auto start = h.time.now();
    h.runner.poll();  // what is ready now (a posted start()) counts at time 0
    for (auto& m : socket.drain()) {
        out.push_back({h.time.now() - start, std::move(m)});
    }
    while (h.time.now() - start < total) {
        h.runner.run_for(step);
        for (auto& m : socket.drain()) {
            out.push_back({h.time.now() - start, std::move(m)});
        }
    }
    return out;
}

bool has_line(const std::string& message, const std::string& line) {
    std::size_t pos = 0;
    while (pos <= message.size()) {
        const auto end = std::min(message.find('\n', pos), message.size());
        if (message.compare(pos, end - pos, line) == 0 && end - pos == line.size()) {
            return true;
        }
        pos = end + 1;
    }
    return false;
}

std::vector<Duration> times_with(const std::vector<Received>& received, const std::string& line) {
    std::vector<Duration> out;
    for (const auto& r : received) {
        if (has_line(r.message, line)) {
            out.push_back(r.at);
        }
    }
    return out;
}

std::vector<std::string> status_lines(const std::vector<Received>& received) {
    std::vector<std::string> out;
    for (const auto& r : received) {
        std::size_t pos = 0;
        while (pos < r.message.size()) {
            const auto end = std::min(r.message.find('\n', pos), r.message.size());
            const auto line = r.message.substr(pos, end - pos);
            if (line.rfind("STATUS=", 0) == 0) {
                out.push_back(line.substr(7));
            }
            pos = end + 1;
        }
    }
    return out;
}

void close_notifier(Harness& h, Notifier& notifier) {
    bool done = false;
    asio::co_spawn(h.io, notifier.close(), [&](std::exception_ptr e) {
        REQUIRE_FALSE(e);
        done = true;
    });
    REQUIRE(h.runner.run_until([&] { return done; }, 1min));
}

/// Gives up at once: with max_restart_attempts = 2 after two restarts one second apart.
taskmon::RestartPolicy quick_give_up() { return {.max_restart_attempts = 2, .base_backoff = 1s, .max_backoff = 1s}; }

}  // namespace

TEST_CASE("systemd environment: parsing follows sd_notify and sd_watchdog_enabled") {
    auto env = SystemdEnvironment::parse(nullptr, nullptr, nullptr, 42);
    CHECK(env.notify_socket.empty());
    CHECK_FALSE(env.watchdog_interval);

    env = SystemdEnvironment::parse("/run/systemd/notify", "20000000", nullptr, 42);
    CHECK(env.notify_socket == "/run/systemd/notify");
    CHECK(env.watchdog_interval == std::chrono::microseconds{20'000'000});

    env = SystemdEnvironment::parse("@abstract", "", "", 42);  // empty counts as unset
    CHECK(env.notify_socket == "@abstract");
    CHECK_FALSE(env.watchdog_interval);

    // WATCHDOG_PID: the watchdog is for that process only.
    CHECK(SystemdEnvironment::parse("/n", "1000000", "42", 42).watchdog_interval);
    CHECK_FALSE(SystemdEnvironment::parse("/n", "1000000", "43", 42).watchdog_interval);

    const auto fails_naming = [](const char* socket, const char* usec, const char* pid, const std::string& what) {
        try {
            (void)SystemdEnvironment::parse(socket, usec, pid, 42);
            FAIL("no exception for " << what);
        } catch (const std::invalid_argument& e) {
            CHECK_THAT(e.what(), Catch::Matchers::Contains(what));
        }
    };
    fails_naming("relative/path", nullptr, nullptr, "NOTIFY_SOCKET");
    fails_naming("vsock:2:1234", nullptr, nullptr, "NOTIFY_SOCKET");
    fails_naming("@", nullptr, nullptr, "NOTIFY_SOCKET");
    fails_naming(("/" + std::string(200, 'x')).c_str(), nullptr, nullptr, "NOTIFY_SOCKET");
    fails_naming("/n", "0", nullptr, "WATCHDOG_USEC");
    fails_naming("/n", "-5", nullptr, "WATCHDOG_USEC");
    fails_naming("/n", "10s", nullptr, "WATCHDOG_USEC");
    fails_naming("/n", "1000", "me", "WATCHDOG_PID");
}

TEST_CASE("systemd notifier: bad arguments throw and start twice or after close is a logic error") {
    Harness h;
    NotifySocket socket;
    const auto health = [] { return HealthReport{}; };
    CHECK_THROWS_AS(Notifier(asio::any_io_executor{}, health, environment(socket)), std::invalid_argument);
    CHECK_THROWS_AS(Notifier(h.io.get_executor(), nullptr, environment(socket)), std::invalid_argument);
    CHECK_THROWS_AS(Notifier(h.io.get_executor(), health, environment(socket), {.poll_interval = -1ms}),
                    std::invalid_argument);
    CHECK_THROWS_AS(Notifier(h.io.get_executor(), health, environment(socket), {.max_status_size = 3}),
                    std::invalid_argument);

    Notifier notifier{h.io.get_executor(), health, environment(socket), {}, h.logger};
    notifier.start();
    CHECK_THROWS_AS(notifier.start(), std::logic_error);
    close_notifier(h, notifier);
    Notifier closed{h.io.get_executor(), health, environment(socket), {}, h.logger};
    close_notifier(h, closed);
    CHECK_THROWS_AS(closed.start(), std::logic_error);
}

TEST_CASE("systemd notifier: READY=1 once every critical component runs and STATUS on changes only") {
    Harness h;
    NotifySocket socket;
    Monitor monitor{h.io.get_executor(), {}, h.logger};
    Script db;
    Script http = failing_now(1);  // fails at once, runs after its restart 2 s later
    monitor.supervise("db", factory_of(db));
    monitor.supervise("http", factory_of(http), taskmon::RestartPolicy{.base_backoff = 2s});
    h.runner.poll();
    REQUIRE(monitor.get_component_stats().at("http").state == ComponentState::restarting);

    Notifier notifier{h.io.get_executor(),
                      [&] { return taskmon::check_health(monitor); },
                      environment(socket),
                      {.poll_interval = 0ms},
                      h.logger};
    auto refresh = monitor.subscribe([&](const taskmon::MonitorEvent&) { notifier.update(); });
    notifier.start();

    const auto received = run_collecting(h, socket, 10s);
    REQUIRE(received.size() == 2);
    CHECK(received[0].at == 0s);
    CHECK(received[0].message ==
          "STATUS=live, not ready: http: restarting (last error: std::runtime_error: Connection lost)");
    CHECK(received[1].at == 2s);  // the restart's event triggered update()
    CHECK(received[1].message == "READY=1\nSTATUS=live, ready (2 components)");
    CHECK(notifier.stats().ready_sent);
    CHECK(notifier.stats().messages_sent == 2);
    CHECK_FALSE(notifier.ping_interval());  // no WATCHDOG_USEC: no pings

    // Falling back to not ready sends STATUS, but READY=1 is never repeated.
    monitor.restart("http");
    const auto later = run_collecting(h, socket, 5s);
    CHECK(times_with(later, "READY=1").empty());
    CHECK(
        status_lines(later) ==
        std::vector<std::string>{"live, not ready: http: restarting (last error: std::runtime_error: Connection lost)",
                                 "live, ready (2 components)"});

    refresh.unsubscribe();
    close_notifier(h, notifier);
    h.close(monitor);
}

TEST_CASE("systemd notifier: without update() the poll timer keeps STATUS and READY current") {
    Harness h;
    NotifySocket socket;
    Monitor monitor{h.io.get_executor(), {}, h.logger};
    Script http = failing_now(1);
    monitor.supervise("http", factory_of(http), taskmon::RestartPolicy{.base_backoff = 2500ms});
    h.runner.poll();
    Notifier notifier{h.io.get_executor(),
                      [&] { return taskmon::check_health(monitor); },
                      environment(socket),
                      {.poll_interval = 1s},
                      h.logger};
    notifier.start();
    const auto received = run_collecting(h, socket, 5s);
    CHECK(times_with(received, "READY=1") == std::vector<Duration>{3s});  // first poll after the restart at 2.5 s
    close_notifier(h, notifier);
    h.close(monitor);
}

TEST_CASE("systemd notifier: WATCHDOG=1 every half of WATCHDOG_USEC in virtual time") {
    Harness h;
    NotifySocket socket;
    Monitor monitor{h.io.get_executor(), {}, h.logger};
    Script db;
    monitor.supervise("db", factory_of(db));
    h.runner.poll();
    Notifier notifier{h.io.get_executor(),
                      [&] { return taskmon::check_health(monitor); },
                      environment(socket, std::chrono::microseconds{10s}),
                      {.poll_interval = 0ms},
                      h.logger};
    CHECK(notifier.ping_interval() == std::chrono::microseconds{5s});
    notifier.start();

    const auto received = run_collecting(h, socket, 31s);
    CHECK(times_with(received, "WATCHDOG=1") == std::vector<Duration>{0s, 5s, 10s, 15s, 20s, 25s, 30s});
    CHECK(received.front().message == "READY=1\nSTATUS=live, ready (1 component)\nWATCHDOG=1");
    CHECK(received[1].message == "WATCHDOG=1");  // STATUS unchanged: not repeated
    CHECK(status_lines(received).size() == 1);
    CHECK(notifier.stats().watchdog_pings == 7);
    close_notifier(h, notifier);
    h.close(monitor);
}

TEST_CASE("systemd notifier: a critical give-up stops the pings and calls on_not_live once") {
    Harness h;
    NotifySocket socket;
    Monitor monitor{h.io.get_executor(), {}, h.logger};
    Script db;
    Script cache = failing_now(100);
    monitor.supervise("db", factory_of(db));
    monitor.supervise("cache", factory_of(cache), quick_give_up());
    std::vector<HealthReport> not_live_reports;
    std::vector<Duration> not_live_at;
    const bool trigger = GENERATE(false, true);
    CAPTURE(trigger);
    Notifier notifier{h.io.get_executor(),
                      [&] { return taskmon::check_health(monitor); },
                      environment(socket, std::chrono::microseconds{4s}),
                      {.poll_interval = 0ms,
                       .trigger_watchdog = trigger,
                       .on_not_live =
                           [&](const HealthReport& r) {
                               not_live_reports.push_back(r);
                               not_live_at.push_back(h.time.elapsed());
                           }},
                      h.logger};
    auto refresh = monitor.subscribe([&](const taskmon::MonitorEvent&) { notifier.update(); });
    h.runner.poll();  // cache failed once: not ready from the start
    notifier.start();

    // cache fails at 0 s, restarts at 1 s and 2 s (failing each time), and gives up at 2 s.
    const auto received = run_collecting(h, socket, 20s);
    CHECK(times_with(received, "WATCHDOG=1") == std::vector<Duration>{0s, 2s});
    const auto statuses = status_lines(received);
    REQUIRE_FALSE(statuses.empty());
    CHECK(statuses.back() == "not live: cache: gave up after 2 restarts: std::runtime_error: Connection lost");
    CHECK(times_with(received, "WATCHDOG=trigger") == (trigger ? std::vector<Duration>{2s} : std::vector<Duration>{}));
    REQUIRE(not_live_reports.size() == 1);
    CHECK(not_live_at == std::vector<Duration>{2s});
    CHECK(not_live_reports[0].liveness_failures.at(0).subject == "cache");
    CHECK_FALSE(notifier.stats().live);
    CHECK(h.lines_with("liveness lost, watchdog pings stop").size() == 1);

    // A manual restart brings liveness back: the pings resume.
    cache.lifetimes.clear();
    monitor.restart("cache");
    const auto after = run_collecting(h, socket, 9s);
    CHECK(times_with(after, "WATCHDOG=1").size() == 4);
    CHECK(status_lines(after).back() == "live, ready (2 components)");
    CHECK(notifier.stats().live);
    CHECK(not_live_reports.size() == 1);

    refresh.unsubscribe();
    close_notifier(h, notifier);
    h.close(monitor);
}

TEST_CASE("systemd notifier: close() sends STOPPING=1 and nothing after") {
    Harness h;
    const auto kind = GENERATE(NotifySocket::Kind::path, NotifySocket::Kind::abstract);
    NotifySocket socket{kind};
    CAPTURE(socket.address());
    Monitor monitor{h.io.get_executor(), {}, h.logger};
    Script db;
    monitor.supervise("db", factory_of(db));
    h.runner.poll();
    Notifier notifier{h.io.get_executor(),
                      [&] { return taskmon::check_health(monitor); },
                      environment(socket, std::chrono::microseconds{2s}),
                      {},
                      h.logger};
    notifier.start();
    auto received = run_collecting(h, socket, 3s);
    CHECK(times_with(received, "WATCHDOG=1") == std::vector<Duration>{0s, 1s, 2s, 3s});

    close_notifier(h, notifier);
    close_notifier(h, notifier);  // idempotent
    const auto closing = socket.drain();
    REQUIRE(closing.size() == 1);
    CHECK(closing[0] == "STOPPING=1\nSTATUS=stopping");
    notifier.update();  // a no-op now
    h.close(monitor);
    CHECK(run_collecting(h, socket, 10s).empty());
}

TEST_CASE("systemd notifier: without NOTIFY_SOCKET nothing is sent but on_not_live still fires") {
    Harness h;
    Monitor monitor{h.io.get_executor(), {}, h.logger};
    Script cache = failing_now(100);
    monitor.supervise("cache", factory_of(cache), quick_give_up());
    int not_live = 0;
    Notifier notifier{h.io.get_executor(),
                      [&] { return taskmon::check_health(monitor); },
                      SystemdEnvironment::parse(nullptr, "1000000", nullptr, 1),
                      {.on_not_live = [&](const HealthReport&) { ++not_live; }},
                      h.logger};
    CHECK_FALSE(notifier.ping_interval());
    notifier.start();
    h.runner.run_for(10s);
    CHECK(not_live == 1);
    CHECK(notifier.stats().messages_sent == 0);
    CHECK(notifier.stats().send_failures == 0);
    close_notifier(h, notifier);
    h.close(monitor);
}

TEST_CASE("systemd notifier: a socket nobody listens on is counted and logged and retried") {
    Harness h;
    std::string dir = "/tmp/taskmon-notify-XXXXXX";
    REQUIRE(::mkdtemp(dir.data()) != nullptr);
    Notifier notifier{h.io.get_executor(),
                      [] { return HealthReport{}; },
                      SystemdEnvironment{dir + "/nobody", std::nullopt},
                      {.poll_interval = 1s},
                      h.logger};
    notifier.start();
    h.runner.run_for(2s);
    const auto stats = notifier.stats();
    CHECK(stats.messages_sent == 0);
    CHECK(stats.send_failures == 3);  // start, 1 s, 2 s: READY=1 is retried until it goes through
    CHECK_FALSE(stats.ready_sent);
    CHECK(h.lines_with("sending to NOTIFY_SOCKET").size() == 3);
    close_notifier(h, notifier);
    ::rmdir(dir.c_str());
}

TEST_CASE("systemd notifier: a throwing health source counts as not live and long STATUS is cut") {
    Harness h;
    NotifySocket socket;
    bool fail = false;
    Notifier notifier{h.io.get_executor(),
                      [&] {
                          if (fail) throw std::runtime_error("stats unavailable");
                          HealthReport r;
                          r.ready = false;
                          r.readiness_failures.push_back({"big", std::string(5000, 'x')});
                          return r;
                      },
                      environment(socket, std::chrono::microseconds{2s}),
                      {.poll_interval = 0ms},
                      h.logger};
    notifier.start();
    auto received = run_collecting(h, socket, 1500ms);
    REQUIRE(received.size() == 2);
    const auto statuses = status_lines(received);
    REQUIRE(statuses.size() == 1);
    CHECK(statuses[0].size() == 1024);
    CHECK(statuses[0].substr(1021) == "...");

    fail = true;
    received = run_collecting(h, socket, 3s);
    CHECK(times_with(received, "WATCHDOG=1").empty());
    CHECK(status_lines(received) == std::vector<std::string>{"not live: health check: threw stats unavailable"});
    CHECK(h.lines_with("the health source threw reason=\"stats unavailable\"").size() >= 1);
    close_notifier(h, notifier);
}
