//! The SDK configuration of a run, from the standard chain.
//!
//! Credentials, region and endpoint come from the environment and `~/.aws` as every AWS tool reads
//! them (`AWS_PROFILE`, `AWS_REGION`, `AWS_ENDPOINT_URL`, …); the profile's `region` applies when
//! none is set there. Retries are the SDK's standard mode: jittered exponential backoff on
//! throttling (`Throttling`, `PriorRequestNotComplete`, `Rate exceeded`) and transient 5xx.
//! Not adaptive mode: its client-side rate limiter, after a single throttle, held a one-change
//! `set` for 20 s where standard mode took 1.3 s (tests/it/route53.rs, throttling test) — too slow
//! for a rollback.

use std::time::Duration;

use aws_config::environment::EnvironmentVariableRegionProvider;
use aws_config::meta::region::RegionProviderChain;
use aws_config::profile::ProfileFileRegionProvider;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};

use super::http::http_client;

/// Attempts per call, first one included.
pub const MAX_ATTEMPTS: u32 = 8;
/// How long a connection may take to open.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// How long one attempt of a call may take.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(20);

/// Loads the shared SDK configuration. `profile_region` is the cutover profile's `region`, used
/// when the environment names none; with neither, the command is refused — a default region
/// would aim the command at resources that are not there (or at the wrong ones).
/// `--region`: the region every command's calls go to, before AWS_REGION, ~/.aws/config and the
/// profile's `region` (the AWS CLI's precedence). Set once, from the command line.
static REGION_FLAG: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// Takes `--region` for every AWS configuration this process loads.
pub fn use_region(region: &str) {
    let _ = REGION_FLAG.set(region.to_string());
}

pub async fn load(profile_region: Option<&str>, profile: Option<&std::path::Path>) -> crate::error::Result<SdkConfig> {
    // No instance-metadata lookup for the region: off EC2 it only costs seconds of timeouts, and on
    // CodeBuild/ECS/EKS the region is in the environment.
    let region = RegionProviderChain::first_try(REGION_FLAG.get().map(|r| Region::new(r.clone())))
        .or_else(EnvironmentVariableRegionProvider::new())
        .or_else(ProfileFileRegionProvider::builder().build())
        .or_else(profile_region.map(|r| Region::new(r.to_string())));
    let sdk = aws_config::defaults(BehaviorVersion::latest())
        .region(region)
        .retry_config(
            RetryConfig::standard()
                .with_max_attempts(MAX_ATTEMPTS)
                .with_initial_backoff(Duration::from_millis(200))
                .with_max_backoff(Duration::from_secs(10)),
        )
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(CONNECT_TIMEOUT)
                .operation_attempt_timeout(ATTEMPT_TIMEOUT)
                .operation_timeout(Duration::from_secs(120))
                .build(),
        )
        .http_client(http_client())
        .load()
        .await;
    if let Some(region) = sdk.region() {
        super::regions::set(region.as_ref());
    }
    if sdk.region().is_none() {
        let profile = match profile {
            Some(p) => format!("the profile {} has no `region`, and ", p.display()),
            None => String::new(),
        };
        return Err(crate::error::Error::refused_hint(
            format!(
                "no AWS region: {profile}none is set in the environment (AWS_REGION, AWS_DEFAULT_REGION) or in ~/.aws/config for AWS_PROFILE"
            ),
            "add `region = \"us-west-2\"` to the profile, or `export AWS_REGION=us-west-2`",
        ));
    }
    Ok(sdk)
}

/// Timeouts that end a call at `deadline` — no attempt of it is sent later — or `None` when the
/// deadline has passed and the call must not be sent at all. The connect timeout stays the
/// client's (the operation timeout bounds a connect as well): the HTTP client keeps one
/// connection pool per connect timeout, and a write with a timeout of its own would otherwise
/// open a new connection (a TLS handshake on AWS) instead of reusing the read's.
pub fn timeouts_until(deadline: tokio::time::Instant) -> Option<TimeoutConfig> {
    let left = deadline.saturating_duration_since(tokio::time::Instant::now());
    if left.is_zero() {
        return None;
    }
    Some(
        TimeoutConfig::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .operation_attempt_timeout(ATTEMPT_TIMEOUT.min(left))
            .operation_timeout(left)
            .build(),
    )
}
