// taskmon — coroutine supervision for standalone Asio.
// SPDX-License-Identifier: MIT
//
// Simulation: runs a supervised program on one thread under a seed. Its executor queues every handler, and a
// seeded generator chooses which ready handler runs next, so the interleavings that real threads produce are
// explored, each reproducible from its seed. Time is virtual (ManualClock) and jumps to the next deadline when
// nothing is ready: a simulated day takes as long as its handlers do.
//
//   taskmon::testing::Simulation sim{seed};
//   taskmon::BasicTaskMonitor<taskmon::testing::ManualClock> monitor{sim.get_executor(), policy, logger,
//                                                                     sim.random_source()};
//   monitor.supervise("db", factory);
//   sim.run_for(24h);
//   sim.trace_hash();   // the same for the same seed on the same build, always
//
// What a program must do to stay deterministic under a seed:
// - run on sim.get_executor() (or strands made from it), with its timers on ManualClock (ManualTimer);
// - draw its random numbers from sim.random() (and give the monitor sim.random_source() for jitter);
// - start no threads, read no real clock, and do no real I/O (no sockets, files or other processes): the
//   simulation cannot see or order them.
// A handler that uses the io_context's own executor (sim.context().get_executor()) still runs, in the order the
// io_context runs it, but outside the seeded choice.
#pragma once

#include <taskmon/detail/config.hpp>
#include <taskmon/detail/strand_executor.hpp>
#include <taskmon/restart_policy.hpp>
#include <taskmon/testing/detail/handler_slot.hpp>
#include <taskmon/testing/detail/virtual_time_run.hpp>
#include <taskmon/testing/manual_clock.hpp>
#include <taskmon/testing/seeded_random.hpp>
#include <taskmon/testing/trace_hash.hpp>

#include <asio/execution.hpp>
#include <asio/execution_context.hpp>
#include <asio/io_context.hpp>

#include <concepts>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace taskmon::testing {

/// A property of a simulated program failed (Simulation::add_property): what() names the seed, the handler, the
/// virtual time, the property and what was wrong.
class PropertyViolation : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

/// A seeded, single-threaded run of a program in virtual time. Invariants: handlers run one at a time on the
/// thread that calls run*(); the order they run in is a function of the seed and of what they do alone; virtual
/// time never goes backwards and moves only when no handler is ready.
class Simulation : public detail::VirtualTimeRun<Simulation> {
public:
    using duration = ManualClock::duration;
    using time_point = ManualClock::time_point;

    struct Options {
        std::uint64_t seed = 0;
        /// The chance, before each handler is chosen, that the io_context's finished operations (timers that
        /// are due or were cancelled) join the ready handlers first; they also join whenever none is ready. In
        /// [0, 1]: higher lets completions overtake ready work more often, lower is faster (a look costs about
        /// 50 ns: at 0.25 a handler costs ~1.5x a plain io_context's, at 1/64 about the same).
        double poll_chance = 0.25;
        /// Upper bound on handlers run plus clock jumps in one run*() call: a program that never goes idle makes
        /// the call throw std::runtime_error instead of hanging.
        std::size_t max_steps = 50'000'000;
    };

    /// The executor of the simulation: execute() queues the function among the ready handlers (it never runs it
    /// inline, whatever blocking property is preferred). Its context is the io_context that owns timers and
    /// strands. Copies are equal when they refer to the same simulation.
    class executor_type {
    public:
        explicit executor_type(Simulation& sim) noexcept : sim_{&sim} {}

        [[nodiscard]] asio::io_context& query(asio::execution::context_t) const noexcept { return sim_->io_; }
        static constexpr asio::execution::blocking_t query(asio::execution::blocking_t) noexcept {
            return asio::execution::blocking.never;
        }
        [[nodiscard]] executor_type require(asio::execution::blocking_t::never_t) const noexcept { return *this; }

        template <typename Function>
        void execute(Function&& f) const {
            sim_->enqueue(std::forward<Function>(f));
        }

