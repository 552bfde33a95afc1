//! `alarm` gate: CloudWatch alarms by name, all in one DescribeAlarms call. ALARM fails,
//! INSUFFICIENT_DATA waits, OK passes.

use aws_sdk_cloudwatch::Client;
use aws_sdk_cloudwatch::types::{AlarmType, HistoryItemType, StateValue};
use serde::Deserialize;

use super::kind::{Checked, Env, GateCheck, GateContext, GateKind, min_requests, substitute};
use crate::error::{Error, Result};
use crate::iam::{Scope, Statement};
use crate::model::{Reading, Role, Side, Verdict};
use crate::profile::fields::{self, Bad, Key, bad, duration, non_empty};

/// The `alarm` gate kind.
pub struct Kind;

/// An `alarm` gate's table.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Section {
    alarms: Vec<String>,
    min_requests: Option<i64>,
    #[serde(default = "default_window")]
    window: String,
}

fn default_window() -> String {
    "5m".to_string()
}

/// An `alarm` gate, checked.
#[derive(Clone, Debug, PartialEq)]
pub struct Spec {
    /// Alarm names; `{side}` becomes the candidate.
    pub alarms: Vec<String>,
}

impl GateKind for Kind {
    const TYPE: &'static str = "alarm";
    const AWS: bool = true;
    type Section = Section;
    type Spec = Spec;
    type Reader = Reader;

    fn check(g: Section, at: &Key) -> std::result::Result<Checked<Spec>, Bad> {
        if g.alarms.is_empty() {
            return Err(bad(at.at("alarms"), "must name at least one alarm"));
        }
        for (j, a) in g.alarms.iter().enumerate() {
            non_empty(&format!("{}[{j}]", at.at("alarms")), a)?;
        }
        let window = duration(&at.at("window"), &g.window, fields::REQUEST_WINDOW)?;
        Ok(Checked { spec: Spec { alarms: g.alarms }, min_requests: min_requests(at, g.min_requests, window)? })
    }

    fn reader(spec: &Spec, env: &Env<'_>) -> Reader {
        Reader::with_client(crate::client!(aws_sdk_cloudwatch, env.sdk()), env.name, spec.alarms.clone())
            .with_role(env.role.cloned())
    }

    /// DescribeAlarms has no resource-level permission; DescribeAlarmHistory returns a composite
    /// alarm's history only to a permission scoped to `*`, and whether a named alarm is
    /// composite is not in the profile.
    fn policy(_: &Spec, role: Option<&Role>, scope: &Scope<'_>) -> Vec<Statement> {
        if scope.read_only || !scope.here(role) {
            return Vec::new();
        }
        vec![Statement::new(
            "GateAlarms",
            &["cloudwatch:DescribeAlarms", "cloudwatch:DescribeAlarmHistory"],
            ["*".to_string()],
        )]
    }

    /// Several alarm gates of one account: their alarms in one DescribeAlarms call (100 names a
    /// call), not one each. Alarms of several accounts are read by each gate itself.
    async fn read_all(readers: &[&Reader], ctx: &GateContext) -> Vec<Reading> {
        let together = readers.len() > 1 && readers.iter().all(|r| r.role == readers[0].role);
        if !together {
            return futures::future::join_all(readers.iter().map(|r| r.read(ctx))).await;
        }
        let names = readers.iter().flat_map(|a| a.names(ctx.candidate)).collect();
        let states = states_of(&readers[0].client, names).await.map_err(|e| e.to_string());
        futures::future::join_all(readers.iter().map(|r| r.read_from(ctx, Some(&states)))).await
    }
}

/// Reads an `alarm` gate.
pub struct Reader {
    name: String,
    client: Client,
    alarms: Vec<String>,
    /// The role its alarms are read with: gates of one role are read together.
    role: Option<Role>,
}

impl Reader {
    pub fn with_client(client: Client, name: &str, alarms: Vec<String>) -> Reader {
        Reader { name: name.to_string(), client, alarms, role: None }
    }

