//! The rollback protocol — what makes `rollback` win — in one place, over the ports: write the
//! stable split (blind: it must land whatever was written meanwhile), mark the rollout aborted as
//! soon as the write is accepted (beside the service's propagation, with the rollback's audit line
//! in the same request), hold the split until every write a running rollout had claimed can no
//! longer land, take the safety net off (the [`Attachments`] port), and — when asked — wait for clients to leave the other
//! side. `rollback` and `set --force` call it; the engine's own rollback shares its write
//! ([`settle`]).
//!
//! Exit 0 of a rollback means all of it: every route on the stable side, the rollout aborted,
//! nothing claimed still in flight.

use std::time::{Duration, SystemTime};

use crate::error::{Error, Result};
use crate::model::{Percent, RouteView, Shares, Side, fmt_pct, sole_side_of};
use crate::rollout::clock::Clock;
use crate::rollout::ledger::{Claim, Ledger, backoff};
use crate::rollout::ports::{Attachments, Store, Traffic, TrafficError, WriteGuard};
use crate::rollout::record::AuditEntry;

/// How long `rollback` (and `set --force`) keep trying to mark the rollout aborted when the state
/// table does not answer: traffic has moved already; then they say the state was not updated.
pub const ABORT_WITHIN: Duration = Duration::from_secs(10);

/// At most this share of the requests on the side a rollback left counts as "traffic has left".
pub const DRAINED_PERCENT: f64 = 1.0;

/// What clients do, as the load balancers count them: per route, each side's share of the
/// requests since an instant (`None` for a route where none was counted); `Ok(None)` while no
/// count since then is published yet. Read to say when traffic has left a side.
#[allow(async_fn_in_trait)]
pub trait Clients {
    async fn shares_since(
        &self,
        since: SystemTime,
    ) -> std::result::Result<Option<Vec<(String, Option<Shares>)>>, String>;
}

/// A rollback to do: where to, why, and what it is recorded as.
pub struct Rollback {
    pub stable: Side,
    /// The abort's reason in the rollout state.
    pub reason: String,
    /// The rollback's line of the audit trail, written with the abort (with a recorded rollout).
    pub entry: Option<AuditEntry>,
    /// The routes as the write will leave them, recorded with the abort.
    pub planned: Vec<RouteView>,
    /// The state's version as read before the write, when a rollout was recorded.
    pub read_version: Option<u64>,
}

/// What a rollback did.
#[derive(Debug)]
pub struct Restored {
    /// The routes as last read, all on the stable side.
    pub routes: Vec<RouteView>,
    /// A recorded rollout was marked aborted.
    pub aborted: bool,
    /// Its audit line went with the abort.
    pub audited: bool,
    /// From the write's start until the split held.
    pub elapsed: Duration,
}

/// The protocol's parts: the routes, the rollout state, what rides on the routes (the safety
/// net), the run's clock.
pub struct Restore<'a, T: Traffic, S: Store> {
    pub traffic: &'a T,
    pub ledger: &'a mut Ledger<S>,
    pub attachments: &'a dyn Attachments,
    pub clock: Clock,
}