        friend bool operator==(const executor_type& a, const executor_type& b) noexcept { return a.sim_ == b.sim_; }
        friend bool operator!=(const executor_type& a, const executor_type& b) noexcept { return a.sim_ != b.sim_; }

    private:
        Simulation* sim_;
    };

    explicit Simulation(std::uint64_t seed) : Simulation(Options{.seed = seed}) {}

    explicit Simulation(Options options)
        : options_{checked(options)},
          random_{options.seed},
          timers_{asio::use_service<detail::ManualTimerService>(io_)} {
        // A monitor's strands on a simulation are then strands of its executor type, as on an io_context: a
        // strand of the type-erased executor goes to the heap at every executor copy and allocates at every
        // handler (its blocking property asked through the erasure), 24 % of a campaign's instructions
        // (callgrind, 10 seeds of simulate_service: 1,202 M with them, 917 M without).
        static const bool registered = taskmon::detail::register_concrete_strand<executor_type>();
        (void)registered;
    }

    ~Simulation() {
        ManualTime::Scope scope{time_};
        closing_ = true;  // a handler queued while the others are destroyed is destroyed at once
        while (!ready_.empty()) {
            auto doomed = std::move(ready_);
            ready_.clear();
            doomed.clear();  // coroutine frames with timers go while the io_context still stands
        }
    }

    Simulation(const Simulation&) = delete;
    Simulation& operator=(const Simulation&) = delete;

    [[nodiscard]] executor_type get_executor() noexcept { return executor_type{*this}; }

    /// The io_context behind the executor: its timer and strand services. Run it through the simulation only.
    [[nodiscard]] asio::io_context& context() noexcept { return io_; }

    /// The simulation's virtual time (installed on the constructing thread, and on the running thread during
    /// run*()).
    [[nodiscard]] ManualTime& time() noexcept { return time_; }
    [[nodiscard]] time_point now() const noexcept { return time_.now(); }

    [[nodiscard]] std::uint64_t seed() const noexcept { return options_.seed; }

    /// The seeded generator. The program's own random choices must come from here to replay.
    [[nodiscard]] SeededRandom& random() noexcept { return random_; }

    /// A RandomSource for a TaskMonitor's jitter, drawing from random(). The simulation must outlive it.
    [[nodiscard]] RandomSource random_source() {
        return [this] { return random_.uniform(); };
    }

    /// The running hash of the run: every scheduling choice (how many handlers were ready, which one ran) and
    /// every clock jump, plus whatever the program or an observer adds through trace().
    [[nodiscard]] TraceHash& trace() noexcept { return trace_; }
    [[nodiscard]] std::uint64_t trace_hash() const noexcept { return trace_.value(); }

    /// Handlers run so far.
    [[nodiscard]] std::uint64_t handlers_run() const noexcept { return handlers_run_; }

    /// Adds a property of the program, checked after every handler the simulation runs and every move of its
    /// clock: `check` returns an empty string while it holds, and otherwise what is wrong. The first that fails
    /// stops run*() with a PropertyViolation naming the seed, the handler, the virtual time, the property and the
    /// text. Throws std::invalid_argument for an empty name or check.
    void add_property(std::string name, std::function<std::string()> check) {
        if (name.empty() || !check) {
            throw std::invalid_argument("Simulation::add_property: the name and the check must not be empty");
        }
        properties_.push_back({std::move(name), std::move(check)});
    }

    /// Handlers ready to run now.
    [[nodiscard]] std::size_t ready() const noexcept { return ready_.size(); }

private:
    friend class detail::VirtualTimeRun<Simulation>;
    static constexpr const char* run_name = "Simulation";

    static Options checked(const Options& options) {
        if (!(options.poll_chance >= 0.0 && options.poll_chance <= 1.0)) {
            throw std::invalid_argument("Simulation: poll_chance " + std::to_string(options.poll_chance) +
                                        " is outside [0, 1]");
        }
        if (options.max_steps == 0) {
            throw std::invalid_argument("Simulation: max_steps must be positive");
        }
        return options;
    }

