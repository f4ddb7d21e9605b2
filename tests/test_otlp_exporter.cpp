// Tests for taskmon/ops/otlp_exporter.hpp: spans of component incarnations sent as OTLP/JSON to a loopback
// receiver, decoded and checked against the OTLP JSON mapping; dropping for an unreachable collector and a full
// queue; settings. The monitor runs in virtual time on the test's thread; the exporter and the receiver on an
// io_context of their own on a second thread, and every send is an explicit flush() (max_delay is an hour).
#include <taskmon/agent/supervisor.hpp>
#include <taskmon/component_context.hpp>
#include <taskmon/ops/otlp_exporter.hpp>
#include <taskmon/task_monitor.hpp>

#include "asio_use_future.hpp"
#include "monitor_harness.hpp"
#include "taskmon_catch.hpp"

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/executor_work_guard.hpp>
#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/read.hpp>
#include <asio/read_until.hpp>
#include <asio/redirect_error.hpp>
#include <asio/steady_timer.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/write.hpp>
#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdint>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

using namespace std::chrono_literals;
using nlohmann::json;
using taskmon::OtlpExporter;
using taskmon::OtlpExporterSettings;
using taskmon_test::Harness;
using taskmon_test::Monitor;
using taskmon_test::Script;

namespace {

/// An io_context on a thread of its own, for the exporter and the receiver (real time).
struct IoThread {
    asio::io_context io;
    asio::executor_work_guard<asio::io_context::executor_type> work{io.get_executor()};
    std::thread thread;

    void start() {
        thread = std::thread{[this] { io.run(); }};
    }
    void stop() {
        work.reset();
        io.stop();
        if (thread.joinable()) thread.join();
    }
    ~IoThread() { stop(); }
};

/// Runs `op` on `io` and waits for it, at most 60 s (a bound against a hang, not a speed requirement).
template <typename Awaitable>
void run_on(asio::io_context& io, Awaitable op) {
    auto done = asio::co_spawn(io, std::move(op), asio::use_future);
    REQUIRE(done.wait_for(60s) == std::future_status::ready);
    done.get();
}

/// A loopback OTLP/HTTP receiver on an io_context and thread of its own: 127.0.0.1, port 0, at most
/// `max_connections` connections, each bounded to 10 s; stores each request's head and body, answers `status`
/// (0: never answers).
class Receiver {
public:
    explicit Receiver(int status = 200, int max_connections = 32) : status_{status} {
        asio::co_spawn(io_.io, accept(max_connections), asio::detached);
        io_.start();
    }
    ~Receiver() { io_.stop(); }  // before the members its handlers use are destroyed

    [[nodiscard]] std::uint16_t port() const { return port_; }

    [[nodiscard]] std::vector<std::string> bodies() const {
        std::lock_guard lock{mutex_};
        return bodies_;
    }
    [[nodiscard]] std::vector<std::string> heads() const {
        std::lock_guard lock{mutex_};
        return heads_;
    }

private:
    asio::awaitable<void> accept(int max_connections) {
        for (int i = 0; i < max_connections; ++i) {
            std::error_code ec;
            auto op = acceptor_.async_accept(asio::redirect_error(asio::use_awaitable, ec));
            auto socket = co_await std::move(op);
            if (ec) co_return;
            auto serve_one = serve(std::move(socket));
            co_await std::move(serve_one);
        }
    }

    asio::awaitable<void> serve(asio::ip::tcp::socket socket) {
        asio::steady_timer limit{socket.get_executor(), 10s};
        limit.async_wait([&socket](std::error_code ec) {
            if (!ec) socket.close(ec);
        });
        std::error_code ec;
        std::string data;
        auto head_op = asio::async_read_until(socket, asio::dynamic_buffer(data), "\r\n\r\n",
                                              asio::redirect_error(asio::use_awaitable, ec));
        const auto head_size = co_await std::move(head_op);
        if (ec) co_return;
        const std::string head = data.substr(0, head_size);
        const auto at = head.find("Content-Length: ");
        const std::size_t length = at == std::string::npos ? 0 : std::stoul(head.substr(at + 16));
        if (data.size() < head_size + length) {
            auto body_op = asio::async_read(socket, asio::dynamic_buffer(data),
                                            asio::transfer_exactly(head_size + length - data.size()),
                                            asio::redirect_error(asio::use_awaitable, ec));
            co_await std::move(body_op);
            if (ec) co_return;
        }
        {
            std::lock_guard lock{mutex_};
            heads_.push_back(head);
            bodies_.push_back(data.substr(head_size, length));
        }
        if (status_ == 0) {  // silent: holds the connection without an answer until the client closes it
            std::string rest;
            auto hold_op =
                asio::async_read(socket, asio::dynamic_buffer(rest), asio::redirect_error(asio::use_awaitable, ec));
            co_await std::move(hold_op);
            co_return;
        }
        std::string response = "HTTP/1.1 " + std::to_string(status_) + " X\r\nContent-Length: 2\r\n\r\n{}";
        auto write_op =
            asio::async_write(socket, asio::buffer(response), asio::redirect_error(asio::use_awaitable, ec));
        co_await std::move(write_op);
        limit.cancel();
    }

