//! The state table in DynamoDB.
//!
//! Layout (one table serves many profiles): partition key `pk` (S) = profile name, sort key `sk`
//! (S) = `STATE` for the state item, `EVENT#<ms>#<seq>#<id>` for audit entries. The state item
//! keeps its version in `version` (N), its status in `status` (S) and the whole state as JSON in
//! `doc`; every write of it is conditional on `version` (or on its absence when created).
//!
//! The client retries like every other AWS client of cutover (standard mode, jittered backoff);
//! what still fails is reported as unavailable, and the rollout core tries again at its next poll.

use std::collections::HashMap;
use std::time::Duration;

use aws_config::SdkConfig;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType, TableStatus,
};

use crate::error::{Error, Result};
use crate::rollout::ledger::RolloutState;
use crate::rollout::ports::{Store, StoreError};
use crate::rollout::record::AuditEntry;

const STATE_SK: &str = "STATE";

/// The state table of one profile.
#[derive(Clone)]
pub struct DynamoStore {
    client: Client,
    pub table: String,
    profile: String,
}

fn build(e: impl std::fmt::Display) -> Error {
    Error::Other(format!("building a DynamoDB request: {e}"))
}

/// A failed call, classified for the rollout core.
fn store_error(e: Error) -> StoreError {
    if e.is_transient() { StoreError::Unavailable(e.to_string()) } else { StoreError::Failed(e) }
}

impl DynamoStore {
    pub fn new(sdk: &SdkConfig, table: &str, profile: &str) -> DynamoStore {
        DynamoStore {
            client: crate::client!(aws_sdk_dynamodb, sdk),
            table: table.to_string(),
            profile: profile.to_string(),
        }
    }

    /// The same store, its calls tried at most `attempts` times (a rollback must not wait long
    /// on the state table: it moves traffic first, and its abort loop tries again anyway).
    pub fn with_attempts(mut self, attempts: u32) -> DynamoStore {
        let config = self
            .client
            .config()
            .to_builder()
            .retry_config(aws_config::retry::RetryConfig::standard().with_max_attempts(attempts))
            .build();
        self.client = Client::from_conf(config);
        self
    }

    fn missing_table(&self) -> Error {
        Error::refused_hint(format!("state table `{}` not found", self.table), "create it: `cutover state init`")
    }

