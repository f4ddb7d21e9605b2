// The live view's costs (HealthServer's /events streams), measured in one run:
//   - BM_restart_events: what the server's listener (EventStreamHub::publish: a copy of the event, a shared
//     pointer pushed into the queue of every stream) adds on the monitor's path, against the same monitor without
//     a server (argument -1), with 0, 1, 10 and 200 streams open. Restarts of a component that fails at once (three
//     events each: failed, restart_scheduled, restarted); the server's thread is stopped once the streams are
//     open, so that only the listener's work is measured (the queues hold every event: no stream overflows);
//     with 1 and 10 streams also with the server's thread running (second argument 1); with the events kept for
//     Last-Event-ID (third argument 1, the default) and, with 0 and 1 streams, without (0). CPU time of the
//     monitor's thread; the difference per restart divided by three is the cost per event.
//   - BM_stream_memory: heap bytes (mallinfo2, every arena) per open stream with an empty queue, and per restart
//     while the streams' queues fill (minus the same monitor's with no stream open: bytes per queued event).
//     The clients are raw sockets of this process that allocate nothing on the heap.
//   - BM_update_latency_10000: a monitor of 10,000 components and the server on one io_context on a thread of
//     their own, one stream read by a loopback client: the time from a restart_requested event (taken in a
//     listener subscribed before the server's) to the client having read its `data:` line; 20 samples, each
//     bounded to 10 s; with the client's delayed ACK (as a browser's) and with TCP_QUICKACK. Also the time of the
//     stream's snapshot and of monitor_snapshot_json() at 10,000 components.
#include <taskmon/ops/health_server.hpp>
#include <taskmon/ops/monitor_json.hpp>
#include <taskmon/task_monitor.hpp>

#include "task_monitor_cases.hpp"

#include <arpa/inet.h>
#include <asio/co_spawn.hpp>
#include <asio/io_context.hpp>
#include <asio/post.hpp>
#include <asio/use_future.hpp>
#include <benchmark/benchmark.h>
#include <fmt/format.h>
#include <malloc.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace {

using namespace std::chrono_literals;
using taskmon_bench::close_monitor;
using taskmon_bench::fail_at_once;
using taskmon_bench::null_logger;
using taskmon_bench::run_until_next_start;
using Clock = std::chrono::steady_clock;

constexpr int restart_iterations = 10'000;
constexpr std::size_t max_streams = 200;  // 30,000 events: 200 queues of them hold ~100 MB

/// An io_context on a thread of its own that can be stopped (the thread joined) and run again.
struct IoThread {
    asio::io_context io{1};
    asio::executor_work_guard<asio::io_context::executor_type> work{io.get_executor()};
    std::thread thread;

    void start() {
        io.restart();
        thread = std::thread{[this] { io.run(); }};
    }
    void pause() {
        io.stop();
        if (thread.joinable()) thread.join();
    }
    ~IoThread() {
        work.reset();
        pause();
    }
};

/// A blocking loopback client socket: no heap allocation of its own.
struct Client {
    int fd = -1;

    explicit Client(std::uint16_t port) {
        fd = ::socket(AF_INET, SOCK_STREAM, 0);
        sockaddr_in addr{};
        addr.sin_family = AF_INET;
        addr.sin_port = htons(port);
        addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        if (fd < 0 || ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
            throw std::runtime_error{"connect failed"};
        }
        constexpr std::string_view request = "GET /events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
        if (::write(fd, request.data(), request.size()) != static_cast<ssize_t>(request.size())) {
            throw std::runtime_error{"write failed"};
        }
    }
    Client(const Client&) = delete;
    Client& operator=(const Client&) = delete;
    ~Client() {
        if (fd >= 0) ::close(fd);
    }

    /// Reads until the text read since the last call contains `needle`; false after `timeout`. Keeps the text
    /// after the match's end for the next call.
    bool read_until(std::string_view needle, std::chrono::milliseconds timeout) {
        const auto until = Clock::now() + timeout;
        for (;;) {
            if (const auto at = text.find(needle); at != std::string::npos) {
                text.erase(0, at + needle.size());
                return true;
            }
            const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - Clock::now()).count();
            if (left <= 0) return false;
            if (quick_ack) {
                int one = 1;
                ::setsockopt(fd, IPPROTO_TCP, TCP_QUICKACK, &one, sizeof one);
            }
            pollfd p{fd, POLLIN, 0};
            if (::poll(&p, 1, static_cast<int>(left)) <= 0) continue;
            char buffer[65536];
            const auto n = ::read(fd, buffer, sizeof buffer);
            if (n <= 0) return false;
            text.append(buffer, static_cast<std::size_t>(n));
        }
    }

    std::string text;
    /// Acknowledge every segment at once (TCP_QUICKACK, re-armed before each read) instead of Linux's delayed
    /// ACK (up to 40 ms): the second argument of BM_update_latency_10000, to show what the delayed ACK costs a
    /// stream whose socket has Nagle's algorithm on.
    bool quick_ack = false;
};

