//! Route53 as AWS applies changes, for the emulator kit's proxy (moto checks none of it).
//!
//! - **Change semantics**: a ChangeResourceRecordSets batch is checked against the zone as AWS
//!   does — a DELETE must match the live record set exactly, a CREATE must not find one — and
//!   applied whole or not at all (moto checks neither, and refuses a CREATE it has seen before
//!   whatever its SetIdentifier), then handed to moto as the UPSERTs and DELETEs that give the
//!   same zone.
//! - **Alias targets must exist**: an alias to a load balancer that does not exist (in any account
//!   the kit knows), or whose canonical zone is not the alias's, or to a missing record of the same
//!   zone, is refused with AWS's `InvalidChangeBatch`.
//! - **Propagation**: a change answers `PENDING` and GetChange turns `INSYNC` only after a delay.
//! - **The listing** the checks read: a name's record sets, or the whole zone page by page.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Response;
use hyper::http::request::Parts;

use super::{Answer, Shared, child_text, error_answer, forward, role_account, scope_of, upstream_query, xml_error};

/// A Route53 ChangeInfo answered `PENDING` until its change is due INSYNC: a new change (`after`
/// given) is due then; a GetChange answer is rewritten while its change is not yet due.
pub(super) async fn pending(shared: &Shared, answer: Answer, after: Option<Duration>) -> Answer {
    let (head, body) = answer.into_parts();
    let bytes = body.collect().await.map(|b| b.to_bytes()).unwrap_or_default();
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let id = text
        .split("<Id>")
        .nth(1)
        .and_then(|r| r.split("</Id>").next())
        .map(|i| i.trim_start_matches("/change/").to_string())
        .unwrap_or_default();
    let due = {
        let mut changes = shared.changes.lock().unwrap();
        if let Some(after) = after {
            changes.insert(id.clone(), Instant::now() + after);
        }
        changes.get(&id).copied()
    };
    let text = match due {
        Some(due) if Instant::now() < due => text.replace("<Status>INSYNC</Status>", "<Status>PENDING</Status>"),
        _ => text,
    };
    let mut answer = Response::from_parts(head, Full::new(Bytes::from(text)));
    answer.headers_mut().remove("content-length");
    answer
}

/// A record set's identity: name, type, SetIdentifier.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(super) struct SetKey {
    pub(super) name: String,
    pub(super) rtype: String,
    pub(super) id: Option<String>,
}

/// The values AWS compares a DELETE against.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct SetValues {
    pub(super) weight: Option<String>,
    pub(super) ttl: Option<String>,
    pub(super) records: Vec<String>,
    pub(super) alias: Option<(String, String, String)>,
    pub(super) health_check: Option<String>,
    pub(super) region: Option<String>,
    pub(super) failover: Option<String>,
}

pub(super) fn dns_name(name: &str) -> String {
    let n = name.trim().replace("\\052", "*").to_ascii_lowercase();
    if n.ends_with('.') { n } else { format!("{n}.") }
}

/// A `ResourceRecordSet` element: its key, its values.
pub(super) fn record_set(node: roxmltree::Node) -> (SetKey, SetValues) {
    let key = SetKey {
        name: dns_name(&child_text(node, "Name").unwrap_or_default()),
        rtype: child_text(node, "Type").unwrap_or_default(),
        id: child_text(node, "SetIdentifier"),
    };
    let mut records: Vec<String> = node
        .descendants()
        .filter(|n| n.tag_name().name() == "ResourceRecord")
        .filter_map(|n| child_text(n, "Value"))
        .collect();
    records.sort();
    let alias = node.children().find(|c| c.tag_name().name() == "AliasTarget").map(|a| {
        (
            child_text(a, "HostedZoneId").unwrap_or_default(),
            dns_name(&child_text(a, "DNSName").unwrap_or_default()),
            child_text(a, "EvaluateTargetHealth").unwrap_or_default().to_ascii_lowercase(),
        )
    });
    let values = SetValues {
        weight: child_text(node, "Weight"),
        ttl: child_text(node, "TTL"),
        records,
        alias,
        health_check: child_text(node, "HealthCheckId"),
        region: child_text(node, "Region"),
        failover: child_text(node, "Failover"),
    };
    (key, values)
}

