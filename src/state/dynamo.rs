//! Shared rollout state in DynamoDB (`[state] table`): per profile, the stable side, the
//! candidate, the stage reached and when, the status, a version, a lease — and an append-only
//! audit trail. Several machines (a pipeline, a scheduler, an on-call laptop) drive one rollout
//! through it without fighting.
//!
//! Table layout (one table serves many profiles): partition key `pk` (S) = profile name, sort key
//! `sk` (S) = `STATE` for the state item, `EVENT#<time>#<id>` for audit entries. Every write of the
//! state item is conditional on its `version` (or on its absence when created), so two writers can
//! never both succeed from the same read.

use std::collections::HashMap;
use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_config::SdkConfig;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType, TableStatus,
};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::split::{Percent, Side, Weights};
use crate::splitter::RouteView;

/// Where a rollout stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Progressing,
    Paused,
    Aborted,
    Completed,
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Status::Progressing => "progressing",
            Status::Paused => "paused",
            Status::Aborted => "aborted",
            Status::Completed => "completed",
        })
    }
}

/// One route's weights as last written by cutover.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouteWeights {
    pub name: String,
    pub blue: u32,
    pub green: u32,
}

impl RouteWeights {
    pub fn of(routes: &[RouteView]) -> Vec<RouteWeights> {
        routes
            .iter()
            .map(|r| RouteWeights { name: r.name.clone(), blue: r.weights.blue, green: r.weights.green })
            .collect()
    }

    pub fn weights(&self) -> Weights {
        Weights::new(self.blue, self.green)
    }
}

/// Who holds the rollout, until when.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    pub holder: String,
    /// Milliseconds since the Unix epoch.
    pub expires_ms: u64,
}

/// The state item of one profile.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RolloutState {
    pub version: u64,
    pub stable: Side,
    pub candidate: Side,
    pub status: Status,
    /// 0 before the first shift; 1-based stage index after.
    pub stage: usize,
    pub stages: Vec<Percent>,
    /// The candidate's share as last written.
    pub percent: Percent,
    /// The weights last written, per route.
    pub weights: Vec<RouteWeights>,
    pub stage_reached_ms: u64,
    pub started_ms: u64,
    pub updated_ms: u64,
    pub lease: Option<Lease>,
    pub reason: Option<String>,
}

impl RolloutState {
    pub fn lease_held_by_other(&self, me: &str, now: u64) -> Option<&Lease> {
        self.lease.as_ref().filter(|l| l.holder != me && l.expires_ms > now)
    }
}

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
}

pub fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

pub fn fmt_ms(ms: u64) -> String {
    humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_millis(ms)).to_string()
}

/// The state table of one profile.
#[derive(Clone)]
pub struct StateStore {
    client: Client,
    pub table: String,
    profile: String,
}

const STATE_SK: &str = "STATE";

impl StateStore {
    pub fn new(sdk: &SdkConfig, table: &str, profile: &str) -> StateStore {
        // Few, quick retries: an unreachable state table must not hold up a rollback.
        let mut builder = aws_sdk_dynamodb::config::Builder::from(sdk)
            .retry_config(aws_config::retry::RetryConfig::standard().with_max_attempts(3));
        if let Some(recorder) = crate::aws::RecordCalls::from_env() {
            builder = builder.interceptor(recorder);
        }
        let config = builder.build();
        StateStore { client: Client::from_conf(config), table: table.to_string(), profile: profile.to_string() }
    }

    /// Creates the table (on-demand capacity) unless it exists; waits until it is ACTIVE.
    /// Returns whether it was created.
    pub async fn init(&self) -> Result<bool> {
        let created = match self
            .client
            .create_table()
            .table_name(&self.table)
            .billing_mode(BillingMode::PayPerRequest)
            .attribute_definitions(
                AttributeDefinition::builder()
                    .attribute_name("pk")
                    .attribute_type(ScalarAttributeType::S)
                    .build()
                    .map_err(build)?,
            )
            .attribute_definitions(
                AttributeDefinition::builder()
                    .attribute_name("sk")
                    .attribute_type(ScalarAttributeType::S)
                    .build()
                    .map_err(build)?,
            )
            .key_schema(
                KeySchemaElement::builder().attribute_name("pk").key_type(KeyType::Hash).build().map_err(build)?,
            )
            .key_schema(
                KeySchemaElement::builder().attribute_name("sk").key_type(KeyType::Range).build().map_err(build)?,
            )
            .send()
            .await
        {
            Ok(_) => true,
            Err(e) if e.as_service_error().is_some_and(|s| s.is_resource_in_use_exception()) => false,
            Err(e) => return Err(Error::aws(format!("CreateTable {}", self.table), e)),
        };
        for _ in 0..120 {
            let out = self
                .client
                .describe_table()
                .table_name(&self.table)
                .send()
                .await
                .map_err(|e| Error::aws(format!("DescribeTable {}", self.table), e))?;
            if out.table.and_then(|t| t.table_status) == Some(TableStatus::Active) {
                return Ok(created);
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        Err(Error::Other(format!("table {} is not ACTIVE after 2 minutes", self.table)))
    }

    /// Whether the table exists.
    pub async fn exists(&self) -> Result<bool> {
        match self.client.describe_table().table_name(&self.table).send().await {
            Ok(_) => Ok(true),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_resource_not_found_exception()) => Ok(false),
            Err(e) => Err(Error::aws(format!("DescribeTable {}", self.table), e)),
        }
    }

    /// The state item, read strongly consistent; `None` when no rollout was ever recorded.
    pub async fn load(&self) -> Result<Option<RolloutState>> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(self.profile.clone()))
            .key("sk", AttributeValue::S(STATE_SK.into()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| {
                if e.as_service_error().is_some_and(|s| s.is_resource_not_found_exception()) {
                    Error::refused_hint(
                        format!("state table `{}` not found", self.table),
                        "create it: `cutover state init`",
                    )
                } else {
                    Error::aws(format!("GetItem on {}", self.table), e)
                }
            })?;
        let Some(item) = out.item else { return Ok(None) };
        let doc = match item.get("doc") {
            Some(AttributeValue::S(s)) => s,
            _ => return Err(Error::Other(format!("state item of `{}` in {} has no doc", self.profile, self.table))),
        };
        let state: RolloutState = serde_json::from_str(doc).map_err(|e| {
            Error::Other(format!("state item of `{}` in {} is unreadable: {e}", self.profile, self.table))
        })?;
        Ok(Some(state))
    }

