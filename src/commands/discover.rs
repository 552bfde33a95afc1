//! `cutover discover --cluster C`: the ingress ALBs the AWS Load Balancer Controller made for an
//! EKS cluster, from their tags. Needs no profile.

use std::path::Path;

use crate::cli::OutputFormat;
use crate::error::{Error, Result};
use crate::exit;

pub async fn run(
    output: OutputFormat,
    cluster: &str,
    namespace: Option<&str>,
    ingress: Option<&str>,
    write_profile: Option<&Path>,
) -> Result<i32> {
    let sdk = crate::aws::load(None, None).await?;
    let found = crate::discover::discover(&sdk, cluster, namespace, ingress).await?;
    if let Some(path) = write_profile {
        let text = crate::discover::starting_profile(&found)?;
        if path.exists() {
            return Err(Error::refused(format!("{} exists: not overwriting it", path.display())));
        }
        std::fs::write(path, text).map_err(|e| Error::Other(format!("cannot write {}: {e}", path.display())))?;
        eprintln!("wrote {}", path.display());
    }
    match output {
        OutputFormat::Text => crate::report::out(&found),
        OutputFormat::Json => {
            crate::report::out(format!("{}\n", serde_json::to_string_pretty(&found).unwrap_or_default()))
        }
    }
    Ok(exit::OK)
}
