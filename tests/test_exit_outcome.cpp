// Tests for taskmon/detail/exit_outcome.hpp and detail/exception_inspection.hpp: how an instance's exit is
// classified and described, read from the exception_ptr as a catch clause would see it.
#include <taskmon/detail/exception_inspection.hpp>
#include <taskmon/detail/exit_outcome.hpp>

#include "taskmon_catch.hpp"

#include <asio/error.hpp>
#include <asio/experimental/channel_error.hpp>
#include <asio/multiple_exceptions.hpp>

#include <exception>
#include <stdexcept>
#include <string>
#include <system_error>

using taskmon::detail::classify_exit;
using taskmon::detail::describe;
using taskmon::detail::ExitOutcome;

namespace {

/// A std::exception that is not the first base: a catch clause adjusts the pointer to reach it.
struct Tagged {
    virtual ~Tagged() = default;
    int tag = 42;
};
struct LateBase : Tagged, std::runtime_error {
    LateBase() : std::runtime_error{"late base"} {}
};

/// A user's error derived from std::system_error.
struct DeviceError : std::system_error {
    explicit DeviceError(std::error_code code) : std::system_error{code, "device"} {}
};

template <typename E>
std::exception_ptr thrown(E e) {
    return std::make_exception_ptr(std::move(e));
}

}  // namespace

TEST_CASE("classify_exit: a return, a failure, a cancellation", "[exit_outcome]") {
    CHECK(classify_exit(nullptr).kind == ExitOutcome::returned);
    const auto failed = classify_exit(thrown(std::runtime_error{"boom"}));
    CHECK(failed.kind == ExitOutcome::failed);
    CHECK(failed.reason == "std::runtime_error: boom");
    const auto aborted = classify_exit(thrown(std::system_error{asio::error::operation_aborted}));
    CHECK(aborted.kind == ExitOutcome::aborted);
    CHECK(aborted.reason.rfind("std::system_error: ", 0) == 0);
    CHECK(classify_exit(thrown(std::system_error{std::make_error_code(std::errc::operation_canceled)})).kind ==
          ExitOutcome::aborted);
    CHECK(classify_exit(thrown(std::system_error{asio::error::connection_reset})).kind == ExitOutcome::failed);
    // A cancelled send or receive on an Asio channel ends with the channel's own code; a closed channel does not
    // mean a cancellation.
    CHECK(classify_exit(thrown(std::system_error{asio::experimental::error::channel_cancelled})).kind ==
          ExitOutcome::aborted);
    CHECK(classify_exit(thrown(std::system_error{asio::experimental::error::channel_closed})).kind ==
          ExitOutcome::failed);
}

TEST_CASE("classify_exit: derived types are caught by their bases, with the base's subobject", "[exit_outcome]") {
    const auto device = classify_exit(thrown(DeviceError{asio::error::operation_aborted}));
    CHECK(device.kind == ExitOutcome::aborted);
    CHECK(device.reason.rfind("(anonymous namespace)::DeviceError: device", 0) == 0);
    const auto late = classify_exit(thrown(LateBase{}));
    CHECK(late.kind == ExitOutcome::failed);
    CHECK(late.reason == "(anonymous namespace)::LateBase: late base");  // what() read through the adjusted pointer
    CHECK(describe(thrown(LateBase{})) == late.reason);
}

TEST_CASE("classify_exit: anything that is not a std::exception is an unknown failure", "[exit_outcome]") {
    for (const auto& error : {thrown(7), thrown("text"), thrown(std::string{"a string"})}) {
        const auto outcome = classify_exit(error);
        CHECK(outcome.kind == ExitOutcome::failed);
        CHECK(outcome.reason == "unknown exception");
        CHECK(describe(error) == "unknown exception");
    }
}

TEST_CASE("classify_exit: multiple_exceptions is classified by its first exception", "[exit_outcome]") {
    const auto wrapped = thrown(asio::multiple_exceptions{thrown(std::system_error{asio::error::operation_aborted})});
    CHECK(classify_exit(wrapped).kind == ExitOutcome::aborted);
    CHECK(taskmon::detail::is_operation_aborted(wrapped));
    const auto empty = classify_exit(thrown(asio::multiple_exceptions{nullptr}));
    CHECK(empty.kind == ExitOutcome::failed);
    CHECK(empty.reason.rfind("asio::multiple_exceptions: ", 0) == 0);
    CHECK_FALSE(taskmon::detail::is_operation_aborted(thrown(std::runtime_error{"x"})));
}

#ifdef TASKMON_HAS_EXCEPTION_INSPECTION
TEST_CASE("caught_as: what a catch clause of that type would bind to, or null", "[exit_outcome]") {
    using taskmon::detail::caught_as;
    const auto late = thrown(LateBase{});
    const auto* as_exception = caught_as<std::exception>(late);
    REQUIRE(as_exception != nullptr);
    CHECK(std::string{as_exception->what()} == "late base");
    const auto* as_tagged = caught_as<Tagged>(late);
    REQUIRE(as_tagged != nullptr);
    CHECK(as_tagged->tag == 42);
    CHECK(caught_as<std::system_error>(late) == nullptr);
    CHECK(caught_as<std::exception>(thrown(7)) == nullptr);
    CHECK(caught_as<std::exception>(std::exception_ptr{}) == nullptr);
    // The object the exception_ptr keeps, not a copy: the same address every time.
    CHECK(caught_as<std::exception>(late) == as_exception);
}
#endif
