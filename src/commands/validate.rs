//! `cutover validate`: parses the profile, resolves every AWS resource it names (read-only) and
//! prints the plan. A `[state]` table that does not exist makes the profile invalid (exit 2).

use crate::error::Result;
use crate::exit;
use crate::model::Side;
use crate::report::ValidateReport;
use crate::settings::Settings;
use crate::splitter::sole_side;

pub async fn run(settings: &Settings) -> Result<i32> {
    // The state table is looked up beside the routes: a profile whose table is missing would
    // fail at `history` or `rollout`, so it is not valid (exit 2, with how to make it).
    let table = async {
        match settings.store() {
            Some(store) => store.check().await,
            None => Ok(()),
        }
    };
    let traffic = settings.traffic();
    let (routes, table) = tokio::join!(traffic.read(), table);
    let routes = routes?;
    table?;
    let stale = crate::sides::check(&settings.aws, &settings.profile.sides, &routes, &Side::ALL).await?;
    if !stale.is_empty() {
        return Err(crate::sides::stale_error(&stale));
    }
    let report = ValidateReport::new(&settings.profile, &routes, sole_side(&routes));
    settings.print(&report)?;
    Ok(exit::OK)
}
