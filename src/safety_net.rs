//! The data-plane safety net (`[rollout] safety_net = true`, Route53 routes).
//!
//! While a rollout runs, the candidate's weighted record sets carry a Route53 health check of type
//! `CLOUDWATCH_METRIC` on the alarm gates' alarms. Route53 answers only with healthy records, so
//! once an alarm fires Route53 itself stops sending clients to the candidate — even when no cutover
//! process is alive to roll back: a scheduled rollout between two calls, a killed run, a pipeline
//! whose build host died. Several alarms (or a record that had a health check of its own) are
//! combined by a `CALCULATED` check that is healthy only while every one of them is.
//! `InsufficientDataHealthStatus` is `LastKnownStatus` (healthy for a new check): an idle
//! candidate's alarm without data does not withdraw it; an alarm in ALARM does.
//!
//! **Whose check is it.** Every health check cutover creates has a `CallerReference` of its own —
//! `cutover:<profile key>:a:<group>:<the record's own health check id, or none>` for the one
//! attached to a record, `cutover:<profile key>:c:<group>:<n>` for its children — so the record's
//! own health check is restored from the check alone, and carries the tags `cutover:profile`,
//! `cutover:record` and `cutover:side`. A check is found on the records it rides on, by what it is
//! (its CallerReference), whatever the profile says now: a route added, a zone named by id, the
//! profile renamed or `safety_net` turned off mid-rollout leave nothing behind on a record the
//! profile names. Every ending (completed, rolled back, aborted, promoted) takes off every cutover
//! check on the routes' records; with `safety_net = false`, one found is a stray, taken off with a
//! warning.
//!
//! **What Route53 can watch.** A `CLOUDWATCH_METRIC` check takes a metric alarm on a
//! standard-resolution metric with Average, Minimum, Maximum, Sum or SampleCount — not a
//! composite alarm, an extended statistic (p99), metric math, or a period under a minute. Each is
//! refused before anything is written.

use std::collections::BTreeSet;

use aws_sdk_route53::Client;
use aws_sdk_route53::types::{
    AlarmIdentifier, CloudWatchRegion, HealthCheck, HealthCheckConfig, HealthCheckType, InsufficientDataHealthStatus,
    Tag, TagResourceType,
};

use crate::error::{Error, Result};
use crate::gates::{Gate, GateSpec};
use crate::model::Side;
use crate::profile::Profile;
use crate::profile::fields::{Bad, bad_hint};
use crate::splitter::route53::{self, RecordEdit};
use crate::splitter::{AwsTraffic, Edit, RouteChange, RouteLive, Routes};

/// The prefix of every health check cutover creates.
const PREFIX: &str = "cutover:";

/// The safety net over a profile's Route53 routes: the one it attaches when `safety_net = true`,
/// and the one it looks for (strays included) whatever the profile says.
pub struct SafetyNet {
    client: Client,
    cw: aws_sdk_cloudwatch::Client,
    /// Whether the profile asks for the net (`[rollout] safety_net`).
    pub enabled: bool,
    /// The profile's name, for the checks' tags.
    profile: String,
    /// `cutover:<profile key>:`, the prefix of the health checks this profile's runs create.
    prefix: String,
    /// The alarm gates' alarms, `{side}` not yet replaced.
    alarms: Vec<String>,
    region: String,
}

/// A health check cutover created, as its CallerReference says.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Ours {
    id: String,
    /// Attached to a record (`Some(the record's own health check, if it had one)`), or a child.
    attached: Option<Option<String>>,
    /// Made by this profile's runs (its key), not another's.
    this_profile: bool,
    /// A calculated check's children.
    children: Vec<String>,
}

/// A cutover health check found on a record of the profile, as `status` shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Found {
    /// Position among the profile's Route53 routes.
    pub route: usize,
    pub side: Side,
    pub id: String,
}

/// A profile's key: a 32-bit FNV-1a of its name and its weighted records, so two profiles of
/// one name over different records never take each other's unattached checks; short enough for
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

