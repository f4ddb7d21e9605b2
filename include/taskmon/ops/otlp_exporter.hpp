// taskmon — coroutine supervision for standalone Asio.
// SPDX-License-Identifier: MIT
//
// OtlpExporter: OpenTelemetry traces of a TaskMonitor (or of a Supervisor's components), sent to a collector as
// OTLP over HTTP with JSON encoding (POST /v1/traces, Content-Type application/json). One span per component
// incarnation, from its start (started, restarted, trial_started) to its exit (failed, cancelled_unexpectedly,
// completed, stopped, watchdog_timeout, startup_timeout, removed), linked to the previous incarnation's span;
// backoffs, give-ups, quarantines and liveness timeouts are span events.
//
//   taskmon::TaskMonitor monitor{io.get_executor()};
//   taskmon::OtlpExporter traces{io.get_executor(), monitor, {.host = "127.0.0.1", .port = 4318}};
//   ...
//   co_await monitor.close();
//   co_await traces.close(std::chrono::seconds{5});   // sends what is left, within 5 s
//
// A Supervisor: its steps as spans through wrap()ped hooks, its components through listen().
//   taskmon::OtlpExporter traces{io.get_executor(), settings};
//   Robot robot{io.get_executor(), agent, agent_settings, traces.wrap(std::move(hooks))};
//   traces.listen(robot);
//
// Families of collect() (names taskmon_otlp_*, see docs/operations.md):
//   taskmon_otlp_spans_exported_total        counter  spans a collector accepted (2xx)
//   taskmon_otlp_spans_dropped_total{reason} counter  queue_full, export_failed, closed
//   taskmon_otlp_requests_failed_total       counter  POSTs refused, unanswered, timed out or not 2xx
//   taskmon_otlp_queued_spans                gauge    spans waiting to be sent
#pragma once

#include <taskmon/detail/config.hpp>

#include <taskmon/detail/otlp_http_post.hpp>
#include <taskmon/detail/otlp_json.hpp>
#include <taskmon/detail/otlp_span.hpp>
#include <taskmon/event_subscription.hpp>
#include <taskmon/monitor_event.hpp>
#include <taskmon/ops/metric_family.hpp>
#include <taskmon/version.hpp>

#include <asio/any_io_executor.hpp>
#include <asio/awaitable.hpp>
#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/post.hpp>
#include <asio/redirect_error.hpp>
#include <asio/steady_timer.hpp>
#include <asio/strand.hpp>
#include <asio/use_awaitable.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace taskmon {

struct OtlpExporterSettings {
    std::string host = "127.0.0.1";  ///< the collector's host name or address (plain http)
    std::uint16_t port = 4318;       ///< OTLP/HTTP's default port
    std::string path = "/v1/traces";
    std::string service_name = "taskmon";  ///< the resource's service.name
    /// Spans per POST. 512 is the OpenTelemetry SDKs' default for their batch span processor.
    std::size_t max_batch_size = 512;
    /// How long a span may wait before it is sent (a partial batch goes out then). A span whose incarnation
    /// ended waits one more period for the backoff or give-up events that follow its exit, so it is sent
    /// within 2 × max_delay.
    std::chrono::milliseconds max_delay{5000};
    /// The bound of the queue: beyond it, ended spans are dropped and counted (reason queue_full). A span holds
    /// about 300 bytes plus its texts.
    std::size_t max_queued_spans = 2048;
    /// Bound of one POST: resolve, connect, send, and the response's status line.
    std::chrono::milliseconds timeout{10000};
    /// Span events kept per span (backoffs, give-ups ...); further ones are not recorded.
    std::size_t max_events_per_span = 16;
    /// The seed of the trace and span ids; 0 derives one from the clock and this object's address.
    std::uint64_t id_seed = 0;
};

/// Counters of an OtlpExporter (the values collect() renders).
struct OtlpExporterStats {
    std::uint64_t spans_exported = 0;               ///< accepted by the collector (2xx)
    std::uint64_t spans_dropped_queue_full = 0;     ///< ended while max_queued_spans were queued
    std::uint64_t spans_dropped_export_failed = 0;  ///< in a batch whose POST failed
    std::uint64_t spans_dropped_closed = 0;         ///< still queued when close() reached its deadline
    std::uint64_t requests_sent = 0;                ///< POSTs attempted
    std::uint64_t requests_failed = 0;              ///< refused, timed out, unanswered, or not 2xx
    std::size_t queued_spans = 0;                   ///< now
};