template <typename Awaitable>
void run_on(asio::io_context& io, Awaitable op) {
    auto done = asio::co_spawn(io, std::move(op), asio::use_future);
    if (done.wait_for(60s) != std::future_status::ready) throw std::runtime_error{"timed out"};
    done.get();
}

std::size_t heap_in_use() { return mallinfo2().uordblks; }

/// A monitor on the calling thread, optionally a server on a thread of its own with `streams` streams open and
/// read up to their snapshot.
struct LiveView {
    asio::io_context io{1};
    asio::executor_work_guard<asio::io_context::executor_type> work{io.get_executor()};
    taskmon::TaskMonitor monitor{io.get_executor(), taskmon_bench::restart_at_once(), null_logger()};
    IoThread server_thread;
    std::optional<taskmon::HealthServer> server;
    // Allocated before any stream is opened, so that opening one allocates only on the server's side.
    std::unique_ptr<std::optional<Client>[]> clients = std::make_unique<std::optional<Client>[]>(max_streams);
    std::size_t opened = 0;

    /// `replay`: the server keeps events for a reconnecting client (event_replay_capacity's default), else 0.
    explicit LiveView(int streams, bool replay = true) {
        if (streams < 0) return;
        taskmon::HealthServerSettings settings;
        if (!replay) settings.event_replay_capacity = 0;
        settings.port = 0;
        settings.max_event_clients = max_streams;
        settings.event_queue_capacity = 4 * restart_iterations;  // more than the events of a case: none overflows
        settings.event_keepalive = 1h;
        server.emplace(
            server_thread.io.get_executor(),
            taskmon::HealthEndpoints{
                .tree = [this](std::uint64_t last) { return taskmon::monitor_snapshot_json(monitor, last); },
                .subscribe = [this](taskmon::MonitorEventListener l) { return monitor.subscribe(std::move(l)); }},
            settings, null_logger());
        server_thread.start();
        open(static_cast<std::size_t>(streams));
    }

    void open(std::size_t streams) {
        const auto port = server->local_endpoint().port();
        for (std::size_t i = 0; i < streams; ++i) {
            auto& client = clients[opened++].emplace(port);
            if (!client.read_until("event: snapshot\ndata: ", 10s) || !client.read_until("\n\n", 10s)) {
                throw std::runtime_error{"no snapshot"};
            }
            client.text.clear();
            client.text.shrink_to_fit();  // no heap left on the client's side
        }
        while (server->stats().event_clients != opened) {
            std::this_thread::sleep_for(1ms);
        }
    }

    ~LiveView() {
        close_monitor(io, monitor);
        if (server) {
            clients.reset();
            server_thread.pause();
            server_thread.start();
            run_on(server_thread.io, server->close());
        }
    }
};

/// Restarts of a component that fails at once; the arguments: streams open (-1: no server), whether the
/// server's thread keeps running (1: it wakes and writes the streams, whose clients do not read: the kernel's
/// socket buffers take the first few hundred KB, then the writes wait; the listener's wake-up post() is then
/// paid once per burst) or is stopped (0: the listener's own work only), and whether the server keeps events for
/// Last-Event-ID (1: event_replay_capacity's default, 1,024; 0: off).
void BM_restart_events(benchmark::State& state) {
    const auto streams = static_cast<int>(state.range(0));
    LiveView view{streams, state.range(2) != 0};
    if (view.server && state.range(1) == 0) view.server_thread.pause();
    long long starts = 0;
    view.monitor.supervise("c", [&] { return fail_at_once(starts); });
    while (starts == 0) {
        view.io.run_one();
    }
    for (auto _ : state) {
        const auto before = starts;
        run_until_next_start(view.io, starts, before);
    }
    state.SetItemsProcessed(starts);
    if (view.server) {
        const auto stats = view.server->stats();
        state.counters["streams"] = static_cast<double>(stats.event_clients);
        state.counters["dropped"] = static_cast<double>(stats.event_clients_dropped);
    }
}
BENCHMARK(BM_restart_events)
    ->ArgsProduct({{-1, 0, 1, 10, 200}, {0}, {1}})
    ->Args({0, 0, 0})
    ->Args({1, 0, 0})
    ->Args({1, 1, 1})
    ->Args({1, 1, 0})
    ->Args({10, 1, 1})
    ->Iterations(restart_iterations);

