//! The Open Bandit Dataset (ZOZOTOWN, CC BY 4.0; `scripts/fetch-obd.sh`
//! fetches its sample): 10,000 logged impressions per campaign for a
//! uniform-random and a Bernoulli-Thompson logging policy, with propensities.
//!
//! Each impression is one decision among the campaign's items (positions are
//! not modelled; the logged propensity is the item's marginal probability). The
//! context is a bias plus a one-hot encoding of the four user features. The
//! first half of the uniform-random log (in time order) trains the candidate
//! policies and the reward model; the second half evaluates them.

use std::collections::BTreeMap;
use std::path::Path;

use nba_core::estimators::{
    self, BadPropensities, Estimate, Estimator, LoggedDecision, Weights, evaluate, evaluate_with,
    weights,
};
use nba_core::{
    BanditConfig, Candidates, DecisionRequest, Forgetting, Interaction, LinearBandit, Model,
    NextBestAction, Policy, Reward,
};
use nba_pipeline::Topic;
use nba_schema::encode;

use crate::RecordingOut;
use serde::Serialize;

/// One logged impression.
#[derive(Debug, Clone, PartialEq)]
pub struct Impression {
    /// Event time, ms since the epoch.
    pub timestamp: i64,
    /// The item shown.
    pub item: usize,
    /// 1 for a click, 0 otherwise.
    pub click: f64,
    /// The logging policy's probability of showing the item.
    pub propensity: f64,
    /// The four user features, as written.
    pub user: [String; 4],
}

/// The two logs of one campaign: uniform random and Bernoulli Thompson
/// sampling.
#[derive(Debug, Clone)]
pub struct ObdLogs {
    /// The campaign: `all`, `men` or `women`.
    pub campaign: String,
    /// The uniform-random log, in time order.
    pub random: Vec<Impression>,
    /// The Bernoulli Thompson sampling log.
    pub bts: Vec<Impression>,
    /// Impressions left out for a propensity not in (0, 1].
    pub bad_propensities: BadPropensities,
}

impl ObdLogs {
    /// The logs of `campaign` in `dir` (the `obd` directory
    /// `scripts/fetch-obd.sh` extracts). Impressions whose propensity cannot
    /// weight them refuse the load unless `allow_bad_propensities`; then they
    /// are left out and counted in `bad_propensities`.
    pub fn load(dir: &Path, campaign: &str, allow_bad_propensities: bool) -> Result<Self, String> {
        let c = campaign;
        let mut bad = BadPropensities::default();
        let random = load(&dir.join(format!("random/{c}/{c}.csv")), &mut bad)?;
        let bts = load(&dir.join(format!("bts/{c}/{c}.csv")), &mut bad)?;
        if let (Some(why), false) = (bad.refusal(), allow_bad_propensities) {
            return Err(why);
        }
        Ok(Self {
            campaign: campaign.to_owned(),
            random,
            bts,
            bad_propensities: bad,
        })
    }

    /// How many items the campaign has (the highest item id seen, plus one).
    pub fn items(&self) -> usize {
        self.random
            .iter()
            .chain(&self.bts)
            .map(|i| i.item)
            .max()
            .unwrap_or(0)
            + 1
    }

    /// The context encoding of every user feature value seen in either log.
    pub fn encoder(&self) -> Encoder {
        Encoder::new(self.random.iter().chain(&self.bts))
    }
}

/// The impressions of one log; those whose propensity cannot weight them
/// are counted in `bad` and left out.
pub fn load(
    path: &Path,
    bad_propensities: &mut BadPropensities,
) -> Result<Vec<Impression>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        format!(
            "cannot read {}: {e} (run scripts/fetch-obd.sh)",
            path.display()
        )
    })?;
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap_or_default().split(',').collect();
    let col = |name: &str| {
        header
            .iter()
            .position(|h| *h == name)
            .ok_or_else(|| format!("{}: no column {name}", path.display()))
    };
    let (item, click, prop) = (col("item_id")?, col("click")?, col("propensity_score")?);
    let time = col("timestamp")?;
    let users = [
        col("user_feature_0")?,
        col("user_feature_1")?,
        col("user_feature_2")?,
        col("user_feature_3")?,
    ];
    let mut out = Vec::new();
    for (i, line) in lines.enumerate() {
        let f: Vec<&str> = line.split(',').collect();
        let bad = |what: &str| format!("{} line {}: bad {what}", path.display(), i + 2);
        let get = |c: usize| {
            f.get(c)
                .copied()
                .ok_or_else(|| bad("row (too few columns)"))
        };
        let propensity: f64 = get(prop)?.parse().map_err(|_| bad("propensity_score"))?;
        if !bad_propensities.check(propensity, || format!("{} line {}", path.display(), i + 2)) {
            continue;
        }
        out.push(Impression {
            timestamp: parse_time(get(time)?).ok_or_else(|| bad("timestamp"))?,
            item: get(item)?.parse().map_err(|_| bad("item_id"))?,
            click: get(click)?.parse().map_err(|_| bad("click"))?,
            propensity,
            user: [
                get(users[0])?.to_owned(),
                get(users[1])?.to_owned(),
                get(users[2])?.to_owned(),
                get(users[3])?.to_owned(),
            ],
        });
    }
    Ok(out)
}

