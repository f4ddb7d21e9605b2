// The RunJournal's rules (taskmon/agent/run_journal.hpp), through SqliteRunJournal on a temporary file: every record
// round-trips, steps are numbered without gaps or repeats, an intent gets one result, interrupts pend and resume
// once, statuses move along the table, every refusal changes nothing, and a crash at any write point leaves the
// state before or after the write, never between.
#include "journal_harness.hpp"
#include "taskmon_catch.hpp"

#include <taskmon/agent/run_journal.hpp>
#include <taskmon/agent/sqlite_journal.hpp>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <functional>
#include <limits>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

using taskmon::JournalOutcome;
using taskmon::RunStatus;
using taskmon::SqliteRunJournal;
using namespace taskmon_test;

namespace {

bool contains(const std::string& text, std::string_view part) { return text.find(part) != std::string::npos; }

}  // namespace

TEST_CASE("idempotency keys are FNV-1a 128 over a fixed encoding, pinned to fixed values") {
    // Published FNV-1a 128 test vectors (the empty string is the offset basis).
    taskmon::detail::Fnv1a128 empty;
    CHECK(empty.hex() == "6c62272e07bb014262b821756295c58d");
    taskmon::detail::Fnv1a128 a;
    a.add("a");
    CHECK(a.hex() == "d228cb696f1a8caf78912b704e4a8964");
    taskmon::detail::Fnv1a128 foobar;
    foobar.add("foobar");
    CHECK(foobar.hex() == "343e1662793c64bf6f0d3597ba446f18");
    CHECK(foobar.value().first == 0x343e1662793c64bfU);
    CHECK(foobar.value().second == 0x6f0d3597ba446f18U);

    // Computed by an independent implementation (Python integers) of the documented encoding: these values must
    // never change, or journals written by an earlier version would no longer match their keys.
    CHECK(taskmon::idempotency_key("run-1", 1, 0, "move") == "i1-12d8d32ba0fc137ce5cc3c8f819bbe36");
    CHECK(taskmon::idempotency_key("run-1", 1, 1, "move") == "i1-f47343c90ef8d2cf8bd6f347f3ac83bb");
    CHECK(taskmon::idempotency_key("", 0, 0, "") == "i1-4e42c7b6aef55ff27a90094bd88094da");
    CHECK(taskmon::idempotency_key("robot/7", 123456789012, 4294967295U, std::string_view{"\0\xffgrip", 6}) ==
          "i1-c9c3740e4901157292a71f7fde447cf7");
    // Fields are length-prefixed: moving a byte from one field to the next changes the key.
    CHECK(taskmon::idempotency_key("ab", 1, 0, "c") != taskmon::idempotency_key("a", 1, 0, "bc"));
}

