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

use aws_sdk_route53::Client;
use aws_sdk_route53::types::Change as RecordChange;
use aws_sdk_route53::types::{ChangeAction, ChangeBatch, ChangeStatus, ResourceRecordSet, RrType};
use futures::{StreamExt, TryStreamExt, stream};

use serde::Deserialize;

use super::kind::{
    Build, Change, LbAccess, Read, RequestSource, Splitter, SplitterKind, WRITE_PARALLELISM, Written, dns_key, same_dns,
};
use crate::error::{Error, Result};
use crate::iam::{Scope, Statement};
use crate::model::{Role, RouteKind, Side, Weights};
use crate::profile::fields::{Bad, Key, bad, bad_hint, dns_name, fqdn, non_empty, role};
use crate::rollout::ports::WriteGuard;

/// The kind: weighted record sets, weights 0–255.
pub const KIND: RouteKind = RouteKind::new("route53", 255);

/// Weighted Route53 record pairs (`[[route53]]`).
pub struct Route53;

/// A `[[route53]]` table.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Section {
    zone: String,
    record: String,
    #[serde(rename = "type", default = "default_rtype")]
    rtype: String,
    blue: String,
    green: String,
    preview: Option<String>,
    target_groups: Option<SideNames>,
    role_arn: Option<String>,
    external_id: Option<String>,
}

/// A name per side: `{ blue = "…", green = "…" }`.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct SideNames {
    pub blue: String,
    pub green: String,
}

impl SideNames {
    pub fn get(&self, side: Side) -> &str {
        match side {
            Side::Blue => &self.blue,
            Side::Green => &self.green,
        }
    }
}

fn default_rtype() -> String {
    "A".to_string()
}

/// A weighted record pair in one hosted zone.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Route53Route {
    /// Hosted zone name (`myapp.com.`) or id (`Z123…`).
    pub zone: String,
    /// Record name, fully qualified with a trailing dot.
    pub record: String,
    pub rtype: String,
    pub blue: String,
    pub green: String,
    pub preview: Option<String>,
    /// `target_groups`: which target group counts each side's requests on the load balancer its
    /// record aliases, when the listener rules cannot tell (a shared ALB).
    pub target_groups: Option<SideNames>,
    /// The role for the zone's calls (every route of one zone has the same).
    pub role: Option<Role>,
}

impl Route53Route {
    pub fn set_identifier(&self, side: Side) -> &str {
        match side {
            Side::Blue => &self.blue,
            Side::Green => &self.green,
        }
    }

    /// Whether the record can alias a load balancer (only A and AAAA records do).
    pub fn can_alias(&self) -> bool {
        matches!(self.rtype.as_str(), "A" | "AAAA")
    }
}

const RECORD_TYPES: &[&str] = &["A", "AAAA", "CNAME", "TXT", "MX", "SRV", "CAA", "NAPTR", "PTR", "SPF", "DS"];

/// A hosted zone id (`Z0123…` or `/hostedzone/Z0123…`) rather than a zone name.
pub fn is_zone_id(zone: &str) -> bool {
    let id = zone.trim_start_matches("/hostedzone/");
    !id.contains('.')
        && (5..=32).contains(&id.len())
        && id.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
}

/// A record name as Route53 matches it in `route53:ChangeResourceRecordSetsNormalizedRecordNames`:
/// lower case, no trailing dot, and every character but a-z, 0-9, `-`, `_` and `.` as a
/// three-digit octal escape (`*` → `\052`).
pub fn normalized_record_name(name: &str) -> String {
    let name = name.replace("\\052", "*").to_ascii_lowercase();
    let mut out = String::new();
    for c in name.trim_end_matches('.').chars() {
        if c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '_' | '.') {
            out.push(c);
        } else {
            let mut buf = [0u8; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                out.push_str(&format!("\\{b:03o}"));
            }
        }
    }
    out
}

/// Where an alias record should point: a load balancer's DNS name and canonical hosted zone.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AliasTo {
    pub dns_name: String,
    pub hosted_zone_id: String,
}

/// What a Route53 write may change besides the weights, in the same change batch.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RecordEdit {
    /// Alias targets to set (`--repoint`), per side.
    pub repoint: Vec<(Side, AliasTo)>,
    /// Point the route's preview record at this side's alias target.
    pub preview_to: Option<Side>,
    /// Health checks to set on a side's record set (`None` removes it) — the safety net.
    pub health_check: Vec<(Side, Option<String>)>,
}

