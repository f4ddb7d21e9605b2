// taskmon — coroutine supervision for standalone Asio.
// SPDX-License-Identifier: MIT
//
// DurableRun: what a Supervisor needs to journal its run (docs/durable_runs.md): the journal's writer, the run's
// id, and the serializers of the user's Action, Result and (optionally) agent state. Given to the Supervisor's
// durable constructor:
//
//   auto writer = std::make_shared<taskmon::JournalWriter>(std::make_unique<taskmon::SqliteRunJournal>("runs.db"));
//   taskmon::Supervisor<Obs, Move> robot{io.get_executor(), agent,
//       taskmon::DurableRun<Move>{.writer = writer, .run_id = "robot-7", ...serializers...}, settings};
//
// The run is written before it reports started; an intent is synced before each act(); each finalized step is
// checkpointed; a run id that is already in the journal and not terminal is resumed. This header needs no SQLite
// (only sqlite_journal.hpp does): a journal of your own works as well.
#pragma once

#include <taskmon/agent/history.hpp>
#include <taskmon/agent/journal_writer.hpp>
#include <taskmon/agent/run_journal.hpp>
#include <taskmon/agent/supervisor.hpp>

#include <asio/awaitable.hpp>

#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>

namespace taskmon {

/// What reconcile() found out about an UNKNOWN action (its intent was written, the process died before its
/// result was).
struct Reconciliation {
    enum class Kind : std::uint8_t {
        done,      ///< the action took effect: `result` is its result (recorded as succeeded, or failed)
        not_done,  ///< the action never took effect (recorded as skipped; the run does not repeat it either)
        failed,    ///< it took effect partly or failed: `result.error` says why (recorded as failed)
    };
    Kind kind = Kind::not_done;
    ActionResult result;

    static Reconciliation done(ActionResult result = ActionResult::ok()) { return {Kind::done, std::move(result)}; }
    static Reconciliation not_done() { return {Kind::not_done, ActionResult::failure("reconcile: not done")}; }
    static Reconciliation failed(std::string error) { return {Kind::failed, ActionResult::failure(std::move(error))}; }
};

/// The journal of a Supervisor run and the serializers it needs. validate() names the first missing piece.
/// Every function is user code: called on the Supervisor's strand (reconcile: in run(), before the run
/// starts), never under a lock of ours.
template <typename Action, typename Result = std::string>
struct DurableRun {
    std::shared_ptr<JournalWriter> writer{};
    std::string run_id{};
    std::function<std::string(const Action&)> serialize_action{};
    std::function<Action(std::string_view)> deserialize_action{};
    std::function<std::string(const Result&)> serialize_result{};
    std::function<Result(std::string_view)> deserialize_result{};
    /// Optional (both or neither): the agent's state after each step, and its restoration on resume.
    std::function<std::string()> save_state{};
    std::function<void(std::string_view)> restore_state{};
    /// Optional: on resume, what became of an action that was in flight when the process died (`key` is its
    /// idempotency key). Without it such an action is recorded as interrupted and never replayed.
    std::function<asio::awaitable<Reconciliation>(const Action&, std::string_view key)> reconcile{};

    /// Throws std::invalid_argument naming the first missing piece ("DurableRun.writer is null").
    void validate() const {
        if (!writer) throw std::invalid_argument("DurableRun.writer is null");
        if (run_id.empty()) throw std::invalid_argument("DurableRun.run_id is empty");
        if (!serialize_action) throw std::invalid_argument("DurableRun.serialize_action is empty");
        if (!deserialize_action) throw std::invalid_argument("DurableRun.deserialize_action is empty");
        if (!serialize_result) throw std::invalid_argument("DurableRun.serialize_result is empty");
        if (!deserialize_result) throw std::invalid_argument("DurableRun.deserialize_result is empty");
        if (static_cast<bool>(save_state) != static_cast<bool>(restore_state)) {
            throw std::invalid_argument("DurableRun.save_state and DurableRun.restore_state must be set together");
        }
    }
};

}  // namespace taskmon

#include <taskmon/detail/durable_binding.hpp>