    IoThread io_;
    int status_;
    mutable std::mutex mutex_;
    std::vector<std::string> bodies_;
    std::vector<std::string> heads_;
    asio::ip::tcp::acceptor acceptor_{io_.io, {asio::ip::make_address("127.0.0.1"), 0}};
    std::uint16_t port_ = acceptor_.local_endpoint().port();
};

/// A port nothing listens on: bound, then closed.
std::uint16_t closed_port() {
    asio::io_context io;
    asio::ip::tcp::acceptor a{io, {asio::ip::make_address("127.0.0.1"), 0}};
    return a.local_endpoint().port();
}

OtlpExporterSettings settings_for(std::uint16_t port) {
    OtlpExporterSettings s;
    s.port = port;
    s.max_delay = 1h;  // every send in these tests is an explicit flush()
    s.timeout = 20s;
    s.id_seed = 42;
    return s;
}

/// OTLP/JSON's field names by message: opentelemetry-proto's trace.proto, common.proto and resource.proto with
/// their fields in lowerCamelCase, as the protocol's JSON mapping and its examples/trace.json spell them.
const std::map<std::string, std::set<std::string>> otlp_fields{
    {"ExportTraceServiceRequest", {"resourceSpans"}},
    {"ResourceSpans", {"resource", "scopeSpans", "schemaUrl"}},
    {"Resource", {"attributes", "droppedAttributesCount"}},
    {"ScopeSpans", {"scope", "spans", "schemaUrl"}},
    {"InstrumentationScope", {"name", "version", "attributes", "droppedAttributesCount"}},
    {"Span",
     {"traceId", "spanId", "traceState", "parentSpanId", "flags", "name", "kind", "startTimeUnixNano",
      "endTimeUnixNano", "attributes", "droppedAttributesCount", "events", "droppedEventsCount", "links",
      "droppedLinksCount", "status"}},
    {"Event", {"timeUnixNano", "name", "attributes", "droppedAttributesCount"}},
    {"Link", {"traceId", "spanId", "traceState", "attributes", "droppedAttributesCount", "flags"}},
    {"Status", {"message", "code"}},
    {"KeyValue", {"key", "value"}},
    {"AnyValue", {"stringValue", "boolValue", "intValue", "doubleValue", "arrayValue", "kvlistValue", "bytesValue"}},
    {"ArrayValue", {"values"}},
};

/// The message type of each field that holds messages (alone or in an array).
const std::map<std::pair<std::string, std::string>, std::string> otlp_children{
    {{"ExportTraceServiceRequest", "resourceSpans"}, "ResourceSpans"},
    {{"ResourceSpans", "resource"}, "Resource"},
    {{"ResourceSpans", "scopeSpans"}, "ScopeSpans"},
    {{"Resource", "attributes"}, "KeyValue"},
    {{"ScopeSpans", "scope"}, "InstrumentationScope"},
    {{"ScopeSpans", "spans"}, "Span"},
    {{"InstrumentationScope", "attributes"}, "KeyValue"},
    {{"Span", "attributes"}, "KeyValue"},
    {{"Span", "events"}, "Event"},
    {{"Span", "links"}, "Link"},
    {{"Span", "status"}, "Status"},
    {{"Event", "attributes"}, "KeyValue"},
    {{"Link", "attributes"}, "KeyValue"},
    {{"KeyValue", "value"}, "AnyValue"},
    {{"AnyValue", "arrayValue"}, "ArrayValue"},
    {{"ArrayValue", "values"}, "AnyValue"},
};

/// Checks that `message` is an OTLP/JSON `type`: every key a field of that message (a misspelt field would be
/// ignored by a collector, silently), an AnyValue with exactly one value, the enums in range; recursively.
void check_otlp_message(const json& message, const std::string& type) {
    INFO("OTLP " << type << ": " << message.dump());
    REQUIRE(message.is_object());
    const auto& fields = otlp_fields.at(type);
    for (const auto& [key, value] : message.items()) {
        INFO("field " << type << "." << key);
        CHECK(fields.contains(key));
        const auto child = otlp_children.find({type, key});
        if (child == otlp_children.end()) continue;
        if (value.is_array()) {
            for (const auto& element : value) check_otlp_message(element, child->second);
        } else {
            check_otlp_message(value, child->second);
        }
    }
    if (type == "AnyValue") CHECK(message.size() == 1);
    if (type == "Span") CHECK((message.at("kind").is_number_integer() && message["kind"] >= 0 && message["kind"] <= 5));
    if (type == "Status" && message.contains("code")) CHECK((message["code"] >= 0 && message["code"] <= 2));
}

/// Every span of every request body, checked against the OTLP/JSON shape on the way.
std::vector<json> spans_of(const std::vector<std::string>& bodies) {
    std::vector<json> out;
    for (const auto& body : bodies) {
        const auto request = json::parse(body);
        check_otlp_message(request, "ExportTraceServiceRequest");
        REQUIRE(request.at("resourceSpans").size() == 1);
        const auto& resource = request["resourceSpans"][0];
        const auto& attribute = resource.at("resource").at("attributes").at(0);
        CHECK(attribute.at("key") == "service.name");
        CHECK(attribute.at("value").at("stringValue") == "taskmon");
        const auto& scope = resource.at("scopeSpans").at(0);
        CHECK(scope.at("scope").at("name") == "taskmon");
        for (const auto& span : scope.at("spans")) out.push_back(span);
    }
    return out;
}

bool is_hex_id(const json& id, std::size_t digits) {
    if (!id.is_string()) return false;
    const auto s = id.get<std::string>();
    return s.size() == digits && s.find_first_not_of("0123456789abcdef") == std::string::npos &&
           s != std::string(digits, '0');
}

bool is_decimal(const json& value) {
    if (!value.is_string()) return false;
    const auto s = value.get<std::string>();
    return !s.empty() && s.find_first_not_of("0123456789") == std::string::npos;
}

/// The value object of attribute `key` of `attributes`; null if absent.
json attribute(const json& attributes, const std::string& key) {
    for (const auto& a : attributes) {
        if (a.at("key") == key) return a.at("value");
    }
    return nullptr;
}

std::vector<json> events_named(const json& span, const std::string& name) {
    std::vector<json> out;
    for (const auto& e : span.at("events")) {
        if (e.at("name") == name) out.push_back(e);
    }
    return out;
}

}  // namespace