/// Why a metric alarm cannot back a Route53 `CLOUDWATCH_METRIC` health check, if it cannot.
fn unusable(alarm: &aws_sdk_cloudwatch::types::MetricAlarm) -> Option<&'static str> {
    if !alarm.metrics().is_empty() {
        return Some("it uses metric math (Route53 watches an alarm on one metric)");
    }
    if alarm.extended_statistic().is_some() {
        return Some(
            "it uses an extended statistic such as p99 (Route53 takes Average, Minimum, Maximum, Sum or SampleCount)",
        );
    }
    if alarm.period().is_some_and(|p| p < 60) {
        return Some("its period is under a minute: a high-resolution alarm (Route53 takes standard resolution only)");
    }
    None
}

impl SafetyNet {
    /// The profile's safety net — asked for or not, to find strays — when it has Route53 routes.
    /// Its health checks and alarms are the zones' account's (the profile gives the zones and the
    /// alarm gates one role, or none).
    pub fn of(aws: &crate::aws::Accounts, profile: &Profile) -> Option<SafetyNet> {
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
            enabled: profile.safety_net,
            profile: profile.name.clone(),
            prefix: format!("{PREFIX}{}:", key(profile)),
            alarms,
            region,
        })
    }

    /// Refuses (exit 2) alarms a Route53 health check cannot watch — a composite alarm, an
    /// extended statistic, metric math, a period under a minute — naming each alarm and why.
    /// Writes nothing.
    pub async fn preflight(&self, candidate: Side) -> Result<()> {
        if !self.enabled {
            return Ok(());
        }
        let mut names: Vec<String> = self.alarms.iter().map(|a| crate::gates::substitute(a, candidate)).collect();
        names.sort();
        names.dedup();
        let mut refused = Vec::new();
        for chunk in names.chunks(100) {
            let out = self
                .cw
                .describe_alarms()
                .set_alarm_names(Some(chunk.to_vec()))
                .alarm_types(aws_sdk_cloudwatch::types::AlarmType::MetricAlarm)
                .alarm_types(aws_sdk_cloudwatch::types::AlarmType::CompositeAlarm)
                .send()
                .await
                .map_err(|e| crate::aws::error("DescribeAlarms", e))?;
            for a in out.composite_alarms() {
                let name = a.alarm_name().unwrap_or_default();
                refused.push(format!("{name}: a composite alarm (Route53 watches metric alarms only)"));
            }
            for a in out.metric_alarms() {
                if let Some(why) = unusable(a) {
                    refused.push(format!("{}: {why}", a.alarm_name().unwrap_or_default()));
                }
            }
        }
        if refused.is_empty() {
            return Ok(());
        }
        Err(Error::refused_hint(
            format!("`[rollout] safety_net` cannot watch these alarms:\n  {}", refused.join("\n  ")),
            "a Route53 health check watches a metric alarm on one standard-resolution metric with Average, Minimum, Maximum, Sum or SampleCount: name such alarms in the alarm gates (a composite alarm's metric alarms, say), or drop `safety_net`",
        ))
    }

    /// Every health check cutover created (in this account), as ListHealthChecks pages them.
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
        let rest = h.caller_reference.strip_prefix(PREFIX)?;
        let mut parts = rest.splitn(4, ':');
        let (key, kind, _, own) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        let attached = match (kind, own) {
            ("a", "none") => Some(None),
            ("a", own) => Some(Some(own.to_string())),
            ("c", _) => None,
            _ => return None,
        };
        let children = h.health_check_config.as_ref().map(|c| c.child_health_checks().to_vec()).unwrap_or_default();
        Some(Ours { id: h.id.clone(), attached, this_profile: self.prefix == format!("{PREFIX}{key}:"), children })
    }

    async fn create(&self, reference: String, config: HealthCheckConfig, tags: &[Tag]) -> Result<String> {
        let out = self
            .client
            .create_health_check()
            .caller_reference(reference)
            .health_check_config(config)
            .send()
            .await
            .map_err(|e| crate::aws::error("CreateHealthCheck", e))?;
        let id = out
            .health_check
            .map(|h| h.id)
            .ok_or_else(|| Error::Other("CreateHealthCheck returned no health check".into()))?;
        if let Err(e) = self
            .client
            .change_tags_for_resource()
            .resource_type(TagResourceType::Healthcheck)
            .resource_id(&id)
            .set_add_tags(Some(tags.to_vec()))
            .send()
            .await
        {
            self.delete_ids(std::slice::from_ref(&id)).await;
            return Err(crate::aws::error(format!("ChangeTagsForResource of health check {id}"), e));
        }
        Ok(id)
    }

    /// The health check to attach to `record`'s `candidate` set that had `own`: one
    /// `CLOUDWATCH_METRIC` check per alarm, combined with `own` under a `CALCULATED` check when
    /// there is more than one. Each carries the tags; a build that fails part-way deletes what it
    /// made. Returns every check made, the one to attach last.
    async fn build(&self, candidate: Side, record: &str, own: Option<&str>) -> Result<Vec<String>> {
        let g = group();
        let own_name = own.unwrap_or("none");
        let names: Vec<String> = self.alarms.iter().map(|a| crate::gates::substitute(a, candidate)).collect();
        let build_err = |e: aws_smithy_types::error::operation::BuildError| Error::Other(format!("health check: {e}"));
        let tag = |k: &str, v: &str| Tag::builder().key(k).value(v).build();
        let tags = [
            tag("cutover:profile", &self.profile),
            tag("cutover:record", record),
            tag("cutover:side", candidate.as_str()),
        ];
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
            return Ok(vec![self.create(format!("{}a:{g}:none", self.prefix), alarm_check(&names[0])?, &tags).await?]);
        }
        let mut made: Vec<String> = Vec::new();
        let built = async {
            for (i, name) in names.iter().enumerate() {
                made.push(self.create(format!("{}c:{g}:{i}", self.prefix), alarm_check(name)?, &tags).await?);
            }
            let mut children = made.clone();
            children.extend(own.map(String::from));
            let parent = HealthCheckConfig::builder()
                .r#type(HealthCheckType::Calculated)
                .set_child_health_checks(Some(children.clone()))
                .health_threshold(children.len() as i32)
                .build()
                .map_err(build_err)?;
            self.create(format!("{}a:{g}:{own_name}", self.prefix), parent, &tags).await
        }
        .await;
        match built {
            Ok(parent) => {
                made.push(parent);
                Ok(made)
            }
            Err(e) => {
                if !made.is_empty() {
                    tracing::warn!(checks = ?made, "building the safety net failed part-way: deleting the health checks it made");
                    self.delete_ids(&made).await;
                }
                Err(e)
            }
        }
    }

    /// Deletes what builds made, each parent before its children.
    async fn unmake(&self, made: &[Vec<String>]) {
        for tree in made {
            let mut ids = tree.clone();
            ids.reverse();
            self.delete_ids(&ids).await;
        }
    }

    /// Attaches the net to `candidate`'s record on every Route53 route that does not carry it yet,
    /// and deletes what an earlier run of this profile left unattached. `routes`: the routes as
    /// just read, if nothing has written them since. Returns the checks attached, and whether any
    /// record was written. With `safety_net = false`, takes off the strays instead.
    pub async fn attach(
        &self,
        traffic: &AwsTraffic,
        routes: Option<&[RouteLive]>,
        candidate: Side,
    ) -> Result<(Vec<String>, bool)> {
        if !self.enabled {
            let wrote = self.remove_strays(traffic, routes).await?;
            return Ok((Vec::new(), wrote));
        }
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
        let mut made: Vec<Vec<String>> = Vec::new();
        for r in routes.iter().filter(|r| r.route53().is_some()) {
            match health_check_id(r, candidate) {
                Some(id) if attached.contains(id) => ids.push(id.to_string()),
                own => {
                    let tree = match self.build(candidate, &r.name, own).await {
                        Ok(tree) => tree,
                        Err(e) => {
                            // What this attachment made so far comes off again: nothing is left.
                            self.unmake(&made).await;
                            return Err(e);
                        }
                    };
                    let id = tree.last().cloned().unwrap_or_default();
                    made.push(tree);
                    fixes.push((r.index, candidate, Some(id.clone())));
                    ids.push(id);
                }
            }
        }
        if !fixes.is_empty() {
            if let Err(e) = set_health_checks(traffic, &routes, &fixes).await {
                self.unmake(&made).await;
                return Err(e);
            }
            tracing::info!(checks = ?ids, "safety net attached to the {candidate} records");
        }
        // What a crashed run of this profile left: attached to no record of the profile any more.
        let in_use: BTreeSet<String> = routes
            .iter()
            .flat_map(|r| Side::ALL.map(|s| health_check_id(r, s).map(String::from)))
            .flatten()
            .chain(ids.iter().cloned())
            .collect();
        let stale: Vec<String> = ours
            .iter()
            .filter(|o| o.this_profile && o.attached.is_some() && !in_use.contains(&o.id))
            .map(|o| o.id.clone())
            .collect();
        if !stale.is_empty() {
            self.delete_tree(&ours, &stale).await;
        }
        Ok((ids, !fixes.is_empty()))
    }

    /// Takes every cutover health check off the routes' records (each gets back the health check
    /// it had before) and deletes them with their children, and what this profile's runs left
    /// unattached. Returns how many were deleted.
    pub async fn remove(&self, traffic: &AwsTraffic) -> Result<usize> {
        let ours = self.ours().await?;
        if ours.is_empty() {
            return Ok(0);
        }
        let routes = traffic.read().await?;
        self.take_off(traffic, &routes, &ours).await
    }

    /// With `safety_net = false`: cutover checks still on the routes' records (the profile was
    /// edited mid-rollout, say) come off, with a warning. Reads nothing when no record of
    /// `known` (the routes as read when the command began) carries a health check. The records
    /// are read again before they are written: the command may have moved their weights since
    /// (a rollback's), and a write from the old read would put the old weights back.
    pub async fn remove_strays(&self, traffic: &AwsTraffic, known: Option<&[RouteLive]>) -> Result<bool> {
        if let Some(routes) = known
            && !routes.iter().any(|r| Side::ALL.iter().any(|s| health_check_id(r, *s).is_some()))
        {
            return Ok(false);
        }
        let ours = self.ours().await?;
        let on_records: BTreeSet<&str> = ours.iter().filter(|o| o.attached.is_some()).map(|o| o.id.as_str()).collect();
        if on_records.is_empty() {
            return Ok(false);
        }
        let routes = traffic.read().await?;
        let strays: Vec<String> = routes
            .iter()
            .flat_map(|r| Side::ALL.map(|s| health_check_id(r, s)))
            .flatten()
            .filter(|id| on_records.contains(id))
            .map(String::from)
            .collect();
        if strays.is_empty() {
            return Ok(false);
        }
        tracing::warn!(
            checks = ?strays,
            "`safety_net` is off, but the records carry cutover's health checks (left by a run before the profile changed): taking them off"
        );
        Ok(self.take_off(traffic, &routes, &ours).await? > 0)
    }

    /// Takes the cutover checks of `ours` off `routes`' records, then deletes them (and what this
    /// profile left unattached). Returns how many were deleted.
    async fn take_off(&self, traffic: &AwsTraffic, routes: &[RouteLive], ours: &[Ours]) -> Result<usize> {
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
        let off: Vec<String> = routes
            .iter()
            .flat_map(|r| Side::ALL.map(|s| health_check_id(r, s).map(String::from)))
            .flatten()
            .filter(|id| ours.iter().any(|o| o.id == *id && o.attached.is_some()))
            .collect();
        if !fixes.is_empty() {
            set_health_checks(traffic, routes, &fixes).await?;
        }
        let mut gone: Vec<String> = off;
        gone.extend(ours.iter().filter(|o| o.this_profile && o.attached.is_some()).map(|o| o.id.clone()));
        gone.sort();
        gone.dedup();
        Ok(self.delete_tree(ours, &gone).await)
    }

    /// Deletes the checks `parents` and, after them, their cutover children (a child in use by a
    /// calculated check cannot go first); what this profile's runs made as children of no parent
    /// any more goes too. Returns how many were deleted.
    async fn delete_tree(&self, ours: &[Ours], parents: &[String]) -> usize {
        let mut children: Vec<String> = ours
            .iter()
            .filter(|o| parents.contains(&o.id))
            .flat_map(|o| {
                o.children.iter().filter(|c| ours.iter().any(|k| k.id == **c && k.attached.is_none())).cloned()
            })
            .collect();
        let used: BTreeSet<&String> =
            ours.iter().filter(|o| !parents.contains(&o.id)).flat_map(|o| o.children.iter()).collect();
        children.extend(
            ours.iter()
                .filter(|o| o.this_profile && o.attached.is_none() && !used.contains(&o.id))
                .map(|o| o.id.clone()),
        );
        children.sort();
        children.dedup();
        self.delete_ids(parents).await + self.delete_ids(&children).await
    }

    /// Deletes health checks by id; one already gone counts as done. Returns how many were deleted.
    async fn delete_ids(&self, ids: &[String]) -> usize {
        let mut deleted = 0;
        for id in ids {
            match self.client.delete_health_check().health_check_id(id).send().await {
                Ok(_) => deleted += 1,
                Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_health_check()) => {}
                Err(e) => tracing::warn!(
                    error = %crate::aws::error("DeleteHealthCheck", e),
                    "could not delete the safety net's health check {id}; the next run tries again"
                ),
            }
        }
        deleted
    }

    /// Every cutover health check on the routes' records: which route, which side, which check.
    pub async fn found(&self, routes: &[RouteLive]) -> Result<Vec<Found>> {
        if !routes.iter().any(|r| Side::ALL.iter().any(|s| health_check_id(r, *s).is_some())) {
            return Ok(Vec::new());
        }
        let ours = self.ours().await?;
        Ok(routes
            .iter()
            .flat_map(|r| {
                Side::ALL.into_iter().filter_map(|side| {
                    let id = health_check_id(r, side)?;
                    ours.iter().any(|o| o.id == id && o.attached.is_some()).then(|| Found {
                        route: r.index,
                        side,
                        id: id.to_string(),
                    })
                })
            })
            .collect())
    }
}