/// Exports the incarnations of one monitor's components as spans of one trace (the exporter's trace id).
///
/// The listener on the monitor's path only updates the component's span under a short lock of its own and
/// moves an ended span into a bounded queue; it never formats JSON, never waits for the network, and calls no
/// user code. A strand of `executor` sends: every max_delay, when a batch is full, on flush() and close(). A
/// failing collector (refused, timeout, non-2xx) costs its batch, counted; the monitor is not affected.
///
/// Lifetime: `source` must outlive the subscription (until close() or the destructor); `executor`'s execution
/// context must outlive this object. The destructor sends nothing: use close() to send what is queued. The sender
/// keeps a timer pending on `executor`: io_context::run() returns only after close() or the destructor.
/// Thread safety: stats(), collect(), flush() and close() may be called from any thread.
class OtlpExporter {
public:
    /// Exports the incarnations of `source`'s components: a BasicTaskMonitor<Clock> or a Supervisor (anything
    /// with subscribe(MonitorEventListener)). Throws std::invalid_argument naming the field for bad settings,
    /// std::logic_error if the monitor is closed.
    template <typename Source>
        requires requires(Source& s, MonitorEventListener l) {
            { s.subscribe(std::move(l)) } -> std::same_as<EventSubscription>;
        }
    OtlpExporter(asio::any_io_executor executor, Source& source, OtlpExporterSettings settings = {})
        : OtlpExporter{std::move(executor), std::move(settings)} {
        listen(source);
    }

    /// An exporter that listens to nothing yet: for a Supervisor, whose hooks (wrap()) are needed before it
    /// exists; listen() to it once it is constructed.
    explicit OtlpExporter(asio::any_io_executor executor, OtlpExporterSettings settings = {})
        : state_{std::make_shared<State>(asio::make_strand(executor), validated(std::move(settings)))} {
        state_->seed_ids(reinterpret_cast<std::uintptr_t>(state_.get()));
        asio::co_spawn(state_->strand, run(state_), asio::detached);
    }

    /// Subscribes to `source` (as the constructor does), ending the subscription to a previous one. Construct
    /// the source's components after this call: an incarnation that started before it is not exported.
    template <typename Source>
        requires requires(Source& s, MonitorEventListener l) {
            { s.subscribe(std::move(l)) } -> std::same_as<EventSubscription>;
        }
    void listen(Source& source) {
        subscription_ = source.subscribe([state = state_](const MonitorEvent& e) { state->on_event(e); });
    }

    OtlpExporter(const OtlpExporter&) = delete;
    OtlpExporter& operator=(const OtlpExporter&) = delete;

    ~OtlpExporter() {
        subscription_.unsubscribe();
        stop(state_);
    }

    /// Returns a Supervisor's `hooks` with on_run_start and on_step_end extended, like AgentMetrics::wrap: each
    /// finalized step becomes a span "agent.step" with a child span "decide" and one "act" per action that ran,
    /// placed in time by the step's offsets from the run's start (taken as the wall clock at on_run_start). The
    /// spans are made and queued on the Supervisor's strand, then the given hook (if any) is called. The hooks
    /// share the exporter's state, so they may outlive it (their spans are then never sent).
    template <typename Hooks>
    [[nodiscard]] Hooks wrap(Hooks hooks) const {
        hooks.on_run_start = [state = state_, user = std::move(hooks.on_run_start)] {
            {
                std::lock_guard lock{state->mutex};
                state->run_start = std::chrono::system_clock::now();
            }
            if (user) user();
        };
        hooks.on_step_end = [state = state_, user = std::move(hooks.on_step_end)](const auto& step) {
            state->on_step(step);
            if (user) user(step);
        };
        return hooks;
    }

