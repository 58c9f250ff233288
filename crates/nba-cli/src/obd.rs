//! `nba obd`: off-policy evaluation on the Open Bandit Dataset sample
//! (ZOZOTOWN, CC BY 4.0; `scripts/fetch-obd.sh` fetches it): 10,000 logged
//! impressions per campaign for a uniform-random and a Bernoulli-Thompson
//! logging policy, with propensities.
//!
//! Each impression is one decision among the campaign's items (positions are
//! not modelled; the logged propensity is the item's marginal probability). The
//! context is a bias plus a one-hot encoding of the four user features. The
//! first half of the uniform-random log (in time order) trains the candidate
//! policies and the reward model; the second half evaluates them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, ValueEnum};
use nba_core::estimators::{
    self, BadPropensities, Estimate, Estimator, LoggedDecision, Weights, evaluate, evaluate_with,
    weights,
};
use nba_core::{
    BanditConfig, Candidates, DecisionRequest, Forgetting, Interaction, LinearBandit, Model,
    NextBestAction, Policy, Reward,
};
use nba_schema::{RecordedRecord, RecordingWriter, encode};
use serde::Serialize;

#[derive(Debug, Args)]
pub(crate) struct ObdArgs {
    /// The `obd` directory extracted by scripts/fetch-obd.sh (it holds
    /// random/ and bts/).
    #[arg(value_name = "DIR")]
    dir: PathBuf,
    /// Which campaign.
    #[arg(long, value_enum, default_value_t = Campaign::All)]
    campaign: Campaign,
    /// Seed of the online policies' exploration.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Also print the report as one JSON object on the last line of stdout.
    #[arg(long)]
    json: bool,
    /// Also write the chosen log as a recording (impressions and clicks as raw
    /// interactions; decision requests, next-best-actions with the logged
    /// propensities, and rewards), for `nba backtest FILE` to evaluate
    /// candidates on.
    #[arg(long, value_name = "FILE")]
    record: Option<PathBuf>,
    /// Which log --record writes.
    #[arg(long, value_enum, default_value_t = LogName::Random)]
    log: LogName,
    /// Clip every importance weight at this (IPS, SNIPS, DR, SNDR): less
    /// variance, some bias.
    #[arg(long, value_name = "W", value_parser = positive)]
    clip: Option<f64>,
    /// Intervals: normal (±1.96 standard errors), or also bootstrap (1,000
    /// resamples of the impressions drawn from --seed; no normal
    /// approximation, for small samples and rare rewards).
    #[arg(long, value_enum, default_value_t = Interval::Normal)]
    ci: Interval,
    /// Also estimate Switch-DR: DR's correction only where the importance
    /// weight is at most this, the reward model alone elsewhere.
    #[arg(long, value_name = "TAU", value_parser = positive)]
    switch_tau: Option<f64>,
    /// Leave impressions whose propensity_score is not in (0, 1] (0,
    /// negative, NaN, above 1) out, counted and reported, instead of
    /// failing: they cannot be weighted.
    #[arg(long)]
    allow_bad_propensities: bool,
}

/// Which intervals the estimates get.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Interval {
    /// ±1.96 standard errors.
    Normal,
    /// The normal one and a seeded bootstrap.
    Bootstrap,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogName {
    /// The uniform-random logging policy.
    Random,
    /// The Bernoulli Thompson sampling logging policy.
    Bts,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Campaign {
    All,
    Men,
    Women,
}

impl Campaign {
    fn name(self) -> &'static str {
        match self {
            Campaign::All => "all",
            Campaign::Men => "men",
            Campaign::Women => "women",
        }
    }
}

/// One logged impression.
#[derive(Debug, Clone)]
struct Impression {
    /// Event time, ms since the epoch.
    timestamp: i64,
    item: usize,
    click: f64,
    propensity: f64,
    user: [String; 4],
}

/// The impressions of the two logs of `a`'s campaign, uniform random and
/// Bernoulli Thompson sampling; those whose propensity cannot weight them
/// refuse the run unless `a` allows them, and are then left out.
fn load_logs(a: &ObdArgs) -> Result<(Vec<Impression>, Vec<Impression>, BadPropensities), String> {
    let c = a.campaign.name();
    let mut bad = BadPropensities::default();
    let random = load(&a.dir.join(format!("random/{c}/{c}.csv")), &mut bad)?;
    let bts = load(&a.dir.join(format!("bts/{c}/{c}.csv")), &mut bad)?;
    match (bad.refusal(), a.allow_bad_propensities) {
        (Some(why), false) => return Err(why),
        (Some(_), true) => eprintln!("{}", bad.warning().unwrap_or_default()),
        (None, _) => {}
    }
    Ok((random, bts, bad))
}