TEST_CASE("every record round-trips through the file") {
    TempDir dir;
    std::string path = dir.file("journal.db");
    auto first = intent_for("run-1", 2, 0, "grip");
    auto second = intent_for("run-1", 2, 1, "lift");
    {
        SqliteRunJournal journal{path};
        journal.begin_run("run-1", std::string("settings\0with nul", 17), t0());
        journal.checkpoint("run-1", step_checkpoint(1, "history 1"));
        CHECK(journal.record_intent(first));
        journal.record_action_result(first.idempotency_key, JournalOutcome::succeeded, "gripped");
        CHECK(journal.record_intent(second));
        journal.record_interrupt("run-1", "ask-1", 2, "may I lift?");
        journal.resume_interrupt("run-1", "ask-1", "yes");
        journal.record_interrupt("run-1", "ask-2", 2, "really?");
        journal.begin_run("run-2", "", t0() + std::chrono::seconds{1});
        journal.set_status("run-2", RunStatus::completed, "done");
    }
    SqliteRunJournal journal{path};
    auto runs = journal.list_runs();
    REQUIRE(runs.size() == 2);
    CHECK(runs[0].run_id == "run-1");
    CHECK(runs[0].status == RunStatus::interrupted);
    CHECK(runs[0].created_unix_ns == 1'800'000'000'000'000'000);
    CHECK(runs[0].settings_blob == std::string("settings\0with nul", 17));
    CHECK(runs[0].last_step == 1);
    CHECK(runs[1].run_id == "run-2");
    CHECK(runs[1].status == RunStatus::completed);
    CHECK(runs[1].result_blob == "done");

    auto snapshot = journal.load("run-1");
    REQUIRE(snapshot);
    REQUIRE(snapshot->last_checkpoint);
    CHECK(snapshot->last_checkpoint->step == 1);
    CHECK(snapshot->last_checkpoint->record_blob == "record 1");
    CHECK(snapshot->last_checkpoint->state_blob == "state 1");
    CHECK(snapshot->last_checkpoint->history_blob == "history 1");
    REQUIRE(snapshot->last_history);
    CHECK(snapshot->last_history->first == 1);
    REQUIRE(snapshot->open_actions.size() == 2);
    CHECK(describe(snapshot->open_actions[0]) ==
          describe(taskmon::JournalActionRecord{first, {{JournalOutcome::succeeded, "gripped"}}}));
    CHECK(snapshot->open_actions[1].unknown());
    CHECK(snapshot->open_actions[1].intent.action_blob == "lift");
    REQUIRE(snapshot->pending_interrupt);
    CHECK(snapshot->pending_interrupt->interrupt_id == "ask-2");
    CHECK(snapshot->pending_interrupt->payload_blob == "really?");
    CHECK_FALSE(snapshot->pending_interrupt->value_blob);
    REQUIRE(snapshot->resumed_interrupts.size() == 1);
    CHECK(snapshot->resumed_interrupts[0].interrupt_id == "ask-1");
    CHECK(snapshot->resumed_interrupts[0].value_blob == "yes");

    auto found = journal.find_action(second.idempotency_key);
    REQUIRE(found);
    CHECK(found->intent.step == 2);
    CHECK(found->intent.action_index == 1);
    CHECK_FALSE(journal.find_action("i1-none"));
    CHECK_FALSE(journal.load("run-3"));
}

TEST_CASE("a checkpoint is the last step plus one, a gap or a repeat names both numbers and changes nothing") {
    TempDir dir;
    SqliteRunJournal journal{dir.file("journal.db")};
    journal.begin_run("run-1", "s", t0());
    CHECK(contains(journal_error_message([&] { journal.checkpoint("run-1", step_checkpoint(0)); }),
                   "expects step 1 after step 0, got step 0 (a repeat)"));
    journal.checkpoint("run-1", step_checkpoint(1));
    journal.checkpoint("run-1", step_checkpoint(2));
    std::string before = dump(journal);
    CHECK(contains(journal_error_message([&] { journal.checkpoint("run-1", step_checkpoint(4)); }),
                   "run 'run-1' expects step 3 after step 2, got step 4 (a gap)"));
    CHECK(contains(journal_error_message([&] { journal.checkpoint("run-1", step_checkpoint(2)); }),
                   "expects step 3 after step 2, got step 2 (a repeat)"));
    CHECK(contains(journal_error_message([&] { journal.checkpoint("run-9", step_checkpoint(1)); }),
                   "checkpoint: no run 'run-9'"));
    CHECK(dump(journal) == before);
    // The history is optional per checkpoint: the snapshot keeps the latest that had one.
    journal.checkpoint("run-1", step_checkpoint(3, "history 3"));
    journal.checkpoint("run-1", step_checkpoint(4));
    auto snapshot = journal.load("run-1");
    REQUIRE(snapshot);
    CHECK(snapshot->last_checkpoint->step == 4);
    CHECK(snapshot->last_checkpoint->history_blob.empty());
    REQUIRE(snapshot->last_history);
    CHECK(*snapshot->last_history == std::pair<std::uint64_t, std::string>{3, "history 3"});
}

