// Tests for taskmon/ops/monitor_metrics.hpp: restarts counted by cause from the event stream, the component gauges,
// the io_semaphore gauges, all in virtual time.
#include <taskmon/detail/utf8.hpp>
#include <taskmon/ops/monitor_metrics.hpp>
#include <taskmon/task_monitor.hpp>
#include <taskmon/testing/manual_clock.hpp>

#include "monitor_harness.hpp"
#include "taskmon_catch.hpp"

#include <asio/co_spawn.hpp>
#include <asio/io_context.hpp>
#include <asio/post.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>
#include <spdlog/sinks/null_sink.h>

#include <cctype>
#include <chrono>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <vector>

using namespace std::chrono_literals;
using taskmon::MetricFamily;
using taskmon::RestartReason;
using taskmon_test::Harness;
using taskmon_test::Monitor;
using taskmon_test::Script;

namespace {

/// The value of the sample of `family` whose labels include every pair of `labels`; nullopt if none.
std::optional<double> value_of(const std::vector<MetricFamily>& families, const std::string& family,
                               const std::vector<taskmon::MetricLabel>& labels = {}) {
    for (const auto& f : families) {
        if (f.name != family) continue;
        for (const auto& s : f.samples) {
            bool all = true;
            for (const auto& l : labels) {
                all = all && std::find(s.labels.begin(), s.labels.end(), l) != s.labels.end();
            }
            if (all) return s.value;
        }
    }
    return std::nullopt;
}

/// Every value of the `component` label in `families`.
std::set<std::string> components_in(const std::vector<MetricFamily>& families) {
    std::set<std::string> out;
    for (const auto& f : families) {
        for (const auto& s : f.samples) {
            for (const auto& [name, value] : s.labels) {
                if (name == "component") out.insert(value);
            }
        }
    }
    return out;
}

asio::awaitable<void> returns_at_once() { co_return; }

}  // namespace

TEST_CASE("MonitorMetrics counts restarts by cause and reports state, up and backoff") {
    Harness h;
    Monitor monitor{h.io.get_executor(), {.max_restart_attempts = 5, .base_backoff = 2s}, h.logger};
    taskmon::MonitorMetrics metrics{monitor};
    Script script = taskmon_test::failing_now(2);
    monitor.supervise("db", taskmon_test::factory_of(script));
    h.runner.run_for(1ms);  // first failure: backoff of 2 s pending

    auto m = metrics.collect();
    CHECK(value_of(m, "taskmon_component_state", {{"component", "db"}, {"state", "restarting"}}) == 1.0);
    CHECK(value_of(m, "taskmon_component_state", {{"component", "db"}, {"state", "running"}}) == 0.0);
    CHECK(value_of(m, "taskmon_component_up", {{"component", "db"}}) == 0.0);
    CHECK(value_of(m, "taskmon_backoff_seconds", {{"component", "db"}}) == 2.0);
    CHECK(value_of(m, "taskmon_component_failures_total", {{"component", "db"}}) == 1.0);
    CHECK(value_of(m, "taskmon_restarts_total", {{"component", "db"}, {"reason", "failed"}}) == 0.0);

    h.runner.run_for(2s);  // restarted, failed again: backoff 4 s
    CHECK(value_of(metrics.collect(), "taskmon_backoff_seconds", {{"component", "db"}}) == 4.0);
    h.runner.run_for(4s);  // restarted; runs now

    m = metrics.collect();
    CHECK(value_of(m, "taskmon_restarts_total", {{"component", "db"}, {"reason", "failed"}}) == 2.0);
    CHECK(value_of(m, "taskmon_restarts_total", {{"component", "db"}, {"reason", "manual"}}) == 0.0);
    CHECK(value_of(m, "taskmon_component_failures_total", {{"component", "db"}}) == 2.0);
    CHECK(value_of(m, "taskmon_component_up", {{"component", "db"}}) == 1.0);
    CHECK(value_of(m, "taskmon_component_state", {{"component", "db"}, {"state", "running"}}) == 1.0);
    CHECK(value_of(m, "taskmon_backoff_seconds", {{"component", "db"}}) == 0.0);
    // Every reason is present (0 until seen), so rate() works from the first scrape.
    for (const auto reason : taskmon::all_restart_reasons) {
        CHECK(value_of(m, "taskmon_restarts_total", {{"component", "db"}, {"reason", std::string{to_string(reason)}}}));
    }

    monitor.restart("db");
    h.runner.run_for(1ms);
    CHECK(metrics.restarts("db", RestartReason::manual) == 1);
    CHECK(metrics.restarts("db", RestartReason::failed) == 2);
    // The counts agree with the monitor's own restart_count.
    CHECK(monitor.get_component_stats().at("db").restart_count == 3);
    h.close(monitor);
}

