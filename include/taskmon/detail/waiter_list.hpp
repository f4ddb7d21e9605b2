// taskmon — coroutine supervision for standalone Asio.
// SPDX-License-Identifier: MIT
//
// WaiterList: a FIFO of suspended asynchronous operations for the library's own awaitable primitives
// (Asio 1.22 has no any_completion_handler, and awaitable rejects custom awaiters, so primitives are built on
// async_initiate and park their handlers here). The operations, their list and the posting of completions are
// the ones AsyncSemaphore uses too (detail/parked_operation.hpp); WaiterList adds the payload, single-strand use
// and the destruction of parked operations at the context's shutdown.
#pragma once

#include <taskmon/detail/config.hpp>
#include <taskmon/detail/parked_operation.hpp>

#include <cstddef>
#include <memory>
#include <mutex>
#include <tuple>
#include <type_traits>
#include <unordered_set>
#include <utility>

#include <asio/any_io_executor.hpp>
#include <asio/cancellation_type.hpp>
#include <asio/error.hpp>
#include <asio/execution/context.hpp>
#include <asio/execution/relationship.hpp>
#include <asio/execution_context.hpp>
#include <asio/query.hpp>

namespace taskmon::detail {

/// A WaiterList as the execution context's shutdown sees it.
class ParkedOperationList {
public:
    /// Unlinks every parked operation onto the front of the chain `out` (the list is empty afterwards),
    /// chained through ParkedOperation::next; no allocation while shutting down).
    virtual void release_parked(ParkedOperation*& out) noexcept = 0;

protected:
    ~ParkedOperationList() = default;
};

/// The lists holding parked operations on one execution context. Shared by the context's service and the lists,
/// so a list outliving its context can still unregister.
struct ParkedOperationRegistry {
    std::mutex mutex;
    std::unordered_set<ParkedOperationList*> lists;
    bool shut_down = false;
};

/// Destroys the operations parked in WaiterLists when their execution context shuts down, as the context does
/// with its own pending operations (destroying an io_context destroys suspended coroutines). Without it a
/// coroutine parked in a list that its own frame keeps alive (through a shared owner) would never be freed.
class ParkedOperationService : public asio::execution_context::service {
public:
    using key_type = ParkedOperationService;
    static inline asio::execution_context::id id;

    explicit ParkedOperationService(asio::execution_context& context) : asio::execution_context::service(context) {}

    const std::shared_ptr<ParkedOperationRegistry>& registry() const noexcept { return registry_; }

private:
    void shutdown() override {
        ParkedOperation* parked = nullptr;
        {
            std::lock_guard lock{registry_->mutex};
            registry_->shut_down = true;
            for (auto* list : registry_->lists) list->release_parked(parked);
            registry_->lists.clear();
        }
        // Outside the lock: destroying a coroutine may destroy (and so unregister) other lists.
        while (parked != nullptr) {
            auto* op = std::exchange(parked, parked->next);
            op->destroy(false);
        }
    }

    std::shared_ptr<ParkedOperationRegistry> registry_ = std::make_shared<ParkedOperationRegistry>();
};

/// Parked operations completing with `void(asio::error_code, Args...)`, each carrying a `Payload` (what the
/// operation needs to complete: a sequence number to wait past, an item to push ...).
///
/// Completion contract: a handler is never invoked inside the call that completes it; it is posted to its
/// associated executor (default: the list's executor; relationship fork, like asio::post), which is kept busy
/// (outstanding work) while the operation is parked. Operation memory comes from the handler's associated
/// allocator (default: Asio's recycling allocator). Any cancellation type emitted on the handler's slot completes
/// the operation with asio::error::operation_aborted and removes it (its payload is discarded).
///
/// Not thread-safe: use the list, and emit cancellation, on one strand. Destroying the list destroys parked
/// handlers without invoking them (like destroying an io_context). So does the shutdown of the execution context
/// of the first park (see ParkedOperationService).
template <typename Payload, typename... Args>
class WaiterList final : private ParkedOperationList {
    struct Waiter : ParkedOperation {
        using CompleteFn = void (*)(Waiter* self, asio::error_code ec, Args... args);
        using ConnectFn = void (*)(Waiter* self, WaiterList* list);

