//! The data-plane safety net (`[rollout] safety_net = true`, Route53 routes).
//!
//! While a rollout runs, the candidate's weighted record sets carry a Route53 health check of type
//! `CLOUDWATCH_METRIC` on the alarm gates' alarms. Route53 answers only with healthy records, so
//! once an alarm fires Route53 itself stops sending clients to the candidate — even when no cutover
//! process is alive to roll back: a scheduled rollout between two calls, a killed run, a pipeline
//! whose build host died. Several alarms (or a record that had a health check of its own) are
//! combined by a `CALCULATED` check that is healthy only while every one of them is.
//!
//! Every health check cutover creates is named by its `CallerReference`:
//! `cutover:<profile key>:a:<group>:<the record's own health check id, or none>` for the one
//! attached to a record, `cutover:<profile key>:c:<group>:<n>` for its children. So the record's
//! own health check is restored from the name alone, and the next run finds and deletes what a
//! crashed one left. `InsufficientDataHealthStatus` is `LastKnownStatus` (healthy for a new
//! check): an idle candidate's alarm without data does not withdraw it; an alarm in ALARM does.

use std::collections::BTreeSet;

use aws_sdk_route53::Client;
use aws_sdk_route53::types::{
    AlarmIdentifier, CloudWatchRegion, HealthCheck, HealthCheckConfig, HealthCheckType, InsufficientDataHealthStatus,
};

use crate::error::{Error, Result};
use crate::gates::{Gate, GateSpec};
use crate::model::Side;
use crate::profile::Profile;
use crate::profile::fields::{Bad, bad_hint};
use crate::splitter::route53::{self, RecordEdit};
use crate::splitter::{AwsTraffic, Edit, RouteChange, RouteLive, Routes};

/// What `[rollout] safety_net = true` needs of a profile: Route53 routes to attach to, alarm
/// gates to watch, and one account for both.
pub fn check(routes: &Routes, gates: &[Gate]) -> std::result::Result<(), Bad> {
    if routes.route53.is_empty() {
        return Err(bad_hint(
            "rollout.safety_net",
            "the safety net is a Route53 health check on the candidate's weighted records, and the profile has no [[route53]] route",
            "drop `safety_net`, or add the weighted records as a [[route53]] route",
        ));
    }
    let alarm = |g: &Gate| matches!(g.spec, GateSpec::Alarm(_));
    if !gates.iter().any(alarm) {
        return Err(bad_hint(
            "rollout.safety_net",
            "the safety net watches the alarm gates' alarms, and the profile has no alarm gate",
            "add a [[gate]] of type = \"alarm\" naming the candidate's alarms (\"{side}\" becomes the candidate)",
        ));
    }
    // The health checks belong to the account that writes them into the records, and a
    // health check's alarm is named without an account: all must be one account.
    let zone_role = &routes.route53[0].role;
    let (key, other) = match routes.route53.iter().position(|r| r.role != *zone_role) {
        Some(i) => (format!("route53[{i}].role_arn"), "another [[route53]] route"),
        None => match gates.iter().position(|g| alarm(g) && g.role != *zone_role) {
            Some(i) => (format!("gate[{i}].role_arn"), "an alarm gate"),
            None => return Ok(()),
        },
    };
    Err(bad_hint(
        key,
        format!("`[rollout] safety_net` needs one account, and {other} names another role than route53[0]"),
        "a Route53 health check watches an alarm of its own account and is attached by the zone's account: give the [[route53]] routes and the alarm gates the same role, or drop `safety_net`",
    ))
}

/// The safety net's health checks, in the zones' account: created, listed (to find this
/// profile's by name; also for `status`) and deleted. CreateHealthCheck and ListHealthChecks have
/// no resource-level permission; attaching one to a record is the zone's ChangeResourceRecordSets.
pub fn policy(profile: &Profile, scope: &crate::iam::Scope<'_>) -> Vec<crate::iam::Statement> {
    use crate::iam::Statement;
    if !profile.safety_net || !profile.routes.route53.iter().any(|r| scope.here(r.role.as_ref())) {
        return Vec::new();
    }
    if scope.read_only {
        return vec![Statement::new("SafetyNetRead", &["route53:ListHealthChecks"], ["*".to_string()])];
    }
    vec![
        Statement::new("SafetyNetFind", &["route53:CreateHealthCheck", "route53:ListHealthChecks"], ["*".to_string()]),
        Statement::new(
            "SafetyNetDelete",
            &["route53:DeleteHealthCheck"],
            [format!("{}route53:::healthcheck/*", scope.arn())],
        ),
    ]
}

