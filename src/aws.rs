//! AWS SDK configuration from the standard chain.
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

/// Attempts per call, first one included.
pub const MAX_ATTEMPTS: u32 = 8;

/// Loads the shared SDK configuration. `profile_region` is the cutover profile's `region`.
pub async fn load(profile_region: Option<&str>) -> SdkConfig {
    // No instance-metadata lookup for the region: off EC2 it only costs seconds of timeouts, and on
    // CodeBuild/ECS/EKS the region is in the environment.
    let region = RegionProviderChain::first_try(EnvironmentVariableRegionProvider::new())
        .or_else(ProfileFileRegionProvider::builder().build())
        .or_else(profile_region.map(|r| Region::new(r.to_string())))
        .or_else(Region::from_static("us-east-1"));
    aws_config::defaults(BehaviorVersion::latest())
        .region(region)
        .retry_config(
            RetryConfig::standard()
                .with_max_attempts(MAX_ATTEMPTS)
                .with_initial_backoff(Duration::from_millis(200))
                .with_max_backoff(Duration::from_secs(10)),
        )
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(3))
                .operation_attempt_timeout(Duration::from_secs(20))
                .operation_timeout(Duration::from_secs(120))
                .build(),
        )
        .load()
        .await
}
