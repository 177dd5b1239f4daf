//! Elevation: `elevated` grants while an elevation is active, never past a
//! forbid or the data scope.

use bridle_core::{Effect, Guardrails, ReasonCode};

use crate::common::{HEAD, Req, agent, codes, compile_with};

// --------------------------------------------------------------- elevation

const ELEVATING: &str = "\
tools:
  - name: edr.quarantine_endpoint
forbid: [secrets.rotate]
elevation:
  - name: identity-write
    tools: [identity.disable_user, secrets.*]
    max_duration: 1h
    approvers: [group:secops]
";

#[test]
fn an_active_elevation_grants_its_tools() {
    let a = agent(ELEVATING);
    let d = Req::new(&a, "identity.disable_user")
        .elevation("identity-write")
        .decide();
    assert_eq!(d.effect, Effect::Allow);
    assert_eq!(codes(&d), [ReasonCode::Elevated]);
    assert!(d.reasons[0].message.contains("`identity-write`"));
    let src = d.reasons[0].source.as_ref().unwrap();
    assert_eq!(
        (src.path.as_str(), src.line),
        ("elevation[0].tools[0]", Some(10))
    );
    // Glob tools of the elevation too.
    let d = Req::new(&a, "secrets.read")
        .elevation("identity-write")
        .decide();
    assert_eq!(codes(&d), [ReasonCode::Elevated]);
}

#[test]
fn an_inactive_elevation_grants_nothing() {
    let a = agent(ELEVATING);
    let d = Req::new(&a, "identity.disable_user").decide();
    assert_eq!(d.effect, Effect::Deny);
    assert_eq!(codes(&d), [ReasonCode::NotGranted]);
    assert!(
        d.reasons[0]
            .message
            .contains("elevation `identity-write` grants it while active"),
        "{}",
        d.reasons[0].message
    );
    // Another elevation's name does not activate this one.
    let d = Req::new(&a, "identity.disable_user")
        .elevation("something-else")
        .decide();
    assert_eq!(codes(&d), [ReasonCode::NotGranted]);
}

#[test]
fn an_elevation_never_overrides_a_forbid() {
    let a = agent(ELEVATING);
    let d = Req::new(&a, "secrets.rotate")
        .elevation("identity-write")
        .decide();
    assert_eq!(d.effect, Effect::Deny);
    assert_eq!(codes(&d), [ReasonCode::Forbidden]);

    let mut g = Guardrails::new();
    g.add(
        "org",
        r#"forbid(principal, action, resource == Tool::"identity.disable_user");"#,
    )
    .unwrap();
    let guarded = compile_with(&format!("{HEAD}{ELEVATING}"), &g);
    let d = Req::new(&guarded, "identity.disable_user")
        .elevation("identity-write")
        .decide();
    assert_eq!(codes(&d), [ReasonCode::Forbidden]);
}

#[test]
fn elevated_tools_still_need_data_scope() {
    let a = agent(&format!(
        "{ELEVATING}data:\n  - {{ resource: \"dir:users/*\", access: [read] }}\n"
    ));
    let req = |r: &str| {
        Req::new(&a, "identity.disable_user")
            .elevation("identity-write")
            .resource(r)
            .decide()
    };
    assert_eq!(codes(&req("dir:users/7")), [ReasonCode::Elevated]);
    assert_eq!(codes(&req("dir:admins/1")), [ReasonCode::DataScope]);
}
