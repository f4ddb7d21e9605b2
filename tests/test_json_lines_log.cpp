// Tests for taskmon/ops/json_lines_log.hpp: a monitor's events as JSON lines through a spdlog logger. The monitor
// runs in virtual time on the test's thread; JsonLinesLog logs from its own thread, so the lines are read back from
// a ring buffer sink after flush(). Where nlohmann/json
// is available (TASKMON_TEST_JSON) every line is decoded; otherwise its structure is checked as text.
#include <taskmon/ops/json_lines_log.hpp>
#include <taskmon/task_monitor.hpp>

#include "monitor_harness.hpp"
#include "taskmon_catch.hpp"

#include <spdlog/async_logger.h>
#include <spdlog/details/thread_pool.h>
#include <spdlog/sinks/base_sink.h>
#include <spdlog/sinks/ringbuffer_sink.h>

#if TASKMON_TEST_JSON
#include <nlohmann/json.hpp>
#endif

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

using taskmon::JsonLinesLog;
using taskmon::JsonLinesLogSettings;
using taskmon::MonitorEventKind;
using namespace taskmon_test;

namespace {

/// A logger whose lines are "level|json", at trace, kept in a ring buffer.
struct Lines : RecordingLogger {
    Lines() : RecordingLogger{"events"} {}
};

/// Checks that `json` is one JSON object for `event` (decoded where nlohmann/json is available).
void check_line(const std::string& json, const taskmon::MonitorEvent& event) {
    INFO(json);
    CHECK(json.find('\n') == std::string::npos);
    REQUIRE(json.size() >= 2);
    CHECK(json.front() == '{');
    CHECK(json.back() == '}');
    CHECK(json == taskmon::monitor_event_json(event));
#if TASKMON_TEST_JSON
    const auto decoded = nlohmann::json::parse(json);  // throws on invalid JSON
    REQUIRE(decoded.is_object());
    CHECK(decoded.at("kind") == std::string{to_string(event.kind)});
    CHECK(decoded.at("component") == event.component);
    CHECK(decoded.at("sequence") == event.sequence);
#else
    CHECK(json.find("\"kind\":\"" + std::string{to_string(event.kind)} + "\"") != std::string::npos);
    CHECK(json.find("\"sequence\":" + std::to_string(event.sequence) + ",") != std::string::npos);
#endif
}

/// A sink that throws a std::runtime_error on every message (spdlog's error handler catches those).
struct RuntimeErrorSink final : spdlog::sinks::base_sink<std::mutex> {
protected:
    void sink_it_(const spdlog::details::log_msg&) override { throw std::runtime_error{"disk full"}; }
    void flush_() override {}
};

/// A sink that keeps its lines as "level|payload" and, while closed, holds every log() call until open(): a sink
/// that stalls, as a disk or a pipe nobody reads does. The waits are bounded (30 s) so that a failing test ends.
/// `failures` first calls throw something that is not a std::exception (spdlog rethrows those) instead.
struct GateSink final : spdlog::sinks::sink {
    explicit GateSink(bool open_at_first = true, std::size_t failures = 0)
        : open_{open_at_first}, failures_{failures} {}

    void log(const spdlog::details::log_msg& msg) override {
        std::unique_lock lock{mutex_};
        ++entered_;
        changed_.notify_all();
        changed_.wait_for(lock, std::chrono::seconds{30}, [this] { return open_; });
        if (failures_ > 0) {
            --failures_;
            throw 42;
        }
        const auto level = spdlog::level::to_string_view(msg.level);
        lines_.push_back(std::string(level.data(), level.size()) + "|" +
                         std::string(msg.payload.data(), msg.payload.size()));
    }
    void flush() override {}
    void set_pattern(const std::string&) override {}
    void set_formatter(std::unique_ptr<spdlog::formatter>) override {}

