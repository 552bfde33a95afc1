//! The Route53 splitter: a pair of weighted record sets (same name and type, told apart by
//! `SetIdentifier`) in one hosted zone.
//!
//! A write sends the record sets as they were read with only `Weight` changed, so TTL, values,
//! alias target, `EvaluateTargetHealth` and health-check id are kept. All routes of one hosted
//! zone go in ONE change batch (Route53 applies a batch atomically), then GetChange is polled until
//! the change is INSYNC and the records are read back.
//!
//! A rollout's write is a compare-and-swap: each pair is sent as DELETE of both sets exactly as
//! read plus CREATE of the new ones. AWS refuses a DELETE whose values differ from the live set,
//! so a batch built on a stale read (a rollback wrote meanwhile) fails whole, at AWS, instead of
//! landing. A rollback UPSERTs: it must win.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use aws_config::SdkConfig;
use aws_sdk_route53::Client;
use aws_sdk_route53::types::{Change, ChangeAction, ChangeBatch, ChangeStatus, ResourceRecordSet, RrType};
use futures::{StreamExt, TryStreamExt, stream};

use super::{Raw, RouteChange, RouteLive, Splitter, WRITE_PARALLELISM, WriteOutcome, dns_key, same_dns};
use crate::error::{Error, Result};
use crate::model::{RouteKind, Side, Weights};
use crate::profile::{Route53Route, fqdn, is_zone_id};
use crate::rollout::ports::WriteGuard;

/// The kind: weighted record sets, weights 0–255.
pub const KIND: RouteKind = RouteKind::new("route53", 255);

/// How long a change may take to reach INSYNC before the command gives up waiting.
pub const SYNC_TIMEOUT: Duration = Duration::from_secs(300);
/// ListResourceRecordSets' largest page.
const PAGE: i32 = 300;
/// The page size when one name is listed: its weighted sets, and a few past them.
const ONE_NAME_PAGE: i32 = 16;

/// Record sets by (name, type), as listed.
type Listed = BTreeMap<(String, String), Vec<ResourceRecordSet>>;

/// A name as a profile spells it: Route53 returns names in lower case with `*` escaped as `\052`.
fn unescaped(name: &str) -> String {
    fqdn(&name.replace("\\052", "*"))
}

/// The key of a name and type in [`Listed`].
fn listed_key(name: &str, rtype: &RrType) -> (String, String) {
    (unescaped(name), rtype.as_str().to_string())
}

/// Where ListResourceRecordSets puts a name: ordered by the name with its labels reversed
/// (`www.example.com.` → `com.example.www`), as the API reference says.
fn list_key(name: &str) -> String {
    unescaped(name).trim_end_matches('.').rsplit('.').collect::<Vec<_>>().join(".")
}
/// Reads of zones and records in flight at once (Route53 allows 5 requests a second per account;
/// the SDK's adaptive retry slows down further when throttled).
const READ_PARALLELISM: usize = 4;

/// What a write needs of a route: the zone and both record sets exactly as read.
#[derive(Clone, Debug)]
pub struct Snapshot {
    pub zone_id: String,
    /// The zone's name, when the profile named it (a zone given by id is not looked up).
    pub zone_name: Option<String>,
    pub blue: ResourceRecordSet,
    pub green: ResourceRecordSet,
    /// The plain alias record kept on the candidate side, when the route has one.
    pub preview: Option<ResourceRecordSet>,
}

impl Snapshot {
    /// The record set of `side`, as read.
    pub(crate) fn set(&self, side: Side) -> &ResourceRecordSet {
        match side {
            Side::Blue => &self.blue,
            Side::Green => &self.green,
        }
    }

    fn set_mut(&mut self, side: Side) -> &mut ResourceRecordSet {
        match side {
            Side::Blue => &mut self.blue,
            Side::Green => &mut self.green,
        }
    }
}