    /// Sends every span whose incarnation has ended (those queued and those waiting for their follow-up events),
    /// in batches; returns when they were sent or dropped. Spans still open (running instances) stay open.
    asio::awaitable<void> flush() {
        auto op = asio::co_spawn(state_->strand, send_queued(state_, true, std::nullopt), asio::use_awaitable);
        co_await std::move(op);
    }

    /// Stops listening, ends the spans of the incarnations still running (see below), sends what flush() would
    /// within `deadline` (what is left then is dropped, reason closed), and stops the sender. Returns at the
    /// deadline at the latest, also while a send is in flight (that one goes on until its own timeout and is
    /// counted then). Idempotent.
    ///
    /// An incarnation still running (the monitor not closed first, or a Supervisor's components) is exported
    /// with the close's wall-clock time as its end (its start if that is later: a virtual clock ahead of the
    /// wall clock), the attribute `taskmon.open_at_close` = true instead of `taskmon.exit`, and its status
    /// unset: OTLP's Unset says that the instrumentation does not know the outcome, while Ok or Error would
    /// assert one that has not happened. Close the monitor first to export each incarnation with its real exit.
    asio::awaitable<void> close(std::chrono::milliseconds deadline) {
        subscription_.unsubscribe();
        state_->end_open_spans(std::chrono::system_clock::now());
        const auto until = std::chrono::steady_clock::now() + deadline;
        auto op = asio::co_spawn(state_->strand, send_queued(state_, true, until), asio::use_awaitable);
        co_await std::move(op);
        {
            std::lock_guard lock{state_->mutex};
            state_->release_parked(true);  // those the deadline left parked count as closed too
            state_->stats.spans_dropped_closed += state_->queue.size();
            state_->queue.clear();
            state_->closed = true;
        }
        stop(state_);
    }

    [[nodiscard]] OtlpExporterStats stats() const {
        std::lock_guard lock{state_->mutex};
        auto out = state_->stats;
        out.queued_spans = state_->queue.size();
        return out;
    }

    /// The trace id of every span, as 32 hex digits.
    [[nodiscard]] std::string trace_id() const {
        std::string out;
        detail::append_otlp_hex(out, state_->trace.high);
        detail::append_otlp_hex(out, state_->trace.low);
        return out;
    }

    /// A snapshot of the four families of the header comment.
    [[nodiscard]] std::vector<MetricFamily> collect() const {
        const auto s = stats();
        const auto n = [](std::uint64_t v) { return static_cast<double>(v); };
        std::vector<MetricFamily> out;
        out.push_back({"taskmon_otlp_spans_exported_total",
                       "Spans an OTLP collector accepted.",
                       MetricType::counter,
                       {MetricSample{{}, n(s.spans_exported)}}});
        out.push_back({"taskmon_otlp_spans_dropped_total",
                       "Spans not exported: queue full, export failed, or left at close.",
                       MetricType::counter,
                       {MetricSample{{{"reason", "queue_full"}}, n(s.spans_dropped_queue_full)},
                        MetricSample{{{"reason", "export_failed"}}, n(s.spans_dropped_export_failed)},
                        MetricSample{{{"reason", "closed"}}, n(s.spans_dropped_closed)}}});
        out.push_back({"taskmon_otlp_requests_failed_total",
                       "OTLP export requests refused, timed out, unanswered or answered with a non-2xx status.",
                       MetricType::counter,
                       {MetricSample{{}, n(s.requests_failed)}}});
        out.push_back({"taskmon_otlp_queued_spans",
                       "Spans waiting to be sent to the OTLP collector.",
                       MetricType::gauge,
                       {MetricSample{{}, static_cast<double>(s.queued_spans)}}});
        return out;
    }

private:
    /// One component's trace state: its running incarnation, the one that ended and still takes the events
    /// that follow an exit (restart_scheduled, gave_up, quarantined), and the id the next one links to.
    struct ComponentTrace {
        std::optional<detail::OtlpSpan> open;
        std::optional<detail::OtlpSpan> closing;
        bool closing_seen = false;  ///< a sender tick saw `closing`: the next one queues it
        std::uint64_t last_span_id = 0;
    };

