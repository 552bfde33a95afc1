//! cutover: moves production traffic between a blue and a green environment at the AWS layer —
//! weighted Route53 records and ALB forward-action weights — in staged, health-gated percentages.
//!
//! The binary is a thin shell around [`app::run`]. The core (profiles, splitters, weights) knows
//! nothing of the command line; `cli` holds the clap definitions and `app` turns them into actions.

pub mod app;
pub mod aws;
pub mod cli;
pub mod coord;
pub mod discover;
pub mod engine;
pub mod error;
pub mod events;
pub mod exit;
pub mod gates;
pub mod notify;
pub mod ops;
pub mod policy;
pub mod profile;
pub mod report;
pub mod sides;
pub mod split;
pub mod splitter;
pub mod state;
