//! `freeze` gate: change freezes and deployment windows. A shift toward the candidate waits while
//! a calendar is closed — or would close before the next stage's bake ends (look-ahead) — and the
//! stage holds at its weight; rollbacks, pauses and moves toward the stable side never wait.
//!
//! Two sources, either or both:
//! - `calendars`: AWS Systems Manager Change Calendars, by name or ARN, read with
//!   `GetCalendarState` (OPEN only when every calendar is open; `NextTransitionTime` says until
//!   when). A calendar that cannot be read holds: a freeze fails closed.
//! - `[[gate.window]]`: inline windows — `deny` (closed while it lasts) and `allow` (with any
//!   allow window, open only inside one); deny wins — each from `start` (a local time in `tz`,
//!   default UTC) for `duration`, repeated by an RFC 5545 `rrule` (FREQ DAILY, WEEKLY, MONTHLY or
//!   YEARLY with INTERVAL, BYDAY, BYMONTHDAY, BYMONTH, COUNT, UNTIL; others are refused).
//!
//! A frozen reading is [`Verdict::Frozen`]: the stage bakes on, and holds instead of moving on —
//! `advance` says "frozen until …" and exits 0; `rollout` ends held (exit 7) once it has been
//! frozen `max_hold`. `--override-freeze REASON` lets the move through, audited with the caller.

use std::time::Duration;

use aws_sdk_ssm::types::CalendarState;
use jiff::civil::{Date, DateTime, Weekday};
use jiff::tz::TimeZone;
use jiff::{Span, Timestamp};
use serde::Deserialize;

use super::kind::{Checked, Env, GateCheck, GateContext, GateKind};
use crate::error::{Error, Result};
use crate::iam::{Scope, Statement};
use crate::model::{Reading, Role, Side, Verdict};
use crate::profile::fields::{self, Bad, Key, bad, bad_hint, duration, non_empty};

/// The `freeze` gate kind.
pub struct Kind;

/// A `freeze` gate's table.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Section {
    #[serde(default)]
    calendars: Vec<String>,
    #[serde(default)]
    window: Vec<RawWindow>,
}

/// A `[[gate.window]]` table.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWindow {
    kind: String,
    start: String,
    duration: String,
    rrule: Option<String>,
    tz: Option<String>,
}

/// A `freeze` gate, checked.
#[derive(Clone, Debug, PartialEq)]
pub struct Spec {
    /// Change Calendar names or ARNs.
    pub calendars: Vec<String>,
    pub windows: Vec<Window>,
}

/// Whether a window closes or opens the way.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WindowKind {
    Allow,
    Deny,
}

/// An inline window, checked.
#[derive(Clone, Debug, PartialEq)]
pub struct Window {
    pub kind: WindowKind,
    /// The first occurrence's start, a local time in `tz`.
    pub start: DateTime,
    pub duration: Duration,
    pub rule: Option<Rule>,
    /// An IANA time zone name (`Europe/Berlin`), `UTC` by default.
    pub tz: String,
}

/// How often a recurrence repeats.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Freq {
    Daily,
    Weekly,
    Monthly,
    Yearly,
}

/// An RFC 5545 recurrence rule, the parts cutover reads.
#[derive(Clone, Debug, PartialEq)]
pub struct Rule {
    pub freq: Freq,
    pub interval: u32,
    /// BYDAY: weekdays, with an ordinal in a month or year (`1FR`, `-1MO`).
    pub by_day: Vec<(Option<i8>, Weekday)>,
    pub by_month_day: Vec<i8>,
    pub by_month: Vec<i8>,
    pub count: Option<u32>,
    pub until: Option<Timestamp>,
}

/// The longest a window may last, and how far a search for a transition looks.
const HORIZON_DAYS: i64 = 400;
/// How many periods a recurrence is followed at the most (100 years of days).
const MAX_PERIODS: u32 = 36_600;

fn weekday(s: &str) -> Option<Weekday> {
    Some(match s {
        "MO" => Weekday::Monday,
        "TU" => Weekday::Tuesday,
        "WE" => Weekday::Wednesday,
        "TH" => Weekday::Thursday,
        "FR" => Weekday::Friday,
        "SA" => Weekday::Saturday,
        "SU" => Weekday::Sunday,
        _ => return None,
    })
}

