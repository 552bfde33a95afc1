//! Where a profile comes from: `-p NAME` looked up in the profile folders (`--profiles-dir`,
//! `./profiles`, the user's config folder), a path, or an object in S3 (`-p s3://bucket/key.toml`).

use std::path::PathBuf;

use aws_config::SdkConfig;

use super::error::ProfileError;

/// Where profiles named without a path are looked up: the folders in order, the first that has
/// the profile wins.
#[derive(Clone, Debug)]
pub struct ProfileSource {
    pub dirs: Vec<PathBuf>,
}

impl ProfileSource {
    /// `--profiles-dir DIR` (or `CUTOVER_PROFILES_DIR`) alone when given; else `./profiles`, then
    /// the user's config folder (`$XDG_CONFIG_HOME/cutover/profiles`, `~/.config/cutover/profiles`).
    pub fn new(dir: Option<PathBuf>) -> ProfileSource {
        if let Some(dir) = dir {
            return ProfileSource { dirs: vec![dir] };
        }
        let config = std::env::var_os("XDG_CONFIG_HOME")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").filter(|v| !v.is_empty()).map(|h| PathBuf::from(h).join(".config")));
        let mut dirs = vec![PathBuf::from("profiles")];
        dirs.extend(config.map(|c| c.join("cutover").join("profiles")));
        ProfileSource { dirs }
    }

    /// `-p demo` → `DIR/demo.toml` in the first folder that has it; a value with a `/` or ending
    /// `.toml` is a path.
    pub fn locate(&self, name: Option<&str>) -> Result<PathBuf, ProfileError> {
        let Some(name) = name.filter(|n| !n.is_empty()) else {
            return Err(ProfileError::NoneGiven { known: self.known() });
        };
        if name.contains('/') || name.ends_with(".toml") {
            return Ok(PathBuf::from(name));
        }
        self.dirs.iter().map(|d| d.join(format!("{name}.toml"))).find(|p| p.is_file()).ok_or_else(|| {
            ProfileError::NotFound { name: name.to_string(), dirs: self.dirs.clone(), known: self.known() }
        })
    }

    /// The profile names in the folders, sorted, each once.
    pub fn known(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .dirs
            .iter()
            .flat_map(|d| std::fs::read_dir(d).into_iter().flatten().flatten())
            .filter_map(|e| {
                let p = e.path();
                (p.extension()? == "toml").then(|| p.file_stem()?.to_str().map(String::from))?
            })
            .collect();
        names.sort();
        names.dedup();
        names
    }
}

/// A profile read from S3 (`-p s3://BUCKET/KEY`, or `CUTOVER_PROFILE` the same), and the SDK
/// configuration it was read with: the region comes from the environment (or `~/.aws/config`),
/// since the profile's own `region` is not known before it is read.
pub async fn profile_from_s3(
    location: &str,
) -> crate::error::Result<(std::path::PathBuf, crate::profile::Profile, SdkConfig)> {
    use crate::error::Error;
    let url = format!("s3://{location}");
    let (bucket, key) = location.split_once('/').filter(|(b, k)| !b.is_empty() && !k.is_empty()).ok_or_else(|| {
        Error::refused_hint(
            format!("`{url}` names no object"),
            "give the bucket and the key: `-p s3://my-bucket/cutover/myapp.toml`",
        )
    })?;
    let sdk = crate::aws::config::load(None, None).await.map_err(|_| {
        Error::refused_hint(
            format!(
                "no AWS region to read the profile {url} with: a profile in S3 is read before its `region` is known"
            ),
            "`export AWS_REGION=us-west-2` (the bucket's region), or set it in ~/.aws/config",
        )
    })?;
    let mut client = crate::client!(aws_sdk_s3, &sdk);
    if sdk.endpoint_url().is_some() {
        // An endpoint of its own (an emulator on 127.0.0.1) has no bucket subdomains.
        client = aws_sdk_s3::Client::from_conf(client.config().to_builder().force_path_style(true).build());
    }
    let out = client.get_object().bucket(bucket).key(key).send().await.map_err(|e| {
        use aws_smithy_types::error::metadata::ProvideErrorMetadata;
        let code = e.as_service_error().and_then(|s| s.code()).map(String::from);
        match code.as_deref() {
            Some("NoSuchKey") => Error::refused_hint(
                format!("profile {url} not found: bucket `{bucket}` has no key `{key}`"),
                format!("check the key: `aws s3 ls s3://{bucket}/`"),
            ),
            Some("NoSuchBucket") => Error::refused_hint(
                format!("profile {url} not found: there is no bucket `{bucket}`"),
                "check the bucket's name, and that AWS_REGION is its region",
            ),
            _ => {
                crate::aws::errors::error(format!("GetObject of the profile {url} (bucket `{bucket}`, key `{key}`)"), e)
            }
        }
    })?;
    let bytes = out
        .body
        .collect()
        .await
        .map_err(|e| Error::Aws {
            action: format!("GetObject of the profile {url}"),
            message: format!("the object could not be read whole: {e}"),
            transient: true,
        })?
        .into_bytes();
    let text = String::from_utf8(bytes.to_vec())
        .map_err(|_| Error::refused(format!("profile {url} is not UTF-8 text (bucket `{bucket}`, key `{key}`)")))?;
    let path = std::path::PathBuf::from(&url);
    let profile = crate::profile::Profile::parse(&path, &text)?;
    Ok((path, profile, sdk))
}