    struct State : std::enable_shared_from_this<State> {
        State(asio::strand<asio::any_io_executor> s, OtlpExporterSettings st)
            : strand{std::move(s)}, settings{std::move(st)}, timer{strand}, idle{strand} {
            idle.expires_at(asio::steady_timer::time_point::max());
        }

        asio::strand<asio::any_io_executor> strand;
        const OtlpExporterSettings settings;
        detail::OtlpTraceId trace{};
        std::atomic<bool> stopping{false};

        // Used on the strand only.
        asio::steady_timer timer;  ///< the max_delay period; cancelled when a batch is full
        asio::steady_timer idle;   ///< never expires; cancelled when a send ends, to wake a waiting one
        bool sending = false;

        // Guarded by `mutex`.
        mutable std::mutex mutex;
        std::map<std::string, ComponentTrace, std::less<>> components;
        std::deque<detail::OtlpSpan> queue;
        OtlpExporterStats stats{};
        std::uint64_t id_state = 0;
        std::chrono::system_clock::time_point run_start = std::chrono::system_clock::now();  ///< of wrap()'s run
        bool kick_pending = false;
        bool closed = false;

        void seed_ids(std::uintptr_t address) {
            std::uint64_t seed = settings.id_seed;
            if (seed == 0) {
                seed = static_cast<std::uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count()) ^
                       (static_cast<std::uint64_t>(address) << 17);
            }
            id_state = seed;
            trace.high = next_id();
            trace.low = next_id();
        }

        /// splitmix64: distinct, well-mixed, never 0 (an all-zero id is invalid in OTLP).
        std::uint64_t next_id() {
            std::uint64_t z = (id_state += 0x9E3779B97F4A7C15ULL);
            z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
            z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
            z ^= z >> 31;
            return z == 0 ? 1 : z;
        }

        void on_event(const MonitorEvent& e) {
            if (e.component.empty()) return;  // closed, a group's own events
            bool kick = false;
            {
                std::lock_guard lock{mutex};
                if (closed) return;
                apply(e);
                kick = wants_kick();
            }
            // A post allocates; one per full batch, not per event.
            if (kick) asio::post(strand, [self = shared_from_this()] { self->timer.cancel(); });
        }

        /// A Supervisor step (a StepRecord): its span, the decide span and the act spans.
        template <typename Step>
        void on_step(const Step& step) {
            std::vector<detail::OtlpSpan> spans;
            spans.reserve(2 + step.actions.size());
            // Reserved above: the references below stay valid as spans are added.
            detail::OtlpSpan& step_span = spans.emplace_back();
            step_span.name = "agent.step";
            step_span.end_kind = MonitorEventKind::completed;
            step_span.attributes.push_back({"taskmon.agent.step", {}, static_cast<std::int64_t>(step.number), true});
            step_span.attributes.push_back({"taskmon.agent.outcome", std::string{to_string(step.outcome)}});
            set_status(step_span, !step.error.empty(), step.error);
            detail::OtlpSpan& decide = spans.emplace_back();
            decide.name = "decide";
            if (step.fate) decide.attributes.push_back({"taskmon.agent.fate", std::string{to_string(*step.fate)}});
            set_status(decide, !step.fate, step.error);
            for (std::size_t i = 0; i < step.actions.size(); ++i) {
                const auto& action = step.actions[i];
                if (!action.started_at) continue;  // skipped: never ran
                detail::OtlpSpan& act = spans.emplace_back();
                act.name = "act";
                act.attributes.push_back({"taskmon.agent.action.index", {}, static_cast<std::int64_t>(i), true});
                act.attributes.push_back({"taskmon.agent.action.outcome", std::string{to_string(action.outcome)}});
                set_status(act, !action.result.success || !action.result.error.empty(), action.result.error);
            }
            bool kick = false;
            {
                std::lock_guard lock{mutex};
                if (closed) return;
                const auto at = [this](std::chrono::nanoseconds offset) {
                    return run_start + std::chrono::duration_cast<std::chrono::system_clock::duration>(offset);
                };
                step_span.start = at(step.started_at);
                step_span.end = at(step.finished_at);
                decide.start = step_span.start;
                decide.end = at(step.decided_at ? *step.decided_at : step.finished_at);
                std::size_t next = 2;
                for (const auto& action : step.actions) {
                    if (!action.started_at) continue;
                    spans[next].start = at(*action.started_at);
                    spans[next].end = at(action.finished_at ? *action.finished_at : step.finished_at);
                    ++next;
                }
                step_span.span_id = next_id();
                for (std::size_t i = 1; i < spans.size(); ++i) {
                    spans[i].span_id = next_id();
                    spans[i].parent_span_id = step_span.span_id;
                }
                for (auto& span : spans) enqueue(std::move(span));
                kick = wants_kick();
            }
            if (kick) asio::post(strand, [self = shared_from_this()] { self->timer.cancel(); });
        }

