// WaiterList (detail/waiter_list.hpp): the FIFO of parked operations behind the TaskMonitor's close, remove and
// escalation waits, LatestSlot, BoundedQueue and the Supervisor's condition waits.
#include <taskmon/detail/waiter_list.hpp>

#include <asio/any_io_executor.hpp>
#include <asio/async_result.hpp>
#include <asio/bind_cancellation_slot.hpp>
#include <asio/bind_executor.hpp>
#include <asio/cancellation_signal.hpp>
#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/io_context.hpp>
#include <asio/post.hpp>
#include <asio/strand.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>

#include <memory>
#include <optional>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include "taskmon_catch.hpp"

using taskmon::detail::WaiterList;

namespace {

// A completion handler that records its call in `log` as "<name>:<error value>" and keeps `alive` (an
// observer of its lifetime) until it is destroyed.
struct Recorder {
    std::vector<std::string>* log;
    std::string name;
    std::shared_ptr<int> alive = std::make_shared<int>(0);

    void operator()(asio::error_code ec) { log->push_back(name + ":" + std::to_string(ec.value())); }
};

// An asynchronous operation parked in `list` with `payload`, for coroutines.
template <typename CompletionToken>
auto async_park(WaiterList<int>& list, const asio::any_io_executor& executor, int payload, CompletionToken&& token) {
    return asio::async_initiate<CompletionToken, void(asio::error_code)>(
        [&list, &executor](auto handler, int p) { list.park(std::move(handler), p, executor); }, token, payload);
}

const int aborted = asio::error::operation_aborted;

}  // namespace

TEST_CASE("WaiterList completes parked operations in FIFO order and never inline") {
    asio::io_context ctx;
    std::vector<std::string> log;
    WaiterList<int> list;
    for (int i = 0; i < 3; ++i) list.park(Recorder{&log, "w" + std::to_string(i)}, i, ctx.get_executor());
    CHECK(list.size() == 3);
    CHECK(list.front_payload() == 0);

    list.complete_front(asio::error_code{});
    CHECK(list.size() == 2);
    CHECK(list.front_payload() == 1);
    list.complete_all(asio::error::eof);
    CHECK(list.empty());
    CHECK(log.empty());  // posted, not run inside the completing call

    ctx.run();
    const int eof = asio::error::eof;
    CHECK(log == std::vector<std::string>{"w0:0", "w1:" + std::to_string(eof), "w2:" + std::to_string(eof)});
}

TEST_CASE("WaiterList complete_matching completes only the matching operations in order") {
    asio::io_context ctx;
    std::vector<std::string> log;
    WaiterList<int> list;
    for (int i = 0; i < 5; ++i) list.park(Recorder{&log, "w" + std::to_string(i)}, i, ctx.get_executor());

    list.complete_matching(asio::error::operation_aborted, [](int p) { return p % 2 == 1; });
    CHECK(list.size() == 3);
    CHECK(list.front_payload() == 0);
    ctx.poll();  // (run() would wait for the parked operations: they count as work)
    CHECK(log == std::vector<std::string>{"w1:" + std::to_string(aborted), "w3:" + std::to_string(aborted)});

    log.clear();
    list.complete_matching(asio::error_code{}, [](int) { return false; });
    CHECK(list.size() == 3);
    list.complete_all(asio::error_code{});
    ctx.restart();
    ctx.run();
    CHECK(log == std::vector<std::string>{"w0:0", "w2:0", "w4:0"});
}

TEST_CASE("WaiterList complete_if hands each matching operation the values made from its payload") {
    asio::io_context ctx;
    std::vector<std::string> log;
    WaiterList<int, std::string> list;
    for (int i = 0; i < 4; ++i) {
        list.park(
            [&log, i](asio::error_code ec, std::string s) {
                log.push_back(std::to_string(i) + ":" + std::to_string(ec.value()) + ":" + s);
            },
            i, ctx.get_executor());
    }
    list.complete_if([](int p) { return p >= 2; }, [](int p) { return std::make_tuple("v" + std::to_string(p)); });
    CHECK(list.size() == 2);
    ctx.poll();
    CHECK(log == std::vector<std::string>{"2:0:v2", "3:0:v3"});

    // complete_now: posted like a parked one, the list stays as it is.
    log.clear();
    list.complete_now(
        [&log](asio::error_code ec, std::string s) { log.push_back("now:" + std::to_string(ec.value()) + ":" + s); },
        ctx.get_executor(), asio::error::eof, "x");
    CHECK(log.empty());
    CHECK(list.size() == 2);
    ctx.restart();
    ctx.poll();
    CHECK(log == std::vector<std::string>{"now:" + std::to_string(int{asio::error::eof}) + ":x"});
    list.complete_all(asio::error_code{});
    ctx.restart();
    ctx.run();
}

