//! Profiles: one service's traffic split and how to roll it, read from `profiles/NAME.toml`
//! (or a path, or S3: [`source`]).
//!
//! Parsing is strict: unknown keys are errors, and every error names the file and the key path
//! (`rollout.stages[2]`). A profile is parsed whole — routes, rollout, gates, state, notify — and
//! validated once into a [`Profile`] ([`validate`]), so nothing later has to second-guess it. The
//! routes and the gates are read by their kinds' registries; this module names no kind.

mod error;
pub mod fields;
mod raw;
pub mod source;
mod validate;

use std::path::PathBuf;
use std::time::Duration;

use crate::gates::Gate;
pub use crate::model::Role;
use crate::model::Side;
use crate::notify::Notify;
use crate::observe::Observe;
pub use crate::rollout::decide::{OnFailure, Rules as Rollout};
use crate::sides::Sides;
use crate::splitter::Routes;
use crate::state::StateConfig;
pub use error::ProfileError;

/// The most a profile may hold, from a file or from S3: 1 MiB (a large one is a few kilobytes).
pub const MAX_PROFILE_BYTES: u64 = 1024 * 1024;

/// A profile past [`MAX_PROFILE_BYTES`]: refused before it is parsed, read no further.
pub fn too_big(path: &std::path::Path) -> ProfileError {
    ProfileError::Invalid {
        path: path.to_path_buf(),
        key: String::new(),
        message: "is larger than 1 MiB".into(),
        hint: Some("a profile is a few kilobytes of TOML: is this the right file?".into()),
    }
}

/// A validated profile.
#[derive(Clone, Debug)]
pub struct Profile {
    /// The profile's name: `name = "…"`, else its file's stem. Its partition key in the state
    /// table, and its roles' session names.
    pub name: String,
    pub path: PathBuf,
    pub description: Option<String>,
    pub region: Option<String>,
    pub sides: Sides,
    /// Every route, per splitter kind.
    pub routes: Routes,
    pub rollout: Rollout,
    /// `[rollout] safety_net`: while a rollout runs, the candidate's weighted records carry a
    /// Route53 health check on the alarm gates' alarms.
    pub safety_net: bool,
    /// `[rollout] dns_ttl`: how long clients may keep a DNS answer after a shift, in place of the
    /// Route53 records' own TTL (an ELB alias: 60 s).
    pub dns_ttl: Option<Duration>,
    pub gates: Vec<Gate>,
    /// `[observe]`: read both sides' request counts and hold a stage's bake until the observed
    /// share is the intended one.
    pub observe: Option<Observe>,
    pub state: Option<StateConfig>,
    pub notify: Notify,
}

impl Profile {
    /// Every role the profile names, each once.
    pub fn roles(&self) -> Vec<&Role> {
        let mut roles: Vec<&Role> = self.named_roles().into_iter().map(|(_, r)| r).collect();
        roles.sort();
        roles.dedup();
        roles
    }

    /// Where the profile names `role`: `route53[0].role_arn`, `sides.green.role_arn`, ….
    pub fn role_keys(&self, role: &Role) -> Vec<String> {
        self.named_roles().into_iter().filter(|(_, r)| *r == role).map(|(k, _)| k).collect()
    }