/// The health check on `side`'s record of a Route53 route.
fn health_check_id(r: &RouteLive, side: Side) -> Option<&str> {
    r.route53().and_then(|s| route53::health_check_id(s, side))
}

/// Sets the health check of a side's record set on Route53 routes, from the routes just read;
/// weights unchanged. `fixes`: (route index, side, health check id or none).
async fn set_health_checks(
    traffic: &AwsTraffic,
    routes: &[RouteLive],
    fixes: &[(usize, Side, Option<String>)],
) -> Result<()> {
    let changes: Vec<RouteChange> = routes
        .iter()
        .filter(|r| r.route53().is_some())
        .filter_map(|r| {
            let health_check: Vec<(Side, Option<String>)> = fixes
                .iter()
                .filter(|(i, side, id)| *i == r.index && health_check_id(r, *side) != id.as_deref())
                .map(|(_, s, id)| (*s, id.clone()))
                .collect();
            (!health_check.is_empty())
                .then(|| RouteChange::edit(r, Edit::Route53(RecordEdit { health_check, ..RecordEdit::default() })))
        })
        .collect();
    if changes.is_empty() {
        return Ok(());
    }
    traffic.apply(routes, &changes, None).await.map(|_| ())
}

/// The safety net of one profile.
pub struct SafetyNet {
    client: Client,
    cw: aws_sdk_cloudwatch::Client,
    /// `cutover:<profile key>:`, the prefix of every health check this profile's runs create.
    prefix: String,
    /// The alarm gates' alarms, `{side}` not yet replaced.
    alarms: Vec<String>,
    region: String,
}

/// A health check cutover created, as its name says.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Ours {
    id: String,
    /// Attached to a record (`Some(the record's own health check, if it had one)`), or a child.
    attached: Option<Option<String>>,
}

/// A profile's key: a 32-bit FNV-1a of its name and its weighted records, so two profiles of
/// one name over different records never take each other's health checks; short enough for
/// the 64 characters of a CallerReference.
fn key(profile: &Profile) -> String {
    let mut text = profile.name.clone();
    for r in &profile.routes.route53 {
        text.push_str(&format!("|{}|{}|{}|{}|{}", r.zone, r.record, r.rtype, r.blue, r.green));
    }
    fnv(&text)
}

fn fnv(text: &str) -> String {
    let mut h: u32 = 0x811c_9dc5;
    for b in text.bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    format!("{h:08x}")
}

/// A fresh group id: health checks of one attachment share it (CallerReferences never repeat).
fn group() -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    format!("{:06x}", (nanos as u64 ^ u64::from(std::process::id()).rotate_left(24)) & 0xff_ffff)
}

impl SafetyNet {
    /// The profile's safety net, when `[rollout] safety_net` asks for one. Its health checks
    /// and alarms are the zones' account's (the profile gives the zones and the alarm gates one
    /// role, or none).
    pub fn of(aws: &crate::aws::Accounts, profile: &Profile) -> Option<SafetyNet> {
        if !profile.safety_net {
            return None;
        }
        let sdk = aws.of(profile.routes.route53.first()?.role.as_ref());
        let alarms = profile
            .gates
            .iter()
            .filter_map(|g| match &g.spec {
                GateSpec::Alarm(a) => Some(a.alarms.clone()),
                _ => None,
            })
            .flatten()
            .collect();
        let region = sdk.region().map(|r| r.to_string()).or(profile.region.clone()).unwrap_or_default();
        Some(SafetyNet {
            client: crate::client!(aws_sdk_route53, sdk),
            cw: crate::client!(aws_sdk_cloudwatch, sdk),
            prefix: format!("cutover:{}:", key(profile)),
            alarms,
            region,
        })
    }