TEST_CASE("A component that fails twice and then runs gives three linked spans with the right statuses") {
    IoThread exporter_io;
    Receiver receiver;
    exporter_io.start();
    Harness h;
    Monitor monitor{h.io.get_executor(), {.max_restart_attempts = 5, .base_backoff = 2s}, h.logger};
    OtlpExporter exporter{exporter_io.io.get_executor(), monitor, settings_for(receiver.port())};
    Script script = taskmon_test::failing_now(2);
    monitor.supervise("db", taskmon_test::factory_of(script));
    h.runner.run_for(1min);
    h.close(monitor);  // the third instance is stopped: its span ends
    run_on(exporter_io.io, exporter.flush());

    REQUIRE(receiver.heads().size() == 1);
    CHECK(receiver.heads()[0].rfind("POST /v1/traces HTTP/1.1\r\n", 0) == 0);
    CHECK(receiver.heads()[0].find("Content-Type: application/json\r\n") != std::string::npos);
    const auto spans = spans_of(receiver.bodies());
    REQUIRE(spans.size() == 3);
    for (const auto& span : spans) {
        CHECK(span.at("traceId") == exporter.trace_id());
        CHECK(is_hex_id(span.at("traceId"), 32));
        CHECK(is_hex_id(span.at("spanId"), 16));
        CHECK(span.at("name") == "db");
        CHECK(span.at("kind") == 1);
        REQUIRE(is_decimal(span.at("startTimeUnixNano")));
        REQUIRE(is_decimal(span.at("endTimeUnixNano")));
        CHECK(std::stoull(span["startTimeUnixNano"].get<std::string>()) <=
              std::stoull(span["endTimeUnixNano"].get<std::string>()));
        CHECK(attribute(span.at("attributes"), "taskmon.component") == json{{"stringValue", "db"}});
        CHECK(attribute(span.at("attributes"), "taskmon.task_id").at("intValue").is_string());
    }
    // In start order: failed, failed, stopped; each links to the one before.
    CHECK(spans[0].at("links").empty());
    for (std::size_t i = 1; i < 3; ++i) {
        REQUIRE(spans[i].at("links").size() == 1);
        CHECK(spans[i]["links"][0].at("spanId") == spans[i - 1].at("spanId"));
        CHECK(spans[i]["links"][0].at("traceId") == exporter.trace_id());
        CHECK(attribute(spans[i].at("attributes"), "taskmon.restart.reason") == json{{"stringValue", "failed"}});
        CHECK(attribute(spans[i].at("attributes"), "taskmon.restart.attempt") == json{{"intValue", std::to_string(i)}});
    }
    for (std::size_t i = 0; i < 2; ++i) {
        CHECK(spans[i].at("status") == json{{"code", 2}, {"message", "std::runtime_error: Connection lost"}});
        CHECK(attribute(spans[i].at("attributes"), "taskmon.failure_class") == json{{"stringValue", "counted"}});
        const auto exceptions = events_named(spans[i], "exception");
        REQUIRE(exceptions.size() == 1);
        CHECK(attribute(exceptions[0].at("attributes"), "exception.type") ==
              json{{"stringValue", "std::runtime_error"}});
        CHECK(attribute(exceptions[0].at("attributes"), "exception.message") ==
              json{{"stringValue", "Connection lost"}});
        CHECK(is_decimal(exceptions[0].at("timeUnixNano")));
    }
    CHECK(spans[2].at("status") == json{{"code", 1}});
    CHECK(attribute(spans[2].at("attributes"), "taskmon.exit") == json{{"stringValue", "stopped"}});
    CHECK(events_named(spans[2], "exception").empty());

    const auto stats = exporter.stats();
    CHECK(stats.spans_exported == 3);
    CHECK(stats.requests_failed == 0);
    CHECK(stats.queued_spans == 0);
}

