//! The profile's own sections as serde reads them — everything but the routes and the gates,
//! which their kinds read ([`crate::splitter::Routes`], [`crate::gates::Gate`]). Unknown keys are
//! errors.

use serde::Deserialize;

use crate::model::Percent;
use crate::rollout::decide::OnFailure;
use crate::sides::EksSide;

/// The top-level keys of a profile that are neither a splitter kind's table nor `gate`.
pub const KEYS: &[&str] = &["name", "description", "region", "sides", "rollout", "observe", "state", "notify"];

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawProfile {
    pub name: Option<String>,
    pub description: Option<String>,
    pub region: Option<String>,
    pub sides: Option<RawSides>,
    pub rollout: Option<RawRollout>,
    pub observe: Option<RawObserve>,
    pub state: Option<RawState>,
    pub notify: Option<RawNotify>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSides {
    pub blue: Option<RawSide>,
    pub green: Option<RawSide>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSide {
    pub eks: Option<EksSide>,
    pub role_arn: Option<String>,
    pub external_id: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRollout {
    pub stages: Option<Vec<Percent>>,
    pub bake: Option<String>,
    pub poll: Option<String>,
    pub failure_threshold: Option<i64>,
    pub on_failure: Option<OnFailure>,
    pub max_hold: Option<String>,
    pub safety_net: Option<bool>,
    pub dns_ttl: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawObserve {
    pub tolerance: Option<f64>,
    pub window: Option<String>,
    pub settle: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawState {
    pub table: String,
    pub lease: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawNotify {
    pub sns_topic_arn: Option<String>,
    pub webhook: Option<String>,
}