/// Parses an RFC 5545 RRULE value (`FREQ=WEEKLY;BYDAY=FR`); the parts cutover does not follow
/// are refused rather than ignored.
pub fn parse_rule(text: &str) -> std::result::Result<Rule, String> {
    let text = text.trim().trim_start_matches("RRULE:");
    let mut rule = Rule {
        freq: Freq::Daily,
        interval: 1,
        by_day: Vec::new(),
        by_month_day: Vec::new(),
        by_month: Vec::new(),
        count: None,
        until: None,
    };
    let mut freq = None;
    for part in text.split(';').filter(|p| !p.is_empty()) {
        let (k, v) = part.split_once('=').ok_or_else(|| format!("`{part}` is not KEY=VALUE"))?;
        let list = || v.split(',').map(str::trim).filter(|x| !x.is_empty());
        match k.trim().to_ascii_uppercase().as_str() {
            "FREQ" => {
                freq = Some(match v.trim().to_ascii_uppercase().as_str() {
                    "DAILY" => Freq::Daily,
                    "WEEKLY" => Freq::Weekly,
                    "MONTHLY" => Freq::Monthly,
                    "YEARLY" => Freq::Yearly,
                    other => return Err(format!("FREQ={other} is not followed (DAILY, WEEKLY, MONTHLY or YEARLY)")),
                })
            }
            "INTERVAL" => {
                rule.interval =
                    v.trim().parse().ok().filter(|n| (1..=1000).contains(n)).ok_or("INTERVAL must be 1–1000")?;
            }
            "COUNT" => {
                rule.count =
                    Some(v.trim().parse().ok().filter(|n| (1..=100_000).contains(n)).ok_or("COUNT must be 1–100000")?);
            }
            "UNTIL" => {
                let v = v.trim();
                let until = if v.len() == 8 {
                    let d: Date =
                        format!("{}-{}-{}", &v[..4], &v[4..6], &v[6..]).parse().map_err(|_| "UNTIL is not a date")?;
                    d.at(23, 59, 59, 0).to_zoned_datetime(TimeZone::UTC).map_err(|e| e.to_string())?.timestamp()
                } else {
                    let iso = format!(
                        "{}-{}-{}T{}:{}:{}Z",
                        v.get(..4).unwrap_or(""),
                        v.get(4..6).unwrap_or(""),
                        v.get(6..8).unwrap_or(""),
                        v.get(9..11).unwrap_or(""),
                        v.get(11..13).unwrap_or(""),
                        v.get(13..15).unwrap_or("")
                    );
                    iso.parse::<Timestamp>()
                        .map_err(|_| format!("UNTIL={v} is not a date or a UTC time (20261231T235959Z)"))?
                };
                rule.until = Some(until);
            }
            "BYDAY" => {
                for d in list() {
                    let d = d.to_ascii_uppercase();
                    let (n, day) = d.split_at(d.len().saturating_sub(2));
                    let day = weekday(day).ok_or_else(|| format!("BYDAY `{d}` is not a weekday (MO … SU)"))?;
                    let n = match n {
                        "" => None,
                        n => Some(
                            n.trim_start_matches('+')
                                .parse::<i8>()
                                .ok()
                                .filter(|n| *n != 0 && n.abs() <= 53)
                                .ok_or_else(|| format!("BYDAY `{d}`: the ordinal must be 1–53 or -1–-53"))?,
                        ),
                    };
                    rule.by_day.push((n, day));
                }
            }
            "BYMONTHDAY" => {
                for d in list() {
                    let n: i8 = d
                        .parse()
                        .ok()
                        .filter(|n: &i8| *n != 0 && n.abs() <= 31)
                        .ok_or_else(|| format!("BYMONTHDAY `{d}` is not 1–31 or -1–-31"))?;
                    rule.by_month_day.push(n);
                }
            }
            "BYMONTH" => {
                for m in list() {
                    let n: i8 = m
                        .parse()
                        .ok()
                        .filter(|n| (1..=12).contains(n))
                        .ok_or_else(|| format!("BYMONTH `{m}` is not 1–12"))?;
                    rule.by_month.push(n);
                }
            }
            "WKST" if v.trim().eq_ignore_ascii_case("MO") => {}
            other => {
                return Err(format!(
                    "{other} is not followed (FREQ, INTERVAL, BYDAY, BYMONTHDAY, BYMONTH, COUNT, UNTIL)"
                ));
            }
        }
    }
    rule.freq = freq.ok_or("FREQ is missing")?;
    if rule.count.is_some() && rule.until.is_some() {
        return Err("COUNT and UNTIL are not both allowed (RFC 5545)".into());
    }
    if rule.freq == Freq::Weekly && rule.by_day.iter().any(|(n, _)| n.is_some()) {
        return Err("BYDAY with an ordinal (1FR) is for MONTHLY or YEARLY rules".into());
    }
    Ok(rule)
}

