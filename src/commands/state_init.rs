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
    let store = crate::state::DynamoStore::new(&settings.sdk, &cfg.table, settings.profile_id());
    if dry_run {
        let exists = store.exists().await?;
        let doc = serde_json::json!({ "table": cfg.table, "created": false, "dry_run": true, "exists": exists });
        match settings.output {
            OutputFormat::Json => crate::report::out(format!("{doc}\n")),
            OutputFormat::Text if exists => {
                crate::report::out(format!("state table {} already exists (dry run)\n", cfg.table))
            }
            OutputFormat::Text => {
                crate::report::out(format!("would create state table {} (pk S, sk S, on-demand)\n", cfg.table))
            }
        }
        return Ok(exit::OK);
    }
    let created = store.init().await?;
    let doc = serde_json::json!({ "table": cfg.table, "created": created });
    match settings.output {
        OutputFormat::Json => crate::report::out(format!("{doc}\n")),
        OutputFormat::Text if created => {
            crate::report::out(format!("created state table {} (pk S, sk S, on-demand)\n", cfg.table))
        }
        OutputFormat::Text => crate::report::out(format!("state table {} already exists\n", cfg.table)),
    }
    Ok(exit::OK)
}