/// What a rollout puts on the routes and takes off again: the preview record pointed at the
/// candidate, the safety net on its records — the core's [`Attachments`] port.
pub struct Attached<'a> {
    pub traffic: &'a AwsTraffic,
    pub net: Option<SafetyNet>,
    /// Whether any route has a preview record.
    pub previews: bool,
    /// The routes as read when the command began, before anything wrote them: where strays are
    /// looked for without a read of their own.
    pub known: Option<Vec<RouteLive>>,
    /// Whether this run has tried to attach: from then on `known` may be out of date (a stage
    /// write that timed out may have landed since), so attaching reads the routes again.
    pub tried: std::sync::atomic::AtomicBool,
}

impl crate::rollout::ports::Attachments for Attached<'_> {
    fn attach(&self, candidate: Side) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<bool>> + '_>> {
        Box::pin(async move {
            // The preview hostname follows the candidate from the first shift.
            let mut wrote = crate::sides::point_preview(self.traffic, self.previews, candidate).await?;
            if let Some(net) = &self.net {
                // Before traffic moves: Route53 withdraws the candidate by itself if an alarm fires
                // while no cutover process watches.
                // The command's first read serves the first try only: a try again (after a
                // stage write that timed out, which may have landed) writes from the records as
                // they are now, or it would put the weights of the first read back.
                let first = !self.tried.swap(true, std::sync::atomic::Ordering::SeqCst);
                let known = if wrote || !first { None } else { self.known.as_deref() };
                wrote |= net.attach(self.traffic, known, candidate).await?.1;
            }
            Ok(wrote)
        })
    }

    fn detach(&self) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + '_>> {
        Box::pin(async move {
            let Some(net) = &self.net else { return };
            let removed = if net.enabled {
                net.remove(self.traffic).await.map(|n| n > 0)
            } else {
                net.remove_strays(self.traffic, self.known.as_deref()).await
            };
            match removed {
                Ok(false) => {}
                Ok(true) => tracing::info!("safety net removed: the records have their own health checks back"),
                // With the net off, its permissions may be gone from the policy too.
                Err(e) if !net.enabled => tracing::debug!(error = %e, "could not look for the safety net's strays"),
                Err(e) => tracing::warn!(
                    error = %e,
                    "could not take the safety net's health checks off the records; the next run of this profile removes them"
                ),
            }
        })
    }
}

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

