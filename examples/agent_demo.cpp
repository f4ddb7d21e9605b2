// agent_demo: a robot vacuum cleans a grid under a taskmon::Supervisor.
//
// Its lidar throws now and then (perception is restarted), it hangs once (the watchdog notices, restarts
// perception and holds the motors until it sees again), a simulated CPU burst makes the load monitor shed
// (perception slows down), its wheels slip sometimes (a failed step), and an operator pauses it, leaves a
// note, and resumes it. Ends by itself with a history summary, in well under 30 s.
//
//   agent_demo                 fast timings (default)
//   agent_demo --seed-timings  the production defaults' timings (15 s watchdog, 2 s..60 s backoff): slower
//   agent_demo --timeline run.svg   also writes a picture of the run (see docs/operations.md)
//   agent_demo --http 127.0.0.1:8080
//                              also serves /livez, /readyz and /metrics for the robot while it runs
//                              (try: curl 'http://127.0.0.1:8080/readyz?verbose'); needs taskmon::health_server
#include <taskmon/agent/supervisor.hpp>
#include <taskmon/ops/agent_metrics.hpp>
#include <taskmon/ops/monitor_metrics.hpp>
#include <taskmon/ops/timeline.hpp>
#if TASKMON_DEMO_HTTP
#include <taskmon/ops/health.hpp>
#include <taskmon/ops/health_server.hpp>
#endif

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/io_context.hpp>
#include <asio/steady_timer.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>
#include <fmt/format.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

using namespace std::chrono_literals;

namespace {

struct Cell {
    int x = 0;
    int y = 0;
    auto operator<=>(const Cell&) const = default;
};

/// What the lidar reports.
struct Scan {
    Cell robot;
    std::set<Cell> dirty;
};

/// A motor command.
struct Command {
    enum Kind { north, east, south, west, vacuum } kind = vacuum;
};

std::string_view name(Command c) {
    switch (c.kind) {
        case Command::north: return "north";
        case Command::east: return "east";
        case Command::south: return "south";
        case Command::west: return "west";
        case Command::vacuum: return "vacuum";
    }
    return "?";
}

using Robot = taskmon::Supervisor<Scan, Command>;

constexpr int width = 10;
constexpr int height = 6;

/// The simulated world: the room, the robot's position, and its flaky hardware.
struct World {
    Cell robot{0, 0};
    std::set<Cell> dirty;
    int cleaned = 0;
    int scans = 0;
    std::mt19937 rng{20261129};

    World() {
        std::uniform_int_distribution<int> x{0, width - 1}, y{0, height - 1};
        while (dirty.size() < 16) dirty.insert(Cell{x(rng), y(rng)});
        dirty.erase(robot);
    }
    bool chance(double p) { return std::uniform_real_distribution<double>{0.0, 1.0}(rng) < p; }
};

asio::awaitable<void> sleep_for(std::chrono::steady_clock::duration d) {
    asio::steady_timer timer{co_await asio::this_coro::executor, d};
    co_await timer.async_wait(asio::use_awaitable);
}

void draw(const World& world) {
    for (int y = height - 1; y >= 0; --y) {
        std::string row = "    ";
        for (int x = 0; x < width; ++x) {
            const Cell c{x, y};
            row += c == world.robot ? "R " : world.dirty.count(c) ? "* " : ". ";
        }
        std::puts(row.c_str());
    }
}

}  // namespace