/// `2019-11-24 00:00:34.762830+00:00` as ms since the epoch (UTC only, as in
/// the dataset).
pub fn parse_time(s: &str) -> Option<i64> {
    let (date, rest) = s.split_once(' ')?;
    let mut d = date.split('-').map(|p| p.parse::<i64>().ok());
    let (y, m, day) = (d.next()??, d.next()??, d.next()??);
    let time = rest.split(['+', 'Z']).next()?;
    let mut t = time.split(':');
    let (h, min) = (
        t.next()?.parse::<i64>().ok()?,
        t.next()?.parse::<i64>().ok()?,
    );
    let secs: f64 = t.next()?.parse().ok()?;
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(((days * 24 + h) * 60 + min) * 60_000 + (secs * 1_000.0).round() as i64)
}

/// The context of an impression: a bias, then one-hot positions of every
/// (user feature, value) seen.
#[derive(Debug, Clone)]
pub struct Encoder(BTreeMap<(usize, String), usize>);

impl Encoder {
    /// The positions of every value in `logs`.
    pub fn new<'a>(logs: impl IntoIterator<Item = &'a Impression>) -> Self {
        let mut m = BTreeMap::new();
        for imp in logs {
            for (f, v) in imp.user.iter().enumerate() {
                m.entry((f, v.clone())).or_insert(0);
            }
        }
        for (i, slot) in m.values_mut().enumerate() {
            *slot = i + 1;
        }
        Self(m)
    }

    /// The context's length.
    pub fn dim(&self) -> usize {
        self.0.len() + 1
    }

    /// The context of `imp`.
    pub fn context(&self, imp: &Impression) -> Vec<f64> {
        let mut x = vec![0.0; self.dim()];
        x[0] = 1.0;
        for (f, v) in imp.user.iter().enumerate() {
            if let Some(&i) = self.0.get(&(f, v.clone())) {
                x[i] = 1.0;
            }
        }
        x
    }
}

/// A logging policy's own click rate, with its 95% interval.
#[derive(Debug, Clone, Serialize)]
pub struct OnPolicy {
    /// The logging policy.
    pub policy: &'static str,
    /// Its impressions.
    pub impressions: usize,
    /// Its click rate.
    pub value: f64,
    /// The interval's lower end.
    pub ci_low: f64,
    /// The interval's upper end.
    pub ci_high: f64,
}

/// A candidate policy's estimates on the evaluation half.
#[derive(Debug, Clone, Serialize)]
pub struct ObdCandidate {
    /// The policy.
    pub policy: &'static str,
    /// Its estimates.
    pub estimates: Vec<Estimate>,
    /// Its importance weights on the log, unclipped (none for replay only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub weights: Option<Weights>,
}

/// What `nba obd` reports.
#[derive(Debug, Clone, Serialize)]
pub struct ObdReport {
    /// The campaign.
    pub campaign: String,
    /// Its items.
    pub items: usize,
    /// The context's length.
    pub context_dim: usize,
    /// Each logging policy's own click rate over its whole log.
    pub logged: Vec<OnPolicy>,
    /// Which impressions the candidates are evaluated on.
    pub evaluated_on: &'static str,
    /// How many.
    pub evaluation_impressions: usize,
    /// The logging policy's own click rate on the impressions the candidates
    /// are evaluated on: what their estimates compare with.
    pub logged_on_evaluation: OnPolicy,
    /// The candidates.
    pub candidates: Vec<ObdCandidate>,
    /// Impressions left out for a propensity not in (0, 1]
    /// (--allow-bad-propensities).
    pub bad_propensities: BadPropensities,
}