/// The safety net's health checks, in the zones' account: created and tagged, listed (to find
/// cutover's; also for `status`) and deleted. CreateHealthCheck and ListHealthChecks have no
/// resource-level permission; attaching one to a record is the zone's ChangeResourceRecordSets.
/// With `safety_net` off nothing is printed: a stray left by a run of the profile before it was
/// turned off is taken off with the permissions that run had (else said, at debug level).
pub fn policy(profile: &Profile, scope: &crate::iam::Scope<'_>) -> Vec<crate::iam::Statement> {
    use crate::iam::Statement;
    if !profile.safety_net || !profile.routes.route53.iter().any(|r| scope.here(r.role.as_ref())) {
        return Vec::new();
    }
    let checks = format!("{}route53:::healthcheck/*", scope.arn());
    match scope.read_only {
        true => vec![Statement::new("SafetyNetRead", &["route53:ListHealthChecks"], ["*".to_string()])],
        false => vec![
            Statement::new(
                "SafetyNetFind",
                &["route53:CreateHealthCheck", "route53:ListHealthChecks"],
                ["*".to_string()],
            ),
            Statement::new(
                "SafetyNetDelete",
                &["route53:DeleteHealthCheck", "route53:ChangeTagsForResource"],
                [checks],
            ),
        ],
    }
}

