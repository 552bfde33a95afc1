//! The state table in DynamoDB.
//!
//! Layout (one table serves many profiles): partition key `pk` (S) = profile name, sort key `sk`
//! (S) = `STATE` for the state item, `EVENT#<ms>#<seq>#<id>` for audit entries. The state item
//! keeps its version in `version` (N), its status in `status` (S) and the whole state as JSON in
//! `doc`; every write of it is conditional on `version` (or on its absence when created). It also
//! records which profile wrote it — `source` (S, where the profile was read) and `routes` (S, the
//! traffic it moves, a line each) — and a profile of the same name moving other traffic is refused
//! (exit 2): two files `p/base.toml` and `other/base.toml` never share a rollout. An audit entry is
//! only ever created (conditional on its sort key being new), never overwritten.
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

/// Which profile a state item belongs to: its name (the partition key), where it was read (a
/// path, `s3://…`), and what traffic it moves (its routes, as the profile names them).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProfileId {
    pub name: String,
    pub source: String,
    pub routes: Vec<String>,
}

/// A state item another profile of the same name wrote: the profile's identity is in question,
/// not the table (exit 2), and not even `rollback --to` may touch that rollout.
#[derive(Debug, thiserror::Error)]
#[error(
    "{message}\nhint: two profiles share a name (the file's stem by default): give one of them its own, `name = \"myapp-eu\"` at the top of the profile"
)]
pub struct ForeignState {
    message: String,
}

/// The state table of one profile.
#[derive(Clone)]
pub struct DynamoStore {
    client: Client,
    pub table: String,
    profile: String,
    id: ProfileId,
    seen: SeenRollout,
}

/// The rollout one command read or wrote (the state item's `id`), shared by every store the
/// command makes: its audit entries and its result (`"rollout_id"`) name it.
#[derive(Clone, Debug, Default)]
pub struct SeenRollout(std::sync::Arc<std::sync::Mutex<Option<Option<String>>>>);

impl SeenRollout {
    fn saw(&self, id: Option<&str>) {
        if let Ok(mut seen) = self.0.lock() {
            *seen = Some(id.map(String::from));
        }
    }

    /// `None` while the state was not read; `Some(None)` when no rollout is recorded.
    pub fn get(&self) -> Option<Option<String>> {
        self.0.lock().ok().and_then(|s| s.clone())
    }

    /// The rollout's id, once the state was read and holds one.
    pub fn id(&self) -> Option<String> {
        self.get().flatten()
    }
}

fn build(e: impl std::fmt::Display) -> Error {
    Error::Other(format!("building a DynamoDB request: {e}"))
}

/// A failed call, classified for the rollout core.
fn store_error(e: Error) -> StoreError {
    if e.is_transient() { StoreError::Unavailable(e.to_string()) } else { StoreError::Failed(e) }
}

impl DynamoStore {
    pub fn new(sdk: &SdkConfig, table: &str, id: ProfileId) -> DynamoStore {
        DynamoStore {
            client: crate::client!(aws_sdk_dynamodb, sdk),
            table: table.to_string(),
            profile: id.name.clone(),
            id,
            seen: SeenRollout::default(),
        }
    }

    /// The same store, telling `seen` which rollout it reads and writes.
    pub fn noting(mut self, seen: SeenRollout) -> DynamoStore {
        self.seen = seen;
        self
    }

    /// `entry`, naming the rollout it belongs to (`id`, or the one last read or written).
    fn stamped(&self, entry: &AuditEntry, id: Option<&str>) -> AuditEntry {
        let mut entry = entry.clone();
        if entry.rollout_id.is_none() {
            entry.rollout_id = id.map(String::from).or_else(|| self.seen.id());
        }
        entry
    }

