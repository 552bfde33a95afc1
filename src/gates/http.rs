//! `http` gate: GET a URL of the candidate; the status (and optionally a body substring) must
//! match. A timeout or a connection error fails. The URL is never logged with its query string.

use std::time::Duration;

use serde::Deserialize;

use super::kind::{Checked, Env, GateCheck, GateContext, GateKind, body_capped, redact_url, redirect_of, substitute};
use crate::iam::{Scope, Statement};
use crate::model::{Reading, Role, Verdict};
use crate::profile::fields::{self, Bad, Key, bad, duration, http_url};

/// The `http` gate kind.
pub struct Kind;

/// An `http` gate's table.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Section {
    url: String,
    #[serde(default = "default_status")]
    expect_status: i64,
    body_contains: Option<String>,
    #[serde(default = "default_timeout")]
    timeout: String,
}

fn default_status() -> i64 {
    200
}

pub(super) fn default_timeout() -> String {
    "5s".to_string()
}

/// An `http` gate, checked.
#[derive(Clone, Debug, PartialEq)]
pub struct Spec {
    pub url: String,
    pub expect_status: u16,
    pub body_contains: Option<String>,
    pub timeout: Duration,
}

impl GateKind for Kind {
    const TYPE: &'static str = "http";
    const AWS: bool = false;
    type Section = Section;
    type Spec = Spec;
    type Reader = Http;

    fn check(g: Section, at: &Key) -> std::result::Result<Checked<Spec>, Bad> {
        http_url(&at.at("url"), &g.url)?;
        if !(100..=599).contains(&g.expect_status) {
            return Err(bad(at.at("expect_status"), format!("{} is not an HTTP status", g.expect_status)));
        }
        let timeout = duration(&at.at("timeout"), &g.timeout, fields::TIMEOUT)?;
        Ok(Checked::new(Spec {
            url: g.url,
            expect_status: g.expect_status as u16,
            body_contains: g.body_contains,
            timeout,
        }))
    }

    fn reader(spec: &Spec, env: &Env<'_>) -> Http {
        Http {
            name: env.name.to_string(),
            client: env.http.clone(),
            url: spec.url.clone(),
            expect_status: spec.expect_status,
            body_contains: spec.body_contains.clone(),
            timeout: spec.timeout,
        }
    }

    fn policy(_: &Spec, _: Option<&Role>, _: &Scope<'_>) -> Vec<Statement> {
        Vec::new()
    }
}

/// Reads an `http` gate.
pub struct Http {
    pub name: String,
    pub client: reqwest::Client,
    pub url: String,
    pub expect_status: u16,
    pub body_contains: Option<String>,
    pub timeout: Duration,
}

impl GateCheck for Http {
    async fn read(&self, ctx: &GateContext) -> Reading {
        let url = substitute(&self.url, ctx.candidate);
        let shown = redact_url(&url);
        let resp = match self.client.get(&url).timeout(self.timeout).send().await {
            Ok(r) => r,
            Err(e) if e.is_timeout() => {
                return Reading::new(
                    &self.name,
                    Verdict::Fail,
                    format!("GET {shown}: no answer within {:?}", self.timeout),
                );
            }
            Err(e) => {
                let kind = if e.is_connect() { "cannot connect" } else { "request failed" };
                return Reading::new(&self.name, Verdict::Fail, format!("GET {shown}: {kind}"));
            }
        };
        let status = resp.status().as_u16();
        if let Some(redirect) = redirect_of(&resp)
            && status != self.expect_status
        {
            return Reading::new(&self.name, Verdict::Fail, format!("GET {shown}: {redirect}"));
        }
        if status != self.expect_status {
            return Reading::new(
                &self.name,
                Verdict::Fail,
                format!("GET {shown}: {status}, expected {}", self.expect_status),
            );
        }
        if let Some(want) = &self.body_contains {
            let body = match body_capped(resp).await {
                Ok(b) => String::from_utf8_lossy(&b).into_owned(),
                Err(why) => return Reading::new(&self.name, Verdict::Fail, format!("GET {shown}: {status}, {why}")),
            };
            if !body.contains(want.as_str()) {
                return Reading::new(
                    &self.name,
                    Verdict::Fail,
                    format!(
                        "GET {shown}: {status} but the body lacks {}",
                        crate::terminal::one_line(&format!("{want:?}"))
                    ),
                );
            }
        }
        Reading::new(&self.name, Verdict::Pass, format!("GET {shown}: {status}"))
    }
}