        static void set_status(detail::OtlpSpan& span, bool error, const std::string& message) {
            span.status = error ? detail::OtlpStatusCode::error : detail::OtlpStatusCode::ok;
            if (error) span.status_message = message;
        }

        /// Whether a full batch waits and the sender was not told yet. Under `mutex`.
        bool wants_kick() {
            if (queue.size() < settings.max_batch_size || kick_pending) return false;
            kick_pending = true;
            return true;
        }

        void apply(const MonitorEvent& e) {
            switch (e.kind) {
                case MonitorEventKind::started:
                case MonitorEventKind::restarted: begin(e); break;
                case MonitorEventKind::trial_started: {
                    auto& c = components[e.component];
                    if (c.open && c.open->task_id == e.task_id) {
                        c.open->trial = true;
                    } else {
                        begin(e);
                        components[e.component].open->trial = true;
                    }
                    break;
                }
                case MonitorEventKind::failed:
                case MonitorEventKind::cancelled_unexpectedly:
                case MonitorEventKind::watchdog_timeout:
                case MonitorEventKind::startup_timeout: end(e, detail::OtlpStatusCode::error); break;
                case MonitorEventKind::completed: end(e, detail::OtlpStatusCode::ok); break;
                case MonitorEventKind::stopped:
                    end(e, e.reason.empty() ? detail::OtlpStatusCode::ok : detail::OtlpStatusCode::error);
                    break;
                case MonitorEventKind::removed: {
                    const auto it = components.find(e.component);
                    if (it == components.end()) break;
                    end(e, detail::OtlpStatusCode::ok);
                    if (it->second.closing) enqueue(std::move(*it->second.closing));
                    components.erase(it);
                    break;
                }
                case MonitorEventKind::restart_scheduled:
                case MonitorEventKind::gave_up:
                case MonitorEventKind::quarantined:
                case MonitorEventKind::escalated:
                case MonitorEventKind::quarantine_closed:
                case MonitorEventKind::factory_failed:
                case MonitorEventKind::stop_timeout: annotate(e); break;
                default: break;  // ready, restart_requested ...: not part of a span
            }
        }

        void begin(const MonitorEvent& e) {
            auto& c = components[e.component];
            if (c.open) {  // its exit was not seen: end it here, status unset
                c.open->end = e.time;
                park(c, std::move(*c.open));
                c.open.reset();
            }
            if (c.closing) {
                enqueue(std::move(*c.closing));
                c.closing.reset();
            }
            detail::OtlpSpan span;
            span.span_id = next_id();
            span.link_span_id = c.last_span_id;
            c.last_span_id = span.span_id;
            span.component = e.component;
            span.group = e.group;
            span.task_id = e.task_id;
            span.start = e.time;
            span.start_kind = e.kind == MonitorEventKind::trial_started ? MonitorEventKind::restarted : e.kind;
            span.spawned = e.spawned;
            span.restart_count = e.restart_count;
            if (e.kind == MonitorEventKind::restarted) {
                span.attempt = e.attempt;
                span.restart_reason = e.restart_reason;
                span.restart_cause = e.reason;
            }
            c.open = std::move(span);
        }