TEST_CASE("checkpoints() reads a range of steps, histories() only the checkpoints that carry a history") {
    TempDir dir;
    taskmon::SqliteRunJournal journal{dir.file("journal.db")};
    journal.begin_run("run-1", "s", t0());
    journal.begin_run("run-2", "s", t0());
    for (std::uint64_t step = 1; step <= 6; ++step) {
        journal.checkpoint("run-1", step_checkpoint(step, step % 2 == 0 ? "history " + std::to_string(step) : ""));
    }
    journal.checkpoint("run-2", step_checkpoint(1, "other run"));
    auto range = journal.checkpoints("run-1", 2, 4);
    REQUIRE(range.size() == 3);
    for (std::size_t i = 0; i < range.size(); ++i) {
        const std::uint64_t step = i + 2;
        CHECK(range[i].step == step);
        CHECK(range[i].record_blob == "record " + std::to_string(step));
        CHECK(range[i].state_blob == "state " + std::to_string(step));
    }
    CHECK(range[0].history_blob == "history 2");
    CHECK(range[1].history_blob.empty());
    CHECK(range[2].history_blob == "history 4");
    CHECK(journal.checkpoints("run-1", 5, std::numeric_limits<std::uint64_t>::max()).size() == 2);  // to the end
    CHECK(journal.checkpoints("run-1", 7, 9).empty());
    CHECK(journal.checkpoints("run-9", 1, 9).empty());
    using Histories = std::vector<std::pair<std::uint64_t, std::string>>;
    CHECK(journal.histories("run-1", 1, 6) == Histories{{2, "history 2"}, {4, "history 4"}, {6, "history 6"}});
    CHECK(journal.histories("run-1", 3, 5) == Histories{{4, "history 4"}});
    CHECK(journal.histories("run-2", 1, 1) == Histories{{1, "other run"}});
}

TEST_CASE("begin_run refuses an empty or existing id, and the error names the file") {
    TempDir dir;
    std::string path = dir.file("journal.db");
    SqliteRunJournal journal{path};
    journal.begin_run("run-1", "s", t0());
    std::string before = dump(journal);
    auto message = journal_error_message([&] { journal.begin_run("run-1", "other", t0()); });
    CHECK(contains(message, path));
    CHECK(contains(message, "begin_run: run 'run-1' exists already"));
    CHECK(contains(journal_error_message([&] { journal.begin_run("", "s", t0()); }), "the run id is empty"));
    CHECK(dump(journal) == before);
}

TEST_CASE("an intent then its result, and a second result or an unknown key is refused") {
    TempDir dir;
    SqliteRunJournal journal{dir.file("journal.db")};
    journal.begin_run("run-1", "s", t0());
    auto intent = intent_for("run-1", 1, 0);
    CHECK(journal.record_intent(intent));
    auto unknown = journal.find_action(intent.idempotency_key);
    REQUIRE(unknown);
    CHECK(unknown->unknown());
    journal.record_action_result(intent.idempotency_key, JournalOutcome::failed, "blocked");
    auto done = journal.find_action(intent.idempotency_key);
    REQUIRE(done);
    REQUIRE(done->result);
    CHECK(done->result->outcome == JournalOutcome::failed);
    CHECK(done->result->result_blob == "blocked");

    std::string before = dump(journal);
    CHECK(contains(journal_error_message(
                       [&] { journal.record_action_result(intent.idempotency_key, JournalOutcome::succeeded, "x"); }),
                   "has a result already (failed)"));
    CHECK(contains(
        journal_error_message([&] { journal.record_action_result("i1-nothing", JournalOutcome::succeeded, "x"); }),
        "no intent has idempotency key 'i1-nothing'"));
    CHECK(dump(journal) == before);
    // A result may arrive after the run ended: what the action did is a fact.
    auto late = intent_for("run-1", 1, 1);
    journal.record_intent(late);
    journal.set_status("run-1", RunStatus::stopped, "");
    journal.record_action_result(late.idempotency_key, JournalOutcome::succeeded, "late");
    CHECK(journal.find_action(late.idempotency_key)->result->result_blob == "late");
}

