// taskmon — coroutine supervision for standalone Asio.
// SPDX-License-Identifier: MIT
//
// RunJournal: the storage layer of durable agent runs (docs/durable_runs.md). Untyped: the user's settings,
// actions, results and state arrive as blobs already serialized; the journal only enforces the order of the
// records and keeps them across a crash of the process.
//
// What is written when, for one run:
//
//   begin_run ──► [ record_intent ──► (act) ──► record_action_result ]* ──► checkpoint(step n) ──► ...
//                        │ synced before the action is dispatched: a crash after it and before the result
//                        │ leaves the action UNKNOWN (intent, no result) — never silently run again
//   record_interrupt ──► (status interrupted) ──► resume_interrupt ──► (running) ──► checkpoint consumes it
//   record_guidance (any time before the end) ──► the checkpoint of the step whose decide() received it consumes it
//   set_status(stopped) ──► resume_run ──► (running, or interrupted when an interrupt is pending)
//   set_status(completed | failed, result)
//
// Invariants every implementation keeps (the tests in tests/test_run_journal.cpp check them):
//   - every call is atomic: it either changes everything it documents or throws JournalError and changes nothing
//     (SqliteRunJournal's test fault hook may also throw once the change is committed, at its "after" points);
//   - a call returns only once its change is as durable as the implementation promises (SqliteRunJournal: past
//     an application crash, and past a power loss with full_sync);
//   - checkpoints of a run are numbered 1, 2, 3, ... without gaps or repeats; an action belongs to a step after
//     the last checkpoint, and at most one intent exists per (run, step, action index) and per idempotency key;
//   - an intent receives at most one result; a run has at most one pending interrupt; guidance is consumed in the
//     order it was recorded, each item once;
//   - the run's status changes only along is_allowed_run_transition.
#pragma once

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace taskmon {

/// The one exception type of the journal: a refused call (a rule above broken, an unknown id) or a storage
/// failure. what() names the file, what failed and, for a storage failure, SQLite's message and extended code.
class JournalError : public std::runtime_error {
public:
    /// `sqlite_code` is SQLite's extended result code, 0 for a refused call that never reached SQLite.
    JournalError(std::string path, const std::string& what_failed, int sqlite_code = 0)
        : std::runtime_error(compose(path, what_failed)), path_(std::move(path)), sqlite_code_(sqlite_code) {}

    /// The journal's file (for an in-memory or other journal, whatever names it).
    const std::string& path() const noexcept { return path_; }
    /// SQLite's extended result code (SQLITE_FULL = 13, SQLITE_CORRUPT = 11, SQLITE_NOTADB = 26, ...), or 0.
    int sqlite_code() const noexcept { return sqlite_code_; }

private:
    static std::string compose(const std::string& path, const std::string& what_failed) {
        return "run journal " + path + ": " + what_failed;
    }

    std::string path_;
    int sqlite_code_;
};

/// Where a durable run is. Terminal: completed, failed.
enum class RunStatus : std::uint8_t {
    running,      ///< begun; steps are being taken (also after a crash, until someone resumes it)
    interrupted,  ///< paused durably on a pending interrupt until resume_interrupt()
    stopped,      ///< stopped cleanly (a stop or shutdown of its process); resume_run() reopens it
    completed,    ///< terminal: the agent said done
    failed,       ///< terminal: the run gave up, or was abandoned
};

constexpr std::string_view to_string(RunStatus status) noexcept {
    switch (status) {
        case RunStatus::running: return "running";
        case RunStatus::interrupted: return "interrupted";
        case RunStatus::stopped: return "stopped";
        case RunStatus::completed: return "completed";
        case RunStatus::failed: return "failed";
    }
    return "unknown";
}

/// The status named `text` (as to_string writes it), or nullopt.
constexpr std::optional<RunStatus> run_status_from_string(std::string_view text) noexcept {
    for (auto status :
         {RunStatus::running, RunStatus::interrupted, RunStatus::stopped, RunStatus::completed, RunStatus::failed}) {
        if (to_string(status) == text) return status;
    }
    return std::nullopt;
}

constexpr bool is_terminal(RunStatus status) noexcept {
    return status == RunStatus::completed || status == RunStatus::failed;
}

/// The transition table of a durable run. A transition to the same status is never allowed.
/// running → interrupted is record_interrupt's, interrupted → running resume_interrupt's, and stopped → running or
/// interrupted resume_run's alone; set_status refuses those, so that a pending interrupt is never left behind nor
/// made up.
constexpr bool is_allowed_run_transition(RunStatus from, RunStatus to) noexcept {
    using S = RunStatus;
    switch (from) {
        case S::running: return to == S::interrupted || to == S::stopped || to == S::completed || to == S::failed;
        // An interrupted or stopped run can be abandoned (failed) but not completed: completing needs a step.
        case S::interrupted: return to == S::running || to == S::stopped || to == S::failed;
        case S::stopped: return to == S::running || to == S::interrupted || to == S::failed;
        case S::completed:
        case S::failed: return false;
    }
    return false;
}

/// How a dispatched action ended, as the caller reports it.
enum class JournalOutcome : std::uint8_t {
    succeeded,
    failed,
};

constexpr std::string_view to_string(JournalOutcome outcome) noexcept {
    return outcome == JournalOutcome::succeeded ? "succeeded" : "failed";
}

/// One run as stored.
struct RunRecord {
    std::string run_id;
    RunStatus status = RunStatus::running;
    std::int64_t created_unix_ns = 0;  ///< the `now` given to begin_run, in nanoseconds since the Unix epoch
    std::string settings_blob;         ///< the user's, as given to begin_run
    std::string result_blob;           ///< the last set_status's; empty before
    std::uint64_t last_step = 0;       ///< the step of the last checkpoint; 0 before the first
};

/// What a finished step leaves behind. `history_blob` empty means "no history with this checkpoint" (the
/// caller may write the History every N steps); `consumed_interrupts` are the ids of resumed interrupts whose
/// values this step used: they stop appearing in RunSnapshot::resumed_interrupts.
struct StepCheckpoint {
    std::uint64_t step = 0;
    std::string record_blob;  ///< the step's own record (what it observed, decided, did)
    std::string state_blob;   ///< the agent's state after the step: what a resume starts from
    std::string history_blob;
    std::vector<std::string> consumed_interrupts;
    std::uint32_t consumed_guidance = 0;  ///< how many of the oldest unconsumed guidance items this step received
};

/// The intent to dispatch one action, recorded (and synced) before it is dispatched.
struct ActionIntent {
    std::string run_id;
    std::uint64_t step = 0;          ///< after the run's last checkpoint
    std::uint32_t action_index = 0;  ///< the action's place in its decision
    std::string idempotency_key;     ///< usually idempotency_key(run_id, step, action_index, action_blob)
    std::string action_blob;
};

/// The result of an action, once it returned.
struct ActionResultRecord {
    JournalOutcome outcome = JournalOutcome::succeeded;
    std::string result_blob;
};

/// An intent and, when the action returned, its result. Without a result the action is UNKNOWN: it may have
/// run, partly or not at all; the user's reconcile() decides (docs/durable_runs.md). Not history.hpp's
/// ActionRecord<Action> (the Supervisor's record of an action): both are in namespace taskmon.
struct JournalActionRecord {
    ActionIntent intent;
    std::optional<ActionResultRecord> result;

    bool unknown() const noexcept { return !result.has_value(); }
};

/// An interrupt: decide() asked a human; `value_blob` is the answer once resume_interrupt gave it.
struct InterruptRecord {
    std::string run_id;
    std::string interrupt_id;
    std::uint64_t step = 0;  ///< the step that asked
    std::string payload_blob;
    std::optional<std::string> value_blob;  ///< set by resume_interrupt
};

/// A stored checkpoint (the step's number and its blobs).
struct CheckpointRecord {
    std::uint64_t step = 0;
    std::string record_blob;
    std::string state_blob;
    std::string history_blob;  ///< empty when that checkpoint carried none
};

/// Everything a resume needs, read in one transaction.
struct RunSnapshot {
    RunRecord run;
    std::optional<CheckpointRecord> last_checkpoint;
    /// The latest non-empty history blob of any checkpoint and its step (not necessarily the last checkpoint).
    std::optional<std::pair<std::uint64_t, std::string>> last_history;
    /// Every action of the steps after the last checkpoint, ordered by (step, action_index); unknown() ones too.
    std::vector<JournalActionRecord> open_actions;
    std::optional<InterruptRecord> pending_interrupt;
    /// Interrupts resumed and not yet consumed by a checkpoint, in the order they were resumed.
    std::vector<InterruptRecord> resumed_interrupts;
    /// Guidance recorded and not yet consumed by a checkpoint, oldest first.
    std::vector<std::string> pending_guidance;
};

/// The storage of durable runs. Synchronous and not thread-safe: one thread at a time (JournalWriter gives it one
/// of its own). Each call is atomic and durable when it returns, or throws JournalError and changed nothing.
class RunJournal {
public:
    virtual ~RunJournal() = default;

    /// Stores a new run, status running, last_step 0. Throws when `run_id` is empty or already exists.
    virtual void begin_run(std::string_view run_id, std::string_view settings_blob,
                           std::chrono::system_clock::time_point now) = 0;
    /// Stores a finished step. The run must be running and `checkpoint.step` its last_step + 1 (a gap or repeat
    /// throws, naming both numbers); every consumed interrupt must be resumed and not consumed yet, and the run
    /// must have at least `consumed_guidance` unconsumed guidance items.
    virtual void checkpoint(std::string_view run_id, const StepCheckpoint& checkpoint) = 0;
    /// Stores an intent before its action is dispatched; returns true. The run must be running and the step after
    /// its last checkpoint. The same intent again (same key, slot and action) changes nothing and returns false,
    /// whatever the run's status and last step are by then;
    /// the key in another slot, another key in the same slot, or the same key and slot with another action throw.
    virtual bool record_intent(const ActionIntent& intent) = 0;
    /// Stores the result of the intent with `key`: exactly once. Throws for an unknown key or a second result.
    /// Allowed in any status: an action may return after its run was stopped, and what it did is a fact.
    virtual void record_action_result(std::string_view key, JournalOutcome outcome, std::string_view result_blob) = 0;
    /// Stores a pending interrupt asked at `step` and sets the run interrupted. The run must be running, have no
    /// pending interrupt, and `step` must be after its last checkpoint; `interrupt_id` unique within the run.
    virtual void record_interrupt(std::string_view run_id, std::string_view interrupt_id, std::uint64_t step,
                                  std::string_view payload_blob) = 0;
    /// Answers the pending interrupt `interrupt_id` and sets the run running again. Throws, naming the id, for an
    /// unknown id, an interrupt already resumed, or a run no longer interrupted (stopped or ended).
    virtual void resume_interrupt(std::string_view run_id, std::string_view interrupt_id,
                                  std::string_view value_blob) = 0;
    /// Moves the run to `status` (stopped, completed, failed) with its result; refused (nothing changes) where
    /// is_allowed_run_transition says no, and always for interrupted and running (see the table).
    virtual void set_status(std::string_view run_id, RunStatus status, std::string_view result_blob) = 0;
    /// Stores guidance for the run's next decide(), after the guidance stored before it. The run must exist and not
    /// have ended (any status but completed and failed: guidance given while it waits or is stopped is kept).
    virtual void record_guidance(std::string_view run_id, std::string_view text) = 0;
    /// Reopens a stopped run: running again, or interrupted when it was stopped with an interrupt pending (which
    /// stays pending). Returns the new status. Throws, naming the run and its status, for an unknown run or one
    /// that is not stopped.
    virtual RunStatus resume_run(std::string_view run_id) = 0;

    /// Runs `body`, which makes calls on this journal, as one group: the calls commit together when it returns
    /// (one sync instead of one per call), and each stays atomic on its own (a call that throws changed nothing,
    /// the others stand). Throws, and none of the group's calls changed anything, when the group cannot commit.
    /// JournalWriter groups the calls it finds queued. The default runs `body` as is: each call commits alone.
    virtual void group(const std::function<void()>& body) { body(); }

    /// The run and what a resume needs, or nullopt for an unknown id.
    virtual std::optional<RunSnapshot> load(std::string_view run_id) = 0;
    /// The run's checkpoints numbered `first` … `last` (those that exist), in order of step; empty for an unknown
    /// run. A resume reads the steps its History keeps through this.
    virtual std::vector<CheckpointRecord> checkpoints(std::string_view run_id, std::uint64_t first,
                                                      std::uint64_t last) = 0;
    /// The non-empty history blobs of the run's checkpoints numbered `first` … `last`, each with its step, in order
    /// of step (record and state blobs are not read).
    virtual std::vector<std::pair<std::uint64_t, std::string>> histories(std::string_view run_id, std::uint64_t first,
                                                                         std::uint64_t last) = 0;
    /// Every run, oldest first (by created_unix_ns, then run_id).
    virtual std::vector<RunRecord> list_runs() = 0;
    /// The intent with this key and its result, or nullopt.
    virtual std::optional<JournalActionRecord> find_action(std::string_view key) = 0;
};

namespace detail {

/// FNV-1a, 128 bits (offset basis 0x6c62272e07bb014262b821756295c58d, prime 2^88 + 2^8 + 0x3b), on 32-bit limbs
/// so that it needs no 128-bit integer type. Returns the hash as {high 64 bits, low 64 bits}.
class Fnv1a128 {
public:
    void add(std::string_view bytes) noexcept {
        for (char c : bytes) {
            limbs_[3] ^= static_cast<std::uint8_t>(c);
            multiply_by_prime();
        }
    }
    void add_u64(std::uint64_t value) noexcept {
        // Little-endian, so the hash does not depend on the platform's byte order.
        std::array<char, 8> bytes{};
        for (std::size_t i = 0; i < bytes.size(); ++i) bytes[i] = static_cast<char>((value >> (8 * i)) & 0xffU);
        add(std::string_view{bytes.data(), bytes.size()});
    }
    /// Length first, so that ("ab", "c") and ("a", "bc") hash differently.
    void add_field(std::string_view bytes) noexcept {
        add_u64(bytes.size());
        add(bytes);
    }
    std::pair<std::uint64_t, std::uint64_t> value() const noexcept {
        return {(std::uint64_t{limbs_[0]} << 32) | limbs_[1], (std::uint64_t{limbs_[2]} << 32) | limbs_[3]};
    }
    /// The 128 bits as 32 lower-case hex digits, most significant first.
    std::string hex() const {
        static constexpr std::string_view digits = "0123456789abcdef";
        std::string out;
        out.reserve(32);
        for (std::uint32_t limb : limbs_) {
            for (int shift = 28; shift >= 0; shift -= 4) out.push_back(digits[(limb >> shift) & 0xfU]);
        }
        return out;
    }

private:
    void multiply_by_prime() noexcept {
        // prime = 2^88 + 0x13b; limbs are big-endian (limbs_[3] is the lowest). x * 0x13b, plus x shifted up by
        // 88 bits (2 limbs and 24 bits), modulo 2^128.
        std::array<std::uint64_t, 4> product{};
        std::uint64_t carry = 0;
        for (int i = 3; i >= 0; --i) {
            std::uint64_t v = std::uint64_t{limbs_[static_cast<std::size_t>(i)]} * 0x13bU + carry;
            product[static_cast<std::size_t>(i)] = v & 0xffffffffU;
            carry = v >> 32;
        }
        // x << 88: limb 3 (bits 0..31) lands at bits 88..119, limb 2 (bits 32..63) at 120..151 (only its low 8
        // bits fit).
        std::uint64_t shifted_high = (std::uint64_t{limbs_[3]} >> 8) | ((std::uint64_t{limbs_[2]} & 0xffU) << 24);
        std::uint64_t shifted_mid = (std::uint64_t{limbs_[3]} & 0xffU) << 24;
        std::uint64_t mid = product[1] + shifted_mid;
        product[1] = mid & 0xffffffffU;
        product[0] = (product[0] + shifted_high + (mid >> 32)) & 0xffffffffU;
        for (std::size_t i = 0; i < 4; ++i) limbs_[i] = static_cast<std::uint32_t>(product[i]);
    }

    std::array<std::uint32_t, 4> limbs_{0x6c62272eU, 0x07bb0142U, 0x62b82175U, 0x6295c58dU};
};

}  // namespace detail

/// The idempotency key of one action: "i1-" and 32 hex digits of FNV-1a 128 over a versioned, length-prefixed
/// encoding of (run_id, step, action_index, action_blob), integers as 8 little-endian bytes. Stable across
/// versions, compilers and platforms (a new encoding would get a new prefix; tests/test_run_journal.cpp pins
/// fixed values). Collision odds for n keys of non-adversarial input are about n² / 2^129: 1.5e-21 for a
/// billion keys. FNV is not a cryptographic hash: a party that chooses action blobs can make two collide, so
/// keys are not for untrusted input crossing a trust boundary.
inline std::string idempotency_key(std::string_view run_id, std::uint64_t step, std::uint32_t action_index,
                                   std::string_view action_blob) {
    detail::Fnv1a128 hash;
    hash.add_field("taskmon.idempotency_key.v1");
    hash.add_field(run_id);
    hash.add_u64(step);
    hash.add_u64(action_index);
    hash.add_field(action_blob);
    return "i1-" + hash.hex();
}

}  // namespace taskmon
