//! Property tests: whatever a profile or a state item holds, cutover answers with a result or an
//! error — never a panic (exit 101 is no documented code, and it skips every ending). Thousands of
//! generated inputs each `cargo test`: profile text (any text, and profile-shaped TOML whose values
//! are drawn from the values that once broke something — control characters, `nan`, `inf`,
//! durations of 500000000 years, periods past `i32`, names of 66,000 characters), and state items
//! as a store might hand them over (a stage past the stages, times past the year 9999, claims and
//! leases at `u64::MAX`), pushed through everything that reads them: `status`'s view and its text,
//! the position of the live split, the open claims, the lease, the audit trail's text.

use std::path::Path;

use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::Config;
use serde_json::{Value, json};

use crate::model::{RouteView, Side, Weights};
use crate::profile::Profile;
use crate::report::{HistoryReport, RolloutView};
use crate::rollout::clock::Clock;
use crate::rollout::decide::Rules;
use crate::rollout::ledger::{AuditEntry, RolloutState, fmt_ms};

/// Cases per property: thousands over the four, in a few seconds.
fn config(cases: u32) -> Config {
    Config { cases, failure_persistence: None, ..Config::default() }
}

/// Strings that once broke something, and some ordinary ones.
const WORDS: &[&str] = &[
    "",
    " ",
    "blue",
    "green",
    "a b",
    "myapp.com.",
    "api.myapp.com",
    "Z0123456789ABCDEFGHIJ",
    "5m",
    "0s",
    "1ms",
    "500000000years",
    "18446744000000000s",
    "4294967280s",
    "1h 30m",
    "five minutes",
    "nan",
    "http://",
    "http://a b/",
    "https://{side}.preprod.myapp.com/health",
    "https://hooks.slack.com/services/T000/B000/SECRET",
    "ftp://x",
    "arn:aws:iam::111111111111:role/cutover",
    "arn:aws:iam::111111111111:role/a b",
    "arn:aws:iam::1111:role/x",
    "arn:aws:elasticloadbalancing:us-west-2:111111111111:listener/app/front/0123/4567",
    "arn:aws:elasticloadbalancing:us-west-2:111111111111:listener-rule/app/front/0123/4567/89ab",
    "front:443",
    "default",
    "arn:aws:sns:us-west-2:111111111111:topic",
    "cutover-state",
    "alarm",
    "metric",
    "http",
    "webhook",
    "target-health",
    "route53-health-check",
    "rollback",
    "pause",
    "{side}",
    "\u{1b}]0;pwned\u{7}\u{1b}[2J",
    "\r\n",
    "\u{0}",
    "é\u{9b}",
    "AWS/ApplicationELB",
    "m1",
    "100 * m1 / m2",
];

fn word() -> impl Strategy<Value = String> + Clone {
    prop_oneof![
        8 => proptest::sample::select(WORDS).prop_map(String::from),
        1 => proptest::collection::vec(any::<char>(), 0..24).prop_map(|c| c.into_iter().collect()),
        // A name far past DNS's 253 bytes, a label past 63.
        1 => (1usize..70_000).prop_map(|n| format!("{}.myapp.com.", "a".repeat(n))),
    ]
}

/// A TOML value, written as TOML.
fn value() -> impl Strategy<Value = String> + Clone {
    let scalar = prop_oneof![
        4 => word().prop_map(|s| toml_string(&s)),
        2 => proptest::sample::select(&[
            "0", "1", "2", "-1", "99", "100", "101", "200", "999", "1000", "65536", "4294967280",
            "9223372036854775807", "-9223372036854775808",
        ][..])
        .prop_map(String::from),
        1 => any::<i64>().prop_map(|i| i.to_string()),
        2 => proptest::sample::select(&["nan", "inf", "-inf", "0.5", "-0.0", "1e308", "0.001", "2.5"][..])
            .prop_map(String::from),
        1 => any::<bool>().prop_map(|b| b.to_string()),
    ];
    prop_oneof![
        5 => scalar.clone(),
        1 => proptest::collection::vec(scalar.clone(), 0..5).prop_map(|v| format!("[{}]", v.join(", "))),
        1 => proptest::collection::vec((key(), scalar), 0..4).prop_map(|kv| {
            format!("{{ {} }}", kv.into_iter().map(|(k, v)| format!("{k} = {v}")).collect::<Vec<_>>().join(", "))
        }),
    ]
}