impl SplitterKind for Route53 {
    const KIND: RouteKind = KIND;
    const CONDITIONAL: bool = true;
    type Section = Section;
    type Route = Route53Route;
    type Snapshot = Snapshot;
    type Edit = RecordEdit;
    type Splitter = Route53Splitter;

    fn check(r: Section, at: &Key, earlier: &[Route53Route]) -> std::result::Result<Route53Route, Bad> {
        non_empty(&at.at("zone"), &r.zone)?;
        non_empty(&at.at("record"), &r.record)?;
        non_empty(&at.at("blue"), &r.blue)?;
        non_empty(&at.at("green"), &r.green)?;
        for (key, id) in [("blue", &r.blue), ("green", &r.green)] {
            if id.len() > 128 {
                return Err(bad(at.at(key), format!("a SetIdentifier has at most 128 characters, not {}", id.len())));
            }
        }
        dns_name(&at.at("record"), &r.record)?;
        if !is_zone_id(r.zone.trim()) {
            dns_name(&at.at("zone"), &r.zone)?;
        }
        if let Some(p) = &r.preview {
            dns_name(&at.at("preview"), p)?;
        }
        if r.blue == r.green {
            return Err(bad_hint(
                at.at("green"),
                format!("blue and green name the same SetIdentifier `{}`", r.blue),
                "each side is its own weighted record set, told apart by SetIdentifier",
            ));
        }
        let rtype = r.rtype.trim().to_ascii_uppercase();
        if !RECORD_TYPES.contains(&rtype.as_str()) {
            return Err(bad_hint(
                at.at("type"),
                format!("`{}` is not a Route53 record type", r.rtype),
                format!("one of {}", RECORD_TYPES.join(", ")),
            ));
        }
        let record = fqdn(&r.record);
        let zone = r.zone.trim().to_string();
        if !is_zone_id(&zone) {
            let z = fqdn(&zone);
            if record != z && !record.ends_with(&format!(".{z}")) {
                return Err(bad(at.at("record"), format!("`{record}` is not inside the zone `{z}`")));
            }
        }
        if let Some(p) = &r.preview {
            non_empty(&at.at("preview"), p)?;
            if fqdn(p) == record {
                return Err(bad(at.at("preview"), "must be another name than the weighted record"));
            }
        }
        if let Some(tgs) = &r.target_groups {
            let key = at.at("target_groups");
            non_empty(&format!("{key}.blue"), &tgs.blue)?;
            non_empty(&format!("{key}.green"), &tgs.green)?;
            if !matches!(rtype.as_str(), "A" | "AAAA") {
                return Err(bad_hint(
                    key,
                    "only an alias record's load balancer has target groups",
                    "`target_groups` names where each side's requests are counted on the load balancer an A or AAAA alias record points at",
                ));
            }
        }
        let route = Route53Route {
            zone: if is_zone_id(&zone) { zone } else { fqdn(&zone) },
            record,
            rtype,
            blue: r.blue,
            green: r.green,
            preview: r.preview.map(|p| fqdn(&p)),
            target_groups: r.target_groups,
            role: role(at, r.role_arn, r.external_id)?,
        };
        if earlier.contains(&route) {
            return Err(bad(at.at("record"), "the same record pair is listed twice"));
        }
        if let Some(other) = earlier.iter().find(|o| o.zone == route.zone && o.role != route.role) {
            return Err(bad_hint(
                at.at("role_arn"),
                format!("the zone `{}` is given another role here than in an earlier [[route53]] route", route.zone),
                format!(
                    "a zone's records are written in one change batch, by one account: give every route of the zone the same role ({})",
                    other.role.as_ref().map(|r| format!("`{}`", r.arn)).unwrap_or_else(|| "none".into())
                ),
            ));
        }
        Ok(route)
    }

    fn identity(route: &Route53Route) -> String {
        format!("{} {} in {}", route.record, route.rtype, route.zone)
    }

    fn role(route: &Route53Route) -> Option<&Role> {
        route.role.as_ref()
    }

    /// The load balancer a record aliases, by DNS name: read with the side's role, else the
    /// zone's (an alias most often names a load balancer of the zone's own account).
    fn load_balancer(route: &Route53Route, side_role: Option<&Role>) -> Option<(Option<Role>, LbAccess)> {
        route.can_alias().then(|| (side_role.or(route.role.as_ref()).cloned(), LbAccess::ByAlias))
    }

    fn splitter(env: &Build<'_>, routes: Vec<Route53Route>) -> Route53Splitter {
        Route53Splitter::new(env, routes)
    }

