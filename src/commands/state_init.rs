//! `cutover state init`: creates the `[state]` table (idempotent).

use crate::cli::OutputFormat;
use crate::error::{Error, Result};
use crate::exit;
use crate::settings::Settings;

pub async fn run(settings: &Settings, dry_run: bool) -> Result<i32> {
    let Some(cfg) = &settings.profile.state else {
        return Err(Error::refused_hint(
            format!("profile `{}` has no [state] table", settings.profile.name),
            "add `[state] table = \"cutover-state\"` to the profile",
        ));
    };
    let store = crate::state::DynamoStore::new(&settings.sdk, &cfg.table, &settings.profile.name);
    if dry_run {
        let exists = store.exists().await?;
        let doc = serde_json::json!({ "table": cfg.table, "created": false, "dry_run": true, "exists": exists });
        match settings.output {
            OutputFormat::Json => println!("{doc}"),
            OutputFormat::Text if exists => println!("state table {} already exists (dry run)", cfg.table),
            OutputFormat::Text => println!("would create state table {} (pk S, sk S, on-demand)", cfg.table),
        }
        return Ok(exit::OK);
    }
    let created = store.init().await?;
    let doc = serde_json::json!({ "table": cfg.table, "created": created });
    match settings.output {
        OutputFormat::Json => println!("{doc}"),
        OutputFormat::Text if created => println!("created state table {} (pk S, sk S, on-demand)", cfg.table),
        OutputFormat::Text => println!("state table {} already exists", cfg.table),
    }
    Ok(exit::OK)
}
