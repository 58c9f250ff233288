//! The candidate grammar of `nba backtest --candidate`: `POLICY[:KEY=VALUE,...]`,
//! a bandit policy over the deployment's (or, without one, the engine's)
//! settings, the settings given overriding them (`linucb:alpha=0.25,floor=0.01`,
//! `thompson:ts-scale=0.1,model=action-aware`).

use nba_core::{BanditConfig, Exploration, Model, Objective, Policy, Residual};

/// A candidate policy: its label (the spec as given) and its settings.
#[derive(Debug, Clone)]
pub struct CandidateSpec {
    /// The spec as given, which names it in reports.
    pub label: String,
    /// The bandit it runs (its seed is the run's: the caller sets it).
    pub config: BanditConfig,
}

/// The policies `--candidate` knows, with the model-updater's defaults.
pub const DEFAULT_CANDIDATES: [&str; 6] = [
    "linucb",
    "thompson",
    "epsilon-greedy",
    "softmax",
    "squarecb",
    "random",
];

impl CandidateSpec {
    /// Parses `POLICY[:KEY=VALUE,...]`: a policy of [`DEFAULT_CANDIDATES`]
    /// with the engine's defaults, each setting given overriding one. The
    /// error names the setting and what it takes.
    pub fn parse(spec: &str) -> Result<Self, String> {
        Self::parse_over(spec, &BanditConfig::default())
    }

    /// Parses `spec` over a deployment's bandit: what the spec does not set
    /// is `base`'s (its model, forgetting, exploration, objective, ridge
    /// priors, and its policy's parameters when the spec names the same
    /// policy), so `linucb` is the deployment's own LinUCB, as a challenger
    /// or shadow with that policy would be.
    pub fn parse_over(spec: &str, base: &BanditConfig) -> Result<Self, String> {
        let (name, settings) = spec.split_once(':').unwrap_or((spec, ""));
        let mut kv = std::collections::HashMap::new();
        for pair in settings.split(',').filter(|p| !p.is_empty()) {
            let (k, v) = pair
                .split_once('=')
                .ok_or_else(|| format!("`{pair}` is not KEY=VALUE"))?;
            kv.insert(k.trim().to_owned(), v.trim().to_owned());
        }
        // The settings that are words, then the numbers.
        let (model_key, residual_key, objective_key) = (
            kv.remove("model"),
            kv.remove("residual"),
            kv.remove("objective"),
        );
        let mut num = |key: &str, default: f64| -> Result<f64, String> {
            match kv.remove(key) {
                None => Ok(default),
                Some(v) => v.parse().map_err(|_| format!("{key}={v} is not a number")),
            }
        };
        // The base's parameters for its own policy, else the engine's
        // defaults (the one place they live).
        let start = if base.policy.name() == name {
            Some(base.policy)
        } else {
            Policy::with_defaults(name)
        };
        let policy = match (name, start) {
            (_, Some(Policy::LinUcb { alpha, epsilon })) => Policy::LinUcb {
                alpha: num("alpha", alpha)?,
                epsilon: num("epsilon", epsilon)?,
            },
            (_, Some(Policy::Thompson { scale })) => Policy::Thompson {
                scale: num("ts-scale", scale)?,
            },
            (_, Some(Policy::EpsilonGreedy { epsilon })) => Policy::EpsilonGreedy {
                epsilon: num("epsilon", epsilon)?,
            },
            (_, Some(Policy::Softmax { temperature })) => Policy::Softmax {
                temperature: num("temperature", temperature)?,
            },
            (_, Some(Policy::SquareCb { gamma })) => Policy::SquareCb {
                gamma: num("squarecb-gamma", gamma)?,
            },
            ("random", None) => Policy::EpsilonGreedy { epsilon: 1.0 },
            (other, None) => {
                return Err(format!(
                    "unknown policy `{other}`; one of {}",
                    DEFAULT_CANDIDATES.join(", ")
                ));
            }
        };
        policy.validate()?;
        let lambda = num("lambda", base.lambda)?;
        let residual_lambda = num("residual_lambda", base.residual_lambda)?;
        for (key, v) in [("lambda", lambda), ("residual_lambda", residual_lambda)] {
            if !(v.is_finite() && v > 0.0) {
                return Err(format!("{key}={v} must be > 0"));
            }
        }
        let base_residual = match base.model {
            Model::ActionAware { residual, .. } => residual,
            _ => Residual::default(),
        };
        let residual = match residual_key.as_deref() {
            None => base_residual,
            Some(name) => Residual::from_name(name)
                .ok_or_else(|| format!("residual={name}: none, intercept or context"))?,
        };
        let model = match model_key.as_deref() {
            None => match base.model {
                Model::ActionAware { features, .. } => Model::ActionAware { features, residual },
                other => other,
            },
            Some("disjoint") => Model::Disjoint,
            Some("hybrid") => Model::Hybrid { action_features: 1 },
            // Its feature count is the recording's action context's.
            Some("action-aware") => Model::ActionAware {
                features: 0,
                residual,
            },
            Some(other) => {
                return Err(format!("model={other}: disjoint, hybrid or action-aware"));
            }
        };
        let objective = match objective_key.as_deref() {
            None => base.objective,
            Some(name) => Objective::from_name(name)
                .ok_or_else(|| format!("objective={name}: reward or value"))?,
        };
        let exploration = if name == "random" {
            // Uniform for ever: no fading.
            Exploration {
                fade: 0,
                floor: 1.0,
            }
        } else {
            let defaults = base.exploration;
            let floor = num("floor", defaults.floor)?;
            if !(0.0..=1.0).contains(&floor) {
                return Err(format!("floor={floor} must be in [0, 1]"));
            }
            let fade = num("fade", defaults.fade as f64)?;
            if !(fade >= 0.0 && fade.fract() == 0.0) {
                return Err(format!("fade={fade} must be a whole number of outcomes"));
            }
            Exploration {
                floor,
                fade: fade as u64,
            }
        };
        if let Some(k) = kv.keys().next() {
            return Err(format!("`{k}` is not a setting of {name}"));
        }
        Ok(CandidateSpec {
            label: spec.to_owned(),
            config: BanditConfig {
                policy,
                lambda,
                residual_lambda,
                model,
                exploration,
                objective,
                ..base.clone()
            },
        })
    }

