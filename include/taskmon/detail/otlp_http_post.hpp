// taskmon — coroutine supervision for standalone Asio.
// SPDX-License-Identifier: MIT
//
// otlp_http_post: the HTTP/1.1 client of OtlpExporter, just enough of it for one POST of a JSON body to a
// collector (plain http, one connection per request, `Connection: close`), bounded by a timeout that closes the
// socket. Returns the response's status code; never throws for a network failure.
#pragma once

#include <asio/awaitable.hpp>
#include <asio/buffer.hpp>
#include <asio/connect.hpp>
#include <asio/error.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/read_until.hpp>
#include <asio/redirect_error.hpp>
#include <asio/steady_timer.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/write.hpp>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <system_error>

namespace taskmon::detail {

/// What one POST came to: the status code of the response, or 0 with the error that prevented one (connection
/// refused, the timeout, a malformed status line).
struct OtlpPostResult {
    int status = 0;
    std::error_code error{};

    [[nodiscard]] bool ok() const noexcept { return status >= 200 && status < 300; }
};

/// The status code of an HTTP/1.x status line ("HTTP/1.1 200 OK"), or 0 if it is not one.
[[nodiscard]] inline int parse_http_status(std::string_view head) {
    if (head.substr(0, 7) != "HTTP/1." || head.size() < 12 || head[8] != ' ') return 0;
    int status = 0;
    for (std::size_t i = 9; i < 12; ++i) {
        if (head[i] < '0' || head[i] > '9') return 0;
        status = status * 10 + (head[i] - '0');
    }
    return status;
}

/// POSTs `body` to http://host:port/path with Content-Type application/json. The whole exchange (resolve,
/// connect, write, reading the status line and headers) is bounded by `timeout`: the timer closes the socket,
/// which ends the pending operation with an error. The response body is not read.
inline asio::awaitable<OtlpPostResult> otlp_http_post(std::string host, std::uint16_t port, std::string path,
                                                      std::string body, std::chrono::milliseconds timeout) {
    using asio::ip::tcp;
    const auto executor = co_await asio::this_coro::executor;
    auto socket = std::make_shared<tcp::socket>(executor);
    auto timed_out = std::make_shared<bool>(false);
    asio::steady_timer timer{executor, timeout};
    timer.async_wait([socket, timed_out](std::error_code ec) {
        if (ec) return;  // cancelled: the exchange finished first
        *timed_out = true;
        std::error_code ignored;
        socket->close(ignored);
    });
    struct CancelTimer {
        asio::steady_timer& timer;
        ~CancelTimer() { timer.cancel(); }
    } cancel_timer{timer};

    OtlpPostResult result;
    std::error_code ec;
    tcp::resolver resolver{executor};
    auto resolve = resolver.async_resolve(host, std::to_string(port), asio::redirect_error(asio::use_awaitable, ec));
    const auto endpoints = co_await std::move(resolve);
    if (ec || *timed_out) {
        result.error = *timed_out ? asio::error::timed_out : ec;
        co_return result;
    }
    auto connect = asio::async_connect(*socket, endpoints, asio::redirect_error(asio::use_awaitable, ec));
    co_await std::move(connect);
    if (ec || *timed_out) {
        result.error = *timed_out ? std::error_code{asio::error::timed_out} : ec;
        co_return result;
    }
    std::string request = "POST " + path + " HTTP/1.1\r\nHost: " + host + ":" + std::to_string(port) +
                          "\r\nContent-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) +
                          "\r\nConnection: close\r\n\r\n";
    request += body;
    auto write = asio::async_write(*socket, asio::buffer(request), asio::redirect_error(asio::use_awaitable, ec));
    co_await std::move(write);
    if (ec || *timed_out) {
        result.error = *timed_out ? std::error_code{asio::error::timed_out} : ec;
        co_return result;
    }
    std::string response;
    // 16 KiB bounds what a misbehaving collector can make us buffer before the headers end.
    auto read = asio::async_read_until(*socket, asio::dynamic_buffer(response, 16 * 1024), "\r\n",
                                       asio::redirect_error(asio::use_awaitable, ec));
    co_await std::move(read);
    if (*timed_out) {
        result.error = asio::error::timed_out;
        co_return result;
    }
    result.status = parse_http_status(response);
    if (result.status == 0) result.error = ec ? ec : std::error_code{asio::error::invalid_argument};
    std::error_code ignored;
    socket->shutdown(tcp::socket::shutdown_both, ignored);
    socket->close(ignored);
    co_return result;
}

}  // namespace taskmon::detail
