// taskmon — coroutine supervision for standalone Asio.
// SPDX-License-Identifier: MIT
//
// JournalWriter: a RunJournal on a thread of its own, so that coroutines on an Asio executor (a strand, a
// single-threaded io_context) never block on the disk. A call runs a function on the journal on the writer
// thread and completes on the caller's executor:
//
//   taskmon::JournalWriter writer{std::make_unique<taskmon::SqliteRunJournal>("runs.db")};
//   auto record = [intent](taskmon::RunJournal& journal) { journal.record_intent(intent); };
//   co_await writer.call(record);   // named first: g++ 12 miscompiles a capturing lambda inside co_await
//
// Calls run one at a time, in the order they were made (FIFO). An exception thrown by the function (a
// JournalError) is rethrown in the caller.
//
// Group commit: the calls that are queued when the writer takes its next work run inside one
// RunJournal::group() (at most max_group of them), so they cost one commit instead of one each; each still
// changes everything or nothing on its own. A call completes only once its group committed: when the group's
// commit fails, every call of it that had succeeded completes with that failure instead (nothing of the group is
// in the journal).
//
// Cancellation: a call cannot be cancelled. Once call() or async_call() is entered, the function runs to its end
// on the writer thread: a cancellation signal sent to the awaiting coroutine (a parallel_group, `||` of
// awaitable_operators, a cancellation slot) is not connected to it, so the coroutine resumes only after the write
// committed or failed, and learns which. If the caller's frame is destroyed meanwhile (its io_context destroyed),
// the write still happens and its result is discarded. Nothing is written twice and nothing is silently dropped.
//
// Lifetime: the destructor runs every queued call, then joins the thread; the completions go to their callers'
// executors. A call made after the destructor began is a bug (as with any object being destroyed). The callers'
// execution contexts must outlive the writer's completions: destroy the writer before them, or let every call
// finish first. No lock of the writer is held while the function or a completion runs.
#pragma once

#include <taskmon/detail/config.hpp>

#include <taskmon/agent/run_journal.hpp>

#include <asio/associated_executor.hpp>
#include <asio/async_result.hpp>
#include <asio/awaitable.hpp>
#include <asio/executor_work_guard.hpp>
#include <asio/post.hpp>
#include <asio/use_awaitable.hpp>

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <exception>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

namespace taskmon {

class JournalWriter {
public:
    /// Takes the journal (which the writer thread alone uses from now on) and starts the thread.
    explicit JournalWriter(std::unique_ptr<RunJournal> journal) : journal_(std::move(journal)) {
        if (!journal_) throw std::invalid_argument("JournalWriter: the journal is null");
        thread_ = std::thread([this] { run(); });
    }
    JournalWriter(const JournalWriter&) = delete;
    JournalWriter& operator=(const JournalWriter&) = delete;

    /// Runs every queued call, then joins the writer thread.
    ~JournalWriter() {
        {
            std::lock_guard lock{mutex_};
            stopping_ = true;
        }
        wakeup_.notify_one();
        thread_.join();
    }

    /// Runs `function(journal)` on the writer thread; completes on the token's associated executor (a coroutine's
    /// own with use_awaitable; asio::system_executor for a plain callback, unless bound with bind_executor) with
    /// `void(std::exception_ptr, R)`, R = the function's result (default-constructed when it threw), or
    /// `void(std::exception_ptr)` when it returns void.
    template <class Function, class Token>
    auto async_call(Function function, Token&& token) {
        using Result = std::invoke_result_t<Function&, RunJournal&>;
        static_assert(std::is_void_v<Result> || std::is_default_constructible_v<Result>,
                      "JournalWriter::async_call: the function's result must be default-constructible (it is "
                      "passed with the exception when the function throws)");
        return asio::async_initiate<Token, typename CallSignature<Result>::type>(
            [this](auto handler, Function work_function) {
                enqueue(std::make_unique<Call<Function, std::decay_t<decltype(handler)>>>(std::move(work_function),
                                                                                          std::move(handler)));
            },
            token, std::move(function));
    }

    /// async_call for a coroutine: `co_await writer.call(f)` returns f's result or rethrows its exception.
    template <class Function>
    auto call(Function function) -> asio::awaitable<std::invoke_result_t<Function&, RunJournal&>> {
        using Result = std::invoke_result_t<Function&, RunJournal&>;
        // Named first: g++ 12 miscompiles temporaries inside a co_await expression.
        auto operation = async_call(std::move(function), asio::use_awaitable);
        if constexpr (std::is_void_v<Result>) {
            co_await std::move(operation);
        } else {
            co_return co_await std::move(operation);
        }
    }