TEST_CASE("MonitorMetrics: a permanent component that returns restarts with reason completed") {
    Harness h;
    Monitor monitor{h.io.get_executor(), {.base_backoff = 1s}, h.logger};
    taskmon::MonitorMetrics metrics{monitor};
    monitor.supervise(
        "loop", [] { return returns_at_once(); },
        taskmon::RestartPolicy{.base_backoff = 1s, .restart_type = taskmon::RestartType::permanent});
    h.runner.run_for(1500ms);
    CHECK(metrics.restarts("loop", RestartReason::completed) == 1);
    CHECK(metrics.restarts("loop", RestartReason::failed) == 0);
    h.close(monitor);
}

TEST_CASE("MonitorMetrics: members restarted with their group count as reason group") {
    Harness h;
    Monitor monitor{h.io.get_executor(), taskmon::RestartPolicy{.base_backoff = 1s, .max_backoff = 1s}, h.logger};
    taskmon::MonitorMetrics metrics{monitor};
    Script broken = taskmon_test::failing_now(1);
    Script steady;
    monitor.supervise_group("pair",
                            {{.name = "broken", .factory = taskmon_test::factory_of(broken)},
                             {.name = "steady", .factory = taskmon_test::factory_of(steady)}},
                            {.strategy = taskmon::RestartStrategy::one_for_all});
    h.runner.run_for(10s);
    CHECK(metrics.restarts("broken", RestartReason::failed) == 1);
    CHECK(metrics.restarts("steady", RestartReason::group) == 1);
    CHECK(metrics.restarts("steady", RestartReason::unknown) == 0);
    h.close(monitor);
}

TEST_CASE(
    "MonitorMetrics: give-up shows in state and up; a restart counts by its cause also if the failure came first") {
    Harness h;
    Monitor monitor{h.io.get_executor(), {.max_restart_attempts = 1, .base_backoff = 1s}, h.logger};
    Script script = taskmon_test::failing_now(2);
    monitor.supervise("db", taskmon_test::factory_of(script));
    h.runner.run_for(1ms);                     // failed; restart pending
    taskmon::MonitorMetrics metrics{monitor};  // subscribes after the failure
    h.runner.run_for(2s);                      // restarted (`restarted` says why), failed again: gave up
    auto m = metrics.collect();
    CHECK(value_of(m, "taskmon_restarts_total", {{"component", "db"}, {"reason", "failed"}}) == 1.0);
    CHECK(value_of(m, "taskmon_restarts_total", {{"component", "db"}, {"reason", "unknown"}}) == 0.0);
    CHECK(value_of(m, "taskmon_component_state", {{"component", "db"}, {"state", "gave_up"}}) == 1.0);
    CHECK(value_of(m, "taskmon_component_up", {{"component", "db"}}) == 0.0);
    CHECK(value_of(m, "taskmon_backoff_seconds", {{"component", "db"}}) == 0.0);
    h.close(monitor);
}

TEST_CASE("MonitorMetrics renders as text with constant labels and the io_semaphore gauges") {
    Harness h;
    Monitor monitor{h.io.get_executor(), {}, h.logger};
    taskmon::MonitorMetrics metrics{monitor, {.const_labels = {{"monitor", "ingest"}}}};
    taskmon::MonitorMetrics without_io{monitor, {.io_semaphore = false}};
    Script script;
    monitor.supervise("db", taskmon_test::factory_of(script));
    h.runner.run_for(1ms);
    const auto text = taskmon::render_text_format(metrics.collect());
    CHECK(text.find("# TYPE taskmon_restarts_total counter\n") != std::string::npos);
    CHECK(text.find("taskmon_restarts_total{monitor=\"ingest\",component=\"db\",reason=\"failed\"} 0\n") !=
          std::string::npos);
    CHECK(text.find("taskmon_component_up{monitor=\"ingest\",component=\"db\"} 1\n") != std::string::npos);
    const auto io = taskmon::get_io_semaphore_stats();
    CHECK(text.find("taskmon_io_semaphore_capacity{monitor=\"ingest\"} " + std::to_string(io.capacity) + "\n") !=
          std::string::npos);
    CHECK(text.find("taskmon_io_semaphore_in_use{monitor=\"ingest\"} ") != std::string::npos);
    CHECK(text.find("taskmon_io_semaphore_waiting{monitor=\"ingest\"} ") != std::string::npos);
    CHECK(taskmon::render_text_format(without_io.collect()).find("io_semaphore") == std::string::npos);

    CHECK_THROWS_AS((taskmon::MonitorMetrics{monitor, {.const_labels = {{"component", "x"}}}}), std::invalid_argument);
    CHECK_THROWS_AS((taskmon::MonitorMetrics{monitor, {.const_labels = {{"bad-name", "x"}}}}), std::invalid_argument);
    h.close(monitor);
    CHECK_THROWS_AS(taskmon::MonitorMetrics{monitor}, std::logic_error);  // closed: nothing to subscribe to
}