#[cfg(test)]
mod tests {
    //! What Route53 cannot watch is refused before any write. The refusal is pinned with the real
    //! API's answer shapes, replayed through the SDK (moto lists composite alarms among the metric
    //! alarms and keeps no extended statistics).

    use aws_sdk_cloudwatch::operation::describe_alarms::DescribeAlarmsOutput;
    use aws_sdk_cloudwatch::types::{CompositeAlarm, MetricAlarm, MetricDataQuery, Statistic};
    use aws_smithy_mocks::{create_mock_http_client, mock};

    use super::*;

    fn net(out: impl Fn() -> DescribeAlarmsOutput + Send + Sync + 'static, alarms: &[&str]) -> SafetyNet {
        let rule = mock!(aws_sdk_cloudwatch::Client::describe_alarms).then_output(out);
        let r53 = aws_sdk_route53::Config::builder()
            .behavior_version(aws_sdk_route53::config::BehaviorVersion::latest())
            .region(aws_sdk_route53::config::Region::new("us-west-2"))
            .http_client(create_mock_http_client())
            .build();
        SafetyNet {
            client: Client::from_conf(r53),
            cw: crate::replay::cloudwatch(&[&rule]),
            enabled: true,
            profile: "app".into(),
            prefix: "cutover:00000000:".into(),
            alarms: alarms.iter().map(|a| a.to_string()).collect(),
            region: "us-west-2".into(),
        }
    }