    /// Refuses a state item another profile of the same name wrote (another source and other
    /// routes): its rollout is not this profile's to show, drive or abort. The same file edited
    /// mid-rollout (a route added, a zone given by id) is still its owner, and so is the same
    /// routes read from another place (a pipeline's fresh checkout, the copy in S3).
    fn check_owner(&self, item: &HashMap<String, AttributeValue>) -> Result<()> {
        let Some(AttributeValue::S(routes)) = item.get("routes") else { return Ok(()) };
        let theirs: Vec<&str> = routes.lines().collect();
        if theirs == self.id.routes.iter().map(String::as_str).collect::<Vec<_>>() {
            return Ok(());
        }
        let source = match item.get("source") {
            Some(AttributeValue::S(s)) => s.as_str(),
            _ => "another profile",
        };
        if source == self.id.source {
            return Ok(());
        }
        Err(Error::Profile(Box::new(ForeignState {
            message: format!(
                "the rollout state of `{}` in {} belongs to another profile of that name: {} (moving {}), not {} (moving {}); nothing was changed",
                self.profile,
                self.table,
                crate::terminal::one_line(source),
                crate::terminal::one_line(&theirs.join(", ")),
                self.id.source,
                self.id.routes.join(", "),
            ),
        })))
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
        Error::refused_hint(
            format!("state table `{}` of profile `{}` not found", self.table, self.profile),
            format!("create it: `cutover state init -p {}`", self.profile),
        )
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

    /// Checks the table answers for this profile, with a call every run's policy allows (a
    /// GetItem of the state item's key alone, not DescribeTable): a missing table is refused
    /// (exit 2) with how to create it.
    pub async fn check(&self) -> Result<()> {
        self.client
            .get_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(self.profile.clone()))
            .key("sk", AttributeValue::S(STATE_SK.into()))
            .projection_expression("pk")
            .send()
            .await
            .map_err(|e| self.failed("GetItem", e))?;
        Ok(())
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
        let Some(item) = out.item else {
            self.seen.saw(None);
            return Ok(None);
        };
        self.check_owner(&item)?;
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
        self.seen.saw(Some(&state.id));
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
            ("source".to_string(), AttributeValue::S(self.id.source.clone())),
            ("routes".to_string(), AttributeValue::S(self.id.routes.join("\n"))),
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
            Ok(_) => {
                self.seen.saw(Some(&state.id));
                Ok(())
            }
            Err(e) if e.as_service_error().is_some_and(|s| s.is_conditional_check_failed_exception()) => {
                Err(StoreError::Conflict)
            }
            // A transaction (a rollback's abort) holds the item this moment: try again.
            Err(e) if e.as_service_error().is_some_and(|s| s.is_transaction_conflict_exception()) => {
                Err(StoreError::Unavailable(format!("PutItem on {}: a transaction held the item", self.table)))
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
        let entry = &self.stamped(entry, Some(&state.id));
        let entry_doc = serde_json::to_string(entry).map_err(|e| failed(format!("encoding an audit entry: {e}")))?;
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(s.item))
            .condition_expression(s.condition)
            .set_expression_attribute_values(s.values);
        // A new line of the trail: never over an existing one.
        let line = Put::builder()
            .table_name(&self.table)
            .item("pk", AttributeValue::S(self.profile.clone()))
            .item("sk", AttributeValue::S(sort_key(entry)))
            .item("doc", AttributeValue::S(entry_doc))
            .condition_expression("attribute_not_exists(sk)");
        let build = |e: aws_sdk_dynamodb::error::BuildError| failed(format!("building a state write: {e}"));
        let sent = self
            .client
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().put(put.build().map_err(build)?).build())
            .transact_items(TransactWriteItem::builder().put(line.build().map_err(build)?).build())
            .send()
            .await;
        use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
        match sent {
            Ok(_) => {
                self.seen.saw(Some(&state.id));
                Ok(())
            }
            Err(e) => match e.as_service_error() {
                Some(TransactWriteItemsError::TransactionCanceledException(c)) => {
                    let codes: Vec<Option<&str>> = c.cancellation_reasons().iter().map(|r| r.code()).collect();
                    Err(cancelled(&codes, &self.table))
                }
                // A transaction of the same request still in progress: tried again.
                Some(TransactWriteItemsError::TransactionInProgressException(_)) => Err(StoreError::Unavailable(
                    format!("TransactWriteItems on {}: another transaction held the item", self.table),
                )),
                _ => Err(store_error(self.failed("TransactWriteItems", e))),
            },
        }
    }

    /// Appends one entry to the audit trail: a new item, conditional on its sort key being new
    /// — an append never overwrites a line (a key taken is tried again under a new one).
    pub async fn append(&self, entry: &AuditEntry) -> Result<()> {
        let entry = &self.stamped(entry, None);
        let doc = serde_json::to_string(entry).map_err(|e| Error::Other(format!("encoding an audit entry: {e}")))?;
        for _ in 0..3 {
            let sent = self
                .client
                .put_item()
                .table_name(&self.table)
                .item("pk", AttributeValue::S(self.profile.clone()))
                .item("sk", AttributeValue::S(sort_key(entry)))
                .item("doc", AttributeValue::S(doc.clone()))
                .condition_expression("attribute_not_exists(sk)")
                .send()
                .await;
            match sent {
                Ok(_) => return Ok(()),
                Err(e) if e.as_service_error().is_some_and(|s| s.is_conditional_check_failed_exception()) => continue,
                Err(e) => return Err(crate::aws::error(format!("PutItem (audit) on {}", self.table), e)),
            }
        }
        Err(Error::Other(format!("PutItem (audit) on {}: every sort key tried was taken", self.table)))
    }

    /// The audit trail, newest first — of this profile: a trail another profile of the same name
    /// wrote is refused, as its state item is.
    pub async fn history(&self, limit: usize) -> Result<Vec<AuditEntry>> {
        let item = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(self.profile.clone()))
            .key("sk", AttributeValue::S(STATE_SK.into()))
            .projection_expression("#r, #s")
            .expression_attribute_names("#r", "routes")
            .expression_attribute_names("#s", "source")
            .send()
            .await
            .map_err(|e| self.failed("GetItem", e))?;
        if let Some(item) = &item.item {
            self.check_owner(item)?;
        }
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

    async fn append(&self, entry: &AuditEntry) -> Result<bool, StoreError> {
        DynamoStore::append(self, entry).await.map(|()| true).map_err(store_error)
    }
}

