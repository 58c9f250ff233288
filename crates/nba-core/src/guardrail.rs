//! Apprentice mode: a rules baseline decides for most customers while the
//! bandit proves itself on a trial share, takes over once it is shown to
//! earn more, and hands back when it stops.
//!
//! The baseline and the bandit are the two arms of an experiment (see
//! [`crate::experiment`]): the bandit first, on `[0, share)` of the
//! customers' positions, the baseline on the rest. Moving the share only
//! moves customers between the two at the boundary. The bandit learns from
//! the outcomes of both arms' decisions (an apprentice watches the baseline),
//! while each arm's figures count only its own.
//!
//! What is compared is what the champion maximises: the reward, or with
//! `Objective::Value` the reward times the shown action's value.
//!
//! The comparison is over the last `window` closed decisions of each arm, so
//! it follows a world that changes: the bandit takes over when the lower end
//! of the 95% interval of (its mean reward − the baseline's) is above 0, and
//! falls back when its mean has stayed below the baseline's for
//! `fallback_after_ms` of event time. The bars differ on purpose: a bandit
//! only a little better than the baseline takes over once its windows show
//! it, and is not handed back each time noise narrows the margin.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use crate::EventTime;
use crate::estimators::Z95;

/// How the baseline chooses among the candidates the contact policy leaves.
/// Ties go to the earlier candidate of the request.
#[derive(Debug, Clone, PartialEq)]
pub enum BaselineRule {
    /// The first candidate in this order; candidates it does not list come
    /// after every listed one.
    Order(Vec<String>),
    /// The highest value × lever weight in the catalog (a business ranking).
    Ranking,
    /// The highest value in this column of the request's action context:
    /// with `affinity:TAG`, the customer's share of events in the action's
    /// category, so the customer's most frequent category wins.
    ActionContext {
        /// The column among each candidate's action-context values.
        column: usize,
        /// The feature as the deployment wrote it (for the policy name).
        feature: String,
    },
}

impl BaselineRule {
    /// How the `policy` of every next-best-action a baseline decides begins.
    pub const POLICY_PREFIX: &'static str = "baseline:";

    /// The `policy` of the next-best-actions the baseline decides.
    pub fn policy_name(&self) -> String {
        let rule = match self {
            Self::Order(_) => "order",
            Self::Ranking => "ranking",
            Self::ActionContext { feature, .. } => feature,
        };
        format!("{}{rule}", Self::POLICY_PREFIX)
    }

    /// The index of the chosen candidate. `values` holds value × weight per
    /// candidate, `rows` the action context (`features` values per candidate,
    /// or empty).
    pub fn choose(
        &self,
        candidates: &[String],
        values: &[f64],
        rows: &[f64],
        features: usize,
    ) -> usize {
        let best_by = |key: &dyn Fn(usize) -> f64| {
            (0..candidates.len()).fold(0, |best, i| if key(i) > key(best) { i } else { best })
        };
        match self {
            Self::Order(order) => {
                let rank = |i: usize| {
                    order
                        .iter()
                        .position(|a| *a == candidates[i])
                        .unwrap_or(order.len())
                };
                (0..candidates.len()).min_by_key(|&i| rank(i)).unwrap_or(0)
            }
            Self::Ranking => best_by(&|i| values.get(i).copied().unwrap_or(0.0)),
            Self::ActionContext { column, .. } => best_by(&|i| {
                rows.get(i * features + column)
                    .copied()
                    .unwrap_or(f64::NEG_INFINITY)
            }),
        }
    }
}

/// A rules baseline guarding the bandit of `[policy]`.
#[derive(Debug, Clone, PartialEq)]
pub struct GuardrailConfig {
    /// The baseline arm's name, on the next-best-actions it decides.
    pub baseline_arm: String,
    /// How the baseline chooses.
    pub baseline: BaselineRule,
    /// The bandit's share of the customers until it has shown it earns more
    /// (its trial: what it is measured on).
    pub trial_share: f64,
    /// Its share once it has: what is left stays with the baseline, which
    /// keeps the baseline measured in the same world.
    pub takeover_share: f64,
    /// How many of each arm's latest closed decisions are compared.
    pub window: usize,
    /// Closed decisions each arm needs in its window before any switch.
    pub min_outcomes: usize,
    /// How long (event time) the bandit's mean may stay below the
    /// baseline's before the baseline takes its customers back.
    pub fallback_after_ms: i64,
}

