//! `http` gate: GET a URL of the candidate; the status (and optionally a body substring) must
//! match. A timeout or a connection error fails. The URL is never logged with its query string.

use std::time::Duration;

use super::{GateCheck, GateContext, Reading, Verdict, redact_url, substitute};

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
        if status != self.expect_status {
            return Reading::new(
                &self.name,
                Verdict::Fail,
                format!("GET {shown}: {status}, expected {}", self.expect_status),
            );
        }
        if let Some(want) = &self.body_contains {
            let body = match resp.text().await {
                Ok(b) => b,
                Err(_) => return Reading::new(&self.name, Verdict::Fail, format!("GET {shown}: body unreadable")),
            };
            if !body.contains(want.as_str()) {
                return Reading::new(
                    &self.name,
                    Verdict::Fail,
                    format!("GET {shown}: {status} but the body lacks {want:?}"),
                );
            }
        }
        Reading::new(&self.name, Verdict::Pass, format!("GET {shown}: {status}"))
    }
}
