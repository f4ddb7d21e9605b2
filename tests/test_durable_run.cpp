// A Supervisor with a run journal (taskmon/agent/durable_run.hpp): the run written before it starts, an intent
// before each action, a checkpoint per step, resume after a crash at every write point with no committed action
// run twice, UNKNOWN actions through reconcile(), and a failed journal write failing the run with its reason.
#include <taskmon/agent/durable_run.hpp>
#include <taskmon/agent/sqlite_journal.hpp>

#include "journal_harness.hpp"

#include <catch2/catch.hpp>

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/io_context.hpp>
#include <asio/steady_timer.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>
#include <spdlog/sinks/null_sink.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

namespace {

using namespace std::chrono_literals;
using Sup = taskmon::Supervisor<int, std::string, std::string>;
using History = Sup::HistoryType;
using Decision = Sup::DecisionType;
using taskmon::ActionOutcome;
using taskmon::AgentStatus;
using taskmon::HistoryEventKind;

constexpr std::uint64_t steps_to_done = 4;  // steps 1-3 act twice each, step 4 says done

taskmon::AgentSettings settings() {
    taskmon::AgentSettings s;
    s.capture_interval = 0ms;
    s.shed_capture_interval = 0ms;
    s.max_failures = 100;
    return s;
}

std::shared_ptr<spdlog::logger> quiet() {
    return std::make_shared<spdlog::logger>("durable-test", std::make_shared<spdlog::sinks::null_sink_mt>());
}

/// Kills the journal at the `countdown`-th write point it reaches (or at the first whose name is `only`), and
/// every write after it: as if the process had died there.
struct Crash {
    int countdown = 0;  ///< 0: never
    std::string only;   ///< when set, only points of this name count
    bool once = false;  ///< fail that one write only, the journal lives on
    std::atomic<bool> dead{false};
    std::atomic<bool> fired{false};
    int points = 0;  ///< write points reached (counted on the writer thread)

