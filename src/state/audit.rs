//! The audit trail: an append-only list of the rollout's transitions, kept beside the state item.
//! It is a sink of the rollout's events — every event that is a transition (started, stage,
//! rolled-back, paused, completed, rollback, set, …) becomes one entry — so it says exactly what
//! the run said. Entries are written in the background, in order; a failed append is logged and
//! never stops anything.

use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::{DynamoStore, Identity};
use crate::rollout::events::{Event, Sink};
use crate::rollout::ledger::{RouteWeights, fmt_ms, new_id};

/// One line of the audit trail.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AuditEntry {
    /// Milliseconds since the Unix epoch.
    pub at_ms: u64,
    pub at: String,
    pub actor: String,
    pub action: String,
    pub before: Vec<RouteWeights>,
    pub after: Vec<RouteWeights>,
    pub why: Option<String>,
    pub stage: Option<usize>,
    /// Order among the entries of one process within one millisecond.
    #[serde(default)]
    pub seq: u32,
}

impl AuditEntry {
    /// The entry's sort key: newest last by time, then by its order in the process.
    pub fn sort_key(&self) -> String {
        format!("EVENT#{:013}#{:06}#{}", self.at_ms, self.seq, &new_id()[..8])
    }
}

/// Turns transitions into audit entries and appends them in the background.
pub struct AuditSink {
    tx: mpsc::UnboundedSender<AuditEntry>,
    seq: u32,
}

impl AuditSink {
    /// The sink, and the task appending what it is given; the task ends once the sink is dropped
    /// and everything is written.
    pub fn spawn(store: DynamoStore, identity: Identity) -> (AuditSink, JoinHandle<()>) {
        let (tx, mut rx) = mpsc::unbounded_channel::<AuditEntry>();
        let task = tokio::spawn(async move {
            while let Some(mut entry) = rx.recv().await {
                entry.actor = identity.actor().await;
                if let Err(e) = store.append(&entry).await {
                    tracing::warn!(error = %e, action = %entry.action, "could not append to the audit trail");
                }
            }
        });
        (AuditSink { tx, seq: 0 }, task)
    }
}

impl AuditEntry {
    /// The entry of `event`, if it is a transition; `actor` is filled in by whoever writes it.
    pub fn of(event: &Event, seq: u32) -> Option<AuditEntry> {
        let t = event.transition()?;
        let at_ms = crate::rollout::ports::Clock::new().now_ms();
        Some(AuditEntry {
            at_ms,
            at: fmt_ms(at_ms),
            actor: String::new(),
            action: t.action.to_string(),
            before: RouteWeights::of(t.before),
            after: RouteWeights::of(t.after),
            why: t.why,
            stage: t.stage,
            seq,
        })
    }
}

impl Sink for AuditSink {
    fn event(&mut self, event: &Event) {
        self.seq += 1;
        if let Some(entry) = AuditEntry::of(event, self.seq) {
            let _ = self.tx.send(entry);
        }
    }
}