TEST_CASE("WaiterList cancellation of a parked operation removes it and completes it with operation_aborted") {
    const auto type =
        GENERATE(asio::cancellation_type::terminal, asio::cancellation_type::partial, asio::cancellation_type::total);
    asio::io_context ctx;
    std::vector<std::string> log;
    WaiterList<int> list;
    asio::cancellation_signal s0;
    asio::cancellation_signal s1;
    asio::cancellation_signal s2;
    list.park(asio::bind_cancellation_slot(s0.slot(), Recorder{&log, "w0"}), 0, ctx.get_executor());
    list.park(asio::bind_cancellation_slot(s1.slot(), Recorder{&log, "w1"}), 1, ctx.get_executor());
    list.park(asio::bind_cancellation_slot(s2.slot(), Recorder{&log, "w2"}), 2, ctx.get_executor());
    CHECK(s1.slot().has_handler());

    s1.emit(type);
    CHECK(list.size() == 2);
    CHECK(log.empty());  // the aborted completion is posted too
    ctx.poll();
    CHECK(log == std::vector<std::string>{"w1:" + std::to_string(aborted)});
    CHECK_FALSE(s1.slot().has_handler());  // the slot is cleared when the operation completes

    s1.emit(asio::cancellation_type::terminal);  // nothing is bound any more
    list.complete_all(asio::error_code{});
    CHECK(s0.slot().has_handler());              // cleared in the posted completion, not yet...
    s0.emit(asio::cancellation_type::terminal);  // ...but a cancellation after completion changes nothing
    ctx.restart();
    ctx.run();
    CHECK(log == std::vector<std::string>{"w1:" + std::to_string(aborted), "w0:0", "w2:0"});
    CHECK_FALSE(s2.slot().has_handler());
}

TEST_CASE("WaiterList ignores cancellation_type none") {
    asio::io_context ctx;
    std::vector<std::string> log;
    WaiterList<int> list;
    asio::cancellation_signal signal;
    list.park(asio::bind_cancellation_slot(signal.slot(), Recorder{&log, "w"}), 0, ctx.get_executor());
    signal.emit(asio::cancellation_type::none);
    CHECK(list.size() == 1);
    list.complete_front(asio::error_code{});
    ctx.run();
    CHECK(log == std::vector<std::string>{"w:0"});
}

TEST_CASE("WaiterList completes through the handler's associated executor with post semantics") {
    asio::io_context list_ctx;  // the list's (fallback) executor
    asio::io_context handler_ctx;
    auto strand = asio::make_strand(handler_ctx);
    std::vector<std::string> log;
    bool on_strand = false;
    WaiterList<int> list;
    list.park(asio::bind_executor(strand,
                                  [&](asio::error_code ec) {
                                      on_strand = strand.running_in_this_thread();
                                      log.push_back("bound:" + std::to_string(ec.value()));
                                  }),
              0, list_ctx.get_executor());

    // Outstanding work while parked: poll() on a context without work stops it.
    CHECK(handler_ctx.poll() == 0);
    CHECK_FALSE(handler_ctx.stopped());

    // Completed from a handler running on the very strand the completion goes to: still not inline.
    bool inline_call = true;
    asio::post(strand, [&] {
        list.complete_front(asio::error_code{});
        inline_call = !log.empty();
    });
    handler_ctx.run();
    CHECK_FALSE(inline_call);
    CHECK(on_strand);
    CHECK(log == std::vector<std::string>{"bound:0"});
    CHECK(list_ctx.poll() == 0);  // nothing was posted to the list's executor
}

TEST_CASE("WaiterList destroyed with parked operations destroys their handlers without calling them") {
    asio::io_context ctx;
    std::vector<std::string> log;
    Recorder recorder{&log, "w"};
    std::weak_ptr<int> alive = recorder.alive;
    asio::cancellation_signal signal;
    {
        WaiterList<int> list;
        list.park(asio::bind_cancellation_slot(signal.slot(), std::move(recorder)), 0, ctx.get_executor());
        CHECK_FALSE(alive.expired());
    }
    CHECK(alive.expired());
    CHECK_FALSE(signal.slot().has_handler());
    CHECK(ctx.poll() == 0);  // the work the operation held is released
    CHECK(ctx.stopped());
    CHECK(log.empty());
}

TEST_CASE("WaiterList shutdown of the context destroys parked handlers without calling them") {
    std::vector<std::string> log;
    std::weak_ptr<int> a0;
    std::weak_ptr<int> a1;
    WaiterList<int> list;  // outlives the context
    {
        asio::io_context ctx;
        Recorder r0{&log, "w0"};
        Recorder r1{&log, "w1"};
        a0 = r0.alive;
        a1 = r1.alive;
        list.park(std::move(r0), 0, ctx.get_executor());
        list.park(std::move(r1), 1, ctx.get_executor());
        CHECK(list.size() == 2);
    }
    CHECK(a0.expired());
    CHECK(a1.expired());
    CHECK(list.empty());
    CHECK(log.empty());
}