    void open() {
        std::lock_guard lock{mutex_};
        open_ = true;
        changed_.notify_all();
    }
    /// True once a log() call has begun (within 30 s).
    bool wait_entered() {
        std::unique_lock lock{mutex_};
        return changed_.wait_for(lock, std::chrono::seconds{30}, [this] { return entered_ > 0; });
    }
    [[nodiscard]] std::vector<std::string> lines() const {
        std::lock_guard lock{mutex_};
        return lines_;
    }

private:
    mutable std::mutex mutex_;
    std::condition_variable changed_;
    bool open_;
    std::size_t failures_;
    std::size_t entered_ = 0;
    std::vector<std::string> lines_;
};

std::shared_ptr<spdlog::logger> logger_of(std::shared_ptr<GateSink> sink) {
    auto logger = std::make_shared<spdlog::logger>("events", std::move(sink));
    logger->set_level(spdlog::level::trace);
    return logger;
}

/// "level|json" as Lines and GateSink keep an event's line.
std::string line_of(const taskmon::MonitorEvent& e) {
    const auto level = spdlog::level::to_string_view(taskmon::json_lines_level(e.kind));
    return std::string(level.data(), level.size()) + "|" + taskmon::monitor_event_json(e);
}

}  // namespace

TEST_CASE("json_lines_level: give-ups error, failures and timeouts warn, the rest info", "[json_lines_log]") {
    using spdlog::level::err;
    using spdlog::level::info;
    using spdlog::level::warn;
    CHECK(taskmon::json_lines_level(MonitorEventKind::gave_up) == err);
    CHECK(taskmon::json_lines_level(MonitorEventKind::group_gave_up) == err);
    CHECK(taskmon::json_lines_level(MonitorEventKind::quarantined) == err);
    CHECK(taskmon::json_lines_level(MonitorEventKind::escalated) == err);
    CHECK(taskmon::json_lines_level(MonitorEventKind::failed) == warn);
    CHECK(taskmon::json_lines_level(MonitorEventKind::watchdog_timeout) == warn);
    CHECK(taskmon::json_lines_level(MonitorEventKind::startup_timeout) == warn);
    CHECK(taskmon::json_lines_level(MonitorEventKind::stop_timeout) == warn);
    CHECK(taskmon::json_lines_level(MonitorEventKind::factory_failed) == warn);
    CHECK(taskmon::json_lines_level(MonitorEventKind::cancelled_unexpectedly) == warn);
    CHECK(taskmon::json_lines_level(MonitorEventKind::started) == info);
    CHECK(taskmon::json_lines_level(MonitorEventKind::restarted) == info);
    CHECK(taskmon::json_lines_level(MonitorEventKind::restart_scheduled) == info);
    CHECK(taskmon::json_lines_level(MonitorEventKind::closed) == info);
}

TEST_CASE("JsonLinesLog writes one valid JSON line per event at its kind's level", "[json_lines_log]") {
    Harness h;
    auto script = failing_now(3);
    Monitor monitor{h.io.get_executor(), {.max_restart_attempts = 2, .base_backoff = 1s, .max_backoff = 1s}, h.logger};
    Recorder recorder;
    auto recording = monitor.subscribe(recorder.listener());
    Lines out;
    JsonLinesLog log{monitor, out.logger};
    monitor.supervise("db \"primary\"", factory_of(script));
    h.runner.run_for(10s);
    h.close(monitor);
    log.flush();

    const auto lines = out.lines();
    REQUIRE(lines.size() == recorder.events.size());
    CHECK(log.stats().lines == lines.size());
    CHECK(log.stats().skipped == 0);
    CHECK(log.stats().errors == 0);
    bool saw_failed = false;
    bool saw_gave_up = false;
    for (std::size_t i = 0; i < lines.size(); ++i) {
        const auto& e = recorder.events[i];
        const auto bar = lines[i].find('|');
        REQUIRE(bar != std::string::npos);
        const auto level = lines[i].substr(0, bar);
        const auto expected = spdlog::level::to_string_view(taskmon::json_lines_level(e.kind));
        CHECK(level == std::string(expected.data(), expected.size()));
        check_line(lines[i].substr(bar + 1), e);
        saw_failed = saw_failed || e.kind == MonitorEventKind::failed;
        saw_gave_up = saw_gave_up || e.kind == MonitorEventKind::gave_up;
    }
    CHECK(saw_failed);
    CHECK(saw_gave_up);
    CHECK(recorder.kinds().back() == "closed");
}