    /// [`DEFAULT_CANDIDATES`], each over `base` as [`CandidateSpec::parse_over`]
    /// says.
    pub fn defaults_over(base: &BanditConfig) -> Vec<Self> {
        DEFAULT_CANDIDATES
            .iter()
            .filter_map(|name| Self::parse_over(name, base).ok())
            .collect()
    }

    /// [`DEFAULT_CANDIDATES`], each with the engine's defaults.
    pub fn defaults() -> Vec<Self> {
        Self::defaults_over(&BanditConfig::default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_default_candidate_is_the_model_updaters_policy_with_its_defaults() {
        let defaults = CandidateSpec::defaults();
        assert_eq!(defaults.len(), DEFAULT_CANDIDATES.len());
        for (spec, name) in defaults.iter().zip(DEFAULT_CANDIDATES) {
            assert_eq!(spec.label, name);
            match Policy::with_defaults(name) {
                Some(policy) => assert_eq!(spec.config.policy, policy, "{name}"),
                None => assert_eq!(
                    (spec.config.policy, spec.config.exploration.floor),
                    (Policy::EpsilonGreedy { epsilon: 1.0 }, 1.0),
                    "random is uniform for ever"
                ),
            }
        }
        let linucb = &defaults[0].config;
        let engine = BanditConfig::default();
        assert_eq!(
            (linucb.lambda, linucb.exploration, linucb.model),
            (engine.lambda, engine.exploration, engine.model)
        );
    }

    #[test]
    fn settings_given_override_the_defaults() {
        let spec = CandidateSpec::parse(
            "linucb:alpha=0.25, floor=0.01,fade=500,lambda=2,model=action-aware,residual=none,objective=value",
        )
        .expect("valid");
        let c = &spec.config;
        assert!(matches!(c.policy, Policy::LinUcb { alpha, .. } if alpha == 0.25));
        assert_eq!(
            c.exploration,
            Exploration {
                floor: 0.01,
                fade: 500
            }
        );
        assert_eq!(c.lambda, 2.0);
        assert_eq!(
            c.model,
            Model::ActionAware {
                features: 0,
                residual: Residual::from_name("none").expect("a residual")
            }
        );
        assert_eq!(c.objective, Objective::from_name("value").expect("value"));
        let thompson = CandidateSpec::parse("thompson:ts-scale=0.1").expect("valid");
        assert_eq!(thompson.config.policy, Policy::Thompson { scale: 0.1 });
    }

    #[test]
    fn over_a_deployment_what_a_spec_leaves_is_the_deployments() {
        let base = BanditConfig {
            policy: Policy::LinUcb {
                alpha: 0.3,
                epsilon: 0.02,
            },
            model: Model::ActionAware {
                features: 4,
                residual: Residual::from_name("none").expect("a residual"),
            },
            forgetting: nba_core::Forgetting::Stationary,
            exploration: Exploration {
                floor: 0.02,
                fade: 50,
            },
            objective: Objective::from_name("value").expect("value"),
            lambda: 3.0,
            ..BanditConfig::default()
        };
        // `linucb` is the deployment's own LinUCB.
        let own = CandidateSpec::parse_over("linucb", &base).expect("valid");
        assert_eq!(own.config, base);
        // Another policy takes the engine's defaults for its parameters and
        // the deployment's for the rest.
        let thompson = CandidateSpec::parse_over("thompson", &base).expect("valid");
        assert_eq!(
            thompson.config,
            BanditConfig {
                policy: Policy::with_defaults("thompson").expect("thompson"),
                ..base.clone()
            }
        );
        // What the spec says wins.
        let spec = CandidateSpec::parse_over("linucb:alpha=1,model=disjoint,floor=0.1", &base)
            .expect("valid");
        assert_eq!(
            spec.config,
            BanditConfig {
                policy: Policy::LinUcb {
                    alpha: 1.0,
                    epsilon: 0.02
                },
                model: Model::Disjoint,
                exploration: Exploration {
                    floor: 0.1,
                    fade: 50
                },
                ..base.clone()
            }
        );
        let residual = CandidateSpec::parse_over("linucb:residual=context", &base).expect("valid");
        assert_eq!(
            residual.config.model,
            Model::ActionAware {
                features: 4,
                residual: Residual::from_name("context").expect("a residual")
            }
        );
    }

    #[test]
    fn a_bad_spec_is_refused_with_the_setting_named() {
        for (spec, says) in [
            ("ucb", "unknown policy `ucb`; one of linucb"),
            ("linucb:alpha", "`alpha` is not KEY=VALUE"),
            ("linucb:alpha=high", "alpha=high is not a number"),
            (
                "linucb:ts-scale=0.1",
                "`ts-scale` is not a setting of linucb",
            ),
            ("linucb:lambda=0", "lambda=0 must be > 0"),
            ("linucb:floor=2", "floor=2 must be in [0, 1]"),
            ("linucb:fade=1.5", "fade=1.5 must be a whole number"),
            (
                "linucb:model=deep",
                "model=deep: disjoint, hybrid or action-aware",
            ),
            (
                "linucb:objective=profit",
                "objective=profit: reward or value",
            ),
        ] {
            let why = CandidateSpec::parse(spec).expect_err(spec);
            assert!(why.contains(says), "{spec}: {why}");
        }
    }
}
