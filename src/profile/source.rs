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
///
/// The bucket must belong to the expected account — `CUTOVER_PROFILE_BUCKET_OWNER`, else the
/// caller's (S3's `ExpectedBucketOwner`): a bucket deleted and re-created under the same name by
/// another account never feeds a profile. A bucket in another region than the configuration's is
/// followed once, to the region S3 names (`x-amz-bucket-region`). At most 1 MiB is read.
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
    let owner = bucket_owner(&sdk).await?;
    let mut region = sdk.region().map(|r| r.to_string()).unwrap_or_default();
    let mut followed = false;
    let out = loop {
        let client = s3_client(&sdk, &region);
        let sent = client.get_object().bucket(bucket).key(key).expected_bucket_owner(&owner).send().await;
        match sent {
            Ok(out) => break out,
            Err(e) => {
                // In another region: S3 says which (PermanentRedirect, or a request signed for the
                // wrong region) in `x-amz-bucket-region`. Followed once.
                let elsewhere = e.raw_response().and_then(|r| r.headers().get("x-amz-bucket-region")).map(String::from);
                match elsewhere {
                    Some(r) if !followed && r != region && crate::profile::fields::region_name(&r) => {
                        tracing::info!(bucket, from = %region, to = %r, "the profile's bucket is in {r}: reading it there");
                        region = r;
                        followed = true;
                        continue;
                    }
                    _ => return Err(get_failed(e, &url, bucket, key, &owner, &region)),
                }
            }
        }
    };
    if out.content_length.is_some_and(|n| n as u64 > super::MAX_PROFILE_BYTES) {
        return Err(super::too_big(std::path::Path::new(&url)).into());
    }
    let mut body = out.body;
    let mut bytes: Vec<u8> = Vec::new();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| Error::Aws {
            action: format!("GetObject of the profile {url}"),
            message: format!("the object could not be read whole: {e}"),
            transient: true,
        })?;
        bytes.extend_from_slice(&chunk);
        if bytes.len() as u64 > super::MAX_PROFILE_BYTES {
            return Err(super::too_big(std::path::Path::new(&url)).into());
        }
    }
    let text = String::from_utf8(bytes)
        .map_err(|_| Error::refused(format!("profile {url} is not UTF-8 text (bucket `{bucket}`, key `{key}`)")))?;
    let path = std::path::PathBuf::from(&url);
    let profile = crate::profile::Profile::parse(&path, &text)?;
    Ok((path, profile, sdk))
}

/// The account the profile's bucket must belong to: `CUTOVER_PROFILE_BUCKET_OWNER`, else the
/// caller's (from STS). Without either the profile is not read: S3 would serve any owner's bucket.
async fn bucket_owner(sdk: &SdkConfig) -> crate::error::Result<String> {
    use crate::error::Error;
    if let Some(owner) = std::env::var("CUTOVER_PROFILE_BUCKET_OWNER").ok().filter(|o| !o.trim().is_empty()) {
        let owner = owner.trim().to_string();
        if owner.len() != 12 || !owner.chars().all(|c| c.is_ascii_digit()) {
            return Err(Error::refused_hint(
                format!(
                    "CUTOVER_PROFILE_BUCKET_OWNER `{}` is not an AWS account id",
                    crate::terminal::one_line(&owner)
                ),
                "12 digits: the account that owns the profile's bucket",
            ));
        }
        return Ok(owner);
    }
    crate::state::account(sdk).await.ok_or_else(|| {
        Error::refused_hint(
            "the profile's bucket must belong to a known account, and STS did not say which account the caller is",
            "set CUTOVER_PROFILE_BUCKET_OWNER to the account id that owns the bucket",
        )
    })
}

/// An S3 client of `sdk` in `region`; path-style on an endpoint of its own (an emulator on
/// 127.0.0.1 has no bucket subdomains).
fn s3_client(sdk: &SdkConfig, region: &str) -> aws_sdk_s3::Client {
    let client = crate::client!(aws_sdk_s3, sdk);
    let mut config = client.config().to_builder().region(aws_sdk_s3::config::Region::new(region.to_string()));
    if sdk.endpoint_url().is_some() {
        config = config.force_path_style(true);
    }
    aws_sdk_s3::Client::from_conf(config.build())
}

/// A GetObject of the profile S3 refused, said as such.
fn get_failed(
    e: aws_sdk_s3::error::SdkError<aws_sdk_s3::operation::get_object::GetObjectError>,
    url: &str,
    bucket: &str,
    key: &str,
    owner: &str,
    region: &str,
) -> crate::error::Error {
    use aws_smithy_types::error::metadata::ProvideErrorMetadata;

    use crate::error::Error;
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
        Some("AccessDenied") => Error::refused_hint(
            format!(
                "profile {url} refused: S3 said AccessDenied — the bucket `{bucket}` is not owned by account {owner} (ExpectedBucketOwner), or the caller may not read the key"
            ),
            "set CUTOVER_PROFILE_BUCKET_OWNER to the account that owns the bucket if it is not the caller's; `cutover iam-policy` prints the s3:GetObject statement",
        ),
        Some("PermanentRedirect" | "AuthorizationHeaderMalformed" | "IllegalLocationConstraintException") => {
            Error::refused_hint(
                format!("profile {url}: the bucket `{bucket}` is not in {region}, and S3 did not say where it is"),
                "export AWS_REGION set to the bucket's region",
            )
        }
        _ => crate::aws::errors::error(format!("GetObject of the profile {url} (bucket `{bucket}`, key `{key}`)"), e),
    }
}