impl GuardrailConfig {
    /// A guardrail with the documented defaults: a 10% trial, 90% on
    /// takeover (10% held out with the baseline), the last 2,000 closed
    /// decisions of each arm, 200 before any switch, one hour to fall back.
    pub fn new(baseline: BaselineRule) -> Self {
        Self {
            baseline_arm: "baseline".into(),
            baseline,
            trial_share: 0.1,
            takeover_share: 0.9,
            window: 2_000,
            min_outcomes: 200,
            fallback_after_ms: 3_600_000,
        }
    }

    /// The bandit's share of the customers, before or after a takeover: it
    /// decides for those whose [`crate::experiment_position`] is below it.
    pub fn bandit_share(&self, taken_over: bool) -> f64 {
        if taken_over {
            self.takeover_share
        } else {
            self.trial_share
        }
    }

    /// Refuses shares, window or time that cannot work, saying how to fix it.
    pub fn validate(&self) -> Result<(), String> {
        let share = |name: &str, v: f64| {
            if v > 0.0 && v < 1.0 {
                Ok(())
            } else {
                Err(format!(
                    "the guardrail's {name} is {v}: a share is in (0, 1), the rest stays with the baseline"
                ))
            }
        };
        share("trial_share", self.trial_share)?;
        share("takeover_share", self.takeover_share)?;
        if self.takeover_share < self.trial_share {
            return Err(format!(
                "the guardrail's takeover_share {} is below its trial_share {}: taking over gives the bandit more customers, not fewer",
                self.takeover_share, self.trial_share
            ));
        }
        if self.min_outcomes < 2 || self.window < self.min_outcomes {
            return Err(format!(
                "the guardrail compares the last {} closed decisions of each arm and needs {} before a switch: min_outcomes is at least 2 and at most window",
                self.window, self.min_outcomes
            ));
        }
        if self.fallback_after_ms < 0 {
            return Err("the guardrail's fallback_after is a duration, not negative".into());
        }
        if let BaselineRule::Order(order) = &self.baseline {
            if order.is_empty() {
                return Err(
                    "the baseline's order lists no action: list the actions it prefers, best first"
                        .into(),
                );
            }
        }
        Ok(())
    }
}

/// The latest rewards of one arm, oldest first, with running sums so a
/// closed decision costs O(1) whatever the window.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct RewardWindow {
    rewards: VecDeque<f64>,
    /// Checkpointed with the rewards, so a restored run carries on with the
    /// same floats as the live one (absent in checkpoints written before it:
    /// then rebuilt from `rewards`).
    #[serde(default)]
    sums: Option<RunningSums>,
}

/// Sums of `reward − shift` and of its square over a window. The shift is
/// the window's mean at the last exact recount, so the variance does not
/// lose its digits to cancellation; the recount, once per window's length
/// of pushes, keeps rounding from piling up.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct RunningSums {
    shift: f64,
    sum: f64,
    sum_sq: f64,
    pushes_since_recount: usize,
}

impl RunningSums {
    fn recount(rewards: &VecDeque<f64>) -> Self {
        let n = rewards.len().max(1) as f64;
        let shift = rewards.iter().sum::<f64>() / n;
        let (sum, sum_sq) = rewards.iter().fold((0.0, 0.0), |(s, q), r| {
            let x = r - shift;
            (s + x, q + x * x)
        });
        Self {
            shift,
            sum,
            sum_sq,
            pushes_since_recount: 0,
        }
    }
}

impl RewardWindow {
    fn push(&mut self, reward: f64, capacity: usize) {
        if self.rewards.len() > capacity {
            // Restored from a checkpoint written with a longer window: the
            // oldest go, and the sums are counted again.
            self.rewards.drain(..self.rewards.len() - capacity);
            self.sums = None;
        }
        let mut sums = match self.sums.take() {
            Some(sums) if sums.pushes_since_recount < capacity => sums,
            _ => RunningSums::recount(&self.rewards),
        };
        if self.rewards.len() == capacity
            && let Some(oldest) = self.rewards.pop_front()
        {
            let x = oldest - sums.shift;
            sums.sum -= x;
            sums.sum_sq -= x * x;
        }
        self.rewards.push_back(reward);
        let x = reward - sums.shift;
        sums.sum += x;
        sums.sum_sq += x * x;
        sums.pushes_since_recount += 1;
        self.sums = Some(sums);
    }

