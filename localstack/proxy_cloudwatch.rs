//! CloudWatch alarms as AWS runs them, for the emulator kit's proxy.
//!
//! - A new alarm (PutMetricAlarm, PutCompositeAlarm) starts in `INSUFFICIENT_DATA` — moto starts
//!   it in `OK`, which would let a gate pass on an alarm that has never evaluated.
//! - Every state change the kit sees (SetAlarmState, and the first state) goes into a history,
//!   kept for the whole test process — proxies of one process front one emulator.
//! - DescribeAlarmHistory (moto answers 500) is served from that history as AWS serves it:
//!   `AlarmName`, `AlarmTypes` (metric alarms only when omitted), `HistoryItemType`,
//!   `StartDate`/`EndDate`, `ScanBy`, and pages of `MaxRecords` (default 50, at most 100) with a
//!   `NextToken`.
//! - PutCompositeAlarm (moto answers 500) is handed to moto as a PutMetricAlarm, and the kit
//!   remembers the alarm is composite (moto's DescribeAlarms lists it with the metric alarms; its
//!   state changes only by SetAlarmState).
//! - Metric alarms are remembered for the kit to evaluate (`proxy_alarms.rs`); the history is
//!   stamped with the kit's clock.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, OnceLock};
use std::time::SystemTime;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Response;
use hyper::http::request::Parts;

use super::alarms::Definition;
use super::{
    Answer, Shared, account_of, encode, form_params, forward, scope_of, upstream_query, xml_error, xml_escape,
};

#[derive(Clone, Debug)]
struct Item {
    account: String,
    region: String,
    name: String,
    /// `MetricAlarm` or `CompositeAlarm`.
    alarm_type: String,
    at: SystemTime,
    /// `StateUpdate` or `ConfigurationUpdate`.
    kind: &'static str,
    summary: String,
    data: String,
}

fn history() -> &'static Mutex<Vec<Item>> {
    static HISTORY: OnceLock<Mutex<Vec<Item>>> = OnceLock::new();
    HISTORY.get_or_init(Default::default)
}

/// The composite alarms made through the kit: moto keeps them as metric alarms without a rule.
fn composites() -> &'static Mutex<std::collections::HashSet<(String, String, String)>> {
    static COMPOSITES: OnceLock<Mutex<std::collections::HashSet<(String, String, String)>>> = OnceLock::new();
    COMPOSITES.get_or_init(Default::default)
}

fn is_composite(parts: &Parts, name: &str) -> bool {
    let (akid, region) = scope_of(parts);
    composites().lock().unwrap().contains(&(akid, region, name.to_string()))
}

/// (type, state) of alarm `name` as the emulator has it.
async fn alarm(shared: &Shared, parts: &Parts, name: &str) -> Option<(String, String)> {
    let (akid, region) = scope_of(parts);
    let form = format!("Action=DescribeAlarms&Version=2010-08-01&AlarmNames.member.1={}", encode(name));
    let text = upstream_query(shared, &akid, "monitoring", &region, &form).await?;
    let doc = roxmltree::Document::parse(&text).ok()?;
    for (list, kind) in [("MetricAlarms", "MetricAlarm"), ("CompositeAlarms", "CompositeAlarm")] {
        let Some(l) = doc.descendants().find(|n| n.tag_name().name() == list) else { continue };
        for m in l.children().filter(|n| n.tag_name().name() == "member") {
            let child =
                |t: &str| m.children().find(|c| c.tag_name().name() == t).and_then(|c| c.text()).map(str::to_string);
            if child("AlarmName").as_deref() == Some(name) {
                let kind = if is_composite(parts, name) { "CompositeAlarm" } else { kind };
                return Some((kind.to_string(), child("StateValue").unwrap_or_else(|| "INSUFFICIENT_DATA".into())));
            }
        }
    }
    None
}