    /// Refuses (exit 2) alarms a Route53 health check cannot watch: composite alarms (Route53
    /// supports metric alarms on standard-resolution metrics only). Writes nothing.
    pub async fn preflight(&self, candidate: Side) -> Result<()> {
        let names: Vec<String> = self.alarms.iter().map(|a| crate::gates::substitute(a, candidate)).collect();
        let out = self
            .cw
            .describe_alarms()
            .set_alarm_names(Some(names))
            .alarm_types(aws_sdk_cloudwatch::types::AlarmType::CompositeAlarm)
            .send()
            .await
            .map_err(|e| crate::aws::error("DescribeAlarms", e))?;
        let composite: Vec<String> = out.composite_alarms().iter().filter_map(|a| a.alarm_name.clone()).collect();
        if composite.is_empty() {
            return Ok(());
        }
        Err(Error::refused_hint(
            format!(
                "`[rollout] safety_net` cannot watch composite alarm(s) {}: a Route53 health check watches metric alarms only",
                composite.join(", ")
            ),
            "name the composite alarm's metric alarms in the alarm gate, or drop `safety_net`",
        ))
    }

    /// Every health check this profile's runs created, as ListHealthChecks pages them.
    async fn ours(&self) -> Result<Vec<Ours>> {
        let mut found = Vec::new();
        let mut marker: Option<String> = None;
        for _ in 0..1000 {
            let out = self
                .client
                .list_health_checks()
                .max_items(1000)
                .set_marker(marker.clone())
                .send()
                .await
                .map_err(|e| crate::aws::error("ListHealthChecks", e))?;
            found.extend(out.health_checks.iter().filter_map(|h| self.parse(h)));
            match out.next_marker.filter(|m| out.is_truncated && !m.is_empty()) {
                Some(m) if Some(&m) != marker.as_ref() => marker = Some(m),
                _ => break,
            }
        }
        Ok(found)
    }

    fn parse(&self, h: &HealthCheck) -> Option<Ours> {
        let rest = h.caller_reference.strip_prefix(&self.prefix)?;
        let mut parts = rest.splitn(3, ':');
        let attached = match (parts.next()?, parts.next()?, parts.next()?) {
            ("a", _, "none") => Some(None),
            ("a", _, own) => Some(Some(own.to_string())),
            ("c", _, _) => None,
            _ => return None,
        };
        Some(Ours { id: h.id.clone(), attached })
    }

    async fn create(&self, reference: String, config: HealthCheckConfig) -> Result<String> {
        let out = self
            .client
            .create_health_check()
            .caller_reference(reference)
            .health_check_config(config)
            .send()
            .await
            .map_err(|e| crate::aws::error("CreateHealthCheck", e))?;
        out.health_check.map(|h| h.id).ok_or_else(|| Error::Other("CreateHealthCheck returned no health check".into()))
    }

    /// The health check to attach to a record that had `own`: one `CLOUDWATCH_METRIC` check per
    /// alarm, combined with `own` under a `CALCULATED` check when there is more than one.
    async fn build(&self, candidate: Side, own: Option<&str>) -> Result<String> {
        let g = group();
        let own_name = own.unwrap_or("none");
        let names: Vec<String> = self.alarms.iter().map(|a| crate::gates::substitute(a, candidate)).collect();
        let build_err = |e: aws_smithy_types::error::operation::BuildError| Error::Other(format!("health check: {e}"));
        let alarm_check = |name: &str| -> Result<HealthCheckConfig> {
            HealthCheckConfig::builder()
                .r#type(HealthCheckType::CloudwatchMetric)
                .alarm_identifier(
                    AlarmIdentifier::builder()
                        .region(CloudWatchRegion::from(self.region.as_str()))
                        .name(name)
                        .build()
                        .map_err(build_err)?,
                )
                .insufficient_data_health_status(InsufficientDataHealthStatus::LastKnownStatus)
                .build()
                .map_err(build_err)
        };
        if names.len() == 1 && own.is_none() {
            return self.create(format!("{}a:{g}:none", self.prefix), alarm_check(&names[0])?).await;
        }
        let mut children = Vec::new();
        for (i, name) in names.iter().enumerate() {
            children.push(self.create(format!("{}c:{g}:{i}", self.prefix), alarm_check(name)?).await?);
        }
        children.extend(own.map(String::from));
        let parent = HealthCheckConfig::builder()
            .r#type(HealthCheckType::Calculated)
            .set_child_health_checks(Some(children.clone()))
            .health_threshold(children.len() as i32)
            .build()
            .map_err(build_err)?;
        self.create(format!("{}a:{g}:{own_name}", self.prefix), parent).await
    }

