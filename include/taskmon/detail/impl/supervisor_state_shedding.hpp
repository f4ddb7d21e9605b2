// taskmon — coroutine supervision for standalone Asio.
// SPDX-License-Identifier: MIT
//
// SupervisorState's load shedding: the load_shedding_monitor loop and the io_semaphore count it lowers (internal).
// The definitions are `inline`, as they were inside the class: GCC gives functions declared inline larger
// inlining limits.
#pragma once

#include <taskmon/detail/supervisor_state.hpp>

namespace taskmon::detail {

template <typename Clock>
inline asio::awaitable<void> SupervisorState<Clock>::load_shedding_monitor(Deadline&) {
    Timer timer{strand_};
    for (;;) {
        const auto lag = co_await sleep_and_measure_lag(timer, clock_duration(settings_.load_sample_interval));
        const LoadSample sample{cpu_source_(), lag};
        if (!gate_.update(sample)) continue;
        set_shedding(gate_.shedding(), gate_.reason(), &sample);
    }
}

template <typename Clock>
inline void SupervisorState<Clock>::set_shedding(bool on, const std::string& reason, const LoadSample* sample) {
    shedding_ = on;
    if (on) ++counters_.load_shedding_entries;
    const auto detail = reason + (on ? lower_io_semaphore() : restore_io_semaphore());
    record(on ? HistoryEventKind::load_shedding_entered : HistoryEventKind::load_shedding_left,
           components::load_shedding_monitor, detail);
    log(spdlog::level::info, "Load shedding {} component=load_shedding_monitor {}", on ? "entered" : "left", detail);
    if (hooks_.on_shedding_change) {
        SheddingChange change{.shedding = on, .sampled = sample != nullptr, .reason = detail};
        if (sample) {
            change.cpu = sample->cpu;
            change.loop_lag = sample->loop_lag;
        }
        call_hook("on_shedding_change", hooks_.on_shedding_change, change);
    }
    notify();
}

template <typename Clock>
inline std::string SupervisorState<Clock>::lower_io_semaphore() {
    const std::size_t target = settings_.shed_io_semaphore_count;
    const std::size_t current = get_io_semaphore_stats().capacity;
    if (target == 0 || target >= current) return {};
    io_semaphore_restore_ = current;
    set_io_semaphore_count(target);
    return fmt::format(" io_semaphore_count={}->{}", current, target);
}

template <typename Clock>
inline std::string SupervisorState<Clock>::restore_io_semaphore() {
    if (!io_semaphore_restore_) return {};
    const std::size_t count = *io_semaphore_restore_;
    io_semaphore_restore_.reset();
    const std::size_t current = get_io_semaphore_stats().capacity;
    set_io_semaphore_count(count);
    return fmt::format(" io_semaphore_count={}->{}", current, count);
}

}  // namespace taskmon::detail