    fn describe(s: &Snapshot, to: Weights, edit: Option<&RecordEdit>) -> Vec<String> {
        let mut lines = describe_change(s, to);
        let Some(edit) = edit else { return lines };
        for (side, to) in &edit.repoint {
            lines.push(format!(
                "repoint: the {side} record's alias → {} (zone {}), in the same change batch",
                to.dns_name, to.hosted_zone_id
            ));
        }
        if let Some(side) = edit.preview_to {
            lines.push(format!("preview record → the {side} side's alias target, in the same change batch"));
        }
        for (side, id) in &edit.health_check {
            lines.push(format!(
                "the {side} record's health check → {}, in the same change batch",
                id.as_deref().unwrap_or("none")
            ));
        }
        lines
    }

    fn request_source(s: &Snapshot, side: Side) -> Option<RequestSource> {
        let set = s.set(side);
        set.alias_target.as_ref().map(|a| RequestSource::Alias {
            dns: a.dns_name.clone(),
            host: unescaped(&set.name),
            target_group: s.target_groups.as_ref().map(|t| t.get(side).to_string()),
        })
    }

    /// The longest TTL of the two record sets; an alias record answers with its target's TTL,
    /// 60 s for an ELB.
    fn dns_ttl(s: &Snapshot) -> Option<Duration> {
        [&s.blue, &s.green]
            .iter()
            .map(|set| match (&set.alias_target, set.ttl) {
                (Some(_), _) => ALIAS_TTL,
                (None, ttl) => Duration::from_secs(ttl.unwrap_or(0).max(0) as u64),
            })
            .max()
    }

    fn policy(routes: &[&Route53Route], scope: &Scope<'_>) -> Vec<Statement> {
        let mut s = Vec::new();
        if routes.is_empty() {
            return s;
        }
        let arn = scope.arn();
        let zones: Vec<String> = routes
            .iter()
            .map(|r| {
                if is_zone_id(&r.zone) {
                    format!("{arn}route53:::hostedzone/{}", r.zone.trim_start_matches("/hostedzone/"))
                } else {
                    format!("{arn}route53:::hostedzone/*")
                }
            })
            .collect();
        if routes.iter().any(|r| !is_zone_id(&r.zone)) {
            // Finding a zone by name has no resource-level permission.
            s.push(Statement::new("Route53FindZones", &["route53:ListHostedZonesByName"], ["*".to_string()]));
        }
        // A zone given by id is not looked up: its listing says whether it exists.
        s.push(Statement::new("Route53Read", &["route53:ListResourceRecordSets"], zones.clone()));
        if !scope.read_only {
            let names: std::collections::BTreeSet<String> = routes
                .iter()
                .flat_map(|r| std::iter::once(r.record.clone()).chain(r.preview.clone()))
                .map(|n| normalized_record_name(&n))
                .collect();
            // The record names, and their types: a zone given by name is `hostedzone/*`, so the
            // conditions are what keeps the statement to these records.
            let types: std::collections::BTreeSet<&str> = routes.iter().map(|r| r.rtype.as_str()).collect();
            s.push(Statement::new("Route53ChangeOnlyTheseRecords", &["route53:ChangeResourceRecordSets"], zones).when(
                serde_json::json!({
                    "ForAllValues:StringEquals": {
                        "route53:ChangeResourceRecordSetsNormalizedRecordNames": names,
                        "route53:ChangeResourceRecordSetsRecordTypes": types,
                    }
                }),
            ));
            s.push(Statement::new(
                "Route53WaitForChanges",
                &["route53:GetChange"],
                [format!("{arn}route53:::change/*")],
            ));
        }
        s
    }
}

/// The TTL of an answer for an alias record to a load balancer.
pub const ALIAS_TTL: Duration = Duration::from_secs(60);

/// The side the preview record points at (by alias target), when the route has one.
pub fn preview_side(s: &Snapshot) -> Option<Side> {
    let p = s.preview.as_ref()?.alias_target.as_ref()?;
    let same = |set: &ResourceRecordSet| set.alias_target.as_ref().is_some_and(|a| same_dns(&a.dns_name, &p.dns_name));
    if same(&s.green) {
        Some(Side::Green)
    } else if same(&s.blue) {
        Some(Side::Blue)
    } else {
        None
    }
}

/// The health check `side`'s record set carries.
pub fn health_check_id(s: &Snapshot, side: Side) -> Option<&str> {
    s.set(side).health_check_id.as_deref()
}