    void operator()(std::string_view point) {
        ++points;
        if (dead) throw std::runtime_error("crashed earlier");
        if (countdown == 0 || (!only.empty() && point != only)) return;
        if (--countdown == 0) {
            fired = true;
            if (!once) dead = true;
            throw std::runtime_error("crash at " + std::string{point});
        }
    }
};

/// What every process of one test shares: the file, the actions executed (the side effect), the reconcile answer.
struct World {
    taskmon_test::TempDir dir;
    std::string path = dir.file("runs.db");
    std::vector<std::string> executed;
    std::optional<taskmon::Reconciliation> reconcile_answer;
    std::vector<std::string> reconciled;
    std::uint64_t ask_at_step = 0;                    ///< decide() returns an interrupt at this step (0: never)
    std::vector<std::optional<std::string>> answers;  ///< DecisionContext::interrupt_value of every decide()
    std::function<void(Sup&, const taskmon::StatusTransition&)> on_status;  ///< called on every status change
    bool durable = true;                                                    ///< false: a plain Supervisor (no journal)
    std::string failing_action;                                             ///< act() returns a failure for this action
    std::string throwing_action;           ///< act() throws for this action (its effect unknown), the first time only
    std::vector<std::string> thrown_keys;  ///< the idempotency keys of the act() calls that threw
    bool ask_with_action = false;          ///< the interrupt's decision has one action, "ask-action"
    std::size_t max_history_items = 0;     ///< AgentSettings::max_history_items
    std::uint64_t stop_at_step = 0;        ///< decide() of this step calls stop() (0: never)
    std::string guidance_before_run;       ///< injected before run() when not empty
    std::vector<std::vector<std::string>> guidance_seen;  ///< DecisionContext::guidance of every decide()
};

struct ProcessResult {
    std::optional<History> history;
    std::string error;     ///< what run() threw
    bool started = false;  ///< run() reported started (on_run_start)
};

/// One "process": a journal, a writer, a Supervisor and an io_context, all destroyed at its end.
ProcessResult run_process(World& world, Crash* crash = nullptr) {
    ProcessResult out;
    asio::io_context io;
    taskmon::SqliteJournalOptions options;
    if (crash) options.fault_hook = [crash](std::string_view point) { (*crash)(point); };
    auto writer =
        std::make_shared<taskmon::JournalWriter>(std::make_unique<taskmon::SqliteRunJournal>(world.path, options));
    Sup* running = nullptr;
    Sup::Functions agent{
        .perceive = []() -> asio::awaitable<int> { co_return 1; },
        .decide = [&world, &running](const int&, const Sup::Context& ctx) -> asio::awaitable<Decision> {
            world.answers.push_back(ctx.interrupt_value);
            world.guidance_seen.push_back(ctx.guidance);
            if (ctx.step == world.stop_at_step && running) running->stop("stopped by the test");
            if (ctx.step == world.ask_at_step) {
                co_return Decision::interrupt("approve?", world.ask_with_action ? std::vector<std::string>{"ask-action"}
                                                                                : std::vector<std::string>{});
            }
            if (ctx.step >= steps_to_done) co_return Decision::done("finished");
            co_return Decision::act({"s" + std::to_string(ctx.step) + "-a0", "s" + std::to_string(ctx.step) + "-a1"});
        },
        .act = {},
        .act_with_key = [&world](const std::string& action,
                                 std::string_view key) -> asio::awaitable<taskmon::ActionResult> {
            world.executed.push_back(action);
            if (action == world.failing_action) co_return taskmon::ActionResult::failure("refused");
            if (action == world.throwing_action && world.thrown_keys.empty()) {
                world.thrown_keys.emplace_back(key);
                throw std::runtime_error("the arm jammed");
            }
            co_return taskmon::ActionResult::ok(std::string{key});
        }};
    taskmon::DurableRun<std::string> durable{
        .writer = writer,
        .run_id = "run-1",
        .serialize_action = [](const std::string& a) { return a; },
        .deserialize_action = [](std::string_view blob) { return std::string{blob}; },
        .serialize_result = [](const std::string& r) { return r; },
        .deserialize_result = [](std::string_view blob) { return std::string{blob}; },
    };
    if (world.reconcile_answer) {
        durable.reconcile = [&world](const std::string& action,
                                     std::string_view) -> asio::awaitable<taskmon::Reconciliation> {
            world.reconciled.push_back(action);
            co_return *world.reconcile_answer;
        };
    }
    Sup::Hooks hooks;
    hooks.on_run_start = [&out] { out.started = true; };
    hooks.on_status_change = [&world, &running](const taskmon::StatusTransition& change) {
        if (world.on_status && running) world.on_status(*running, change);
    };
    {
        auto configured = settings();
        configured.max_history_items = world.max_history_items;
        auto made = world.durable
                        ? std::make_unique<Sup>(io.get_executor(), agent, std::move(durable), configured,
                                                std::move(hooks), quiet())
                        : std::make_unique<Sup>(io.get_executor(), agent, configured, std::move(hooks), quiet());
        Sup& sup = *made;
        running = &sup;
        if (!world.guidance_before_run.empty()) sup.inject_guidance(world.guidance_before_run);
        asio::co_spawn(
            io,
            [&]() -> asio::awaitable<void> {
                try {
                    out.history = co_await sup.run();
                } catch (const std::exception& e) {
                    out.error = e.what();
                }
            },
            asio::detached);
        while (!out.history && out.error.empty()) {
            io.run_for(10ms);
            io.restart();
        }
    }
    writer.reset();  // drains its queue before the io_context goes
    io.run();
    return out;
}

std::optional<taskmon::RunSnapshot> load(const World& world) {
    taskmon::SqliteRunJournal journal{world.path};
    return journal.load("run-1");
}

std::size_t duplicates(const std::vector<std::string>& executed) {
    std::set<std::string> seen(executed.begin(), executed.end());
    return executed.size() - seen.size();
}

/// A step as the test compares it across processes (no times: they are from two clocks).
std::string describe(const Sup::Step& step) {
    std::string text = std::to_string(step.number) + " " + std::string{taskmon::to_string(step.outcome)} + " " +
                       (step.fate ? std::string{taskmon::to_string(*step.fate)} : "none");
    for (const auto& a : step.actions) {
        text += " [" + a.action + " " + std::string{taskmon::to_string(a.outcome)} + "]";
    }
    return text;
}

}  // namespace

