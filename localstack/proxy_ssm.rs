//! SSM Change Calendars as AWS answers them, for the emulator kit's proxy. moto (5.2.5) refuses a
//! `ChangeCalendar` document (its content is iCalendar, `DocumentFormat` TEXT: moto takes JSON or
//! YAML only) and does not serve `GetCalendarState`. So the kit stores a calendar in moto wrapped
//! in a JSON document (`{"schemaVersion": "1.0", "kitChangeCalendar": "<iCalendar>"}`) and unwraps
//! it again — CreateDocument, GetDocument and DescribeDocument answer TEXT as AWS does — and
//! answers `GetCalendarState` from the content, as AWS does:
//!
//! - `X-CALENDAR-TYPE:DEFAULT_OPEN` (the default) makes each event a closed period;
//!   `DEFAULT_CLOSED` makes each event an open one.
//! - Events are `VEVENT`s with `DTSTART`/`DTEND` in UTC (`…Z`), in a time zone (`TZID=…`), or as
//!   dates (`VALUE=DATE`, whole days in UTC). An `RRULE` is refused (`UnsupportedCalendarException`)
//!   rather than answered wrong: the kit does not expand recurrences.
//! - Several calendars are OPEN only when every one is; `NextTransitionTime` is when that changes.
//! - A calendar that does not exist is `InvalidDocument`, another document type
//!   `InvalidDocumentType`, as on AWS.

use std::time::SystemTime;

use bytes::Bytes;
use http_body_util::Full;
use hyper::Response;
use hyper::http::request::Parts;
use jiff::Timestamp;
use jiff::civil::DateTime;
use jiff::tz::TimeZone;

use super::{Answer, Shared};

/// A calendar's periods: whether events are closed periods (`DEFAULT_OPEN`), and the events.
struct Calendar {
    default_open: bool,
    events: Vec<(Timestamp, Timestamp)>,
}

impl Calendar {
    fn open_at(&self, t: Timestamp) -> bool {
        let inside = self.events.iter().any(|(s, e)| *s <= t && t < *e);
        inside != self.default_open
    }
}

/// A JSON-protocol error, as SSM answers it.
fn json_error(code: &str, message: &str) -> Answer {
    let body = serde_json::json!({ "__type": code, "message": message }).to_string();
    let mut answer = Response::new(Full::new(Bytes::from(body)));
    *answer.status_mut() = hyper::StatusCode::BAD_REQUEST;
    answer.headers_mut().insert("content-type", "application/x-amz-json-1.1".parse().expect("a header value"));
    answer
}

/// An iCalendar time: `20261218T170000Z`, `TZID=Europe/Berlin:20261218T170000`,
/// `VALUE=DATE:20261218`.
fn ical_time(params: &str, value: &str) -> Option<Timestamp> {
    let v = value.trim();
    if params.contains("VALUE=DATE") && v.len() == 8 {
        let iso = format!("{}-{}-{}T00:00:00Z", &v[..4], &v[4..6], &v[6..8]);
        return iso.parse().ok();
    }
    if v.len() < 15 {
        return None;
    }
    let civil = format!("{}-{}-{}T{}:{}:{}", &v[..4], &v[4..6], &v[6..8], &v[9..11], &v[11..13], &v[13..15]);
    let dt: DateTime = civil.parse().ok()?;
    let tz = match params.split(';').find_map(|p| p.strip_prefix("TZID=")) {
        Some(name) => TimeZone::get(name).ok()?,
        None => TimeZone::UTC,
    };
    Some(dt.to_zoned_datetime(tz).ok()?.timestamp())
}