    /// Mean and the variance of the mean.
    fn mean_and_var(&self) -> (f64, f64) {
        let n = self.rewards.len() as f64;
        let sums = match &self.sums {
            Some(sums) => sums.clone(),
            None => RunningSums::recount(&self.rewards),
        };
        let mean_shifted = sums.sum / n;
        let ss = (sums.sum_sq - sums.sum * mean_shifted).max(0.0);
        (sums.shift + mean_shifted, ss / (n - 1.0) / n)
    }
}

/// A switch between the baseline and the bandit, for the log.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GuardrailSwitch {
    /// The event time of the outcome that made it.
    pub at: EventTime,
    /// True when the bandit took over, false when it fell back.
    pub took_over: bool,
    /// The bandit's share of the customers from now on.
    pub bandit_share: f64,
    /// Bandit − baseline mean reward over the windows, with its 95% interval.
    pub difference: [f64; 3],
}

impl std::fmt::Display for GuardrailSwitch {
    /// Without its time, which the caller formats.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let [d, low, high] = self.difference;
        write!(
            f,
            "the bandit {} (bandit − baseline {d:+.5} [{low:+.5}, {high:+.5}]); it now decides for {:.0}% of the customers",
            if self.took_over {
                "took over"
            } else {
                "fell back"
            },
            self.bandit_share * 100.0
        )
    }
}

/// Where the guardrail stands: on `/metrics`, in backtests and the demo.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GuardrailStatus {
    /// True while the bandit has the takeover share.
    pub taken_over: bool,
    /// The bandit's share of the customers now.
    pub bandit_share: f64,
    /// Times it took over.
    pub takeovers: u64,
    /// Times it fell back.
    pub fallbacks: u64,
    /// Bandit − baseline over the windows with its 95% interval, once each
    /// arm has `min_outcomes` closed decisions.
    pub difference: Option<[f64; 3]>,
}

/// Where the guardrail stands and every switch it made: for a backtest's or
/// the demo's report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GuardrailReport {
    /// Where it stands at the end.
    #[serde(flatten)]
    pub status: GuardrailStatus,
    /// Every switch, oldest first.
    pub switches: Vec<GuardrailSwitch>,
}

impl std::fmt::Display for GuardrailReport {
    /// `guardrail: the bandit decides for 90% (took over 1 time, fell back 0 times); bandit − baseline +0.1 [+0.05, +0.15]`
    /// (the switches are the caller's to print, with their times).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = &self.status;
        write!(
            f,
            "guardrail: the bandit decides for {:.0}% of the customers (took over {} times, fell back {} times)",
            s.bandit_share * 100.0,
            s.takeovers,
            s.fallbacks
        )?;
        match s.difference {
            Some([d, low, high]) => write!(
                f,
                "; bandit − baseline over the latest outcomes {d:+.5} [{low:+.5}, {high:+.5}]"
            )?,
            None => write!(f, "; too few outcomes in an arm to compare yet")?,
        }
        Ok(())
    }
}

/// The guardrail's state: the windows and who is in charge (checkpointed,
/// so a restart and a backtest carry on where the live run was).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct GuardrailState {
    taken_over: bool,
    /// Since when the bandit's mean has been below the baseline's while in
    /// charge.
    below_since: Option<EventTime>,
    takeovers: u64,
    fallbacks: u64,
    bandit: RewardWindow,
    baseline: RewardWindow,
}

/// The guardrail at work: its settings, its state and the switches it made
/// since it started (this process).
#[derive(Debug)]
pub(crate) struct Guardrail {
    pub(crate) cfg: GuardrailConfig,
    pub(crate) state: GuardrailState,
    pub(crate) switches: Vec<GuardrailSwitch>,
    /// How many of `switches` were taken for the log.
    logged: usize,
}

impl Guardrail {
    pub(crate) fn new(cfg: GuardrailConfig) -> Self {
        Self {
            cfg,
            state: GuardrailState::default(),
            switches: Vec::new(),
            logged: 0,
        }
    }