namespace {

/// Checks one line of the text format as a scraper reads it: `# HELP|TYPE ...`, or a sample `name{l="v",...} value`
/// whose label values hold only the escapes \\, \" and \n. Returns what is wrong, or empty.
std::string exposition_line_problem(std::string_view line) {
    if (line.starts_with("# HELP ") || line.starts_with("# TYPE ")) return {};
    std::size_t at = 0;
    const auto name_char = [&](bool digits) {
        const char c = at < line.size() ? line[at] : '\0';
        return std::isalpha(static_cast<unsigned char>(c)) || c == '_' || c == ':' ||
               (digits && std::isdigit(static_cast<unsigned char>(c)));
    };
    if (!name_char(false)) return "no metric name";
    while (name_char(true)) ++at;
    if (at < line.size() && line[at] == '{') {
        ++at;
        while (at < line.size() && line[at] != '}') {
            if (!name_char(false)) return "no label name";
            while (name_char(true)) ++at;
            if (line.substr(at, 2) != "=\"") return "no =\" after a label name";
            at += 2;
            while (at < line.size() && line[at] != '"') {
                if (line[at] == '\\') {
                    if (at + 1 >= line.size() ||
                        std::string_view{"\\\"n"}.find(line[at + 1]) == std::string_view::npos) {
                        return "a bad escape";
                    }
                    ++at;
                }
                ++at;
            }
            if (at >= line.size()) return "an unterminated label value";
            ++at;
            if (at < line.size() && line[at] == ',') ++at;
        }
        if (at >= line.size()) return "no }";
        ++at;
    }
    if (at >= line.size() || line[at] != ' ') return "no space before the value";
    const auto value = std::string{line.substr(at + 1)};
    if (value != "NaN" && value != "+Inf" && value != "-Inf") {
        std::size_t used = 0;
        try {
            (void)std::stod(value, &used);
        } catch (const std::exception&) {
            return "no value";
        }
        if (used != value.size()) return "text after the value";
    }
    return {};
}

}  // namespace

TEST_CASE("MonitorMetrics: odd names and label values keep the exposition valid UTF-8, one sample per line") {
    Harness h;
    Monitor monitor{h.io.get_executor(), {.base_backoff = 1s}, h.logger};
    // A constant label's value is the application's text (a host name from the environment, say): nothing
    // checks it before rendering.
    taskmon::MonitorMetrics metrics{monitor, {.const_labels = {{"host", "bad\xFF\xC0 host\nname\r\"x\""}}}};
    auto weird = taskmon_test::failing_now(1);
    Script db;
    monitor.supervise("weird \"name\" \\ ü", taskmon_test::factory_of(weird));
    monitor.supervise("db", taskmon_test::factory_of(db));
    h.runner.run_for(2s);
    const auto text = taskmon::render_text_format(metrics.collect());
    CHECK_FALSE(taskmon::detail::find_invalid_utf8(text).has_value());
    REQUIRE(text.ends_with('\n'));
    std::size_t samples = 0;
    for (std::size_t begin = 0; begin < text.size();) {
        const auto end = text.find('\n', begin);
        const auto line = std::string_view{text}.substr(begin, end - begin);
        INFO(line);
        CHECK(exposition_line_problem(line).empty());
        CHECK(line.find('\r') == std::string_view::npos);
        samples += line.starts_with('#') ? 0 : 1;
        begin = end + 1;
    }
    std::size_t expected = 0;
    for (const auto& f : metrics.collect()) expected += f.samples.size();
    CHECK(samples == expected);
    const std::string host = "host=\"bad\xEF\xBF\xBD\xEF\xBF\xBD host\\nname\xEF\xBF\xBD\\\"x\\\"\"";
    CHECK(text.find("taskmon_restarts_total{" + host +
                    ",component=\"weird \\\"name\\\" \\\\ ü\",reason=\"failed\"} 1\n") != std::string::npos);
    CHECK(text.find("taskmon_component_up{" + host + ",component=\"db\"} 1\n") != std::string::npos);
    h.close(monitor);
}