int main(int argc, char** argv) {
    bool seed_timings = false;
    std::optional<std::string> timeline_path;
    std::optional<std::string> http;  // "address:port"
    for (int i = 1; i < argc; ++i) {
        const std::string_view arg{argv[i]};
        if (arg == "--seed-timings") {
            seed_timings = true;
        } else if (arg == "--timeline" && i + 1 < argc) {
            timeline_path = argv[++i];
        } else if (arg == "--http" && i + 1 < argc) {
            http = argv[++i];
        } else {
            std::fprintf(stderr, "usage: %s [--seed-timings] [--timeline run.svg] [--http ADDRESS:PORT]\n", argv[0]);
            return 2;
        }
    }
#if !TASKMON_DEMO_HTTP
    if (http) {
        std::fprintf(stderr, "--http: this agent_demo was built without taskmon::health_server (libhttp-parser-dev)\n");
        return 2;
    }
#endif

    auto logger = std::make_shared<spdlog::logger>("agent", std::make_shared<spdlog::sinks::stdout_color_sink_mt>());
    logger->set_pattern("%^[%H:%M:%S.%e] %l%$ %v");

    asio::io_context io;
    World world;
    const auto start = std::chrono::steady_clock::now();
    const auto since_start = [start] { return std::chrono::steady_clock::now() - start; };
    const auto stamp = [&] { return std::chrono::duration<double>(since_start()).count(); };

    // Timings. The seed's: 15 s watchdog, 2 s..60 s backoff; ours: the same shape, ten times faster or more.
    taskmon::AgentSettings settings;
    settings.max_steps = 400;
    settings.max_failures = 3;
    if (!seed_timings) {
        settings.capture_interval = 40ms;
        settings.shed_capture_interval = 400ms;
        settings.capture_timeout = 5s;
        settings.decide_timeout = 2s;
        settings.act_timeout = 2s;
        settings.perception_timeout = 1s;
        settings.watchdog_startup_grace = 1s;
        settings.max_decision_age = 3s;
        settings.load_sample_interval = 200ms;
        settings.critical_restart_policy = {.max_restart_attempts = 20, .base_backoff = 100ms, .max_backoff = 2s};
        settings.auxiliary_restart_policy = {.base_backoff = 500ms, .max_backoff = 5s};
    } else {
        settings.capture_timeout = 2min;  // so that the hang is caught by the watchdog, not by the capture timeout
    }
    const auto burst_from = seed_timings ? 12s : 2500ms;
    const auto burst_to = seed_timings ? 20s : 4500ms;
    const auto pause_at = seed_timings ? 25s : 5500ms;
    const auto pause_for = seed_timings ? 5s : 1500ms;

    Robot::Functions agent{
        .perceive = [&]() -> asio::awaitable<Scan> {
            const int n = ++world.scans;
            co_await sleep_for(15ms);
            if (n == 30) {
                logger->warn("lidar: firmware hang (scan {})", n);
                co_await sleep_for(10min);  // the watchdog restarts us long before this ends
            }
            if (n % 23 == 0) throw std::runtime_error(fmt::format("lidar checksum error (scan {})", n));
            co_return Scan{world.robot, world.dirty};
        },
        .decide = [&](const Scan& scan, const Robot::Context& ctx) -> asio::awaitable<Robot::DecisionType> {
            for (const auto& note : ctx.guidance) logger->info("planner got operator note: \"{}\"", note);
            co_await sleep_for(10ms);
            if (scan.dirty.empty()) {
                co_return Robot::DecisionType::done(fmt::format("room clean: {} cells vacuumed", world.cleaned));
            }
            if (scan.dirty.count(scan.robot)) co_return Robot::DecisionType::act({Command{Command::vacuum}});
            const auto target = *std::min_element(scan.dirty.begin(), scan.dirty.end(), [&](Cell a, Cell b) {
                return std::abs(a.x - scan.robot.x) + std::abs(a.y - scan.robot.y) <
                       std::abs(b.x - scan.robot.x) + std::abs(b.y - scan.robot.y);
            });
            Command move{target.x > scan.robot.x   ? Command::east
                         : target.x < scan.robot.x ? Command::west
                         : target.y > scan.robot.y ? Command::north
                                                   : Command::south};
            co_return Robot::DecisionType::act({move});
        },
        .act = [&](const Command& command) -> asio::awaitable<taskmon::ActionResult> {
            co_await sleep_for(30ms);
            if (command.kind != Command::vacuum && world.chance(0.05)) {
                co_return taskmon::ActionResult::failure("wheel slipped");
            }
            switch (command.kind) {
                case Command::north: world.robot.y = std::min(height - 1, world.robot.y + 1); break;
                case Command::south: world.robot.y = std::max(0, world.robot.y - 1); break;
                case Command::east: world.robot.x = std::min(width - 1, world.robot.x + 1); break;
                case Command::west: world.robot.x = std::max(0, world.robot.x - 1); break;
                case Command::vacuum:
                    if (world.dirty.erase(world.robot)) ++world.cleaned;
                    co_return taskmon::ActionResult::ok(fmt::format("vacuumed ({},{})", world.robot.x, world.robot.y));
            }
            co_return taskmon::ActionResult::ok();
        }};

    Robot::Hooks hooks{
        .on_run_start = [&] { std::printf("%6.2fs  robot starts: %zu dirty cells\n", stamp(), world.dirty.size()); },
        .on_step_end =
            [&](const Robot::Step& step) {
                const auto what = step.actions.empty() ? std::string{"-"} : std::string{name(step.actions[0].action)};
                std::printf("%6.2fs  step %3llu  %-7s %-9s pos=(%d,%d) dirty=%zu%s%s\n", stamp(),
                            static_cast<unsigned long long>(step.number), what.c_str(),
                            std::string{taskmon::to_string(step.outcome)}.c_str(), world.robot.x, world.robot.y,
                            world.dirty.size(), step.error.empty() ? "" : "  ", step.error.c_str());
            }};
    // Status changes are not printed here: the Supervisor's own log line ("Agent status running -> paused ...")
    // already shows each one.

    // A simulated CPU burst: the load monitor reads this instead of /proc so the demo behaves the same on any
    // machine. Everything else (timers, lag) is real.
    bool in_burst = false;
    taskmon::CpuSource cpu = [&]() -> std::optional<taskmon::CpuUsage> {
        const auto t = since_start();
        const bool burst = t >= burst_from && t < burst_to;
        if (burst != in_burst) {
            in_burst = burst;
            std::printf(burst ? "%6.2fs  simulated CPU burst starts: the load monitor now reads 99.3 %% CPU\n"
                              : "%6.2fs  simulated CPU burst ends: back to 35 %% CPU\n",
                        stamp());
        }
        return taskmon::CpuUsage{burst ? 99.3 : 35.0, burst ? 60.0 : 8.0};
    };

    // Metrics for /metrics: steps through the hooks, components through the Supervisor's event stream.
    taskmon::AgentMetrics agent_metrics;
    Robot robot{io.get_executor(), std::move(agent), settings, agent_metrics.wrap(std::move(hooks)), logger,
                std::move(cpu)};
    taskmon::MonitorMetrics component_metrics{robot};

#if TASKMON_DEMO_HTTP
    std::unique_ptr<taskmon::HealthServer> server;
    if (http) {
        const auto colon = http->rfind(':');
        std::string address = colon == std::string::npos ? std::string{} : http->substr(0, colon);
        if (address.size() > 1 && address.front() == '[' && address.back() == ']') {
            address = address.substr(1, address.size() - 2);  // [::1]:8080
        }
        int port = -1;
        try {
            port = colon == std::string::npos ? -1 : std::stoi(http->substr(colon + 1));
        } catch (const std::exception&) {
        }
        if (address.empty() || port < 0 || port > 65535) {
            std::fprintf(stderr, "--http: expected ADDRESS:PORT, e.g. 127.0.0.1:8080, got '%s'\n", http->c_str());
            return 2;
        }
        try {
            server = std::make_unique<taskmon::HealthServer>(
                io.get_executor(),
                taskmon::HealthEndpoints{.health = [&] { return taskmon::check_health(robot); },
                                         .metrics =
                                             [&] {
                                                 auto families = agent_metrics.collect();
                                                 taskmon::merge_families(families, component_metrics.collect());
                                                 return families;
                                             }},
                taskmon::HealthServerSettings{.address = address, .port = static_cast<std::uint16_t>(port)}, logger);
        } catch (const std::exception& e) {
            std::fprintf(stderr, "--http %s: %s\n", http->c_str(), e.what());
            return 2;
        }
    }
#endif

    // The operator: pause, leave a note, resume. Also a safety net: stop after 25 s (fast) / 120 s (seed).
    asio::steady_timer operator_timer{io};
    asio::steady_timer deadline{io, seed_timings ? 120s : 25s};
    deadline.async_wait([&](asio::error_code ec) {
        if (!ec) robot.stop("demo time limit");
    });
    std::optional<Robot::HistoryType> history;
    asio::co_spawn(
        io,
        [&]() -> asio::awaitable<void> {
            history = co_await robot.run();
            operator_timer.cancel();
            deadline.cancel();
#if TASKMON_DEMO_HTTP
            if (server) co_await server->close();  // io.run() returns once the server is closed too
#endif
        },
        asio::detached);
    asio::co_spawn(
        io,
        [&]() -> asio::awaitable<void> {
            const auto wait = [&](std::chrono::steady_clock::duration d) {
                operator_timer.expires_after(d);
                return operator_timer.async_wait(asio::use_awaitable);
            };
            co_await wait(pause_at);
            std::printf("%6.2fs  operator: pause\n", stamp());
            robot.pause();
            co_await wait(pause_for / 2);
            std::printf("%6.2fs  operator: leaves a note\n", stamp());
            robot.inject_guidance("the cat is asleep under the sofa; go around it");
            co_await wait(pause_for / 2);
            std::printf("%6.2fs  operator: resume\n", stamp());
            robot.resume();
        },
        asio::detached);
    io.run();

    const auto& h = *history;
    std::puts("\nThe room now:");
    draw(world);
    std::printf("\nRun ended: %s — %s\n", std::string{taskmon::to_string(h.status)}.c_str(), h.reason.c_str());
    if (auto result = h.final_result()) std::printf("Result: %s\n", result->c_str());
    std::printf("Steps: %zu (%llu failed), duration %.2fs, observations %llu published / %llu dropped\n",
                h.number_of_steps(), static_cast<unsigned long long>(h.counters.steps_failed),
                std::chrono::duration<double>(h.total_duration()).count(),
                static_cast<unsigned long long>(h.counters.observations_published),
                static_cast<unsigned long long>(h.counters.observations_dropped));
    std::printf("Decisions: %llu executed, %llu failed, %llu interrupted, %llu expired\n",
                static_cast<unsigned long long>(h.counters.decisions_executed),
                static_cast<unsigned long long>(h.counters.decisions_failed),
                static_cast<unsigned long long>(h.counters.decisions_interrupted),
                static_cast<unsigned long long>(h.counters.decisions_expired));
    std::puts("\nRestarts per component:");
    for (const auto& [component, stats] : robot.get_component_stats()) {
        std::printf("  %-22s restarts=%d failures=%d state=%s%s%s\n", component.c_str(), stats.restart_count,
                    stats.failure_count, std::string{taskmon::to_string(stats.state)}.c_str(),
                    stats.last_error.empty() ? "" : "  last_error=", stats.last_error.c_str());
    }
    std::map<std::string, int> kinds;
    for (const auto& e : h.events) ++kinds[std::string{taskmon::to_string(e.kind)}];
    std::puts("\nEvents:");
    for (const auto& [kind, n] : kinds) std::printf("  %-22s %d\n", kind.c_str(), n);
    std::puts("\nNotable events:");
    for (const auto& e : h.events) {
        using Kind = taskmon::HistoryEventKind;
        if (e.kind == Kind::status_changed || e.kind == Kind::component_restarted) continue;
        std::printf("  %7.2fs  %-22s %-22s %s\n", std::chrono::duration<double>(e.at).count(),
                    std::string{taskmon::to_string(e.kind)}.c_str(), e.component.c_str(), e.message.c_str());
    }
    if (timeline_path) {
        try {
            taskmon::write_svg(*timeline_path, taskmon::timeline_of(h), {.title = "agent_demo: a robot vacuum"});
            std::printf("\nTimeline of the run written to %s\n", timeline_path->c_str());
        } catch (const std::exception& e) {
            std::fprintf(stderr, "agent_demo: %s\n", e.what());
            return 1;
        }
    }
    return h.status == taskmon::AgentStatus::completed ? 0 : 1;
}
