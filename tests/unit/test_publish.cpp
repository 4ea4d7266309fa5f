// Pure pieces of the publishers: access decisions, rate limits, recent events.
#include <catch2/catch.hpp>

#include "core/access.h"
#include "core/rate_limit.h"
#include "core/recent_events.h"

using namespace unlinkd;

TEST_CASE("only root changes state without polkit; root and the reader group see everything", "[access]")
{
    AccessPolicy policy({4});  // gid 4: adm
    Caller root{0, {}}, reader{1000, {100, 4}}, user{1000, {100}}, other{1001, {100}};
    CHECK(policy.may_change_state_directly(root));
    CHECK_FALSE(policy.may_change_state_directly(reader));
    CHECK_FALSE(policy.may_change_state_directly(user));
    CHECK(policy.sees_all(root));
    CHECK(policy.sees_all(reader));
    CHECK_FALSE(policy.sees_all(user));
    CHECK(policy.may_see(user, 1000));
    CHECK_FALSE(policy.may_see(user, 0));
    CHECK_FALSE(policy.may_see(other, 1000));
    CHECK(policy.may_see(reader, 0));
    AccessPolicy no_group;  // the reader group does not exist here
    CHECK_FALSE(no_group.sees_all(reader));
    CHECK(no_group.sees_all(root));
}

TEST_CASE("polkit: one action per kind of change, its answers and its absence", "[access][polkit]")
{
    CHECK(polkit_action_id(StateChange::configure) == "org.unlinkd.Unlinkd1.configure");
    CHECK(polkit_action_id(StateChange::reset) == "org.unlinkd.Unlinkd1.reset");
    // Interactive checks wait for a human: longer than sd-bus's default 25 s.
    CHECK(polkit_timeout_usec(false) == 25'000'000);
    CHECK(polkit_timeout_usec(true) > polkit_timeout_usec(false));

    const std::string denied = "org.freedesktop.DBus.Error.AccessDenied";
    const std::string interactive = "org.freedesktop.DBus.Error.InteractiveAuthorizationRequired";
    const std::string action = "org.unlinkd.Unlinkd1.configure";
    CHECK(polkit_verdict(action, true, false, false).allowed);
    CHECK(polkit_verdict(action, true, false, true).allowed);
    auto no = polkit_verdict(action, false, false, true);
    CHECK_FALSE(no.allowed);
    CHECK(no.error == denied);
    CHECK_THAT(no.message, Catch::Contains(action));
    // A challenge without interaction allowed: the caller may retry with it.
    auto challenge = polkit_verdict(action, false, true, false);
    CHECK_FALSE(challenge.allowed);
    CHECK(challenge.error == interactive);
    // Interaction was allowed and still a challenge: authentication failed.
    auto failed = polkit_verdict(action, false, true, true);
    CHECK_FALSE(failed.allowed);
    CHECK(failed.error == denied);

    auto absent = polkit_unavailable(action, "org.freedesktop.DBus.Error.ServiceUnknown", "The name is not activatable");
    CHECK_FALSE(absent.allowed);
    CHECK(absent.error == denied);
    CHECK_THAT(absent.message, Catch::Contains("polkit is not on the bus"));
    auto gone = polkit_unavailable(action, "org.freedesktop.DBus.Error.NameHasNoOwner", "");
    CHECK_THAT(gone.message, Catch::Contains("polkit is not on the bus"));
    auto slow = polkit_unavailable(action, "org.freedesktop.DBus.Error.NoReply", "Method call timed out");
    CHECK(slow.error == denied);
    CHECK_THAT(slow.message, Catch::Contains("polkit did not answer in time"));
    auto broken = polkit_unavailable(action, "org.freedesktop.PolicyKit1.Error.Failed", "boom");
    CHECK(broken.error == denied);
    CHECK_THAT(broken.message, Catch::Contains("org.freedesktop.PolicyKit1.Error.Failed: boom"));
}

TEST_CASE("the rate limiter lets per_second through in each window and counts the rest", "[rate]")
{
    RateLimiter r(3);
    int allowed = 0;
    for (int i = 0; i < 10; ++i)
        allowed += r.allow(1'000'000 + i * 1000);
    CHECK(allowed == 3);
    CHECK(r.suppressed_total() == 7);
    CHECK(r.take_suppressed() == 7);
    CHECK(r.take_suppressed() == 0);
    CHECK(r.allow(2'000'000));  // next window
    CHECK(r.allow(2'500'000));
    CHECK(r.allow(2'999'999));
    CHECK_FALSE(r.allow(2'999'999));
    CHECK(r.suppressed_total() == 8);
    RateLimiter none(0);
    CHECK_FALSE(none.allow(5));
}

TEST_CASE("recent events keep the newest, filtered, newest last", "[recent]")
{
    RecentEvents recent(4);
    for (std::uint32_t i = 1; i <= 6; ++i) {
        Event e;
        e.pid = i;
        e.uid = i % 2;
        recent.add(e);
    }
    CHECK(recent.size() == 4);
    auto all = recent.newest(10, [](const Event&) { return true; });
    REQUIRE(all.size() == 4);
    CHECK(all.front().pid == 3);
    CHECK(all.back().pid == 6);
    auto two = recent.newest(2, [](const Event&) { return true; });
    REQUIRE(two.size() == 2);
    CHECK(two[0].pid == 5);
    CHECK(two[1].pid == 6);
    auto odd = recent.newest(10, [](const Event& e) { return e.uid == 1; });
    REQUIRE(odd.size() == 2);
    CHECK(odd[0].pid == 3);
    CHECK(odd[1].pid == 5);
    RecentEvents none(0);
    none.add(Event{});
    CHECK(none.size() == 0);
}