fn invalid_change_batch(message: &str) -> Answer {
    xml_error(400, "InvalidChangeBatch", &format!("[{message}]"))
}

fn describe(key: &SetKey) -> String {
    match &key.id {
        Some(id) => format!("[name='{}', type='{}', set-identifier='{id}']", key.name, key.rtype),
        None => format!("[name='{}', type='{}']", key.name, key.rtype),
    }
}

/// ListResourceRecordSets as AWS answers it: never a change batch half applied (the kit hands a
/// batch to the emulator as several UPSERTs and DELETEs; a read waits until they are all in).
pub(super) async fn list(shared: &Shared, parts: &Parts, body: &Bytes) -> Answer {
    let zone = parts.uri.path().split("/hostedzone/").nth(1).and_then(|r| r.split('/').next()).unwrap_or_default();
    let lock = shared.zones.lock().unwrap().entry(zone.to_string()).or_default().clone();
    let _whole_batches_only = lock.lock().await;
    forward(shared, parts, body.clone()).await
}

/// ChangeResourceRecordSets as AWS applies it: every change checked in order against the zone
/// (a DELETE must match the live set's values, a CREATE must not find one), all or nothing; then
/// handed to the emulator as the UPSERTs and DELETEs that give the same zone.
pub(super) async fn change(shared: &Shared, parts: &Parts, body: &Bytes, check_alias: bool) -> Answer {
    let path = parts.uri.path();
    let zone = path.split("/hostedzone/").nth(1).and_then(|r| r.split('/').next()).unwrap_or_default().to_string();
    let lock = shared.zones.lock().unwrap().entry(zone.clone()).or_default().clone();
    let _one_at_a_time = lock.lock().await;

    let text = String::from_utf8_lossy(body).into_owned();
    let Ok(doc) = roxmltree::Document::parse(&text) else {
        return forward(shared, parts, body.clone()).await;
    };
    // (action, key, values, the ResourceRecordSet element as sent)
    let mut changes: Vec<(String, SetKey, SetValues, String)> = Vec::new();
    for change in doc.descendants().filter(|n| n.tag_name().name() == "Change") {
        let action = child_text(change, "Action").unwrap_or_default();
        let Some(set) = change.children().find(|c| c.tag_name().name() == "ResourceRecordSet") else { continue };
        let (key, values) = record_set(set);
        changes.push((action, key, values, text[set.range()].to_string()));
    }

    // The zone as it is, for the names the batch touches: listed name by name for a few, the
    // whole zone at once for many. A zone that cannot be read to check the batch is a server
    // error, as AWS answers when it cannot serve — never the batch applied without its checks.
    let mut names: Vec<(String, String)> =
        changes.iter().map(|(_, k, _, _)| (k.name.clone(), k.rtype.clone())).collect();
    names.sort();
    names.dedup();
    let mut zone_now: HashMap<SetKey, SetValues> = HashMap::new();
    if names.len() <= 3 {
        for (name, rtype) in &names {
            match list_sets(shared, parts, &zone, Some((name, rtype))).await {
                Some(sets) => zone_now.extend(sets),
                None => return error_answer("route53", "ChangeResourceRecordSets", 0, false),
            }
        }
    } else {
        match list_sets(shared, parts, &zone, None).await {
            Some(sets) => {
                zone_now.extend(sets.into_iter().filter(|(k, _)| names.contains(&(k.name.clone(), k.rtype.clone()))))
            }
            None => return error_answer("route53", "ChangeResourceRecordSets", 0, false),
        }
    }

    // Apply in order to a working copy; remember the XML each key ends with.
    let mut work: HashMap<SetKey, Option<(SetValues, String)>> =
        zone_now.iter().map(|(k, v)| (k.clone(), Some((v.clone(), String::new())))).collect();
    let mut order: Vec<SetKey> = Vec::new();
    for (action, key, values, xml) in &changes {
        if !order.contains(key) {
            order.push(key.clone());
        }
        let current = work.get(key).cloned().flatten();
        match action.as_str() {
            "DELETE" => match current {
                None => {
                    return invalid_change_batch(&format!(
                        "Tried to delete resource record set {} but it was not found",
                        describe(key)
                    ));
                }
                Some((live, _)) if live != *values => {
                    return invalid_change_batch(&format!(
                        "Tried to delete resource record set {} but the values provided do not match the current values",
                        describe(key)
                    ));
                }
                Some(_) => {
                    work.insert(key.clone(), None);
                }
            },
            "CREATE" => {
                if current.is_some() {
                    return invalid_change_batch(&format!(
                        "Tried to create resource record set {} but it already exists",
                        describe(key)
                    ));
                }
                work.insert(key.clone(), Some((values.clone(), xml.clone())));
            }
            _ => {
                work.insert(key.clone(), Some((values.clone(), xml.clone())));
            }
        }
    }

    // Every alias written must have a target, checked as AWS checks it.
    if check_alias {
        for (action, key, values, _) in &changes {
            let Some(alias) = &values.alias else { continue };
            if action == "DELETE" {
                continue;
            }
            if let Some(problem) = alias_problem(shared, parts, &zone, key, alias, &work).await {
                return invalid_change_batch(&problem);
            }
        }
    }

    // The same end state, as the emulator applies it right.
    let mut out = String::new();
    for key in &order {
        match work.get(key).cloned().flatten() {
            Some((_, xml)) if !xml.is_empty() => {
                out.push_str(&format!("<Change><Action>UPSERT</Action>{xml}</Change>"));
            }
            Some(_) => {}
            None => {
                let deleted = changes.iter().rev().find(|(a, k, _, _)| a == "DELETE" && k == key).map(|c| c.3.clone());
                if let Some(xml) = deleted {
                    out.push_str(&format!("<Change><Action>DELETE</Action>{xml}</Change>"));
                }
            }
        }
    }
    let rewritten = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><ChangeResourceRecordSetsRequest xmlns=\"https://route53.amazonaws.com/doc/2013-04-01/\"><ChangeBatch><Changes>{out}</Changes></ChangeBatch></ChangeResourceRecordSetsRequest>"
    );
    forward(shared, parts, Bytes::from(rewritten)).await
}

