//! Shared rollout state in DynamoDB (`[state] table`): the state item the ledger
//! ([`crate::rollout::ledger`]) writes, and the append-only audit trail, which is a sink of the
//! rollout's events. Several machines (a pipeline, a scheduler, an on-call laptop) drive one
//! rollout through it without fighting.

pub mod audit;
pub mod dynamo;
pub mod identity;
pub mod local_lock;

pub use crate::rollout::record::AuditEntry;
pub use audit::AuditSink;
pub use dynamo::{DynamoStore, ProfileId, SeenRollout};
pub use identity::{Identity, account};
pub use local_lock::LocalLock;

/// `[state]`: the table, and how long a run's lease lasts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StateConfig {
    pub table: String,
    /// How long a run's lease lasts without renewal (a run renews it while baking).
    pub lease: std::time::Duration,
}
