//! What every profile section is checked with: a failure tied to its key path ([`Bad`]), key
//! paths ([`Key`]), the serde reading of one table with its path and line ([`section`]), and the
//! checks of values many sections share — durations, URLs, roles, DNS names.
//!
//! A leaf: the gate and splitter kinds check their own tables with it, and the profile (which
//! asks their registries) ties a [`Bad`] to the file.

use std::time::Duration;

use serde::de::DeserializeOwned;
use toml::Spanned;
use toml::de::DeValue;

use crate::model::Role;

/// A validation failure before it is tied to a file: the key path, what is wrong, and a hint.
#[derive(Debug)]
pub struct Bad {
    pub key: String,
    pub message: String,
    pub hint: Option<String>,
}

pub fn bad(key: impl Into<String>, message: impl Into<String>) -> Bad {
    Bad { key: key.into(), message: message.into(), hint: None }
}

pub fn bad_hint(key: impl Into<String>, message: impl Into<String>, hint: impl Into<String>) -> Bad {
    Bad { key: key.into(), message: message.into(), hint: Some(hint.into()) }
}

/// Where a table is in the profile (`gate[2]`, `route53[0]`), and so the paths of its keys.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Key(String);

impl Key {
    pub fn new(path: impl Into<String>) -> Key {
        Key(path.into())
    }

    /// The path of the table's key `name`: `gate[2].window`.
    pub fn at(&self, name: &str) -> String {
        if self.0.is_empty() { name.to_string() } else { format!("{}.{name}", self.0) }
    }

    /// The table's own path.
    pub fn path(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Reads one table (or array of tables) of the profile `text` as serde reads it, with
/// `deny_unknown_fields` as the type says: an error names the key path under `at` and the line.
pub fn section<T: DeserializeOwned>(value: Spanned<DeValue<'_>>, at: &Key, text: &str) -> Result<T, Bad> {
    let de = toml::de::ValueDeserializer::from(value);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let inner = e.path().to_string();
        let key = match inner.as_str() {
            "" | "." => at.path().to_string(),
            p if p.starts_with('[') => format!("{}{p}", at.path()),
            p => at.at(p),
        };
        bad(key, toml_message(e.inner(), text))
    })
}

/// A toml error as one readable message, with the line when the parser knows it.
pub fn toml_message(e: &toml::de::Error, text: &str) -> String {
    let msg = e.message().trim().to_string();
    match e.span() {
        Some(span) => {
            let line = text[..span.start.min(text.len())].matches('\n').count() + 1;
            format!("{msg} (line {line})")
        }
        None => msg,
    }
}

pub fn duration(key: &str, value: &str) -> Result<Duration, Bad> {
    humantime::parse_duration(value.trim()).map_err(|e| {
        bad_hint(
            key,
            format!("`{value}` is not a duration ({e})"),
            "write durations like \"30s\", \"5m\" or \"1h 30m\"",
        )
    })
}

pub fn non_empty(key: &str, value: &str) -> Result<(), Bad> {
    if value.trim().is_empty() { Err(bad(key, "must not be empty")) } else { Ok(()) }
}

pub fn http_url(key: &str, url: &str) -> Result<(), Bad> {
    if url.starts_with("http://") || url.starts_with("https://") {
        Ok(())
    } else {
        Err(bad_hint(
            key,
            "must be an http:// or https:// URL",
            "for example \"https://{side}.preprod.myapp.com/health\"",
        ))
    }
}

/// `role_arn` and `external_id` of the table at `at`: an IAM role ARN, and the external id
/// AssumeRole accepts (2–1224 characters of letters, digits and `+=,.@:/-`), only with a role.
pub fn role(at: &Key, arn: Option<String>, external_id: Option<String>) -> Result<Option<Role>, Bad> {
    let Some(arn) = arn.map(|a| a.trim().to_string()) else {
        return match external_id {
            Some(_) => Err(bad_hint(
                at.at("external_id"),
                "an external id is only used with `role_arn`",
                "add the role it is the external id of: role_arn = \"arn:aws:iam::111122223333:role/cutover\"",
            )),
            None => Ok(None),
        };
    };
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    let well_formed = parts.len() == 6
        && parts[0] == "arn"
        && parts[1].starts_with("aws")
        && parts[2] == "iam"
        && parts[3].is_empty()
        && parts[4].len() == 12
        && parts[4].chars().all(|c| c.is_ascii_digit())
        && parts[5].strip_prefix("role/").is_some_and(|name| !name.is_empty() && !name.ends_with('/'));
    if !well_formed {
        return Err(bad_hint(
            at.at("role_arn"),
            format!("`{arn}` is not an IAM role ARN"),
            "arn:aws:iam::ACCOUNT:role/NAME, e.g. \"arn:aws:iam::111122223333:role/cutover\"",
        ));
    }
    if let Some(id) = &external_id {
        let ok =
            (2..=1224).contains(&id.len()) && id.chars().all(|c| c.is_ascii_alphanumeric() || "_+=,.@:/-".contains(c));
        if !ok {
            return Err(bad_hint(
                at.at("external_id"),
                "is not an external id STS accepts",
                "2–1224 characters of letters, digits and _+=,.@:/-",
            ));
        }
    }
    Ok(Some(Role { arn, external_id }))
}

/// A DNS name as Route53 returns it: lower case, with a trailing dot.
pub fn fqdn(name: &str) -> String {
    let n = name.trim().to_ascii_lowercase();
    if n.ends_with('.') { n } else { format!("{n}.") }
}
