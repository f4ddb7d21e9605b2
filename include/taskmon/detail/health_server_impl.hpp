// taskmon — coroutine supervision for standalone Asio.
// SPDX-License-Identifier: MIT
//
// HealthServer internals: the shared state on a strand, the accept loop and the connection coroutines.
#pragma once

#include <taskmon/ops/health_server.hpp>

#include <taskmon/detail/event_stream_hub.hpp>
#include <taskmon/detail/health_overflow_log.hpp>
#include <taskmon/detail/health_routes.hpp>
#include <taskmon/detail/http_request.hpp>
#include <taskmon/detail/log_text.hpp>
#include <taskmon/detail/operator_request.hpp>
#include <taskmon/detail/utf8.hpp>
#include <taskmon/ops/monitor_json.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <set>
#include <vector>

namespace taskmon {
namespace detail {

/// What a lingering close reads and discards at most before closing anyway.
inline constexpr std::size_t health_linger_bytes = 64 * 1024;

/// The state shared by the HealthServer handle, its accept loop and its connections. All members but the
/// atomics and the constants are used on strand_ only.
///
/// Slots: each connection holds one of max_connections from its accept until it is closed, in three phases:
/// reading its request (until read_deadline: then 408), writing the response (write_timeout), and the lingering
/// close (until read_deadline at the latest). When every slot is held, a new connection takes the slot of the
/// oldest lingering one (its response is already written), else evicts the oldest one still reading, else (every
/// slot writing) is closed at once. The oldest first: slow clients have been open longest, and a probe that sends
/// its request at once is read within an accept or two (one strand, handlers in order), long before
/// max_connections newer connections could make it the oldest.
class HealthServerState : public std::enable_shared_from_this<HealthServerState> {
public:
    using Strand = asio::strand<asio::any_io_executor>;
    using Clock = std::chrono::steady_clock;

    HealthServerState(asio::any_io_executor executor, HealthEndpoints endpoints, HealthServerSettings settings,
                      std::shared_ptr<spdlog::logger> logger)
        : strand_{asio::make_strand(std::move(executor))},
          endpoints_{validated_endpoints(std::move(endpoints))},
          settings_{validated_settings(std::move(settings))},
          logger_{logger ? std::move(logger) : spdlog::default_logger()},
          acceptor_{strand_},
          drained_{strand_, Clock::time_point::max()},
          overflow_log_{strand_, logger_, settings_.max_connections, evicted_, rejected_},
          hub_{std::make_shared<EventStreamHub>(settings_.event_queue_capacity, settings_.event_replay_capacity)} {
        asio::error_code ec;
        const auto address = asio::ip::make_address(settings_.address, ec);
        if (ec) {
            throw std::invalid_argument("HealthServerSettings.address: '" + settings_.address +
                                        "' is not an IPv4 or IPv6 address");
        }
        const asio::ip::tcp::endpoint endpoint{address, settings_.port};
        acceptor_.open(endpoint.protocol());
        acceptor_.set_option(asio::ip::tcp::acceptor::reuse_address(true));
        acceptor_.bind(endpoint);  // throws std::system_error (e.g. address in use)
        acceptor_.listen();
        local_endpoint_ = acceptor_.local_endpoint();
    }

    void start() {
        if (streams_events()) {
            // The listener only copies: one allocation per event, shared by the queues, and a post per burst.
            subscription_ = endpoints_.subscribe(
                [hub = hub_, weak = weak_from_this(), strand = strand_](const MonitorEvent& event) {
                    if (!hub->publish(event)) return;
                    asio::post(strand, [hub, weak] {
                        hub->wake_done();
                        if (const auto self = weak.lock()) self->wake_streams();
                    });
                });
        }
        accepting_ = true;
        asio::co_spawn(strand_, accept_loop(shared_from_this()), asio::detached);
        logger_->info("health server: listening on http://{}", endpoint_text());
    }

    /// Stops accepting and closes every connection; posted to the strand (callable from any thread).
    void begin_close() {
        asio::post(strand_, [self = shared_from_this()] { self->close_on_strand(); });
    }

    static asio::awaitable<void> close(std::shared_ptr<HealthServerState> self) {
        // The waiting runs on the strand; co_spawn resumes the caller on its own executor.
        auto op = asio::co_spawn(self->strand_, wait_closed(self), asio::use_awaitable);
        co_await std::move(op);
    }

