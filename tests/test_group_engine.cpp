// Tests for taskmon/detail/group_engine.hpp: the group engine on its own, driven step by step through a recording
// port, without a monitor, an io_context run, a timer or a lock.
#include <taskmon/detail/group_engine.hpp>

#include "taskmon_catch.hpp"

#include <asio/io_context.hpp>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

using namespace std::chrono_literals;
using taskmon::ComponentState;
using taskmon::GroupPolicy;
using taskmon::GroupState;
using taskmon::MonitorEvent;
using taskmon::MonitorEventKind;
using taskmon::RestartStrategy;
using taskmon::RestartType;
using namespace taskmon::detail;

namespace {

using Clock = std::chrono::steady_clock;
using TimePoint = Clock::time_point;
struct Host;  // the records' owner: only named
using Records = MonitorRecords<Clock, Host>;
using Component = Records::Component;
using ComponentPtr = Records::ComponentPtr;
using Group = Records::Group;
using Member = Records::Member;
using RestartUnit = Records::RestartUnit;
using Events = EventBatch;

constexpr auto stop_wait = 5s;  // the stop deadline the port gives every stop

/// What the engine asked of the core, in order.
struct Calls {
    std::vector<std::string> log;
    std::vector<std::shared_ptr<RestartUnit>> resumed;
    bool closing = false;
    TimePoint now{};
};

struct Port {
    Calls* calls;
    [[nodiscard]] bool closing() const { return calls->closing; }
    [[nodiscard]] RestartType restart_type(const Component& /*c*/) const { return RestartType::permanent; }
    void take_over(const ComponentPtr& cp) const { calls->log.push_back("take_over " + cp->name); }
    void stop(const ComponentPtr& cp) const {
        calls->log.push_back("stop " + cp->name);
        cp->live()->stop = StopCause::group;
        cp->live()->stop_deadline = calls->now + stop_wait;
    }
    void report_unresponsive(Component& c, TimePoint /*now*/, Events& /*events*/) const {
        calls->log.push_back("unresponsive " + c.name);
        c.live()->reported_unresponsive = true;
    }
    [[nodiscard]] std::uint32_t schedule_start(const ComponentPtr& cp) const {
        calls->log.push_back("start " + cp->name);
        return ++cp->restart_gen;
    }
    static std::optional<TimePoint> ready_time(const Records::Instance& i) { return i.started; }
    [[nodiscard]] MonitorEvent group_event(MonitorEventKind kind, const Group& g, TimePoint /*now*/) const {
        MonitorEvent e;
        e.kind = kind;
        e.group = g.name;
        return e;
    }
    void escalate(MonitorEvent e, Events& events) const {
        calls->log.push_back("escalate " + e.group);
        events.push_back(std::move(e));
    }
    void resume(std::shared_ptr<RestartUnit> unit) const { calls->resumed.push_back(std::move(unit)); }
    void retire(const std::shared_ptr<RestartUnit>& /*unit*/) const { calls->log.push_back("retire"); }
};

using Engine = GroupEngine<Clock, Host, Port>;

/// A tree of one group `g` with members a, b, c, and the engine that owns it.
struct Tree {
    explicit Tree(GroupPolicy policy) {
        auto group = std::make_unique<Group>();
        group->name = "g";
        group->policy = policy;
        for (const char* name : {"a", "b", "c"}) {
            auto c = std::make_shared<Component>(name, executor);
            c->factory = std::make_shared<const ComponentFactory>();
            c->enabled = true;
            c->group = group.get();
            group->members.push_back(Member{c, nullptr});
            members.push_back(std::move(c));
        }
        g = &engine.adopt(std::move(group));
        engine.start(*g, calls.now);
    }

    /// Runs the newest unit until it waits or finishes; a start makes the instance live at once.
    Engine::UnitStep run(Events& events) {
        for (;;) {
            auto next = engine.step(*calls.resumed.back(), calls.now, events);
            if (!next.start) {
                return next;
            }
            next.start->instance = Records::Instance{calls.now, nullptr};
            next.start->task_id = ++task_id;
            next.start->lifecycle = Lifecycle::live;
            ++next.start->generation;
        }
    }

    /// The instance of `c` exits (the core has already dropped it when the engine hears of it).
    static void exit(Component& c) { c.lifecycle = Lifecycle::idle; }