    /// The bandit's share of the customers now.
    pub(crate) fn bandit_share(&self) -> f64 {
        self.cfg.bandit_share(self.state.taken_over)
    }

    fn difference(&self) -> Option<[f64; 3]> {
        let s = &self.state;
        let enough = |w: &RewardWindow| w.rewards.len() >= self.cfg.min_outcomes;
        (enough(&s.bandit) && enough(&s.baseline)).then(|| {
            let (mb, vb) = s.bandit.mean_and_var();
            let (mr, vr) = s.baseline.mean_and_var();
            let (d, se) = (mb - mr, (vb + vr).sqrt());
            [d, d - Z95 * se, d + Z95 * se]
        })
    }

    /// Takes the reward of a closed decision of the bandit's arm (`bandit`)
    /// or the baseline's, observed at `at`; returns true if the bandit's
    /// share changed.
    pub(crate) fn observe(&mut self, bandit: bool, reward: f64, at: EventTime) -> bool {
        let capacity = self.cfg.window;
        let s = &mut self.state;
        if bandit {
            &mut s.bandit
        } else {
            &mut s.baseline
        }
        .push(reward, capacity);
        let Some(difference) = self.difference() else {
            return false;
        };
        let s = &mut self.state;
        let switch = if !s.taken_over {
            difference[1] > 0.0
        } else if difference[0] >= 0.0 {
            s.below_since = None;
            false
        } else {
            let since = *s.below_since.get_or_insert(at);
            at.saturating_sub(since) >= self.cfg.fallback_after_ms
        };
        if !switch {
            return false;
        }
        s.taken_over = !s.taken_over;
        s.below_since = None;
        if s.taken_over {
            s.takeovers += 1;
        } else {
            s.fallbacks += 1;
        }
        self.switches.push(GuardrailSwitch {
            at,
            took_over: s.taken_over,
            bandit_share: self.bandit_share(),
            difference,
        });
        true
    }

    /// The switches made since the last call.
    pub(crate) fn take_unlogged(&mut self) -> Vec<GuardrailSwitch> {
        let new = self.switches[self.logged..].to_vec();
        self.logged = self.switches.len();
        new
    }

