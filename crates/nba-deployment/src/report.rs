//! The resolved settings of a deployment, each with where its value came
//! from: what `nba config check` and `--print-config` print.

use std::fmt::Write;

use crate::{Deployment, Source};

/// Appends every leaf of `value` under `path` as `path = value  # source`.
fn leaves(deployment: &Deployment, path: &str, value: &toml::Value, out: &mut String) {
    match value {
        toml::Value::Table(t) if !t.is_empty() => {
            for (k, v) in t {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                leaves(deployment, &p, v, out);
            }
        }
        toml::Value::Array(items) if items.iter().any(toml::Value::is_table) => {
            for (i, v) in items.iter().enumerate() {
                leaves(deployment, &format!("{path}[{i}]"), v, out);
            }
        }
        leaf => {
            // Valid TOML: a step that is not a bare key (an index) is quoted.
            let key: Vec<String> = path
                .split('.')
                .map(|step| {
                    if !step
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
                    {
                        format!("{step:?}")
                    } else {
                        step.to_owned()
                    }
                })
                .collect();
            let _ = writeln!(
                out,
                "{} = {leaf}  # {}",
                key.join("."),
                deployment.source_of(path)
            );
        }
    }
}

impl Deployment {
    /// Where the setting at `path` came from.
    pub fn source_of(&self, path: &str) -> Source {
        if let Some((_, s)) = self
            .overridden
            .iter()
            .find(|(o, _)| path == o || path.starts_with(&format!("{o}.")))
        {
            return s.clone();
        }
        let mut at = Some(&self.written);
        for step in path.split('.') {
            let (key, index) = match step.split_once('[') {
                Some((k, i)) => (k, i.trim_end_matches(']').parse::<usize>().ok()),
                None => (step, None),
            };
            at = at.and_then(|v| v.get(key)).and_then(|v| match index {
                Some(i) => v.get(i),
                None => Some(v),
            });
        }
        match at {
            Some(_) => Source::File,
            None if path.starts_with("contact.") && self.file.contact.include.is_some() => {
                Source::File
            }
            None => Source::Default,
        }
    }

    /// Every setting as resolved, one per line, each with its source; then
    /// what the settings imply (dimensions, memory).
    pub fn report(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "# deployment {:?}{}",
            self.settings.name,
            self.path
                .as_ref()
                .map(|p| format!(" from {}", p.display()))
                .unwrap_or_default()
        );
        match toml::Value::try_from(&self.file) {
            Ok(v) => leaves(self, "", &v, &mut out),
            Err(e) => {
                let _ = writeln!(out, "# (cannot print the settings: {e})");
            }
        }
        let s = &self.settings;
        let layout = nba_core::FeatureLayout::new(&s.features, &s.declared);
        let _ = writeln!(
            out,
            "# context: {} entries (the model's dimension)",
            s.dim()
        );
        let _ = writeln!(
            out,
            "# action context: {} entries per candidate",
            s.action_dim
        );
        let mut unset = Vec::new();
        if self.file.policy.model.is_none() {
            unset.push(
                "policy.model unset: action-aware where an action context is declared".to_owned(),
            );
        }
        if self.file.policy.residual.is_none()
            && matches!(s.bandit.model, nba_core::Model::ActionAware { .. })
        {
            unset.push(format!(
                "policy.residual unset: {}, none for a catalog of over {} actions",
                nba_core::Residual::default().name(),
                nba_core::Residual::LARGE_CATALOG
            ));
        }
        let _ = writeln!(
            out,
            "# model: {}{}",
            s.bandit.model.label(),
            if unset.is_empty() {
                String::new()
            } else {
                format!(" ({})", unset.join("; "))
            }
        );
        if let Some(e) = &s.experiment {
            let arms: Vec<String> = std::iter::once(format!(
                "{} {:.0}% ({})",
                e.champion,
                100.0 * e.champion_share(),
                nba_core::LinearBandit::new(s.bandit.clone()).policy_name()
            ))
            .chain(e.challengers.iter().map(|c| {
                format!(
                    "{} {:.0}% ({})",
                    c.name,
                    100.0 * c.share,
                    nba_core::LinearBandit::new(c.bandit.clone()).policy_name()
                )
            }))
            .chain(e.guardrail.iter().map(|g| {
                format!(
                    "{} {:.0}% ({}) until the bandit earns more, then {:.0}%",
                    g.baseline_arm,
                    100.0 * (1.0 - g.trial_share),
                    g.baseline.policy_name(),
                    100.0 * (1.0 - g.takeover_share)
                )
            }))
            .chain(e.shadows.iter().map(|s| format!("shadow {}", s.name)))
            .collect();
            let _ = writeln!(out, "# experiment {:?}: {}", e.name, arms.join("; "));
        }
        let _ = writeln!(out, "# {}", logged_propensity_floor(s));
        if let Ok(l) = layout {
            let _ = writeln!(
                out,
                "# customer state: {} bytes of counters per customer ({})",
                l.counter_bytes(),
                l.fingerprint()
            );
        }
        let _ = writeln!(
            out,
            "# catalog: {} actions; simulation: {}",
            s.catalog.actions().len(),
            if s.simulation.is_some() {
                "declared"
            } else {
                "none"
            }
        );
        out
    }
}

/// Importance weights above this make off-policy estimates noise on logs of
/// the size a deployment keeps (BENCHMARKS.md, "Normal and bootstrap
/// intervals").
const HEAVY_WEIGHT: f64 = 100.0;

/// The lowest propensity the policy logs (its exploration floor spread over
/// the whole catalog), and what that allows off-policy estimates: shadows'
/// running estimates and `nba backtest`'s candidates weight each decision by
/// one over it.
fn logged_propensity_floor(s: &crate::Settings) -> String {
    let (floor, actions) = (s.bandit.exploration.floor, s.catalog.actions().len().max(1));
    if floor <= 0.0 {
        return "logged propensities: no floor (policy.exploration_floor = 0): an action the policy never explores is logged at 0, and no other policy can be evaluated on those decisions".to_owned();
    }
    let lowest = floor / actions as f64;
    let weight = 1.0 / lowest;
    let mut line = format!(
        "logged propensities: at least {lowest:.2e} (policy.exploration_floor {floor} over {actions} actions), so off-policy estimates (shadows, nba backtest's candidates) weigh a decision up to {weight:.0}×"
    );
    if weight > HEAVY_WEIGHT {
        line.push_str(": to compare policies on this log, raise policy.exploration_floor");
    }
    line
}
