// Built by consumer.pkg_config_health_server: serves a TaskMonitor's health on an ephemeral loopback port and
// fetches /livez from it once, so the request goes through http_parser, which the program must link, and through
// the include path and flags of taskmon.pc, which taskmon-health-server.pc requires. A deadline stops it should
// the exchange hang.
#include <taskmon/ops/health.hpp>
#include <taskmon/ops/health_server.hpp>
#include <taskmon/task_monitor.hpp>
#include <taskmon/version.hpp>

#include <asio/buffer.hpp>
#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/read.hpp>
#include <asio/redirect_error.hpp>
#include <asio/steady_timer.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/write.hpp>
#include <fmt/core.h>
#include <spdlog/logger.h>

#include <chrono>
#include <exception>
#include <memory>
#include <string>
#include <string_view>
#include <system_error>

namespace {

// The whole response: the server closes the connection after it (Connection: close).
asio::awaitable<std::string> fetch(asio::ip::tcp::endpoint endpoint, std::string_view request) {
    asio::ip::tcp::socket socket{co_await asio::this_coro::executor};
    co_await socket.async_connect(endpoint, asio::use_awaitable);
    co_await asio::async_write(socket, asio::buffer(request), asio::use_awaitable);
    std::string response;
    std::error_code ec;  // asio::error::eof ends the response
    co_await asio::async_read(socket, asio::dynamic_buffer(response), asio::redirect_error(asio::use_awaitable, ec));
    co_return response;
}

}  // namespace

int main() {
    using namespace std::chrono_literals;
    asio::io_context io;
    auto quiet = std::make_shared<spdlog::logger>("consumer");  // no sinks
    taskmon::TaskMonitor monitor{io.get_executor(), {}, quiet};
    taskmon::HealthServer server{io.get_executor(),
                                 {.health = [&monitor] { return taskmon::check_health(monitor); }},
                                 {.address = "127.0.0.1", .port = 0},
                                 quiet};

    asio::steady_timer deadline{io, 30s};
    bool timed_out = false;
    deadline.async_wait([&](std::error_code ec) {
        if (!ec) {
            timed_out = true;
            io.stop();
        }
    });

    std::string response;
    std::string error;
    asio::co_spawn(
        io,
        [&]() -> asio::awaitable<void> {
            try {
                response = co_await fetch(server.local_endpoint(), "GET /livez HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
            } catch (const std::exception& e) {
                error = e.what();
            }
            co_await server.close();
            co_await monitor.close();
            deadline.cancel();
        },
        asio::detached);
    io.run();

    if (timed_out || !error.empty() || !response.starts_with("HTTP/1.1 200")) {
        fmt::print("unexpected: timed_out={} error=\"{}\" response=\"{}\"\n", timed_out, error, response);
        return 1;
    }
    fmt::print("taskmon {} consumer ok: GET /livez answered {}\n", TASKMON_VERSION_STRING,
               response.substr(0, response.find('\r')));
    return 0;
}
