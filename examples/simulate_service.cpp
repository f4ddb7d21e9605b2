// simulate_service: a 50-component service in a seeded simulation, run for a simulated day across many seeds
// under injected faults; prints what happened and how fast, and the seed of any run that broke a property.
//
//   app (one_for_one)                      config, metrics
//   ├── shard-0 … shard-5 (one_for_all)    store, index, replicator   (the three share their data: restarted together)
//   │   └── shard-N/workers (rest_for_one) worker-0 … worker-3        (each needs the one before it)
//   gateway-0 … gateway-5                  on their own, with a heartbeat watchdog and quarantine
//
// Every component is wrapped by a FaultInjector: it may fail at start or later, hang, stop slowly, or its factory
// may throw, each drawn from the seed (the groups' members at their group's rates, the gateways at their own).
// Checked after every handler (SupervisionProperties): never two live instances of a component, events in order
// and none lost, each failure counted and reported once, restarts within the window, group start and stop order,
// close() by its deadline.
// Each seed is one exact interleaving of the program's handlers: `simulate_service --seed N` replays seed N.
//
// Usage: simulate_service [--seeds COUNT] [--first SEED] [--hours H] [--seed N [--plan PLAN | --plan-file FILE]]
//   --seeds COUNT     seeds to run (default 100), from --first (default 1)
//   --hours H         simulated hours per seed (default 24)
//   --seed N          run seed N alone, twice, and check that both runs have the same trace
//   --plan PLAN       with --seed: replay the faults of PLAN (as printed for a failing seed) instead of drawing them
//   --plan-file FILE  the same, the plan read from FILE (a long plan is written to one)
//
// A seed that breaks a property is printed as a replay command with its fault plan, then shrunk: the smallest
// set of its faults that still breaks a property is printed as a second command. A plan of more than 20 faults
// is written to simulate_service-seed-N.plan instead of the command line.
#include <taskmon/task_monitor.hpp>
#include <taskmon/testing/fault_injection.hpp>
#include <taskmon/testing/simulation.hpp>
#include <taskmon/testing/supervision_properties.hpp>

#include <asio/co_spawn.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <spdlog/sinks/null_sink.h>
#include <spdlog/spdlog.h>

#include <array>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <exception>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

using namespace std::chrono_literals;
using taskmon::testing::FaultInjector;
using taskmon::testing::FaultKind;
using taskmon::testing::ManualClock;
using taskmon::testing::ManualTimer;
using taskmon::testing::Simulation;
using Monitor = taskmon::BasicTaskMonitor<ManualClock>;