    asio::ip::tcp::endpoint local_endpoint() const noexcept { return local_endpoint_; }

    HealthServerStats stats() const noexcept {
        HealthServerStats s;
        s.accepted = accepted_.load();
        s.rejected_connections = rejected_.load();
        s.evicted_connections = evicted_.load();
        s.responses = responses_.load();
        s.bad_requests = bad_requests_.load();
        s.too_large = too_large_.load();
        s.timed_out = timed_out_.load();
        s.handler_errors = handler_errors_.load();
        s.open_connections = open_.load();
        s.event_clients = event_open_.load();
        s.event_clients_rejected = event_rejected_.load();
        s.event_clients_dropped = event_dropped_.load();
        s.events_sent = events_sent_.load();
        s.event_streams_resumed = event_resumed_.load();
        s.event_resumes_refused = event_resume_refused_.load();
        s.actions = actions_.load();
        s.actions_refused = actions_refused_.load();
        s.events_published = events_published_.load();
        return s;
    }

    /// Queues `json` for every /events stream; callable from any thread (see HealthServer::publish).
    void publish(std::string json) {
        ++events_published_;
        if (!streams_events() || !hub_->publish_json(std::move(json))) return;
        asio::post(strand_, [hub = hub_, weak = weak_from_this()] {
            hub->wake_done();
            if (const auto self = weak.lock()) self->wake_streams();
        });
    }

private:
    enum class Phase { reading, writing, lingering, streaming };

    struct Connection {
        Connection(std::uint64_t i, asio::ip::tcp::socket s, Clock::time_point deadline)
            : id{i},
              socket{std::move(s)},
              timer{socket.get_executor()},
              wake{socket.get_executor()},
              read_deadline{deadline} {}
        const std::uint64_t id;  ///< in accept order: the oldest has the smallest
        asio::ip::tcp::socket socket;
        asio::steady_timer timer;
        asio::steady_timer wake;  ///< an /events stream waits on it for events (cancelled) or its keepalive
        const Clock::time_point read_deadline;  ///< read_timeout after the accept; also ends the lingering close
        Phase phase = Phase::reading;
        bool timed_out = false;  ///< the deadline of the current phase passed
        bool evicted = false;    ///< closed to make room for a new connection: holds no slot any more
    };

    std::string endpoint_text() const {
        return local_endpoint_.address().is_v6()
                   ? fmt::format("[{}]:{}", local_endpoint_.address().to_string(), local_endpoint_.port())
                   : fmt::format("{}:{}", local_endpoint_.address().to_string(), local_endpoint_.port());
    }

    void close_on_strand() {
        if (closing_) return;
        closing_ = true;
        asio::error_code ignored;
        acceptor_.close(ignored);
        subscription_.unsubscribe();  // waits for a listener call on another thread: it never waits for us
        for (const auto& [id, connection] : connections_) {
            connection->timer.cancel();
            connection->wake.cancel();
            connection->socket.shutdown(asio::ip::tcp::socket::shutdown_both, ignored);
            connection->socket.close(ignored);
        }
        overflow_log_.cancel();  // its handler logs what is still unlogged
        maybe_drained();
    }

    void maybe_drained() {
        if (closing_ && !accepting_ && connections_.empty()) {
            drained_.cancel();
        }
    }

    static asio::awaitable<void> wait_closed(std::shared_ptr<HealthServerState> self) {
        self->close_on_strand();
        while (self->accepting_ || !self->connections_.empty()) {
            asio::error_code ec;
            co_await self->drained_.async_wait(asio::redirect_error(asio::use_awaitable, ec));
        }
        if (!self->closed_logged_) {
            self->closed_logged_ = true;
            self->logger_->info("health server: closed http://{}", self->endpoint_text());
        }
    }

    /// Connections holding a slot: evicted ones are closed and only wait for their coroutine to exit; /events
    /// streams have their own limit.
    std::size_t slots_held() const noexcept { return connections_.size() - evicted_open_ - event_clients_.size(); }

    bool streams_events() const noexcept { return endpoints_.tree && endpoints_.subscribe; }

    /// Wakes every /events stream for the events queued since the last wake-up, and cuts off at once those that
    /// fell event_queue_capacity behind (a pending write is cancelled: a client that never reads is dropped as
    /// soon as its queue fills, not only after write_timeout).
    void wake_streams() {
        for (const auto id : event_clients_) {
            const auto& c = connections_.at(id);
            if (hub_->overflowed(id)) {
                asio::error_code ignored;
                c->socket.close(ignored);
            }
            c->wake.cancel();
        }
    }

