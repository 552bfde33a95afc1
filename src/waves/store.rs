//! The train's state in the `[state]` table the rollouts use: one item per wave profile,
//! partition key the train's name, sort key `TRAIN`, the state as JSON in `doc`. Every write is
//! conditional on the version read (or on there being no item), so two `advance` ticks cannot
//! both start the next wave: the second one's write fails and it stops (exit 5). The train's
//! audit lines go into the same partition, through the rollouts' own audit writer.

use std::collections::HashMap;

use aws_config::SdkConfig;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::AttributeValue;

use super::TrainState;
use crate::error::{Error, Result};
use crate::state::{AuditEntry, DynamoStore, ProfileId};

const TRAIN_SK: &str = "TRAIN";

/// The train's state item and audit trail.
#[derive(Clone)]
pub struct TrainStore {
    client: Client,
    pub table: String,
    name: String,
    /// The rollouts' audit writer, over the train's partition.
    audit: DynamoStore,
}

/// A write of the train's state that found another version: someone else wrote it since it was read.
#[derive(Debug)]
pub enum Saved {
    Written,
    Conflict,
}

impl TrainStore {
    pub fn new(sdk: &SdkConfig, table: &str, name: &str, source: &str) -> TrainStore {
        let id = ProfileId { name: name.to_string(), source: source.to_string(), routes: Vec::new() };
        TrainStore {
            client: crate::client!(aws_sdk_dynamodb, sdk),
            table: table.to_string(),
            name: name.to_string(),
            audit: DynamoStore::new(sdk, table, id),
        }
    }

    fn failed<E>(&self, action: &str, e: crate::aws::SdkError<E>) -> Error
    where
        E: std::error::Error + aws_smithy_types::error::metadata::ProvideErrorMetadata + Send + Sync + 'static,
    {
        if e.as_service_error().and_then(|s| s.code()) == Some("ResourceNotFoundException") {
            Error::refused_hint(format!("state table `{}` not found", self.table), "create it: `cutover state init`")
        } else {
            crate::aws::error(format!("{action} on {}", self.table), e)
        }
    }

    /// The train's state, read consistently; `None` before its first `advance`.
    pub async fn load(&self) -> Result<Option<TrainState>> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(self.name.clone()))
            .key("sk", AttributeValue::S(TRAIN_SK.into()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| self.failed("GetItem", e))?;
        let Some(item) = out.item else { return Ok(None) };
        let Some(AttributeValue::S(doc)) = item.get("doc") else {
            return Err(Error::Other(format!("train item of `{}` in {} has no doc", self.name, self.table)));
        };
        serde_json::from_str(doc).map(Some).map_err(|e| {
            Error::Other(format!(
                "train item of `{}` in {} is unreadable ({e}); it may have been written by another version of cutover",
                self.name, self.table
            ))
        })
    }

    /// Writes `state` as the next version of the one read (`expected`; `None`: there was none).
    pub async fn save(&self, state: &mut TrainState, expected: Option<u64>, now_ms: u64) -> Result<Saved> {
        state.version = expected.map_or(1, |v| v + 1);
        state.updated_ms = now_ms;
        let doc = serde_json::to_string(&*state).map_err(|e| Error::Other(format!("encoding the train: {e}")))?;
        let item = HashMap::from([
            ("pk".to_string(), AttributeValue::S(self.name.clone())),
            ("sk".to_string(), AttributeValue::S(TRAIN_SK.into())),
            ("version".to_string(), AttributeValue::N(state.version.to_string())),
            ("status".to_string(), AttributeValue::S(state.status.to_string())),
            ("doc".to_string(), AttributeValue::S(doc)),
        ]);
        let req = self.client.put_item().table_name(&self.table).set_item(Some(item));
        let req = match expected {
            Some(v) => req
                .condition_expression("version = :v")
                .expression_attribute_values(":v", AttributeValue::N(v.to_string())),
            None => req.condition_expression("attribute_not_exists(pk)"),
        };
        match req.send().await {
            Ok(_) => Ok(Saved::Written),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_conditional_check_failed_exception()) => {
                Ok(Saved::Conflict)
            }
            Err(e) => Err(self.failed("PutItem", e)),
        }
    }

    /// Appends a line to the train's audit trail.
    pub async fn append(&self, entry: &AuditEntry) -> Result<()> {
        self.audit.append(entry).await
    }

    /// The train's audit trail, newest first.
    pub async fn history(&self, limit: usize) -> Result<Vec<AuditEntry>> {
        self.audit.history(limit).await
    }
}