fn on_policy(policy: &'static str, log: &[Impression]) -> OnPolicy {
    let n = log.len() as f64;
    let mean = log.iter().map(|i| i.click).sum::<f64>() / n;
    let var = log.iter().map(|i| (i.click - mean).powi(2)).sum::<f64>() / (n - 1.0);
    let half = 1.959_963_984_540_054 * (var / n).sqrt();
    OnPolicy {
        policy,
        impressions: log.len(),
        value: mean,
        ci_low: mean - half,
        ci_high: mean + half,
    }
}

fn one_hot(k: usize, i: usize) -> Vec<f64> {
    let mut v = vec![0.0; k];
    v[i] = 1.0;
    v
}

/// Evaluates the candidates (uniform random, the most clicked item, a ridge
/// greedy policy, LinUCB learning online) on the second half of the
/// uniform-random log, the reward model and the fixed policies trained on
/// the first half; `seed` draws the online policy's exploration.
pub fn evaluate_obd(
    logs: &ObdLogs,
    seed: u64,
    options: estimators::Options,
) -> Result<ObdReport, String> {
    let (random, bts) = (&logs.random, &logs.bts);
    if random.len() < 4 {
        return Err("the uniform-random log has fewer than 4 impressions".to_owned());
    }
    let items = logs.items();
    let enc = logs.encoder();
    let d = enc.dim();
    let (train, test) = random.split_at(random.len() / 2);
    let ids: Vec<String> = (0..items).map(|i| i.to_string()).collect();

    // The reward model and the contextual greedy policy: one ridge regression
    // per item, trained on the first half. About 60 impressions per item and
    // under 1% clicks: a strong prior (λ = 50) keeps it from chasing noise.
    let mut ridge = LinearBandit::new(BanditConfig {
        dim: d,
        lambda: 50.0,
        forgetting: Forgetting::Stationary,
        model: Model::Disjoint,
        policy: Policy::EpsilonGreedy { epsilon: 0.0 },
        seed,
        ..BanditConfig::default()
    });
    let mut clicks = vec![(0.0f64, 0.0f64); items];
    for imp in train {
        ridge.update(&ids[imp.item], &enc.context(imp), &[], imp.click, 0);
        clicks[imp.item].0 += imp.click;
        clicks[imp.item].1 += 1.0;
    }
    let popular = (0..items)
        .max_by(|&p, &q| {
            let rate = |i: usize| (clicks[i].0 + 1.0) / (clicks[i].1 + 100.0);
            rate(p).total_cmp(&rate(q)).then(q.cmp(&p))
        })
        .unwrap_or(0);

    let logged = |imp: &Impression, target: Vec<f64>, x: &[f64]| LoggedDecision {
        action: imp.item,
        propensity: imp.propensity,
        reward: imp.click,
        target,
        predicted: ids
            .iter()
            .map(|id| ridge.estimate(id, x, &[]).0.clamp(0.0, 1.0))
            .collect(),
    };
    let mut candidates = Vec::new();
    for (policy, choose) in [
        ("uniform-random", None),
        ("most-clicked-item", Some(popular)),
    ] {
        let log: Vec<LoggedDecision> = test
            .iter()
            .map(|imp| {
                let x = enc.context(imp);
                let target = match choose {
                    Some(i) => one_hot(items, i),
                    None => vec![1.0 / items as f64; items],
                };
                logged(imp, target, &x)
            })
            .collect();
        candidates.push(ObdCandidate {
            policy,
            estimates: evaluate_with(&log, options),
            weights: Some(weights(&log)),
        });
    }
    let greedy: Vec<LoggedDecision> = test
        .iter()
        .map(|imp| {
            let x = enc.context(imp);
            // Greedy: the item with the highest estimate (the first on a tie).
            let best = (0..items)
                .max_by(|&p, &q| {
                    let est = |i: usize| ridge.estimate(&ids[i], &x, &[]).0;
                    est(p).total_cmp(&est(q)).then(q.cmp(&p))
                })
                .unwrap_or(0);
            logged(imp, one_hot(items, best), &x)
        })
        .collect();
    candidates.push(ObdCandidate {
        policy: "ridge-greedy",
        estimates: evaluate_with(&greedy, options),
        weights: Some(weights(&greedy)),
    });

    // LinUCB learning online: only the replay method applies to a policy that
    // changes as it goes (Li et al. 2011: it learns from the matched events).
    let mut online = LinearBandit::new(BanditConfig {
        dim: d,
        forgetting: Forgetting::Stationary,
        policy: Policy::LinUcb {
            alpha: 0.5,
            epsilon: 0.0,
        },
        seed,
        ..BanditConfig::default()
    });
    let mut matched = Vec::new();
    for (t, imp) in test.iter().enumerate() {
        let x = enc.context(imp);
        let c = online.decide(&format!("obd-{t}"), &x, &Candidates::new(&ids));
        if c.index == imp.item {
            online.update(&ids[imp.item], &x, &[], imp.click, t as i64);
            matched.push(LoggedDecision {
                action: 0,
                propensity: 1.0,
                reward: imp.click,
                target: vec![1.0],
                predicted: Vec::new(),
            });
        }
    }
    let replay = evaluate(&matched)
        .into_iter()
        .filter(|e| e.estimator == Estimator::Replay)
        .collect();
    candidates.push(ObdCandidate {
        policy: "linucb-online",
        estimates: replay,
        weights: None,
    });

    Ok(ObdReport {
        bad_propensities: logs.bad_propensities.clone(),
        campaign: logs.campaign.clone(),
        items,
        context_dim: d,
        logged: vec![
            on_policy("uniform-random", random),
            on_policy("bernoulli-ts", bts),
        ],
        evaluated_on: "second half of the uniform-random log",
        evaluation_impressions: test.len(),
        logged_on_evaluation: on_policy("uniform-random", test),
        candidates,
    })
}