    void enter(Connection& c, Phase phase) {
        reading_.erase(c.id);
        lingering_.erase(c.id);
        c.phase = phase;
        if (phase == Phase::reading) reading_.insert(c.id);
        if (phase == Phase::lingering) lingering_.insert(c.id);
    }

    /// Frees a slot for a new connection (see the class comment); false when every slot is writing a response.
    /// Ending a lingering close is not counted as an eviction: that client has its response.
    bool make_room() {
        auto& candidates = lingering_.empty() ? reading_ : lingering_;
        if (candidates.empty()) return false;
        const auto& c = connections_.at(*candidates.begin());
        if (c->phase == Phase::reading) {
            ++evicted_;
            logger_->debug("health server: max_connections reached; evicting the oldest connection still reading");
            overflow_log_.note(shared_from_this());
        }
        candidates.erase(candidates.begin());
        c->evicted = true;
        ++evicted_open_;
        asio::error_code ignored;
        c->timer.cancel();
        c->socket.shutdown(asio::ip::tcp::socket::shutdown_both, ignored);
        c->socket.close(ignored);  // its pending read completes with an error and its coroutine exits
        return true;
    }

    static asio::awaitable<void> accept_loop(std::shared_ptr<HealthServerState> self) {
        asio::steady_timer pause{self->strand_};
        while (!self->closing_) {
            asio::error_code ec;
            auto socket = co_await self->acceptor_.async_accept(asio::redirect_error(asio::use_awaitable, ec));
            if (self->closing_) break;
            if (ec) {
                // Out of descriptors or memory: wait a little instead of spinning; anything else ends the loop.
                self->logger_->error("health server: accept failed: {}", ec.message());
                if (ec == asio::error::no_descriptors || ec == asio::error::no_buffer_space ||
                    ec == asio::error::no_memory) {
                    pause.expires_after(std::chrono::milliseconds{100});
                    co_await pause.async_wait(asio::redirect_error(asio::use_awaitable, ec));
                    continue;
                }
                break;
            }
            ++self->accepted_;
            if (self->slots_held() >= self->settings_.max_connections && !self->make_room()) {
                ++self->rejected_;
                self->logger_->debug("health server: every slot is writing a response; closing a new connection");
                self->overflow_log_.note(self);
                asio::error_code ignored;
                socket.close(ignored);
                continue;
            }
            const auto id = ++self->next_id_;
            auto connection =
                std::make_shared<Connection>(id, std::move(socket), Clock::now() + self->settings_.read_timeout);
            self->connections_.emplace(id, connection);
            self->reading_.insert(id);
            self->open_.store(self->slots_held());
            asio::co_spawn(self->strand_, serve(self, std::move(connection)), asio::detached);
        }
        self->accepting_ = false;
        self->maybe_drained();
    }

    /// Guards a connection's current phase until `deadline`: then a pending read is cancelled (the request gets
    /// 408), a pending write is cut off, and a lingering close ends. A wait that completes after the phase
    /// changed is stale and does nothing (re-arming cannot cancel a completion already queued).
    static void arm(const std::shared_ptr<Connection>& c, Clock::time_point deadline) {
        c->timer.expires_at(deadline);
        c->timer.async_wait([weak = std::weak_ptr<Connection>{c}, phase = c->phase](asio::error_code ec) {
            const auto connection = weak.lock();
            if (ec || !connection || connection->phase != phase) return;
            connection->timed_out = true;
            asio::error_code ignored;
            if (phase == Phase::reading) {
                connection->socket.cancel(ignored);
            } else {
                connection->socket.close(ignored);
            }
        });
    }

    static asio::awaitable<void> serve(std::shared_ptr<HealthServerState> self, std::shared_ptr<Connection> c) {
        try {
            co_await self->handle(c);
        } catch (const std::exception& e) {
            self->logger_->error("health server: connection failed reason={}", quote(describe(e)));
        }
        asio::error_code ignored;
        c->timer.cancel();
        c->socket.close(ignored);
        self->reading_.erase(c->id);
        self->lingering_.erase(c->id);
        self->hub_->remove(c->id);
        if (self->event_clients_.erase(c->id) != 0) self->event_open_.store(self->event_clients_.size());
        if (c->evicted) --self->evicted_open_;
        self->connections_.erase(c->id);
        self->open_.store(self->slots_held());
        self->maybe_drained();
    }

