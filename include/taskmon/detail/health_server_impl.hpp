// HealthServer internals: the shared state on a strand, the accept loop and the connection coroutines.
// SPDX-License-Identifier: MIT
#pragma once

#include <taskmon/health_server.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <vector>

namespace taskmon {
namespace detail {

inline std::string_view http_reason_phrase(int status) noexcept {
    switch (status) {
        case 200: return "OK";
        case 400: return "Bad Request";
        case 404: return "Not Found";
        case 405: return "Method Not Allowed";
        case 408: return "Request Timeout";
        case 413: return "Payload Too Large";
        case 431: return "Request Header Fields Too Large";
        case 500: return "Internal Server Error";
        case 503: return "Service Unavailable";
        default: return "Unknown";
    }
}

/// True when the query string has a `verbose` parameter whose value is not "0" or "false".
inline bool query_has_verbose(std::string_view query) {
    while (!query.empty()) {
        const auto amp = query.find('&');
        const auto param = query.substr(0, amp);
        const auto eq = param.find('=');
        if (param.substr(0, eq) == "verbose") {
            const auto value = eq == std::string_view::npos ? std::string_view{} : param.substr(eq + 1);
            return value != "0" && value != "false";
        }
        query = amp == std::string_view::npos ? std::string_view{} : query.substr(amp + 1);
    }
    return false;
}

/// One request as http_parser reports it. Only the target is kept; headers and body are counted by the
/// size limit and otherwise ignored.
struct ParsedRequest {
    std::string target;
    bool headers_done = false;
    bool complete = false;

    static int on_url(http_parser* p, const char* at, std::size_t length) {
        static_cast<ParsedRequest*>(p->data)->target.append(at, length);
        return 0;
    }
    static int on_headers_complete(http_parser* p) {
        static_cast<ParsedRequest*>(p->data)->headers_done = true;
        return 0;
    }
    static int on_message_complete(http_parser* p) {
        static_cast<ParsedRequest*>(p->data)->complete = true;
        http_parser_pause(p, 1);  // one request per connection: ignore anything pipelined after it
        return 0;
    }
    static const http_parser_settings& settings() noexcept {
        static const http_parser_settings s = [] {
            http_parser_settings out{};
            out.on_url = &ParsedRequest::on_url;
            out.on_headers_complete = &ParsedRequest::on_headers_complete;
            out.on_message_complete = &ParsedRequest::on_message_complete;
            return out;
        }();
        return s;
    }
};

/// The state shared by the HealthServer handle, its accept loop and its connections. All members but the
/// atomics and the constants are used on strand_ only.
class HealthServerState : public std::enable_shared_from_this<HealthServerState> {
public:
    using Strand = asio::strand<asio::any_io_executor>;
    using Clock = std::chrono::steady_clock;

    HealthServerState(asio::any_io_executor executor, HealthEndpoints endpoints, HealthServerSettings settings,
                      std::shared_ptr<spdlog::logger> logger)
        : strand_{asio::make_strand(std::move(executor))},
          endpoints_{std::move(endpoints)},
          settings_{validated(std::move(settings))},
          logger_{logger ? std::move(logger) : spdlog::default_logger()},
          acceptor_{strand_},
          drained_{strand_, Clock::time_point::max()} {
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
        s.responses = responses_.load();
        s.bad_requests = bad_requests_.load();
        s.too_large = too_large_.load();
        s.timed_out = timed_out_.load();
        s.handler_errors = handler_errors_.load();
        s.open_connections = open_.load();
        return s;
    }

private:
    struct Connection {
        explicit Connection(asio::ip::tcp::socket s) : socket{std::move(s)}, timer{socket.get_executor()} {}
        asio::ip::tcp::socket socket;
        asio::steady_timer timer;
        bool writing = false;    ///< the deadline now guards the response
        bool timed_out = false;  ///< the deadline passed
    };