    pub(crate) fn status(&self) -> GuardrailStatus {
        GuardrailStatus {
            taken_over: self.state.taken_over,
            bandit_share: self.bandit_share(),
            takeovers: self.state.takeovers,
            fallbacks: self.state.fallbacks,
            difference: self.difference(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        DecisionRequest, ExperimentConfig, ModelUpdater, UpdaterConfig, UpdaterInput,
        experiment_position, testing,
    };

    const ACTIONS: [&str; 3] = ["promo", "rec_books", "rec_music"];

    #[test]
    fn each_rule_chooses_as_documented() {
        let candidates: Vec<String> = ACTIONS.iter().map(|a| (*a).to_owned()).collect();
        let order = BaselineRule::Order(vec!["rec_music".into(), "promo".into()]);
        assert_eq!(order.choose(&candidates, &[], &[], 0), 2);
        let unlisted = BaselineRule::Order(vec!["loyalty".into()]);
        assert_eq!(
            unlisted.choose(&candidates, &[], &[], 0),
            0,
            "request order"
        );
        let values = [1.0, 5.0, 5.0];
        assert_eq!(
            BaselineRule::Ranking.choose(&candidates, &values, &[], 0),
            1
        );
        let affinity = BaselineRule::ActionContext {
            column: 1,
            feature: "affinity:category".into(),
        };
        let rows = [1.0, 0.2, 1.0, 0.1, 1.0, 0.7];
        assert_eq!(affinity.choose(&candidates, &values, &rows, 2), 2);
        assert_eq!(affinity.policy_name(), "baseline:affinity:category");
    }

    fn guarded() -> UpdaterConfig {
        let cfg = testing::updater_config(2);
        let mut guardrail = GuardrailConfig::new(BaselineRule::Order(vec!["promo".into()]));
        guardrail.trial_share = 0.2;
        guardrail.takeover_share = 0.8;
        guardrail.window = 400;
        guardrail.min_outcomes = 100;
        guardrail.fallback_after_ms = 600_000;
        UpdaterConfig {
            experiment: Some(ExperimentConfig {
                name: "apprentice".into(),
                champion: "bandit".into(),
                challengers: Vec::new(),
                shadows: Vec::new(),
                guardrail: Some(guardrail),
            }),
            ..cfg
        }
    }

    /// Until `change` promo earns 0.1 and rec_books 0.6; from then on promo
    /// 0.6 and rec_books nothing. One request a second, from `from` to `to`
    /// (seconds), over 1,000 customers; a click is the reward.
    fn world(u: &mut ModelUpdater, from: i64, to: i64, change: i64) -> Vec<(i64, String, String)> {
        let mut shown = Vec::new();
        for k in from..to {
            let t = k * 1_000;
            let request = DecisionRequest {
                decision_id: format!("d{k}"),
                customer_id: format!("customer-{}", k % 1_000),
                timestamp: t,
                channel: "web".into(),
                context: vec![1.0, 0.5],
                candidates: ACTIONS.iter().map(|a| (*a).to_owned()).collect(),
                action_context: Vec::new(),
            };
            let nba = u
                .apply(&UpdaterInput::Request(request))
                .expect("valid")
                .expect("answered");
            let p = match (nba.action_id.as_str(), t < change) {
                ("promo", true) => 0.1,
                ("rec_books", true) | ("promo", false) => 0.6,
                ("rec_music", _) => 0.2,
                _ => 0.0,
            };
            if experiment_position("clicks", &nba.decision_id) < p {
                u.apply(&testing::click(&nba, t + 10)).expect("valid");
            }
            shown.push((t, nba.experiment_arm, nba.policy));
        }
        shown
    }

    #[test]
    fn the_bandit_takes_over_once_it_has_learned_and_falls_back_when_the_world_changes() {
        let change = 4 * 3_600_000;
        let mut u = ModelUpdater::new(guarded()).expect("valid");
        let before = world(&mut u, 0, 14_400, change);
        let switches = u.take_guardrail_switches();
        let [took_over] = &switches[..] else {
            panic!("one takeover before the change: {switches:?}");
        };
        assert!(took_over.took_over && took_over.difference[1] > 0.0);
        assert_eq!(took_over.bandit_share, 0.8);
        let status = u.guardrail_status().expect("a guardrail");
        assert!(status.taken_over && status.takeovers == 1, "{status:?}");

        // Before the takeover a fifth of the customers had the bandit, after
        // it four fifths; the baseline's decisions say so.
        let share = |from: i64, to: i64| {
            let window: Vec<_> = before
                .iter()
                .filter(|(t, ..)| (from..to).contains(t))
                .collect();
            let bandit = window.iter().filter(|(_, arm, _)| arm == "bandit").count();
            bandit as f64 / window.len() as f64
        };
        assert!((share(0, took_over.at) - 0.2).abs() < 0.05);
        assert!((share(took_over.at + 60_000, change) - 0.8).abs() < 0.05);
        assert!(
            before
                .iter()
                .all(|(_, arm, policy)| (arm == "baseline") == (policy == "baseline:order"))
        );

        // A checkpoint carries the guardrail on: the restored updater makes
        // the same decisions and the same switches.
        let mut restored = ModelUpdater::restore(guarded(), &u.checkpoint()).expect("restores");
        assert_eq!(restored.guardrail_status(), Some(status));
        let after = world(&mut u, 14_400, 28_800, change);
        assert_eq!(world(&mut restored, 14_400, 28_800, change), after);
        let switches = u.take_guardrail_switches();
        assert_eq!(restored.take_guardrail_switches(), switches);
        let Some(fell_back) = switches.first() else {
            panic!("the bandit lagged the change and should have fallen back");
        };
        assert!(
            !fell_back.took_over && fell_back.at > change,
            "{fell_back:?}"
        );
        assert!(
            fell_back.at >= change + 600_000,
            "not before fallback_after"
        );
        assert_eq!(fell_back.bandit_share, 0.2);
        let status = u.guardrail_status().expect("a guardrail");
        assert_eq!(status.fallbacks, 1, "{status:?}");
    }

    /// With the value objective the guardrail compares value: a bandit
    /// that sends the valuable promo (clicked 10% of the time, worth 10)
    /// takes over from a baseline that sends a book recommendation (60%,
    /// worth 1), though its response rate is far lower.
    #[test]
    fn with_the_value_objective_the_guardrail_compares_value() {
        let mut cfg = guarded();
        cfg.bandit.objective = crate::Objective::Value;
        let mut actions = cfg.catalog.actions().to_vec();
        for a in &mut actions {
            a.value = if a.id == "promo" { 10.0 } else { 1.0 };
        }
        cfg.catalog = crate::ActionCatalog::new(actions).expect("distinct ids");
        if let Some(g) = cfg.experiment.as_mut().and_then(|e| e.guardrail.as_mut()) {
            g.baseline = BaselineRule::Order(vec!["rec_books".into()]);
        }
        let mut u = ModelUpdater::new(cfg).expect("valid");
        world(&mut u, 0, 14_400, i64::MAX);
        let switches = u.take_guardrail_switches();
        let Some(took_over) = switches.first() else {
            panic!("the bandit earns more value and should have taken over");
        };
        // In value: about 1.0 against 0.6 (in response it is 0.1 against 0.6).
        assert!(
            took_over.took_over && took_over.difference[0] > 0.0,
            "{took_over:?}"
        );
    }

    #[test]
    fn refuses_a_guardrail_that_cannot_work() {
        let mut g = GuardrailConfig::new(BaselineRule::Ranking);
        assert!(g.validate().is_ok());
        g.takeover_share = 0.05;
        assert!(g.validate().expect_err("refused").contains("not fewer"));
        g = GuardrailConfig::new(BaselineRule::Order(Vec::new()));
        assert!(g.validate().expect_err("refused").contains("best first"));
        g = GuardrailConfig::new(BaselineRule::Ranking);
        g.min_outcomes = 5_000;
        assert!(
            g.validate()
                .expect_err("refused")
                .contains("at most window")
        );
        let mut cfg = guarded();
        let e = cfg.experiment.as_mut().expect("an experiment");
        e.guardrail.as_mut().expect("a guardrail").baseline = BaselineRule::ActionContext {
            column: 0,
            feature: "affinity:category".into(),
        };
        let err = ModelUpdater::new(cfg).expect_err("refused");
        assert!(err.contains("features.action_context"), "{err}");
    }

    /// The running sums agree with a recount of the window, on values whose
    /// mean dwarfs their spread (reward × value), across the window's
    /// turnover, from a checkpoint written before the sums were kept, and
    /// from one written with a longer window.
    #[test]
    fn a_reward_window_keeps_its_mean_and_variance_exactly_enough() {
        let mut rng = crate::rng::DecisionRng::new(7, "window");
        let mut window = RewardWindow::default();
        for i in 0..10_000 {
            let reward = 1_000.0 + rng.unit() * if i % 3 == 0 { 1.0 } else { 1e-3 };
            window.push(reward, 700);
            if i % 997 == 996 || i == 9_999 {
                let exact = RewardWindow {
                    rewards: window.rewards.clone(),
                    sums: None,
                };
                let ((m, v), (me, ve)) = (window.mean_and_var(), exact.mean_and_var());
                assert!(
                    (m - me).abs() < 1e-9 && (v - ve).abs() <= 1e-9 * ve,
                    "{i}: {m} {v} against {me} {ve}"
                );
            }
        }
        let old: RewardWindow =
            serde_json::from_str(r#"{"rewards":[1.0,0.0,1.0]}"#).expect("an old window");
        let mut restored = old.clone();
        restored.push(0.0, 3);
        assert_eq!(restored.rewards, [0.0, 1.0, 0.0]);
        let (m, v) = restored.mean_and_var();
        assert!(
            (m - 1.0 / 3.0).abs() < 1e-15 && (v - 1.0 / 9.0).abs() < 1e-15,
            "{m} {v}"
        );
        // Restored with a shorter window: cut to it, the oldest first.
        let mut shorter = restored.clone();
        shorter.push(1.0, 2);
        assert_eq!(shorter.rewards, [0.0, 1.0]);
        shorter.push(1.0, 2);
        assert_eq!(shorter.rewards, [1.0, 1.0]);
        assert_eq!(shorter.mean_and_var(), (1.0, 0.0));
    }
}