/// One history item of alarm `name` in `akid`'s account and `region`, at `at` (the kit's time).
#[allow(clippy::too_many_arguments)]
fn record(
    akid: &str,
    region: &str,
    at: SystemTime,
    name: &str,
    alarm_type: &str,
    kind: &'static str,
    summary: String,
    data: String,
) {
    history().lock().unwrap().push(Item {
        account: akid.to_string(),
        region: region.to_string(),
        name: name.to_string(),
        alarm_type: alarm_type.to_string(),
        at,
        kind,
        summary,
        data,
    });
}

/// The states of alarms, by (access key, region, name), as moto has them: one DescribeAlarms
/// per hundred names of an account and region.
pub(super) async fn states(
    shared: &Shared,
    wanted: &BTreeMap<(String, String), Vec<String>>,
) -> HashMap<(String, String, String), String> {
    let mut out = HashMap::new();
    for ((akid, region), names) in wanted {
        let mut names = names.clone();
        names.sort();
        names.dedup();
        for chunk in names.chunks(100) {
            let mut form = "Action=DescribeAlarms&Version=2010-08-01&MaxRecords=100".to_string();
            for (i, n) in chunk.iter().enumerate() {
                form.push_str(&format!("&AlarmNames.member.{}={}", i + 1, encode(n)));
            }
            let Some(text) = upstream_query(shared, akid, "monitoring", region, &form).await else { continue };
            let Ok(doc) = roxmltree::Document::parse(&text) else { continue };
            for m in doc.descendants().filter(|n| n.has_tag_name("member")) {
                let child =
                    |t: &str| m.children().find(|c| c.has_tag_name(t)).and_then(|c| c.text()).map(str::to_string);
                if let (Some(name), Some(state)) = (child("AlarmName"), child("StateValue")) {
                    out.insert((akid.clone(), region.clone(), name), state);
                }
            }
        }
    }
    out
}

/// Alarm `name` goes from `old` to `new` as CloudWatch's evaluation decided: written to moto,
/// and into the history at `at`.
#[allow(clippy::too_many_arguments)]
pub(super) async fn set_state(
    shared: &Shared,
    akid: &str,
    region: &str,
    name: &str,
    old: &str,
    new: &str,
    reason: &str,
    reason_data: &str,
    at: SystemTime,
) {
    let form = format!(
        "Action=SetAlarmState&Version=2010-08-01&AlarmName={}&StateValue={new}&StateReason={}&StateReasonData={}",
        encode(name),
        encode(reason),
        encode(reason_data)
    );
    if upstream_query(shared, akid, "monitoring", region, &form).await.is_none() {
        return;
    }
    let data = serde_json::json!({
        "version": "1.0",
        "oldState": {"stateValue": old},
        "newState": {"stateValue": new, "stateReason": reason, "stateReasonData": serde_json::from_str::<serde_json::Value>(reason_data).unwrap_or_default()},
    })
    .to_string();
    record(akid, region, at, name, "MetricAlarm", "StateUpdate", format!("Alarm updated from {old} to {new}"), data);
}

/// DescribeAlarms as AWS answers it: a composite alarm (which moto lists among the metric alarms)
/// under `CompositeAlarms`, and only when `AlarmTypes` asks for composite alarms — without it AWS
/// returns metric alarms only.
async fn composites_apart(answer: Answer, akid: &str, region: &str, types: &[String]) -> Answer {
    let (head, body) = answer.into_parts();
    let bytes = body.collect().await.map(|b| b.to_bytes()).unwrap_or_default();
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let rewritten = (|| {
        let doc = roxmltree::Document::parse(&text).ok()?;
        let list = |name: &str| doc.descendants().find(|n| n.tag_name().name() == name);
        let metric = list("MetricAlarms")?;
        let known = composites().lock().unwrap().clone();
        let moved: Vec<roxmltree::Node> = metric
            .children()
            .filter(|m| m.tag_name().name() == "member")
            .filter(|m| {
                let name = m.children().find(|c| c.tag_name().name() == "AlarmName").and_then(|c| c.text());
                name.is_some_and(|n| known.contains(&(akid.to_string(), region.to_string(), n.to_string())))
            })
            .collect();
        if moved.is_empty() {
            return None;
        }
        let wanted = types.iter().any(|t| t == "CompositeAlarm");
        let members: String = if wanted { moved.iter().map(|m| &text[m.range()]).collect() } else { String::new() };
        // Edits from the end of the text backwards, so earlier ranges stay valid.
        let mut edits: Vec<(std::ops::Range<usize>, String)> =
            moved.iter().map(|m| (m.range(), String::new())).collect();
        match list("CompositeAlarms") {
            Some(c) if c.has_children() => {
                let end = c.last_child().map(|l| l.range().end).unwrap_or(c.range().end);
                edits.push((end..end, members));
            }
            Some(c) => edits.push((c.range(), format!("<CompositeAlarms>{members}</CompositeAlarms>"))),
            None => {
                let end = metric.range().end;
                edits.push((end..end, format!("<CompositeAlarms>{members}</CompositeAlarms>")));
            }
        }
        edits.sort_by_key(|(r, _)| std::cmp::Reverse(r.start));
        let mut out = text.clone();
        for (range, with) in edits {
            out.replace_range(range, &with);
        }
        Some(out)
    })();
    let mut head = head;
    head.headers.remove("content-length");
    Response::from_parts(head, Full::new(Bytes::from(rewritten.unwrap_or(text))))
}