TEST_CASE("A durable run completes, checkpoints every step and ends completed in the journal") {
    World world;
    auto result = run_process(world);
    REQUIRE(result.error.empty());
    REQUIRE(result.history);
    CHECK(result.history->status == AgentStatus::completed);
    CHECK(result.history->steps.size() == steps_to_done);
    CHECK(world.executed.size() == 2 * (steps_to_done - 1));
    CHECK(result.history->steps[0].actions[0].result.extracted_content ==
          taskmon::idempotency_key("run-1", 1, 0, "s1-a0"));
    auto snapshot = load(world);
    REQUIRE(snapshot);
    CHECK(snapshot->run.status == taskmon::RunStatus::completed);
    CHECK(snapshot->run.result_blob == "finished");
    CHECK(snapshot->run.last_step == steps_to_done);

    // A terminal run is not run again: run() throws std::logic_error naming the run and its status.
    auto again = run_process(world);
    CHECK(again.error.find("'run-1' is already completed") != std::string::npos);
    CHECK_FALSE(again.started);
    CHECK(world.executed.size() == 2 * (steps_to_done - 1));
}

TEST_CASE("A crash at every write point: no committed action runs twice, no started run is lost") {
    World reference_world;
    Crash counting;
    auto reference = run_process(reference_world, &counting);
    REQUIRE(reference.history);
    REQUIRE(reference.history->status == AgentStatus::completed);
    const int points = counting.points;
    REQUIRE(points > 10);
    for (int k = 1; k <= points; ++k) {
        CAPTURE(k);
        World world;
        Crash crash;
        crash.countdown = k;
        auto first = run_process(world, &crash);
        REQUIRE(crash.fired);
        auto snapshot = load(world);
        if (first.started) REQUIRE(snapshot);  // a run that reported started is never lost
        const std::uint64_t checkpointed = snapshot ? snapshot->run.last_step : 0;
        if (snapshot && taskmon::is_terminal(snapshot->run.status)) continue;  // crashed after its end was written

        auto second = run_process(world);
        REQUIRE(second.error.empty());
        REQUIRE(second.history);
        CHECK(second.history->status == AgentStatus::completed);
        CHECK(duplicates(world.executed) == 0);
        REQUIRE(second.history->steps.size() >= checkpointed);
        for (std::uint64_t i = 0; i < checkpointed; ++i) {
            CHECK(describe(second.history->steps[i]) == describe(reference.history->steps[i]));
        }
        // Steps are numbered without gaps across the two processes.
        for (std::size_t i = 0; i < second.history->steps.size(); ++i) {
            CHECK(second.history->steps[i].number == i + 1);
        }
        CHECK(load(world)->run.status == taskmon::RunStatus::completed);
    }
}

TEST_CASE("A resume restores the kept steps, every event once and the counters from the checkpoints") {
    World world;
    world.max_history_items = 2;
    Crash crash;
    crash.only = "checkpoint:before";
    crash.countdown = 3;  // step 3 acted (both results committed) and was never checkpointed
    auto first = run_process(world, &crash);
    REQUIRE(crash.fired);
    REQUIRE(load(world)->run.last_step == 2);
    auto second = run_process(world);
    REQUIRE(second.history);
    const auto& h = *second.history;
    CHECK(h.status == AgentStatus::completed);
    CHECK(duplicates(world.executed) == 0);
    CHECK(h.counters.steps == steps_to_done);
    CHECK(h.counters.steps_evicted == steps_to_done - 2);
    REQUIRE(h.steps.size() == 2);
    CHECK(h.steps[0].number == 3);  // settled from the journal: its actions committed, not run again
    CHECK(h.steps[0].fate == taskmon::DecisionFate::interrupted);
    CHECK(h.steps[1].number == 4);
    // Steps 1 and 2 counted once each: from the restored counters, not again.
    CHECK(h.counters.actions_succeeded == 2 * 2 + 2);
    CHECK(h.events_of(HistoryEventKind::action_skipped_committed).size() == 2);
    // The first process's events were restored once: one start into running per process.
    std::size_t into_running = 0;
    for (const auto& event : h.events_of(HistoryEventKind::status_changed)) {
        if (event.to == AgentStatus::running) ++into_running;
    }
    CHECK(into_running == 2);
    // Every checkpoint's record holds one step: the last one is no larger than the first.
    taskmon::SqliteRunJournal journal{world.path};
    auto records = journal.checkpoints("run-1", 1, steps_to_done);
    REQUIRE(records.size() == steps_to_done);
    CHECK(records.back().record_blob.size() <= records.front().record_blob.size() + 64);
}