pub struct Route53Splitter {
    client: Client,
    /// For telling a dead alias target (a load balancer deleted or re-created) from other refusals:
    /// one client per account an alias may point into (the zone's first, then the sides').
    elbs: Vec<aws_sdk_elasticloadbalancingv2::Client>,
    routes: Vec<Route53Route>,
    /// Zones found by the first read; a later read does not look them up again.
    zones: Mutex<BTreeMap<String, Zone>>,
    accepted: super::Accepted,
}

/// A hosted zone as resolved from the profile's `zone`.
#[derive(Clone, Debug)]
struct Zone {
    id: String,
    /// Its name, when looked up by name; a zone given by id is not looked up (its listing says
    /// whether it exists), and is named by its id.
    name: Option<String>,
}

impl Zone {
    fn label(&self) -> String {
        match &self.name {
            Some(name) => format!("`{name}` ({})", self.id),
            None => format!("`{}`", self.id),
        }
    }
}

impl Route53Splitter {
    /// `alias_accounts`: where the load balancers the records alias may be, besides the zone's
    /// own account (`sdk`).
    pub fn new(
        sdk: &SdkConfig,
        alias_accounts: &[&SdkConfig],
        routes: Vec<Route53Route>,
        accepted: super::Accepted,
    ) -> Route53Splitter {
        let elbs = std::iter::once(sdk)
            .chain(alias_accounts.iter().copied())
            .map(|sdk| crate::client!(aws_sdk_elasticloadbalancingv2, sdk))
            .collect();
        Route53Splitter {
            client: crate::client!(aws_sdk_route53, sdk),
            elbs,
            routes,
            zones: Mutex::default(),
            accepted,
        }
    }

    pub fn has_previews(&self) -> bool {
        self.routes.iter().any(|r| r.preview.is_some())
    }

    /// Finds a hosted zone by id or by name; a name shared by several zones (public and private)
    /// is refused: the profile must give the id.
    async fn zone(&self, zone: &str) -> Result<Zone> {
        if let Some(found) = self.zones.lock().expect("zone cache").get(zone) {
            return Ok(found.clone());
        }
        let found = self.find_zone(zone).await?;
        self.zones.lock().expect("zone cache").insert(zone.to_string(), found.clone());
        Ok(found)
    }

    async fn find_zone(&self, zone: &str) -> Result<Zone> {
        if is_zone_id(zone) {
            // No GetHostedZone: the zone's first listing refuses an id that does not exist.
            return Ok(Zone { id: zone.trim_start_matches("/hostedzone/").to_string(), name: None });
        }
        let name = fqdn(zone);
        let out = self
            .client
            .list_hosted_zones_by_name()
            .dns_name(&name)
            .max_items(10)
            .send()
            .await
            .map_err(|e| crate::aws::error(format!("ListHostedZonesByName {name}"), e))?;
        let found: Vec<Zone> = out
            .hosted_zones
            .into_iter()
            .filter(|z| fqdn(&z.name) == name)
            .map(|z| Zone { id: z.id.trim_start_matches("/hostedzone/").to_string(), name: Some(z.name) })
            .collect();
        match found.len() {
            0 => Err(Error::refused_hint(
                format!("hosted zone `{name}` not found"),
                "check `zone` in the profile: `aws route53 list-hosted-zones-by-name`",
            )),
            1 => Ok(found.into_iter().next().expect("one")),
            _ => Err(Error::refused_hint(
                format!(
                    "hosted zone name `{name}` is ambiguous: {}",
                    found.iter().map(|z| z.id.as_str()).collect::<Vec<_>>().join(", ")
                ),
                "several hosted zones (e.g. a public and a private one) share this name: set `zone` to the zone id",
            )),
        }
    }