        Waiter(DestroyFn destroy, CompleteFn complete, ConnectFn connect, Payload p)
            : ParkedOperation(destroy), complete_fn(complete), connect_fn(connect), payload(std::move(p)) {}
        // Posts the handler; the posted function owns `this`.
        void complete(asio::error_code ec, Args... args) { complete_fn(this, ec, std::move(args)...); }
        // Binds the handler's cancellation slot to `list`.
        void connect(WaiterList* list) { connect_fn(this, list); }

        CompleteFn complete_fn;
        ConnectFn connect_fn;
        bool linked = false;  // in the list
        Payload payload;
    };

    template <typename Handler>
    struct Operation final : Waiter {
        // Completions go out like asio::post (relationship fork).
        using Parked = ParkedHandler<Handler, asio::any_io_executor, asio::execution::relationship_t::fork_t>;
        // A completion dropped by its executor (context shut down) leaves the slot alone: the signal may be gone.
        static constexpr bool clear_slot_when_dropped = false;

        template <typename H>
        Operation(H&& handler, const asio::any_io_executor& fallback, Payload p)
            : Waiter(&destroy_parked<Operation>, &Operation::do_complete, &Operation::do_connect, std::move(p)),
              parked(std::forward<H>(handler), fallback) {}

        static void do_complete(Waiter* self, asio::error_code ec, Args... args) {
            post_completion(static_cast<Operation*>(self), ec, std::move(args)...);
        }
        static void do_connect(Waiter* self, WaiterList* list) {
            static_cast<Operation*>(self)->parked.template connect_cancellation<CancellationHandler>(
                CancellationHandler{list, self});
        }

        Parked parked;
    };

    struct CancellationHandler {
        WaiterList* list;
        Waiter* waiter;
        void operator()(asio::cancellation_type_t type) const {
            if (type == asio::cancellation_type::none || !waiter->linked) return;
            list->unlink(waiter);
            waiter->complete(asio::error::operation_aborted, Args{}...);
        }
    };

public:
    /// An operation made for a handler but neither parked nor completed yet: the part of park() and
    /// complete_now() that depends on the handler's type, so that code taking a Prepared needs no template
    /// (BasicTaskMonitor's completion-token functions make one; the monitor, compiled once, parks it).
    /// Destroying it unused destroys the handler without calling it.
    class Prepared {
    public:
        Prepared() = default;
        Prepared(Prepared&& other) noexcept : op_(std::exchange(other.op_, nullptr)) {}
        Prepared& operator=(Prepared&&) = delete;
        ~Prepared() {
            if (op_ != nullptr) op_->destroy(false);
        }

    private:
        friend class WaiterList;
        explicit Prepared(Waiter* op) noexcept : op_(op) {}
        Waiter* release() noexcept { return std::exchange(op_, nullptr); }

        Waiter* op_ = nullptr;
    };

    WaiterList() = default;
    WaiterList(const WaiterList&) = delete;
    WaiterList& operator=(const WaiterList&) = delete;
    ~WaiterList() {
        if (registry_) {
            std::lock_guard lock{registry_->mutex};
            registry_->lists.erase(this);
        }
        while (Waiter* w = list_.front()) {
            unlink(w);
            w->destroy(true);
        }
    }

    bool empty() const noexcept { return list_.empty(); }
    std::size_t size() const noexcept { return list_.size(); }

    /// Parks `handler` at the back with `payload`; binds its cancellation slot.
    template <typename Handler>
    void park(Handler&& handler, Payload payload, const asio::any_io_executor& fallback) {
        using Op = Operation<std::decay_t<Handler>>;
        if (!registry_) register_with(fallback);
        auto* op = allocate_parked<Op>(std::forward<Handler>(handler), fallback, std::move(payload));
        link_back(op);
        Op::do_connect(op, this);  // the type is known here: no call through connect_fn
    }