    asio::awaitable<void> handle(std::shared_ptr<Connection> c) {
        arm(c, c->read_deadline);
        http_parser parser;
        http_parser_init(&parser, HTTP_REQUEST);
        ParsedRequest request;
        parser.data = &request;
        std::vector<char> buffer(2048);  // not a std::array in the frame: see respond()
        std::size_t total = 0;
        while (!request.complete) {
            asio::error_code ec;
            const auto n =
                co_await c->socket.async_read_some(asio::buffer(buffer), asio::redirect_error(asio::use_awaitable, ec));
            if (closing_ || c->evicted) co_return;
            if (c->timed_out) {
                ++timed_out_;
                logger_->debug("health server: request not complete within read_timeout; answering 408");
                co_await respond(c, 408, "request timeout\n", "text/plain; charset=utf-8", false);
                co_return;
            }
            if (ec == asio::error::eof && n == 0) {
                co_return;  // the client went away before completing a request: nothing to answer
            }
            if (ec) co_return;
            // Parse only what fits in the limit: whether the headers ended within it decides 413 or 431.
            const auto allowed = std::min(n, settings_.max_request_bytes - total);
            total += n;
            if (allowed > 0) {  // a length of 0 would tell http_parser the stream ended
                const auto parsed = http_parser_execute(&parser, &ParsedRequest::settings(), buffer.data(), allowed);
                request.scan_request_line({buffer.data(), parsed});
            }
            const auto error = HTTP_PARSER_ERRNO(&parser);
            if (error != HPE_OK && error != HPE_PAUSED) {
                ++bad_requests_;
                logger_->debug("health server: malformed request: {}", http_errno_description(error));
                co_await respond(c, 400, fmt::format("bad request: {}\n", http_errno_description(error)),
                                 "text/plain; charset=utf-8", false);
                co_return;
            }
            if (request.line_done) {
                const int refusal = http_version_refusal(request.line_fields > 2, parser.http_major);
                if (refusal != 0) {
                    ++bad_requests_;
                    auto body = refusal == 400 ? std::string{"bad request: no HTTP version in the request line "
                                                             "(HTTP/0.9 is not supported)\n"}
                                               : fmt::format("HTTP/{}.{} is not supported; use HTTP/1.1\n",
                                                             parser.http_major, parser.http_minor);
                    logger_->debug("health server: answering {} reason={}", refusal, quote(body));
                    co_await respond(c, refusal, std::move(body), "text/plain; charset=utf-8", false);
                    co_return;
                }
            }
            if (!request.complete && total > settings_.max_request_bytes) {
                ++too_large_;
                const int status = request.headers_done ? 413 : 431;
                logger_->debug("health server: request larger than max_request_bytes ({}); answering {}",
                               settings_.max_request_bytes, status);
                co_await respond(c, status, "request too large\n", "text/plain; charset=utf-8", false);
                co_return;
            }
        }
        const bool head = parser.method == HTTP_HEAD;
        if (parser.method == HTTP_POST && (target_path(request.target).starts_with(operator_action_prefix) ||
                                           target_path(request.target).starts_with(run_action_prefix))) {
            co_await perform_action(c, request);
            co_return;
        }
        if (parser.method != HTTP_GET && !head) {
            ++bad_requests_;
            co_await respond(c, 405, "only GET and HEAD\n", "text/plain; charset=utf-8", false);
            co_return;
        }
        if (!head && streams_events() && target_path(request.target) == "/events") {
            co_await stream_events(c, request);
            co_return;
        }
        auto response = answer_health_request(endpoints_, request.target, hub_->last_sequence());
        if (response.status == 500) ++handler_errors_;
        if (response.status == 400) ++bad_requests_;
        co_await respond(c, response.status, std::move(response.body), response.content_type, head);
    }