        void end(const MonitorEvent& e, detail::OtlpStatusCode status) {
            const auto it = components.find(e.component);
            if (it == components.end()) return;
            auto& c = it->second;
            if (!c.open || c.open->task_id != e.task_id) return;  // started before we subscribed, or ended already
            auto& span = *c.open;
            span.end = e.time;
            span.end_kind = e.kind;
            span.status = status;
            const bool failure = e.kind != MonitorEventKind::completed && e.kind != MonitorEventKind::stopped &&
                                 e.kind != MonitorEventKind::removed;
            if (status == detail::OtlpStatusCode::error) {
                span.status_message = e.reason.empty() ? std::string{to_string(e.kind)} : e.reason;
                if (e.kind == MonitorEventKind::watchdog_timeout || e.kind == MonitorEventKind::startup_timeout) {
                    add_event(span, e);
                }
                if (!e.reason.empty()) {
                    detail::OtlpSpanEvent ex{"exception", e.time};
                    ex.reason = e.reason;
                    add_event(span, std::move(ex));
                }
            }
            if (failure) {
                span.failure = true;
                span.failure_class = e.failure_class;
            }
            park(c, std::move(span));
            c.open.reset();
        }

        /// close(): ends the running incarnations' spans at `now` (see close()) and parks them, so that close()'s
        /// flush sends them. Nothing is open after a first close(): the listener is gone.
        void end_open_spans(std::chrono::system_clock::time_point now) {
            std::lock_guard lock{mutex};
            if (closed) return;
            for (auto& [name, c] : components) {
                if (!c.open) continue;
                c.open->end = std::max(now, c.open->start);
                c.open->open_at_close = true;
                c.open->status = detail::OtlpStatusCode::unset;
                park(c, std::move(*c.open));
                c.open.reset();
            }
        }

        /// Makes `span` the one that takes the events following its exit, queueing the previous one.
        void park(ComponentTrace& c, detail::OtlpSpan span) {
            if (c.closing) enqueue(std::move(*c.closing));
            c.closing = std::move(span);
            c.closing_seen = false;
        }

        void annotate(const MonitorEvent& e) {
            const auto it = components.find(e.component);
            if (it == components.end()) return;
            auto& c = it->second;
            detail::OtlpSpan* span = nullptr;
            if (c.closing && c.closing->task_id == e.task_id) {
                span = &*c.closing;
            } else if (c.open && c.open->task_id == e.task_id) {
                span = &*c.open;
            }
            if (span) add_event(*span, e);
        }

        void add_event(detail::OtlpSpan& span, const MonitorEvent& e) {
            detail::OtlpSpanEvent ev{to_string(e.kind), e.time};
            ev.attempt = e.attempt;
            ev.delay = e.delay;
            ev.limit = e.limit;
            if (e.kind != MonitorEventKind::watchdog_timeout && e.kind != MonitorEventKind::startup_timeout) {
                ev.reason = e.reason;  // the timeouts' reason is the exception event's
            }
            add_event(span, std::move(ev));
        }

        void add_event(detail::OtlpSpan& span, detail::OtlpSpanEvent ev) const {
            if (span.events.size() < settings.max_events_per_span) span.events.push_back(std::move(ev));
        }

        void enqueue(detail::OtlpSpan span) {
            if (queue.size() >= settings.max_queued_spans) {
                ++stats.spans_dropped_queue_full;
                return;
            }
            queue.push_back(std::move(span));
        }

