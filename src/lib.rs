//! cutover: moves production traffic between a blue and a green environment at the AWS layer —
//! weighted Route53 records and ALB forward-action weights — in staged, health-gated percentages.
//!
//! The binary is a thin shell around [`app::run`]. [`rollout`] is the core (the `cutover-core`
//! crate, with [`model`], [`weights`], [`error`] and [`exit`]): it knows no SDK and no clap, and
//! every module here points down toward it — the splitters, gates and state table implement its
//! ports, the commands drive it, the reports render its events.

#![forbid(unsafe_code)]

pub mod app;
pub mod aws;
pub mod cli;
pub mod commands;
pub mod discover;
pub mod gates;
pub mod iam;
pub mod judge_stats;
pub mod lambda;
pub mod man;
pub mod notify;
pub mod observe;
pub mod policy;
pub mod profile;
#[cfg(test)]
mod props;
#[cfg(test)]
pub(crate) mod replay;
pub mod report;
pub mod safety_net;
pub mod settings;
pub mod sides;
pub mod splitter;
pub mod state;
pub mod terminal;
pub mod waves;

pub use cutover_core::{error, exit, model, rollout, weights};