    std::string log() const {
        std::string out;
        for (const auto& entry : calls.log) {
            out += (out.empty() ? "" : ", ") + entry;
        }
        return out;
    }

    asio::io_context io;
    asio::any_io_executor executor = io.get_executor();
    Calls calls;
    Engine engine{Port{&calls}};
    Group* g = nullptr;
    std::vector<ComponentPtr> members;
    std::uint64_t task_id = 0;
};

std::vector<MonitorEventKind> kinds(const Events& events) {
    std::vector<MonitorEventKind> out;
    for (const auto& e : events) {
        out.push_back(e.kind);
    }
    return out;
}

}  // namespace

TEST_CASE("GroupEngine: a new group starts its members in order, each after the one before is ready",
          "[group_engine]") {
    Tree t{GroupPolicy{.strategy = RestartStrategy::one_for_all}};
    REQUIRE(t.calls.resumed.size() == 1);
    Events events;
    const auto next = t.run(events);
    CHECK_FALSE(next.wake);
    CHECK(t.log() == "take_over a, take_over b, take_over c, start a, start b, start c");
    CHECK(kinds(events) == std::vector{MonitorEventKind::group_started});
    CHECK(events.front().members == std::vector<std::string>{"a", "b", "c"});
    CHECK(t.g->state == GroupState::running);
    for (const auto& c : t.members) {
        CHECK_FALSE(c->restarts().unit);  // on their own again
    }
}

TEST_CASE("GroupEngine: one_for_all stops every member in reverse order, waits the backoff, starts them in order",
          "[group_engine]") {
    Tree t{GroupPolicy{.strategy = RestartStrategy::one_for_all, .max_restarts = 3, .restart_window = 60s}};
    Events events;
    t.run(events);
    t.calls.log.clear();
    events.clear();

    auto& b = *t.members[1];
    Tree::exit(b);  // b failed; its restart would wait 1 s
    const Member failed{t.members[1], nullptr};
    const auto at = t.calls.now + 1s;
    const auto verdict = t.engine.verdict(*t.g, failed, t.calls.now, at, true);
    REQUIRE(verdict == GroupVerdict::group_restarts);
    t.engine.member_failed(verdict, *t.g, failed, "boom", 1s, at, true, t.calls.now, events);
    CHECK(kinds(events) == std::vector{MonitorEventKind::group_restarting});
    CHECK(events.front().component == "b");
    CHECK(t.g->state == GroupState::restarting);
    CHECK(t.g->pending_restarts == 1);  // decided, not yet happened

    auto next = t.run(events);
    CHECK(t.log() == "take_over a, take_over b, take_over c, stop c");
    CHECK(next.wake == t.calls.now + stop_wait);  // c's stop deadline, or its exit
    Tree::exit(*t.members[2]);
    next = t.run(events);
    CHECK(t.calls.log.back() == "stop a");  // b has no instance: a is next
    Tree::exit(*t.members[0]);
    next = t.run(events);
    CHECK(next.wake == at);  // everything stopped: the backoff
    t.calls.now = at;
    events.clear();
    next = t.run(events);
    CHECK_FALSE(next.wake);
    CHECK(t.log() == "take_over a, take_over b, take_over c, stop c, stop a, start a, start b, start c");
    CHECK(kinds(events) == std::vector{MonitorEventKind::group_restarted});
    CHECK(t.g->state == GroupState::running);
    CHECK(t.g->restart_count == 1);
    CHECK(t.g->window == std::vector{at});  // it happened when the members started
    CHECK(t.g->pending_restarts == 0);
}

TEST_CASE("GroupEngine: a member that outlives its stop deadline is reported and not started again while it lives",
          "[group_engine]") {
    Tree t{GroupPolicy{.strategy = RestartStrategy::one_for_all}};
    Events events;
    t.run(events);
    Tree::exit(*t.members[0]);
    const Member failed{t.members[0], nullptr};
    t.engine.member_failed(GroupVerdict::group_restarts, *t.g, failed, "boom", 0s, t.calls.now, false, t.calls.now,
                           events);
    t.calls.log.clear();
    auto next = t.run(events);
    CHECK(t.log() == "stop c");
    t.calls.now += stop_wait;  // c ignores the stop
    next = t.run(events);
    CHECK(t.log() == "stop c, unresponsive c, stop b");
    Tree::exit(*t.members[1]);
    next = t.run(events);
    CHECK(t.log() == "stop c, unresponsive c, stop b, start a, start b");
    CHECK_FALSE(next.wake);  // waits for c's exit (never two live instances)
    CHECK(t.members[2]->restarts().unit);
    Tree::exit(*t.members[2]);
    next = t.run(events);
    CHECK(t.calls.log.back() == "start c");
    CHECK_FALSE(t.members[2]->restarts().unit);
}