        /// Queues the parked spans: all of them (flush), or those a previous tick already saw.
        void release_parked(bool all) {
            for (auto& [name, c] : components) {
                if (!c.closing) continue;
                if (all || c.closing_seen) {
                    enqueue(std::move(*c.closing));
                    c.closing.reset();
                } else {
                    c.closing_seen = true;
                }
            }
        }
    };

    /// The sender: every max_delay (or at once when a batch is full) sends what is queued.
    static asio::awaitable<void> run(std::shared_ptr<State> s) {
        while (!s->stopping) {
            bool batch_full = false;
            {
                std::lock_guard lock{s->mutex};
                batch_full = s->queue.size() >= s->settings.max_batch_size;  // filled during the previous send
            }
            if (!batch_full) {
                std::error_code ec;
                s->timer.expires_after(s->settings.max_delay);
                auto wait = s->timer.async_wait(asio::redirect_error(asio::use_awaitable, ec));
                co_await std::move(wait);
            }
            if (s->stopping) break;
            auto send = send_queued(s, false, std::nullopt);
            co_await std::move(send);
        }
    }

    /// Sends the spans queued now (after queueing the parked ones: all for a flush, else those seen by a previous
    /// tick), one batch per POST; one send at a time. `until`: close()'s deadline.
    static asio::awaitable<void> send_queued(std::shared_ptr<State> s, bool flush,
                                             std::optional<std::chrono::steady_clock::time_point> until) {
        while (s->sending) {
            if (until && std::chrono::steady_clock::now() >= *until) co_return;  // close(): no time left
            std::optional<asio::steady_timer> deadline;  // close() waits for a send in flight until its deadline
            if (until) {
                deadline.emplace(s->strand, *until);
                deadline->async_wait([s](std::error_code ec) {
                    if (!ec) s->idle.cancel();
                });
            }
            std::error_code ec;
            auto wait = s->idle.async_wait(asio::redirect_error(asio::use_awaitable, ec));
            co_await std::move(wait);
        }
        s->sending = true;
        struct Done {
            State& s;
            ~Done() {
                s.sending = false;
                s.idle.cancel();
            }
        } done{*s};
        std::size_t left = 0;
        {
            std::lock_guard lock{s->mutex};
            s->release_parked(flush);
            left = s->queue.size();
            s->kick_pending = false;
        }
        while (left > 0) {
            auto timeout = s->settings.timeout;
            if (until) {
                const auto remaining =
                    std::chrono::duration_cast<std::chrono::milliseconds>(*until - std::chrono::steady_clock::now());
                if (remaining <= std::chrono::milliseconds::zero()) break;
                timeout = std::min(timeout, remaining);
            }
            std::vector<detail::OtlpSpan> batch;
            {
                std::lock_guard lock{s->mutex};
                const auto n = std::min({left, s->settings.max_batch_size, s->queue.size()});
                batch.reserve(n);
                for (std::size_t i = 0; i < n; ++i) {
                    batch.push_back(std::move(s->queue.front()));
                    s->queue.pop_front();
                }
            }
            if (batch.empty()) break;
            left -= batch.size();
            std::string body =
                detail::encode_otlp_traces(s->settings.service_name, TASKMON_VERSION_STRING, s->trace, batch);
            auto post =
                detail::otlp_http_post(s->settings.host, s->settings.port, s->settings.path, std::move(body), timeout);
            const auto result = co_await std::move(post);
            std::lock_guard lock{s->mutex};
            ++s->stats.requests_sent;
            if (result.ok()) {
                s->stats.spans_exported += batch.size();
            } else {
                ++s->stats.requests_failed;
                s->stats.spans_dropped_export_failed += batch.size();
            }
        }
    }

    static void stop(const std::shared_ptr<State>& s) {
        if (s->stopping.exchange(true)) return;
        asio::post(s->strand, [s] {
            s->timer.cancel();
            s->idle.cancel();
        });
    }

    static OtlpExporterSettings validated(OtlpExporterSettings s) {
        const auto refuse = [](const char* field, const char* why) {
            throw std::invalid_argument(std::string{"OtlpExporterSettings."} + field + ": " + why);
        };
        if (s.host.empty()) refuse("host", "must not be empty");
        if (s.port == 0) refuse("port", "must not be 0");
        if (s.path.empty() || s.path.front() != '/') refuse("path", "must start with '/'");
        if (s.path.find_first_of(" \r\n") != std::string::npos) refuse("path", "must not hold spaces or line breaks");
        if (s.host.find_first_of(" \r\n/") != std::string::npos) refuse("host", "must be a host name or address");
        if (s.service_name.empty()) refuse("service_name", "must not be empty");
        if (s.max_batch_size == 0) refuse("max_batch_size", "must be at least 1");
        if (s.max_queued_spans < s.max_batch_size) refuse("max_queued_spans", "must be at least max_batch_size");
        if (s.max_delay <= std::chrono::milliseconds::zero()) refuse("max_delay", "must be positive");
        if (s.timeout <= std::chrono::milliseconds::zero()) refuse("timeout", "must be positive");
        return s;
    }

    std::shared_ptr<State> state_;
    EventSubscription subscription_;  ///< last: unsubscribed before state_ is released
};

}  // namespace taskmon