    /// One ListResourceRecordSets page from `start`, a zone that does not exist refused.
    async fn list_page(
        &self,
        zone: &Zone,
        start: &(String, RrType, Option<String>),
        max_items: i32,
    ) -> Result<aws_sdk_route53::operation::list_resource_record_sets::ListResourceRecordSetsOutput> {
        self.client
            .list_resource_record_sets()
            .hosted_zone_id(&zone.id)
            .start_record_name(&start.0)
            .start_record_type(start.1.clone())
            .set_start_record_identifier(start.2.clone())
            .max_items(max_items)
            .send()
            .await
            .map_err(|e| {
                if e.as_service_error().is_some_and(|s| s.is_no_such_hosted_zone()) {
                    Error::refused_hint(
                        format!("hosted zone {} not found", zone.label()),
                        "check `zone` in the profile: `aws route53 list-hosted-zones`",
                    )
                } else {
                    crate::aws::error(format!("ListResourceRecordSets in zone {}", zone.id), e)
                }
            })
    }

    /// Lists the record sets of `name`/`rtype` (all of them, paging within the name if needed).
    async fn list_record(&self, zone: &Zone, name: &str, rtype: &RrType) -> Result<Vec<ResourceRecordSet>> {
        let mut start: (String, RrType, Option<String>) = (name.to_string(), rtype.clone(), None);
        let mut sets = Vec::new();
        loop {
            let out = self.list_page(zone, &start, ONE_NAME_PAGE).await?;
            let mut past = false;
            for set in out.resource_record_sets {
                if same_name(&set.name, name) && set.r#type == *rtype {
                    sets.push(set);
                } else {
                    past = true;
                }
            }
            if past || !out.is_truncated {
                return Ok(sets);
            }
            let next = (
                out.next_record_name.unwrap_or_default(),
                out.next_record_type.unwrap_or_else(|| rtype.clone()),
                out.next_record_identifier,
            );
            if next == start || !same_name(&next.0, name) || next.1 != *rtype {
                return Ok(sets);
            }
            start = next;
        }
    }

    /// The record sets of every `wanted` name and type of one zone, from one name range: listed
    /// from the first of them in Route53's order (names with their labels reversed) until past the
    /// last, never more pages than there are names — a zone of thousands of other records is not
    /// read whole. A name the range did not reach, or found without record sets, is listed on
    /// its own (which also tells a missing record from one the range missed).
    async fn list_names(&self, zone: &Zone, wanted: &[(String, RrType)]) -> Result<Listed> {
        let mut order: Vec<&(String, RrType)> = wanted.iter().collect();
        order.sort_by(|a, b| (list_key(&a.0), a.1.as_str()).cmp(&(list_key(&b.0), b.1.as_str())));
        order.dedup();
        let mut listed = Listed::default();
        let Some(first) = order.first() else { return Ok(listed) };
        if order.len() == 1 {
            let sets = self.list_record(zone, &first.0, &first.1).await?;
            listed.insert(listed_key(&first.0, &first.1), sets);
            return Ok(listed);
        }
        let last = list_key(&order[order.len() - 1].0);
        let wanted: std::collections::BTreeSet<(String, String)> =
            order.iter().map(|(n, t)| listed_key(n, t)).collect();
        let mut start: (String, RrType, Option<String>) = (first.0.clone(), first.1.clone(), None);
        // The name a page ended within: its sets may go on in the next page.
        let mut cut: Option<String> = None;
        for _ in 0..order.len() {
            let out = self.list_page(zone, &start, PAGE).await?;
            let mut past = false;
            cut = out.resource_record_sets.last().map(|s| unescaped(&s.name));
            for set in out.resource_record_sets {
                let key = listed_key(&set.name, &set.r#type);
                if list_key(&set.name) > last {
                    past = true;
                } else if wanted.contains(&key) {
                    listed.entry(key).or_default().push(set);
                }
            }
            if past || !out.is_truncated {
                cut = None;
                break;
            }
            let next = (
                out.next_record_name.unwrap_or_default(),
                out.next_record_type.unwrap_or(RrType::A),
                out.next_record_identifier,
            );
            if next == start {
                break;
            }
            start = next;
        }
        let again: Vec<&(String, RrType)> = order
            .into_iter()
            .filter(|(n, t)| {
                let key = listed_key(n, t);
                !listed.contains_key(&key) || cut.as_deref() == Some(key.0.as_str())
            })
            .collect();
        let sets: Vec<((String, String), Vec<ResourceRecordSet>)> = stream::iter(again)
            .map(|(n, t)| async move { self.list_record(zone, n, t).await.map(|sets| (listed_key(n, t), sets)) })
            .buffer_unordered(READ_PARALLELISM)
            .try_collect()
            .await?;
        listed.extend(sets);
        Ok(listed)
    }

    /// Polls GetChange until the change is INSYNC.
    async fn wait_insync(&self, change_id: &str) -> Result<()> {
        let started = Instant::now();
        let mut delay = Duration::from_millis(250);
        loop {
            let out = self
                .client
                .get_change()
                .id(change_id)
                .send()
                .await
                .map_err(|e| crate::aws::error(format!("GetChange {change_id}"), e))?;
            if out.change_info.map(|c| c.status) == Some(ChangeStatus::Insync) {
                return Ok(());
            }
            if started.elapsed() >= SYNC_TIMEOUT {
                return Err(Error::Aws {
                    transient: true,
                    action: format!("GetChange {change_id}"),
                    message: format!(
                        "the change was accepted but is not INSYNC after {}s; Route53 applies accepted changes, so it should settle — check `aws route53 get-change --id {change_id}`",
                        SYNC_TIMEOUT.as_secs()
                    ),
                });
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(5));
        }
    }

    /// One change batch for one zone: every record set whose weight changes — UPSERTed, or with
    /// `guard.compare` both sets of each pair DELETEd as read and CREATEd anew. Returns the routes
    /// as the batch left them: Route53 applies a batch whole, exactly as sent, so what it sent is
    /// what the zone holds once the change is accepted (and INSYNC, as far as GetChange tells).
    async fn write_zone(&self, zone_id: &str, changes: &[RouteChange], guard: WriteGuard) -> Result<Vec<RouteLive>> {
        let mut batch = Vec::new();
        let mut written = Vec::new();
        for c in changes {
            let Raw::Route53(snap) = &c.route.raw else {
                continue;
            };
            let mut after = snap.as_ref().clone();
            if let (Some(side), Some(preview)) = (c.preview_to, &snap.preview) {
                let mut set = preview.clone();
                let target = snap.set(side).alias_target.clone();
                if let (Some(mut alias), Some(target)) = (set.alias_target.clone(), target) {
                    alias.dns_name = target.dns_name;
                    alias.hosted_zone_id = target.hosted_zone_id;
                    set.alias_target = Some(alias);
                    after.preview = Some(set.clone());
                    batch.push(change(ChangeAction::Upsert, set)?);
                }
            }
            for side in Side::ALL {
                let repoint = c.repoint.iter().find(|(s, _)| *s == side).map(|(_, a)| a);
                let health_check = c.health_check.iter().find(|(s, _)| *s == side).map(|(_, id)| id);
                let unchanged =
                    c.route.weights.get(side) == c.to.get(side) && repoint.is_none() && health_check.is_none();
                if unchanged && !guard.compare {
                    continue;
                }
                let mut set = snap.set(side).clone();
                set.weight = Some(i64::from(c.to.get(side)));
                if let Some(id) = health_check {
                    set.health_check_id = id.clone();
                }
                if let (Some(to), Some(alias)) = (repoint, set.alias_target.as_mut()) {
                    alias.dns_name = to.dns_name.clone();
                    alias.hosted_zone_id = to.hosted_zone_id.clone();
                }
                *after.set_mut(side) = set.clone();
                if guard.compare {
                    batch.push(change(ChangeAction::Delete, snap.set(side).clone())?);
                    batch.push(change(ChangeAction::Create, set)?);
                } else {
                    batch.push(change(ChangeAction::Upsert, set)?);
                }
            }
            written.push(RouteLive { weights: c.to, raw: Raw::Route53(Box::new(after)), ..c.route.clone() });
        }
        if batch.is_empty() {
            return Ok(written);
        }
        let comment = format!(
            "cutover: {}",
            changes
                .iter()
                .map(|c| format!("{} {}:{}", c.route.name, c.to.blue, c.to.green))
                .collect::<Vec<_>>()
                .join(", ")
        );
        match self.send_batch(zone_id, &comment, batch.clone(), guard).await {
            Err(Refusal::Invalid(e)) if !guard.compare => {
                // A write that must win (a rollback, `set`) refused whole: AWS refuses a batch that
                // writes an alias to a load balancer that no longer exists. Then the rest of the
                // batch is sent without those sets, and the route is said to be stuck.
                let dead = self.dead_targets(&batch).await;
                if dead.is_empty() {
                    return Err(e);
                }
                let kept: Vec<Change> = batch.into_iter().filter(|c| !aliases_any(c, &dead)).collect();
                if !kept.is_empty() {
                    self.send_batch(zone_id, &comment, kept, guard).await.map_err(Refusal::into_error)?;
                }
                Err(Error::SplitUnknown {
                    message: format!(
                        "Route53 refuses to write a record set whose alias target no longer exists: {}; \
                         every other record set of zone {zone_id} was written, those keep their weight and \
                         their share of DNS answers leads nowhere\n\
                         hint: point them at a live load balancer (`--repoint` with [sides]) or delete them \
                         (`aws route53 change-resource-record-sets`, a DELETE of the set as listed)",
                        dead.join(", ")
                    ),
                })
            }
            Err(Refusal::Invalid(e)) if guard.compare => Err(self.refused_batch(changes, e).await),
            other => other.map(|()| written).map_err(Refusal::into_error),
        }
    }

    /// Sends one change batch and waits for it to be INSYNC (as far as GetChange can tell).
    async fn send_batch(
        &self,
        zone_id: &str,
        comment: &str,
        batch: Vec<Change>,
        guard: WriteGuard,
    ) -> std::result::Result<(), Refusal> {
        let batch = ChangeBatch::builder()
            .comment(truncate(comment, 256))
            .set_changes(Some(batch))
            .build()
            .map_err(|e| Refusal::Other(Error::Other(format!("building a Route53 change batch: {e}"))))?;
        let action = format!("ChangeResourceRecordSets in zone {zone_id}");
        let request = self.client.change_resource_record_sets().hosted_zone_id(zone_id).change_batch(batch);
        let sent = match guard.deadline {
            None => request.send().await,
            Some(deadline) => match crate::aws::timeouts_until(deadline) {
                Some(t) => {
                    request
                        .customize()
                        .config_override(aws_sdk_route53::config::Builder::default().timeout_config(t))
                        .send()
                        .await
                }
                None => {
                    return Err(Refusal::Other(Error::Aws {
                        action,
                        message: "the write's claim ran out before it was sent".into(),
                        transient: true,
                    }));
                }
            },
        };
        let out = match sent {
            Ok(out) => out,
            Err(e) if e.as_service_error().is_some_and(|s| s.is_invalid_change_batch()) => {
                return Err(Refusal::Invalid(crate::aws::error(action, e)));
            }
            Err(e) => return Err(Refusal::Other(crate::aws::error(action, e))),
        };
        let info = out
            .change_info
            .ok_or_else(|| Refusal::Other(Error::Other("ChangeResourceRecordSets returned no change info".into())))?;
        tracing::info!(zone = zone_id, change = %info.id, status = %info.status, "route53 change submitted");
        self.accepted.note();
        // Route53 has accepted the batch: it applies it, whatever GetChange says from here on.
        // A GetChange that fails or times out leaves the propagation unconfirmed, never the write
        // failed: the batch as sent is what the zone holds.
        if info.status != ChangeStatus::Insync
            && let Err(e) = self.wait_insync(&info.id).await
        {
            tracing::warn!(
                zone = zone_id,
                change = %info.id,
                "Route53 accepted the change, but its propagation to Route53's DNS servers is unconfirmed: {e}"
            );
        }
        Ok(())
    }

    /// The alias targets of `batch`'s CREATEs and UPSERTs whose load balancer no longer exists —
    /// deleted, or re-created under a new DNS name — in any account an alias may point into.
    /// Aliases to other targets, load balancers of other regions and lookups that fail are taken
    /// as alive.
    async fn dead_targets(&self, batch: &[Change]) -> Vec<String> {
        let region = self.elbs[0].config().region().map(|r| r.to_string()).unwrap_or_default();
        let mut names: Vec<String> = batch
            .iter()
            .filter(|c| c.action != ChangeAction::Delete)
            .filter_map(|c| c.resource_record_set.as_ref()?.alias_target.as_ref().map(|a| a.dns_name.clone()))
            .filter(|d| region.is_empty() || dns_key(d).contains(&format!(".{region}.")))
            .collect();
        names.sort();
        names.dedup();
        let mut dead = Vec::new();
        for dns in names {
            let Some(lb) = lb_name_of(&dns) else { continue };
            let mut gone_everywhere = true;
            for elb in &self.elbs {
                match elb.describe_load_balancers().names(&lb).send().await {
                    Ok(out) if out.load_balancers().iter().any(|l| l.dns_name().is_some_and(|d| same_dns(d, &dns))) => {
                        gone_everywhere = false;
                    }
                    Ok(_) => {}
                    Err(e) if e.as_service_error().is_some_and(|s| s.is_load_balancer_not_found_exception()) => {}
                    Err(e) => {
                        tracing::debug!(error = %crate::aws::error("DescribeLoadBalancers", e), "alias target not checked");
                        gone_everywhere = false;
                    }
                }
                if !gone_everywhere {
                    break;
                }
            }
            if gone_everywhere {
                dead.push(dns);
            }
        }
        dead
    }

    /// A compare-and-swap batch refused: because a record set changed since it was read (someone
    /// else wrote — the answer is drift, [`Error::Drift`]), or for another reason (the refusal
    /// itself). Told apart by reading the sets again, not by AWS's wording.
    async fn refused_batch(&self, changes: &[RouteChange], refusal: Error) -> Error {
        for c in changes {
            let Raw::Route53(snap) = &c.route.raw else { continue };
            let zone = Zone { id: snap.zone_id.clone(), name: snap.zone_name.clone() };
            let Some(route) = self.routes.get(c.route.index) else { continue };
            let rtype = RrType::from(route.rtype.as_str());
            let Ok(now) = self.list_record(&zone, &route.record, &rtype).await else {
                return refusal;
            };
            for side in Side::ALL {
                let read = snap.set(side);
                if !now.iter().any(|s| s == read) {
                    return Error::Drift {
                        message: format!(
                            "Route53 refused the change: record `{}` ({}) changed since it was read",
                            route.record,
                            read.set_identifier.as_deref().unwrap_or_default()
                        ),
                        hint: None,
                    };
                }
            }
        }
        refusal
    }
}