TEST_CASE("A backoff is a span event of the incarnation it follows, with its attempt and delay") {
    IoThread exporter_io;
    Receiver receiver;
    exporter_io.start();
    Harness h;
    Monitor monitor{h.io.get_executor(), {.max_restart_attempts = 1, .base_backoff = 2s}, h.logger};
    OtlpExporter exporter{exporter_io.io.get_executor(), monitor, settings_for(receiver.port())};
    Script script = taskmon_test::failing_now(2);
    monitor.supervise("db", taskmon_test::factory_of(script));
    h.runner.run_for(1min);  // fails, backoff 2 s, restarted, fails, gives up
    run_on(exporter_io.io, exporter.flush());

    const auto spans = spans_of(receiver.bodies());
    REQUIRE(spans.size() == 2);
    const auto backoff = events_named(spans[0], "restart_scheduled");
    REQUIRE(backoff.size() == 1);
    CHECK(attribute(backoff[0].at("attributes"), "taskmon.restart.attempt") == json{{"intValue", "1"}});
    CHECK(attribute(backoff[0].at("attributes"), "taskmon.delay_ms") == json{{"intValue", "2000"}});
    // Two seconds of virtual time between the end of the first incarnation and the start of the second.
    CHECK(std::stoull(spans[1]["startTimeUnixNano"].get<std::string>()) -
              std::stoull(spans[0]["endTimeUnixNano"].get<std::string>()) ==
          2'000'000'000ULL);
    CHECK(events_named(spans[1], "gave_up").size() == 1);
    h.close(monitor);
}

TEST_CASE("An unreachable collector costs the spans, counted; the monitor is not affected") {
    IoThread exporter_io;
    exporter_io.start();
    Harness h;
    Monitor monitor{h.io.get_executor(), {.max_restart_attempts = 5, .base_backoff = 1s}, h.logger};
    OtlpExporter exporter{exporter_io.io.get_executor(), monitor, settings_for(closed_port())};
    Script script = taskmon_test::failing_now(2);
    monitor.supervise("db", taskmon_test::factory_of(script));
    h.runner.run_for(1min);
    CHECK(script.starts == 3);
    CHECK(monitor.get_component_stats().at("db").state == taskmon::ComponentState::running);
    h.close(monitor);
    run_on(exporter_io.io, exporter.flush());

    const auto stats = exporter.stats();
    CHECK(stats.spans_exported == 0);
    CHECK(stats.spans_dropped_export_failed == 3);
    CHECK(stats.requests_failed == 1);
    CHECK(stats.queued_spans == 0);
    CHECK(script.starts == 3);
}

TEST_CASE("A collector answering 500 fails the request; the spans are dropped and counted") {
    IoThread exporter_io;
    Receiver receiver{500};
    exporter_io.start();
    Harness h;
    Monitor monitor{h.io.get_executor(), {.max_restart_attempts = 5, .base_backoff = 1s}, h.logger};
    OtlpExporter exporter{exporter_io.io.get_executor(), monitor, settings_for(receiver.port())};
    Script script = taskmon_test::failing_now(1);
    monitor.supervise("db", taskmon_test::factory_of(script));
    h.runner.run_for(10s);
    h.close(monitor);
    run_on(exporter_io.io, exporter.flush());
    CHECK(receiver.bodies().size() == 1);
    CHECK(exporter.stats().requests_failed == 1);
    CHECK(exporter.stats().spans_dropped_export_failed == 2);
}

TEST_CASE("A collector that does not answer within the timeout fails the request") {
    IoThread exporter_io;
    Receiver receiver{0};
    exporter_io.start();
    Harness h;
    Monitor monitor{h.io.get_executor(), {.max_restart_attempts = 5, .base_backoff = 1s}, h.logger};
    auto settings = settings_for(receiver.port());
    settings.timeout = 100ms;  // the receiver never answers: no machine is too slow for this to fail
    OtlpExporter exporter{exporter_io.io.get_executor(), monitor, settings};
    Script script = taskmon_test::failing_now(1);
    monitor.supervise("db", taskmon_test::factory_of(script));
    h.runner.run_for(10s);
    h.close(monitor);
    run_on(exporter_io.io, exporter.flush());
    CHECK(exporter.stats().requests_failed == 1);
    CHECK(exporter.stats().spans_dropped_export_failed == 2);
    CHECK(exporter.stats().spans_exported == 0);
}

TEST_CASE("A watchdog timeout ends its span with an error and a span event") {
    using taskmon::ComponentContext;
    IoThread exporter_io;
    Receiver receiver;
    exporter_io.start();
    Harness h;
    Monitor monitor{h.io.get_executor(), {.base_backoff = 2s, .max_backoff = 2s, .watchdog_timeout = 10s}, h.logger};
    OtlpExporter exporter{exporter_io.io.get_executor(), monitor, settings_for(receiver.port())};
    int starts = 0;
    monitor.supervise("poller", [&](ComponentContext ctx) -> asio::awaitable<void> {
        const bool first = ++starts == 1;
        for (int i = 0; !first || i < 2; ++i) {  // the first instance hangs after two heartbeats
            ctx.heartbeat();
            co_await taskmon_test::sleep_for(5s);
        }
        co_await taskmon_test::sleep_for(24h);
    });
    h.runner.run_for(1h);
    h.close(monitor);
    run_on(exporter_io.io, exporter.flush());

    const auto spans = spans_of(receiver.bodies());
    REQUIRE(spans.size() == 2);
    CHECK(spans[0].at("status") == json{{"code", 2}, {"message", "watchdog timeout"}});
    CHECK(attribute(spans[0].at("attributes"), "taskmon.exit") == json{{"stringValue", "watchdog_timeout"}});
    const auto timeouts = events_named(spans[0], "watchdog_timeout");
    REQUIRE(timeouts.size() == 1);
    CHECK(attribute(timeouts[0].at("attributes"), "taskmon.delay_ms") == json{{"intValue", "10000"}});
    CHECK(events_named(spans[0], "restart_scheduled").size() == 1);
    CHECK(attribute(spans[1].at("attributes"), "taskmon.restart.reason") == json{{"stringValue", "watchdog_timeout"}});
    CHECK(spans[1].at("status") == json{{"code", 1}});
}

TEST_CASE("A full queue drops the ended spans and counts them; what is queued stays bounded") {
    IoThread exporter_io;  // not started yet: nothing is sent while the events arrive
    Receiver receiver;
    Harness h;
    Monitor monitor{h.io.get_executor(), {.max_restart_attempts = 20, .base_backoff = 1s, .max_backoff = 1s}, h.logger};
    auto settings = settings_for(receiver.port());
    settings.max_batch_size = 2;
    settings.max_queued_spans = 2;
    OtlpExporter exporter{exporter_io.io.get_executor(), monitor, settings};
    Script script = taskmon_test::failing_now(9);
    monitor.supervise("db", taskmon_test::factory_of(script));
    h.runner.run_for(1min);
    h.close(monitor);  // ten incarnations ended: nine failed, one stopped

    auto stats = exporter.stats();
    CHECK(stats.queued_spans == 2);
    CHECK(stats.spans_dropped_queue_full == 7);  // the tenth is parked for its follow-up events
    exporter_io.start();  // the sender takes the full batch; the flush() the parked span, if the queue has room
    run_on(exporter_io.io, exporter.flush());
    stats = exporter.stats();
    CHECK(stats.spans_dropped_queue_full + stats.spans_exported == 10);
    CHECK((stats.spans_exported == 2 || stats.spans_exported == 3));
    CHECK(stats.queued_spans == 0);
    CHECK(spans_of(receiver.bodies()).size() == stats.spans_exported);

    const auto families = exporter.collect();
    REQUIRE(families.size() == 4);
    CHECK(families[0].name == "taskmon_otlp_spans_exported_total");
    CHECK(families[0].samples.at(0).value == static_cast<double>(stats.spans_exported));
    CHECK(families[1].name == "taskmon_otlp_spans_dropped_total");
    CHECK(families[1].samples.at(0).labels == std::vector<taskmon::MetricLabel>{{"reason", "queue_full"}});
    CHECK(families[1].samples.at(0).value == static_cast<double>(stats.spans_dropped_queue_full));
    CHECK(families[2].name == "taskmon_otlp_requests_failed_total");
    CHECK(families[3].name == "taskmon_otlp_queued_spans");
    CHECK(families[3].samples.at(0).value == 0.0);
}

TEST_CASE("A full batch is sent without waiting for max_delay or a flush()") {
    IoThread exporter_io;
    Receiver receiver;
    exporter_io.start();
    Harness h;
    Monitor monitor{h.io.get_executor(), {.max_restart_attempts = 5, .base_backoff = 1s}, h.logger};
    auto settings = settings_for(receiver.port());
    settings.max_batch_size = 2;
    OtlpExporter exporter{exporter_io.io.get_executor(), monitor, settings};
    Script script = taskmon_test::failing_now(2);
    monitor.supervise("db", taskmon_test::factory_of(script));
    h.runner.run_for(1min);  // two ended, queued by the starts that followed them; the third runs
    // Real time, bounded generously: the sender runs on its own thread; max_delay is an hour.
    const auto give_up = std::chrono::steady_clock::now() + 30s;
    while (exporter.stats().spans_exported < 2 && std::chrono::steady_clock::now() < give_up) {
        std::this_thread::sleep_for(5ms);
    }
    CHECK(exporter.stats().spans_exported == 2);
    REQUIRE(receiver.bodies().size() == 1);
    CHECK(spans_of(receiver.bodies()).size() == 2);
    h.close(monitor);
}

TEST_CASE("close() sends what is queued and stops listening") {
    IoThread exporter_io;
    Receiver receiver;
    exporter_io.start();
    Harness h;
    Monitor monitor{h.io.get_executor(), {.max_restart_attempts = 5, .base_backoff = 1s}, h.logger};
    OtlpExporter exporter{exporter_io.io.get_executor(), monitor, settings_for(receiver.port())};
    Script script = taskmon_test::failing_now(1);
    monitor.supervise("db", taskmon_test::factory_of(script));
    h.runner.run_for(10s);
    h.close(monitor);
    run_on(exporter_io.io, exporter.close(30s));
    CHECK(exporter.stats().spans_exported == 2);
    CHECK(exporter.stats().spans_dropped_closed == 0);
    run_on(exporter_io.io, exporter.close(30s));  // idempotent
    CHECK(receiver.bodies().size() == 1);
}

TEST_CASE("close() ends the spans of incarnations still running and sends them, marked open_at_close") {
    IoThread exporter_io;
    Receiver receiver;
    exporter_io.start();
    Harness h;
    Monitor monitor{h.io.get_executor(), {.max_restart_attempts = 5, .base_backoff = 1s}, h.logger};
    OtlpExporter exporter{exporter_io.io.get_executor(), monitor, settings_for(receiver.port())};
    Script script = taskmon_test::failing_now(1);
    monitor.supervise("db", taskmon_test::factory_of(script));
    Script steady;  // never fails: one incarnation, running at close()
    monitor.supervise("cache", taskmon_test::factory_of(steady));
    h.runner.run_for(10s);
    REQUIRE(script.live == 1);  // db's second incarnation runs
    REQUIRE(steady.live == 1);
    // The exporter is closed before the monitor: db's first incarnation ended (failed), its second and cache's
    // only one are still running.
    const auto before_close =
        std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::system_clock::now().time_since_epoch())
            .count();
    run_on(exporter_io.io, exporter.close(30s));
    CHECK(exporter.stats().spans_exported == 3);
    CHECK(exporter.stats().spans_dropped_closed == 0);
    REQUIRE(receiver.bodies().size() == 1);  // in close()'s one flush
    const auto spans = spans_of(receiver.bodies());
    REQUIRE(spans.size() == 3);
    int open_at_close = 0;
    for (const auto& span : spans) {
        const auto& attributes = span.at("attributes");
        if (attribute(attributes, "taskmon.open_at_close").is_null()) {
            CHECK(span.at("name") == "db");  // the failed one: a real exit
            CHECK(attribute(attributes, "taskmon.exit") == json{{"stringValue", "failed"}});
            CHECK(span.at("status").at("code") == 2);
            continue;
        }
        ++open_at_close;
        CHECK(attribute(attributes, "taskmon.open_at_close") == json{{"boolValue", true}});
        CHECK(attribute(attributes, "taskmon.exit").is_null());
        CHECK(span.at("status") == json::object());  // unset: the outcome is not known
        CHECK(events_named(span, "exception").empty());
        const auto start = std::stoull(span.at("startTimeUnixNano").get<std::string>());
        const auto end = std::stoull(span.at("endTimeUnixNano").get<std::string>());
        CHECK(end >= start);
        // The close's wall-clock time, unless the virtual clock put the start later.
        CHECK(end >= std::max<std::uint64_t>(start, static_cast<std::uint64_t>(before_close)));
    }
    CHECK(open_at_close == 2);
    // db's running incarnation links to its failed one.
    for (const auto& span : spans) {
        if (span.at("name") == "db" && !attribute(span.at("attributes"), "taskmon.open_at_close").is_null()) {
            REQUIRE(span.at("links").size() == 1);
        }
    }
    run_on(exporter_io.io, exporter.close(30s));  // idempotent: nothing more
    CHECK(receiver.bodies().size() == 1);
    h.close(monitor);  // its stopped events reach no exporter any more
    CHECK(exporter.stats().spans_exported == 3);
}