TEST_CASE("An UNKNOWN action at resume: recorded interrupted without reconcile, never replayed") {
    World world;
    Crash crash;
    crash.only = "action_result:before";
    crash.countdown = 3;  // step 2, action 1: it ran, its result was never written
    auto first = run_process(world, &crash);
    REQUIRE(crash.fired);
    REQUIRE(first.history);
    CHECK(first.history->status == AgentStatus::failed);
    auto second = run_process(world);
    REQUIRE(second.history);
    CHECK(duplicates(world.executed) == 0);
    CHECK(std::count(world.executed.begin(), world.executed.end(), "s2-a0") == 1);
    const auto& step2 = second.history->steps.at(1);
    CHECK(step2.number == 2);
    CHECK(step2.fate == taskmon::DecisionFate::interrupted);
    REQUIRE(step2.actions.size() == 1);
    CHECK(step2.actions[0].outcome == ActionOutcome::interrupted);
    CHECK(second.history->events_of(HistoryEventKind::action_reconciled).size() == 1);
    CHECK(second.history->status == AgentStatus::completed);
}

TEST_CASE("An UNKNOWN action at resume goes through reconcile(): done, not done, failed") {
    struct Case {
        taskmon::Reconciliation answer;
        ActionOutcome outcome;
    };
    for (const auto& c :
         {Case{taskmon::Reconciliation::done(taskmon::ActionResult::ok("found")), ActionOutcome::succeeded},
          Case{taskmon::Reconciliation::not_done(), ActionOutcome::skipped},
          Case{taskmon::Reconciliation::failed("half done"), ActionOutcome::failed}}) {
        World world;
        world.reconcile_answer = c.answer;
        Crash crash;
        crash.only = "action_result:before";
        crash.countdown = 4;  // step 2, action 2
        run_process(world, &crash);
        REQUIRE(crash.fired);
        auto second = run_process(world);
        REQUIRE(second.history);
        CHECK(world.reconciled == std::vector<std::string>{"s2-a1"});
        const auto& step2 = second.history->steps.at(1);
        REQUIRE(step2.actions.size() == 2);
        CHECK(step2.actions[0].outcome == ActionOutcome::succeeded);  // committed: kept, not run again
        CHECK(step2.actions[1].outcome == c.outcome);
        CHECK(second.history->events_of(HistoryEventKind::action_skipped_committed).size() == 1);
        CHECK(second.history->events_of(HistoryEventKind::action_reconciled).size() == 1);
        CHECK(duplicates(world.executed) == 0);
        // What reconcile found is in the journal: a third process would not ask again.
        taskmon::SqliteRunJournal journal{world.path};
        auto found = journal.find_action(taskmon::idempotency_key("run-1", 2, 1, "s2-a1"));
        REQUIRE(found);
        CHECK_FALSE(found->unknown());
    }
}

TEST_CASE("A failed intent write: the action is not dispatched and the run fails naming the journal error") {
    World world;
    Crash crash;
    crash.only = "intent:before";
    crash.countdown = 2;
    crash.once = true;
    auto result = run_process(world, &crash);
    REQUIRE(result.history);
    CHECK(result.history->status == AgentStatus::failed);
    CHECK(result.history->reason.find("run journal") != std::string::npos);
    CHECK(result.history->reason.find("crash at intent:before") != std::string::npos);
    CHECK(result.history->events_of(HistoryEventKind::journal_error).size() == 1);
    CHECK(world.executed == std::vector<std::string>{"s1-a0"});
    CHECK(load(world)->run.status == taskmon::RunStatus::failed);
}

TEST_CASE("A failed result write: the run fails at its next intent naming it, and its end is not written") {
    World world;
    Crash crash;
    crash.only = "action_result:before";
    crash.countdown = 3;  // step 2, action 1; the journal itself lives on
    crash.once = true;
    auto first = run_process(world, &crash);
    REQUIRE(crash.fired);
    REQUIRE(first.history);
    CHECK(first.history->status == AgentStatus::failed);
    CHECK(first.history->reason.find("the result of action 1 of step 2 was not written") != std::string::npos);
    CHECK(first.history->reason.find("crash at action_result:before") != std::string::npos);
    CHECK_FALSE(first.history->events_of(HistoryEventKind::journal_error).empty());
    CHECK(world.executed == std::vector<std::string>{"s1-a0", "s1-a1", "s2-a0"});  // s2-a1: its intent refused
    // Nothing after the failed write was taken as done: the run is still running, its action UNKNOWN.
    auto snapshot = load(world);
    REQUIRE(snapshot);
    CHECK(snapshot->run.status == taskmon::RunStatus::running);
    REQUIRE(snapshot->open_actions.size() == 1);
    CHECK(snapshot->open_actions[0].unknown());
    auto second = run_process(world);
    REQUIRE(second.history);
    CHECK(second.history->status == AgentStatus::completed);
    CHECK(duplicates(world.executed) == 0);
}

