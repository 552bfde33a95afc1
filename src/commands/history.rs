//! `cutover history`: the audit trail of this profile's cutovers, newest first.

use crate::error::Result;
use crate::exit;
use crate::report::HistoryReport;
use crate::settings::Settings;

pub async fn run(settings: &Settings, limit: usize) -> Result<i32> {
    let store = settings.need_store("history")?;
    let report = HistoryReport { profile: settings.profile.name.clone(), entries: store.history(limit).await? };
    settings.print(&report)?;
    Ok(exit::OK)
}
