// Per-step overhead of the Supervisor with trivial perceive/decide/act, against a hand-written sequential
// perceive → decide → act coroutine loop over the same functions, in the same run. A second, informative
// baseline is the same loop written the way a careful user bounds calls without taskmon: every call under its
// own timer (co_spawn + steady_timer + cancellation signal) and decisions handed to a separate actuation
// coroutine through a bounded channel — what the Supervisor's per-step work would cost done naively.
//
// Each iteration runs `steps` agent steps to completion on a fresh io_context (one thread, steady clock), so
// construction, start and close of the six components are included and amortised over the steps; the
// "steps" figure is reported per step (items_per_second and the step_ns counter).
#include <taskmon/agent/supervisor.hpp>

#include <benchmark/benchmark.h>

#include <chrono>
#include <memory>
#include <optional>
#include <string>

#include <asio/bind_cancellation_slot.hpp>
#include <asio/cancellation_signal.hpp>
#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/experimental/channel.hpp>
#include <asio/io_context.hpp>
#include <asio/steady_timer.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>
#include <spdlog/sinks/null_sink.h>
#include <spdlog/spdlog.h>

namespace {

using Agent = taskmon::Supervisor<int, int, int>;

// The user's functions: trivial, but real coroutines (as an agent's would be).
asio::awaitable<int> perceive(int& counter) { co_return ++counter; }
asio::awaitable<Agent::DecisionType> decide(const int& observation) {
    co_return Agent::DecisionType::act({observation});
}
asio::awaitable<taskmon::ActionResult> act(const int& action, long& sink) {
    sink += action;
    co_return taskmon::ActionResult::ok();
}

void report(benchmark::State& state, std::int64_t steps) {
    state.SetItemsProcessed(state.iterations() * steps);
    state.counters["step_ns"] = benchmark::Counter(static_cast<double>(state.iterations() * steps),
                                                   benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}

/// Baseline: the sequential loop a user would write without supervision.
void BM_SequentialLoop(benchmark::State& state) {
    const auto steps = state.range(0);
    long sink = 0;
    for (auto _ : state) {
        asio::io_context io{1};
        int counter = 0;
        asio::co_spawn(
            io,
            [&]() -> asio::awaitable<void> {
                for (std::int64_t i = 0; i < steps; ++i) {
                    const int observation = co_await perceive(counter);
                    const auto decision = co_await decide(observation);
                    for (const auto& a : decision.actions) {
                        const auto result = co_await act(a, sink);
                        benchmark::DoNotOptimize(result.success);
                    }
                }
            },
            asio::detached);
        io.run();
    }
    benchmark::DoNotOptimize(sink);
    report(state, steps);
}

/// `op` bounded by `timeout` the bare-Asio way: run it in its own co_spawn bound to a signal that a timer emits.
template <typename T>
asio::awaitable<T> with_timer(asio::awaitable<T> op, std::chrono::nanoseconds timeout) {
    struct State {
        asio::cancellation_signal signal;
        bool done = false;
    };
    auto executor = co_await asio::this_coro::executor;
    auto state = std::make_shared<State>();
    asio::steady_timer timer{executor, timeout};
    timer.async_wait([state](asio::error_code ec) {
        if (!ec && !state->done) state->signal.emit(asio::cancellation_type::terminal);
    });
    T value = co_await asio::co_spawn(executor, std::move(op),
                                      asio::bind_cancellation_slot(state->signal.slot(), asio::use_awaitable));
    state->done = true;
    timer.cancel();
    co_return value;
}

/// Informative baseline: perceive → decide in one coroutine, act in another, a bounded channel between them,
/// every call bounded by its own timer (the Supervisor's default timeouts: 10 s, 60 s, 30 s).
void BM_LoopWithTimersAndQueue(benchmark::State& state) {
    using Channel = asio::experimental::channel<void(asio::error_code, Agent::DecisionType)>;
    const auto steps = state.range(0);
    long sink = 0;
    for (auto _ : state) {
        asio::io_context io{1};
        int counter = 0;
        Channel channel{io, 5};
        asio::co_spawn(
            io,
            [&]() -> asio::awaitable<void> {
                for (std::int64_t i = 0; i < steps; ++i) {
                    const int observation = co_await with_timer(perceive(counter), std::chrono::seconds{10});
                    auto decision = co_await with_timer(decide(observation), std::chrono::seconds{60});
                    co_await channel.async_send(asio::error_code{}, std::move(decision), asio::use_awaitable);
                }
                channel.close();
            },
            asio::detached);
        asio::co_spawn(
            io,
            [&]() -> asio::awaitable<void> {
                for (std::int64_t i = 0; i < steps; ++i) {
                    const auto decision = co_await channel.async_receive(asio::use_awaitable);
                    for (const auto& a : decision.actions) {
                        const auto result = co_await with_timer(act(a, sink), std::chrono::seconds{30});
                        benchmark::DoNotOptimize(result.success);
                    }
                }
            },
            asio::detached);
        io.run();
    }
    benchmark::DoNotOptimize(sink);
    report(state, steps);
}

/// The same functions under the Supervisor: six components, timeouts on every call, keep-latest slot,
/// bounded FIFO, history recording. capture_interval 0: perception captures back to back.
void BM_Supervisor(benchmark::State& state) {
    const auto steps = state.range(0);
    long sink = 0;
    auto logger = std::make_shared<spdlog::logger>("bench", std::make_shared<spdlog::sinks::null_sink_mt>());
    taskmon::AgentSettings settings;
    settings.max_steps = static_cast<std::size_t>(steps);
    settings.capture_interval = std::chrono::nanoseconds::zero();
    settings.shed_capture_interval = std::chrono::nanoseconds::zero();
    int counter = 0;
    for (auto _ : state) {
        asio::io_context io{1};
        counter = 0;
        Agent agent{io.get_executor(),
                    {.perceive = [&] { return perceive(counter); },
                     .decide = [](const int& observation, const Agent::Context&) { return decide(observation); },
                     .act = [&](const int& action) { return act(action, sink); }},
                    settings,
                    {},
                    logger,
                    [] { return std::optional<taskmon::CpuUsage>{}; }};
        std::optional<Agent::HistoryType> history;
        asio::co_spawn(
            io, [&]() -> asio::awaitable<void> { history = co_await agent.run(); }, asio::detached);
        io.run();
        if (!history || history->number_of_steps() != static_cast<std::size_t>(steps)) {
            state.SkipWithError("the run did not finish its steps");
            break;
        }
    }
    benchmark::DoNotOptimize(sink);
    report(state, steps);
    state.counters["captures_per_step"] = static_cast<double>(counter) / static_cast<double>(steps);
}

}  // namespace

BENCHMARK(BM_SequentialLoop)->Arg(1000)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_LoopWithTimersAndQueue)->Arg(1000)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_Supervisor)->Arg(1000)->Unit(benchmark::kMillisecond);

BENCHMARK_MAIN();
