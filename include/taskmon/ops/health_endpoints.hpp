// taskmon — coroutine supervision for standalone Asio.
// SPDX-License-Identifier: MIT
//
// What a HealthServer (taskmon/ops/health_server.hpp) serves and how: its settings, its endpoint functions, its
// counters, and the routing of one GET (answer_health_request, also usable from another HTTP server). Apart from
// the server so that the routing (detail/health_routes.hpp) needs no server and includes no cycle.
#pragma once

#include <taskmon/detail/config.hpp>

#include <taskmon/duration.hpp>
#include <taskmon/event_subscription.hpp>
#include <taskmon/monitor_event.hpp>
#include <taskmon/ops/health.hpp>
#include <taskmon/ops/metric_family.hpp>
#include <taskmon/ops/operator_action.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace taskmon {

struct HealthServerSettings {
    std::string address = "127.0.0.1";     ///< an IPv4 or IPv6 literal; "0.0.0.0" exposes the endpoints
    std::uint16_t port = 8080;             ///< 0: an ephemeral port (see HealthServer::local_endpoint())
    std::size_t max_request_bytes = 8192;  ///< request line, headers and body together
    /// From the accept to a complete request; then 408, and the connection is closed as soon as the 408 is
    /// written (about 150 bytes, which the socket's send buffer takes at once; no lingering close). The lingering
    /// close after any other response ends at this deadline too: a connection holds its slot for read_timeout at
    /// most, plus the writing of its response (write_timeout at most).
    Duration read_timeout = std::chrono::seconds{5};
    Duration write_timeout = std::chrono::seconds{5};  ///< to write the response, from its start; then it is cut off
    /// Connection slots. When all are held, a new connection takes the slot of the oldest one in its lingering
    /// close, else evicts (closes at once, counted) the oldest one that has not completed its request, else
    /// (every slot is writing a response) is itself closed at once (counted as rejected). So slow or idle
    /// clients cannot lock out a probe that sends its request at once.
    std::size_t max_connections = 32;
    /// GET /events streams at once. They hold no connection slot (a stream is open for hours); one more is
    /// answered 503 and counted (HealthServerStats::event_clients_rejected). An event is ~450 bytes of JSON,
    /// formatted once and written to every stream: 200 streams of a busy monitor (1,000 events a second) write
    /// ~90 MB/s from the server's strand. The limit bounds that.
    std::size_t max_event_clients = 200;
    /// How far a stream may fall behind, in events not yet written. A client that falls further behind is dropped
    /// (closed, counted in event_clients_dropped) rather than slowing the monitor, whose listener only appends
    /// the event to one log shared by every stream; its EventSource reconnects and starts again from a snapshot.
    /// The log keeps at most this many events (about 0.4 KB each), whatever the number of streams.
    std::size_t event_queue_capacity = 1024;
    /// How many of the most recent events the server keeps, stream or no stream, for a client that reconnects
    /// with `Last-Event-ID` (a browser's EventSource sends the id of the last event it read): when every event
    /// after that id is still kept, and there are at most event_queue_capacity of them, the stream resumes with
    /// exactly those, without a snapshot; otherwise (too old, an id of an earlier process or malformed) it starts
    /// from a snapshot. 0 disables it. Keeping them costs a copy of each event on the monitor's path even with
    /// no stream open (~160 ns, bench_live_view) and about 0.35 KB per kept event. At most 1,048,576.
    std::size_t event_replay_capacity = 1024;
    /// Sent as the stream's `retry:` field: how long a browser's EventSource waits before reconnecting after
    /// the stream ended (a restart of the process, a dropped client).
    Duration event_retry = std::chrono::seconds{2};
    /// A comment line is written to an idle stream this often, so that a client that went away is noticed (the
    /// write fails) and proxies do not time the stream out (nginx's default proxy_read_timeout is 60 s).
    Duration event_keepalive = std::chrono::seconds{15};
};