TEST_CASE("JsonLinesLog: min_level, overrides per kind and the logger's own level", "[json_lines_log]") {
    Harness h;
    auto script = failing_now(3);
    Monitor monitor{h.io.get_executor(), {.max_restart_attempts = 2, .base_backoff = 1s, .max_backoff = 1s}, h.logger};
    Recorder recorder;
    auto recording = monitor.subscribe(recorder.listener());
    Lines warnings;
    JsonLinesLog warn_log{monitor, warnings.logger, {.min_level = spdlog::level::warn}};
    Lines custom;
    JsonLinesLog custom_log{monitor,
                            custom.logger,
                            {.min_level = spdlog::level::debug,
                             .levels = {{MonitorEventKind::failed, spdlog::level::off},
                                        {MonitorEventKind::restarted, spdlog::level::debug}}}};
    CHECK(custom_log.level_of(MonitorEventKind::failed) == spdlog::level::off);
    CHECK(custom_log.level_of(MonitorEventKind::restarted) == spdlog::level::debug);
    CHECK(custom_log.level_of(MonitorEventKind::gave_up) == spdlog::level::err);
    Lines quiet;
    quiet.logger->set_level(spdlog::level::err);  // the logger's level applies too
    JsonLinesLog quiet_log{monitor, quiet.logger};
    monitor.supervise("c", factory_of(script));
    h.runner.run_for(10s);
    h.close(monitor);
    warn_log.flush();
    custom_log.flush();
    quiet_log.flush();

    std::size_t at_least_warn = 0;
    std::size_t failed = 0;
    std::size_t restarted = 0;
    std::size_t errors = 0;
    for (const auto& e : recorder.events) {
        at_least_warn += taskmon::json_lines_level(e.kind) >= spdlog::level::warn ? 1 : 0;
        failed += e.kind == MonitorEventKind::failed ? 1 : 0;
        restarted += e.kind == MonitorEventKind::restarted ? 1 : 0;
        errors += taskmon::json_lines_level(e.kind) == spdlog::level::err ? 1 : 0;
    }
    REQUIRE(failed == 3);
    REQUIRE(restarted == 2);
    REQUIRE(errors == 1);  // gave_up

    CHECK(warnings.lines().size() == at_least_warn);
    CHECK(warn_log.stats().lines == at_least_warn);
    CHECK(warn_log.stats().skipped == recorder.events.size() - at_least_warn);
    for (const auto& line : warnings.lines()) {
        CHECK((line.rfind("warning|", 0) == 0 || line.rfind("error|", 0) == 0));
    }

    const auto custom_lines = custom.lines();
    CHECK(custom_lines.size() == recorder.events.size() - failed);
    std::size_t debug_lines = 0;
    for (const auto& line : custom_lines) {
        CHECK(line.find("\"kind\":\"failed\"") == std::string::npos);
        if (line.rfind("debug|", 0) == 0) {
            ++debug_lines;
            CHECK(line.find("\"kind\":\"restarted\"") != std::string::npos);
        }
    }
    CHECK(debug_lines == restarted);

    REQUIRE(quiet.lines().size() == 1);
    CHECK(quiet.lines()[0].find("\"kind\":\"gave_up\"") != std::string::npos);
    CHECK(quiet_log.stats().skipped == recorder.events.size() - 1);
}