    fn with_role(self, role: Option<Role>) -> Reader {
        Reader { role, ..self }
    }

    /// The alarm names this gate reads for `side`.
    pub(crate) fn names(&self, side: Side) -> Vec<String> {
        self.alarms.iter().map(|a| substitute(a, side)).collect()
    }

    /// (alarm name, state) of every alarm found; metric and composite alarms alike.
    async fn states(&self, side: Side) -> Result<Vec<(String, StateValue)>> {
        states_of(&self.client, self.names(side)).await
    }

    /// Every named alarm must exist.
    async fn exist(&self, side: Side) -> Result<()> {
        let found = self.states(side).await?;
        let missing: Vec<String> =
            self.names(side).into_iter().filter(|n| !found.iter().any(|(f, _)| f == n)).collect();
        if missing.is_empty() {
            Ok(())
        } else {
            Err(Error::refused_hint(
                format!("gate `{}`: alarm(s) not found: {}", self.name, missing.join(", ")),
                "check `alarms` of the gate (\"{side}\" becomes the candidate side): `aws cloudwatch describe-alarms --alarm-names …`",
            ))
        }
    }
}

impl Reader {
    /// Alarms that went into ALARM at some point since `since` (DescribeAlarmHistory).
    async fn alarmed_since(&self, side: Side, since: std::time::SystemTime) -> Result<Vec<String>> {
        let mut alarmed = Vec::new();
        for name in self.names(side) {
            // Without AlarmTypes, DescribeAlarmHistory answers for metric alarms only: a composite
            // alarm's history would read empty. Every page is read: a flapping alarm may have
            // more changes in the window than one page holds.
            let mut token: Option<String> = None;
            let mut went = false;
            for _ in 0..50 {
                let out = self
                    .client
                    .describe_alarm_history()
                    .alarm_name(&name)
                    .alarm_types(AlarmType::MetricAlarm)
                    .alarm_types(AlarmType::CompositeAlarm)
                    .history_item_type(HistoryItemType::StateUpdate)
                    .start_date(aws_smithy_types::DateTime::from(since))
                    .end_date(aws_smithy_types::DateTime::from(std::time::SystemTime::now()))
                    .max_records(100)
                    .set_next_token(token.take())
                    .customize()
                    .config_override(
                        aws_sdk_cloudwatch::config::Config::builder()
                            .retry_config(aws_config::retry::RetryConfig::standard().with_max_attempts(2)),
                    )
                    .send()
                    .await
                    .map_err(|e| crate::aws::error("DescribeAlarmHistory", e))?;
                went = out
                    .alarm_history_items
                    .unwrap_or_default()
                    .iter()
                    .any(|i| went_to_alarm(i.history_summary.as_deref().unwrap_or_default()));
                token = out.next_token.filter(|t| !t.is_empty());
                if went || token.is_none() {
                    break;
                }
            }
            if went {
                alarmed.push(name);
            }
        }
        Ok(alarmed)
    }
}

/// DescribeAlarms takes at most this many names a call.
const NAMES_PER_CALL: usize = 100;

/// (alarm name, state) of every alarm of `names` that exists, metric and composite alike: one
/// DescribeAlarms call per 100 names, whichever gates they belong to.
pub(crate) async fn states_of(client: &Client, mut names: Vec<String>) -> Result<Vec<(String, StateValue)>> {
    names.sort();
    names.dedup();
    let mut found = Vec::new();
    for chunk in names.chunks(NAMES_PER_CALL) {
        let out = client
            .describe_alarms()
            .set_alarm_names(Some(chunk.to_vec()))
            .alarm_types(AlarmType::MetricAlarm)
            .alarm_types(AlarmType::CompositeAlarm)
            .max_records(100)
            .send()
            .await
            .map_err(|e| crate::aws::error("DescribeAlarms", e))?;
        let metric = out.metric_alarms.unwrap_or_default().into_iter().map(|a| (a.alarm_name, a.state_value));
        let composite = out.composite_alarms.unwrap_or_default().into_iter().map(|a| (a.alarm_name, a.state_value));
        found
            .extend(metric.chain(composite).filter_map(|(n, s)| Some((n?, s.unwrap_or(StateValue::InsufficientData)))));
    }
    Ok(found)
}