/// Parses a Change Calendar's content; `Err` with the SSM error to answer.
fn parse(content: &str) -> Result<Calendar, (&'static str, String)> {
    // Lines folded by RFC 5545 (a continuation starts with a space or tab) are unfolded first.
    let mut lines: Vec<String> = Vec::new();
    for raw in content.lines() {
        match raw.strip_prefix([' ', '\t']) {
            Some(rest) if !lines.is_empty() => lines.last_mut().expect("a line").push_str(rest),
            _ => lines.push(raw.trim_end_matches('\r').to_string()),
        }
    }
    let mut default_open = true;
    let mut events = Vec::new();
    let (mut start, mut end, mut in_event) = (None, None, false);
    for line in lines {
        let (head, value) = line.split_once(':').unwrap_or((line.as_str(), ""));
        let (name, params) = head.split_once(';').unwrap_or((head, ""));
        match name.to_ascii_uppercase().as_str() {
            "X-CALENDAR-TYPE" => default_open = value.trim() != "DEFAULT_CLOSED",
            "BEGIN" if value.trim() == "VEVENT" => (start, end, in_event) = (None, None, true),
            "DTSTART" if in_event => start = ical_time(params, value),
            "DTEND" if in_event => end = ical_time(params, value),
            "RRULE" if in_event => {
                return Err((
                    "UnsupportedCalendarException",
                    "the kit does not expand recurring events (RRULE)".into(),
                ));
            }
            "END" if value.trim() == "VEVENT" => {
                in_event = false;
                match (start, end) {
                    (Some(s), Some(e)) if s < e => events.push((s, e)),
                    _ => return Err(("InvalidDocumentContent", "an event needs DTSTART before DTEND".into())),
                }
            }
            _ => {}
        }
    }
    Ok(Calendar { default_open, events })
}

/// The key of the iCalendar text in the JSON document moto keeps for a Change Calendar.
const WRAPPED: &str = "kitChangeCalendar";

/// A JSON-protocol answer.
fn json_answer(status: hyper::StatusCode, doc: &serde_json::Value) -> Answer {
    let mut answer = Response::new(Full::new(Bytes::from(doc.to_string())));
    *answer.status_mut() = status;
    answer.headers_mut().insert("content-type", "application/x-amz-json-1.1".parse().expect("a header value"));
    answer
}

/// The emulator's answer to the SSM call `operation` with `body`, as the caller of `parts`.
async fn upstream(
    shared: &Shared,
    parts: &Parts,
    operation: &str,
    body: String,
) -> (hyper::StatusCode, serde_json::Value) {
    let mut request = shared.client.post(format!("{}/", shared.upstream));
    for (h, v) in &parts.headers {
        if !matches!(h.as_str(), "host" | "content-length" | "connection" | "transfer-encoding" | "x-amz-target") {
            request = request.header(h, v);
        }
    }
    match request.header("x-amz-target", format!("AmazonSSM.{operation}")).body(body).send().await {
        Ok(answer) => {
            let status =
                hyper::StatusCode::from_u16(answer.status().as_u16()).unwrap_or(hyper::StatusCode::BAD_GATEWAY);
            (status, answer.json().await.unwrap_or_default())
        }
        Err(e) => (
            hyper::StatusCode::BAD_GATEWAY,
            serde_json::json!({ "__type": "InternalServerError", "message": e.to_string() }),
        ),
    }
}

/// A document description of a Change Calendar as AWS gives it: TEXT, with no schema version.
fn unwrap_description(d: &mut serde_json::Value) {
    if d["DocumentType"] == "ChangeCalendar" {
        d["DocumentFormat"] = "TEXT".into();
        if let Some(m) = d.as_object_mut() {
            m.remove("SchemaVersion");
            m.remove("PlatformTypes");
        }
    }
}

/// The iCalendar text of a document moto answered with, if it is a Change Calendar the kit wrapped.
fn unwrapped(doc: &serde_json::Value) -> Option<String> {
    if doc["DocumentType"] != "ChangeCalendar" {
        return None;
    }
    let inner: serde_json::Value = serde_json::from_str(doc["Content"].as_str()?).ok()?;
    inner[WRAPPED].as_str().map(String::from)
}

/// The SSM document calls about Change Calendars, in and out of moto's JSON wrapping.
pub async fn document(shared: &Shared, parts: &Parts, operation: &str, body: &Bytes) -> Answer {
    let mut request: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    if operation == "CreateDocument" && request["DocumentType"] == "ChangeCalendar" {
        if request["DocumentFormat"] != "TEXT" {
            return json_error("ValidationException", "a ChangeCalendar document's DocumentFormat must be TEXT");
        }
        let content = request["Content"].as_str().unwrap_or_default().to_string();
        if let Err((_, message)) = parse(&content) {
            return json_error("InvalidDocumentContent", &message);
        }
        request["DocumentFormat"] = "JSON".into();
        request["Content"] = serde_json::json!({ "schemaVersion": "1.0", WRAPPED: content }).to_string().into();
    }
    if operation == "GetDocument"
        && request["DocumentFormat"] == "TEXT"
        && let Some(m) = request.as_object_mut()
    {
        // Asked as TEXT: the calendar moto keeps is JSON; it is answered as TEXT below.
        m.remove("DocumentFormat");
    }
    let (status, mut answer) = upstream(shared, parts, operation, request.to_string()).await;
    if status.is_success() {
        match operation {
            "GetDocument" => {
                if let Some(text) = unwrapped(&answer) {
                    answer["Content"] = text.into();
                    answer["DocumentFormat"] = "TEXT".into();
                }
            }
            "CreateDocument" => unwrap_description(&mut answer["DocumentDescription"]),
            "DescribeDocument" => unwrap_description(&mut answer["Document"]),
            _ => {}
        }
    }
    json_answer(status, &answer)
}