/// The dates of one period of a recurrence that match its BY rules, in order.
fn period_dates(rule: &Rule, start: Date, p: u32) -> Vec<Date> {
    let step = i64::from(p) * i64::from(rule.interval);
    let month_ok = |d: &Date| rule.by_month.is_empty() || rule.by_month.contains(&d.month());
    let in_month = |first: Date| -> Vec<Date> {
        let days = first.days_in_month();
        let mut out: Vec<Date> = Vec::new();
        if !rule.by_month_day.is_empty() {
            for &n in &rule.by_month_day {
                let day = if n > 0 { n } else { days + 1 + n };
                if (1..=days).contains(&day)
                    && let Ok(d) = Date::new(first.year(), first.month(), day)
                {
                    out.push(d);
                }
            }
        } else if !rule.by_day.is_empty() {
            for &(n, wd) in &rule.by_day {
                match n {
                    Some(n) => out.extend(first.nth_weekday_of_month(n, wd).ok()),
                    None => {
                        for day in 1..=days {
                            if let Ok(d) = Date::new(first.year(), first.month(), day)
                                && d.weekday() == wd
                            {
                                out.push(d);
                            }
                        }
                    }
                }
            }
        } else if let Ok(d) = Date::new(first.year(), first.month(), start.day()) {
            out.push(d);
        }
        out
    };
    let mut dates: Vec<Date> = match rule.freq {
        Freq::Daily => start
            .checked_add(Span::new().days(step))
            .ok()
            .filter(|d| rule.by_day.is_empty() || rule.by_day.iter().any(|(_, w)| *w == d.weekday()))
            .filter(|d| rule.by_month_day.is_empty() || rule.by_month_day.contains(&d.day()))
            .into_iter()
            .collect(),
        Freq::Weekly => {
            let monday = start.checked_sub(Span::new().days(i64::from(start.weekday().to_monday_zero_offset()))).ok();
            let week = monday.and_then(|m| m.checked_add(Span::new().weeks(step)).ok());
            let days: Vec<Weekday> = if rule.by_day.is_empty() {
                vec![start.weekday()]
            } else {
                rule.by_day.iter().map(|(_, w)| *w).collect()
            };
            week.map(|w| {
                days.iter()
                    .filter_map(|d| w.checked_add(Span::new().days(i64::from(d.to_monday_zero_offset()))).ok())
                    .collect()
            })
            .unwrap_or_default()
        }
        Freq::Monthly => {
            start.first_of_month().checked_add(Span::new().months(step)).ok().map(in_month).unwrap_or_default()
        }
        Freq::Yearly => {
            let Ok(year) = Date::new(start.year(), 1, 1).and_then(|d| d.checked_add(Span::new().years(step))) else {
                return Vec::new();
            };
            let months: Vec<i8> = if rule.by_month.is_empty() { vec![start.month()] } else { rule.by_month.clone() };
            months.iter().filter_map(|m| Date::new(year.year(), *m, 1).ok()).flat_map(in_month).collect()
        }
    };
    dates.retain(month_ok);
    dates.sort();
    dates.dedup();
    dates
}

impl Window {
    fn zone(&self) -> TimeZone {
        TimeZone::get(&self.tz).unwrap_or(TimeZone::UTC)
    }