/// "Alarm updated from OK to ALARM" → true.
pub(crate) fn went_to_alarm(summary: &str) -> bool {
    summary.trim_end().ends_with("to ALARM")
}

impl GateCheck for Reader {
    async fn read(&self, ctx: &GateContext) -> Reading {
        self.read_from(ctx, None).await
    }

    async fn preflight(&self, candidate: Side) -> Result<()> {
        self.exist(candidate).await
    }
}

impl Reader {
    /// Reads this gate, from `prefetched` states when every alarm gate's alarms were described
    /// together this poll.
    pub(crate) async fn read_from(
        &self,
        ctx: &GateContext,
        prefetched: Option<&std::result::Result<Vec<(String, StateValue)>, String>>,
    ) -> Reading {
        if let Some(since) = ctx.since {
            match self.alarmed_since(ctx.candidate, since).await {
                Ok(alarmed) if !alarmed.is_empty() => {
                    return Reading::new(
                        &self.name,
                        Verdict::Fail,
                        format!("went into ALARM during the stage: {}", alarmed.join(", ")),
                    );
                }
                Ok(_) => {}
                Err(e) => {
                    return Reading::new(
                        &self.name,
                        Verdict::Wait,
                        format!("alarm history unreadable, so the stage's window is unknown: {e}"),
                    );
                }
            }
        }
        let states = match prefetched {
            Some(Ok(s)) => s.clone(),
            Some(Err(e)) => return Reading::new(&self.name, Verdict::Wait, format!("cannot read alarms: {e}")),
            None => match self.states(ctx.candidate).await {
                Ok(s) => s,
                Err(e) => return Reading::new(&self.name, Verdict::Wait, format!("cannot read alarms: {e}")),
            },
        };
        let names = self.names(ctx.candidate);
        // Read together, the states are every alarm gate's: this gate judges its own alarms only.
        let states: Vec<(String, StateValue)> = states.into_iter().filter(|(n, _)| names.contains(n)).collect();
        let missing: Vec<&String> = names.iter().filter(|n| !states.iter().any(|(f, _)| f == *n)).collect();
        let in_alarm: Vec<&str> =
            states.iter().filter(|(_, s)| *s == StateValue::Alarm).map(|(n, _)| n.as_str()).collect();
        let no_data: Vec<&str> =
            states.iter().filter(|(_, s)| *s == StateValue::InsufficientData).map(|(n, _)| n.as_str()).collect();
        if !in_alarm.is_empty() {
            Reading::new(&self.name, Verdict::Fail, format!("in ALARM: {}", in_alarm.join(", ")))
        } else if !missing.is_empty() {
            let missing: Vec<&str> = missing.iter().map(|s| s.as_str()).collect();
            Reading::new(&self.name, Verdict::Wait, format!("not found: {}", missing.join(", ")))
        } else if !no_data.is_empty() {
            Reading::no_data(&self.name, format!("INSUFFICIENT_DATA: {}", no_data.join(", ")))
        } else {
            Reading::new(&self.name, Verdict::Pass, format!("{} OK", names.len()))
        }
    }
}

#[cfg(test)]
mod tests {
    //! DescribeAlarmHistory cannot run on the emulator (moto answers 500), so the path is pinned
    //! here with the real API's answer shape, replayed through the SDK client.

    use std::time::{Duration, SystemTime};

