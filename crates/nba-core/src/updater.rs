//! The model-updater stage's logic: decide on requests, join rewards, learn.

use crate::{
    AttributionJoin, BanditConfig, DecisionRequest, EventTime, JoinConfig, LinearBandit,
    NextBestAction, PendingDecision, Rejection, Reward,
};

/// Settings of [`ModelUpdater`].
#[derive(Debug, Clone, PartialEq)]
pub struct UpdaterConfig {
    /// The bandit.
    pub bandit: BanditConfig,
    /// The reward join.
    pub join: JoinConfig,
    /// How far behind the newest event time an input may arrive and still be
    /// treated as on time: the watermark is `newest - allowed_lateness_ms`, and a
    /// decision's default reward is applied once the watermark passes its deadline.
    pub allowed_lateness_ms: i64,
}

impl Default for UpdaterConfig {
    /// Default bandit and join; one minute of allowed lateness.
    fn default() -> Self {
        Self {
            bandit: BanditConfig::default(),
            join: JoinConfig::default(),
            allowed_lateness_ms: 60_000,
        }
    }
}

/// One input of the model-updater.
#[derive(Debug, Clone, PartialEq)]
pub enum UpdaterInput {
    /// Decide.
    Request(DecisionRequest),
    /// Learn.
    Reward(Reward),
}

/// What the model-updater has done so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UpdaterStats {
    /// Decisions made (including repeats of a redelivered request).
    pub decisions: u64,
    /// Rewards joined to their decision in time.
    pub rewards_joined: u64,
    /// Decisions closed with the default reward.
    pub rewards_defaulted: u64,
    /// Rewards for a decision that was unknown, already closed, or past its window.
    pub rewards_unmatched: u64,
}

/// Decides with the bandit, joins outcomes to decisions and learns from each.
#[derive(Debug)]
pub struct ModelUpdater {
    bandit: LinearBandit,
    join: AttributionJoin,
    allowed_lateness_ms: i64,
    newest: EventTime,
    stats: UpdaterStats,
}

impl ModelUpdater {
    /// An untrained updater.
    pub fn new(cfg: UpdaterConfig) -> Self {
        Self {
            bandit: LinearBandit::new(cfg.bandit),
            join: AttributionJoin::new(cfg.join),
            allowed_lateness_ms: cfg.allowed_lateness_ms,
            newest: EventTime::MIN,
            stats: UpdaterStats::default(),
        }
    }

    /// The bandit.
    pub fn bandit(&self) -> &LinearBandit {
        &self.bandit
    }

    /// Counters so far.
    pub fn stats(&self) -> UpdaterStats {
        self.stats
    }

    /// Decisions still waiting for an outcome.
    pub fn open_decisions(&self) -> usize {
        self.join.len()
    }

    /// Applies one input; a request gives its next best action.
    pub fn apply(&mut self, input: &UpdaterInput) -> Result<Option<NextBestAction>, Rejection> {
        match input {
            UpdaterInput::Request(r) => self.decide(r).map(Some),
            UpdaterInput::Reward(r) => self.learn(r).map(|()| None),
        }
    }

    /// Closes every open decision with the default reward (end of a replay or demo).
    pub fn finish(&mut self) {
        let closed = self.join.drain();
        self.learn_defaults(closed);
    }

    fn advance(&mut self, t: EventTime) {
        if t <= self.newest {
            return;
        }
        self.newest = t;
        let watermark = t.saturating_sub(self.allowed_lateness_ms);
        let closed = self.join.expire(watermark);
        self.learn_defaults(closed);
        self.bandit.advance_to(watermark);
    }

    fn learn_defaults(&mut self, closed: Vec<(String, PendingDecision)>) {
        let window = self.join.config().window_ms;
        let reward = self.join.config().default_reward;
        for (_, p) in closed {
            self.bandit
                .update(&p.action_id, &p.context, reward, p.decided_at + window);
            self.stats.rewards_defaulted += 1;
        }
    }