    /// Every occurrence `[start, end)` that overlaps `[from, to)`, in order.
    pub fn intervals(&self, from: Timestamp, to: Timestamp) -> Vec<(Timestamp, Timestamp)> {
        let tz = self.zone();
        let len = Span::new().seconds(self.duration.as_secs() as i64);
        let span_of = |dt: DateTime| -> Option<(Timestamp, Timestamp)> {
            let s = dt.to_zoned_datetime(tz.clone()).ok()?.timestamp();
            Some((s, s.checked_add(len).ok()?))
        };
        let mut out = Vec::new();
        let Some(rule) = &self.rule else {
            out.extend(span_of(self.start).filter(|(s, e)| *s < to && *e > from));
            return out;
        };
        let time = self.start.time();
        let mut seen = 0u32;
        for p in 0..MAX_PERIODS {
            for d in period_dates(rule, self.start.date(), p) {
                let dt = DateTime::from_parts(d, time);
                if dt < self.start {
                    continue;
                }
                let Some((s, e)) = span_of(dt) else { continue };
                if rule.until.is_some_and(|u| s > u) || s >= to {
                    return out;
                }
                seen += 1;
                if rule.count.is_some_and(|c| seen > c) {
                    return out;
                }
                if e > from {
                    out.push((s, e));
                }
            }
        }
        out
    }
}

/// Whether the windows leave the way open at `t`: no deny window covers it, and — with any allow
/// window — an allow window does.
fn open_at(intervals: &[(WindowKind, Timestamp, Timestamp)], has_allow: bool, t: Timestamp) -> bool {
    let inside = |k: WindowKind| intervals.iter().any(|(kind, s, e)| *kind == k && *s <= t && t < *e);
    !inside(WindowKind::Deny) && (!has_allow || inside(WindowKind::Allow))
}

/// The windows' state over `[from, to]`: open at `from`, and the first instant after `from` (up to
/// `to`) where that changes.
pub fn windows_state(windows: &[Window], from: Timestamp, to: Timestamp) -> (bool, Option<Timestamp>) {
    let lookback = from.checked_sub(Span::new().hours(24 * HORIZON_DAYS)).unwrap_or(from);
    let intervals: Vec<(WindowKind, Timestamp, Timestamp)> =
        windows.iter().flat_map(|w| w.intervals(lookback, to).into_iter().map(move |(s, e)| (w.kind, s, e))).collect();
    let has_allow = windows.iter().any(|w| w.kind == WindowKind::Allow);
    let now_open = open_at(&intervals, has_allow, from);
    let mut edges: Vec<Timestamp> =
        intervals.iter().flat_map(|(_, s, e)| [*s, *e]).filter(|t| *t > from && *t <= to).collect();
    edges.sort();
    let change = edges.into_iter().find(|t| open_at(&intervals, has_allow, *t) != now_open);
    (now_open, change)
}

/// How a rule repeats, for `validate`: `, every week (FR)`.
fn repeats(rule: &Rule) -> String {
    let unit = match rule.freq {
        Freq::Daily => "day",
        Freq::Weekly => "week",
        Freq::Monthly => "month",
        Freq::Yearly => "year",
    };
    let every = if rule.interval == 1 { format!("every {unit}") } else { format!("every {} {unit}s", rule.interval) };
    let day = |(n, d): &(Option<i8>, Weekday)| {
        let name = &format!("{d:?}")[..2];
        format!("{}{}", n.map(|n| n.to_string()).unwrap_or_default(), name.to_uppercase())
    };
    let mut by: Vec<String> = rule.by_day.iter().map(day).collect();
    by.extend(rule.by_month_day.iter().map(|d| format!("day {d}")));
    by.extend(rule.by_month.iter().map(|m| format!("month {m}")));
    let by = if by.is_empty() { String::new() } else { format!(" ({})", by.join(", ")) };
    let end = match (rule.count, rule.until) {
        (Some(n), _) => format!(", {n} times"),
        (_, Some(u)) => format!(", until {}", utc(u)),
        _ => String::new(),
    };
    format!(", {every}{by}{end}")
}