    use aws_sdk_cloudwatch::operation::describe_alarm_history::DescribeAlarmHistoryOutput;
    use aws_sdk_cloudwatch::operation::describe_alarms::DescribeAlarmsOutput;
    use aws_sdk_cloudwatch::types::{AlarmHistoryItem, MetricAlarm};
    use aws_smithy_mocks::{Rule, mock};

    use super::*;
    use crate::model::Percent;

    fn ctx(since: Option<SystemTime>) -> GateContext {
        GateContext {
            profile: "p".into(),
            candidate: Side::Green,
            stable: Side::Blue,
            current_percent: Percent::ZERO,
            next_percent: None,
            stage: 1,
            stages: 3,
            stage_age: Duration::from_secs(600),
            next_bake: Duration::ZERO,
            since,
        }
    }

    use crate::replay::cloudwatch as replay;

    fn now_ok() -> Rule {
        mock!(Client::describe_alarms).then_output(|| {
            DescribeAlarmsOutput::builder()
                .metric_alarms(MetricAlarm::builder().alarm_name("app-green-5xx").state_value(StateValue::Ok).build())
                .build()
        })
    }

    #[tokio::test]
    async fn an_alarm_that_fired_and_recovered_between_two_advances_fails_the_stage() {
        let history = mock!(Client::describe_alarm_history)
            .match_requests(|r| r.alarm_name() == Some("app-green-5xx") && r.start_date().is_some())
            .then_output(|| {
                DescribeAlarmHistoryOutput::builder()
                    .alarm_history_items(
                        AlarmHistoryItem::builder()
                            .alarm_name("app-green-5xx")
                            .history_summary("Alarm updated from ALARM to OK")
                            .build(),
                    )
                    .alarm_history_items(
                        AlarmHistoryItem::builder()
                            .alarm_name("app-green-5xx")
                            .history_summary("Alarm updated from OK to ALARM")
                            .build(),
                    )
                    .build()
            });
        let client = replay(&[&now_ok(), &history]);
        let gate = Reader::with_client(client, "alarm#1", vec!["app-{side}-5xx".into()]);
        let since = SystemTime::now() - Duration::from_secs(600);
        let r = gate.read(&ctx(Some(since))).await;
        assert_eq!(r.verdict, Verdict::Fail, "{r:?}");
        assert!(r.detail.contains("went into ALARM during the stage"), "{r:?}");
        // Read only now (a rollout's poll), the same alarm passes: it is OK again.
        let r = gate.read(&ctx(None)).await;
        assert_eq!(r.verdict, Verdict::Pass, "{r:?}");
    }

    #[tokio::test]
    async fn a_quiet_history_passes_and_an_unreadable_one_waits() {
        let quiet = mock!(Client::describe_alarm_history).then_output(|| DescribeAlarmHistoryOutput::builder().build());
        let client = replay(&[&now_ok(), &quiet]);
        let gate = Reader::with_client(client, "alarm#1", vec!["app-{side}-5xx".into()]);
        let r = gate.read(&ctx(Some(SystemTime::now()))).await;
        assert_eq!(r.verdict, Verdict::Pass, "{r:?}");

        let broken = mock!(Client::describe_alarm_history).then_error(|| {
            aws_sdk_cloudwatch::operation::describe_alarm_history::DescribeAlarmHistoryError::unhandled(
                "InternalFailure",
            )
        });
        let client = replay(&[&now_ok(), &broken]);
        let gate = Reader::with_client(client, "alarm#1", vec!["app-{side}-5xx".into()]);
        let r = gate.read(&ctx(Some(SystemTime::now()))).await;
        assert_eq!(r.verdict, Verdict::Wait, "history unknown is never a pass: {r:?}");
    }

    #[test]
    fn summaries_into_alarm() {
        assert!(went_to_alarm("Alarm updated from OK to ALARM"));
        assert!(went_to_alarm("Alarm updated from INSUFFICIENT_DATA to ALARM"));
        assert!(!went_to_alarm("Alarm updated from ALARM to OK"));
    }
}