    template <typename Function>
    void enqueue(Function&& f) {
        detail::HandlerSlot task{std::forward<Function>(f)};
        if (closing_) {
            return;  // destroyed here, as an io_context destroys what it never ran
        }
        ready_.push_back(std::move(task));
    }

    /// Moves the io_context's finished operations among the ready handlers (their handlers' executor is this
    /// simulation's). Returns how many io_context handlers ran.
    std::size_t deliver(std::size_t& steps) {
        timers_.fire_due();
        if (io_.stopped()) {
            io_.restart();
        }
        std::size_t ran = 0;
        while (io_.poll_one() != 0) {
            ++ran;
            count_step(steps);
        }
        return ran;
    }

    /// Runs one ready handler, chosen by the seed. Swap-and-pop: O(1), and still a function of the seed.
    void run_one(std::size_t& steps) {
        const auto n = ready_.size();
        const auto i = static_cast<std::size_t>(random_.below(n));
        trace_.add(static_cast<std::uint64_t>(n)).add(static_cast<std::uint64_t>(i));
        auto task = std::move(ready_[i]);
        if (i + 1 != n) {
            ready_[i] = std::move(ready_.back());
        }
        ready_.pop_back();
        ++handlers_run_;
        count_step(steps);
        task();
        check_properties();
    }

    /// After every handler and every move of the clock (a property may be about time: a deadline passed).
    void check_properties() const {
        for (const auto& [name, check] : properties_) {
            if (auto wrong = check(); !wrong.empty()) {
                throw PropertyViolation{"seed " + std::to_string(options_.seed) + ", handler " +
                                        std::to_string(handlers_run_) +
                                        ", t=" + std::to_string(time_.now().time_since_epoch().count()) +
                                        " ns: property '" + name + "' failed: " + wrong};
            }
        }
    }

    void count_step(std::size_t& steps) const {
        if (++steps > options_.max_steps) {
            throw std::runtime_error("Simulation (seed " + std::to_string(options_.seed) +
                                     "): the program did not go idle within " + std::to_string(options_.max_steps) +
                                     " steps");
        }
    }

    template <typename Predicate>
    std::size_t drive(Predicate&& pred, std::optional<time_point> deadline, bool advance_to_deadline) {
        ManualTime::Scope scope{time_};
        const auto before = handlers_run_;
        std::size_t steps = 0;
        for (;;) {
            if (ready_.empty() || random_.chance(options_.poll_chance)) {
                deliver(steps);
            }
            if (pred()) {
                break;
            }
            if (!ready_.empty()) {
                run_one(steps);
                continue;
            }
            // Idle: nothing ready after a poll (an empty queue always polls), so nothing is due.
            const auto earliest = timers_.next_deadline();
            const auto next = earliest.value_or(time_point::max());
            const bool has_timer = earliest && next != time_point::max();  // max: "never"
            if (!has_timer || (deadline && next > *deadline)) {
                if (deadline && advance_to_deadline && time_.now() < *deadline) {
                    jump(*deadline, steps);
                    continue;  // anything due exactly at the deadline still runs
                }
                break;
            }
            jump(next, steps);
        }
        return static_cast<std::size_t>(handlers_run_ - before);
    }

    void jump(time_point to, std::size_t& steps) {
        time_.advance_to(to);
        trace_.add(to.time_since_epoch().count());
        count_step(steps);
        check_properties();
    }

    Options options_;
    ManualTime time_;
    SeededRandom random_;
    TraceHash trace_;
    // One thread, by the simulation's contract: no locking in its scheduler (ASIO_CONCURRENCY_HINT_UNSAFE; the
    // locks were 1.8 % of a campaign's instructions).
    asio::io_context io_{ASIO_CONCURRENCY_HINT_UNSAFE};
    detail::ManualTimerService& timers_;
    std::vector<detail::HandlerSlot> ready_;  // after io_: destroyed first, while the io_context stands
    std::uint64_t handlers_run_ = 0;
    bool closing_ = false;
    std::vector<std::pair<std::string, std::function<std::string()>>> properties_;
};

}  // namespace taskmon::testing
