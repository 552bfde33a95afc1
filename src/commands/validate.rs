//! `cutover validate`: parses the profile, resolves every AWS resource it names (read-only) and
//! prints the plan.

use crate::error::Result;
use crate::exit;
use crate::model::Side;
use crate::report::ValidateReport;
use crate::settings::Settings;
use crate::splitter::sole_side;

pub async fn run(settings: &Settings) -> Result<i32> {
    let routes = settings.traffic().read().await?;
    let stale = crate::sides::check(&settings.aws, &settings.profile.sides, &routes, &Side::ALL).await?;
    if !stale.is_empty() {
        return Err(crate::sides::stale_error(&stale));
    }
    let report = ValidateReport::new(&settings.profile, &routes, sole_side(&routes));
    settings.print(&report)?;
    Ok(exit::OK)
}
