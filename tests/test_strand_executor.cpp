// The strands the monitor makes of its executor, and the check that a handler runs on one: on the executors of an
// io_context and a thread_pool, on a registered one (the simulation's) and on any other (here an io_context's
// executor that tracks outstanding work, whose strands are strands of a type-erased executor).
#include <taskmon/detail/executor_target.hpp>
#include <taskmon/detail/strand_executor.hpp>
#include <taskmon/testing/simulation.hpp>

#include "taskmon_catch.hpp"

#include <asio/io_context.hpp>
#include <asio/post.hpp>
#include <asio/thread_pool.hpp>

#include <functional>
#include <future>
#include <utility>

using taskmon::detail::executor_target;
using taskmon::detail::make_strand_executor;
using taskmon::detail::running_in_strand;

namespace {

/// Whether a handler posted to `a` finds itself on `a`, and on `b`.
std::pair<bool, bool> seen_from(const asio::any_io_executor& a, const asio::any_io_executor& b,
                                const std::function<void()>& drive) {
    std::promise<std::pair<bool, bool>> seen;
    asio::post(a, [&] { seen.set_value({running_in_strand(a), running_in_strand(b)}); });
    drive();
    return seen.get_future().get();
}

}  // namespace

TEST_CASE("running_in_strand: true on its own strand only, on an io_context and on another executor",
          "[strand_executor]") {
    SECTION("an io_context's executor: strands of the concrete executor") {
        asio::io_context io{1};
        const auto a = make_strand_executor(io.get_executor());
        const auto b = make_strand_executor(io.get_executor());
        CHECK(executor_target<asio::strand<asio::io_context::executor_type>>(a) != nullptr);
        CHECK(seen_from(a, b, [&] { io.run(); }) == std::pair{true, false});
        CHECK_FALSE(running_in_strand(a));
    }
    SECTION("the simulation's executor, registered: strands of the concrete executor") {
        taskmon::testing::Simulation sim{3};
        const auto a = make_strand_executor(sim.get_executor());
        const auto b = make_strand_executor(sim.get_executor());
        using SimStrand = asio::strand<taskmon::testing::Simulation::executor_type>;
        CHECK(executor_target<SimStrand>(a) != nullptr);
        CHECK(executor_target<asio::strand<asio::any_io_executor>>(a) == nullptr);
        CHECK(seen_from(a, b, [&] { sim.run(); }) == std::pair{true, false});
        CHECK_FALSE(running_in_strand(a));
    }
    SECTION("a thread_pool's executor: strands of the concrete executor") {
        asio::thread_pool pool{1};
        const asio::any_io_executor ex = pool.get_executor();
        const auto a = make_strand_executor(ex);
        const auto b = make_strand_executor(ex);
        CHECK(executor_target<asio::strand<asio::thread_pool::executor_type>>(a) != nullptr);
        CHECK(executor_target<asio::strand<asio::any_io_executor>>(a) == nullptr);
        CHECK(seen_from(a, b, [] {}) == std::pair{true, false});
        CHECK_FALSE(running_in_strand(a));
        pool.join();
    }
    SECTION("an executor of no registered type: strands of the type-erased executor") {
        asio::io_context io{1};
        const asio::any_io_executor ex = asio::require(io.get_executor(), asio::execution::outstanding_work.tracked);
        const auto a = make_strand_executor(ex);
        const auto b = make_strand_executor(ex);
        // The check that Asio 1.22's const target<T>() skips: this is not a strand of the io_context's executor.
        CHECK(executor_target<asio::strand<asio::io_context::executor_type>>(a) == nullptr);
        CHECK(executor_target<asio::strand<asio::any_io_executor>>(a) != nullptr);
        CHECK(seen_from(a, b, [&] { io.run_one(); }) == std::pair{true, false});  // (run() would wait for `ex`)
        CHECK_FALSE(running_in_strand(a));
    }
}
