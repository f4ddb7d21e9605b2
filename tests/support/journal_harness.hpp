// Helpers of the durable-run journal tests (tests_durable): a temporary directory per test, a journal's whole
// visible state as one text for before/after comparisons, and the message of the JournalError a call throws.
#pragma once

#include <taskmon/agent/run_journal.hpp>
#include <taskmon/agent/sqlite_journal.hpp>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include <stdlib.h>  // mkdtemp (POSIX)

namespace taskmon_test {

/// A fresh directory under the system's temporary directory, removed with everything in it at destruction.
class TempDir {
public:
    TempDir() {
        std::string pattern = (std::filesystem::temp_directory_path() / "taskmon-journal-XXXXXX").string();
        if (mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp failed for " + pattern);
        path_ = pattern;
    }
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;
    ~TempDir() {
        std::error_code ignored;
        std::filesystem::permissions(path_, std::filesystem::perms::owner_all, ignored);
        std::filesystem::remove_all(path_, ignored);
    }

    const std::filesystem::path& path() const noexcept { return path_; }
    /// The path of a file `name` in the directory, as a string.
    std::string file(std::string_view name) const { return (path_ / name).string(); }

private:
    std::filesystem::path path_;
};

/// A fixed point in time, so dumps compare equal across runs.
inline std::chrono::system_clock::time_point t0() {
    return std::chrono::system_clock::time_point{std::chrono::seconds{1'800'000'000}};
}

inline taskmon::StepCheckpoint step_checkpoint(std::uint64_t step, std::string history = {},
                                               std::vector<std::string> consumed = {}) {
    return taskmon::StepCheckpoint{.step = step,
                                   .record_blob = "record " + std::to_string(step),
                                   .state_blob = "state " + std::to_string(step),
                                   .history_blob = std::move(history),
                                   .consumed_interrupts = std::move(consumed)};
}

inline taskmon::ActionIntent intent_for(std::string run_id, std::uint64_t step, std::uint32_t index,
                                        std::string action = "move") {
    std::string key = taskmon::idempotency_key(run_id, step, index, action);
    return taskmon::ActionIntent{.run_id = std::move(run_id),
                                 .step = step,
                                 .action_index = index,
                                 .idempotency_key = std::move(key),
                                 .action_blob = std::move(action)};
}

inline std::string describe(const taskmon::JournalActionRecord& action) {
    std::string text = "action " + action.intent.idempotency_key + " run=" + action.intent.run_id +
                       " step=" + std::to_string(action.intent.step) +
                       " index=" + std::to_string(action.intent.action_index) + " blob=" + action.intent.action_blob;
    if (action.result) {
        text += " result=" + std::string(taskmon::to_string(action.result->outcome)) + ":" + action.result->result_blob;
    } else {
        text += " UNKNOWN";
    }
    return text;
}

inline std::string describe(const taskmon::InterruptRecord& interrupt) {
    return "interrupt " + interrupt.interrupt_id + " step=" + std::to_string(interrupt.step) +
           " payload=" + interrupt.payload_blob + (interrupt.value_blob ? " value=" + *interrupt.value_blob : "");
}

/// Everything the journal shows of its runs, one line per fact, for comparing states before and after a call.
inline std::string dump(taskmon::RunJournal& journal) {
    std::string text;
    for (const auto& run : journal.list_runs()) {
        text += "run " + run.run_id + " status=" + std::string(taskmon::to_string(run.status)) +
                " created=" + std::to_string(run.created_unix_ns) + " settings=" + run.settings_blob +
                " result=" + run.result_blob + " last_step=" + std::to_string(run.last_step) + "\n";
        auto snapshot = journal.load(run.run_id);
        if (!snapshot) {
            text += "  (load found nothing)\n";
            continue;
        }
        if (const auto& last = snapshot->last_checkpoint) {
            text += "  checkpoint " + std::to_string(last->step) + " " + last->record_blob + " / " + last->state_blob +
                    " / " + last->history_blob + "\n";
        }
        if (const auto& history = snapshot->last_history) {
            text += "  history " + std::to_string(history->first) + " " + history->second + "\n";
        }
        for (const auto& action : snapshot->open_actions) text += "  open " + describe(action) + "\n";
        if (snapshot->pending_interrupt) text += "  pending " + describe(*snapshot->pending_interrupt) + "\n";
        for (const auto& resumed : snapshot->resumed_interrupts) text += "  resumed " + describe(resumed) + "\n";
        for (const auto& guidance : snapshot->pending_guidance) text += "  guidance " + guidance + "\n";
    }
    return text;
}

/// A journal that forwards every call to `inner`, and lets a test watch or break group(): `groups` holds the number
/// of groups committed (written by the writer thread only), `fail_group` makes group() throw after its body ran.
class ForwardingJournal final : public taskmon::RunJournal {
public:
    explicit ForwardingJournal(std::unique_ptr<taskmon::RunJournal> inner) : inner_(std::move(inner)) {}

    std::vector<std::size_t>* group_sizes = nullptr;  ///< when set, the calls of each group (counted by the hook)
    bool fail_group = false;
    std::size_t calls_in_group = 0;

    void begin_run(std::string_view id, std::string_view settings, std::chrono::system_clock::time_point now) override {
        count();
        inner_->begin_run(id, settings, now);
    }
    void checkpoint(std::string_view id, const taskmon::StepCheckpoint& checkpoint) override {
        count();
        inner_->checkpoint(id, checkpoint);
    }
    bool record_intent(const taskmon::ActionIntent& intent) override {
        count();
        return inner_->record_intent(intent);
    }
    void record_action_result(std::string_view key, taskmon::JournalOutcome outcome, std::string_view blob) override {
        count();
        inner_->record_action_result(key, outcome, blob);
    }
    void record_interrupt(std::string_view id, std::string_view interrupt, std::uint64_t step,
                          std::string_view payload) override {
        count();
        inner_->record_interrupt(id, interrupt, step, payload);
    }
    void resume_interrupt(std::string_view id, std::string_view interrupt, std::string_view value) override {
        count();
        inner_->resume_interrupt(id, interrupt, value);
    }
    void set_status(std::string_view id, taskmon::RunStatus status, std::string_view result) override {
        count();
        inner_->set_status(id, status, result);
    }
    void record_guidance(std::string_view id, std::string_view text) override {
        count();
        inner_->record_guidance(id, text);
    }
    taskmon::RunStatus resume_run(std::string_view id) override {
        count();
        return inner_->resume_run(id);
    }
    void group(const std::function<void()>& body) override {
        calls_in_group = 0;
        inner_->group([&] {
            body();
            if (group_sizes) group_sizes->push_back(calls_in_group);
            if (fail_group) throw std::runtime_error("the group's commit failed");
        });
    }
    std::optional<taskmon::RunSnapshot> load(std::string_view id) override { return inner_->load(id); }
    std::vector<taskmon::CheckpointRecord> checkpoints(std::string_view id, std::uint64_t first,
                                                       std::uint64_t last) override {
        return inner_->checkpoints(id, first, last);
    }
    std::vector<std::pair<std::uint64_t, std::string>> histories(std::string_view id, std::uint64_t first,
                                                                 std::uint64_t last) override {
        return inner_->histories(id, first, last);
    }
    std::vector<taskmon::RunRecord> list_runs() override { return inner_->list_runs(); }
    std::optional<taskmon::JournalActionRecord> find_action(std::string_view key) override {
        return inner_->find_action(key);
    }

private:
    void count() { ++calls_in_group; }

    std::unique_ptr<taskmon::RunJournal> inner_;
};

/// The message of the JournalError `call` throws, or "no exception".
template <class Call>
std::string journal_error_message(Call&& call) {
    try {
        call();
    } catch (const taskmon::JournalError& error) {
        return error.what();
    }
    return "no exception";
}

// One write of the crash matrix: the state it starts from and the call itself.
struct CrashCase {
    std::string point;
    std::function<void(taskmon::RunJournal&)> setup;
    std::function<void(taskmon::RunJournal&)> write;
};

/// The crash matrix: one case per write point, each from a state where the write succeeds.
inline std::vector<CrashCase> crash_cases() {
    auto base = [](taskmon::RunJournal& journal) {
        journal.begin_run("run-1", "settings", t0());
        journal.checkpoint("run-1", step_checkpoint(1, "h1"));
    };
    auto intent = intent_for("run-1", 2, 0);
    auto with_intent = [base, intent](taskmon::RunJournal& journal) {
        base(journal);
        journal.record_intent(intent);
    };
    auto interrupted = [base](taskmon::RunJournal& journal) {
        base(journal);
        journal.record_interrupt("run-1", "ask", 2, "payload");
    };
    auto resumed = [interrupted](taskmon::RunJournal& journal) {
        interrupted(journal);
        journal.resume_interrupt("run-1", "ask", "answer");
    };
    return {
        {"begin_run", base, [](auto& journal) { journal.begin_run("run-2", "other", t0()); }},
        {"checkpoint", resumed, [](auto& journal) { journal.checkpoint("run-1", step_checkpoint(2, "h2", {"ask"})); }},
        {"intent", base, [intent](auto& journal) { journal.record_intent(intent); }},
        {"action_result", with_intent,
         [intent](auto& journal) {
             journal.record_action_result(intent.idempotency_key, taskmon::JournalOutcome::succeeded, "ok");
         }},
        {"interrupt", base, [](auto& journal) { journal.record_interrupt("run-1", "ask", 2, "payload"); }},
        {"resume", interrupted, [](auto& journal) { journal.resume_interrupt("run-1", "ask", "answer"); }},
        {"status", base, [](auto& journal) { journal.set_status("run-1", taskmon::RunStatus::completed, "result"); }},
        {"guidance", base, [](auto& journal) { journal.record_guidance("run-1", "slow down"); }},
        {"resume_run",
         [base](auto& journal) {
             base(journal);
             journal.set_status("run-1", taskmon::RunStatus::stopped, "");
         },
         [](auto& journal) { journal.resume_run("run-1"); }},
    };
}

/// The two states a crash during `crash`'s write may leave, from journals in `dir` that ran without a fault:
/// the dump before the write and the dump after it.
inline std::pair<std::string, std::string> crash_states(const CrashCase& crash, const TempDir& dir) {
    std::pair<std::string, std::string> states;
    {
        taskmon::SqliteRunJournal journal{dir.file("before.db")};
        crash.setup(journal);
        states.first = dump(journal);
    }
    {
        taskmon::SqliteRunJournal journal{dir.file("after.db")};
        crash.setup(journal);
        crash.write(journal);
        states.second = dump(journal);
    }
    return states;
}

/// The case of `point` in the crash matrix.
inline CrashCase crash_case(std::string_view point) {
    for (auto& crash : crash_cases()) {
        if (crash.point == point) return crash;
    }
    throw std::invalid_argument("no crash case " + std::string(point));
}

}  // namespace taskmon_test