TEST_CASE("close() gives up at its deadline: what is left is dropped and counted as closed") {
    IoThread exporter_io;  // started at close(): nothing is sent before
    Receiver receiver{0};  // never answers: the first POST uses up the deadline
    Harness h;
    Monitor monitor{h.io.get_executor(), {.max_restart_attempts = 5, .base_backoff = 1s}, h.logger};
    auto settings = settings_for(receiver.port());
    settings.max_batch_size = 1;
    settings.timeout = 1s;
    OtlpExporter exporter{exporter_io.io.get_executor(), monitor, settings};
    Script script = taskmon_test::failing_now(1);
    monitor.supervise("db", taskmon_test::factory_of(script));
    h.runner.run_for(10s);
    h.close(monitor);
    exporter_io.start();
    run_on(exporter_io.io, exporter.close(100ms));
    // The first span went out in one POST, by close() or by the sender (a full batch) before it; the second was
    // left when the deadline passed.
    auto stats = exporter.stats();
    CHECK(stats.spans_dropped_closed == 1);
    CHECK(stats.queued_spans == 0);
    // A POST the sender started goes on until its own timeout (1 s) after close() returned: wait for it, bounded.
    const auto give_up = std::chrono::steady_clock::now() + 60s;
    while (exporter.stats().requests_failed == 0 && std::chrono::steady_clock::now() < give_up) {
        std::this_thread::sleep_for(5ms);
    }
    stats = exporter.stats();
    CHECK(stats.requests_failed == 1);
    CHECK(stats.spans_dropped_export_failed == 1);
    CHECK(stats.spans_exported == 0);
}

