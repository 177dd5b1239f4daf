//! Lifecycle and schedule: `outside_schedule`, `agent_suspended` and
//! `agent_expired`, and their place at the front of the decision order.

use bridle_core::{AgentState, Effect, ReasonCode};

use crate::common::{Req, agent, codes};

// -------------------------------------------------------- outside_schedule

#[test]
fn the_schedule_is_read_in_the_agents_time_zone() {
    let a = agent(
        "tools:\n  - name: t\nschedule:\n  timezone: America/New_York\n  windows: [\"Mon-Fri 09:00-17:00\"]\n",
    );
    // 2026-06-01 is a Monday; New York is UTC-4 in June.
    let d = Req::new(&a, "t").at("2026-06-01T12:59:00Z").decide();
    assert_eq!(d.effect, Effect::Deny);
    assert_eq!(codes(&d), [ReasonCode::OutsideSchedule]);
    assert!(
        d.reasons[0]
            .message
            .contains("Mon 08:59 America/New_York is outside the schedule (Mon-Fri 09:00-17:00)"),
        "{}",
        d.reasons[0].message
    );
    assert_eq!(
        d.reasons[0].source.as_ref().unwrap().path,
        "schedule.windows"
    );
    assert_eq!(
        Req::new(&a, "t").at("2026-06-01T13:00:00Z").decide().effect,
        Effect::Allow
    );
    assert_eq!(
        Req::new(&a, "t").at("2026-06-01T20:59:00Z").decide().effect,
        Effect::Allow
    );
    // The end of a window is exclusive.
    let d = Req::new(&a, "t").at("2026-06-01T21:00:00Z").decide();
    assert_eq!(codes(&d), [ReasonCode::OutsideSchedule]);
    // Saturday 2026-06-06 at New York noon.
    let d = Req::new(&a, "t").at("2026-06-06T16:00:00Z").decide();
    assert_eq!(codes(&d), [ReasonCode::OutsideSchedule]);
}

#[test]
fn an_overnight_window_runs_into_the_next_day() {
    let a = agent(
        "tools:\n  - name: t\nschedule:\n  timezone: Asia/Tokyo\n  windows: [\"Fri 22:00-06:00\"]\n",
    );
    // Tokyo is UTC+9 all year. Friday 2026-06-05.
    let when = |utc: &str| Req::new(&a, "t").at(utc).decide();
    assert_eq!(when("2026-06-05T13:00:00Z").effect, Effect::Allow); // Fri 22:00
    assert_eq!(when("2026-06-05T20:59:00Z").effect, Effect::Allow); // Sat 05:59
    for utc in [
        "2026-06-05T12:59:00Z", // Fri 21:59
        "2026-06-05T21:00:00Z", // Sat 06:00
        "2026-06-04T20:00:00Z", // Fri 05:00: the morning after Thursday
        "2026-06-06T13:00:00Z", // Sat 22:00
    ] {
        assert_eq!(codes(&when(utc)), [ReasonCode::OutsideSchedule], "{utc}");
    }
}

#[test]
fn the_schedule_comes_before_forbid() {
    let a = agent(
        "tools:\n  - name: t\nforbid: [t]\nschedule:\n  timezone: UTC\n  windows: [\"Mon 00:00-01:00\"]\n",
    );
    assert_eq!(
        codes(&Req::new(&a, "t").decide()),
        [ReasonCode::OutsideSchedule]
    );
    assert_eq!(
        codes(&Req::new(&a, "t").at("2026-06-01T00:30:00Z").decide()),
        [ReasonCode::Forbidden]
    );
}

// --------------------------------------------- agent_suspended, agent_expired

#[test]
fn suspended_and_retired_agents_are_denied_everything() {
    let a = agent("tools:\n  - name: t\nforbid: [f]\n");
    for state in [AgentState::Suspended, AgentState::Retired] {
        for action in ["t", "f", "unknown"] {
            let d = Req::new(&a, action).state(state).decide();
            assert_eq!(d.effect, Effect::Deny);
            assert_eq!(
                codes(&d),
                [ReasonCode::AgentSuspended],
                "{state:?} {action}"
            );
            assert!(d.reasons[0].message.contains(state.as_str()));
        }
    }
    assert_eq!(Req::new(&a, "t").decide().effect, Effect::Allow);
}

#[test]
fn an_agent_is_denied_after_its_expiry_day() {
    let a = agent("tools:\n  - name: t\n");
    // `expires: 2027-12-31`: the whole day is still allowed.
    assert_eq!(
        Req::new(&a, "t").at("2027-12-31T23:59:59Z").decide().effect,
        Effect::Allow
    );
    let d = Req::new(&a, "t").at("2028-01-01T00:00:00Z").decide();
    assert_eq!(d.effect, Effect::Deny);
    assert_eq!(codes(&d), [ReasonCode::AgentExpired]);
    assert!(d.reasons[0].message.contains("2027-12-31"));
    assert_eq!(d.reasons[0].source.as_ref().unwrap().path, "expires");
}

#[test]
fn expiry_is_judged_in_the_schedules_time_zone() {
    let a = agent(
        "tools:\n  - name: t\nschedule:\n  timezone: Asia/Tokyo\n  windows: [\"daily 00:00-24:00\"]\n",
    );
    // 15:00 UTC on the last day is already the next day in Tokyo.
    assert_eq!(
        Req::new(&a, "t").at("2027-12-31T14:59:00Z").decide().effect,
        Effect::Allow
    );
    assert_eq!(
        codes(&Req::new(&a, "t").at("2027-12-31T15:00:00Z").decide()),
        [ReasonCode::AgentExpired]
    );
}

#[test]
fn suspension_and_expiry_come_first() {
    let a = agent(
        "tools:\n  - name: t\nschedule:\n  timezone: UTC\n  windows: [\"Mon 00:00-01:00\"]\n",
    );
    // Expired and outside the schedule: expiry is step 1.
    assert_eq!(
        codes(&Req::new(&a, "t").at("2028-06-05T12:00:00Z").decide()),
        [ReasonCode::AgentExpired]
    );
    // Suspended and expired: suspension is reported.
    assert_eq!(
        codes(
            &Req::new(&a, "t")
                .at("2028-06-05T12:00:00Z")
                .state(AgentState::Suspended)
                .decide()
        ),
        [ReasonCode::AgentSuspended]
    );
}

// ---------------------------------------------------------- agent_proposed

#[test]
fn a_proposed_agent_is_denied_whatever_it_grants() {
    let a = agent("tools:\n  - name: \"*\"\n    access: admin\n");
    let d = Req::new(&a, "anything.at_all").decide();
    assert_eq!(d.effect, Effect::Allow, "the grant itself allows");
    let d = Req::new(&a, "anything.at_all")
        .state(AgentState::Proposed)
        .decide();
    assert_eq!(d.effect, Effect::Deny);
    assert_eq!(codes(&d), [ReasonCode::AgentProposed]);
    assert!(
        d.reasons[0].message.contains("awaits approval"),
        "{}",
        d.reasons[0].message
    );
}