    /// Attaches the net to `candidate`'s record on every Route53 route that does not carry it yet,
    /// and deletes whatever an earlier run left unattached. Returns the health checks attached.
    /// `routes`: the routes as just read, if nothing has written them since. Returns the checks
    /// attached, and whether any record was written.
    pub async fn attach(
        &self,
        traffic: &AwsTraffic,
        routes: Option<&[RouteLive]>,
        candidate: Side,
    ) -> Result<(Vec<String>, bool)> {
        let read = async {
            match routes {
                Some(r) => Ok(r.to_vec()),
                None => traffic.read().await,
            }
        };
        let (ours, routes) = tokio::join!(self.ours(), read);
        let (ours, routes) = (ours?, routes?);
        let attached: BTreeSet<&str> = ours.iter().filter(|o| o.attached.is_some()).map(|o| o.id.as_str()).collect();
        let mut fixes = Vec::new();
        let mut ids = Vec::new();
        for r in routes.iter().filter(|r| r.route53().is_some()) {
            match health_check_id(r, candidate) {
                Some(id) if attached.contains(id) => ids.push(id.to_string()),
                own => {
                    let id = self.build(candidate, own).await?;
                    fixes.push((r.index, candidate, Some(id.clone())));
                    ids.push(id);
                }
            }
        }
        if !fixes.is_empty() {
            set_health_checks(traffic, &routes, &fixes).await?;
            tracing::info!(checks = ?ids, "safety net attached to the {candidate} records");
        }
        // What a crashed run left: attached to no record any more.
        let in_use: BTreeSet<String> = routes
            .iter()
            .flat_map(|r| Side::ALL.map(|s| health_check_id(r, s).map(String::from)))
            .flatten()
            .chain(ids.iter().cloned())
            .collect();
        let stale: Vec<Ours> = ours.into_iter().filter(|o| o.attached.is_some() && !in_use.contains(&o.id)).collect();
        if !stale.is_empty() {
            self.delete(&stale, &[]).await;
        }
        Ok((ids, !fixes.is_empty()))
    }

    /// Takes the net off every record (each gets back the health check it had before) and
    /// deletes every health check this profile's runs created. Returns how many were deleted.
    pub async fn remove(&self, traffic: &AwsTraffic) -> Result<usize> {
        let ours = self.ours().await?;
        if ours.is_empty() {
            return Ok(0);
        }
        let routes = traffic.read().await?;
        let fixes: Vec<(usize, Side, Option<String>)> = routes
            .iter()
            .flat_map(|r| {
                Side::ALL.into_iter().filter_map(|side| {
                    let id = health_check_id(r, side)?;
                    let own = ours.iter().find(|o| o.id == id)?.attached.clone()?;
                    Some((r.index, side, own))
                })
            })
            .collect();
        if !fixes.is_empty() {
            set_health_checks(traffic, &routes, &fixes).await?;
        }
        let (parents, children): (Vec<Ours>, Vec<Ours>) = ours.into_iter().partition(|o| o.attached.is_some());
        Ok(self.delete(&parents, &children).await)
    }