TEST_CASE("MonitorMetrics: collect() from another thread while two threads run the monitor") {
    asio::io_context io;
    auto logger = std::make_shared<spdlog::logger>("metrics-threads", std::make_shared<spdlog::sinks::null_sink_mt>());
    taskmon::TaskMonitor monitor{
        io.get_executor(), {.max_restart_attempts = 1000, .base_backoff = 1ms, .max_backoff = 1ms}, logger};
    taskmon::MonitorMetrics metrics{monitor};
    const auto fails = []() -> asio::awaitable<void> {
        co_await asio::post(co_await asio::this_coro::executor, asio::use_awaitable);
        throw std::runtime_error("flaky");
    };
    monitor.supervise("a", fails);
    monitor.supervise("b", fails);
    std::vector<std::thread> threads;
    for (int i = 0; i < 2; ++i) threads.emplace_back([&] { io.run(); });
    double seen = 0;
    for (int i = 0; i < 2000 && seen < 40; ++i) {
        const auto m = metrics.collect();
        seen = value_of(m, "taskmon_restarts_total", {{"component", "a"}, {"reason", "failed"}}).value_or(0) +
               value_of(m, "taskmon_restarts_total", {{"component", "b"}, {"reason", "failed"}}).value_or(0);
        std::this_thread::yield();
    }
    bool closed = false;
    asio::co_spawn(io, monitor.close(), [&](std::exception_ptr) { closed = true; });
    for (auto& t : threads) t.join();
    CHECK(closed);
    const auto stats = monitor.get_component_stats();
    CHECK(metrics.restarts("a", RestartReason::failed) == static_cast<std::uint64_t>(stats.at("a").restart_count));
    CHECK(metrics.restarts("b", RestartReason::failed) == static_cast<std::uint64_t>(stats.at("b").restart_count));
}

TEST_CASE("MonitorMetrics: liveness timeouts and quarantine trials have their own reasons") {
    Harness h;
    Monitor monitor{h.io.get_executor(), {.base_backoff = 1s, .max_backoff = 1s}, h.logger};
    taskmon::MonitorMetrics metrics{monitor};
    int hung_starts = 0;
    monitor.supervise(
        "hung",
        [&](taskmon::ComponentContext ctx) -> asio::awaitable<void> {
            if (++hung_starts == 1) {
                co_await taskmon_test::sleep_for(1h);  // never heartbeats: the watchdog restarts it
            }
            for (;;) {
                ctx.heartbeat();
                co_await taskmon_test::sleep_for(1s);
            }
        },
        taskmon::RestartPolicy{.base_backoff = 1s, .max_backoff = 1s, .watchdog_timeout = 10s});
    Script flaky = taskmon_test::failing_now(2);  // the budget of one restart is gone at the 2nd failure
    monitor.supervise("flaky", taskmon_test::factory_of(flaky),
                      taskmon::RestartPolicy{.max_restart_attempts = 1,
                                             .base_backoff = 1s,
                                             .max_backoff = 1s,
                                             .give_up_mode = taskmon::GiveUpMode::quarantine,
                                             .quarantine_cooldown = 1min});
    h.runner.run_for(2min);
    CHECK(metrics.restarts("hung", RestartReason::watchdog_timeout) == 1);
    CHECK(metrics.restarts("flaky", RestartReason::failed) == 1);
    CHECK(metrics.restarts("flaky", RestartReason::quarantine_trial) == 1);
    const auto m = metrics.collect();
    CHECK(value_of(m, "taskmon_component_up", {{"component", "hung"}}) == 1.0);
    h.close(monitor);
}

TEST_CASE("MonitorMetrics: a component is up only once ready") {
    Harness h;
    Monitor monitor{h.io.get_executor(), {}, h.logger};
    taskmon::MonitorMetrics metrics{monitor};
    monitor.supervise(
        "db",
        [](taskmon::ComponentContext ctx) -> asio::awaitable<void> {
            co_await taskmon_test::sleep_for(5s);
            ctx.ready();
            co_await taskmon_test::sleep_for(1h);
        },
        taskmon::RestartPolicy{.startup_timeout = 1min});
    h.runner.run_for(1s);
    CHECK(value_of(metrics.collect(), "taskmon_component_up", {{"component", "db"}}) == 0.0);
    CHECK(value_of(metrics.collect(), "taskmon_component_state", {{"component", "db"}, {"state", "running"}}) == 1.0);
    h.runner.run_for(5s);
    CHECK(value_of(metrics.collect(), "taskmon_component_up", {{"component", "db"}}) == 1.0);
    h.close(monitor);
}