impl<T: Traffic, S: Store> Restore<'_, T, S> {
    /// The on-call rollback, from `routes` just read: all traffic to `rb.stable`, the rollout
    /// aborted the moment the write is accepted, the split held until no claimed write can land,
    /// the net put away. Any way it falls short of all that is exit 4, saying where traffic is.
    pub async fn rollback(&mut self, routes: T::Routes, rb: Rollback) -> Result<Restored> {
        let started = tokio::time::Instant::now();
        let before = T::views(&routes);
        let mut audited = false;
        let mut accepted = self.traffic.accepted();
        let traffic = self.traffic;
        let write = settle(traffic, Some(routes), rb.stable, Percent::FULL, 30);
        tokio::pin!(write);
        let clock = self.clock;
        // Traffic first; the abort goes out as soon as the first write is accepted, beside the
        // service's propagation (Route53's GetChange) and the other writes — not after them — and
        // carries the rollback's line of the audit trail in the same request.
        let settled_first = match accepted.as_mut() {
            Some(accepted) => tokio::select! {
                biased;
                after = &mut write => Some(after),
                _ = accepted.changed() => None,
            },
            None => Some((&mut write).await),
        };
        let (after, aborted) = match settled_first {
            Some(after) => {
                let live = match &after {
                    Ok(views) => views.clone(),
                    Err(_) => read_views(traffic).await.unwrap_or(before.clone()),
                };
                let aborted = self.ledger.abort(rb.stable, &rb.reason, &live, ABORT_WITHIN, || clock.now_ms()).await;
                (after, aborted)
            }
            None => {
                let abort = self.ledger.abort_noted(
                    rb.stable,
                    &rb.reason,
                    &rb.planned,
                    ABORT_WITHIN,
                    || clock.now_ms(),
                    rb.entry.as_ref(),
                );
                let (after, aborted) = tokio::join!(write, abort);
                audited = rb.entry.is_some() && aborted.is_ok() && self.ledger.noted();
                (after, aborted)
            }
        };
        let stable = rb.stable;
        let after = match after {
            Ok(after) => after,
            Err(e) => {
                // What could be moved has been; the rollout is stopped all the same, so nothing
                // moves traffic toward the candidate again while a human looks.
                let live = read_views(traffic).await.unwrap_or(before.clone());
                let state = match aborted {
                    Ok(Some(_)) => "the rollout is marked aborted",
                    Ok(None) => "no rollout was recorded",
                    Err(_) => "the rollout state could NOT be updated: pause the schedule",
                };
                return Err(Error::SplitUnknown {
                    message: format!("could not put all traffic on {stable} ({state}): {e}\n{}", live_lines(&live)),
                });
            }
        };
        let (open, recorded) = match aborted {
            Ok(Some(open)) => (open, true),
            Ok(None) => (Vec::new(), false),
            Err(e) => {
                return Err(Error::SplitUnknown {
                    message: format!(
                        "traffic is back on {stable}, but the rollout state was NOT updated ({e}): a scheduled `advance` may move traffic again — pause the schedule, then run `cutover rollback` again"
                    ),
                });
            }
        };
        // Anything written to the state between the read and the abort (a rollout's claim, write
        // and record of a stage) may have moved traffic after this command's own write: read
        // again.
        let stale = self.ledger.state().is_some_and(|now| rb.read_version.is_none_or(|v| now.version > v + 1));
        let after = self.hold(stable, Percent::FULL, open, after, stale).await?;
        let elapsed = started.elapsed();
        if sole_side_of(&after) != Some(stable) {
            return Err(Error::SplitUnknown {
                message: format!("traffic did not stay on {stable}\n{}", live_lines(&after)),
            });
        }
        self.attachments.detach().await;
        Ok(Restored { routes: after, aborted: recorded, audited, elapsed })
    }

    /// After an abort: keeps every route at `percent` on `side` until no claimed write can still
    /// land — re-reads the claims (a run that finished its write releases them), and writes the
    /// split again whenever a write in flight landed over it. Returns the routes as last read.
    ///
    /// This is what makes `rollback` (and `set --force`) win: the rollout was aborted before this
    /// runs, so no new claim can be made, and every claim made before has a deadline. `stale`:
    /// the rollout state changed between the command's read and its abort — a rollout claimed,
    /// wrote and recorded a write meanwhile (its claim already released) — so `routes` is read
    /// again before it is trusted.
    pub async fn hold(
        &mut self,
        side: Side,
        percent: Percent,
        mut open: Vec<Claim>,
        mut routes: Vec<RouteView>,
        stale: bool,
    ) -> Result<Vec<RouteView>> {
        let clock = self.clock;
        let mut attempt = 0;
        let mut fresh = !stale;
        loop {
            let now = clock.now_ms();
            open.retain(|c| c.lands_by_ms() > now);
            if open.is_empty() && fresh && holds(&routes, side, percent) {
                return Ok(routes);
            }
            if !open.is_empty() {
                let until = open.iter().map(Claim::lands_by_ms).max().unwrap_or(now);
                tracing::info!(
                    claims = open.len(),
                    wait_ms = until.saturating_sub(now),
                    "a rollout's write may still land: holding the split until its claim passes"
                );
                tokio::time::sleep(Duration::from_millis(100).min(Duration::from_millis(until.saturating_sub(now))))
                    .await;
                // Claims released by a run whose write has ended need no more waiting.
                if let Ok(still) = self.ledger.open_claims(clock.now_ms()).await {
                    open.retain(|c| still.iter().any(|s| s.id == c.id));
                }
            }
            let read = match self.traffic.read().await {
                Ok(r) => r,
                Err(e) => {
                    if attempt > 20 {
                        return Err(Error::SplitUnknown {
                            message: format!(
                                "cannot read the routes to confirm the split: {e}\n{}",
                                live_lines(&routes)
                            ),
                        });
                    }
                    attempt += 1;
                    tokio::time::sleep(backoff(attempt)).await;
                    continue;
                }
            };
            routes = T::views(&read);
            fresh = true;
            if !holds(&routes, side, percent) {
                tracing::warn!("a write that was in flight landed after this one: writing the split again");
                // From the routes just read: a write waits on no second read.
                routes =
                    settle(self.traffic, Some(read), side, percent, 30).await.map_err(|e| Error::SplitUnknown {
                        message: format!("could not put the split back ({e})\n{}", live_lines(&routes)),
                    })?;
            }
        }
    }

    /// The rollout is over and traffic where it must be: the safety net comes off.
    pub async fn detach(&self) {
        self.attachments.detach().await;
    }
}