impl Splitter for Route53Splitter {
    async fn read(&self) -> Result<Vec<RouteLive>> {
        if self.routes.is_empty() {
            return Ok(Vec::new());
        }
        // Each distinct zone once.
        let mut zone_keys: Vec<&str> = self.routes.iter().map(|r| r.zone.as_str()).collect();
        zone_keys.sort();
        zone_keys.dedup();
        let zones: BTreeMap<String, Zone> = stream::iter(zone_keys)
            .map(|z| async move { self.zone(z).await.map(|found| (z.to_string(), found)) })
            .buffer_unordered(READ_PARALLELISM)
            .try_collect()
            .await?;

        // Each zone's names (records and preview records) in one name range.
        let mut wanted: BTreeMap<String, Vec<(String, RrType)>> = BTreeMap::new();
        for r in &self.routes {
            let names = wanted.entry(zones[&r.zone].id.clone()).or_default();
            let rtype = RrType::from(r.rtype.as_str());
            names.push((r.record.clone(), rtype.clone()));
            names.extend(r.preview.iter().map(|p| (p.clone(), rtype.clone())));
        }
        let by_zone: Vec<&Zone> = {
            let mut z: Vec<&Zone> = zones.values().collect();
            z.sort_by(|a, b| a.id.cmp(&b.id));
            z.dedup_by(|a, b| a.id == b.id);
            z
        };
        let listed: BTreeMap<String, Listed> = stream::iter(by_zone)
            .map(|z| {
                let names = &wanted[&z.id];
                async move { self.list_names(z, names).await.map(|l| (z.id.clone(), l)) }
            })
            .buffer_unordered(READ_PARALLELISM)
            .try_collect()
            .await?;
        let sets_of = |zone: &Zone, name: &str, rtype: &RrType| -> Vec<ResourceRecordSet> {
            listed[&zone.id].get(&listed_key(name, rtype)).cloned().unwrap_or_default()
        };
        self.routes
            .iter()
            .enumerate()
            .map(|(index, route)| {
                let zone = &zones[&route.zone];
                let rtype = RrType::from(route.rtype.as_str());
                let mut live = route_live(index, route, zone, sets_of(zone, &route.record, &rtype))?;
                if let Some(preview) = &route.preview {
                    let set = sets_of(zone, preview, &rtype)
                        .into_iter()
                        .find(|s| s.set_identifier.is_none() && s.alias_target.is_some())
                        .ok_or_else(|| {
                            Error::refused_hint(
                                format!(
                                    "preview record `{preview}` ({}) is not a plain alias record in zone {}",
                                    route.rtype,
                                    zone.label()
                                ),
                                "create it as an alias (no routing policy) to the candidate's load balancer",
                            )
                        })?;
                    if let Raw::Route53(snap) = &mut live.raw {
                        snap.preview = Some(set);
                    }
                }
                Ok(live)
            })
            .collect()
    }

