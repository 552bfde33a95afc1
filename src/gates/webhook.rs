//! `webhook` gate, Flagger's confirm-promotion semantics: POST the rollout's context as JSON; a 2xx
//! answer lets the rollout go on, anything else (or no answer) holds it. With `rollback = true` the
//! meaning flips: a 2xx answer means "roll back now" (fail), anything else passes.

use std::time::Duration;

use serde::Deserialize;

use super::kind::{Checked, Env, GateCheck, GateContext, GateKind, redact_url, redirect_of};
use crate::iam::{Scope, Statement};
use crate::model::{Reading, Role, Verdict};
use crate::profile::fields::{self, Bad, Key, duration, http_url};

/// The `webhook` gate kind.
pub struct Kind;

/// A `webhook` gate's table.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Section {
    url: String,
    #[serde(default)]
    rollback: bool,
    #[serde(default = "super::http::default_timeout")]
    timeout: String,
}

/// A `webhook` gate, checked.
#[derive(Clone, Debug, PartialEq)]
pub struct Spec {
    pub url: String,
    pub rollback: bool,
    pub timeout: Duration,
}

impl GateKind for Kind {
    const TYPE: &'static str = "webhook";
    const AWS: bool = false;
    type Section = Section;
    type Spec = Spec;
    type Reader = Webhook;

    fn check(g: Section, at: &Key) -> std::result::Result<Checked<Spec>, Bad> {
        http_url(&at.at("url"), &g.url)?;
        let timeout = duration(&at.at("timeout"), &g.timeout, fields::TIMEOUT)?;
        Ok(Checked::new(Spec { url: g.url, rollback: g.rollback, timeout }))
    }

    fn reader(spec: &Spec, env: &Env<'_>) -> Webhook {
        Webhook {
            name: env.name.to_string(),
            client: env.http.clone(),
            url: spec.url.clone(),
            rollback: spec.rollback,
            timeout: spec.timeout,
        }
    }

    fn policy(_: &Spec, _: Option<&Role>, _: &Scope<'_>) -> Vec<Statement> {
        Vec::new()
    }
}

/// Reads a `webhook` gate.
pub struct Webhook {
    pub name: String,
    pub client: reqwest::Client,
    pub url: String,
    pub rollback: bool,
    pub timeout: Duration,
}

impl GateCheck for Webhook {
    async fn read(&self, ctx: &GateContext) -> Reading {
        let shown = redact_url(&self.url);
        let body = serde_json::json!({
            "profile": ctx.profile,
            "candidate": ctx.candidate,
            "stable": ctx.stable,
            "current_percent": ctx.current_percent,
            "next_percent": ctx.next_percent,
            "stage": ctx.stage,
            "stages": ctx.stages,
            "kind": if self.rollback { "rollback" } else { "confirm" },
        });
        let answer = self.client.post(&self.url).json(&body).timeout(self.timeout).send().await;
        let ok = match &answer {
            Ok(r) => r.status().is_success(),
            Err(_) => false,
        };
        let said = match &answer {
            Ok(r) => redirect_of(r).unwrap_or_else(|| r.status().as_u16().to_string()),
            Err(e) if e.is_timeout() => "no answer".to_string(),
            Err(_) => "unreachable".to_string(),
        };
        let (verdict, why) = match (self.rollback, ok) {
            (false, true) => (Verdict::Pass, "go"),
            (false, false) => (Verdict::Wait, "not yet"),
            (true, true) => (Verdict::Fail, "roll back"),
            (true, false) => (Verdict::Pass, "no rollback asked"),
        };
        Reading::new(&self.name, verdict, format!("POST {shown}: {said} ({why})"))
    }
}
