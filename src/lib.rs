//! cutover: moves production traffic between a blue and a green environment at the AWS layer —
//! weighted Route53 records and ALB forward-action weights — in staged, health-gated percentages.
//!
//! The binary is a thin shell around [`app::run`]. [`rollout`] is the core: it knows no SDK and
//! no clap, and every other module points down toward it — the splitters, gates and state table
//! implement its ports, the commands drive it, the reports render its events.

pub mod app;
pub mod aws;
pub mod cli;
pub mod commands;
pub mod discover;
pub mod error;
pub mod exit;
pub mod gates;
pub mod judge_stats;
pub mod lambda;
pub mod model;
pub mod notify;
pub mod observe;
pub mod policy;
pub mod profile;
pub mod report;
pub mod rollout;
pub mod safety_net;
pub mod settings;
pub mod sides;
pub mod splitter;
pub mod state;
pub mod weights;