    async fn write(&self, changes: &[RouteChange], guard: WriteGuard) -> Vec<WriteOutcome> {
        let mut by_zone: BTreeMap<String, Vec<RouteChange>> = BTreeMap::new();
        for c in changes.iter().filter(|c| !c.is_noop()) {
            if let Raw::Route53(s) = &c.route.raw {
                by_zone.entry(s.zone_id.clone()).or_default().push(c.clone());
            }
        }
        stream::iter(by_zone)
            .map(|(zone_id, changes)| async move {
                let result = self.write_zone(&zone_id, &changes, guard).await;
                WriteOutcome { changes, result }
            })
            .buffer_unordered(WRITE_PARALLELISM)
            .collect()
            .await
    }
}

/// Picks the blue and green sets out of the record's sets, refusing what cannot be split.
fn route_live(index: usize, route: &Route53Route, zone: &Zone, sets: Vec<ResourceRecordSet>) -> Result<RouteLive> {
    let name = format!("{} {}", route.record, route.rtype);
    if sets.is_empty() {
        return Err(Error::refused_hint(
            format!("record `{}` of type {} not found in hosted zone {}", route.record, route.rtype, zone.label()),
            "check `record` and `type` in the profile; the weighted records must exist before a cutover",
        ));
    }
    let ids: Vec<String> = sets.iter().map(|s| s.set_identifier.clone().unwrap_or_else(|| "(none)".into())).collect();
    let pick = |side: Side| -> Result<ResourceRecordSet> {
        let want = route.set_identifier(side);
        let set = sets.iter().find(|s| s.set_identifier.as_deref() == Some(want)).ok_or_else(|| {
            Error::refused_hint(
                format!(
                    "record `{}` {} has no record set with SetIdentifier `{want}` for the {side} side (found: {})",
                    route.record,
                    route.rtype,
                    ids.join(", ")
                ),
                format!("set `{side}` under [[route53]] to one of the SetIdentifiers found"),
            )
        })?;
        let weight = set.weight.ok_or_else(|| {
            Error::refused_hint(
                format!("record set `{want}` of `{}` {} is not a weighted record", route.record, route.rtype),
                "cutover shifts weighted routing records; make both sides weighted records",
            )
        })?;
        if !(0..=255).contains(&weight) {
            return Err(Error::refused(format!(
                "record set `{want}` of `{}` has weight {weight}, outside 0–255",
                route.record
            )));
        }
        Ok(set.clone())
    };
    let blue = pick(Side::Blue)?;
    let green = pick(Side::Green)?;
    let weights = Weights::new(blue.weight.unwrap_or(0) as u32, green.weight.unwrap_or(0) as u32);
    Ok(RouteLive {
        index,
        kind: KIND,
        name,
        weights,
        raw: Raw::Route53(Box::new(Snapshot {
            zone_id: zone.id.clone(),
            zone_name: zone.name.clone(),
            blue,
            green,
            preview: None,
        })),
    })
}