    /// Runs `function(journal)` on the writer thread, in order with the calls, and completes nothing: for work
    /// whose caller does not wait (a queued checkpoint). When it throws, or its group's commit fails after it
    /// succeeded, `on_failure(exception)` runs on the writer thread (once, at once when the function threw): it
    /// must be noexcept (checked at compile time), since nothing is left to receive its exception. Nothing of it
    /// runs on another thread, so it outlives no one: the destructor runs it too.
    template <class Function, class OnFailure>
    void defer(Function function, OnFailure on_failure) {
        static_assert(std::is_nothrow_invocable_v<OnFailure&, std::exception_ptr>,
                      "JournalWriter::defer: on_failure must be noexcept (nothing would receive its exception)");
        enqueue(std::make_unique<Deferred<Function, OnFailure>>(std::move(function), std::move(on_failure)));
    }

    /// The most calls one group commits: a bound on how long the first of them waits for its completion.
    static constexpr std::size_t max_group = 64;

private:
    template <class Result>
    struct CallSignature {
        using type = void(std::exception_ptr, Result);
    };
    template <class Result>
        requires std::is_void_v<Result>
    struct CallSignature<Result> {
        using type = void(std::exception_ptr);
    };

    /// One queued call: run() runs it (inside its group), complete() reports it once the group committed, or
    /// failed with `group_failure`.
    struct Work {
        virtual ~Work() = default;
        virtual void run(RunJournal& journal) = 0;
        virtual void complete(std::exception_ptr group_failure) = 0;
    };

    template <class Function, class Handler>
    struct Call final : Work {
        Call(Function function, Handler handler)
            : function_(std::move(function)),
              handler_(std::move(handler)),
              work_(asio::make_work_guard(asio::get_associated_executor(handler_))) {}

        void run(RunJournal& journal) override {
            try {
                if constexpr (std::is_void_v<Result>) {
                    function_(journal);
                } else {
                    result_ = function_(journal);
                }
            } catch (...) {
                error_ = std::current_exception();
            }
        }

        void complete(std::exception_ptr group_failure) override {
            std::exception_ptr error = error_ ? error_ : group_failure;
            if constexpr (std::is_void_v<Result>) {
                asio::post(work_.get_executor(),
                           [handler = std::move(handler_), error]() mutable { std::move(handler)(error); });
            } else {
                if (error) result_ = Result{};
                asio::post(work_.get_executor(),
                           [handler = std::move(handler_), error, result = std::move(result_)]() mutable {
                               std::move(handler)(error, std::move(result));
                           });
            }
            work_.reset();
        }

        using Result = std::invoke_result_t<Function&, RunJournal&>;
        using Stored = std::conditional_t<std::is_void_v<Result>, char, Result>;
        Function function_;
        Handler handler_;
        asio::executor_work_guard<asio::associated_executor_t<Handler>> work_;
        Stored result_{};
        std::exception_ptr error_;
    };

    template <class Function, class OnFailure>
    struct Deferred final : Work {
        Deferred(Function function, OnFailure on_failure)
            : function_(std::move(function)), on_failure_(std::move(on_failure)) {}
        void run(RunJournal& journal) override {
            try {
                function_(journal);
            } catch (...) {
                failed_ = true;
                on_failure_(std::current_exception());  // at once: later calls of the group may depend on it
            }
        }
        void complete(std::exception_ptr group_failure) override {
            if (group_failure && !failed_) on_failure_(group_failure);
        }
        Function function_;
        OnFailure on_failure_;
        bool failed_ = false;
    };

    void enqueue(std::unique_ptr<Work> work) {
        {
            std::lock_guard lock{mutex_};
            queue_.push_back(std::move(work));
        }
        wakeup_.notify_one();
    }

    void run() {
        std::vector<std::unique_ptr<Work>> group;  // reused: no allocation per group once grown
        for (;;) {
            group.clear();
            {
                std::unique_lock lock{mutex_};
                wakeup_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
                if (queue_.empty()) return;  // stopping, and drained
                while (!queue_.empty() && group.size() < max_group) {
                    group.push_back(std::move(queue_.front()));
                    queue_.pop_front();
                }
            }
            std::exception_ptr group_failure;
            if (group.size() == 1) {
                group.front()->run(*journal_);  // a call alone is its own transaction
            } else {
                try {
                    journal_->group([this, &group] {
                        for (auto& work : group) work->run(*journal_);
                    });
                } catch (...) {
                    group_failure = std::current_exception();
                }
            }
            for (auto& work : group) work->complete(group_failure);
        }
    }

    std::unique_ptr<RunJournal> journal_;
    std::mutex mutex_;
    std::condition_variable wakeup_;
    std::deque<std::unique_ptr<Work>> queue_;  // guarded by mutex_
    bool stopping_ = false;                    // guarded by mutex_
    std::thread thread_;                       // last: started when the members it uses exist
};

}  // namespace taskmon
