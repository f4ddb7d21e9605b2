// Tests for taskmon/agent/timeout_error.hpp: what a Supervisor call that exceeded its timeout ends with.
#include <taskmon/agent/timeout_error.hpp>

#include "taskmon_catch.hpp"

#include <stdexcept>
#include <string>
#include <type_traits>

TEST_CASE("TimeoutError is a std::runtime_error carrying its message") {
    static_assert(std::is_base_of_v<std::runtime_error, taskmon::TimeoutError>);
    try {
        throw taskmon::TimeoutError{"decide() exceeded decide_timeout (2s)"};
    } catch (const std::runtime_error& e) {  // callers that catch runtime_error see it too
        CHECK(std::string{e.what()} == "decide() exceeded decide_timeout (2s)");
        CHECK(dynamic_cast<const taskmon::TimeoutError*>(&e) != nullptr);
    }
}