fn civil(key: &str, text: &str) -> std::result::Result<DateTime, Bad> {
    text.trim().parse::<DateTime>().map_err(|e| {
        bad_hint(key, format!("`{text}` is not a local date and time ({e})"), "for example \"2026-12-18T17:00\"")
    })
}

impl GateKind for Kind {
    const TYPE: &'static str = "freeze";
    const AWS: bool = true;
    type Section = Section;
    type Spec = Spec;
    type Reader = Freeze;

    fn check(g: Section, at: &Key) -> std::result::Result<Checked<Spec>, Bad> {
        if g.calendars.is_empty() && g.window.is_empty() {
            return Err(bad_hint(
                at.path(),
                "a freeze gate needs `calendars` or a [[gate.window]]",
                "calendars = [\"prod-freeze\"] (SSM Change Calendars), or [[gate.window]] kind = \"deny\", start = …, duration = …",
            ));
        }
        for (i, c) in g.calendars.iter().enumerate() {
            let key = format!("{}[{i}]", at.at("calendars"));
            non_empty(&key, c)?;
            let name = c.rsplit_once(":document/").map(|(_, n)| n).unwrap_or(c);
            let ok = c.starts_with("arn:") == c.contains(":document/")
                && (3..=128).contains(&name.len())
                && name.chars().all(|ch| ch.is_ascii_alphanumeric() || "_.-".contains(ch));
            if !ok {
                return Err(bad_hint(
                    key,
                    format!("`{c}` is not a Change Calendar name or ARN"),
                    "a name of 3–128 letters, digits, `_`, `.` and `-`, or arn:aws:ssm:REGION:ACCOUNT:document/NAME",
                ));
            }
        }
        let mut windows = Vec::new();
        for (i, w) in g.window.into_iter().enumerate() {
            let wat = Key::new(format!("{}[{i}]", at.at("window")));
            let kind = match w.kind.trim() {
                "allow" => WindowKind::Allow,
                "deny" => WindowKind::Deny,
                other => return Err(bad(wat.at("kind"), format!("`{other}` is neither \"allow\" nor \"deny\""))),
            };
            let start = civil(&wat.at("start"), &w.start)?;
            let length = duration(&wat.at("duration"), &w.duration, fields::FREEZE_WINDOW)?;
            let tz = w.tz.unwrap_or_else(|| "UTC".into());
            if TimeZone::get(&tz).is_err() {
                return Err(bad_hint(
                    wat.at("tz"),
                    format!("`{tz}` is not a time zone"),
                    "an IANA name, e.g. \"Europe/Berlin\"",
                ));
            }
            let rule = match &w.rrule {
                Some(r) => Some(parse_rule(r).map_err(|e| {
                    bad_hint(wat.at("rrule"), format!("`{r}`: {e}"), "an RFC 5545 rule, e.g. \"FREQ=WEEKLY;BYDAY=FR\"")
                })?),
                None => None,
            };
            windows.push(Window { kind, start, duration: length, rule, tz });
        }
        Ok(Checked::new(Spec { calendars: g.calendars, windows }))
    }

    fn reader(spec: &Spec, env: &Env<'_>) -> Freeze {
        Freeze {
            name: env.name.to_string(),
            client: (!spec.calendars.is_empty()).then(|| crate::client!(aws_sdk_ssm, env.sdk())),
            spec: spec.clone(),
        }
    }