/// Why AWS would refuse an alias of `key` to `alias` (zone id, DNS name, evaluate health): a load
/// balancer that does not exist or lies in another canonical zone, a record of this zone that is
/// not there. Other targets (CloudFront, S3, API Gateway, …) are let through.
async fn alias_problem(
    shared: &Shared,
    parts: &Parts,
    zone: &str,
    key: &SetKey,
    alias: &(String, String, String),
    work: &HashMap<SetKey, Option<(SetValues, String)>>,
) -> Option<String> {
    let (target_zone, dns, _) = alias;
    let shown = dns.clone();
    let not_found = || {
        format!(
            "Tried to create an alias that targets {shown}, type {} in zone {target_zone}, but that target was not found",
            key.rtype
        )
    };
    let bare = dns.trim_start_matches("dualstack.").trim_end_matches('.').to_string();
    if bare.ends_with(".elb.amazonaws.com") || bare.contains(".elb.") {
        let region = elb_region(&bare)?;
        // An alias may name a load balancer of another account: looked for in the zone's
        // account first, then in every account the kit has handed credentials for (and the
        // default one), as AWS finds it wherever it is.
        let (akid, _) = scope_of(parts);
        let mut keys = vec![akid.clone()];
        {
            let assumed = shared.assumed.lock().unwrap();
            let mut accounts: Vec<(String, String)> =
                assumed.iter().map(|(key, role)| (role_account(role).to_string(), key.clone())).collect();
            accounts.sort();
            accounts.dedup_by(|a, b| a.0 == b.0);
            keys.extend(accounts.into_iter().map(|(_, key)| key));
            keys.push("test".into());
        }
        keys.dedup();
        for akid in keys {
            match lb_in_account(shared, &akid, region, &bare).await {
                LbFound::Here(canonical) if !canonical.is_empty() && canonical != *target_zone => {
                    return Some(format!(
                        "Tried to create an alias that targets {shown}, type {} in zone {target_zone}, but the alias target name does not lie within the target zone",
                        key.rtype
                    ));
                }
                LbFound::Here(_) => return None,
                // An emulator that cannot answer does not refuse the change on the kit's account.
                LbFound::Unanswered => return None,
                LbFound::NotHere => {}
            }
        }
        return Some(not_found());
    }
    if target_zone == zone {
        let there = work.iter().any(|(k, v)| v.is_some() && k.name == *dns);
        if there {
            return None;
        }
        let listed = list_sets(shared, parts, zone, Some((dns, &key.rtype))).await?;
        return if listed.is_empty() { Some(not_found()) } else { None };
    }
    None
}