TEST_CASE("GroupEngine: one_for_one members restart on their own and count against the group when it happens",
          "[group_engine]") {
    Tree t{GroupPolicy{.strategy = RestartStrategy::one_for_one, .max_restarts = 1, .restart_window = 60s}};
    Events events;
    t.run(events);
    events.clear();
    auto& b = *t.members[1];
    const Member failed{t.members[1], nullptr};
    const auto at = t.calls.now + 1s;
    auto verdict = t.engine.verdict(*t.g, failed, t.calls.now, at, true);
    REQUIRE(verdict == GroupVerdict::member_restarts);
    t.engine.member_failed(verdict, *t.g, failed, "boom", 1s, at, true, t.calls.now, events);
    CHECK(events.empty());
    CHECK(b.restarts().counted_in_group == t.g->budget);
    CHECK(t.g->pending_restarts == 1);
    // A second counted failure before the first restart happened would exceed max_restarts 1.
    verdict = t.engine.verdict(*t.g, Member{t.members[2], nullptr}, t.calls.now, at, true);
    CHECK(verdict == GroupVerdict::gives_up);
    Engine::settle_counted(b, at, true);
    CHECK_FALSE(b.restarts().counted_in_group);
    CHECK(t.g->pending_restarts == 0);
    CHECK(t.g->window == std::vector{at});
}

TEST_CASE("GroupEngine: a top-level group past its max_restarts gives up, stops its members and escalates",
          "[group_engine]") {
    Tree t{GroupPolicy{.strategy = RestartStrategy::rest_for_one, .max_restarts = 0}};
    Events events;
    t.run(events);
    events.clear();
    t.calls.log.clear();
    const Member failed{t.members[0], nullptr};
    Tree::exit(*t.members[0]);
    const auto verdict = t.engine.verdict(*t.g, failed, t.calls.now, t.calls.now, true);
    REQUIRE(verdict == GroupVerdict::gives_up);
    t.engine.member_failed(verdict, *t.g, failed, "boom", 0s, t.calls.now, true, t.calls.now, events);
    CHECK(kinds(events) == std::vector{MonitorEventKind::group_gave_up, MonitorEventKind::escalated});
    CHECK(events.front().limit == 0);
    CHECK(t.g->state == GroupState::gave_up);
    t.run(events);
    CHECK(t.log() == "take_over a, take_over b, take_over c, escalate g, stop c");
    for (const auto& c : t.members) {
        CHECK(c->unit_role == UnitRole::stop);  // stopped for good, not restarted
    }
}

TEST_CASE("GroupEngine: a failure while a unit runs makes a new unit that absorbs the old one", "[group_engine]") {
    Tree t{GroupPolicy{.strategy = RestartStrategy::one_for_all}};
    Events events;
    t.run(events);
    Tree::exit(*t.members[2]);
    t.engine.member_failed(GroupVerdict::group_restarts, *t.g, Member{t.members[2], nullptr}, "first", 2s,
                           t.calls.now + 2s, false, t.calls.now, events);
    auto first = t.calls.resumed.back();
    t.run(events);  // stopping b
    Tree::exit(*t.members[1]);
    t.calls.log.clear();
    t.engine.member_failed(GroupVerdict::group_restarts, *t.g, Member{t.members[1], nullptr}, "second", 1s,
                           t.calls.now + 1s, false, t.calls.now, events);
    CHECK(first->merged);  // its timer and posts find nothing to do
    CHECK(t.log() == "retire, take_over a, take_over b, take_over c");
    const auto& second = t.calls.resumed.back();
    CHECK(second->resume_at == t.calls.now + 2s);  // the later backoff of the two
    for (const auto& c : t.members) {
        CHECK(c->restarts().unit == second);  // a component is driven by one unit at most
    }
}