/// A cancelled transaction of the state item (first) and an audit line (second), by the
/// cancellation reasons' codes: the item's condition failing is a conflict (someone wrote it since
/// it was read); a conflicting transaction, throttling, or the line's key taken (a new key is
/// drawn on the next attempt) may pass when tried again.
fn cancelled(codes: &[Option<&str>], table: &str) -> StoreError {
    let said = codes.iter().map(|c| c.unwrap_or("None")).collect::<Vec<_>>().join(", ");
    match codes.first().copied().flatten() {
        Some("ConditionalCheckFailed") => StoreError::Conflict,
        _ if codes.iter().flatten().all(|c| {
            matches!(*c, "None" | "TransactionConflict" | "ThrottlingError" | "ProvisionedThroughputExceeded")
                || *c == "ConditionalCheckFailed"
        }) =>
        {
            StoreError::Unavailable(format!("TransactWriteItems on {table} cancelled ({said}): trying again"))
        }
        _ => StoreError::Failed(Error::Other(format!("TransactWriteItems on {table} cancelled: {said}"))),
    }
}

/// An entry's sort key: newest last by time, then by its order in the process.
fn sort_key(entry: &AuditEntry) -> String {
    format!("EVENT#{:013}#{:06}#{}", entry.at_ms, entry.seq, &crate::rollout::record::new_id()[..8])
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use aws_sdk_dynamodb::operation::put_item::{PutItemError, PutItemOutput};
    use aws_sdk_dynamodb::operation::transact_write_items::{TransactWriteItemsError, TransactWriteItemsOutput};
    use aws_sdk_dynamodb::types::CancellationReason;
    use aws_sdk_dynamodb::types::error::{ConditionalCheckFailedException, TransactionCanceledException};
    use aws_smithy_mocks::mock;

    use super::*;
    use crate::model::Side;
    use crate::rollout::ledger::{Ledger, MemoryStore};

    fn store(client: Client) -> DynamoStore {
        let id = ProfileId { name: "p".into(), source: "profiles/p.toml".into(), routes: vec!["route53 r".into()] };
        DynamoStore { client, table: "t".into(), profile: "p".into(), id, seen: SeenRollout::default() }
    }

    fn entry() -> AuditEntry {
        AuditEntry {
            at_ms: 1,
            at: "1970-01-01T00:00:00Z".into(),
            actor: "arn:aws:sts::123456789012:assumed-role/ops/alice".into(),
            actor_note: None,
            action: "rollback".into(),
            before: Vec::new(),
            after: Vec::new(),
            why: None,
            stage: None,
            rollout_id: None,
            reason: None,
            seq: 1,
        }
    }

    #[tokio::test]
    async fn an_audit_append_is_conditional_on_a_new_sort_key_and_never_overwrites_a_line() {
        let keys: Arc<Mutex<Vec<String>>> = Arc::default();
        let (k1, k2) = (keys.clone(), keys.clone());
        let conditional = |r: &aws_sdk_dynamodb::operation::put_item::PutItemInput| {
            r.condition_expression() == Some("attribute_not_exists(sk)")
        };
        // The first key is taken (another line has it): the entry goes under a new key.
        let taken = mock!(Client::put_item)
            .match_requests(move |r| {
                k1.lock().unwrap().extend(r.item().and_then(|i| i.get("sk")).and_then(|v| v.as_s().ok()).cloned());
                conditional(r)
            })
            .then_error(|| {
                PutItemError::ConditionalCheckFailedException(ConditionalCheckFailedException::builder().build())
            });
        let written = mock!(Client::put_item)
            .match_requests(move |r| {
                k2.lock().unwrap().extend(r.item().and_then(|i| i.get("sk")).and_then(|v| v.as_s().ok()).cloned());
                conditional(r)
            })
            .then_output(|| PutItemOutput::builder().build());
        store(crate::replay::dynamodb(&[&taken, &written])).append(&entry()).await.unwrap();
        let keys = keys.lock().unwrap().clone();
        assert_eq!(keys.len(), 2, "{keys:?}");
        assert_ne!(keys[0], keys[1], "a new key after a taken one");
        assert!(keys.iter().all(|k| k.starts_with("EVENT#")), "{keys:?}");
    }

    fn cancelled_by(codes: &[&str]) -> TransactWriteItemsError {
        let reasons = codes.iter().map(|c| CancellationReason::builder().code(*c).build()).collect();
        TransactWriteItemsError::TransactionCanceledException(
            TransactionCanceledException::builder().set_cancellation_reasons(Some(reasons)).build(),
        )
    }

    #[test]
    fn a_cancelled_transaction_is_a_conflict_only_when_the_items_condition_failed() {
        assert!(matches!(cancelled(&[Some("ConditionalCheckFailed"), Some("None")], "t"), StoreError::Conflict));
        for transient in [
            [Some("TransactionConflict"), Some("None")],
            [Some("None"), Some("TransactionConflict")],
            [Some("ThrottlingError"), Some("None")],
            [Some("None"), Some("ConditionalCheckFailed")],
        ] {
            assert!(matches!(cancelled(&transient, "t"), StoreError::Unavailable(_)), "{transient:?}");
        }
        assert!(matches!(cancelled(&[Some("ValidationError"), Some("None")], "t"), StoreError::Failed(_)));
    }

    /// A rollback's abort racing a rollout's lease write: the transaction is cancelled for a
    /// conflict, and the abort is tried again — not "state NOT updated".
    #[tokio::test]
    async fn an_abort_cancelled_for_a_transaction_conflict_is_tried_again_and_lands() {
        let memory = MemoryStore::default();
        let mut seed = Ledger::new(memory.clone(), "run".into(), std::time::Duration::from_secs(60));
        let views = vec![crate::model::RouteView {
            kind: crate::splitter::route53::KIND,
            name: "r".into(),
            weights: crate::model::Weights::new(90, 10),
        }];
        let stages: Vec<crate::model::Percent> = vec!["10".parse().unwrap(), "100".parse().unwrap()];
        seed.load().await.unwrap();
        let start = crate::rollout::ledger::Start {
            stable: Side::Blue,
            stages: &stages,
            progress: crate::rollout::decide::Progress::at(1, 1),
            routes: &views,
        };
        seed.begin(start, 1).await.unwrap();
        let state = memory.get().unwrap();
        let doc = serde_json::to_string(&state).unwrap();
        let item = move || {
            aws_sdk_dynamodb::operation::get_item::GetItemOutput::builder()
                .item("doc", AttributeValue::S(doc.clone()))
                .item("version", AttributeValue::N(state.version.to_string()))
                .build()
        };
        let read = mock!(Client::get_item).then_output(item.clone());
        let conflict =
            mock!(Client::transact_write_items).then_error(|| cancelled_by(&["TransactionConflict", "None"]));
        let read_again = mock!(Client::get_item).then_output(item);
        let landed = mock!(Client::transact_write_items).then_output(|| TransactWriteItemsOutput::builder().build());
        let client = crate::replay::dynamodb(&[&read, &conflict, &read_again, &landed]);
        let mut ledger = Ledger::new(store(client), "rollback".into(), std::time::Duration::from_secs(60));
        ledger.load().await.unwrap();
        let aborted = ledger
            .abort_noted(Side::Blue, "rolled back", &views, std::time::Duration::from_secs(10), || 2, Some(&entry()))
            .await;
        assert!(aborted.is_ok(), "{:?}", aborted.err().map(|e| e.to_string()));
        assert_eq!(ledger.state().map(|s| s.status), Some(crate::rollout::ledger::Status::Aborted));
    }
}