    fn describe(spec: &Spec) -> Option<String> {
        let mut parts = Vec::new();
        if !spec.calendars.is_empty() {
            parts.push(format!("change calendars {} (read before every shift)", spec.calendars.join(", ")));
        }
        for w in &spec.windows {
            let kind = match w.kind {
                WindowKind::Allow => "allow",
                WindowKind::Deny => "deny",
            };
            let repeat = w.rule.as_ref().map(repeats).unwrap_or_default();
            let secs = w.duration.as_secs();
            let length = match secs {
                s if s % 3600 == 0 => format!("{}h", s / 3600),
                s if s % 60 == 0 => format!("{}m", s / 60),
                _ => humantime::format_duration(w.duration).to_string(),
            };
            parts.push(format!(
                "{kind} window from {} {} for {length}{repeat}",
                w.start.strftime("%Y-%m-%dT%H:%M"),
                w.tz
            ));
        }
        if !spec.windows.is_empty() {
            let now = Timestamp::now();
            let horizon = now.checked_add(Span::new().hours(24 * HORIZON_DAYS)).unwrap_or(now);
            parts.push(match windows_state(&spec.windows, now, horizon) {
                (true, Some(t)) => format!("the windows are open now, closing at {}", utc(t)),
                (true, None) => format!("the windows are open now, and stay open for {HORIZON_DAYS} days"),
                (false, Some(t)) => format!("the windows are closed now, until {}", utc(t)),
                (false, None) => format!("the windows are closed now, for {HORIZON_DAYS} days at least"),
            });
        }
        parts.push("a stage starts only if its bake ends before a closing; rollbacks are never frozen".into());
        Some(parts.join("; "))
    }

    /// GetCalendarState on the calendars, in the gate's account.
    fn policy(spec: &Spec, role: Option<&Role>, scope: &Scope<'_>) -> Vec<Statement> {
        if scope.read_only || spec.calendars.is_empty() || !scope.here(role) {
            return Vec::new();
        }
        let (arn, region, account) = (scope.arn(), scope.region, scope.account);
        let docs = spec.calendars.iter().map(|c| {
            if c.starts_with("arn:") { c.clone() } else { format!("{arn}ssm:{region}:{account}:document/{c}") }
        });
        vec![Statement::new("FreezeCalendars", &["ssm:GetCalendarState"], docs)]
    }
}

/// Reads a `freeze` gate.
pub struct Freeze {
    name: String,
    client: Option<aws_sdk_ssm::Client>,
    spec: Spec,
}

/// Why a source of the gate holds a move, and until when it will (`None`: not known).
struct Held {
    why: String,
    until: Option<Timestamp>,
}

