//! The audit trail: an append-only list of the rollout's transitions, kept beside the state item.
//! It is a sink of the rollout's events — every event that is a transition (started, stage,
//! rolled-back, paused, completed, rollback, set, …) becomes one entry — so it says exactly what
//! the run said. Entries are written in the background, in order; a failed append is logged and
//! never stops anything.

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::dynamo::DynamoStore;
use super::identity::Identity;
use crate::rollout::events::{Event, Sink};
use crate::rollout::record::AuditEntry;

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
                entry.actor_note = super::identity::actor_note();
                if let Err(e) = store.append(&entry).await {
                    tracing::warn!(error = %e, action = %entry.action, "could not append to the audit trail");
                }
            }
        });
        (AuditSink { tx, seq: 0 }, task)
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