namespace {

/// A component that serves until cancelled: it waits for work, here a step every hour of virtual time. (What it
/// does between steps costs the simulation nothing: time jumps over it.)
asio::awaitable<void> serve() {
    ManualTimer timer{co_await asio::this_coro::executor};
    for (;;) {
        timer.expires_after(1h);
        co_await timer.async_wait(asio::use_awaitable);
    }
}

/// A component that heartbeats every minute, for a watchdog.
asio::awaitable<void> serve_beating(taskmon::ComponentContext context) {
    ManualTimer timer{co_await asio::this_coro::executor};
    for (;;) {
        context.heartbeat();
        timer.expires_after(1min);
        co_await timer.async_wait(asio::use_awaitable);
    }
}

struct SeedResult {
    std::uint64_t hash = 0;
    std::map<FaultKind, std::size_t> faults;
    std::size_t restarts = 0;
    std::size_t give_ups = 0;
    std::vector<std::string> violations;
    taskmon::testing::FaultPlan plan;  // the faults injected, to replay
};

/// One seed: builds the tree, runs it for `hours` of virtual time, closes it. Faults are drawn, or replayed from
/// `plan` when given.
SeedResult run_seed(std::uint64_t seed, int hours, const std::optional<taskmon::testing::FaultPlan>& plan = {}) {
    Simulation sim{seed};
    FaultInjector faults = plan ? FaultInjector{sim, *plan} : FaultInjector{sim};
    SeedResult result;
    {
        const taskmon::RestartPolicy policy{.max_restart_attempts = 5,
                                            .restart_window = 10min,
                                            .base_backoff = 1s,
                                            .max_backoff = 1min,
                                            .jitter = taskmon::JitterKind::full,
                                            .shutdown_timeout = 5s};
        // Logging off: a campaign reads the events; formatting lines nobody reads was 5 % of its instructions.
        auto logger = std::make_shared<spdlog::logger>("sim", std::make_shared<spdlog::sinks::null_sink_mt>());
        logger->set_level(spdlog::level::off);
        Monitor monitor{sim.get_executor(), policy, logger, sim.random_source()};
        // What the monitor promises, checked after every handler: the first failure stops the seed with a
        // PropertyViolation (docs/simulation.md, "Built-in properties").
        taskmon::testing::SupervisionProperties properties{sim, monitor, policy};
        properties.watch(faults);
        auto subscription = monitor.subscribe([&](const taskmon::MonitorEvent& e) {
            using K = taskmon::MonitorEventKind;
            result.restarts += e.kind == K::restarted ? 1 : 0;
            result.give_ups += e.kind == K::gave_up || e.kind == K::quarantined || e.kind == K::escalated ? 1 : 0;
        });  // (the properties fold every event into the trace)
        const auto plain = [](const std::string& name) {
            return taskmon::GroupMember{.name = name, .factory = taskmon::RestartFactory{serve}};
        };
        // Each group's members are wrapped with their group: they fail at the group's rates.
        std::vector<std::string> groups{"app"};
        monitor.supervise_group("app", faults.wrap("app", {plain("config"), plain("metrics")}));
        for (int s = 0; s < 6; ++s) {
            const auto shard = fmt::format("shard-{}", s);
            monitor.supervise_group(
                shard,
                faults.wrap(shard, {plain(shard + ".store"), plain(shard + ".index"), plain(shard + ".replicator")}),
                {.strategy = taskmon::RestartStrategy::one_for_all, .max_restarts = 10, .restart_window = 1h}, "app");
            std::vector<taskmon::GroupMember> workers;
            for (int w = 0; w < 4; ++w) {
                workers.push_back(plain(fmt::format("{}.worker-{}", shard, w)));
            }
            monitor.supervise_group(shard + ".workers", faults.wrap(shard + ".workers", std::move(workers)),
                                    {.strategy = taskmon::RestartStrategy::rest_for_one}, shard);
            groups.push_back(shard);
            groups.push_back(shard + ".workers");
        }
        const taskmon::RestartPolicy gateway_policy{.max_restart_attempts = 3,
                                                    .restart_window = 10min,
                                                    .base_backoff = 1s,
                                                    .max_backoff = 30s,
                                                    .jitter = taskmon::JitterKind::full,
                                                    .shutdown_timeout = 5s,
                                                    .watchdog_timeout = 3min,
                                                    .give_up_mode = taskmon::GiveUpMode::quarantine,
                                                    .quarantine_cooldown = 2min};
        std::vector<std::string> gateways;
        for (int g = 0; g < 6; ++g) {
            const auto name = fmt::format("gateway-{}", g);
            monitor.supervise(name, faults.wrap(name, taskmon::ContextFactory{serve_beating}), gateway_policy);
            properties.set_policy(name, gateway_policy);
            gateways.push_back(name);
        }
        faults.check_plan();  // a replayed plan must name this program's components
        // Faults from the first restart on: supervise() would throw a failing first factory call at us.
        const taskmon::testing::FaultRates rates{.factory_throws = 0.02,
                                                 .throws_at_start = 0.3,
                                                 .throws_later = 0.3,
                                                 .hangs = 0.02,
                                                 .slow_stop = 0.2,
                                                 .max_delay = 1h};
        for (const auto& group : groups) {
            faults.set_group_rates(group, rates);
        }
        for (const auto& name : gateways) {
            faults.set_rates(name, rates);
        }
        try {
            sim.run_for(std::chrono::hours{hours});
            bool closed = false;
            properties.expect_close();
            asio::co_spawn(sim.get_executor(), monitor.close(), [&](std::exception_ptr) { closed = true; });
            if (!sim.run_until([&] { return closed; }, 1h)) {
                result.violations.push_back(fmt::format("seed {}: close() did not return within an hour", seed));
            }
        } catch (const taskmon::testing::PropertyViolation& e) {
            result.violations.push_back(e.what());
        }
    }
    for (const auto& f : faults.injected()) {
        ++result.faults[f.kind];
    }
    result.plan = faults.plan();
    result.hash = sim.trace_hash();
    return result;
}

struct Options {
    std::uint64_t first = 1;
    std::uint64_t seeds = 100;
    int hours = 24;
    bool replay = false;
    std::optional<taskmon::testing::FaultPlan> plan;
};

Options parse(int argc, char** argv) {
    Options o;
    const auto number = [&](int& i, std::string_view flag) {
        if (i + 1 >= argc) {
            throw std::invalid_argument(fmt::format("{} needs a number", flag));
        }
        const std::string text = argv[++i];
        std::size_t used = 0;
        const auto value = std::stoull(text, &used);
        if (used != text.size()) {
            throw std::invalid_argument(fmt::format("{}: '{}' is not a number", flag, text));
        }
        return value;
    };
    for (int i = 1; i < argc; ++i) {
        const std::string_view arg = argv[i];
        if (arg == "--seeds") {
            o.seeds = number(i, arg);
        } else if (arg == "--first") {
            o.first = number(i, arg);
        } else if (arg == "--hours") {
            o.hours = static_cast<int>(number(i, arg));
        } else if (arg == "--plan") {
            if (i + 1 >= argc) {
                throw std::invalid_argument("--plan needs a fault plan");
            }
            o.plan = taskmon::testing::FaultPlan::parse(argv[++i]);
        } else if (arg == "--plan-file") {
            if (i + 1 >= argc) {
                throw std::invalid_argument("--plan-file needs a file");
            }
            std::ifstream in{argv[++i]};
            std::string line;
            if (!in || !std::getline(in, line)) {
                throw std::invalid_argument(fmt::format("--plan-file: cannot read a plan from '{}'", argv[i]));
            }
            o.plan = taskmon::testing::FaultPlan::parse(line);
        } else if (arg == "--seed") {
            o.first = number(i, arg);
            o.seeds = 1;
            o.replay = true;
        } else {
            throw std::invalid_argument(fmt::format("unknown argument '{}'", arg));
        }
    }
    if (o.seeds == 0 || o.hours <= 0) {
        throw std::invalid_argument("--seeds and --hours must be positive");
    }
    if (o.plan && !o.replay) {
        throw std::invalid_argument("--plan and --plan-file replay one seed: give it with --seed");
    }
    return o;
}

/// The command that replays `seed` with `plan`: on the command line up to 20 faults, else from a file written now
/// (simulate_service-seed-N<suffix>.plan, in the current directory).
std::string replay_command(std::uint64_t seed, int hours, const taskmon::testing::FaultPlan& plan,
                           std::string_view suffix) {
    const auto command = fmt::format("simulate_service --seed {} --hours {}", seed, hours);
    if (plan.faults.size() <= 20) {
        return fmt::format("{} --plan '{}'", command, plan.to_string());
    }
    const auto file = fmt::format("simulate_service-seed-{}{}.plan", seed, suffix);
    std::ofstream out{file};
    out << plan.to_string() << '\n';
    if (!out) {
        return fmt::format("{} --plan '{}'  (writing {} failed)", command, plan.to_string(), file);
    }
    return fmt::format("{} --plan-file {}  ({} faults)", command, file, plan.faults.size());
}

}  // namespace

