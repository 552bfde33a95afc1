//! The rollout core: no SDK, no clap. It decides and records; the splitters, gates and state
//! table it talks to are behind [`ports`].
//!
//! - [`position`]: where the live split stands against the stages (including the positions a
//!   cut-short write leaves).
//! - [`decide`]: the one state machine, shared by `rollout` and `advance`.
//! - [`record`]: the state item and the audit trail's lines, as stored.
//! - [`ledger`]: the one writer of the rollout state — lease, claims, transitions.
//! - [`open`]: where a run starts from; refusals write nothing.
//! - [`engine`]: the continuous run (`rollout`) and the actions every run shares.
//! - [`restore`]: the rollback protocol that `rollback` and `set --force` run.
//! - [`scheduled`]: one `advance` step.
//! - [`events`], [`outcome`]: what a run tells, and how it ends.

pub mod clock;
pub mod decide;
pub mod engine;
pub mod events;
pub mod ledger;
pub mod open;
pub mod outcome;
pub mod ports;
pub mod position;
pub mod record;
pub mod restore;
pub mod scheduled;

#[cfg(test)]
mod tests;