/// How long after a rollback clients took to leave `left`: polls `clients` every `poll` until
/// every countable route shows at most [`DRAINED_PERCENT`] of its requests on `left` since the
/// write (`written`), or `timeout` has passed since — then exit 4 with the last figures.
pub async fn drained<C: Clients>(
    clients: &C,
    left: Side,
    written: (tokio::time::Instant, SystemTime),
    poll: Duration,
    timeout: Duration,
) -> Result<(f64, Option<f64>)> {
    // `--wait-timeout` is bounded (a day); an instant past what the clock holds is never reached.
    let give_up = written.0.checked_add(timeout);
    loop {
        let last = match clients.shares_since(written.1).await {
            Ok(None) => "the minutes since the rollback are not published yet".to_string(),
            Ok(Some(counted)) => {
                let shares: Vec<(&String, Option<f64>)> =
                    counted.iter().map(|(name, s)| (name, s.map(|s| s.get(left)))).collect();
                if !shares.is_empty() && shares.iter().all(|(_, s)| s.is_some_and(|p| p <= DRAINED_PERCENT)) {
                    let observed = shares.iter().filter_map(|(_, s)| *s).reduce(f64::max);
                    return Ok((written.0.elapsed().as_secs_f64(), observed));
                }
                let last = shares
                    .iter()
                    .map(|(name, s)| match s {
                        Some(p) => format!("{name}: {left} {}% of requests", fmt_pct(*p)),
                        None => format!("{name}: no requests counted since the rollback"),
                    })
                    .collect::<Vec<_>>()
                    .join("; ");
                tracing::info!(observed = %last, "waiting for traffic to leave {left}");
                last
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot count requests this time; trying again");
                format!("request counts unreadable: {e}")
            }
        };
        if give_up.is_some_and(|g| tokio::time::Instant::now() + poll > g) {
            return Err(Error::SplitUnknown {
                message: format!(
                    "all traffic is configured on {}, but clients had not left {left} {} after the rollback ({last})\nhint: clients that cache DNS past its TTL, or long-lived connections, keep reaching {left}; look at its load balancer before scaling it down",
                    left.other(),
                    humantime::format_duration(Duration::from_secs(timeout.as_secs()))
                ),
            });
        }
        tokio::time::sleep(poll).await;
    }
}

/// Every route's split, read.
async fn read_views<T: Traffic>(traffic: &T) -> std::result::Result<Vec<RouteView>, TrafficError> {
    traffic.read().await.map(|r| T::views(&r))
}

/// Moves every route to `percent` on `side` and makes sure they stay there: reads (or starts from
/// `read`, routes just read), writes what is not there (without a compare: this write must win),
/// reads back, and goes on through throttling and 5xx for up to `attempts` rounds. Returns the
/// routes as read at the end.
pub async fn settle<T: Traffic>(
    traffic: &T,
    read: Option<T::Routes>,
    side: Side,
    percent: Percent,
    attempts: u32,
) -> Result<Vec<RouteView>> {
    let mut last: Option<String> = None;
    let mut read = read;
    for attempt in 0..attempts {
        if attempt > 0 {
            tokio::time::sleep(backoff(attempt - 1)).await;
        }
        let routes = match read.take() {
            Some(r) => r,
            None => match traffic.read().await {
                Ok(r) => r,
                Err(TrafficError::Failed(e)) => return Err(e),
                Err(e) => {
                    last = Some(e.to_string());
                    continue;
                }
            },
        };
        if holds(&T::views(&routes), side, percent) {
            return Ok(T::views(&routes));
        }
        match traffic.write(&routes, side, percent, WriteGuard::BLIND).await {
            Ok(after) if holds(&T::views(&after), side, percent) => return Ok(T::views(&after)),
            Ok(_) => last = Some("the routes changed again right after the write".into()),
            Err(TrafficError::Failed(e)) => return Err(e),
            Err(e) => last = Some(e.to_string()),
        }
    }
    Err(Error::Other(last.unwrap_or_else(|| "the routes would not settle".into())))
}

/// Whether every route gives `side` `percent` of the traffic.
pub fn holds(routes: &[RouteView], side: Side, percent: Percent) -> bool {
    if percent == Percent::FULL {
        return sole_side_of(routes) == Some(side) || routes.is_empty();
    }
    routes.iter().all(|r| r.weights == crate::weights::split(r.kind, side, percent))
}

/// Every route's split, one line each.
pub fn live_lines(routes: &[RouteView]) -> String {
    let mut s = String::from("live now:");
    for r in routes {
        s.push_str(&format!("\n  {} {}: {}", r.kind, r.name, r.weights));
    }
    s
}