TEST_CASE("MonitorMetrics: spawned tasks make no series and leave no bookkeeping behind") {
    Harness h;
    Monitor monitor{h.io.get_executor(), {}, h.logger};
    taskmon::MonitorMetrics metrics{monitor};
    Script acceptor;
    monitor.supervise("acceptor", taskmon_test::factory_of(acceptor));
    for (int i = 0; i < 100; ++i) {
        // Connections end after 1 to 3 s; every other one fails.
        monitor.spawn("conn-" + std::to_string(i), [](int n) -> asio::awaitable<void> {
            co_await taskmon_test::sleep_for(std::chrono::seconds{1 + n % 3});
            if (n % 2 == 0) throw std::runtime_error("peer reset");
        }(i));
    }
    h.runner.run_for(1500ms);  // a third of them ended, the others run
    REQUIRE(monitor.get_component_stats().size() > 1);
    CHECK(components_in(metrics.collect()) == std::set<std::string>{"acceptor"});
    h.runner.run_for(5s);  // all ended
    CHECK(monitor.get_component_stats().size() == 1);
    CHECK(components_in(metrics.collect()) == std::set<std::string>{"acceptor"});
    CHECK(metrics.tracked_components() == 0);  // the acceptor has nothing pending or counted yet
    h.close(monitor);
    CHECK(metrics.tracked_components() == 0);
}

TEST_CASE("MonitorMetrics: a removed component's series go with it and one added again under its name starts at 0") {
    Harness h;
    Monitor monitor{h.io.get_executor(), {.base_backoff = 1s, .max_backoff = 1s}, h.logger};
    taskmon::MonitorMetrics metrics{monitor};
    Script flaky = taskmon_test::failing_now(2);
    monitor.supervise("db", taskmon_test::factory_of(flaky));
    Script steady;
    monitor.supervise("cache", taskmon_test::factory_of(steady));
    h.runner.run_for(3s);  // db failed and was restarted twice; it runs now
    REQUIRE(metrics.restarts("db", RestartReason::failed) == 2);
    CHECK(metrics.tracked_components() == 1);
    std::optional<std::error_code> removed;
    monitor.remove_and_wait("db", [&removed](std::error_code ec) { removed = ec; });
    h.runner.run_for(1ms);
    REQUIRE(removed);
    CHECK_FALSE(*removed);
    CHECK(components_in(metrics.collect()) == std::set<std::string>{"cache"});
    CHECK(metrics.restarts("db", RestartReason::failed) == 0);
    CHECK(metrics.tracked_components() == 0);

    Script again;
    monitor.supervise("db", taskmon_test::factory_of(again));
    h.runner.run_for(1ms);
    const auto m = metrics.collect();
    CHECK(value_of(m, "taskmon_restarts_total", {{"component", "db"}, {"reason", "failed"}}) == 0.0);
    CHECK(value_of(m, "taskmon_component_failures_total", {{"component", "db"}}) == 0.0);
    h.close(monitor);
}

TEST_CASE(
    "MonitorMetrics: a component removed while backing off or while ignoring cancellation leaves nothing behind") {
    Harness h;
    Monitor monitor{h.io.get_executor(), {.base_backoff = 1min, .max_backoff = 1min, .shutdown_timeout = 1s}, h.logger};
    taskmon::MonitorMetrics metrics{monitor};
    Script failing = taskmon_test::failing_now(1);
    monitor.supervise("backing_off", taskmon_test::factory_of(failing));
    monitor.supervise("stubborn",
                      []() -> asio::awaitable<void> { co_await taskmon_test::sleep_ignoring_cancellation(10s); });
    h.runner.run_for(1ms);  // backing_off failed: a restart is pending, its cause noted
    CHECK(metrics.tracked_components() == 1);
    std::optional<std::error_code> first;
    std::optional<std::error_code> second;
    monitor.remove_and_wait("backing_off", [&first](std::error_code ec) { first = ec; });
    monitor.remove_and_wait("stubborn", [&second](std::error_code ec) { second = ec; });
    h.runner.run_for(2s);  // stubborn is removed at its shutdown_timeout, still running
    REQUIRE(first);
    CHECK_FALSE(*first);
    REQUIRE(second);
    CHECK(*second == asio::error::timed_out);
    h.runner.run_for(10s);  // stubborn's instance exits now: its late `stopped` must not bring it back
    CHECK(metrics.tracked_components() == 0);
    CHECK(components_in(metrics.collect()).empty());
    h.close(monitor);
}