TEST_CASE("JsonLinesLog: a throwing sink does not break the monitor", "[json_lines_log]") {
    Harness h;
    auto script = failing_now(3);
    Monitor monitor{h.io.get_executor(), {.max_restart_attempts = 2, .base_backoff = 1s, .max_backoff = 1s}, h.logger};
    Recorder before;
    auto first = monitor.subscribe(before.listener());

    // A std::exception goes to the logger's error handler.
    auto std_logger = std::make_shared<spdlog::logger>("std", std::make_shared<RuntimeErrorSink>());
    std::vector<std::string> handled;
    std_logger->set_error_handler([&handled](const std::string& message) { handled.push_back(message); });
    JsonLinesLog std_log{monitor, std_logger};
    // Anything else escapes spdlog::logger::log() (after its error handler): JsonLinesLog catches and counts it.
    auto other_logger = std::make_shared<spdlog::logger>("other", std::make_shared<ThrowingSink>());
    std::size_t other_handled = 0;
    other_logger->set_error_handler([&other_handled](const std::string&) { ++other_handled; });
    JsonLinesLog other_log{monitor, other_logger};

    Recorder after;
    auto last = monitor.subscribe(after.listener());
    monitor.supervise("c", factory_of(script));
    h.runner.run_for(10s);
    CHECK(script.starts == 3);  // two restarts, then the give-up: the monitor went on as without the logs
    h.close(monitor);
    std_log.flush();  // the handlers ran on the logs' threads: flush() orders their writes before the checks
    other_log.flush();

    REQUIRE_FALSE(before.events.empty());
    CHECK(after.kinds() == before.kinds());  // the listener subscribed after the throwing ones saw every event
    CHECK(before.kinds().back() == "closed");
    CHECK(handled.size() == before.events.size());
    for (const auto& message : handled) {
        CHECK(message == "disk full");
    }
    CHECK(std_log.stats().errors == 0);  // handled by spdlog
    CHECK(other_log.stats().errors == before.events.size());
    CHECK(other_log.stats().lines == 0);
    CHECK(other_handled == before.events.size());
}

TEST_CASE("JsonLinesLog unsubscribes when destroyed", "[json_lines_log]") {
    Harness h;
    auto script = failing_now(100);
    Monitor monitor{
        h.io.get_executor(), {.max_restart_attempts = 100, .base_backoff = 1s, .max_backoff = 1s}, h.logger};
    Lines out;
    std::optional<JsonLinesLog> log;
    log.emplace(monitor, out.logger);
    monitor.supervise("c", factory_of(script));
    h.runner.run_for(5s);
    log->flush();
    const auto seen = out.lines().size();
    CHECK(seen > 0);
    CHECK(log->stats().lines == seen);
    log.reset();
    CHECK(out.logger.use_count() == 1);  // the listener, and its share of the logger, are gone
    h.runner.run_for(5s);
    CHECK(script.starts > 5);  // the monitor went on restarting
    CHECK(out.lines().size() == seen);
    h.close(monitor);
    CHECK(out.lines().size() == seen);
}

TEST_CASE("JsonLinesLog through spdlog's async logger: the sink runs on spdlog's thread", "[json_lines_log]") {
    Harness h;
    auto script = failing_now(3);
    Monitor monitor{h.io.get_executor(), {.max_restart_attempts = 2, .base_backoff = 1s, .max_backoff = 1s}, h.logger};
    Recorder recorder;
    auto recording = monitor.subscribe(recorder.listener());
    auto sink = std::make_shared<spdlog::sinks::ringbuffer_sink_mt>(4096);
    sink->set_pattern("%v");
    auto pool = std::make_shared<spdlog::details::thread_pool>(8192, 1);
    auto logger =
        std::make_shared<spdlog::async_logger>("async-events", sink, pool, spdlog::async_overflow_policy::block);
    std::optional<JsonLinesLog> log;
    log.emplace(monitor, logger);
    monitor.supervise("c", factory_of(script));
    h.runner.run_for(10s);
    h.close(monitor);
    log->flush();
    CHECK(log->stats().lines == recorder.events.size());
    log.reset();
    logger.reset();
    pool.reset();  // joins spdlog's thread once it has written every queued line: the explicit synchronisation

    const auto lines = sink->last_formatted();
    REQUIRE(lines.size() == recorder.events.size());
    for (std::size_t i = 0; i < lines.size(); ++i) {
        auto line = lines[i];
        while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) {
            line.pop_back();
        }
        check_line(line, recorder.events[i]);
    }
}