/// A CloudWatch call, with AWS's alarm semantics where moto's differ.
pub(super) async fn call(shared: &Shared, parts: &Parts, operation: &str, body: &Bytes) -> Answer {
    let params = form_params(body);
    let param = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let now = shared.config.lock().unwrap().clock.now();
    let (akid, region) = scope_of(parts);
    match operation {
        "DescribeAlarmHistory" => describe_history(parts, &params),
        "DescribeAlarms" => {
            let answer = forward(shared, parts, body.clone()).await;
            let types: Vec<String> =
                params.iter().filter(|(k, _)| k.starts_with("AlarmTypes.member.")).map(|(_, v)| v.clone()).collect();
            composites_apart(answer, &akid, &region, &types).await
        }
        "DeleteAlarms" => {
            let answer = forward(shared, parts, body.clone()).await;
            if answer.status().is_success() {
                let mut alarms = shared.alarms.lock().unwrap();
                for (_, name) in params.iter().filter(|(k, _)| k.starts_with("AlarmNames.member.")) {
                    alarms.remove(&(akid.clone(), region.clone(), name.clone()));
                }
            }
            answer
        }
        "PutMetricAlarm" | "PutCompositeAlarm" => {
            let name = param("AlarmName").unwrap_or_default();
            let existed = alarm(shared, parts, &name).await.is_some();
            // moto 5.2.5 serves composite alarms only through PutMetricAlarm with an AlarmRule.
            let body = match operation {
                "PutCompositeAlarm" => Bytes::from(String::from_utf8_lossy(body).replacen(
                    "Action=PutCompositeAlarm",
                    "Action=PutMetricAlarm",
                    1,
                )),
                _ => body.clone(),
            };
            let answer = forward(shared, parts, body).await;
            if answer.status().is_success() && operation == "PutCompositeAlarm" {
                composites().lock().unwrap().insert((akid.clone(), region.clone(), name.clone()));
            }
            if answer.status().is_success() && operation == "PutMetricAlarm" {
                let key = (akid.clone(), region.clone(), name.clone());
                let mut alarms = shared.alarms.lock().unwrap();
                match Definition::parse(&params, &account_of(shared, &akid), &akid, &region) {
                    Some(def) => alarms.insert(key, def),
                    None => alarms.remove(&key),
                };
            }
            if answer.status().is_success() && !existed {
                let form = format!(
                    "Action=SetAlarmState&Version=2010-08-01&AlarmName={}&StateValue=INSUFFICIENT_DATA&StateReason={}",
                    encode(&name),
                    encode("Unchecked: Initial alarm creation")
                );
                let _ = upstream_query(shared, &akid, "monitoring", &region, &form).await;
                let kind = if operation == "PutCompositeAlarm" { "CompositeAlarm" } else { "MetricAlarm" };
                record(
                    &akid,
                    &region,
                    now,
                    &name,
                    kind,
                    "ConfigurationUpdate",
                    format!("Alarm \"{name}\" created"),
                    "{}".into(),
                );
            }
            answer
        }
        "SetAlarmState" => {
            let name = param("AlarmName").unwrap_or_default();
            let before = alarm(shared, parts, &name).await;
            let answer = forward(shared, parts, body.clone()).await;
            let new = param("StateValue").unwrap_or_default();
            if let (true, Some((kind, old))) = (answer.status().is_success(), before)
                && old != new
            {
                let reason = param("StateReason").unwrap_or_default();
                let data = serde_json::json!({
                    "version": "1.0",
                    "oldState": {"stateValue": old},
                    "newState": {"stateValue": new, "stateReason": reason},
                })
                .to_string();
                record(
                    &akid,
                    &region,
                    now,
                    &name,
                    &kind,
                    "StateUpdate",
                    format!("Alarm updated from {old} to {new}"),
                    data,
                );
            }
            answer
        }
        _ => forward(shared, parts, body.clone()).await,
    }
}