TEST_CASE("Wrapped Supervisor hooks make a span per step with decide and act child spans") {
    using Hooks = taskmon::SupervisorHooks<int, std::string>;
    using Step = taskmon::StepRecord<int, std::string>;
    IoThread exporter_io;
    Receiver receiver;
    exporter_io.start();
    Harness h;
    OtlpExporter exporter{exporter_io.io.get_executor(), settings_for(receiver.port())};  // no source yet
    int user_steps = 0;
    Hooks hooks = exporter.wrap(Hooks{.on_step_end = [&](const Step&) { ++user_steps; }});
    Monitor monitor{h.io.get_executor(), {}, h.logger};  // stands for the Supervisor constructed with the hooks
    exporter.listen(monitor);
    monitor.supervise("perception", [] { return taskmon_test::sleep_for(1h); });
    h.runner.run_for(1s);
    hooks.on_run_start();
    Step step;
    step.number = 7;
    step.outcome = taskmon::StepOutcome::failed;
    step.fate = taskmon::DecisionFate::failed;
    step.error = "action 1 failed";
    step.started_at = 10ms;
    step.decided_at = 30ms;
    step.finished_at = 90ms;
    step.actions.push_back({1, taskmon::ActionOutcome::succeeded, taskmon::ActionResult::ok(), 30ms, 50ms});
    step.actions.push_back({2, taskmon::ActionOutcome::failed, taskmon::ActionResult::failure("jammed"), 50ms, 90ms});
    step.actions.push_back({3, taskmon::ActionOutcome::skipped, taskmon::ActionResult::failure("skipped"), {}, {}});
    hooks.on_step_end(step);
    CHECK(user_steps == 1);
    h.close(monitor);
    run_on(exporter_io.io, exporter.flush());

    auto spans = spans_of(receiver.bodies());
    REQUIRE(spans.size() == 5);  // the step, decide, two actions that ran; then the component's incarnation
    CHECK(spans[4].at("name") == "perception");
    CHECK(spans[4].at("traceId") == spans[0].at("traceId"));
    spans.pop_back();
    const auto& parent = spans[0];
    CHECK(parent.at("name") == "agent.step");
    CHECK(parent.count("parentSpanId") == 0);
    CHECK(attribute(parent.at("attributes"), "taskmon.agent.step") == json{{"intValue", "7"}});
    CHECK(parent.at("status") == json{{"code", 2}, {"message", "action 1 failed"}});
    const auto ns = [](const json& span, const char* field) { return std::stoll(span.at(field).get<std::string>()); };
    CHECK(ns(parent, "endTimeUnixNano") - ns(parent, "startTimeUnixNano") == 80'000'000);
    CHECK(spans[1].at("name") == "decide");
    CHECK(ns(spans[1], "endTimeUnixNano") - ns(spans[1], "startTimeUnixNano") == 20'000'000);
    CHECK(attribute(spans[1].at("attributes"), "taskmon.agent.fate") == json{{"stringValue", "failed"}});
    CHECK(spans[1].at("status") == json{{"code", 1}});
    for (std::size_t i = 1; i < 4; ++i) {
        CHECK(spans[i].at("parentSpanId") == parent.at("spanId"));
        CHECK(is_hex_id(spans[i].at("spanId"), 16));
    }
    CHECK(spans[2].at("name") == "act");
    CHECK(spans[2].at("status") == json{{"code", 1}});
    CHECK(ns(spans[2], "startTimeUnixNano") - ns(parent, "startTimeUnixNano") == 20'000'000);
    CHECK(spans[3].at("status") == json{{"code", 2}, {"message", "jammed"}});
    CHECK(attribute(spans[3].at("attributes"), "taskmon.agent.action.outcome") == json{{"stringValue", "failed"}});
}