int main(int argc, char** argv) {
    Options options;
    try {
        options = parse(argc, argv);
    } catch (const std::exception& e) {
        fmt::print(stderr,
                   "simulate_service: {}\nusage: simulate_service [--seeds COUNT] [--first SEED] "
                   "[--hours H] [--seed N [--plan PLAN | --plan-file FILE]]\n",
                   e.what());
        return 2;
    }
    std::map<FaultKind, std::size_t> faults;
    std::size_t restarts = 0, give_ups = 0, failed_seeds = 0;
    std::uint64_t first_failed = 0;
    taskmon::testing::FaultPlan first_plan;
    std::vector<std::string> violations;
    const auto start = std::chrono::steady_clock::now();
    for (std::uint64_t seed = options.first; seed < options.first + options.seeds; ++seed) {
        SeedResult r;
        try {
            r = run_seed(seed, options.hours, options.plan);
        } catch (const std::invalid_argument& e) {  // a plan naming components this program does not have
            fmt::print(stderr, "simulate_service: {}\n", e.what());
            return 2;
        }
        for (const auto& [kind, n] : r.faults) {
            faults[kind] += n;
        }
        restarts += r.restarts;
        give_ups += r.give_ups;
        if (!r.violations.empty() && failed_seeds++ == 0) {
            first_failed = seed;
            first_plan = r.plan;
        }
        violations.insert(violations.end(), r.violations.begin(), r.violations.end());
        if (options.replay) {
            const auto again = run_seed(seed, options.hours, options.plan);
            fmt::print("seed {}: trace {:016x}, again {:016x}: {}\n", seed, r.hash, again.hash,
                       r.hash == again.hash ? "replayed exactly" : "NOT DETERMINISTIC");
            if (r.hash != again.hash) {
                return 1;
            }
        }
    }
    const std::chrono::duration<double> took = std::chrono::steady_clock::now() - start;
    fmt::print("seeds run:          {} ({} simulated hours each, 50 components)\n", options.seeds, options.hours);
    std::vector<std::string> by_kind;
    for (const auto kind : {FaultKind::factory_throws, FaultKind::throws_at_start, FaultKind::throws_later,
                            FaultKind::hangs, FaultKind::stalls, FaultKind::slow_stop}) {
        by_kind.push_back(fmt::format("{} {}", taskmon::testing::to_string(kind), faults[kind]));
    }
    fmt::print("faults injected:    {}\n", fmt::join(by_kind, ", "));
    fmt::print("restarts:           {}\ngive-ups:           {}\nproperty failures:  {} in {} seeds\n", restarts,
               give_ups, violations.size(), failed_seeds);
    fmt::print("seeds per second:   {:.1f} ({:.2f} s)\n", static_cast<double>(options.seeds) / took.count(),
               took.count());
    for (const auto& v : violations) {
        fmt::print("  {}\n", v);
    }
    if (!violations.empty()) {
        fmt::print("replay the first: {}\n", replay_command(first_failed, options.hours, first_plan, ""));
        // The smallest set of its faults that still breaks a property, found by re-running the seed.
        const auto smallest = taskmon::testing::shrink(first_plan, [&](const taskmon::testing::FaultPlan& p) {
            return !run_seed(first_failed, options.hours, p).violations.empty();
        });
        fmt::print("smallest failing plan ({} of {} faults): {}\n", smallest.faults.size(), first_plan.faults.size(),
                   replay_command(first_failed, options.hours, smallest, ".smallest"));
        return 1;
    }
    return 0;
}