/// Whether a load balancer of DNS name `bare` is in the account `akid` acts in.
enum LbFound {
    /// Found, with its canonical hosted zone id.
    Here(String),
    NotHere,
    Unanswered,
}

async fn lb_in_account(shared: &Shared, akid: &str, region: &str, bare: &str) -> LbFound {
    let mut marker: Option<String> = None;
    for _ in 0..100 {
        let mut form = "Action=DescribeLoadBalancers&Version=2015-12-01&PageSize=400".to_string();
        if let Some(m) = &marker {
            form.push_str(&format!("&Marker={m}"));
        }
        let Some(text) = upstream_query(shared, akid, "elasticloadbalancing", region, &form).await else {
            return LbFound::Unanswered;
        };
        let Ok(doc) = roxmltree::Document::parse(&text) else { return LbFound::Unanswered };
        for lb in doc.descendants().filter(|n| n.tag_name().name() == "member" && child_text(*n, "DNSName").is_some()) {
            let lb_dns = child_text(lb, "DNSName").unwrap_or_default().to_ascii_lowercase();
            if lb_dns.trim_end_matches('.') == bare {
                return LbFound::Here(child_text(lb, "CanonicalHostedZoneId").unwrap_or_default());
            }
        }
        marker =
            doc.descendants().find(|n| n.tag_name().name() == "NextMarker").and_then(|n| n.text()).map(str::to_string);
        if marker.is_none() {
            break;
        }
    }
    LbFound::NotHere
}

/// The record sets of `name`/`rtype` in `zone` (or of the whole zone), as the emulator lists them,
/// page by page.
pub(super) async fn list_sets(
    shared: &Shared,
    parts: &Parts,
    zone: &str,
    only: Option<(&str, &str)>,
) -> Option<Vec<(SetKey, SetValues)>> {
    let mut found = Vec::new();
    let mut start: Option<(String, String, Option<String>)> = only.map(|(n, t)| (n.to_string(), t.to_string(), None));
    for _ in 0..1000 {
        let mut url = format!("{}/2013-04-01/hostedzone/{zone}/rrset?maxitems=300", shared.upstream);
        if let Some((name, rtype, id)) = &start {
            url.push_str(&format!("&name={name}&type={rtype}"));
            if let Some(id) = id {
                url.push_str(&format!("&identifier={id}"));
            }
        }
        let mut request = shared.client.get(url);
        if let Some(auth) = parts.headers.get("authorization") {
            request = request.header("authorization", auth);
        }
        let response = request.send().await.ok()?;
        if !response.status().is_success() {
            return None;
        }
        let text = response.text().await.ok()?;
        let doc = roxmltree::Document::parse(&text).ok()?;
        let sets: Vec<(SetKey, SetValues)> =
            doc.descendants().filter(|n| n.tag_name().name() == "ResourceRecordSet").map(record_set).collect();
        let root = doc.root_element();
        if let Some((name, rtype)) = only {
            // Listed from the name on: the name's sets come first; one page holds them.
            found.extend(sets.into_iter().filter(|(k, _)| k.name == dns_name(name) && k.rtype == rtype));
            return Some(found);
        }
        found.extend(sets);
        if child_text(root, "IsTruncated").as_deref() != Some("true") {
            return Some(found);
        }
        let next = (
            child_text(root, "NextRecordName")?,
            child_text(root, "NextRecordType")?,
            child_text(root, "NextRecordIdentifier"),
        );
        if start.as_ref() == Some(&next) {
            return None;
        }
        start = Some(next);
    }
    None
}

/// The region of a load balancer's DNS name: the label before `elb` (`name-1.us-west-2.elb.…`;
/// a name's own label may look like a region too: `demo-blue-ingress-1`).
pub(super) fn elb_region(dns: &str) -> Option<&str> {
    let labels: Vec<&str> = dns.split('.').collect();
    let at = labels.iter().position(|l| *l == "elb")?;
    labels.get(at.checked_sub(1)?).copied()
}