    /// Deletes `parents`, then `children` (a child in use by a calculated check cannot go first).
    async fn delete(&self, parents: &[Ours], children: &[Ours]) -> usize {
        let mut deleted = 0;
        for batch in [parents, children] {
            for o in batch {
                match self.client.delete_health_check().health_check_id(&o.id).send().await {
                    Ok(_) => deleted += 1,
                    Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_health_check()) => {}
                    Err(e) => tracing::warn!(
                        error = %crate::aws::error("DeleteHealthCheck", e),
                        "could not delete the safety net's health check {}; the next run tries again",
                        o.id
                    ),
                }
            }
        }
        deleted
    }

    /// Per Route53 route index, the side whose record carries the net and its health check.
    pub async fn attached(&self, routes: &[RouteLive]) -> Result<Vec<(usize, Side, String)>> {
        let ours = self.ours().await?;
        Ok(routes
            .iter()
            .flat_map(|r| {
                Side::ALL.into_iter().filter_map(|side| {
                    let id = health_check_id(r, side)?;
                    ours.iter().any(|o| o.id == id && o.attached.is_some()).then(|| (r.index, side, id.to_string()))
                })
            })
            .collect())
    }
}

/// The safety net of a profile over its routes, as the rollback protocol puts it away.
pub struct Aftercare<'a> {
    pub net: Option<SafetyNet>,
    pub traffic: &'a AwsTraffic,
}

/// The rollout is over (completed, rolled back, aborted): the net comes off every record, which
/// gets back its own health check. A failure is a warning — traffic is where it should be — and
/// the next run cleans up what is left.
impl crate::rollout::restore::Net for Aftercare<'_> {
    async fn put_away(&self) {
        let Some(net) = &self.net else { return };
        match net.remove(self.traffic).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(deleted = n, "safety net removed: the records have their own health checks back"),
            Err(e) => tracing::warn!(
                error = %e,
                "could not take the safety net's health checks off the records; the next run of this profile removes them"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    //! The composite-alarm refusal cannot run on the emulator (moto lists composite alarms among
    //! the metric alarms): it is pinned with the real API's answer shape, replayed through the SDK.

    use aws_sdk_cloudwatch::operation::describe_alarms::DescribeAlarmsOutput;
    use aws_sdk_cloudwatch::types::CompositeAlarm;
    use aws_smithy_mocks::{create_mock_http_client, mock};

    use super::*;

    fn net(composite: Option<&'static str>) -> SafetyNet {
        let rule = mock!(aws_sdk_cloudwatch::Client::describe_alarms).then_output(move || {
            let out = DescribeAlarmsOutput::builder();
            match composite {
                Some(name) => out.composite_alarms(CompositeAlarm::builder().alarm_name(name).build()).build(),
                None => out.build(),
            }
        });
        let r53 = aws_sdk_route53::Config::builder()
            .behavior_version(aws_sdk_route53::config::BehaviorVersion::latest())
            .region(aws_sdk_route53::config::Region::new("us-west-2"))
            .http_client(create_mock_http_client())
            .build();
        SafetyNet {
            client: Client::from_conf(r53),
            cw: crate::replay::cloudwatch(&[&rule]),
            prefix: "cutover:00000000:".into(),
            alarms: vec!["app-{side}-errors".into()],
            region: "us-west-2".into(),
        }
    }

    #[tokio::test]
    async fn a_composite_alarm_cannot_back_the_net_and_is_refused_before_any_write() {
        let err = net(Some("app-green-errors")).preflight(Side::Green).await.unwrap_err();
        assert_eq!(err.exit_code(), crate::exit::USAGE, "{err}");
        let text = err.to_string();
        assert!(text.contains("composite alarm(s) app-green-errors") && text.contains("hint:"), "{text}");
        net(None).preflight(Side::Green).await.unwrap();
    }

    #[test]
    fn names_fit_a_caller_reference_and_say_what_to_restore() {
        let own = "abcdef01-2345-6789-abcd-ef0123456789";
        let name = format!("cutover:{}:a:{}:{own}", fnv("a-rather-long-profile-name|z|r"), group());
        assert!(name.len() <= 64, "{name} is {} characters", name.len());
        assert_eq!(fnv("demo|a"), fnv("demo|a"));
        assert_ne!(fnv("demo|a"), fnv("demo|b"));
    }
}