TEST_CASE("JsonLinesLog refuses a null logger", "[json_lines_log]") {
    Harness h;
    Monitor monitor{h.io.get_executor(), {}, h.logger};
    CHECK(invalid_argument_message([&] { JsonLinesLog log{monitor, nullptr}; }) == "JsonLinesLog: logger is null");
    h.close(monitor);
}

TEST_CASE("JsonLinesLog: after flush() every line is there, in the order of the events", "[json_lines_log]") {
    Harness h;
    auto script = failing_now(40);
    Monitor monitor{h.io.get_executor(), {.max_restart_attempts = 39, .base_backoff = 1s, .max_backoff = 1s}, h.logger};
    Recorder recorder;
    auto recording = monitor.subscribe(recorder.listener());
    Lines out;
    JsonLinesLog log{monitor, out.logger};
    monitor.supervise("c", factory_of(script));
    h.runner.run_for(60s);
    h.close(monitor);
    log.flush();

    REQUIRE(recorder.events.size() > 100);
    const auto lines = out.lines();
    REQUIRE(lines.size() == recorder.events.size());
    for (std::size_t i = 0; i < lines.size(); ++i) {
        CHECK(lines[i] == line_of(recorder.events[i]));
    }
    CHECK(log.stats().lines == lines.size());
    CHECK(log.stats().queued == 0);
    CHECK(log.stats().dropped == 0);
    CHECK(log.flush(0s));  // nothing left: true at once
}

TEST_CASE("JsonLinesLog: a full queue drops and counts, and the monitor never waits for the sink", "[json_lines_log]") {
    Harness h;
    auto script = failing_now(3);
    Monitor monitor{h.io.get_executor(), {.max_restart_attempts = 2, .base_backoff = 1s, .max_backoff = 1s}, h.logger};
    Recorder recorder;
    auto recording = monitor.subscribe(recorder.listener());
    auto sink = std::make_shared<GateSink>(false);  // closed: the first line's log() waits until open()
    JsonLinesLog log{monitor, logger_of(sink), {.max_queued_events = 4}};
    monitor.supervise("c", factory_of(script));
    h.runner.run_for(10s);
    CHECK(script.starts == 3);  // the restarts went on while the sink held the worker
    h.close(monitor);

    // Accepted and not yet logged counts the line the worker is stuck in: 4 accepted whenever the worker took them.
    const auto total = recorder.events.size();
    REQUIRE(total > 4);
    CHECK(log.stats().queued == 4);
    CHECK(log.stats().dropped == total - 4);
    CHECK(log.stats().lines == 0);
    CHECK(sink->wait_entered());
    CHECK_FALSE(log.flush(10ms));  // the sink is closed: the bounded wait ends without everything logged

    sink->open();
    log.flush();
    const auto lines = sink->lines();
    REQUIRE(lines.size() == 5);
    for (std::size_t i = 0; i < 4; ++i) {
        CHECK(lines[i] == line_of(recorder.events[i]));  // the first four events, in order
    }
    CHECK(lines[4] == "warning|{\"dropped\":" + std::to_string(total - 4) + "}");
    CHECK(log.stats().lines == 4);
    CHECK(log.stats().queued == 0);
    CHECK(log.stats().dropped == total - 4);
    CHECK(log.stats().errors == 0);
}