/// The impressions of one log; those whose propensity cannot weight them
/// are counted in `bad` and left out.
fn load(path: &Path, bad_propensities: &mut BadPropensities) -> Result<Vec<Impression>, String> {
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
fn parse_time(s: &str) -> Option<i64> {
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

/// One-hot positions of every (user feature, value) seen.
struct Encoder(BTreeMap<(usize, String), usize>);

impl Encoder {
    fn new<'a>(logs: impl IntoIterator<Item = &'a Impression>) -> Self {
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

    fn dim(&self) -> usize {
        self.0.len() + 1
    }

    fn context(&self, imp: &Impression) -> Vec<f64> {
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

#[derive(Debug, Serialize)]
struct OnPolicy {
    policy: &'static str,
    impressions: usize,
    value: f64,
    ci_low: f64,
    ci_high: f64,
}

#[derive(Debug, Serialize)]
struct Candidate {
    policy: &'static str,
    estimates: Vec<Estimate>,
    /// Its importance weights on the log, unclipped (none for replay only).
    #[serde(skip_serializing_if = "Option::is_none")]
    weights: Option<Weights>,
}

#[derive(Debug, Serialize)]
struct Report {
    campaign: &'static str,
    items: usize,
    context_dim: usize,
    logged: Vec<OnPolicy>,
    evaluated_on: &'static str,
    evaluation_impressions: usize,
    /// The logging policy's own click rate on the impressions the candidates
    /// are evaluated on: what their estimates compare with.
    logged_on_evaluation: OnPolicy,
    candidates: Vec<Candidate>,
    /// Impressions left out for a propensity not in (0, 1]
    /// (--allow-bad-propensities).
    bad_propensities: BadPropensities,
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

fn build(a: &ObdArgs) -> Result<Report, String> {
    let (random, bts, bad_propensities) = load_logs(a)?;
    if random.len() < 4 {
        return Err("the uniform-random log has fewer than 4 impressions".to_owned());
    }
    let items = random.iter().chain(&bts).map(|i| i.item).max().unwrap_or(0) + 1;
    let enc = Encoder::new(random.iter().chain(&bts));
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
        seed: a.seed,
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
        candidates.push(Candidate {
            policy,
            estimates: evaluate_with(&log, options(a)),
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
    candidates.push(Candidate {
        policy: "ridge-greedy",
        estimates: evaluate_with(&greedy, options(a)),
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
        seed: a.seed,
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
    candidates.push(Candidate {
        policy: "linucb-online",
        estimates: replay,
        weights: None,
    });

    Ok(Report {
        bad_propensities,
        campaign: a.campaign.name(),
        items,
        context_dim: d,
        logged: vec![
            on_policy("uniform-random", &random),
            on_policy("bernoulli-ts", &bts),
        ],
        evaluated_on: "second half of the uniform-random log",
        evaluation_impressions: test.len(),
        logged_on_evaluation: on_policy("uniform-random", test),
        candidates,
    })
}

/// Writes `log` as a recording of nba topics (see `ObdArgs::record`).
fn write_recording(
    log: &[Impression],
    policy: &str,
    items: usize,
    enc: &Encoder,
    path: &Path,
) -> Result<u64, String> {
    let file = std::fs::File::create(path)
        .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
    let mut w = RecordingWriter::new(std::io::BufWriter::new(file))?;
    let candidates: Vec<String> = (0..items).map(|i| i.to_string()).collect();
    let mut offsets = [0i64; 4];
    let mut put = |slot: usize, topic: &str, key: &str, t: i64, value: Vec<u8>| {
        offsets[slot] += 1;
        w.append(&RecordedRecord {
            topic: topic.to_owned(),
            partition: 0,
            offset: offsets[slot] - 1,
            timestamp: Some(t),
            key: Some(key.as_bytes().to_vec()),
            value: Some(value),
            headers: Vec::new(),
        })
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
            0,
            "nba.interactions.raw",
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
            1,
            "nba.decision-requests",
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
            2,
            "nba.next-best-actions",
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
                0,
                "nba.interactions.raw",
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
                3,
                "nba.rewards",
                &customer,
                t,
                encode(&reward).map_err(enc_err)?,
            )?;
        }
    }
    w.finish()?
        .into_inner()
        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    Ok(offsets.iter().sum::<i64>() as u64)
}

pub(crate) fn run(a: &ObdArgs) -> ExitCode {
    if let Some(path) = &a.record {
        let (dir, policy) = match a.log {
            LogName::Random => ("random", "random"),
            LogName::Bts => ("bts", "bts"),
        };
        let written = load_logs(a).and_then(|(random, bts, _)| {
            let items = random.iter().chain(&bts).map(|i| i.item).max().unwrap_or(0) + 1;
            let enc = Encoder::new(random.iter().chain(&bts));
            let log = if dir == "random" { &random } else { &bts };
            write_recording(log, policy, items, &enc, path)
        });
        match written {
            Ok(n) => eprintln!("wrote {n} records to {}", path.display()),
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(2);
            }
        }
    }
    let r = match build(a) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    println!(
        "Open Bandit Dataset, campaign {}: {} items, context dimension {}",
        r.campaign, r.items, r.context_dim
    );
    for l in &r.logged {
        println!(
            "  logged by {:<15} {} impressions, click rate {:.5} [{:.5}, {:.5}]",
            l.policy, l.impressions, l.value, l.ci_low, l.ci_high
        );
    }
    let l = &r.logged_on_evaluation;
    println!(
        "  candidates, estimated on the {} ({} impressions; the logging policy's own click rate there {:.5} [{:.5}, {:.5}]):",
        r.evaluated_on, r.evaluation_impressions, l.value, l.ci_low, l.ci_high
    );
    for c in &r.candidates {
        for e in &c.estimates {
            println!("    {:<18} {e}", c.policy);
        }
        if let Some(w) = c.weights {
            println!(
                "    {:<18} importance weights: mean {:.3}, max {:.1}",
                c.policy, w.mean, w.max
            );
        }
    }
    if a.json {
        return crate::print_json_line(&r);
    }
    ExitCode::SUCCESS
}

/// What `a` asks of the estimators.
fn options(a: &ObdArgs) -> estimators::Options {
    estimators::Options {
        clip: a.clip,
        bootstrap_seed: (a.ci == Interval::Bootstrap).then_some(a.seed),
        switch_tau: a.switch_tau,
    }
}

/// A number above zero, for --clip.
pub(crate) fn positive(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v > 0.0 && v.is_finite() => Ok(v),
        _ => Err(format!("{s} is not a number above zero")),
    }
}