    asio::awaitable<void> respond(std::shared_ptr<Connection> c, int status, std::string body,
                                  std::string_view content_type, bool head) {
        std::string message = fmt::format(
            "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nCache-Control: no-store\r\n"
            "Connection: close\r\n{}\r\n",
            status, http_reason_phrase(status), content_type, body.size(),
            status == 405   ? "Allow: GET, HEAD\r\n"
            : status == 401 ? "WWW-Authenticate: Bearer realm=\"taskmon\"\r\n"
                            : "");
        if (!head) message += body;
        enter(*c, Phase::writing);  // not evictable: the client is about to have its answer
        c->timed_out = false;
        arm(c, Clock::now() + settings_.write_timeout);
        asio::error_code ec;
        co_await asio::async_write(c->socket, asio::buffer(message), asio::redirect_error(asio::use_awaitable, ec));
        if (ec) {
            if (c->timed_out) {
                ++timed_out_;
                logger_->debug("health server: response not written within write_timeout; connection closed");
            }
            co_return;
        }
        ++responses_;
        // Lingering close: stop sending, then read what the client still sends (e.g. the rest of an oversized
        // request), so that it reads our answer rather than a connection reset. It ends when the client closes,
        // after health_linger_bytes, or at the read deadline (read_timeout after the accept), whichever comes
        // first, and it is the first to go when the slots run out: it never keeps a slot past the read deadline.
        c->socket.shutdown(asio::ip::tcp::socket::shutdown_send, ec);
        // On the heap, not in the frame: g++ 12 at -O1 reports a std::array in a coroutine frame as a
        // mismatched new/delete (-Wmismatched-new-delete, a false positive on Asio's aligned frame allocation).
        std::vector<char> sink(2048);
        if (Clock::now() >= c->read_deadline) {  // e.g. after a 408: close at once
            // Discard what has already arrived (without waiting), so that the close sends a FIN rather than a
            // reset when the client has stopped sending.
            for (std::size_t drained = 0; !ec && drained < health_linger_bytes;) {
                const auto available = c->socket.available(ec);
                if (ec || available == 0) break;
                drained += c->socket.read_some(asio::buffer(sink.data(), std::min(available, sink.size())), ec);
            }
            co_return;
        }
        enter(*c, Phase::lingering);
        arm(c, c->read_deadline);
        std::size_t drained = 0;
        while (!ec && !closing_ && !c->evicted && drained < health_linger_bytes) {
            drained +=
                co_await c->socket.async_read_some(asio::buffer(sink), asio::redirect_error(asio::use_awaitable, ec));
        }
    }

    /// GET /events: the snapshot, or the events after a Last-Event-ID still retained, then every event as it
    /// comes (see HealthServerSettings::max_event_clients, event_queue_capacity and event_replay_capacity). The
    /// stream leaves its connection slot once its first write is about to start.
    asio::awaitable<void> stream_events(std::shared_ptr<Connection> c, const ParsedRequest& r) {
        if (event_clients_.size() >= settings_.max_event_clients) {
            ++event_rejected_;
            logger_->debug("health server: max_event_clients ({}) streams open; answering 503",
                           settings_.max_event_clients);
            co_await respond(c, 503, "too many /events streams\n", "text/plain; charset=utf-8", false);
            co_return;
        }
        // Each event is a small write that must leave at once: with Nagle's algorithm on, a write waiting for the
        // ACK of the previous one stalled 40-48 ms in 11 of 40 benchmark runs (bench_live_view, BM_update).
        asio::error_code nodelay_ignored;  // a socket that refuses it only loses latency
        c->socket.set_option(asio::ip::tcp::no_delay(true), nodelay_ignored);
        const auto retry_ms = std::chrono::duration_cast<std::chrono::milliseconds>(settings_.event_retry).count();
        std::string opening = fmt::format(
            "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-store\r\n"
            "X-Accel-Buffering: no\r\nConnection: close\r\n\r\nretry: {}\n\n",
            retry_ms);
        std::uint64_t last = 0;  // a resumed stream filters nothing: its client read exactly what precedes it
        if (!resumed(*c, r)) {
            // Queue first, then read the snapshot: every event the snapshot may have missed is in the queue, and
            // those up to `last` (which it reflects: they happened before it was read) are left out.
            const auto opened = hub_->add(c->id);
            last = opened.last_sequence;
            std::string snapshot;
            std::string failure;
            try {
                snapshot = tree_with_runs(endpoints_, last);
            } catch (const std::exception& e) {
                failure = to_valid_utf8(what_of(e));
            }
            if (snapshot.empty() || !failure.empty()) {
                hub_->remove(c->id);
                ++handler_errors_;
                auto body = fmt::format("endpoint failed: {}\n", failure.empty() ? "empty snapshot" : failure);
                co_await respond(c, 500, std::move(body), "text/plain; charset=utf-8", false);
                co_return;
            }
            fmt::format_to(std::back_inserter(opening), "id: {}-{}\nevent: snapshot\ndata: {}\n\n", hub_->epoch(),
                           opened.position, snapshot);
        }
        enter(*c, Phase::streaming);
        event_clients_.insert(c->id);
        event_open_.store(event_clients_.size());
        open_.store(slots_held());
        bool written = co_await stream_write(c, opening);
        opening.clear();
        opening.shrink_to_fit();  // a snapshot at 10,000 components is ~4.8 MB
        while (written && !closing_) {
            auto taken = hub_->take(c->id, last);
            if (taken.overflowed) break;
            if (!taken.events.empty()) {
                std::string text;
                hub_->append_events(text, taken.events);
                written = co_await stream_write(c, text);
                if (written) events_sent_ += taken.events.size();
                continue;
            }
            c->wake.expires_after(settings_.event_keepalive);
            asio::error_code ec;
            co_await c->wake.async_wait(asio::redirect_error(asio::use_awaitable, ec));
            if (closing_) co_return;
            if (!ec) {
                const std::string keepalive = ": keepalive\n\n";
                written = co_await stream_write(c, keepalive);
            }
        }
        if (closing_) co_return;
        if (hub_->overflowed(c->id) || c->timed_out) {
            ++event_dropped_;
            logger_->warn("health server: /events client dropped: {}",
                          c->timed_out ? "a write took longer than write_timeout"
                                       : fmt::format("{} events behind", settings_.event_queue_capacity));
        }
    }