TEST_CASE("DurableRun and AgentFunctions are validated, naming what is missing") {
    asio::io_context io;
    Sup::Functions agent{
        .perceive = []() -> asio::awaitable<int> { co_return 1; },
        .decide = [](const int&, const Sup::Context&) -> asio::awaitable<Decision> { co_return Decision::done("x"); },
        .act = [](const std::string&) -> asio::awaitable<taskmon::ActionResult> {
            co_return taskmon::ActionResult::ok();
        }};
    taskmon::DurableRun<std::string> durable;
    CHECK_THROWS_WITH((Sup{io.get_executor(), agent, durable}), "DurableRun.writer is null");
    auto both = agent;
    both.act_with_key = [](const std::string&, std::string_view) -> asio::awaitable<taskmon::ActionResult> {
        co_return taskmon::ActionResult::ok();
    };
    CHECK_THROWS_WITH((Sup{io.get_executor(), both}),
                      "AgentFunctions.act and AgentFunctions.act_with_key are both set (one only)");
}

TEST_CASE("An interrupt without a journal: the run waits, resume_with delivers the value to the next decide()") {
    World world;
    world.durable = false;
    world.ask_at_step = 2;
    std::vector<std::string> refusals;
    std::vector<std::string> asked;  // the interrupt ids the transitions into waiting_for_input carried
    world.on_status = [&](Sup& sup, const taskmon::StatusTransition& change) {
        if (change.to != AgentStatus::waiting_for_input) {
            CHECK(change.interrupt_id.empty());
            return;
        }
        asked.push_back(change.interrupt_id);
        try {
            sup.resume_with("interrupt-7", "x");
        } catch (const std::invalid_argument& e) {
            refusals.emplace_back(e.what());
        }
        sup.resume_with("interrupt-2", "yes");
        try {
            sup.resume_with("interrupt-2", "again");
        } catch (const std::invalid_argument& e) {
            refusals.emplace_back(e.what());
        }
    };
    auto result = run_process(world);
    REQUIRE(result.history);
    CHECK(result.history->status == AgentStatus::completed);
    CHECK(asked == std::vector<std::string>{"interrupt-2"});
    CHECK(refusals == std::vector<std::string>{"resume_with: no decision asked interrupt 'interrupt-7'",
                                               "resume_with: interrupt 'interrupt-2' was already answered"});
    const auto path = result.history->status_path();
    CHECK(std::count(path.begin(), path.end(), AgentStatus::waiting_for_input) == 1);
    REQUIRE(world.answers.size() == steps_to_done);
    CHECK(world.answers[2] == std::optional<std::string>{"yes"});  // step 3 only
    CHECK_FALSE(world.answers[1]);
    CHECK_FALSE(world.answers[3]);
}

TEST_CASE("An act() that throws in a durable run: recorded interrupted, committed, never run again") {
    World world;
    world.throwing_action = "s2-a0";
    auto result = run_process(world);
    REQUIRE(result.history);
    CHECK(result.history->status == AgentStatus::completed);
    const auto& step = result.history->steps.at(1);
    REQUIRE(step.actions.size() == 2);
    CHECK(step.actions[0].outcome == ActionOutcome::interrupted);  // its effect is unknown: never replayed
    CHECK(step.actions[1].outcome == ActionOutcome::skipped);
    CHECK(std::count(world.executed.begin(), world.executed.end(), "s2-a0") == 1);
    REQUIRE(world.thrown_keys.size() == 1);
    taskmon::SqliteRunJournal journal{world.path};
    const auto recorded = journal.find_action(world.thrown_keys.front());
    REQUIRE(recorded);
    CHECK_FALSE(recorded->unknown());  // its result was committed: a resume would not ask reconcile() about it
    CHECK(recorded->result->outcome == taskmon::JournalOutcome::failed);
    CHECK(duplicates(world.executed) == 0);
}

