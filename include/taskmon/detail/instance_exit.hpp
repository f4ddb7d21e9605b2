// taskmon — coroutine supervision for standalone Asio.
// SPDX-License-Identifier: MIT
//
// InstanceExit: the completion handler of a supervised instance's co_spawn, which hands the instance's exit to its
// monitor on the monitor's strand (internal).
#pragma once

#include <taskmon/detail/strand_executor.hpp>

#include <asio/any_io_executor.hpp>
#include <asio/post.hpp>

#include <exception>
#include <memory>
#include <utility>

namespace taskmon::detail {

/// The completion of an instance's co_spawn: hands the instance's exit to its monitor, on the monitor's strand. Its
/// associated executor is that strand, so an instance that ends without suspending (co_spawn then posts its
/// completion there) reaches on_exit in one post, not two through its component's strand. One that suspended is
/// completed by a dispatch from its component's strand, which may run this handler inline there: then it posts,
/// so that on_exit (listeners, factories) never holds up the other components of a shared strand. It stores no
/// executor: it returns the monitor's (`get_executor`), through the state it holds anyway.
template <typename State>
struct InstanceExit {
    using executor_type = asio::any_io_executor;

    const executor_type& get_executor() const noexcept { return state->strand_; }

    void operator()(std::exception_ptr error) {
        if (running_in_strand(*component->strand)) {
            const auto& strand = state->strand_;  // before *this moves: argument order is unspecified
            asio::post(strand, [self = std::move(*this), error = std::move(error)]() mutable {
                self.state->on_exit(self.component, std::move(error));
            });
            return;
        }
        state->on_exit(component, std::move(error));
    }

    std::shared_ptr<State> state;
    typename State::ComponentPtr component;  // the exit is its live instance's
};

}  // namespace taskmon::detail