/// A time as the readings say it: UTC, to the second.
fn utc(t: Timestamp) -> String {
    t.round(jiff::Unit::Second).unwrap_or(t).strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

impl Freeze {
    /// GetCalendarState of every calendar at `at`: OPEN or not, and the next transition.
    async fn calendar_state(
        &self,
        client: &aws_sdk_ssm::Client,
        at: Timestamp,
    ) -> std::result::Result<(Option<CalendarState>, Option<Timestamp>), String> {
        let at = aws_smithy_types::DateTime::from_secs(at.as_second());
        let out = client
            .get_calendar_state()
            .set_calendar_names(Some(self.spec.calendars.clone()))
            .at_time(at.fmt(aws_smithy_types::date_time::Format::DateTime).unwrap_or_default())
            .send()
            .await
            .map_err(|e| crate::aws::error("GetCalendarState", e).to_string())?;
        let next = out.next_transition_time().and_then(|t| t.parse::<Timestamp>().ok());
        Ok((out.state().cloned(), next))
    }

    /// Why the calendars hold a move now, or before `bake_end`; `None` when they let it through.
    async fn calendars(&self, now: Timestamp, bake_end: Timestamp) -> Option<Held> {
        let client = self.client.as_ref()?;
        let names = self.spec.calendars.join(", ");
        let (state, next) = match self.calendar_state(client, now).await {
            Ok(s) => s,
            Err(e) => {
                return Some(Held {
                    why: format!("change calendar {names} cannot be read ({e}): held, a freeze fails closed"),
                    until: None,
                });
            }
        };
        match state {
            Some(CalendarState::Open) => match next {
                Some(t) if t <= bake_end => {
                    // Until when the closing lasts: the calendars' state at the closing.
                    let until = match self.calendar_state(client, t).await {
                        Ok((Some(CalendarState::Closed), reopens)) => reopens,
                        _ => None,
                    };
                    Some(Held {
                        why: format!(
                            "change calendar {names} closes at {}, before the next stage's bake would end at {}",
                            utc(t),
                            utc(bake_end)
                        ),
                        until,
                    })
                }
                _ => None,
            },
            Some(CalendarState::Closed) => Some(Held {
                why: match next {
                    Some(t) => format!("change calendar {names} is CLOSED until {}", utc(t)),
                    None => format!("change calendar {names} is CLOSED"),
                },
                until: next,
            }),
            other => Some(Held { why: format!("change calendar {names} answered state {other:?}: held"), until: None }),
        }
    }

    /// Why the inline windows hold a move now, or before `bake_end`.
    fn windows(&self, now: Timestamp, bake_end: Timestamp) -> Option<Held> {
        if self.spec.windows.is_empty() {
            return None;
        }
        let horizon = |from: Timestamp| from.checked_add(Span::new().hours(24 * HORIZON_DAYS)).unwrap_or(from);
        let (open, change) = windows_state(&self.spec.windows, now, horizon(now));
        if !open {
            return Some(match change {
                Some(t) => Held { why: format!("closed by a freeze window until {}", utc(t)), until: Some(t) },
                None => Held {
                    why: format!("closed by a freeze window, with no opening within {HORIZON_DAYS} days"),
                    until: None,
                },
            });
        }
        match change {
            Some(t) if t <= bake_end => Some(Held {
                why: format!(
                    "a freeze window closes at {}, before the next stage's bake would end at {}",
                    utc(t),
                    utc(bake_end)
                ),
                until: windows_state(&self.spec.windows, t, horizon(t)).1,
            }),
            _ => None,
        }
    }
}

impl GateCheck for Freeze {
    /// A calendar that does not exist, or is no Change Calendar, is refused before any traffic
    /// moves (a typo would otherwise hold every rollout). Any other failure is left to the
    /// readings, which hold while it lasts.
    async fn preflight(&self, _candidate: Side) -> Result<()> {
        let Some(client) = &self.client else { return Ok(()) };
        let at = aws_smithy_types::DateTime::from_secs(Timestamp::now().as_second());
        let asked = client
            .get_calendar_state()
            .set_calendar_names(Some(self.spec.calendars.clone()))
            .at_time(at.fmt(aws_smithy_types::date_time::Format::DateTime).unwrap_or_default())
            .send()
            .await;
        let Err(e) = asked else { return Ok(()) };
        let not_one = e.as_service_error().filter(|s| s.is_invalid_document() || s.is_invalid_document_type());
        match not_one {
            Some(s) => Err(Error::refused_hint(
                format!(
                    "gate `{}`: change calendar {} cannot be used: {}",
                    self.name,
                    self.spec.calendars.join(", "),
                    s.meta().message().unwrap_or("not a Change Calendar")
                ),
                "check `calendars` of the gate: `aws ssm list-documents --filters Key=DocumentType,Values=ChangeCalendar`",
            )),
            None => Ok(()),
        }
    }

    async fn read(&self, ctx: &GateContext) -> Reading {
        let now = Timestamp::now();
        let bake = Span::new().seconds(ctx.next_bake.as_secs() as i64);
        let bake_end = now.checked_add(bake).unwrap_or(now);
        let held: Vec<Held> =
            [self.windows(now, bake_end), self.calendars(now, bake_end).await].into_iter().flatten().collect();
        if held.is_empty() {
            let what = match (self.spec.calendars.is_empty(), self.spec.windows.is_empty()) {
                (false, false) => "the change calendars are OPEN and no freeze window applies",
                (false, true) => "the change calendars are OPEN",
                _ => "no freeze window applies",
            };
            return Reading::new(&self.name, Verdict::Pass, what);
        }
        // Open again once every source is: the latest of their openings, if each says one.
        let until = held.iter().map(|h| h.until).collect::<Option<Vec<Timestamp>>>().and_then(|u| u.into_iter().max());
        let why = held.into_iter().map(|h| h.why).collect::<Vec<_>>().join("; ");
        let mut evidence = serde_json::Map::new();
        evidence.insert("until".into(), until.map(utc).into());
        Reading { evidence: Some(evidence), ..Reading::frozen(&self.name, why) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn window(kind: WindowKind, start: &str, hours: u64, rrule: Option<&str>, tz: &str) -> Window {
        Window {
            kind,
            start: start.parse().unwrap(),
            duration: Duration::from_secs(hours * 3600),
            rule: rrule.map(|r| parse_rule(r).unwrap()),
            tz: tz.into(),
        }
    }

    #[test]
    fn a_weekly_deny_window_in_a_time_zone_closes_every_friday_evening_to_monday() {
        // Fridays 17:00 Berlin time for 64 h: 16:00Z in winter.
        let w = [window(WindowKind::Deny, "2026-12-18T17:00", 64, Some("FREQ=WEEKLY;BYDAY=FR"), "Europe/Berlin")];
        let (open, change) = windows_state(&w, ts("2026-12-24T10:00:00Z"), ts("2026-12-31T00:00:00Z"));
        assert!(open);
        assert_eq!(change, Some(ts("2026-12-25T16:00:00Z")));
        let (open, change) = windows_state(&w, ts("2026-12-26T12:00:00Z"), ts("2027-01-05T00:00:00Z"));
        assert!(!open);
        assert_eq!(change, Some(ts("2026-12-28T08:00:00Z")));
        // Summer time: 15:00Z.
        let (_, change) = windows_state(&w, ts("2027-07-01T00:00:00Z"), ts("2027-07-10T00:00:00Z"));
        assert_eq!(change, Some(ts("2027-07-02T15:00:00Z")));
        // Before its first occurrence nothing is closed.
        let (open, _) = windows_state(&w, ts("2026-12-12T12:00:00Z"), ts("2026-12-13T00:00:00Z"));
        assert!(open);
    }

    #[test]
    fn with_an_allow_window_the_way_is_open_only_inside_one_and_deny_wins() {
        let w = [
            window(WindowKind::Allow, "2026-12-07T09:00", 8, Some("FREQ=WEEKLY;BYDAY=MO,TU,WE,TH"), "UTC"),
            window(WindowKind::Deny, "2026-12-09T12:00", 2, None, "UTC"),
        ];
        assert!(windows_state(&w, ts("2026-12-08T10:00:00Z"), ts("2026-12-08T10:00:00Z")).0);
        assert!(
            !windows_state(&w, ts("2026-12-08T18:00:00Z"), ts("2026-12-08T18:00:00Z")).0,
            "outside the allow window"
        );
        assert!(!windows_state(&w, ts("2026-12-11T10:00:00Z"), ts("2026-12-11T10:00:00Z")).0, "a Friday");
        assert!(!windows_state(&w, ts("2026-12-09T13:00:00Z"), ts("2026-12-09T13:00:00Z")).0, "deny wins");
        let (open, change) = windows_state(&w, ts("2026-12-09T10:00:00Z"), ts("2026-12-09T20:00:00Z"));
        assert!(open);
        assert_eq!(change, Some(ts("2026-12-09T12:00:00Z")), "the look-ahead sees the deny window");
    }

    #[test]
    fn monthly_and_yearly_rules_count_until_and_refusals() {
        // The last Friday of each month, three times.
        let w = window(WindowKind::Deny, "2026-12-25T00:00", 24, Some("FREQ=MONTHLY;BYDAY=-1FR;COUNT=3"), "UTC");
        let got: Vec<Timestamp> =
            w.intervals(ts("2026-12-01T00:00:00Z"), ts("2027-12-01T00:00:00Z")).into_iter().map(|(s, _)| s).collect();
        assert_eq!(got, [ts("2026-12-25T00:00:00Z"), ts("2027-01-29T00:00:00Z"), ts("2027-02-26T00:00:00Z")]);
        // Every 24 December, until 2028.
        let w = window(WindowKind::Deny, "2026-12-24T00:00", 48, Some("FREQ=YEARLY;UNTIL=20281231T000000Z"), "UTC");
        assert_eq!(w.intervals(ts("2026-01-01T00:00:00Z"), ts("2031-01-01T00:00:00Z")).len(), 3);
        for bad in [
            "FREQ=HOURLY",
            "FREQ=WEEKLY;BYSETPOS=1",
            "BYDAY=FR",
            "FREQ=WEEKLY;BYDAY=1FR",
            "FREQ=DAILY;COUNT=2;UNTIL=20270101",
        ] {
            assert!(parse_rule(bad).is_err(), "{bad}");
        }
    }
}