/// The UPSERTs a change would send, for `--dry-run`.
pub(crate) fn describe_change(s: &Snapshot, to: Weights) -> Vec<String> {
    let mut lines = Vec::new();
    for side in Side::ALL {
        let set = s.set(side);
        let from = set.weight.unwrap_or(0);
        let want = i64::from(to.get(side));
        if from == want {
            continue;
        }
        let target = match (&set.alias_target, &set.resource_records) {
            (Some(a), _) => format!("alias {}", a.dns_name),
            (None, Some(rr)) => rr.iter().map(|r| r.value.as_str()).collect::<Vec<_>>().join(","),
            (None, None) => String::new(),
        };
        lines.push(format!(
            "ChangeResourceRecordSets zone {}{}: UPSERT {} {} SetIdentifier={} Weight {from} → {want} ({target}; every other field kept)",
            s.zone_id,
            s.zone_name.as_ref().map(|n| format!(" ({n})")).unwrap_or_default(),
            set.name,
            set.r#type,
            set.set_identifier.as_deref().unwrap_or(""),
        ));
    }
    lines
}

/// Why a change batch was not written.
enum Refusal {
    /// AWS's InvalidChangeBatch: the batch does not apply to the zone as it is.
    Invalid(Error),
    Other(Error),
}

impl Refusal {
    fn into_error(self) -> Error {
        match self {
            Refusal::Invalid(e) | Refusal::Other(e) => e,
        }
    }
}