/// Writes `log` as a recording of nba topics, for `nba backtest FILE`:
/// each impression (and click) as raw interactions, and the decision
/// request, next-best-action with the logged propensity, and reward that
/// nba would have logged. Returns the records written.
pub fn write_recording(
    log: &[Impression],
    policy: &str,
    items: usize,
    enc: &Encoder,
    path: &Path,
) -> Result<u64, String> {
    let file = std::fs::File::create(path)
        .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
    let mut w = RecordingOut::new(std::io::BufWriter::new(file))?;
    let candidates: Vec<String> = (0..items).map(|i| i.to_string()).collect();
    let mut put = |topic: Topic, key: &str, t: i64, value: Vec<u8>| {
        w.append(
            topic.default_name(),
            Some(key.as_bytes().to_vec()),
            value,
            Some(t),
        )
    };
    let enc_err = |e: nba_schema::CodecError| e.to_string();
    for (i, imp) in log.iter().enumerate() {
        let id = format!("obd-{policy}-{i}");
        let customer = format!("obd-user-{}", imp.user.join("-"));
        let t = imp.timestamp;
        let impression = Interaction {
            decision_id: Some(id.clone()),
            action_id: Some(imp.item.to_string()),
            ..Interaction::new(
                format!("{id}-impression"),
                customer.clone(),
                t,
                "web",
                "impression",
            )
        };
        put(
            Topic::InteractionsRaw,
            &customer,
            t,
            encode(&impression).map_err(enc_err)?,
        )?;
        let request = DecisionRequest {
            decision_id: id.clone(),
            customer_id: customer.clone(),
            timestamp: t,
            channel: "web".into(),
            context: enc.context(imp),
            candidates: candidates.clone(),
            action_context: Vec::new(),
        };
        put(
            Topic::DecisionRequests,
            &customer,
            t,
            encode(&request).map_err(enc_err)?,
        )?;
        let nba = NextBestAction {
            decision_id: id.clone(),
            customer_id: customer.clone(),
            timestamp: t,
            action_id: imp.item.to_string(),
            propensity: imp.propensity,
            score: 0.0,
            policy: format!("obd-{policy}"),
            model_version: 0,
            candidates: i32::try_from(items).unwrap_or(i32::MAX),
            scores: Vec::new(),
            channel: Some(request.channel.clone()),
            group: String::new(),
            treatment: String::new(),
            payload: Default::default(),
            experiment_arm: String::new(),
            shadows: Vec::new(),
        };
        put(
            Topic::NextBestActions,
            &customer,
            t,
            encode(&nba).map_err(enc_err)?,
        )?;
        if imp.click > 0.0 {
            let click = Interaction {
                event_id: format!("{id}-click"),
                event_type: "click".into(),
                ..impression
            };
            put(
                Topic::InteractionsRaw,
                &customer,
                t,
                encode(&click).map_err(enc_err)?,
            )?;
            let reward = Reward {
                reward_id: click.event_id.clone(),
                decision_id: id,
                customer_id: customer.clone(),
                timestamp: t,
                action_id: imp.item.to_string(),
                value: imp.click,
                event_type: "click".into(),
            };
            put(
                Topic::Rewards,
                &customer,
                t,
                encode(&reward).map_err(enc_err)?,
            )?;
        }
    }
    let (out, written) = w.finish()?;
    out.into_inner()
        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    Ok(written)
}