    /// Opens stream `c` after the request's Last-Event-ID when the hub still has every event after it (no
    /// snapshot then); counts and logs a Last-Event-ID that gets a snapshot instead.
    bool resumed(const Connection& c, const ParsedRequest& r) {
        if (!r.has_last_event_id) return false;
        const auto outcome = hub_->resume(c.id, r.last_event_id);
        if (outcome == EventStreamHub::Resume::resumed) {
            ++event_resumed_;
            return true;
        }
        ++event_resume_refused_;
        logger_->debug("health server: /events Last-Event-ID {} answered with a snapshot: {}",
                       quote(to_valid_utf8(r.last_event_id)),
                       outcome == EventStreamHub::Resume::disabled  ? "event_replay_capacity is 0"
                       : outcome == EventStreamHub::Resume::foreign ? "malformed, or of another server's lifetime"
                                                                    : "the events after it are no longer kept");
        return false;
    }

    /// POST /api/components/<name>/<action> and /api/runs/<name>/<action> (see detail/operator_request.hpp for
    /// the checks and their order). Logged at warning level, performed or refused: an operator changing supervision
    /// by hand is worth a line; a performed one is also published on /events with its origin.
    asio::awaitable<void> perform_action(std::shared_ptr<Connection> c, const ParsedRequest& r) {
        OperatorRequest request;
        const bool enabled = endpoints_.act && !endpoints_.action_token.empty();
        const bool runs_enabled = endpoints_.run_act && !endpoints_.action_token.empty();
        auto refusal = check_operator_request(r, enabled, endpoints_.action_token, request, runs_enabled);
        if (!refusal) {
            try {
                if (request.run) {
                    endpoints_.run_act(request.component, request.run_action);
                } else {
                    endpoints_.act(request.component, request.action);
                }
            } catch (const std::invalid_argument& e) {
                refusal = OperatorRefusal{409, to_valid_utf8(what_of(e))};
            } catch (const std::logic_error& e) {  // MonitorClosed
                refusal = OperatorRefusal{409, to_valid_utf8(what_of(e))};
            } catch (const std::exception& e) {
                ++handler_errors_;
                refusal = OperatorRefusal{500, to_valid_utf8(what_of(e))};
            }
        }
        asio::error_code ec;
        const auto peer = c->socket.remote_endpoint(ec);
        const auto from = ec ? std::string{"?"} : peer.address().to_string();
        if (refusal) {
            ++actions_refused_;
            if (refusal->status == 400) ++bad_requests_;
            logger_->warn("health server: operator action refused action={} {}={} from={} status={} reason={}",
                          request.verb(), request.target(), quote(request.component), from, refusal->status,
                          quote(refusal->reason));
            auto body = refusal->reason + "\n";
            co_await respond(c, refusal->status, std::move(body), "text/plain; charset=utf-8", false);
            co_return;
        }
        ++actions_;
        logger_->warn("health server: operator action action={} {}={} from={}", request.verb(), request.target(),
                      quote(request.component), from);
        const auto now = std::chrono::system_clock::now().time_since_epoch();
        publish(operator_action_event_json(request, from, std::chrono::nanoseconds{now}.count()));
        detail::JsonWriter w;
        w.begin_object().key("action").value(request.verb()).key(request.target()).value(request.component);
        w.key("status").value("done").end_object();
        auto body = std::move(w).str() + "\n";
        co_await respond(c, 200, std::move(body), "application/json", false);
    }