TEST_CASE("An interrupt whose decision's action failed is still asked: the run waits for the answer") {
    World world;
    world.durable = false;
    world.ask_at_step = 2;
    world.ask_with_action = true;
    world.failing_action = "ask-action";
    world.on_status = [](Sup& sup, const taskmon::StatusTransition& change) {
        if (change.to == AgentStatus::waiting_for_input) sup.resume_with("interrupt-2", "yes");
    };
    auto result = run_process(world);
    REQUIRE(result.history);
    CHECK(result.history->status == AgentStatus::completed);
    CHECK(result.history->steps.at(1).outcome == taskmon::StepOutcome::failed);  // its action failed
    const auto path = result.history->status_path();
    CHECK(std::count(path.begin(), path.end(), AgentStatus::waiting_for_input) == 1);
    REQUIRE(world.answers.size() == steps_to_done);
    CHECK(world.answers[2] == std::optional<std::string>{"yes"});
}

TEST_CASE("An interrupt is journaled: a restarted process comes back waiting, and the answer is used once") {
    World world;
    world.ask_at_step = 2;
    Crash crash;
    crash.only = "interrupt:after";  // the process dies just after the interrupt was written
    crash.countdown = 1;
    auto first = run_process(world, &crash);
    REQUIRE(crash.fired);
    auto snapshot = load(world);
    REQUIRE(snapshot);
    CHECK(snapshot->run.status == taskmon::RunStatus::interrupted);
    REQUIRE(snapshot->pending_interrupt);
    CHECK(snapshot->pending_interrupt->interrupt_id == "interrupt-2");
    CHECK(snapshot->pending_interrupt->payload_blob == "approve?");

    world.answers.clear();
    world.ask_at_step = 0;
    world.on_status = [](Sup& sup, const taskmon::StatusTransition& change) {
        if (change.to == AgentStatus::waiting_for_input) sup.resume_with("interrupt-2", "yes");
    };
    auto second = run_process(world);
    REQUIRE(second.history);
    CHECK(second.history->status == AgentStatus::completed);
    const auto path = second.history->status_path();
    CHECK(std::count(path.begin(), path.end(), AgentStatus::waiting_for_input) == 1);
    REQUIRE_FALSE(world.answers.empty());
    CHECK(world.answers.front() == std::optional<std::string>{"yes"});  // step 3, the first of this process
    CHECK(second.history->steps.at(2).number == 3);
    CHECK(duplicates(world.executed) == 0);
    auto done = load(world);
    CHECK(done->run.status == taskmon::RunStatus::completed);
    CHECK(done->resumed_interrupts.empty());  // consumed by step 3's checkpoint
}

TEST_CASE("A run stopped cleanly is resumed by the next run(): steps go on, nothing runs twice") {
    World world;
    world.stop_at_step = 2;
    auto first = run_process(world);
    REQUIRE(first.history);
    CHECK(first.history->status == AgentStatus::stopped);
    auto stopped = load(world);
    REQUIRE(stopped);
    CHECK(stopped->run.status == taskmon::RunStatus::stopped);
    const std::uint64_t kept = stopped->run.last_step;
    CHECK(kept == first.history->steps.size());  // every step of the first process is checkpointed

    world.stop_at_step = 0;
    auto second = run_process(world);
    REQUIRE(second.error.empty());
    REQUIRE(second.history);
    CHECK(second.history->status == AgentStatus::completed);
    CHECK(duplicates(world.executed) == 0);
    REQUIRE(second.history->steps.size() > kept);
    for (std::size_t i = 0; i < second.history->steps.size(); ++i) {
        CHECK(second.history->steps[i].number == i + 1);
    }
    for (std::uint64_t i = 0; i < kept; ++i) {
        CHECK(describe(second.history->steps[i]) == describe(first.history->steps[i]));
    }
    const auto path = second.history->status_path();
    CHECK(std::count(path.begin(), path.end(), AgentStatus::stopped) == 1);  // the first process's, restored
    CHECK(load(world)->run.status == taskmon::RunStatus::completed);
}

