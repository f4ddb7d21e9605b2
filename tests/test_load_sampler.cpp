#include <taskmon/detail/load_sampler.hpp>
#include <taskmon/testing/manual_clock.hpp>

#include <chrono>
#include <map>
#include <optional>
#include <string>

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/io_context.hpp>
#include <asio/post.hpp>

#include "taskmon_catch.hpp"

using namespace std::chrono_literals;
using taskmon::CpuUsage;
using taskmon::detail::CpuSampler;
using taskmon::detail::LoadSample;
using taskmon::detail::LoadShedGate;
using taskmon::detail::LoadThresholds;

namespace {

// /proc/self/stat with a comm containing spaces and parentheses; utime=field 14, stime=field 15.
std::string self_stat(std::uint64_t utime, std::uint64_t stime) {
    return "4242 (my (odd) prog) S 1 4242 4242 0 -1 4194560 100 0 0 0 " + std::to_string(utime) + " " +
           std::to_string(stime) + " 0 0 20 0 3 0 12345 1000000 250 18446744073709551615\n";
}

// /proc/stat: user nice system idle iowait irq softirq steal guest guest_nice
std::string proc_stat(std::uint64_t busy_user, std::uint64_t idle) {
    return "cpu  " + std::to_string(busy_user) + " 0 0 " + std::to_string(idle) +
           " 0 0 0 0 0 0\ncpu0 1 2 3 4 5 6 7 8 0 0\nintr 1\n";
}

struct FakeProc {
    std::map<std::string, std::optional<std::string>> files;
    CpuSampler::Reader reader() {
        return [this](const char* path) { return files[path]; };
    }
};

LoadSample cpu(double system_percent, std::chrono::nanoseconds lag = 0ns) {
    return LoadSample{CpuUsage{system_percent, 0.0}, lag};
}

}  // namespace

TEST_CASE("load_sampler: parses utime+stime after the last parenthesis of /proc/self/stat") {
    CHECK(taskmon::detail::parse_process_cpu_ticks(self_stat(120, 30)) == 150u);
    CHECK(taskmon::detail::parse_process_cpu_ticks("1 (x) S 1 2 3 4 5 6 7 8 9 10 11 12") == 23u);
    CHECK_FALSE(taskmon::detail::parse_process_cpu_ticks("garbage").has_value());
    CHECK_FALSE(taskmon::detail::parse_process_cpu_ticks("1 (x) S 1 2").has_value());
    CHECK_FALSE(taskmon::detail::parse_process_cpu_ticks("1 (x) S 1 2 3 4 5 6 7 8 9 10 x 2").has_value());
}

TEST_CASE("load_sampler: parses busy and total ticks of the aggregate cpu line of /proc/stat") {
    const auto ticks = taskmon::detail::parse_system_cpu_ticks("cpu  10 20 30 400 50 6 7 8 99 99\ncpu0 1\n");
    REQUIRE(ticks.has_value());
    CHECK(ticks->busy == 10u + 20 + 30 + 6 + 7 + 8);
    CHECK(ticks->total == 10u + 20 + 30 + 400 + 50 + 6 + 7 + 8);
    CHECK_FALSE(taskmon::detail::parse_system_cpu_ticks("cpu0 1 2 3").has_value());
    CHECK_FALSE(taskmon::detail::parse_system_cpu_ticks("cpu  1 2 3\n").has_value());
}

TEST_CASE("load_sampler: CPU use is the difference between two samples, in percent of all cores") {
    FakeProc proc;
    CpuSampler sampler{proc.reader()};
    proc.files["/proc/self/stat"] = self_stat(100, 0);
    proc.files["/proc/stat"] = proc_stat(1000, 1000);
    CHECK_FALSE(sampler.sample().has_value());  // first sample: no interval yet

    proc.files["/proc/self/stat"] = self_stat(120, 5);  // +25 ticks for the process
    proc.files["/proc/stat"] = proc_stat(1075, 1025);   // +75 busy, +25 idle: 100 ticks in all
    const auto usage = sampler.sample();
    REQUIRE(usage.has_value());
    CHECK(usage->system_percent == Approx(75.0));
    CHECK(usage->process_percent == Approx(25.0));

    // No time passed: no figure rather than a division by zero.
    CHECK_FALSE(sampler.sample().has_value());
}