    /// A failed call on the table: its absence said as such (exit 2, with how to create it).
    fn failed<E>(&self, action: &str, e: crate::aws::SdkError<E>) -> Error
    where
        E: std::error::Error + aws_smithy_types::error::metadata::ProvideErrorMetadata + Send + Sync + 'static,
    {
        if e.as_service_error().and_then(|s| s.code()) == Some("ResourceNotFoundException") {
            self.missing_table()
        } else {
            crate::aws::error(format!("{action} on {}", self.table), e)
        }
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
            Err(e) => return Err(crate::aws::error(format!("CreateTable {}", self.table), e)),
        };
        for _ in 0..120 {
            let out = self
                .client
                .describe_table()
                .table_name(&self.table)
                .send()
                .await
                .map_err(|e| crate::aws::error(format!("DescribeTable {}", self.table), e))?;
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
            Err(e) => Err(crate::aws::error(format!("DescribeTable {}", self.table), e)),
        }
    }

    async fn get(&self) -> Result<Option<RolloutState>> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(self.profile.clone()))
            .key("sk", AttributeValue::S(STATE_SK.into()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| self.failed("GetItem", e))?;
        let Some(item) = out.item else { return Ok(None) };
        let doc = match item.get("doc") {
            Some(AttributeValue::S(s)) => s,
            _ => return Err(Error::Other(format!("state item of `{}` in {} has no doc", self.profile, self.table))),
        };
        let state: RolloutState = serde_json::from_str(doc).map_err(|e| {
            Error::Other(format!(
                "state item of `{}` in {} is unreadable ({e}); it may have been written by another version of cutover",
                self.profile, self.table
            ))
        })?;
        Ok(Some(state))
    }

    /// The state item's attributes, and the condition that it is still at version `expected`
    /// (or that there is none): its expression and values.
    fn state_item(&self, state: &RolloutState, expected: Option<u64>) -> Result<StateItem, StoreError> {
        let doc = serde_json::to_string(state)
            .map_err(|e| StoreError::Failed(Error::Other(format!("encoding the state: {e}"))))?;
        let item = HashMap::from([
            ("pk".to_string(), AttributeValue::S(self.profile.clone())),
            ("sk".to_string(), AttributeValue::S(STATE_SK.into())),
            ("version".to_string(), AttributeValue::N(state.version.to_string())),
            ("status".to_string(), AttributeValue::S(state.status.to_string())),
            ("doc".to_string(), AttributeValue::S(doc)),
        ]);
        Ok(match expected {
            Some(v) => StateItem {
                item,
                condition: "version = :v",
                values: Some(HashMap::from([(":v".to_string(), AttributeValue::N(v.to_string()))])),
            },
            None => StateItem { item, condition: "attribute_not_exists(pk)", values: None },
        })
    }

    async fn put(&self, state: &RolloutState, expected: Option<u64>) -> Result<(), StoreError> {
        let s = self.state_item(state, expected)?;
        let req = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(s.item))
            .condition_expression(s.condition)
            .set_expression_attribute_values(s.values);
        match req.send().await {
            Ok(_) => Ok(()),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_conditional_check_failed_exception()) => {
                Err(StoreError::Conflict)
            }
            Err(e) => Err(store_error(self.failed("PutItem", e))),
        }
    }

    /// The state item written conditionally and an audit entry appended, in one
    /// TransactWriteItems: a rollback's abort and its line in the trail land together.
    async fn put_with_entry(
        &self,
        state: &RolloutState,
        expected: Option<u64>,
        entry: &AuditEntry,
    ) -> Result<(), StoreError> {
        use aws_sdk_dynamodb::types::{Put, TransactWriteItem};
        let failed = |e: String| StoreError::Failed(Error::Other(e));
        let s = self.state_item(state, expected)?;
        let entry_doc = serde_json::to_string(entry).map_err(|e| failed(format!("encoding an audit entry: {e}")))?;
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(s.item))
            .condition_expression(s.condition)
            .set_expression_attribute_values(s.values);
        let line = Put::builder()
            .table_name(&self.table)
            .item("pk", AttributeValue::S(self.profile.clone()))
            .item("sk", AttributeValue::S(sort_key(entry)))
            .item("doc", AttributeValue::S(entry_doc));
        let build = |e: aws_sdk_dynamodb::error::BuildError| failed(format!("building a state write: {e}"));
        let sent = self
            .client
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().put(put.build().map_err(build)?).build())
            .transact_items(TransactWriteItem::builder().put(line.build().map_err(build)?).build())
            .send()
            .await;
        match sent {
            Ok(_) => Ok(()),
            // The item's condition failed: someone wrote it since it was read.
            Err(e)
                if e.as_service_error().is_some_and(|s| {
                    matches!(
                        s,
                        aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError::TransactionCanceledException(c)
                            if c.cancellation_reasons().first().is_some_and(|r| r.code() == Some("ConditionalCheckFailed"))
                    )
                }) =>
            {
                Err(StoreError::Conflict)
            }
            Err(e) => Err(store_error(self.failed("TransactWriteItems", e))),
        }
    }

    /// Appends one entry to the audit trail.
    pub async fn append(&self, entry: &AuditEntry) -> Result<()> {
        let doc = serde_json::to_string(entry).map_err(|e| Error::Other(format!("encoding an audit entry: {e}")))?;
        self.client
            .put_item()
            .table_name(&self.table)
            .item("pk", AttributeValue::S(self.profile.clone()))
            .item("sk", AttributeValue::S(sort_key(entry)))
            .item("doc", AttributeValue::S(doc))
            .send()
            .await
            .map_err(|e| crate::aws::error(format!("PutItem (audit) on {}", self.table), e))?;
        Ok(())
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
                .map_err(|e| self.failed("Query", e))?;
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

/// A conditional write of the state item.
struct StateItem {
    item: HashMap<String, AttributeValue>,
    condition: &'static str,
    values: Option<HashMap<String, AttributeValue>>,
}

impl Store for DynamoStore {
    async fn load(&self) -> Result<Option<RolloutState>, StoreError> {
        self.get().await.map_err(store_error)
    }

    async fn save(&self, state: &RolloutState, expected: Option<u64>) -> Result<(), StoreError> {
        self.put(state, expected).await
    }

    async fn save_noted(
        &self,
        state: &RolloutState,
        expected: Option<u64>,
        entry: Option<&AuditEntry>,
    ) -> Result<(), StoreError> {
        match entry {
            None => self.put(state, expected).await,
            Some(entry) => self.put_with_entry(state, expected, entry).await,
        }
    }
}

/// An entry's sort key: newest last by time, then by its order in the process.
fn sort_key(entry: &AuditEntry) -> String {
    format!("EVENT#{:013}#{:06}#{}", entry.at_ms, entry.seq, &crate::rollout::record::new_id()[..8])
}