    static HealthServerSettings validated(HealthServerSettings s) {
        if (s.max_request_bytes == 0) throw std::invalid_argument("HealthServerSettings.max_request_bytes is 0");
        if (s.max_connections == 0) throw std::invalid_argument("HealthServerSettings.max_connections is 0");
        if (s.read_timeout <= std::chrono::milliseconds::zero()) {
            throw std::invalid_argument("HealthServerSettings.read_timeout must be positive");
        }
        if (s.write_timeout <= std::chrono::milliseconds::zero()) {
            throw std::invalid_argument("HealthServerSettings.write_timeout must be positive");
        }
        return s;
    }

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
        for (const auto& [id, connection] : connections_) {
            connection->timer.cancel();
            connection->socket.shutdown(asio::ip::tcp::socket::shutdown_both, ignored);
            connection->socket.close(ignored);
        }
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
            if (self->connections_.size() >= self->settings_.max_connections) {
                ++self->rejected_;
                self->logger_->warn("health server: {} connections open (max_connections); closing a new one",
                                    self->connections_.size());
                asio::error_code ignored;
                socket.close(ignored);
                continue;
            }
            const auto id = ++self->next_id_;
            auto connection = std::make_shared<Connection>(std::move(socket));
            self->connections_.emplace(id, connection);
            self->open_.store(self->connections_.size());
            asio::co_spawn(self->strand_, serve(self, id, std::move(connection)), asio::detached);
        }
        self->accepting_ = false;
        self->maybe_drained();
    }

    /// Guards a connection: at `deadline`, a pending read is cancelled (the request then gets 408) and a
    /// pending write closes the connection.
    static void arm(const std::shared_ptr<Connection>& c, Clock::time_point deadline) {
        c->timer.expires_at(deadline);
        c->timer.async_wait([weak = std::weak_ptr<Connection>{c}](asio::error_code ec) {
            const auto connection = weak.lock();
            if (ec || !connection) return;
            connection->timed_out = true;
            asio::error_code ignored;
            if (connection->writing) {
                connection->socket.close(ignored);
            } else {
                connection->socket.cancel(ignored);
            }
        });
    }

    static asio::awaitable<void> serve(std::shared_ptr<HealthServerState> self, std::uint64_t id,
                                       std::shared_ptr<Connection> c) {
        try {
            co_await self->handle(c);
        } catch (const std::exception& e) {
            self->logger_->error("health server: connection failed: {}", e.what());
        }
        asio::error_code ignored;
        c->timer.cancel();
        c->socket.close(ignored);
        self->connections_.erase(id);
        self->open_.store(self->connections_.size());
        self->maybe_drained();
    }

    asio::awaitable<void> handle(std::shared_ptr<Connection> c) {
        arm(c, Clock::now() + settings_.read_timeout);
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
            if (closing_) co_return;
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
                http_parser_execute(&parser, &ParsedRequest::settings(), buffer.data(), allowed);
            }
            const auto error = HTTP_PARSER_ERRNO(&parser);
            if (error != HPE_OK && error != HPE_PAUSED) {
                ++bad_requests_;
                logger_->debug("health server: malformed request: {}", http_errno_description(error));
                co_await respond(c, 400, fmt::format("bad request: {}\n", http_errno_description(error)),
                                 "text/plain; charset=utf-8", false);
                co_return;
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
        if (parser.method != HTTP_GET && !head) {
            ++bad_requests_;
            co_await respond(c, 405, "only GET and HEAD\n", "text/plain; charset=utf-8", false);
            co_return;
        }
        auto response = answer_health_request(endpoints_, request.target);
        if (response.status == 500) ++handler_errors_;
        if (response.status == 400) ++bad_requests_;
        co_await respond(c, response.status, std::move(response.body), response.content_type, head);
    }

