// taskmon — coroutine supervision for standalone Asio.
// SPDX-License-Identifier: MIT
//
// WaiterList: a FIFO of suspended asynchronous operations for the library's own awaitable primitives
// (Asio 1.22 has no any_completion_handler, and awaitable rejects custom awaiters, so primitives are built on
// async_initiate and park their handlers here).
#pragma once

#include <taskmon/detail/config.hpp>

#include <cstddef>
#include <memory>
#include <mutex>
#include <tuple>
#include <type_traits>
#include <unordered_set>
#include <utility>

#include <asio/any_io_executor.hpp>
#include <asio/associated_cancellation_slot.hpp>
#include <asio/associated_executor.hpp>
#include <asio/cancellation_type.hpp>
#include <asio/error.hpp>
#include <asio/execution/context.hpp>
#include <asio/execution/outstanding_work.hpp>
#include <asio/execution_context.hpp>
#include <asio/query.hpp>
#include <asio/post.hpp>
#include <asio/prefer.hpp>

namespace taskmon::detail {

/// An operation parked in a WaiterList, as the execution context's shutdown sees it.
class ParkedOperation {
public:
    /// Deletes the operation without invoking it and without touching its cancellation slot (the signal may
    /// already be gone: the context is being destroyed and no handler runs any more).
    virtual void abandon() noexcept = 0;

    ParkedOperation* next_abandoned = nullptr;  ///< the shutdown's chain (no allocation while shutting down)

protected:
    ~ParkedOperation() = default;
};

/// A WaiterList as the execution context's shutdown sees it.
class ParkedOperationList {
public:
    /// Unlinks every parked operation onto the front of the chain `out` (the list is empty afterwards).
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
            auto* op = std::exchange(parked, parked->next_abandoned);
            op->abandon();
        }
    }

    std::shared_ptr<ParkedOperationRegistry> registry_ = std::make_shared<ParkedOperationRegistry>();
};

/// Parked operations completing with `void(asio::error_code, Args...)`, each carrying a `Payload` (what the
/// operation needs to complete: a sequence number to wait past, an item to push ...).
///
/// Completion contract: a handler is never invoked inside the call that completes it; it is posted to its
/// associated executor (default: the list's executor), which is kept busy (outstanding work) while the
/// operation is parked. Any cancellation type emitted on the handler's slot completes the operation with
/// asio::error::operation_aborted and removes it (its payload is discarded).
///
/// Not thread-safe: use the list, and emit cancellation, on one strand. Destroying the list destroys parked
/// handlers without invoking them (like destroying an io_context). So does the shutdown of the execution context
/// of the first park (see ParkedOperationService).
template <typename Payload, typename... Args>
class WaiterList final : private ParkedOperationList {
    struct Waiter : ParkedOperation {
        Waiter* prev = nullptr;
        Waiter* next = nullptr;
        bool linked = false;
        Payload payload;

        explicit Waiter(Payload p) : payload(std::move(p)) {}
        virtual void complete(asio::error_code ec, Args... args) = 0;  // posts the handler; owns `this`
        virtual void destroy() noexcept = 0;                          // deletes without invoking
    protected:
        ~Waiter() = default;
    };

    template <typename Handler>
    struct Operation final : Waiter {
        // Decayed: for an executor without outstanding_work (use_future's, the system executor), prefer() hands
        // back its argument as an rvalue reference, and a reference member would dangle.
        using Executor = std::decay_t<decltype(asio::prefer(
            asio::get_associated_executor(std::declval<Handler&>(), std::declval<asio::any_io_executor>()),
            asio::execution::outstanding_work.tracked))>;

        Handler handler;
        Executor work;
        asio::cancellation_slot slot;

        Operation(Handler h, Payload p, const asio::any_io_executor& fallback)
            : Waiter(std::move(p)),
              handler(std::move(h)),
              work(asio::prefer(asio::get_associated_executor(handler, fallback),
                                asio::execution::outstanding_work.tracked)),
              slot(asio::get_associated_cancellation_slot(handler)) {}

        void complete(asio::error_code ec, Args... args) override {
            // The slot is cleared in the posted function, never here: we may be inside its emit().
            auto executor = work;
            asio::post(executor, [self = std::unique_ptr<Operation>(this), ec,
                                  values = std::make_tuple(std::move(args)...)]() mutable {
                if (self->slot.is_connected()) self->slot.clear();
                Handler h = std::move(self->handler);
                auto parked = std::move(values);
                self.reset();
                std::apply([&](auto&&... vs) { std::move(h)(ec, std::move(vs)...); }, std::move(parked));
            });
        }