TEST_CASE("A run stopped while waiting for an operator comes back waiting for the same interrupt") {
    World world;
    world.ask_at_step = 2;
    world.on_status = [](Sup& sup, const taskmon::StatusTransition& change) {
        if (change.to == AgentStatus::waiting_for_input) sup.stop("shutting down");
    };
    auto first = run_process(world);
    REQUIRE(first.history);
    CHECK(first.history->status == AgentStatus::stopped);
    auto stopped = load(world);
    REQUIRE(stopped);
    CHECK(stopped->run.status == taskmon::RunStatus::stopped);
    REQUIRE(stopped->pending_interrupt);

    world.ask_at_step = 0;
    world.answers.clear();
    world.on_status = [](Sup& sup, const taskmon::StatusTransition& change) {
        if (change.to == AgentStatus::waiting_for_input) sup.resume_with("interrupt-2", "yes");
    };
    auto second = run_process(world);
    REQUIRE(second.history);
    CHECK(second.history->status == AgentStatus::completed);
    REQUIRE_FALSE(world.answers.empty());
    CHECK(world.answers.front() == std::optional<std::string>{"yes"});
    CHECK(duplicates(world.executed) == 0);
    CHECK(load(world)->run.status == taskmon::RunStatus::completed);
}

TEST_CASE("Guidance not yet delivered survives a stop and reaches the next process's first decide(), once") {
    World world;
    world.ask_at_step = 2;
    world.on_status = [](Sup& sup, const taskmon::StatusTransition& change) {
        if (change.to == AgentStatus::waiting_for_input) {
            sup.inject_guidance("prefer the left arm");  // decide() is not called while the run waits
            sup.stop("shutting down");
        }
    };
    auto first = run_process(world);
    REQUIRE(first.history);
    CHECK(first.history->status == AgentStatus::stopped);
    CHECK(load(world)->pending_guidance == std::vector<std::string>{"prefer the left arm"});

    world.ask_at_step = 0;
    world.guidance_seen.clear();
    world.on_status = [](Sup& sup, const taskmon::StatusTransition& change) {
        if (change.to == AgentStatus::waiting_for_input) sup.resume_with("interrupt-2", "yes");
    };
    auto second = run_process(world);
    REQUIRE(second.history);
    CHECK(second.history->status == AgentStatus::completed);
    REQUIRE_FALSE(world.guidance_seen.empty());
    CHECK(world.guidance_seen.front() == std::vector<std::string>{"prefer the left arm"});
    for (std::size_t i = 1; i < world.guidance_seen.size(); ++i) CHECK(world.guidance_seen[i].empty());
    CHECK(load(world)->pending_guidance.empty());  // consumed by the checkpoint of the step that received it
}

TEST_CASE("Guidance delivered to a checkpointed step is not delivered again after a crash") {
    World world;
    world.guidance_before_run = "start slowly";
    Crash crash;
    crash.only = "checkpoint:before";
    crash.countdown = 2;  // step 1 (which received the guidance) is checkpointed, step 2 is not
    auto first = run_process(world, &crash);
    REQUIRE(crash.fired);
    REQUIRE_FALSE(world.guidance_seen.empty());
    CHECK(world.guidance_seen.front() == std::vector<std::string>{"start slowly"});
    CHECK(load(world)->run.last_step == 1);
    CHECK(load(world)->pending_guidance.empty());

    world.guidance_before_run.clear();
    world.guidance_seen.clear();
    auto second = run_process(world);
    REQUIRE(second.history);
    CHECK(second.history->status == AgentStatus::completed);
    for (const auto& seen : world.guidance_seen) CHECK(seen.empty());
}