    /// Writes one piece of an /events stream within write_timeout; false when the stream is over.
    asio::awaitable<bool> stream_write(std::shared_ptr<Connection> c, const std::string& text) {
        c->timed_out = false;
        arm(c, Clock::now() + settings_.write_timeout);
        asio::error_code ec;
        co_await asio::async_write(c->socket, asio::buffer(text), asio::redirect_error(asio::use_awaitable, ec));
        c->timer.cancel();
        co_return !ec;
    }

    Strand strand_;
    const HealthEndpoints endpoints_;
    const HealthServerSettings settings_;
    const std::shared_ptr<spdlog::logger> logger_;
    asio::ip::tcp::acceptor acceptor_;
    asio::steady_timer drained_;  ///< cancelled when closing and everything exited; close() waits on it
    asio::ip::tcp::endpoint local_endpoint_;
    std::map<std::uint64_t, std::shared_ptr<Connection>> connections_;  ///< every connection coroutine running
    std::set<std::uint64_t> reading_;    ///< ids of the connections still reading their request
    std::set<std::uint64_t> lingering_;  ///< ids of the connections in their lingering close
    std::size_t evicted_open_ = 0;       ///< evicted connections whose coroutine has not exited yet
    std::uint64_t next_id_ = 0;
    bool accepting_ = false;
    bool closing_ = false;
    bool closed_logged_ = false;

    std::atomic<std::uint64_t> accepted_{0};
    std::atomic<std::uint64_t> rejected_{0};
    std::atomic<std::uint64_t> evicted_{0};
    std::atomic<std::uint64_t> responses_{0};
    std::atomic<std::uint64_t> bad_requests_{0};
    std::atomic<std::uint64_t> too_large_{0};
    std::atomic<std::uint64_t> timed_out_{0};
    std::atomic<std::uint64_t> handler_errors_{0};
    std::atomic<std::size_t> open_{0};
    HealthOverflowLog overflow_log_;  ///< after the counters it reads

    const std::shared_ptr<EventStreamHub> hub_;
    EventSubscription subscription_;         ///< the listener feeding hub_, from start() to close
    std::set<std::uint64_t> event_clients_;  ///< ids of the connections streaming /events
    std::atomic<std::size_t> event_open_{0};
    std::atomic<std::uint64_t> event_rejected_{0};
    std::atomic<std::uint64_t> event_dropped_{0};
    std::atomic<std::uint64_t> events_sent_{0};
    std::atomic<std::uint64_t> event_resumed_{0};
    std::atomic<std::uint64_t> event_resume_refused_{0};
    std::atomic<std::uint64_t> actions_{0};
    std::atomic<std::uint64_t> actions_refused_{0};
    std::atomic<std::uint64_t> events_published_{0};
};

}  // namespace detail

inline HealthServer::HealthServer(asio::any_io_executor executor, HealthEndpoints endpoints,
                                  HealthServerSettings settings, std::shared_ptr<spdlog::logger> logger)
    : state_{std::make_shared<detail::HealthServerState>(std::move(executor), std::move(endpoints), std::move(settings),
                                                         std::move(logger))} {
    state_->start();
}

inline HealthServer::~HealthServer() { state_->begin_close(); }

inline asio::awaitable<void> HealthServer::close() { return detail::HealthServerState::close(state_); }

inline asio::ip::tcp::endpoint HealthServer::local_endpoint() const noexcept { return state_->local_endpoint(); }

inline HealthServerStats HealthServer::stats() const noexcept { return state_->stats(); }

inline void HealthServer::publish(std::string json) { state_->publish(std::move(json)); }

}  // namespace taskmon