    fn metric(name: &str) -> aws_sdk_cloudwatch::types::builders::MetricAlarmBuilder {
        MetricAlarm::builder().alarm_name(name).period(60).statistic(Statistic::Sum)
    }

    #[tokio::test]
    async fn alarms_route53_cannot_watch_are_refused_naming_each_and_why_before_any_write() {
        let names = ["app-{side}-composite", "app-{side}-p99", "app-{side}-ratio", "app-{side}-fast", "app-{side}-5xx"];
        let refused = net(
            || {
                DescribeAlarmsOutput::builder()
                    .composite_alarms(CompositeAlarm::builder().alarm_name("app-green-composite").build())
                    .metric_alarms(metric("app-green-p99").set_statistic(None).extended_statistic("p99").build())
                    .metric_alarms(
                        metric("app-green-ratio")
                            .set_statistic(None)
                            .set_period(None)
                            .metrics(MetricDataQuery::builder().id("e1").expression("100 * m1 / m2").build())
                            .build(),
                    )
                    .metric_alarms(metric("app-green-fast").period(10).build())
                    .metric_alarms(metric("app-green-5xx").build())
                    .build()
            },
            &names,
        );
        let err = refused.preflight(Side::Green).await.unwrap_err();
        assert_eq!(err.exit_code(), crate::exit::USAGE, "{err}");
        let text = err.to_string();
        for (name, why) in [
            ("app-green-composite", "a composite alarm"),
            ("app-green-p99", "an extended statistic"),
            ("app-green-ratio", "metric math"),
            ("app-green-fast", "under a minute"),
        ] {
            assert!(text.contains(&format!("{name}: ")) && text.contains(why), "{name}: {text}");
        }
        assert!(!text.contains("app-green-5xx") && text.contains("hint:"), "{text}");
        let usable =
            net(|| DescribeAlarmsOutput::builder().metric_alarms(metric("app-green-5xx").build()).build(), &names[4..]);
        usable.preflight(Side::Green).await.unwrap();
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