    fn decide(&mut self, r: &DecisionRequest) -> Result<NextBestAction, Rejection> {
        let dim = self.bandit.config().dim;
        if r.context.len() != dim {
            return Err(Rejection::new(format!(
                "context has {} entries; this model expects {dim}",
                r.context.len()
            )));
        }
        if let Some(v) = r.context.iter().find(|v| !v.is_finite()) {
            return Err(Rejection::new(format!(
                "context holds {v}, which is not finite"
            )));
        }
        if r.candidates.is_empty() || r.candidates.iter().any(String::is_empty) {
            return Err(Rejection::new(
                "candidates must be a non-empty list of non-empty action ids",
            ));
        }
        self.advance(r.timestamp);
        let choice = self
            .bandit
            .decide(&r.decision_id, &r.context, &r.candidates);
        let action_id = r.candidates[choice.index].clone();
        self.join.open(
            &r.decision_id,
            PendingDecision {
                action_id: action_id.clone(),
                context: r.context.clone(),
                decided_at: r.timestamp,
            },
        );
        self.stats.decisions += 1;
        Ok(NextBestAction {
            decision_id: r.decision_id.clone(),
            customer_id: r.customer_id.clone(),
            timestamp: r.timestamp,
            action_id,
            propensity: choice.propensity,
            score: choice.score,
            policy: self.bandit.policy_name().to_owned(),
            model_version: i64::try_from(self.bandit.version()).unwrap_or(i64::MAX),
            candidates: i32::try_from(r.candidates.len()).unwrap_or(i32::MAX),
            scores: choice.scores,
        })
    }

    fn learn(&mut self, r: &Reward) -> Result<(), Rejection> {
        if !(r.value.is_finite() && (0.0..=1.0).contains(&r.value)) {
            return Err(Rejection::new(format!(
                "reward value {} is outside [0, 1]",
                r.value
            )));
        }
        if let Some(p) = self.join.resolve(&r.decision_id, r.timestamp) {
            if p.action_id != r.action_id {
                let msg = format!(
                    "reward names action {} but decision {} showed {}",
                    r.action_id, r.decision_id, p.action_id
                );
                // Put it back: the decision may still get its true outcome.
                self.join.open(&r.decision_id, p);
                return Err(Rejection::new(msg));
            }
            self.bandit
                .update(&p.action_id, &p.context, r.value, r.timestamp);
            self.stats.rewards_joined += 1;
        } else {
            self.stats.rewards_unmatched += 1;
        }
        self.advance(r.timestamp);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{CONTEXT_DIM, Channel};

    fn request(id: &str, t: EventTime) -> UpdaterInput {
        let mut context = vec![0.0; CONTEXT_DIM];
        context[0] = 1.0;
        UpdaterInput::Request(DecisionRequest {
            decision_id: id.into(),
            customer_id: "c".into(),
            timestamp: t,
            channel: Channel::Web,
            context,
            candidates: vec!["a".into(), "b".into()],
        })
    }

    fn reward(id: &str, action: &str, t: EventTime) -> UpdaterInput {
        UpdaterInput::Reward(Reward {
            reward_id: format!("r-{id}"),
            decision_id: id.into(),
            customer_id: "c".into(),
            timestamp: t,
            action_id: action.into(),
            value: 1.0,
            event_type: "click".into(),
        })
    }

    fn updater() -> ModelUpdater {
        ModelUpdater::new(UpdaterConfig {
            join: JoinConfig {
                window_ms: 1_000,
                default_reward: 0.0,
            },
            allowed_lateness_ms: 0,
            ..UpdaterConfig::default()
        })
    }

    #[test]
    fn joins_in_time_and_defaults_after_the_window() {
        let mut u = updater();
        let nba = u
            .apply(&request("d1", 0))
            .expect("valid")
            .expect("decision");
        assert!(nba.propensity > 0.0 && nba.propensity <= 1.0);
        u.apply(&reward("d1", &nba.action_id, 500)).expect("valid");
        assert_eq!(u.stats().rewards_joined, 1);
        assert_eq!(u.bandit().version(), 1);

        u.apply(&request("d2", 600)).expect("valid");
        // Event time moves to 1 601: d2's deadline (1 600) has passed.
        u.apply(&request("d3", 1_601)).expect("valid");
        assert_eq!(u.stats().rewards_defaulted, 1);
        assert_eq!(u.bandit().version(), 2);
        // d2's outcome comes too late to count.
        u.apply(&reward("d2", "a", 1_700)).expect("valid");
        assert_eq!(u.stats().rewards_unmatched, 1);
        u.finish();
        assert_eq!(u.stats().rewards_defaulted, 2);
        assert_eq!(u.open_decisions(), 0);
    }

    #[test]
    fn refuses_what_it_cannot_decide_on() {
        let mut u = updater();
        let UpdaterInput::Request(mut r) = request("d1", 0) else {
            unreachable!()
        };
        r.context.pop();
        let e = u
            .apply(&UpdaterInput::Request(r.clone()))
            .expect_err("short context");
        assert!(e.reason().contains("expects 16"));
        r.context.push(f64::INFINITY);
        assert!(u.apply(&UpdaterInput::Request(r)).is_err());
        assert_eq!(u.stats().decisions, 0);
    }
}