/// The DNS name `side`'s record set is an alias of.
pub fn alias_dns(s: &Snapshot, side: Side) -> Option<String> {
    s.set(side).alias_target.as_ref().map(|a| a.dns_name.clone())
}

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
    /// The profile's `target_groups`, where each side's requests are counted.
    pub target_groups: Option<SideNames>,
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
    accepted: super::kind::Accepted,
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
    /// `env.lb_accounts`: where the load balancers the records alias may be, besides the zone's
    /// own account (`env.sdk`).
    pub fn new(env: &Build<'_>, routes: Vec<Route53Route>) -> Route53Splitter {
        let elbs = std::iter::once(env.sdk)
            .chain(env.lb_accounts.iter().copied())
            .map(|sdk| crate::client!(aws_sdk_elasticloadbalancingv2, sdk))
            .collect();
        Route53Splitter {
            client: crate::client!(aws_sdk_route53, env.sdk),
            elbs,
            routes,
            zones: Mutex::default(),
            accepted: env.accepted.clone(),
        }
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
    async fn write_zone(
        &self,
        zone_id: &str,
        changes: &[Change<Route53>],
        guard: WriteGuard,
    ) -> Result<Vec<Read<Snapshot>>> {
        let mut batch = Vec::new();
        let mut written = Vec::new();
        let none = RecordEdit::default();
        for c in changes {
            let snap = &c.read.snapshot;
            let edit = c.edit.as_ref().unwrap_or(&none);
            let mut after = snap.clone();
            if let (Some(side), Some(preview)) = (edit.preview_to, &snap.preview) {
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
                let repoint = edit.repoint.iter().find(|(s, _)| *s == side).map(|(_, a)| a);
                let health_check = edit.health_check.iter().find(|(s, _)| *s == side).map(|(_, id)| id);
                let unchanged =
                    c.read.weights.get(side) == c.to.get(side) && repoint.is_none() && health_check.is_none();
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
            written.push(Read { weights: c.to, snapshot: after, ..c.read.clone() });
        }
        if batch.is_empty() {
            return Ok(written);
        }
        let comment = format!(
            "cutover: {}",
            changes
                .iter()
                .map(|c| format!("{} {}:{}", c.read.name, c.to.blue, c.to.green))
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
                let kept: Vec<RecordChange> = batch.into_iter().filter(|c| !aliases_any(c, &dead)).collect();
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
        batch: Vec<RecordChange>,
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
    async fn dead_targets(&self, batch: &[RecordChange]) -> Vec<String> {
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
    async fn refused_batch(&self, changes: &[Change<Route53>], refusal: Error) -> Error {
        for c in changes {
            let snap = &c.read.snapshot;
            let zone = Zone { id: snap.zone_id.clone(), name: snap.zone_name.clone() };
            let Some(route) = self.routes.get(c.read.index) else { continue };
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

impl Splitter<Route53> for Route53Splitter {
    async fn read(&self) -> Result<Vec<Read<Snapshot>>> {
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
                    live.snapshot.preview = Some(set);
                }
                Ok(live)
            })
            .collect()
    }

    async fn write(&self, changes: &[Change<Route53>], guard: WriteGuard) -> Vec<Written<Route53>> {
        let mut by_zone: BTreeMap<String, Vec<Change<Route53>>> = BTreeMap::new();
        for c in changes {
            by_zone.entry(c.read.snapshot.zone_id.clone()).or_default().push(c.clone());
        }
        stream::iter(by_zone)
            .map(|(zone_id, changes)| async move {
                let result = self.write_zone(&zone_id, &changes, guard).await;
                Written { changes, result }
            })
            .buffer_unordered(WRITE_PARALLELISM)
            .collect()
            .await
    }
}

/// Picks the blue and green sets out of the record's sets, refusing what cannot be split.
fn route_live(index: usize, route: &Route53Route, zone: &Zone, sets: Vec<ResourceRecordSet>) -> Result<Read<Snapshot>> {
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
    Ok(Read {
        index,
        name,
        weights,
        snapshot: Snapshot {
            zone_id: zone.id.clone(),
            zone_name: zone.name.clone(),
            blue,
            green,
            preview: None,
            target_groups: route.target_groups.clone(),
        },
    })
}

/// The UPSERTs a change would send, for `--dry-run`.
fn describe_change(s: &Snapshot, to: Weights) -> Vec<String> {
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
fn aliases_any(change: &RecordChange, targets: &[String]) -> bool {
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
fn change(action: ChangeAction, set: ResourceRecordSet) -> Result<RecordChange> {
    RecordChange::builder()
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