/// What the endpoints serve. An empty function makes its endpoints answer 404. Both are called on the
/// server's strand of the executor, once per request: keep them short and thread-safe against the
/// application (check_health() and MonitorMetrics::collect() are).
struct HealthEndpoints {
    std::function<HealthReport()> health{};                ///< /livez, /readyz
    std::function<std::vector<MetricFamily>()> metrics{};  ///< /metrics
    /// /api/tree, and the first event of every /events stream: the monitor's snapshot as one JSON object
    /// (monitor_snapshot_json), given the sequence of the last event the server has seen (its `last_sequence`).
    std::function<std::string(std::uint64_t last_sequence)> tree{};
    /// /events: subscribes the server's listener to the monitor's events (BasicTaskMonitor::subscribe). Called
    /// once, by the constructor; the server unsubscribes at close(). /events answers 404 unless both `tree` and
    /// `subscribe` are set. The listener copies each event into the queue of each stream and returns.
    std::function<EventSubscription(MonitorEventListener)> subscribe{};
    /// POST /api/components/<name>/{restart,reset,disable,enable}: performs an operator action (taskmon::apply).
    /// The actions are enabled only when both `act` and `action_token` are set; otherwise every such request is
    /// answered 403, and /ui shows no buttons. Called on the server's strand, like the others.
    std::function<void(const std::string& component, OperatorAction action)> act{};
    /// The bearer token an action request must carry (`Authorization: Bearer <token>`), compared in constant
    /// time. At least 16 characters, printable ASCII without spaces (the constructor checks): from a secret
    /// store, never from the code. Every action, performed or refused, is logged (never the token) and counted.
    std::string action_token{};
    /// The "runs" member of /api/tree and of every /events snapshot: a JSON array of run states (run_views_json
    /// of taskmon/ops/run_view.hpp). Unset: no "runs" member.
    std::function<std::string()> runs{};
    /// POST /api/runs/<name>/{pause,resume,stop}: performs a run action (taskmon::apply(supervisor, action));
    /// throw std::invalid_argument for an unknown name (409). Enabled only when both `run_act` and
    /// `action_token` are set, behind the same checks as `act`.
    std::function<void(const std::string& run, RunAction action)> run_act{};
};

/// Counters since construction (a consistent-enough snapshot; each field is read atomically).
struct HealthServerStats {
    std::uint64_t accepted = 0;                ///< connections accepted (including the rejected ones)
    std::uint64_t rejected_connections = 0;    ///< closed at once: every slot was writing a response
    std::uint64_t evicted_connections = 0;     ///< closed without an answer to make room for a new connection
    std::uint64_t responses = 0;               ///< responses written completely (any status)
    std::uint64_t bad_requests = 0;            ///< 400 (malformed, no HTTP version), 405 (method), 505 (version)
    std::uint64_t too_large = 0;               ///< 413 / 431
    std::uint64_t timed_out = 0;               ///< 408, or closed because the response could not be written in time
    std::uint64_t handler_errors = 0;          ///< 500: an endpoint function threw
    std::size_t open_connections = 0;          ///< holding a slot now (at most max_connections)
    std::size_t event_clients = 0;             ///< /events streams open now (at most max_event_clients)
    std::uint64_t event_clients_rejected = 0;  ///< /events answered 503: max_event_clients streams were open
    /// /events streams closed because the client fell event_queue_capacity events behind, or did not take a
    /// write within write_timeout.
    std::uint64_t event_clients_dropped = 0;
    std::uint64_t events_sent = 0;  ///< events written to /events streams (the snapshots not included)
    /// /events requests with a `Last-Event-ID` that resumed after it (no snapshot), and those that got a
    /// snapshot instead (see HealthServerSettings::event_replay_capacity; each is logged at debug level).
    std::uint64_t event_streams_resumed = 0;
    std::uint64_t event_resumes_refused = 0;
    std::uint64_t actions = 0;           ///< operator actions performed (answered 200), components' and runs'
    std::uint64_t actions_refused = 0;   ///< operator action requests refused (400, 401, 403, 409, 500)
    std::uint64_t events_published = 0;  ///< publish() calls, and the operator_action events of performed actions
};

/// The response the server gives for one parsed request (exposed for tests and for serving the endpoints
/// from another HTTP server). `target` is the request target ("/readyz?verbose").
struct HealthResponse {
    int status = 200;
    std::string content_type = "text/plain; charset=utf-8";
    std::string body;
};

/// Routes a GET of `target` to `endpoints`: /livez, /readyz, /metrics, /api/tree (given `last_sequence`; with
/// "runs" when `runs` is set) and /ui (the live page; its action buttons shown when the actions are enabled); 404
/// otherwise. An endpoint function that throws gives a 500 whose body names the exception. /events is streamed
/// by the server itself; here it answers only the headers of a stream (for HEAD).
[[nodiscard]] HealthResponse answer_health_request(const HealthEndpoints& endpoints, std::string_view target,
                                                   std::uint64_t last_sequence = 0);

}  // namespace taskmon

#include <taskmon/detail/health_routes.hpp>