    /// Writes the state item if its version is still `expected` (`None`: if there is none yet).
    /// The new item's version is `expected + 1`. A lost race is [`Error::Locked`] (exit 5).
    pub async fn save(&self, state: &mut RolloutState, expected: Option<u64>) -> Result<()> {
        state.version = expected.map(|v| v + 1).unwrap_or(1);
        state.updated_ms = now_ms();
        let doc = serde_json::to_string(state).map_err(|e| Error::Other(format!("encoding the state: {e}")))?;
        let mut req = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("pk", AttributeValue::S(self.profile.clone()))
            .item("sk", AttributeValue::S(STATE_SK.into()))
            .item("version", AttributeValue::N(state.version.to_string()))
            .item("status", AttributeValue::S(state.status.to_string()))
            .item("doc", AttributeValue::S(doc));
        req = match expected {
            Some(v) => req
                .condition_expression("version = :v")
                .expression_attribute_values(":v", AttributeValue::N(v.to_string())),
            None => req.condition_expression("attribute_not_exists(pk)"),
        };
        req.send().await.map_err(|e| {
            if e.as_service_error().is_some_and(|s| s.is_conditional_check_failed_exception()) {
                Error::Locked {
                    message: format!(
                        "the rollout state of `{}` changed under this run (another run or a rollback wrote it)",
                        self.profile
                    ),
                }
            } else {
                Error::aws(format!("PutItem on {}", self.table), e)
            }
        })?;
        Ok(())
    }

    /// Appends one entry to the audit trail.
    pub async fn append(&self, entry: &AuditEntry) -> Result<()> {
        let doc = serde_json::to_string(entry).map_err(|e| Error::Other(format!("encoding an audit entry: {e}")))?;
        let sk = format!("EVENT#{:013}#{:08x}", entry.at_ms, rand_u32());
        self.client
            .put_item()
            .table_name(&self.table)
            .item("pk", AttributeValue::S(self.profile.clone()))
            .item("sk", AttributeValue::S(sk))
            .item("doc", AttributeValue::S(doc))
            .send()
            .await
            .map_err(|e| Error::aws(format!("PutItem (audit) on {}", self.table), e))?;
        Ok(())
    }

    /// Appends what `actor` did to the audit trail; a failure is logged, never raised (the
    /// traffic change it records has already happened).
    pub async fn record(
        &self,
        actor: &str,
        action: &str,
        before: &[RouteView],
        after: &[RouteView],
        why: Option<String>,
        stage: Option<usize>,
    ) {
        let at_ms = now_ms();
        let entry = AuditEntry {
            at_ms,
            at: fmt_ms(at_ms),
            actor: actor.to_string(),
            action: action.to_string(),
            before: RouteWeights::of(before),
            after: RouteWeights::of(after),
            why,
            stage,
        };
        if let Err(e) = self.append(&entry).await {
            tracing::warn!(error = %e, "could not append to the audit trail");
        }
    }

    /// The audit trail, newest first.
    pub async fn history(&self, limit: usize) -> Result<Vec<AuditEntry>> {
        let mut entries = Vec::new();
        let mut start: Option<HashMap<String, AttributeValue>> = None;
        loop {
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("pk = :p AND begins_with(sk, :e)")
                .expression_attribute_values(":p", AttributeValue::S(self.profile.clone()))
                .expression_attribute_values(":e", AttributeValue::S("EVENT#".into()))
                .scan_index_forward(false)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| Error::aws(format!("Query on {}", self.table), e))?;
            for item in out.items.unwrap_or_default() {
                if let Some(AttributeValue::S(doc)) = item.get("doc")
                    && let Ok(e) = serde_json::from_str::<AuditEntry>(doc)
                {
                    entries.push(e);
                }
                if entries.len() >= limit {
                    return Ok(entries);
                }
            }
            match out.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => return Ok(entries),
            }
        }
    }
}

fn build(e: impl std::fmt::Display) -> Error {
    Error::Other(format!("building a DynamoDB request: {e}"))
}

/// A little randomness for ids, without a dependency: time and process mixed.
pub fn rand_u32() -> u32 {
    let n = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
    let p = std::process::id();
    let mut x = (n as u64) ^ ((p as u64) << 32) ^ 0x9e37_79b9_7f4a_7c15;
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    x as u32
}