const KEYS: &[&str] = &[
    "name",
    "description",
    "region",
    "stages",
    "bake",
    "poll",
    "failure_threshold",
    "on_failure",
    "max_hold",
    "safety_net",
    "dns_ttl",
    "table",
    "lease",
    "tolerance",
    "window",
    "sns_topic_arn",
    "webhook",
    "zone",
    "record",
    "type",
    "blue",
    "green",
    "preview",
    "role_arn",
    "external_id",
    "listener",
    "rule",
    "owner_ok",
    "url",
    "timeout",
    "expect_status",
    "body_contains",
    "alarms",
    "min_requests",
    "namespace",
    "metric",
    "stat",
    "period",
    "max",
    "min",
    "expression",
    "min_healthy",
    "health_check_id",
    "dimensions",
    "eks",
    "cluster",
    "ingress",
];

fn key() -> impl Strategy<Value = String> + Clone {
    proptest::sample::select(KEYS).prop_map(String::from)
}

/// A sound route, so that most documents get past "no routes" into every other check.
const ROUTE: &str = "[[route53]]\nzone = \"myapp.com.\"\nrecord = \"api.myapp.com.\"\nblue = \"b\"\ngreen = \"g\"\n";

/// A profile-shaped document: tables the profile knows, with keys of any table and values from
/// the list above.
fn profile_like() -> impl Strategy<Value = String> + Clone {
    let header = proptest::sample::select(
        &[
            "",
            "[rollout]",
            "[state]",
            "[observe]",
            "[notify]",
            "[[route53]]",
            "[[alb]]",
            "[[gate]]",
            "[[gate.metrics]]",
            "[sides.blue]",
            "[sides.green]",
        ][..],
    );
    let table = (header, proptest::collection::vec((key(), value()), 0..6)).prop_map(|(h, kv)| {
        let mut seen = std::collections::BTreeSet::new();
        let lines: Vec<String> =
            kv.into_iter().filter(|(k, _)| seen.insert(k.clone())).map(|(k, v)| format!("{k} = {v}")).collect();
        format!("{h}\n{}\n", lines.join("\n"))
    });
    (any::<bool>(), proptest::collection::vec(table, 0..6)).prop_map(|(route, tables)| {
        let mut doc = tables.concat();
        if route {
            doc.push_str(ROUTE);
        }
        doc
    })
}

/// A TOML basic string holding `s` exactly.
fn toml_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Everything a command does with a profile it parsed, short of AWS.
fn use_profile(p: &Profile) {
    let _ = crate::policy::policy(p, "us-west-2", "*", false);
    let _ = crate::policy::policies(
        p,
        "us-west-2",
        "111111111111",
        Some("arn:aws:sts::111111111111:assumed-role/r/s"),
        true,
    );
    let _ = crate::policy::state_init_policy(p, "cn-north-1", "*");
    let _ = p.routes.identities();
    let _ = p.roles();
}

proptest! {
    #![proptest_config(config(1500))]

    #[test]
    fn any_text_is_a_profile_or_an_error_never_a_panic(text in proptest::collection::vec(any::<char>(), 0..200)) {
        let text: String = text.into_iter().collect();
        if let Ok(p) = Profile::parse(Path::new("profiles/t.toml"), &text) {
            use_profile(&p);
        }
    }

    #[test]
    fn any_profile_shaped_toml_is_a_profile_or_an_error_never_a_panic(text in profile_like()) {
        match Profile::parse(Path::new("profiles/t.toml"), &text) {
            Ok(p) => {
                use_profile(&p);
                // What every part of it holds is bounded.
                prop_assert!(p.rollout.poll > std::time::Duration::ZERO);
                prop_assert!(p.state.as_ref().is_none_or(|s| s.lease <= std::time::Duration::from_secs(3600)));
                let escape = p.description.as_deref().is_some_and(|d| d.contains('\u{1b}'));
                prop_assert!(!escape, "a control character got into the description");
            }
            Err(e) => {
                // An error names the file, and no control character of the text reaches it raw.
                let said = e.to_string();
                prop_assert!(said.contains("profiles/t.toml"), "{}", said);
            }
        }
    }
}