        void destroy() noexcept override {
            if (slot.is_connected()) slot.clear();
            delete this;
        }

        void abandon() noexcept override { delete this; }
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
    WaiterList() = default;
    WaiterList(const WaiterList&) = delete;
    WaiterList& operator=(const WaiterList&) = delete;
    ~WaiterList() {
        if (registry_) {
            std::lock_guard lock{registry_->mutex};
            registry_->lists.erase(this);
        }
        while (head_ != nullptr) {
            Waiter* w = head_;
            unlink(w);
            w->destroy();
        }
    }

    bool empty() const noexcept { return head_ == nullptr; }
    std::size_t size() const noexcept { return size_; }

    /// Parks `handler` at the back with `payload`; binds its cancellation slot.
    template <typename Handler>
    void park(Handler&& handler, Payload payload, const asio::any_io_executor& fallback) {
        using Op = Operation<std::decay_t<Handler>>;
        if (!registry_) register_with(fallback);
        auto* op = new Op(std::forward<Handler>(handler), std::move(payload), fallback);
        link_back(op);
        if (op->slot.is_connected()) op->slot.template emplace<CancellationHandler>(CancellationHandler{this, op});
    }

    /// Completes `handler` at once (posted like a parked one, without binding its cancellation slot).
    template <typename Handler>
    void complete_now(Handler&& handler, const asio::any_io_executor& fallback, asio::error_code ec,
                      Args... args) {
        using Op = Operation<std::decay_t<Handler>>;
        auto* op = new Op(std::forward<Handler>(handler), Payload{}, fallback);
        op->slot = asio::cancellation_slot{};
        op->complete(ec, std::move(args)...);
    }

    /// The payload of the oldest parked operation; the list must not be empty.
    Payload& front_payload() noexcept { return head_->payload; }

    /// Completes the oldest parked operation with (ec, args...).
    void complete_front(asio::error_code ec, Args... args) {
        Waiter* w = head_;
        unlink(w);
        w->complete(ec, std::move(args)...);
    }

    /// Completes every parked operation for which `pred(payload)` is true, in order, with make_args(payload)
    /// (a tuple of Args).
    template <typename Pred, typename MakeArgs>
    void complete_if(Pred pred, MakeArgs make_args) {
        Waiter* w = head_;
        while (w != nullptr) {
            Waiter* next = w->next;
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
        Waiter* w = head_;
        while (w != nullptr) {
            Waiter* next = w->next;
            if (pred(w->payload)) {
                unlink(w);
                w->complete(ec, Args{}...);
            }
            w = next;
        }
    }

    /// Completes every parked operation with (ec, Args{}...).
    void complete_all(asio::error_code ec) {
        while (head_ != nullptr) complete_front(ec, Args{}...);
    }

private:
    void register_with(const asio::any_io_executor& executor) {
        auto& context = asio::query(executor, asio::execution::context);
        registry_ = asio::use_service<ParkedOperationService>(context).registry();
        std::lock_guard lock{registry_->mutex};
        if (!registry_->shut_down) registry_->lists.insert(this);
    }

    void release_parked(ParkedOperation*& out) noexcept override {
        while (head_ != nullptr) {
            Waiter* w = head_;
            unlink(w);
            w->next_abandoned = out;
            out = w;
        }
    }

    void link_back(Waiter* w) noexcept {
        w->prev = tail_;
        w->next = nullptr;
        if (tail_ != nullptr) tail_->next = w; else head_ = w;
        tail_ = w;
        w->linked = true;
        ++size_;
    }
    void unlink(Waiter* w) noexcept {
        if (w->prev != nullptr) w->prev->next = w->next; else head_ = w->next;
        if (w->next != nullptr) w->next->prev = w->prev; else tail_ = w->prev;
        w->prev = w->next = nullptr;
        w->linked = false;
        --size_;
    }

    Waiter* head_ = nullptr;
    Waiter* tail_ = nullptr;
    std::size_t size_ = 0;
    std::shared_ptr<ParkedOperationRegistry> registry_;  ///< set at the first park
};

}  // namespace taskmon::detail