TEST_CASE("JsonLinesLog: bad settings throw naming the field, and subscribe to nothing", "[json_lines_log]") {
    Harness h;
    auto script = failing_now(3);
    Monitor monitor{h.io.get_executor(), {.max_restart_attempts = 2, .base_backoff = 1s, .max_backoff = 1s}, h.logger};
    Lines out;
    CHECK(invalid_argument_message([&] {
              JsonLinesLog log{monitor, out.logger, {.max_queued_events = 0}};
          }) == "JsonLinesLogSettings.max_queued_events: must be at least 1");
    CHECK(invalid_argument_message([&] {
              JsonLinesLog log{
                  monitor, out.logger, {.levels = {{static_cast<MonitorEventKind>(250), spdlog::level::info}}}};
          }) == "JsonLinesLogSettings.levels: unknown MonitorEventKind");
    CHECK(invalid_argument_message([&] {
              JsonLinesLog log{
                  monitor, out.logger, {.levels = {{MonitorEventKind::failed, spdlog::level::level_enum{42}}}}};
          }) == "JsonLinesLogSettings.levels: not a spdlog level");
    CHECK(invalid_argument_message([&] {
              JsonLinesLog log{monitor, out.logger, {.min_level = spdlog::level::level_enum{-1}}};
          }) == "JsonLinesLogSettings.min_level: not a spdlog level");
    CHECK(out.logger.use_count() == 1);  // no listener nor thread kept a share of the logger

    Recorder recorder;
    auto recording = monitor.subscribe(recorder.listener());
    monitor.supervise("c", factory_of(script));
    h.runner.run_for(10s);
    CHECK(script.starts == 3);
    h.close(monitor);
    CHECK_FALSE(recorder.events.empty());
    CHECK(out.lines().empty());  // nothing subscribed: not a line
}

TEST_CASE("JsonLinesLog: destruction logs what is queued, then joins", "[json_lines_log]") {
    Harness h;
    auto script = failing_now(3);
    Monitor monitor{h.io.get_executor(), {.max_restart_attempts = 2, .base_backoff = 1s, .max_backoff = 1s}, h.logger};
    Recorder recorder;
    auto recording = monitor.subscribe(recorder.listener());
    auto sink = std::make_shared<GateSink>(false);
    auto logger = logger_of(sink);
    std::optional<JsonLinesLog> log;
    log.emplace(monitor, logger);
    monitor.supervise("c", factory_of(script));
    h.runner.run_for(10s);
    h.close(monitor);
    REQUIRE(sink->wait_entered());
    CHECK(log->stats().queued == recorder.events.size());  // all of them: none logged yet

    // The destructor runs on another thread while the sink still holds the worker; the test opens the sink.
    std::thread destroyer{[&log] { log.reset(); }};
    sink->open();
    destroyer.join();
    CHECK(logger.use_count() == 1);  // the listener and the worker are gone
    const auto lines = sink->lines();
    REQUIRE(lines.size() == recorder.events.size());
    for (std::size_t i = 0; i < lines.size(); ++i) {
        CHECK(lines[i] == line_of(recorder.events[i]));
    }
}

TEST_CASE("JsonLinesLog: a sink that throws is counted in errors and the next lines are logged", "[json_lines_log]") {
    Harness h;
    auto script = failing_now(3);
    Monitor monitor{h.io.get_executor(), {.max_restart_attempts = 2, .base_backoff = 1s, .max_backoff = 1s}, h.logger};
    Recorder recorder;
    auto recording = monitor.subscribe(recorder.listener());
    auto sink = std::make_shared<GateSink>(true, 2);  // its first two calls throw 42
    auto logger = logger_of(sink);
    std::size_t handled = 0;
    logger->set_error_handler([&handled](const std::string&) { ++handled; });
    JsonLinesLog log{monitor, logger};
    monitor.supervise("c", factory_of(script));
    h.runner.run_for(10s);
    h.close(monitor);
    log.flush();

    const auto total = recorder.events.size();
    REQUIRE(total > 2);
    CHECK(log.stats().errors == 2);
    CHECK(log.stats().lines == total - 2);
    CHECK(handled == 2);
    const auto lines = sink->lines();
    REQUIRE(lines.size() == total - 2);
    for (std::size_t i = 0; i < lines.size(); ++i) {
        CHECK(lines[i] == line_of(recorder.events[i + 2]));
    }
}