/// Whether `change` writes an alias to one of `targets`.
fn aliases_any(change: &Change, targets: &[String]) -> bool {
    change.action != ChangeAction::Delete
        && change
            .resource_record_set
            .as_ref()
            .and_then(|s| s.alias_target.as_ref())
            .is_some_and(|a| targets.iter().any(|t| same_dns(t, &a.dns_name)))
}

/// The load balancer an ELB alias names:
/// `dualstack.internal-my-alb-123.us-west-2.elb.amazonaws.com.` → `my-alb`.
pub fn lb_name_of(dns: &str) -> Option<String> {
    let key = dns_key(dns);
    if !key.contains(".elb.") {
        return None;
    }
    let first = key.split('.').next()?;
    let first = first.strip_prefix("internal-").unwrap_or(first);
    first.rsplit_once('-').map(|(name, _)| name.to_string())
}

/// A change of a record set exactly as given.
fn change(action: ChangeAction, set: ResourceRecordSet) -> Result<Change> {
    Change::builder()
        .action(action)
        .resource_record_set(set)
        .build()
        .map_err(|e| Error::Other(format!("building a Route53 change: {e}")))
}

/// Whether a name Route53 returned is the name wanted.
fn same_name(returned: &str, wanted: &str) -> bool {
    unescaped(returned) == fqdn(wanted)
}

fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max - 1;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end.saturating_sub(2)])
}