TEST_CASE("load_sampler: unreadable or malformed /proc gives no figure and never throws") {
    FakeProc proc;
    CpuSampler sampler{proc.reader()};
    proc.files["/proc/self/stat"] = std::nullopt;
    proc.files["/proc/stat"] = proc_stat(1, 1);
    CHECK_FALSE(sampler.sample().has_value());
    proc.files["/proc/self/stat"] = "nonsense";
    CHECK_FALSE(sampler.sample().has_value());
}

TEST_CASE("load_sampler: the real /proc of this process can be sampled") {
    CpuSampler sampler;
    sampler.sample();
    // Burn a little CPU so that at least one tick passes system-wide.
    volatile std::uint64_t sink = 0;
    std::optional<CpuUsage> usage;
    for (int round = 0; round < 200 && !usage; ++round) {
        for (std::uint64_t i = 0; i < 2'000'000; ++i) sink = sink + i;
        usage = sampler.sample();
    }
    REQUIRE(usage.has_value());
    CHECK(usage->system_percent >= 0.0);
    CHECK(usage->system_percent <= 100.0);
    CHECK(usage->process_percent >= 0.0);
    CHECK(usage->process_percent <= 100.0);
}

TEST_CASE("load_sampler: the gate enters at the CPU threshold and leaves only below the lower one") {
    LoadShedGate gate{LoadThresholds{98.0, 96.0, 500ms, 100ms}};
    CHECK_FALSE(gate.update(cpu(97.9)));
    CHECK_FALSE(gate.shedding());
    CHECK(gate.update(cpu(98.0)));
    CHECK(gate.shedding());
    CHECK_THAT(gate.reason(), Catch::Matchers::Contains("trigger=cpu"));
    CHECK_FALSE(gate.update(cpu(97.0)));  // inside the band: stays shedding
    CHECK_FALSE(gate.update(cpu(96.0)));
    CHECK(gate.shedding());
    CHECK(gate.update(cpu(95.9)));
    CHECK_FALSE(gate.shedding());
    CHECK_FALSE(gate.update(cpu(97.5)));  // inside the band: stays normal
    CHECK_FALSE(gate.shedding());
}

TEST_CASE("load_sampler: the gate enters on lag and leaves only when both lag and CPU are low") {
    LoadShedGate gate{LoadThresholds{98.0, 96.0, 500ms, 100ms}};
    CHECK_FALSE(gate.update(cpu(10.0, 499ms)));
    CHECK(gate.update(cpu(10.0, 500ms)));
    CHECK_THAT(gate.reason(), Catch::Matchers::Contains("trigger=lag"));
    CHECK_FALSE(gate.update(cpu(10.0, 100ms)));  // lag not yet below the leave threshold
    CHECK_FALSE(gate.update(cpu(97.0, 0ms)));    // lag fine but CPU inside the band
    CHECK(gate.update(cpu(50.0, 99ms)));
    CHECK_FALSE(gate.shedding());
}

TEST_CASE("load_sampler: unknown CPU never triggers shedding (fail open) and reset forces normal") {
    LoadShedGate gate{LoadThresholds{}};
    CHECK_FALSE(gate.update(LoadSample{std::nullopt, 0ns}));
    CHECK(gate.update(LoadSample{std::nullopt, 1s}));
    CHECK(gate.update(LoadSample{std::nullopt, 0ns}));
    CHECK(gate.update(cpu(99.0)));
    CHECK(gate.reset("monitor gave up"));
    CHECK_FALSE(gate.shedding());
    CHECK(gate.reason() == "monitor gave up");
    CHECK_FALSE(gate.reset("again"));
}

TEST_CASE("load_sampler: event-loop lag is how late a timer fires, in virtual time") {
    taskmon::testing::ManualTime time;
    asio::io_context io;
    taskmon::testing::VirtualTimeRunner runner{io, time};
    taskmon::testing::ManualTimer timer{io};
    std::vector<std::chrono::nanoseconds> lags;
    asio::co_spawn(
        io,
        [&]() -> asio::awaitable<void> {
            lags.push_back(co_await taskmon::detail::sleep_and_measure_lag(timer, 1s));
            // A handler that hogs the loop for 700 ms of (virtual) time while the timer is pending.
            asio::post(io, [&] { time.advance(1700ms); });
            lags.push_back(co_await taskmon::detail::sleep_and_measure_lag(timer, 1s));
        },
        asio::detached);
    runner.run();
    REQUIRE(lags.size() == 2);
    CHECK(lags[0] == 0ns);
    CHECK(lags[1] == 700ms);
}