TEST_CASE("The OTLP/JSON encoding escapes any text and keeps ids and times in their string forms") {
    taskmon::detail::OtlpSpan span;
    span.span_id = 1;
    span.component = "db \"primary\"\n";
    span.start = std::chrono::system_clock::time_point{std::chrono::seconds{1'700'000'000}};
    span.end = span.start + std::chrono::milliseconds{1500};
    span.end_kind = taskmon::MonitorEventKind::failed;
    span.status = taskmon::detail::OtlpStatusCode::error;
    span.status_message = "bad\xff byte\x01";
    span.events.push_back({"exception", span.end, 0, {}, 0, "std::system_error: refused: again"});
    span.events.push_back({"exception", span.end, 0, {}, 0, "no type here"});
    const auto body = taskmon::detail::encode_otlp_traces("svc\\", "0.1.0", {0, 0xAB}, {span});
    const auto request = json::parse(body);  // throws if the escaping broke the document
    check_otlp_message(request, "ExportTraceServiceRequest");
    const auto& out = request["resourceSpans"][0]["scopeSpans"][0]["spans"][0];
    CHECK(out.at("traceId") == "000000000000000000000000000000ab");
    CHECK(out.at("spanId") == "0000000000000001");
    CHECK(out.at("name") == "db \"primary\"\n");
    CHECK(out.at("startTimeUnixNano") == "1700000000000000000");
    CHECK(out.at("endTimeUnixNano") == "1700000001500000000");
    CHECK(out.at("status").at("message") == "bad\xEF\xBF\xBD byte\x01");  // invalid UTF-8 replaced
    const auto& events = out.at("events");
    CHECK(attribute(events[0].at("attributes"), "exception.type") == json{{"stringValue", "std::system_error"}});
    CHECK(attribute(events[0].at("attributes"), "exception.message") == json{{"stringValue", "refused: again"}});
    CHECK(attribute(events[1].at("attributes"), "exception.type").is_null());
    CHECK(attribute(events[1].at("attributes"), "exception.message") == json{{"stringValue", "no type here"}});
    CHECK(request["resourceSpans"][0]["resource"]["attributes"][0]["value"]["stringValue"] == "svc\\");
}

TEST_CASE("Bad OtlpExporterSettings are refused, naming the field") {
    asio::io_context io;
    Harness h;
    Monitor monitor{h.io.get_executor(), {}, h.logger};
    const auto refused = [&](OtlpExporterSettings s) {
        return taskmon_test::invalid_argument_message([&] { OtlpExporter exporter{io.get_executor(), monitor, s}; });
    };
    OtlpExporterSettings s;
    s.host = "";
    CHECK_THAT(refused(s), Catch::Matchers::Contains("OtlpExporterSettings.host"));
    s = {};
    s.port = 0;
    CHECK_THAT(refused(s), Catch::Matchers::Contains("OtlpExporterSettings.port"));
    s = {};
    s.path = "v1/traces";
    CHECK_THAT(refused(s), Catch::Matchers::Contains("OtlpExporterSettings.path"));
    s = {};
    s.service_name = "";
    CHECK_THAT(refused(s), Catch::Matchers::Contains("OtlpExporterSettings.service_name"));
    s = {};
    s.max_batch_size = 0;
    CHECK_THAT(refused(s), Catch::Matchers::Contains("OtlpExporterSettings.max_batch_size"));
    s = {};
    s.max_queued_spans = s.max_batch_size - 1;
    CHECK_THAT(refused(s), Catch::Matchers::Contains("OtlpExporterSettings.max_queued_spans"));
    s = {};
    s.max_delay = 0ms;
    CHECK_THAT(refused(s), Catch::Matchers::Contains("OtlpExporterSettings.max_delay"));
    s = {};
    s.timeout = -1ms;
    CHECK_THAT(refused(s), Catch::Matchers::Contains("OtlpExporterSettings.timeout"));
    CHECK(refused(OtlpExporterSettings{}) == "no exception");
    h.close(monitor);
}