TEST_CASE("WaiterList shutdown frees lists kept alive only by the operations parked in each other") {
    std::weak_ptr<WaiterList<int>> first;
    std::weak_ptr<WaiterList<int>> second;
    bool called = false;
    {
        asio::io_context ctx;
        auto a = std::make_shared<WaiterList<int>>();
        auto b = std::make_shared<WaiterList<int>>();
        first = a;
        second = b;
        // a's operation owns b and b's owns a: a cycle that only the context's shutdown breaks.
        a->park([b, &called](asio::error_code) { called = true; }, 0, ctx.get_executor());
        b->park([a, &called](asio::error_code) { called = true; }, 0, ctx.get_executor());
        a->park([&called](asio::error_code) { called = true; }, 1, ctx.get_executor());
    }
    CHECK(first.expired());
    CHECK(second.expired());
    CHECK_FALSE(called);
}

TEST_CASE("WaiterList shutdown destroys a coroutine parked in a list that its own frame owns") {
    std::weak_ptr<WaiterList<int>> observed;
    bool resumed = false;
    {
        asio::io_context ctx;
        auto list = std::make_shared<WaiterList<int>>();
        observed = list;
        asio::co_spawn(
            ctx,
            [list, &resumed]() -> asio::awaitable<void> {
                const asio::any_io_executor executor = co_await asio::this_coro::executor;
                co_await async_park(*list, executor, 7, asio::use_awaitable);
                resumed = true;
            },
            asio::detached);
        list.reset();
        ctx.poll();
        REQUIRE_FALSE(observed.expired());
        CHECK(observed.lock()->size() == 1);
    }
    CHECK(observed.expired());
    CHECK_FALSE(resumed);
}

TEST_CASE("WaiterList parked coroutine resumes with the completion's error") {
    asio::io_context ctx;
    WaiterList<int> list;
    std::optional<asio::error_code> result;
    asio::co_spawn(
        ctx,
        [&]() -> asio::awaitable<void> {
            const asio::any_io_executor executor = co_await asio::this_coro::executor;
            try {
                co_await async_park(list, executor, 1, asio::use_awaitable);
                result = asio::error_code{};
            } catch (const asio::system_error& e) {
                result = e.code();
            }
        },
        asio::detached);
    ctx.poll();
    REQUIRE(list.size() == 1);
    list.complete_front(asio::error::eof);
    ctx.run();
    REQUIRE(result.has_value());
    CHECK(*result == asio::error::eof);
}

TEST_CASE("WaiterList prepared operations park and complete like park() and complete_now()") {
    asio::io_context ctx;
    std::vector<std::string> log;
    WaiterList<int> list;
    asio::cancellation_signal s1;
    // Made where the handler's type is known, parked by code that knows only WaiterList<int>::Prepared.
    auto p0 = WaiterList<int>::prepare(Recorder{&log, "w0"}, ctx.get_executor());
    auto p1 =
        WaiterList<int>::prepare(asio::bind_cancellation_slot(s1.slot(), Recorder{&log, "w1"}), ctx.get_executor());
    auto p2 = WaiterList<int>::prepare(Recorder{&log, "w2"}, ctx.get_executor());
    CHECK(list.empty());
    CHECK_FALSE(s1.slot().has_handler());  // the slot is bound when the operation is parked

    list.park(std::move(p0), 10, ctx.get_executor());
    list.park(std::move(p1), 11, ctx.get_executor());
    CHECK(list.size() == 2);
    CHECK(list.front_payload() == 10);
    CHECK(s1.slot().has_handler());
    list.complete_now(std::move(p2), asio::error::eof);
    CHECK(log.empty());  // posted, never inline

    s1.emit(asio::cancellation_type::terminal);
    CHECK(list.size() == 1);
    list.complete_front(asio::error_code{});
    ctx.run();
    const int eof = asio::error::eof;
    CHECK(log == std::vector<std::string>{"w2:" + std::to_string(eof), "w1:" + std::to_string(aborted), "w0:0"});
}

TEST_CASE("WaiterList prepared operation destroyed unused destroys its handler without calling it") {
    asio::io_context ctx;
    std::vector<std::string> log;
    Recorder recorder{&log, "w0"};
    std::weak_ptr<int> alive = recorder.alive;
    {
        auto prepared = WaiterList<int>::prepare(std::move(recorder), ctx.get_executor());
        auto moved = std::move(prepared);  // ownership moves with it: destroyed once
        CHECK_FALSE(alive.expired());
    }
    CHECK(alive.expired());
    ctx.run();
    CHECK(log.empty());
}
