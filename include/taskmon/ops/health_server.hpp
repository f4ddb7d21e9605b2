// taskmon — coroutine supervision for standalone Asio.
// SPDX-License-Identifier: MIT
//
// HealthServer: a small HTTP/1.1 server on the application's io_context for the process supervisor and the
// metrics scraper: GET /livez and /readyz (200 "ok", or 503 with the failing components; `?verbose` lists
// every component) and GET /metrics (Prometheus text format); and, for an operator's live view, GET /api/tree
// (the monitor's snapshot as JSON) and GET /events (server-sent events: the snapshot, then every MonitorEvent as
// JSON, and the events publish() is given, e.g. a RunView's run_state; see taskmon/ops/monitor_json.hpp,
// taskmon/ops/run_view.hpp and docs/operations.md). Optional: needs libhttp-parser (CMake target
// taskmon::health_server); requests are parsed by http_parser 2.9.
//
//   taskmon::MonitorMetrics metrics{monitor};
//   taskmon::HealthServer server{io.get_executor(),
//       {.health = [&] { return taskmon::check_health(monitor); },
//        .metrics = [&] { return metrics.collect(); },
//        .tree = [&](std::uint64_t last) { return taskmon::monitor_snapshot_json(monitor, last); },
//        .subscribe = [&](taskmon::MonitorEventListener l) { return monitor.subscribe(std::move(l)); }},
//       {.address = "127.0.0.1", .port = 8080}};
//   ...
//   co_await server.close();        // before the monitor and the metrics it reads go away
//
// One request per connection (the response says Connection: close). Limits, each answered and counted in
// stats(): max_connections slots (when all are held, a new connection evicts the oldest one that has not
// completed its request; see HealthServerSettings), a request larger than max_request_bytes (413 or 431), a
// request not complete within read_timeout of the accept (408), malformed HTTP or no HTTP version (400), an
// HTTP major version other than 1 (505), a method other than GET or HEAD (405), an unknown path (404).
#pragma once

#include <taskmon/detail/config.hpp>

#include <taskmon/duration.hpp>
#include <taskmon/event_subscription.hpp>
#include <taskmon/monitor_event.hpp>
#include <taskmon/ops/health_endpoints.hpp>

#include <asio/any_io_executor.hpp>
#include <asio/awaitable.hpp>
#include <asio/buffer.hpp>
#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/ip/address.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/post.hpp>
#include <asio/redirect_error.hpp>
#include <asio/steady_timer.hpp>
#include <asio/strand.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/write.hpp>
#include <spdlog/logger.h>
#include <spdlog/spdlog.h>

#include <http_parser.h>

#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace taskmon {

namespace detail {
class HealthServerState;
}  // namespace detail

/// Serves the endpoints until close(). Every connection is handled by its own coroutine on one strand of the
/// executor; nothing blocks the io_context (the endpoint functions run synchronously on it).
///
/// Lifetime: like any Asio I/O object, destroy (or close()) the server before its io_context. While open,
/// the accept loop is outstanding work: io_context::run() returns only after close() (or destruction).
/// Thread safety: every member may be called from any thread.
class HealthServer {
public:
    /// Binds and listens now (so a taken port fails here: std::system_error), then accepts on `executor`.
    /// Throws std::invalid_argument naming a bad setting (address not an IP literal, a zero limit or timeout).
    /// A null logger means spdlog's default logger (used, never modified).
    HealthServer(asio::any_io_executor executor, HealthEndpoints endpoints, HealthServerSettings settings = {},
                 std::shared_ptr<spdlog::logger> logger = nullptr);

    /// Closes as close() does, without waiting.
    ~HealthServer();

    HealthServer(const HealthServer&) = delete;
    HealthServer& operator=(const HealthServer&) = delete;

    /// Stops accepting, closes every open connection (a response being written is cut off), and completes
    /// once every connection coroutine has exited. Idempotent; concurrent calls all complete. Resumes on the
    /// awaiting coroutine's executor.
    asio::awaitable<void> close();

    /// Where the server listens (the actual port when settings.port was 0).
    [[nodiscard]] asio::ip::tcp::endpoint local_endpoint() const noexcept;

    [[nodiscard]] HealthServerStats stats() const noexcept;

    /// Writes `json` (one JSON object with a "type" member, on one line) as an event to every /events stream
    /// (none: dropped). Never waits: it is queued like a monitor event, within event_queue_capacity.
    void publish(std::string json);

private:
    std::shared_ptr<detail::HealthServerState> state_;
};

}  // namespace taskmon

#include <taskmon/detail/health_server_impl.hpp>