TEST_CASE("an intent without a result is visible as unknown after reopening until a checkpoint closes its step") {
    TempDir dir;
    std::string path = dir.file("journal.db");
    auto intent = intent_for("run-1", 1, 0);
    {
        SqliteRunJournal journal{path};
        journal.begin_run("run-1", "s", t0());
        journal.record_intent(intent);
    }
    {
        SqliteRunJournal journal{path};
        auto snapshot = journal.load("run-1");
        REQUIRE(snapshot);
        REQUIRE(snapshot->open_actions.size() == 1);
        CHECK(snapshot->open_actions[0].unknown());
        CHECK(snapshot->open_actions[0].intent.idempotency_key == intent.idempotency_key);
        // reconcile() decided; the step is finished, and its actions are no longer open.
        journal.record_action_result(intent.idempotency_key, JournalOutcome::failed, "reconciled: not done");
        journal.checkpoint("run-1", step_checkpoint(1));
        CHECK(journal.load("run-1")->open_actions.empty());
        CHECK(journal.find_action(intent.idempotency_key));
        CHECK(contains(journal_error_message([&] { journal.record_intent(intent_for("run-1", 1, 1)); }),
                       "step 1 of run 'run-1' is checkpointed already (last step 1)"));
    }
}

TEST_CASE("the same intent again is idempotent, its key elsewhere or another key in its slot is refused") {
    TempDir dir;
    SqliteRunJournal journal{dir.file("journal.db")};
    journal.begin_run("run-1", "s", t0());
    auto intent = intent_for("run-1", 1, 0);
    CHECK(journal.record_intent(intent));
    std::string before = dump(journal);
    CHECK_FALSE(journal.record_intent(intent));
    CHECK(dump(journal) == before);

    auto moved = intent;
    moved.action_index = 1;
    CHECK(contains(journal_error_message([&] { journal.record_intent(moved); }),
                   "is recorded for run 'run-1' step 1 action 0, not for run 'run-1' step 1 action 1"));
    auto other_key = intent_for("run-1", 1, 0, "other action");
    CHECK(contains(journal_error_message([&] { journal.record_intent(other_key); }),
                   "step 1 action 0 has an intent with key '" + intent.idempotency_key + "' already"));
    auto other_blob = intent;
    other_blob.action_blob = "changed";
    CHECK(contains(journal_error_message([&] { journal.record_intent(other_blob); }), "with another action blob"));
    auto empty_key = intent_for("run-1", 1, 5);
    empty_key.idempotency_key.clear();
    CHECK(contains(journal_error_message([&] { journal.record_intent(empty_key); }), "idempotency key is empty"));
    CHECK(contains(journal_error_message([&] { journal.record_intent(intent_for("run-2", 1, 0)); }),
                   "record_intent: no run 'run-2'"));
    CHECK(dump(journal) == before);
    // Also once the run moved on: a resume may repeat an intent whose step was checkpointed since.
    journal.checkpoint("run-1", step_checkpoint(1));
    before = dump(journal);
    CHECK_FALSE(journal.record_intent(intent));
    CHECK(dump(journal) == before);
}