    /// Every role given, with its key path, in the profile's order: routes, sides, gates.
    fn named_roles(&self) -> Vec<(String, &Role)> {
        let mut named = self.routes.roles();
        for s in Side::ALL {
            if let Some(r) = self.sides.role(s) {
                named.push((format!("sides.{s}.role_arn"), r));
            }
        }
        for (i, g) in self.gates.iter().enumerate() {
            if let Some(r) = &g.role {
                named.push((format!("gate[{i}].role_arn"), r));
            }
        }
        named
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::gates::{GateSpec, MinRequests};
    use crate::splitter::SplitterKind;
    use crate::splitter::alb::{Alb, RuleRef};
    use crate::splitter::route53::Route53;

    fn parse(text: &str) -> Result<Profile, String> {
        Profile::parse(Path::new("profiles/t.toml"), text).map_err(|e| e.to_string())
    }

    const MIN: &str = r#"
[[route53]]
zone = "myapp.com."
record = "api.myapp.com"
blue = "blue"
green = "green"
"#;

    #[test]
    fn minimal_profile_takes_defaults() {
        let p = parse(MIN).unwrap();
        assert_eq!(p.name, "t");
        assert_eq!(p.routes.route53[0].record, "api.myapp.com.");
        assert_eq!(p.routes.route53[0].rtype, "A");
        assert_eq!(p.rollout, Rollout::default());
    }

    #[test]
    fn metric_gates_take_only_periods_and_ids_cloudwatch_accepts() {
        let gate = |extra: &str| {
            format!("{MIN}\n[[gate]]\ntype = \"metric\"\nnamespace = \"N\"\nmetric = \"M\"\nmax = 1\n{extra}")
        };
        for ok in ["1s", "5s", "10s", "20s", "30s", "1m", "5m", "1h"] {
            parse(&gate(&format!("period = \"{ok}\"\nwindow = \"1h\"\n"))).unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
        for bad in ["7s", "45s", "90s", "1500ms"] {
            let err = parse(&gate(&format!("period = \"{bad}\"\nwindow = \"1h\"\n"))).unwrap_err();
            assert!(err.contains("gate[0].period") && err.contains("20, 30 or 60"), "{bad}: {err}");
        }
        let expr = |id: &str| {
            format!(
                "{MIN}\n[[gate]]\ntype = \"metric\"\nexpression = \"100 * x\"\nmax = 1\n\
                 [[gate.metrics]]\nid = \"{id}\"\nnamespace = \"N\"\nmetric = \"M\"\n"
            )
        };
        parse(&expr("m_1")).unwrap();
        for bad in ["M1", "1m", "m-1", "cutover_gate"] {
            let err = parse(&expr(bad)).unwrap_err();
            assert!(err.contains("gate[0].metrics[0].id"), "{bad}: {err}");
        }
    }

    #[test]
    fn roles_are_checked_where_they_are_written_and_a_zone_has_one() {
        const NET: &str = "arn:aws:iam::111111111111:role/net";
        const APP: &str = "arn:aws:iam::222222222222:role/team/app";
        let alb = "[[alb]]\nlistener = \"front:443\"\nblue = \"b\"\ngreen = \"g\"\n";
        let p = parse(&format!(
            "[[route53]]\nzone = \"myapp.com\"\nrecord = \"api.myapp.com\"\nblue = \"b\"\ngreen = \"g\"\nrole_arn = \"{NET}\"\nexternal_id = \"ops-42\"\n\n{alb}role_arn = \"{APP}\"\n\n[sides.green]\nrole_arn = \"{APP}\"\n\n[[gate]]\ntype = \"alarm\"\nalarms = [\"a\"]\nrole_arn = \"{APP}\"\n"
        ))
        .unwrap();
        let net = Role { arn: NET.into(), external_id: Some("ops-42".into()) };
        let app = Role { arn: APP.into(), external_id: None };
        assert_eq!(p.routes.route53[0].role.as_ref(), Some(&net));
        assert_eq!(p.roles(), vec![&net, &app]);
        assert_eq!(app.account(), "222222222222");
        assert_eq!(p.role_keys(&app), ["alb[0].role_arn", "sides.green.role_arn", "gate[0].role_arn"]);
        // An alias's load balancer: the side's role, else the zone's; an ALB route's own.
        let lb = |side: Side| Route53::load_balancer(&p.routes.route53[0], p.sides.role(side)).and_then(|(r, _)| r);
        assert_eq!(lb(Side::Green).as_ref(), Some(&app));
        assert_eq!(lb(Side::Blue).as_ref(), Some(&net));
        let own = Alb::load_balancer(&p.routes.alb[0], p.sides.role(Side::Blue)).and_then(|(r, _)| r);
        assert_eq!(own.as_ref(), Some(&app));

        let err = parse(&format!("{MIN}external_id = \"x1\"\n")).unwrap_err();
        assert!(err.contains("route53[0].external_id") && err.contains("role_arn"), "{err}");
        for bad in ["arn:aws:iam::1111:role/x", "arn:aws:sts::111111111111:assumed-role/x/y", "net"] {
            let err = parse(&format!("{MIN}role_arn = \"{bad}\"\n")).unwrap_err();
            assert!(err.contains("route53[0].role_arn") && err.contains("not an IAM role ARN"), "{bad}: {err}");
        }
        let err = parse(&format!("{alb}role_arn = \"{NET}\"\nexternal_id = \"a b\"\n")).unwrap_err();
        assert!(err.contains("alb[0].external_id"), "{err}");
        let err = parse(&format!("{MIN}\n[[gate]]\ntype = \"http\"\nurl = \"https://x\"\nrole_arn = \"{NET}\"\n"))
            .unwrap_err();
        assert!(err.contains("gate[0]") && err.contains("role_arn"), "{err}");
        let err = parse(&format!(
            "{MIN}\n[[route53]]\nzone = \"myapp.com\"\nrecord = \"www.myapp.com\"\nblue = \"b\"\ngreen = \"g\"\nrole_arn = \"{NET}\"\n"
        ))
        .unwrap_err();
        assert!(err.contains("route53[1].role_arn") && err.contains("same role"), "{err}");
        let err = parse(&format!(
            "{MIN}\n[rollout]\nsafety_net = true\n\n[[gate]]\ntype = \"alarm\"\nalarms = [\"a\"]\nrole_arn = \"{NET}\"\n"
        ))
        .unwrap_err();
        assert!(err.contains("gate[0].role_arn") && err.contains("safety_net"), "{err}");
    }

    #[test]
    fn a_judge_takes_the_contracts_keys_and_refuses_what_cannot_be_judged() {
        let judge = |body: &str| parse(&format!("{MIN}\n[[gate]]\ntype = \"judge\"\n{body}"));
        let p = judge(
            "errors = { ratio = 2, margin = 0.1 }\nlatency = { slo = \"300ms\", ratio = 1.5 }\nconfidence = 0.95\n\
             warmup = \"3m\"\nshadow = true\n",
        )
        .unwrap();
        let gate = &p.gates[0];
        assert_eq!(gate.name, "judge#1");
        assert!(gate.shadow);
        let GateSpec::Judge(spec) = &gate.spec else { panic!("{:?}", gate.spec) };
        assert_eq!((spec.settings.errors.ratio, spec.settings.errors.margin), (2.0, 0.1));
        assert_eq!(spec.settings.latency.map(|l| l.ratio), Some(1.5));
        assert_eq!(spec.slo, Some(std::time::Duration::from_millis(300)));
        assert_eq!(spec.settings.confidence, 0.95);
        assert_eq!(spec.settings.warmup, std::time::Duration::from_secs(180));
        let GateSpec::Judge(defaults) = &judge("").unwrap().gates[0].spec else { panic!() };
        assert_eq!(defaults.settings, crate::judge_stats::Settings::default());
        for (body, key) in [
            ("errors = { ratio = 0.5 }", "gate[0].errors.ratio"),
            ("errors = { margin = -1 }", "gate[0].errors.margin"),
            ("latency = { slo = \"0s\" }", "gate[0].latency.slo"),
            ("latency = { ratio = 2 }", "gate[0].latency"),
            ("confidence = 1.0", "gate[0].confidence"),
            ("confidence = 0.3", "gate[0].confidence"),
            ("warmup = \"2h\"", "gate[0].warmup"),
            ("errors = { ratio = 2, limit = 1 }", "gate[0].errors"),
        ] {
            let err = judge(body).unwrap_err();
            assert!(err.contains(key), "{body}: {err}");
        }
    }

    #[test]
    fn unknown_key_names_file_and_path() {
        let err = parse(&format!("{MIN}\n[rollout]\nstagez = [1]\n")).unwrap_err();
        assert!(err.contains("profiles/t.toml"), "{err}");
        assert!(err.contains("rollout"), "{err}");
        assert!(err.contains("stagez"), "{err}");
    }

    #[test]
    fn stages_must_ascend_and_end_at_100() {
        let err = parse(&format!("{MIN}\n[rollout]\nstages = [10, 50, 25, 100]\n")).unwrap_err();
        assert!(err.contains("rollout.stages[2]") && err.contains("ascending"), "{err}");
        let err = parse(&format!("{MIN}\n[rollout]\nstages = [10, 50]\n")).unwrap_err();
        assert!(err.contains("rollout.stages[1]") && err.contains("100"), "{err}");
        let err = parse(&format!("{MIN}\n[rollout]\nstages = [10, 150]\n")).unwrap_err();
        assert!(err.contains("rollout.stages[1]") && err.contains("outside"), "{err}");
        let p = parse(&format!("{MIN}\n[rollout]\nstages = [0.5, 10, 100]\n")).unwrap();
        assert_eq!(p.rollout.stages[0].to_string(), "0.5");
    }

    #[test]
    fn gate_fields_are_checked_per_type() {
        let err = parse(&format!("{MIN}\n[[gate]]\ntype = \"alarm\"\nalarm = [\"x\"]\n")).unwrap_err();
        assert!(err.contains("gate[0]") && err.contains("alarm"), "{err}");
        let err = parse(&format!("{MIN}\n[[gate]]\ntype = \"nope\"\n")).unwrap_err();
        assert!(err.contains("gate[0]") && err.contains("nope"), "{err}");
        let err = parse(&format!("{MIN}\n[[gate]]\ntype = \"http\"\nurl = \"ftp://x\"\n")).unwrap_err();
        assert!(err.contains("gate[0].url"), "{err}");
        let p = parse(&format!(
            "{MIN}\n[[gate]]\ntype = \"webhook\"\nurl = \"https://h/confirm\"\n[[gate]]\ntype = \"target-health\"\n"
        ))
        .unwrap();
        assert_eq!(p.gates[0].name, "webhook#1");
        assert_eq!(p.gates[1].spec, GateSpec::TargetHealth(crate::gates::target_health::Spec { min_healthy: 1.0 }));
    }

    #[test]
    fn observe_min_requests_and_the_safety_net_are_checked_where_they_are_written() {
        let p = parse(&format!("{MIN}\n[observe]\n")).unwrap();
        let settle = crate::observe::DEFAULT_SETTLE;
        assert_eq!(p.observe, Some(Observe { tolerance: 5.0, window: Duration::from_secs(60), settle }));
        let p = parse(&format!("{MIN}\n[observe]\nsettle = \"3m\"\n")).unwrap();
        assert_eq!(p.observe.map(|o| o.settle), Some(Duration::from_secs(180)));
        let err = parse(&format!("{MIN}\n[observe]\nsettle = \"2h\"\n")).unwrap_err();
        assert!(err.contains("observe.settle") && err.contains("hint:"), "{err}");
        let err = parse(&format!("{MIN}\n[observe]\ntolerance = 0\n")).unwrap_err();
        assert!(err.contains("observe.tolerance") && err.contains("hint:"), "{err}");
        let err = parse(&format!("{MIN}\n[observe]\nwindow = \"30s\"\n")).unwrap_err();
        assert!(err.contains("observe.window") && err.contains("1m"), "{err}");

        let alarm = "[[gate]]\ntype = \"alarm\"\nalarms = [\"a-{side}\"]\n";
        let p = parse(&format!("{MIN}\n{alarm}min_requests = 50\n")).unwrap();
        let want = MinRequests { count: 50, window: Duration::from_secs(300) };
        assert_eq!(p.gates[0].min_requests, Some(want));
        let err = parse(&format!("{MIN}\n{alarm}min_requests = 0\n")).unwrap_err();
        assert!(err.contains("gate[0].min_requests"), "{err}");
        // Only gates that can read "no data" take it.
        let err = parse(&format!("{MIN}\n[[gate]]\ntype = \"target-health\"\nmin_requests = 5\n")).unwrap_err();
        assert!(err.contains("gate[0]") && err.contains("min_requests"), "{err}");

        let err = parse(&format!("{MIN}\n[rollout]\nsafety_net = true\n")).unwrap_err();
        assert!(err.contains("rollout.safety_net") && err.contains("alarm gate"), "{err}");
        let alb = "[[alb]]\nlistener = \"front:80\"\nblue = \"a\"\ngreen = \"b\"\n";
        let err = parse(&format!("{alb}[rollout]\nsafety_net = true\n{alarm}")).unwrap_err();
        assert!(err.contains("rollout.safety_net") && err.contains("[[route53]]"), "{err}");
        let p = parse(&format!("{MIN}\n[rollout]\nsafety_net = true\ndns_ttl = \"5s\"\n{alarm}")).unwrap();
        assert!(p.safety_net);
        assert_eq!(p.dns_ttl, Some(Duration::from_secs(5)));
    }

    #[test]
    fn profile_errors_read_as_they_are_snapshotted() {
        let errors = [
            format!("{MIN}\n[rollout]\nstages = [10, 50, 25, 100]\n"),
            format!("{MIN}\n[rollout]\nbake = \"five minutes\"\n"),
            format!("{MIN}\n[observe]\ntolerance = 0\n"),
            format!("{MIN}\n[rollout]\nsafety_net = true\n"),
            "[[route53]]\nzone = \"a.com\"\nrecord = \"api.b.com\"\nblue = \"b\"\ngreen = \"g\"\n".to_string(),
        ]
        .map(|text| parse(&text).unwrap_err())
        .join("\n---\n");
        insta::assert_snapshot!(errors);
    }

    #[test]
    fn bad_durations_name_their_key() {
        let err = parse(&format!("{MIN}\n[rollout]\nbake = \"five minutes\"\n")).unwrap_err();
        assert!(err.contains("rollout.bake") && err.contains("hint:"), "{err}");
    }

    #[test]
    fn a_profile_needs_a_route() {
        let err = parse("description = \"x\"\n").unwrap_err();
        assert!(err.contains("no routes"), "{err}");
    }

    #[test]
    fn alb_routes_need_listener_arns() {
        let err = parse("[[alb]]\nlistener = \"front\"\nblue = \"a\"\ngreen = \"b\"\n").unwrap_err();
        assert!(err.contains("alb[0].listener"), "{err}");
        let ok = parse(
            "[[alb]]\nlistener = \"arn:aws:elasticloadbalancing:us-west-2:1:listener/app/f/1/2\"\nblue = \"a\"\ngreen = \"b\"\n",
        )
        .unwrap();
        assert_eq!(ok.routes.alb[0].rule, RuleRef::Default);
    }

    #[test]
    fn syntax_errors_say_the_line() {
        let err = parse("[[route53]]\nzone = \n").unwrap_err();
        assert!(err.contains("line 2"), "{err}");
    }

    #[test]
    fn record_outside_zone_is_refused() {
        let err =
            parse("[[route53]]\nzone = \"a.com\"\nrecord = \"api.b.com\"\nblue = \"b\"\ngreen = \"g\"\n").unwrap_err();
        assert!(err.contains("route53[0].record"), "{err}");
    }
}