/// A number a store may hand over where a count or a time is expected: mostly one that decodes
/// (so the readers behind the decoding are reached), at its edges; sometimes one that does not.
fn number() -> impl Strategy<Value = Value> + Clone {
    prop_oneof![
        30 => proptest::sample::select(&[0u64, 1, 2, 3, 4, 99, 100, 1000, u32::MAX as u64, i64::MAX as u64, u64::MAX,
            253_402_300_799_000, 253_402_300_800_000, 1_767_225_600_000][..]).prop_map(|n| json!(n)),
        10 => any::<u64>().prop_map(|n| json!(n)),
        1 => junk(),
    ]
}

/// A count (a weight, a number of failures): mostly one that fits 32 bits.
fn count() -> impl Strategy<Value = Value> + Clone {
    prop_oneof![
        30 => proptest::sample::select(&[0u32, 1, 2, 99, 100, 255, 999, 1000, u32::MAX][..]).prop_map(|n| json!(n)),
        10 => any::<u32>().prop_map(|n| json!(n)),
        1 => junk(),
    ]
}

/// What no count is: negative, fractional, too large.
fn junk() -> impl Strategy<Value = Value> + Clone {
    prop_oneof![
        any::<i64>().prop_map(|n| json!(n)),
        proptest::sample::select(&[-1.5f64, 0.5, 100.5, 1e300][..]).prop_map(|f| json!(f)),
        Just(json!(u64::MAX)),
    ]
}

/// A stage's percentage: mostly 0–100 in any order (a state's stages need not ascend), sometimes not one.
fn percent() -> impl Strategy<Value = Value> + Clone {
    prop_oneof![
        12 => (0u32..=100).prop_map(|p| json!(p)),
        3 => proptest::sample::select(&[0.5f64, 0.001, 99.999, 100.0][..]).prop_map(|f| json!(f)),
        1 => junk(),
    ]
}

fn text_value() -> impl Strategy<Value = Value> + Clone {
    word().prop_map(Value::String)
}

fn side() -> impl Strategy<Value = Value> + Clone {
    proptest::sample::select(&["blue", "green", "blue", "green", "blue", "green", "red"][..]).prop_map(|s| json!(s))
}

fn maybe(v: impl Strategy<Value = Value>) -> impl Strategy<Value = Value> + Clone {
    prop_oneof![1 => Just(Value::Null), 3 => v]
}

/// A state item's `doc`, shaped as cutover writes it, with any values in it.
fn state_doc() -> impl Strategy<Value = Value> + Clone {
    let stages = proptest::collection::vec(percent(), 0..6);
    let progress = (
        number(),
        number(),
        maybe(number()),
        maybe(number()),
        maybe(number()),
        proptest::collection::vec((word(), count()), 0..3),
    )
        .prop_map(|(stage, reached, read, pass, hold, fails)| {
            let fails: serde_json::Map<String, Value> = fails.into_iter().collect();
            json!({"stage": stage, "stage_reached_ms": reached, "read_ms": read, "pass_since_ms": pass,
                   "hold_since_ms": hold, "fails": fails})
        });
    let weights = proptest::collection::vec((word(), count(), count()), 0..4).prop_map(|w| {
        json!(w.into_iter().map(|(n, b, g)| json!({"name": n, "blue": b, "green": g})).collect::<Vec<_>>())
    });
    let claims = proptest::collection::vec((word(), word(), any::<bool>(), count(), number()), 0..4).prop_map(|c| {
        json!(
            c.into_iter()
                .map(|(id, holder, fwd, stage, deadline)| if fwd {
                    json!({"id": id, "holder": holder, "kind": "forward", "stage": stage, "deadline_ms": deadline})
                } else {
                    json!({"id": id, "holder": holder, "kind": "restore", "deadline_ms": deadline})
                })
                .collect::<Vec<_>>()
        )
    });
    let lease = maybe((text_value(), number()).prop_map(|(h, e)| json!({"holder": h, "expires_ms": e})));
    let status =
        proptest::sample::select(&["progressing", "paused", "aborted", "completed", "progressing", "lost"][..]);
    (
        (number(), text_value(), side(), side(), status, stages),
        (progress, weights, claims, lease),
        (number(), number(), maybe(text_value()), text_value()),
    )
        .prop_map(
            |(
                (version, id, stable, candidate, status, stages),
                (progress, weights, claims, lease),
                (started, updated, reason, nonce),
            )| {
                json!({"version": version, "id": id, "stable": stable, "candidate": candidate, "status": status,
                   "stages": stages, "progress": progress, "weights": weights, "claims": claims, "lease": lease,
                   "started_ms": started, "updated_ms": updated, "reason": reason, "nonce": nonce})
            },
        )
}