TEST_CASE("an interrupt pends, resumes once, and a checkpoint consumes its value") {
    TempDir dir;
    std::string path = dir.file("journal.db");
    {
        SqliteRunJournal journal{path};
        journal.begin_run("run-1", "s", t0());
        journal.record_interrupt("run-1", "ask-1", 1, "which room?");
    }
    SqliteRunJournal journal{path};
    auto paused = journal.load("run-1");
    REQUIRE(paused);
    CHECK(paused->run.status == RunStatus::interrupted);
    REQUIRE(paused->pending_interrupt);
    CHECK(paused->pending_interrupt->payload_blob == "which room?");

    std::string before = dump(journal);
    // While interrupted, the run takes no step, no action and no second interrupt.
    CHECK(contains(journal_error_message([&] { journal.checkpoint("run-1", step_checkpoint(1)); }),
                   "run 'run-1' is interrupted, not running"));
    CHECK(contains(journal_error_message([&] { journal.record_intent(intent_for("run-1", 1, 0)); }),
                   "is interrupted, not running"));
    CHECK(contains(journal_error_message([&] { journal.record_interrupt("run-1", "ask-2", 1, "p"); }),
                   "record_interrupt: run 'run-1' has a pending interrupt 'ask-1' already; resume it before asking "
                   "'ask-2'"));
    CHECK(contains(journal_error_message([&] { journal.resume_interrupt("run-1", "ask-9", "v"); }),
                   "resume_interrupt: run 'run-1' has no interrupt 'ask-9'"));
    CHECK(dump(journal) == before);

    journal.resume_interrupt("run-1", "ask-1", "kitchen");
    before = dump(journal);
    CHECK(contains(journal_error_message([&] { journal.resume_interrupt("run-1", "ask-1", "hall"); }),
                   "interrupt 'ask-1' of run 'run-1' is resumed already"));
    CHECK(contains(journal_error_message([&] { journal.record_interrupt("run-1", "ask-1", 1, "again"); }),
                   "has an interrupt 'ask-1' already"));
    CHECK(dump(journal) == before);
    auto resumed = journal.load("run-1");
    CHECK(resumed->run.status == RunStatus::running);
    CHECK_FALSE(resumed->pending_interrupt);
    REQUIRE(resumed->resumed_interrupts.size() == 1);
    CHECK(resumed->resumed_interrupts[0].value_blob == "kitchen");

    CHECK(contains(journal_error_message([&] { journal.checkpoint("run-1", step_checkpoint(1, "", {"ask-7"})); }),
                   "interrupt 'ask-7' of run 'run-1' does not exist"));
    CHECK(dump(journal) == before);
    journal.checkpoint("run-1", step_checkpoint(1, "", {"ask-1"}));
    CHECK(journal.load("run-1")->resumed_interrupts.empty());
    journal.record_interrupt("run-1", "ask-2", 2, "p");
    journal.resume_interrupt("run-1", "ask-2", "v");
    CHECK(contains(journal_error_message([&] { journal.checkpoint("run-1", step_checkpoint(2, "", {"ask-1"})); }),
                   "interrupt 'ask-1' of run 'run-1' is consumed already"));
    // An interrupted run can be stopped; its interrupt cannot be resumed until the run is reopened, and then
    // it is pending again.
    journal.record_interrupt("run-1", "ask-3", 2, "p");
    journal.set_status("run-1", RunStatus::stopped, "");
    CHECK(contains(journal_error_message([&] { journal.resume_interrupt("run-1", "ask-3", "v"); }),
                   "run 'run-1' is stopped, not interrupted: interrupt 'ask-3' cannot be resumed"));
    CHECK(journal.resume_run("run-1") == RunStatus::interrupted);
    REQUIRE(journal.load("run-1")->pending_interrupt);
    CHECK(journal.load("run-1")->pending_interrupt->interrupt_id == "ask-3");
    journal.resume_interrupt("run-1", "ask-3", "v");
    CHECK(journal.load("run-1")->run.status == RunStatus::running);
}