    asio::awaitable<void> respond(std::shared_ptr<Connection> c, int status, std::string body,
                                  std::string_view content_type, bool head) {
        std::string message = fmt::format(
            "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nCache-Control: no-store\r\n"
            "Connection: close\r\n{}\r\n",
            status, http_reason_phrase(status), content_type, body.size(), status == 405 ? "Allow: GET, HEAD\r\n" : "");
        if (!head) message += body;
        c->writing = true;
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
        // request) until it closes or the write deadline passes, so that it receives our answer rather than a
        // reset.
        c->socket.shutdown(asio::ip::tcp::socket::shutdown_send, ec);
        // On the heap, not in the frame: g++ 12 at -O1 reports a std::array in a coroutine frame as a
        // mismatched new/delete (-Wmismatched-new-delete, a false positive on Asio's aligned frame allocation).
        std::vector<char> sink(2048);
        std::size_t drained = 0;
        while (!ec && !closing_ && drained < 64 * 1024) {
            drained +=
                co_await c->socket.async_read_some(asio::buffer(sink), asio::redirect_error(asio::use_awaitable, ec));
        }
    }

    Strand strand_;
    const HealthEndpoints endpoints_;
    const HealthServerSettings settings_;
    const std::shared_ptr<spdlog::logger> logger_;
    asio::ip::tcp::acceptor acceptor_;
    asio::steady_timer drained_;  ///< cancelled when closing and everything exited; close() waits on it
    asio::ip::tcp::endpoint local_endpoint_;
    std::map<std::uint64_t, std::shared_ptr<Connection>> connections_;
    std::uint64_t next_id_ = 0;
    bool accepting_ = false;
    bool closing_ = false;
    bool closed_logged_ = false;

    std::atomic<std::uint64_t> accepted_{0};
    std::atomic<std::uint64_t> rejected_{0};
    std::atomic<std::uint64_t> responses_{0};
    std::atomic<std::uint64_t> bad_requests_{0};
    std::atomic<std::uint64_t> too_large_{0};
    std::atomic<std::uint64_t> timed_out_{0};
    std::atomic<std::uint64_t> handler_errors_{0};
    std::atomic<std::size_t> open_{0};
};

}  // namespace detail

inline HealthResponse answer_health_request(const HealthEndpoints& endpoints, std::string_view target) {
    http_parser_url url;
    http_parser_url_init(&url);
    if (target.empty() || http_parser_parse_url(target.data(), target.size(), 0, &url) != 0 ||
        (url.field_set & (1 << UF_PATH)) == 0) {
        return {400, "text/plain; charset=utf-8", "bad request target\n"};
    }
    const auto field = [&](http_parser_url_fields f) {
        return (url.field_set & (1 << f)) == 0 ? std::string_view{}
                                               : target.substr(url.field_data[f].off, url.field_data[f].len);
    };
    const auto path = field(UF_PATH);
    const bool verbose = detail::query_has_verbose(field(UF_QUERY));
    try {
        if (path == "/livez" || path == "/readyz") {
            if (!endpoints.health) return {404, "text/plain; charset=utf-8", "no health endpoint configured\n"};
            const auto probe = path == "/livez" ? HealthProbe::liveness : HealthProbe::readiness;
            const auto report = endpoints.health();
            const int status = report.passes(probe) ? 200 : 503;
            std::string body = verbose ? probe_details(report, probe) : probe_summary(report, probe) + "\n";
            return {status, "text/plain; charset=utf-8", std::move(body)};
        }
        if (path == "/metrics") {
            if (!endpoints.metrics) return {404, "text/plain; charset=utf-8", "no metrics endpoint configured\n"};
            return {200, std::string{text_format_content_type}, render_text_format(endpoints.metrics())};
        }
    } catch (const std::exception& e) {
        return {500, "text/plain; charset=utf-8", fmt::format("endpoint failed: {}\n", e.what())};
    }
    return {404, "text/plain; charset=utf-8", "not found; try /livez, /readyz or /metrics\n"};
}

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

}  // namespace taskmon