/// Everything the commands do with a state item they read, short of writing it.
fn use_state(s: &RolloutState) {
    let now = Clock::new().now_ms();
    let _ = s.problem();
    let _ = s.percent();
    let view = RolloutView::of(s, now);
    let _ = format!("{view}");
    let _ = serde_json::to_string(&view);
    let _ = s.open_claims(now).count();
    let _ = s.forward_writes_open(now);
    let _ = s.lease_held_by_other("me", now);
    for c in &s.claims {
        let _ = Clock::new().instant_of(c.lands_by_ms());
        let _ = fmt_ms(c.deadline_ms);
    }
    let live: Vec<RouteView> = s
        .weights
        .iter()
        .map(|w| RouteView {
            kind: crate::splitter::route53::KIND,
            name: w.name.clone(),
            weights: Weights::new(w.blue, w.green),
        })
        .collect();
    let _ = crate::rollout::open::explain(s, &live, &Rules::default());
    let rules = Rules { stages: s.stages.clone(), ..Rules::default() };
    for stage in [0, 1, s.progress.stage, s.stages.len(), s.stages.len() + 1] {
        let _ = rules.percent(stage);
    }
    let _ = crate::rollout::position::locate(&live, &rules, Side::Green);
    let _ = serde_json::to_string(s);
}

/// The state items generated are mostly ones that decode: the readers behind the decoding are
/// what the property is about.
#[test]
fn most_generated_state_items_decode() {
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let strategy = state_doc();
    let decoded = (0..500)
        .filter(|_| {
            let doc = strategy.new_tree(&mut runner).unwrap().current();
            serde_json::from_value::<RolloutState>(doc).is_ok()
        })
        .count();
    assert!(decoded >= 100, "only {decoded} of 500 generated state items decode");
}

proptest! {
    #![proptest_config(config(1500))]

    #[test]
    fn any_state_item_is_read_or_refused_never_a_panic(doc in state_doc()) {
        if let Ok(s) = serde_json::from_value::<RolloutState>(doc.clone()) {
            use_state(&s);
        }
        // The same item as text, cut anywhere: decoding fails, never panics.
        let text = doc.to_string();
        let cut = text.len() / 2;
        let _ = serde_json::from_str::<RolloutState>(text.get(..cut).unwrap_or_default());
    }

    #[test]
    fn any_audit_entry_is_shown_or_skipped_never_a_panic(
        at in number(), actor in word(), note in maybe(text_value()), action in word(), why in maybe(text_value()),
        stage in maybe(number()), seq in number(),
    ) {
        let doc = json!({"at_ms": at, "at": "2026-01-01T00:00:00Z", "actor": actor, "actor_note": note,
            "action": action, "before": [], "after": [{"name": "r", "blue": 1, "green": 0}], "why": why,
            "stage": stage, "seq": seq});
        if let Ok(entry) = serde_json::from_value::<AuditEntry>(doc) {
            let text = format!("{}", HistoryReport { profile: "p".into(), entries: vec![entry] });
            // One line per entry, whatever the entry holds.
            prop_assert_eq!(text.lines().count(), 1, "{}", text);
        }
    }
}

/// The profile-shaped documents generated reach past parsing often enough to exercise the
/// checks behind it.
#[test]
fn some_generated_profiles_are_profiles() {
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let strategy = profile_like();
    let parsed = (0..1000)
        .filter(|_| {
            Profile::parse(Path::new("profiles/t.toml"), &strategy.new_tree(&mut runner).unwrap().current()).is_ok()
        })
        .count();
    assert!(parsed >= 50, "only {parsed} of 1000 generated profiles parse");
}