TEST_CASE("guidance is kept in order until the checkpoint of the step that received it, across a reopen") {
    TempDir dir;
    const std::string path = dir.file("journal.db");
    {
        SqliteRunJournal journal{path};
        journal.begin_run("run-1", "s", t0());
        journal.begin_run("run-2", "s", t0());
        journal.record_guidance("run-1", "first");
        journal.record_guidance("run-1", "second");
        journal.record_guidance("run-2", "elsewhere");
        journal.record_guidance("run-1", "third");
    }
    SqliteRunJournal journal{path};
    CHECK(journal.load("run-1")->pending_guidance == std::vector<std::string>{"first", "second", "third"});
    std::string before = dump(journal);
    auto too_many = step_checkpoint(1);
    too_many.consumed_guidance = 4;
    CHECK(contains(journal_error_message([&] { journal.checkpoint("run-1", too_many); }),
                   "checkpoint: step 1 of run 'run-1' consumed 4 guidance items, but 3 are pending"));
    CHECK(dump(journal) == before);
    auto two = step_checkpoint(1);
    two.consumed_guidance = 2;
    journal.checkpoint("run-1", two);
    CHECK(journal.load("run-1")->pending_guidance == std::vector<std::string>{"third"});
    CHECK(journal.load("run-2")->pending_guidance == std::vector<std::string>{"elsewhere"});
    // Kept while the run waits or is stopped; refused once it ended, and for an unknown run.
    journal.record_interrupt("run-1", "ask", 2, "p");
    journal.record_guidance("run-1", "while waiting");
    journal.set_status("run-1", RunStatus::stopped, "");
    journal.record_guidance("run-1", "while stopped");
    CHECK(journal.load("run-1")->pending_guidance ==
          std::vector<std::string>{"third", "while waiting", "while stopped"});
    journal.set_status("run-1", RunStatus::failed, "");
    before = dump(journal);
    CHECK(contains(journal_error_message([&] { journal.record_guidance("run-1", "late"); }),
                   "record_guidance: run 'run-1' is failed; guidance is kept only for a run that has not ended"));
    CHECK(contains(journal_error_message([&] { journal.record_guidance("run-9", "x"); }),
                   "record_guidance: no run 'run-9'"));
    CHECK(dump(journal) == before);
}

TEST_CASE("resume_run reopens a stopped run, and refuses any other, changing nothing") {
    TempDir dir;
    SqliteRunJournal journal{dir.file("journal.db")};
    journal.begin_run("run-1", "s", t0());
    journal.checkpoint("run-1", step_checkpoint(1));
    std::string before = dump(journal);
    CHECK(contains(journal_error_message([&] { journal.resume_run("run-1"); }),
                   "resume_run: run 'run-1' is running, not stopped"));
    CHECK(contains(journal_error_message([&] { journal.resume_run("run-9"); }), "resume_run: no run 'run-9'"));
    CHECK(dump(journal) == before);
    journal.set_status("run-1", RunStatus::stopped, "partial");
    CHECK(journal.resume_run("run-1") == RunStatus::running);
    auto snapshot = journal.load("run-1");
    CHECK(snapshot->run.status == RunStatus::running);
    CHECK(snapshot->run.last_step == 1);
    journal.checkpoint("run-1", step_checkpoint(2));  // steps go on from the last checkpoint
    // A stopped run can be abandoned; a failed or completed one is not reopened.
    journal.set_status("run-1", RunStatus::stopped, "");
    journal.set_status("run-1", RunStatus::failed, "abandoned");
    before = dump(journal);
    CHECK(contains(journal_error_message([&] { journal.resume_run("run-1"); }),
                   "resume_run: run 'run-1' is failed, not stopped"));
    CHECK(dump(journal) == before);
}

