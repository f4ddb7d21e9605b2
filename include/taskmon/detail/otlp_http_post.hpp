// taskmon — coroutine supervision for standalone Asio.
// SPDX-License-Identifier: MIT
//
// otlp_http_post: the HTTP/1.1 client of OtlpExporter, just enough of it for one POST of a JSON body to a
// collector (plain http, one connection per request, `Connection: close`), bounded by a timeout that closes the
// socket. Returns the response's status code; never throws for a network failure.
#pragma once

#include <taskmon/detail/config.hpp>

#include <asio/awaitable.hpp>
#include <asio/buffer.hpp>
#include <asio/connect.hpp>
#include <asio/error.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/read.hpp>
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
/// connect, write, reading the response) is bounded by `timeout`: the timer cancels the resolver and closes the
/// socket, which ends the pending operation with an error. The response's body is read and ignored.
inline asio::awaitable<OtlpPostResult> otlp_http_post(std::string host, std::uint16_t port, std::string path,
                                                      std::string body, std::chrono::milliseconds timeout) {
    using asio::ip::tcp;
    const auto executor = co_await asio::this_coro::executor;
    auto socket = std::make_shared<tcp::socket>(executor);
    auto resolver = std::make_shared<tcp::resolver>(executor);
    auto timed_out = std::make_shared<bool>(false);
    asio::steady_timer timer{executor, timeout};
    timer.async_wait([socket, resolver, timed_out](std::error_code ec) {
        if (ec) return;  // cancelled: the exchange finished first
        *timed_out = true;
        resolver->cancel();
        std::error_code ignored;
        socket->close(ignored);
    });
    struct CancelTimer {
        asio::steady_timer& timer;
        ~CancelTimer() { timer.cancel(); }
    } cancel_timer{timer};

    OtlpPostResult result;
    std::error_code ec;
    const auto failed = [&] {
        if (!ec && !*timed_out) return false;
        result.error = *timed_out ? std::error_code{asio::error::timed_out} : ec;
        return true;
    };
    auto resolve = resolver->async_resolve(host, std::to_string(port), asio::redirect_error(asio::use_awaitable, ec));
    const auto endpoints = co_await std::move(resolve);
    if (failed()) co_return result;
    auto connect = asio::async_connect(*socket, endpoints, asio::redirect_error(asio::use_awaitable, ec));
    co_await std::move(connect);
    if (failed()) co_return result;
    std::string request = "POST " + path + " HTTP/1.1\r\nHost: " + host + ":" + std::to_string(port) +
                          "\r\nContent-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) +
                          "\r\nConnection: close\r\n\r\n";
    request += body;
    auto write = asio::async_write(*socket, asio::buffer(request), asio::redirect_error(asio::use_awaitable, ec));
    co_await std::move(write);
    if (failed()) co_return result;
    // The status line and headers, then the body up to the connection's end, so that closing does not reset a
    // connection with unread data. 64 KiB bounds what a misbehaving collector can make us buffer.
    std::string response;
    auto read = asio::async_read_until(*socket, asio::dynamic_buffer(response, 64 * 1024), "\r\n\r\n",
                                       asio::redirect_error(asio::use_awaitable, ec));
    co_await std::move(read);
    result.status = parse_http_status(response);
    if (result.status == 0) {
        if (!failed()) result.error = asio::error::invalid_argument;
        co_return result;
    }
    if (*timed_out) {  // a status line, then the timeout: the answer counts
        co_return result;
    }
    auto rest = asio::async_read(*socket, asio::dynamic_buffer(response, 64 * 1024),
                                 asio::redirect_error(asio::use_awaitable, ec));
    co_await std::move(rest);
    std::error_code ignored;
    socket->close(ignored);
    co_return result;
}

}  // namespace taskmon::detail