namespace {

constexpr std::uint64_t child_steps = 30;

/// The child process of the SIGKILL test: one durable run to its end (or to its kill). Appends each action it
/// executes to `side_file` with O_APPEND before act() returns, so the parent can count executions. Never returns.
[[noreturn]] void child_run(const std::string& path, const std::string& side_file) {
    int code = 3;
    try {
        asio::io_context io;
        auto writer = std::make_shared<taskmon::JournalWriter>(std::make_unique<taskmon::SqliteRunJournal>(path));
        const int side = ::open(side_file.c_str(), O_WRONLY | O_APPEND | O_CREAT, 0600);
        Sup::Functions agent{.perceive = []() -> asio::awaitable<int> { co_return 1; },
                             .decide = [](const int&, const Sup::Context& ctx) -> asio::awaitable<Decision> {
                                 if (ctx.step >= child_steps) co_return Decision::done("finished");
                                 co_return Decision::act(
                                     {"s" + std::to_string(ctx.step) + "-a0", "s" + std::to_string(ctx.step) + "-a1"});
                             },
                             .act = {},
                             .act_with_key = [side](const std::string& action,
                                                    std::string_view) -> asio::awaitable<taskmon::ActionResult> {
                                 // 5 ms each: a whole run takes at least 29 x 2 x 5 = 290 ms, longer than the
                                 // longest wait before a kill (80 ms), so the first child is always killed.
                                 asio::steady_timer timer{co_await asio::this_coro::executor, 5ms};
                                 co_await timer.async_wait(asio::use_awaitable);
                                 const std::string line = action + "\n";
                                 if (::write(side, line.data(), line.size()) != static_cast<ssize_t>(line.size())) {
                                     co_return taskmon::ActionResult::failure("side file write failed");
                                 }
                                 co_return taskmon::ActionResult::ok();
                             }};
        taskmon::DurableRun<std::string> durable{
            .writer = writer,
            .run_id = "killed",
            .serialize_action = [](const std::string& a) { return a; },
            .deserialize_action = [](std::string_view blob) { return std::string{blob}; },
            .serialize_result = [](const std::string& r) { return r; },
            .deserialize_result = [](std::string_view blob) { return std::string{blob}; },
        };
        std::optional<History> history;
        {
            Sup sup{io.get_executor(), agent, std::move(durable), settings(), {}, quiet()};
            std::string error;
            asio::co_spawn(
                io,
                [&]() -> asio::awaitable<void> {
                    try {
                        history = co_await sup.run();
                    } catch (const std::exception& e) {
                        error = e.what();
                    }
                },
                asio::detached);
            while (!history && error.empty()) {
                io.run_for(10ms);
                io.restart();
            }
            // Killed after the run's end was written and before the process exited: the run is done.
            if (error.find("is already completed") != std::string::npos) ::_exit(0);
            if (!error.empty()) {
                std::fprintf(stderr, "child: run() threw: %s\n", error.c_str());
                ::_exit(6);
            }
            while (!history) {
                io.run_for(10ms);
                io.restart();
            }
        }
        writer.reset();
        io.run();
        code = history->status == AgentStatus::completed ? 0 : 4;
    } catch (...) {
        code = 5;
    }
    ::_exit(code);
}

}  // namespace

TEST_CASE("A child process killed with SIGKILL at random points and resumed runs every action at most once") {
#if defined(__SANITIZE_THREAD__)
    // ThreadSanitizer's runtime does not support fork() in a multi-threaded process: it dies.
    WARN("skipped under ThreadSanitizer: fork() of a multi-threaded process");
    return;
#endif
    World world;
    const std::string side_file = world.dir.file("executed.txt");
    const auto seed = std::random_device{}();
    CAPTURE(seed);
    std::mt19937 random{seed};
    std::uniform_int_distribution<int> delay_ms{5, 80};
    int kills = 0;
    bool finished = false;
    for (int attempt = 0; attempt < 21 && !finished; ++attempt) {
        const bool last = attempt == 20;
        const pid_t child = ::fork();
        REQUIRE(child >= 0);
        if (child == 0) child_run(world.path, side_file);
        int status = 0;
        bool reaped = false;
        if (!last) {
            // The child runs for a random 5-80 ms, then is killed (bounded: far below 2 s per kill).
            const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds{delay_ms(random)};
            while (!reaped && std::chrono::steady_clock::now() < deadline) {
                reaped = ::waitpid(child, &status, WNOHANG) == child;
                if (!reaped) ::usleep(1000);
            }
            if (!reaped && ::kill(child, SIGKILL) == 0) ++kills;
        }
        if (!reaped) REQUIRE(::waitpid(child, &status, 0) == child);
        if (WIFEXITED(status)) {
            INFO("child exit code " << WEXITSTATUS(status));
            REQUIRE(WEXITSTATUS(status) == 0);
            finished = true;
        }
    }
    CHECK(finished);
    CHECK(kills > 0);
    std::ifstream in{side_file};
    std::map<std::string, int> executed;
    for (std::string line; std::getline(in, line);) ++executed[line];
    for (const auto& [action, times] : executed) {
        INFO(action);
        CHECK(times == 1);
    }
    CHECK(executed.size() <= 2 * (child_steps - 1));
    taskmon::SqliteRunJournal journal{world.path};
    auto snapshot = journal.load("killed");
    REQUIRE(snapshot);
    CHECK(snapshot->run.status == taskmon::RunStatus::completed);
}