/// The content of the Change Calendar `name` (or ARN), as the caller of `parts` sees it.
async fn content(shared: &Shared, parts: &Parts, name: &str) -> Result<String, Answer> {
    let name = name.rsplit_once(":document/").map(|(_, n)| n).unwrap_or(name);
    let (status, doc) = upstream(shared, parts, "GetDocument", serde_json::json!({ "Name": name }).to_string()).await;
    if !status.is_success() {
        return Err(json_error("InvalidDocument", &format!("calendar {name} does not exist")));
    }
    unwrapped(&doc).ok_or_else(|| json_error("InvalidDocumentType", &format!("{name} is not a change calendar")))
}

/// `GetCalendarState`: the state of every named calendar at `AtTime` (the kit's now without
/// one), OPEN only when all are open, and when that changes next.
pub async fn calendar_state(shared: &Shared, parts: &Parts, body: &Bytes, now: SystemTime) -> Answer {
    let request: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    let names: Vec<String> = request["CalendarNames"]
        .as_array()
        .map(|a| a.iter().filter_map(|n| n.as_str().map(String::from)).collect())
        .unwrap_or_default();
    if names.is_empty() {
        return json_error("ValidationException", "CalendarNames must name at least one calendar");
    }
    let at = match request["AtTime"].as_str() {
        Some(t) => match t.parse::<Timestamp>() {
            Ok(t) => t,
            Err(_) => return json_error("InvalidDocumentContent", &format!("AtTime {t} is not an ISO 8601 time")),
        },
        None => Timestamp::try_from(now).unwrap_or(Timestamp::UNIX_EPOCH),
    };
    let mut calendars = Vec::new();
    for name in &names {
        let text = match content(shared, parts, name).await {
            Ok(t) => t,
            Err(answer) => return answer,
        };
        match parse(&text) {
            Ok(c) => calendars.push(c),
            Err((code, message)) => return json_error(code, &message),
        }
    }
    let open = |t: Timestamp| calendars.iter().all(|c| c.open_at(t));
    let state = open(at);
    let mut edges: Vec<Timestamp> =
        calendars.iter().flat_map(|c| c.events.iter().flat_map(|(s, e)| [*s, *e])).filter(|t| *t > at).collect();
    edges.sort();
    let next = edges.into_iter().find(|t| open(*t) != state);
    let mut doc = serde_json::json!({
        "State": if state { "OPEN" } else { "CLOSED" },
        "AtTime": at.to_string(),
    });
    if let Some(t) = next {
        doc["NextTransitionTime"] = serde_json::Value::String(t.to_string());
    }
    json_answer(hyper::StatusCode::OK, &doc)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CAL: &str = "BEGIN:VCALENDAR\r\nX-CALENDAR-TYPE:DEFAULT_OPEN\r\nBEGIN:VEVENT\r\nDTSTART;TZID=Europe/Berlin:20261218T170000\r\nDTEND;TZID=Europe/Berlin:20261221T090000\r\nSUMMARY:freeze\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n";

    #[test]
    fn a_default_open_calendar_is_closed_during_its_events() {
        let c = parse(CAL).unwrap();
        assert!(c.open_at("2026-12-18T15:59:59Z".parse().unwrap()));
        assert!(!c.open_at("2026-12-18T16:00:00Z".parse().unwrap()));
        assert!(c.open_at("2026-12-21T08:00:00Z".parse().unwrap()));
        let closed = parse(&CAL.replace("DEFAULT_OPEN", "DEFAULT_CLOSED")).unwrap();
        assert!(closed.open_at("2026-12-19T00:00:00Z".parse().unwrap()));
        assert!(parse(&CAL.replace("SUMMARY:freeze", "RRULE:FREQ=WEEKLY")).is_err());
    }
}
