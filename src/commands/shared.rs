//! What several commands share: one reading of the gates before a shift, the pre-checks of a
//! run and what they let it write, putting the safety net away.

use std::time::Duration;

use crate::error::{Error, Result};
use crate::model::{Percent, Side};
use crate::rollout::ports::Attachments as _;
use crate::settings::Settings;
use crate::splitter::AwsTraffic;

/// A one-off shift the gates are read for: `candidate` from `current` to `next`; a move toward
/// the stable side is never frozen. `refusal` starts the refusal's sentence, `skip` names the flag
/// that skips the gates.
pub struct OneShift<'a> {
    pub candidate: Side,
    pub current: Percent,
    pub next: Percent,
    pub toward_stable: bool,
    pub refusal: &'a str,
    pub skip: &'a str,
}

/// Reads every gate once against `candidate`, after checking that what they name exists (exit 2
/// otherwise). Anything but all-pass refuses the command, with nothing changed: exit 3 for a
/// failing gate, 7 for one that waits.
pub async fn gates_once(
    settings: &Settings,
    routes: &[crate::splitter::RouteLive],
    shift: OneShift<'_>,
) -> Result<Vec<crate::model::Reading>> {
    let OneShift { candidate, current, next, toward_stable, refusal, skip } = shift;
    use crate::rollout::ports::Gates as _;
    let gates = settings.gates(routes);
    gates.preflight(candidate).await?;
    let ctx = crate::rollout::ports::GateContext {
        profile: settings.profile.name.clone(),
        candidate,
        stable: candidate.other(),
        current_percent: current,
        next_percent: Some(next),
        stage: 0,
        stages: 1,
        stage_age: Duration::ZERO,
        next_bake: Duration::ZERO,
        since: None,
    };
    let readings = gates.thaw(gates.read(&ctx).await, toward_stable);
    for r in &readings {
        tracing::info!(gate = %r.gate, verdict = %r.verdict, detail = %r.detail, "gate read");
    }
    match crate::model::blocking(&readings) {
        None => Ok(readings),
        Some((why, held)) => Err(Error::Gate {
            message: format!("{refusal} {candidate}: {why}\nnothing was changed (`{skip}` skips the gates)"),
            held,
        }),
    }
}

/// The rollout is over (completed, rolled back, aborted): the safety net comes off every record,
/// which gets back its own health check. `known`: the routes as the command read them first.
pub async fn drop_safety_net(settings: &Settings, traffic: &AwsTraffic, known: &[crate::splitter::RouteLive]) {
    settings.attachments(traffic, Some(known)).detach().await;
}

/// What a run's pre-checks found, before anything is written.
pub struct Checked {
    pub gates: crate::gates::Gates,
    stale: Vec<crate::sides::Stale>,
}

/// The pre-checks of `rollout` and `advance` beyond the rollout state (which `open` checked):
/// where the candidate runs (its cluster ACTIVE, every alias at its side's current ingress ALB;
/// refused unless `--repoint`), and what the gates name. Writes nothing.
pub async fn precheck(
    settings: &Settings,
    opening: &mut crate::rollout::open::Opening<Vec<crate::splitter::RouteLive>>,
    repoint: bool,
) -> Result<Checked> {
    let profile = &settings.profile;
    opening.rules.dns_ttl = crate::observe::dns_floor(&opening.routes, profile.observe.is_some(), profile.dns_ttl);
    let stale = crate::sides::check(&settings.aws, &profile.sides, &opening.routes, &[opening.candidate]).await?;
    if !stale.is_empty() && !repoint {
        return Err(crate::sides::stale_error(&stale));
    }
    let gates = settings.gates(&opening.routes);
    gates.preflight(opening.candidate).await?;
    if let Some(net) = crate::safety_net::SafetyNet::of(&settings.aws, profile) {
        net.preflight(opening.candidate).await?;
    }
    Ok(Checked { gates, stale })
}

impl Checked {
    /// Every pre-check passed: points stale aliases at their side's ALB (`--repoint`). Returns the
    /// gates to read, and the routes as opened when that wrote nothing (the first stage's write
    /// starts from them). The preview record and the safety net go on at the first shift, once
    /// the gates passed (the engine's attachments): a refusal writes nothing.
    pub async fn commit(
        self,
        settings: &Settings,
        traffic: &AwsTraffic,
        opening: &crate::rollout::open::Opening<Vec<crate::splitter::RouteLive>>,
    ) -> Result<(crate::gates::Gates, Option<Vec<crate::splitter::RouteLive>>)> {
        let mut gates = self.gates;
        let mut wrote = false;
        if !self.stale.is_empty() {
            let routes = traffic.read().await?;
            let mut changes = Vec::new();
            crate::sides::repoint(&routes, &mut changes, self.stale);
            traffic.apply(&routes, &changes, None).await?;
            wrote = true;
            gates = settings.gates(&traffic.read().await?);
        }
        Ok((gates, (!wrote).then(|| opening.routes.clone())))
    }
}