TEST_CASE("the status table: every pair of statuses, and a refusal changes nothing") {
    using S = RunStatus;
    const std::vector<S> all{S::running, S::interrupted, S::stopped, S::completed, S::failed};
    // clang-format off
    const std::vector<std::pair<S, S>> allowed{
        {S::running, S::interrupted}, {S::running, S::stopped}, {S::running, S::completed}, {S::running, S::failed},
        {S::interrupted, S::running}, {S::interrupted, S::stopped}, {S::interrupted, S::failed},
        {S::stopped, S::running}, {S::stopped, S::interrupted}, {S::stopped, S::failed}};
    // clang-format on
    for (S from : all) {
        for (S to : all) {
            bool expected = std::find(allowed.begin(), allowed.end(), std::pair{from, to}) != allowed.end();
            INFO(taskmon::to_string(from) << " -> " << taskmon::to_string(to));
            CHECK(taskmon::is_allowed_run_transition(from, to) == expected);
        }
        CHECK(taskmon::run_status_from_string(taskmon::to_string(from)) == from);
    }
    CHECK_FALSE(taskmon::run_status_from_string("paused"));

    TempDir dir;
    SqliteRunJournal journal{dir.file("journal.db")};
    journal.begin_run("run-1", "s", t0());
    std::string before = dump(journal);
    CHECK(contains(journal_error_message([&] { journal.set_status("run-1", S::interrupted, ""); }),
                   "cannot go from running to interrupted (record_interrupt does that)"));
    CHECK(dump(journal) == before);
    journal.set_status("run-1", S::completed, "the result");
    before = dump(journal);
    for (S to : all) {
        INFO(taskmon::to_string(to));
        CHECK(contains(journal_error_message([&] { journal.set_status("run-1", to, "other"); }),
                       "set_status: run 'run-1' cannot go from completed to " + std::string(taskmon::to_string(to))));
    }
    CHECK(dump(journal) == before);
    CHECK(journal.load("run-1")->run.result_blob == "the result");
    journal.begin_run("run-2", "s", t0());
    journal.record_interrupt("run-2", "ask", 1, "p");
    CHECK(contains(journal_error_message([&] { journal.set_status("run-2", S::completed, ""); }),
                   "cannot go from interrupted to completed"));
    CHECK(contains(journal_error_message([&] { journal.set_status("run-2", S::running, ""); }),
                   "(resume_interrupt does that)"));
    journal.set_status("run-2", S::failed, "gave up");
    CHECK(journal.load("run-2")->run.status == S::failed);
}

namespace {

struct SimulatedCrash : std::runtime_error {
    using std::runtime_error::runtime_error;
};

// Throws from the fault hook at each of the write's three points, then reopens the file: before and commit must
// leave the state before the write (the transaction rolled back), after the state after it.
void check_crash_points(std::string_view point) {
    const CrashCase crash = crash_case(point);
    TempDir dir;
    const auto [before, after] = crash_states(crash, dir);
    REQUIRE(before != after);
    for (std::string_view stage : {"before", "commit", "after"}) {
        std::string armed = crash.point + ":" + std::string(stage);
        INFO("crash at " << armed);
        std::string path = dir.file("crash-" + std::string(stage) + ".db");
        bool hit = false;
        {
            SqliteRunJournal journal{path};
            crash.setup(journal);
        }
        {
            taskmon::SqliteJournalOptions options;
            options.fault_hook = [&](std::string_view at) {
                if (at == armed) {
                    hit = true;
                    throw SimulatedCrash{armed};
                }
            };
            SqliteRunJournal journal{path, options};
            CHECK_THROWS_AS(crash.write(journal), SimulatedCrash);
        }
        CHECK(hit);
        SqliteRunJournal reopened{path};
        CHECK(dump(reopened) == (stage == "after" ? after : before));
    }
}

}  // namespace

TEST_CASE("a crash around begin_run leaves the state before or after it, never between") {
    check_crash_points("begin_run");
}
TEST_CASE("a crash around a checkpoint leaves the state before or after it, never between") {
    check_crash_points("checkpoint");
}
TEST_CASE("a crash around an intent leaves the state before or after it, never between") {
    check_crash_points("intent");
}
TEST_CASE("a crash around an action result leaves the state before or after it, never between") {
    check_crash_points("action_result");
}
TEST_CASE("a crash around an interrupt leaves the state before or after it, never between") {
    check_crash_points("interrupt");
}
TEST_CASE("a crash around a resume leaves the state before or after it, never between") {
    check_crash_points("resume");
}
TEST_CASE("a crash around a status change leaves the state before or after it, never between") {
    check_crash_points("status");
}
TEST_CASE("a crash around a resume_run leaves the state before or after it, never between") {
    check_crash_points("resume_run");
}
TEST_CASE("a crash around a guidance write leaves the state before or after it, never between") {
    check_crash_points("guidance");
}
