// Tests for taskmon/detail/log_text.hpp: the text pieces of log lines. Whatever a name or an exception message
// holds, a line stays one line of valid UTF-8 and its key=value fields stay readable.
#include <taskmon/detail/log_text.hpp>

#include "taskmon_catch.hpp"

#include <fmt/format.h>

#include <chrono>
#include <exception>
#include <stdexcept>
#include <string>
#include <vector>

using taskmon::detail::describe;
using taskmon::detail::FieldValue;
using taskmon::detail::quote;

namespace {

/// An exception type whose what() returns a null pointer (a user's type may; the standard's never do).
struct NullWhat : std::exception {
    const char* what() const noexcept override { return nullptr; }
};

}  // namespace

TEST_CASE("quote() escapes what could end or forge a line, and leaves other text as it is", "[log_text]") {
    struct Row {
        std::string text;
        std::string quoted;
    };
    for (const auto& [text, quoted] : std::vector<Row>{
             {"Connection lost", R"("Connection lost")"},
             {"say \"hi\" \\ bye", R"("say \"hi\" \\ bye")"},
             {"evil\nforged line component=other", R"("evil\nforged line component=other")"},
             {"a\rb\tc", R"("a\rb\tc")"},
             {std::string{"nul\0byte", 8}, R"("nul\x00byte")"},
             {"\x1b[31mred\x1b[0m", R"("\x1b[31mred\x1b[0m")"},
             {"del\x7f", R"("del\x7f")"},
             {"next\xC2\x85line", R"("next\u0085line")"},  // C1 control NEL
             {"line\xE2\x80\xA8sep\xE2\x80\xA9para", R"("line\u2028sep\u2029para")"},
             {"abc\xE2\x80\xAE"
              "fed",
              R"("abc\u202efed")"},  // a bidi override cannot reorder the line
             {"soft\xC2\xADhyphen", R"("soft\u00adhyphen")"},
             {"bad \xFF byte", R"("bad \xff byte")"},               // not UTF-8
             {"cut \xE2\x82", R"("cut \xe2\x82")"},                 // truncated sequence
             {"Grüße, 温度 🌡", "\"Grüße, 温度 🌡\""},  // valid UTF-8 is kept
         }) {
        INFO(quoted);
        CHECK(quote(text) == quoted);
        CHECK(quote(text).find('\n') == std::string::npos);
    }
}

TEST_CASE("A name is a bare field value unless a reader could misread it, then it is quoted", "[log_text]") {
    CHECK(fmt::format("component={}", FieldValue{"perception"}) == "component=perception");
    CHECK(fmt::format("component={}", FieldValue{"conn-17.a_b:c/d"}) == "component=conn-17.a_b:c/d");
    CHECK(fmt::format("component={}", FieldValue{"温度"}) == "component=温度");
    CHECK(fmt::format("component={}", FieldValue{"my comp"}) == R"(component="my comp")");
    CHECK(fmt::format("component={}", FieldValue{"a=b"}) == R"(component="a=b")");
    CHECK(fmt::format("component={}", FieldValue{"say\"x"}) == R"(component="say\"x")");
    CHECK(fmt::format("component={}", FieldValue{"back\\slash"}) == R"(component="back\\slash")");
    CHECK(fmt::format("component={}", FieldValue{"two\nlines"}) == R"(component="two\nlines")");
    CHECK(fmt::format("component={}", FieldValue{"nb\xC2\xA0space"}) == "component=\"nb\xC2\xA0space\"");
    CHECK(fmt::format("component={}", FieldValue{""}) == R"(component="")");
}

TEST_CASE("An exception whose what() is a null pointer is described by its type alone", "[log_text]") {
    CHECK(std::string{taskmon::detail::what_of(NullWhat{})}.empty());
    const auto text = describe(std::make_exception_ptr(NullWhat{}));
    CHECK(text.rfind("(anonymous namespace)::NullWhat: ", 0) == 0);
    CHECK(describe(std::make_exception_ptr(std::runtime_error("Connection lost"))) ==
          "std::runtime_error: Connection lost");
    CHECK(describe(std::make_exception_ptr(42)) == "unknown exception");
}

TEST_CASE("The lazily formatted values write what their eager functions return", "[log_text]") {
    using namespace std::chrono_literals;
    using taskmon::detail::format_seconds;
    using taskmon::detail::format_window;
    const std::string reason = "std::runtime_error: bad \"input\"\nline two";
    CHECK(fmt::format("{}", taskmon::detail::QuotedValue{reason}) == quote(reason));
    for (const auto d :
         {std::chrono::nanoseconds{0}, std::chrono::nanoseconds{1500ms}, std::chrono::nanoseconds{1234us}}) {
        CHECK(fmt::format("{}", taskmon::detail::SecondsValue{d}) == format_seconds(d));
    }
    for (const auto w : {std::chrono::nanoseconds{1h}, std::chrono::nanoseconds{90s}, std::chrono::nanoseconds{1ms}}) {
        CHECK(fmt::format("{}", taskmon::detail::WindowValue{w}) == format_window(w));
    }
    // Seconds with the precision the value needs: a sub-millisecond timeout is not written as 0.000.
    CHECK(format_seconds(4s) == "4.0");
    CHECK(format_seconds(125ms) == "0.125");
    CHECK(format_seconds(250us) == "0.000250");
    CHECK(format_seconds(std::chrono::nanoseconds{1500}) == "0.000001500");
    const std::vector<std::string> members{"a", "", "c d", "e\"f"};
    CHECK(fmt::format("{}", taskmon::detail::QuotedList{&members}) == quote("a,,c d,e\"f"));
    const std::vector<std::string> none;
    CHECK(fmt::format("{}", taskmon::detail::QuotedList{&none}) == "\"\"");
}
