// taskmon — coroutine supervision for standalone Asio.
// SPDX-License-Identifier: MIT
//
// LazyText: a string that costs one pointer until it is first set (internal).
#pragma once

#include <memory>
#include <string>
#include <utility>

namespace taskmon::detail {

/// A string that costs one pointer until it is first set (most components never fail).
class LazyText {
public:
    LazyText& operator=(std::string text) {
        if (text_) {
            *text_ = std::move(text);
        } else {
            text_ = std::make_unique<std::string>(std::move(text));
        }
        return *this;
    }

    [[nodiscard]] const std::string& str() const noexcept {
        static const std::string empty;
        return text_ ? *text_ : empty;
    }

private:
    std::unique_ptr<std::string> text_;
};

}  // namespace taskmon::detail