    /// Makes the operation of `handler` (its associated executor defaulting to `fallback`), for park() or
    /// complete_now() later; its payload is set when it is parked.
    template <typename Handler>
    static Prepared prepare(Handler&& handler, const asio::any_io_executor& fallback) {
        using Op = Operation<std::decay_t<Handler>>;
        return Prepared{allocate_parked<Op>(std::forward<Handler>(handler), fallback, Payload{})};
    }

    /// park() for a prepared operation, which must not be empty.
    void park(Prepared op, Payload payload, const asio::any_io_executor& fallback) {
        if (!registry_) register_with(fallback);
        Waiter* w = op.release();
        w->payload = std::move(payload);
        link_back(w);
        w->connect(this);
    }

    /// complete_now() for a prepared operation, which must not be empty.
    void complete_now(Prepared op, asio::error_code ec, Args... args) {
        op.release()->complete(ec, std::move(args)...);
    }

    /// Completes `handler` at once (posted like a parked one, without binding its cancellation slot).
    template <typename Handler>
    void complete_now(Handler&& handler, const asio::any_io_executor& fallback, asio::error_code ec, Args... args) {
        using Op = Operation<std::decay_t<Handler>>;
        post_completion(allocate_parked<Op>(std::forward<Handler>(handler), fallback, Payload{}), ec,
                        std::move(args)...);
    }

    /// The payload of the oldest parked operation; the list must not be empty.
    Payload& front_payload() noexcept { return list_.front()->payload; }

    /// Completes the oldest parked operation with (ec, args...).
    void complete_front(asio::error_code ec, Args... args) {
        Waiter* w = list_.front();
        unlink(w);
        w->complete(ec, std::move(args)...);
    }

    /// Completes every parked operation for which `pred(payload)` is true, in order, with make_args(payload)
    /// (a tuple of Args).
    template <typename Pred, typename MakeArgs>
    void complete_if(Pred pred, MakeArgs make_args) {
        Waiter* w = list_.front();
        while (w != nullptr) {
            Waiter* next = ParkedList<Waiter>::next(w);
            if (pred(w->payload)) {
                unlink(w);
                std::apply([&](auto&&... vs) { w->complete(asio::error_code{}, std::move(vs)...); },
                           make_args(w->payload));
            }
            w = next;
        }
    }

    /// Completes every parked operation for which `pred(payload)` is true, in order, with (ec, Args{}...).
    template <typename Pred>
    void complete_matching(asio::error_code ec, Pred pred) {
        Waiter* w = list_.front();
        while (w != nullptr) {
            Waiter* next = ParkedList<Waiter>::next(w);
            if (pred(w->payload)) {
                unlink(w);
                w->complete(ec, Args{}...);
            }
            w = next;
        }
    }

    /// Completes every parked operation with (ec, Args{}...).
    void complete_all(asio::error_code ec) {
        while (!list_.empty()) complete_front(ec, Args{}...);
    }

private:
    void register_with(const asio::any_io_executor& executor) {
        auto& context = asio::query(executor, asio::execution::context);
        registry_ = asio::use_service<ParkedOperationService>(context).registry();
        std::lock_guard lock{registry_->mutex};
        if (!registry_->shut_down) registry_->lists.insert(this);
    }

    void release_parked(ParkedOperation*& out) noexcept override {
        while (Waiter* w = list_.front()) {
            unlink(w);
            w->next = out;
            out = w;
        }
    }

    void link_back(Waiter* w) noexcept {
        list_.push_back(w);
        w->linked = true;
    }
    void unlink(Waiter* w) noexcept {
        list_.erase(w);
        w->linked = false;
    }

    ParkedList<Waiter> list_;
    std::shared_ptr<ParkedOperationRegistry> registry_;  ///< set at the first park
};

}  // namespace taskmon::detail