/// Heap per open stream (empty queue) and per restart while the queues fill, for `streams` streams.
void BM_stream_memory(benchmark::State& state) {
    const auto streams = static_cast<std::size_t>(state.range(0));
    for (auto _ : state) {
        LiveView view{0};
        const auto before_open = heap_in_use();
        view.open(streams);
        view.server_thread.pause();  // quiescent: the server's thread allocates nothing from here on
        const auto after_open = heap_in_use();
        long long starts = 0;
        view.monitor.supervise("c", [&] { return fail_at_once(starts); });
        while (starts < 100) {  // the component's own records, allocated once
            view.io.run_one();
        }
        const auto before_events = heap_in_use();
        while (starts < 100 + restart_iterations) {
            view.io.run_one();
        }
        const auto after_events = heap_in_use();
        state.counters["bytes_per_stream"] =
            streams == 0
                ? 0.0
                : (static_cast<double>(after_open) - static_cast<double>(before_open)) / static_cast<double>(streams);
        state.counters["bytes_per_restart"] = (static_cast<double>(after_events) - static_cast<double>(before_events)) /
                                              static_cast<double>(restart_iterations);
        state.counters["events_per_restart"] = 3;
        state.counters["streams"] = static_cast<double>(view.server->stats().event_clients);
    }
}
BENCHMARK(BM_stream_memory)->Arg(0)->Arg(1)->Arg(10)->Arg(200)->Iterations(1);

double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
}

double ms_since(Clock::time_point t) { return std::chrono::duration<double, std::milli>(Clock::now() - t).count(); }

/// A monitor of 10,000 components and a server on one io_context on a thread of their own; one stream, whose
/// client acknowledges at once if the argument is 1.
void BM_update_latency_10000(benchmark::State& state) {
    constexpr int components = 10'000;
    constexpr int samples = 20;
    for (auto _ : state) {
        IoThread app;
        taskmon::TaskMonitor monitor{app.io.get_executor(), taskmon_bench::restart_at_once(), null_logger()};
        std::atomic<std::int64_t> event_at{0};  // steady-clock ns of the last restart_requested
        auto timing = monitor.subscribe([&](const taskmon::MonitorEvent& e) {
            if (e.kind == taskmon::MonitorEventKind::restart_requested) {
                event_at.store(Clock::now().time_since_epoch().count());
            }
        });
        for (int i = 0; i < components; ++i) {
            monitor.supervise(fmt::format("c{}", i), taskmon_bench::wait_forever);
        }
        taskmon::HealthServerSettings settings;
        settings.port = 0;
        taskmon::HealthServer server{
            app.io.get_executor(),
            {.tree = [&](std::uint64_t last) { return taskmon::monitor_snapshot_json(monitor, last); },
             .subscribe = [&](taskmon::MonitorEventListener l) { return monitor.subscribe(std::move(l)); }},
            settings,
            null_logger()};
        app.start();

        std::vector<double> snapshot_ms;
        for (int i = 0; i < 5; ++i) {
            const auto t = Clock::now();
            benchmark::DoNotOptimize(taskmon::monitor_snapshot_json(monitor));
            snapshot_ms.push_back(ms_since(t));
        }

        const auto connect_at = Clock::now();
        Client client{server.local_endpoint().port()};
        client.quick_ack = state.range(0) != 0;
        if (!client.read_until("event: snapshot\ndata: ", 10s) || !client.read_until("\n\n", 10s)) {
            state.SkipWithError("no snapshot");
            break;
        }
        const auto stream_snapshot_ms = ms_since(connect_at);

        std::vector<double> latency_ms;
        for (int i = 0; i < samples; ++i) {
            const auto name = fmt::format("c{}", i * 499);
            asio::post(app.io, [&monitor, name] { monitor.restart(name); });
            const auto needle = fmt::format("\"kind\":\"restart_requested\",\"component\":\"{}\"", name);
            if (!client.read_until(needle, 10s)) {
                state.SkipWithError("event not received within 10 s");
                break;
            }
            const auto received = Clock::now().time_since_epoch().count();
            latency_ms.push_back(static_cast<double>(received - event_at.load()) / 1e6);
        }
        if (latency_ms.empty()) break;
        state.counters["latency_median_ms"] = median(latency_ms);
        const auto worst = std::max_element(latency_ms.begin(), latency_ms.end());
        state.counters["latency_max_ms"] = *worst;
        state.counters["latency_max_sample"] = static_cast<double>(worst - latency_ms.begin());
        state.counters["stream_snapshot_ms"] = stream_snapshot_ms;
        state.counters["snapshot_json_median_ms"] = median(snapshot_ms);
        state.counters["snapshot_bytes"] = static_cast<double>(taskmon::monitor_snapshot_json(monitor).size());

        client.text.clear();
        ::shutdown(client.fd, SHUT_RDWR);
        run_on(app.io, server.close());
        run_on(app.io, monitor.close());
    }
}
BENCHMARK(BM_update_latency_10000)->Arg(0)->Arg(1)->Iterations(1)->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