fn describe_history(parts: &Parts, params: &[(String, String)]) -> Answer {
    let param = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let (akid, region) = scope_of(parts);
    let mut types: Vec<String> =
        params.iter().filter(|(k, _)| k.starts_with("AlarmTypes.member.")).map(|(_, v)| v.clone()).collect();
    if types.is_empty() {
        types.push("MetricAlarm".into());
    }
    let date = |k: &str| param(k).and_then(|d| humantime::parse_rfc3339_weak(&d).ok());
    let (start, end) = (date("StartDate"), date("EndDate"));
    let max = param("MaxRecords").and_then(|m| m.parse::<usize>().ok()).unwrap_or(50).clamp(1, 100);
    let offset = param("NextToken").and_then(|t| t.strip_prefix("proxy-").and_then(|n| n.parse::<usize>().ok()));
    if param("NextToken").is_some() && offset.is_none() {
        return xml_error(400, "InvalidNextToken", "The service couldn't process the provided token.");
    }
    let mut items: Vec<Item> = history()
        .lock()
        .unwrap()
        .iter()
        .filter(|i| i.account == akid && i.region == region)
        .filter(|i| param("AlarmName").is_none_or(|n| n == i.name))
        .filter(|i| types.contains(&i.alarm_type))
        .filter(|i| param("HistoryItemType").is_none_or(|t| t == i.kind))
        .filter(|i| start.is_none_or(|s| i.at >= s) && end.is_none_or(|e| i.at <= e))
        .cloned()
        .collect();
    items.sort_by_key(|i| i.at);
    if param("ScanBy").as_deref() != Some("TimestampAscending") {
        items.reverse();
    }
    let from = offset.unwrap_or(0);
    let page: Vec<&Item> = items.iter().skip(from).take(max).collect();
    let next = (from + page.len() < items.len()).then(|| format!("proxy-{}", from + page.len()));
    let mut xml = String::from(
        "<DescribeAlarmHistoryResponse xmlns=\"http://monitoring.amazonaws.com/doc/2010-08-01/\"><DescribeAlarmHistoryResult><AlarmHistoryItems>",
    );
    for i in page {
        xml.push_str(&format!(
            "<member><AlarmName>{}</AlarmName><AlarmType>{}</AlarmType><Timestamp>{}</Timestamp><HistoryItemType>{}</HistoryItemType><HistorySummary>{}</HistorySummary><HistoryData>{}</HistoryData></member>",
            xml_escape(&i.name),
            i.alarm_type,
            humantime::format_rfc3339_millis(i.at),
            i.kind,
            xml_escape(&i.summary),
            xml_escape(&i.data),
        ));
    }
    xml.push_str("</AlarmHistoryItems>");
    if let Some(next) = next {
        xml.push_str(&format!("<NextToken>{next}</NextToken>"));
    }
    xml.push_str("</DescribeAlarmHistoryResult><ResponseMetadata><RequestId>proxy-history</RequestId></ResponseMetadata></DescribeAlarmHistoryResponse>");
    let mut answer = Response::new(Full::new(Bytes::from(xml)));
    answer.headers_mut().insert("content-type", "text/xml".parse().unwrap());
    answer
}
