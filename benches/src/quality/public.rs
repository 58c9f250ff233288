//! Public data sets as bandit streams (files written by
//! `benches/fetch-public-data.sh`).
//!
//! A classification data set becomes a contextual bandit the usual way
//! (Bietti et al., "A Contextual Bandit Bake-off"): each example is a
//! decision among the classes, paying 1 for a correct class (any of its
//! labels, for multi-label data) and 0 otherwise; one pass, in a seeded
//! random order. Features are standardised and a bias is prepended.
//!
//! The ratings stream (MovieLens) becomes a stream of customers choosing
//! among genres: at each rating, in time order, the decision is which genre
//! to put forward to that user; it pays 1 if the movie they rated next is of
//! that genre. The context is what a deployment would declare: a bias, the
//! user's genre shares so far and how much history they have; each genre's
//! pair features are what a deployment declaring `["bias",
//! "affinity:category", "tag:category"]` gets: a bias, the user's affinity
//! to the genre (share) and the genre itself (one-hot).

use std::path::Path;

use nba_core::{BanditConfig, Model, Residual};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

use super::{Case, Row, csv_fields, most_frequent};

/// A classification data set.
#[derive(Debug, Clone)]
pub struct Classification {
    name: String,
    about: String,
    classes: Vec<String>,
    labels: Vec<Vec<u32>>,
    x: Vec<Vec<f64>>,
}

/// The classification data sets and what they are.
pub const CLASSIFICATION: [(&str, &str); 5] = [
    (
        "letter",
        "UCI letter recognition: 20,000 × 16 features, 26 classes",
    ),
    (
        "satellite",
        "UCI Landsat satellite: 6,435 × 36 features, 6 classes",
    ),
    (
        "shuttle",
        "UCI Statlog shuttle: 58,000 × 9 features, 7 classes (78% one class)",
    ),
    (
        "segment",
        "UCI image segmentation: 2,310 × 18 features, 7 classes",
    ),
    (
        "yeast",
        "yeast gene functions: 2,417 × 103 features, 14 labels (several per example)",
    ),
];

impl Classification {
    /// Loads `dir/name.csv`.
    pub fn load(dir: &Path, name: &str, about: &str) -> Result<Self, String> {
        let path = dir.join(format!("{name}.csv"));
        let text = std::fs::read_to_string(&path).map_err(|e| {
            format!(
                "{}: {e} (run benches/fetch-public-data.sh first)",
                path.display()
            )
        })?;
        let mut classes: Vec<String> = Vec::new();
        let (mut labels, mut raw) = (Vec::new(), Vec::new());
        for (n, line) in text.lines().enumerate().skip(1) {
            if line.trim().is_empty() {
                continue;
            }
            let f = csv_fields(line);
            let mut ls = Vec::new();
            for l in f[0].split(';').filter(|l| !l.is_empty()) {
                let i = match classes.iter().position(|c| c == l) {
                    Some(i) => i,
                    None => {
                        classes.push(l.to_owned());
                        classes.len() - 1
                    }
                };
                ls.push(i as u32);
            }
            let x: Result<Vec<f64>, _> = f[1..].iter().map(|v| v.trim().parse::<f64>()).collect();
            let x = x.map_err(|e| format!("{}:{}: {e}", path.display(), n + 1))?;
            labels.push(ls);
            raw.push(x);
        }
        // Standardise each feature; prepend the bias.
        let d = raw.first().map_or(0, Vec::len);
        let n = raw.len().max(1) as f64;
        let mean: Vec<f64> = (0..d)
            .map(|j| raw.iter().map(|r| r[j]).sum::<f64>() / n)
            .collect();
        let sd: Vec<f64> = (0..d)
            .map(|j| (raw.iter().map(|r| (r[j] - mean[j]).powi(2)).sum::<f64>() / n).sqrt())
            .collect();
        let x = raw
            .iter()
            .map(|r| {
                std::iter::once(1.0)
                    .chain((0..d).map(|j| {
                        if sd[j] > 0.0 {
                            (r[j] - mean[j]) / sd[j]
                        } else {
                            0.0
                        }
                    }))
                    .collect()
            })
            .collect();
        Ok(Self {
            name: name.to_owned(),
            about: about.to_owned(),
            classes,
            labels,
            x,
        })
    }

    /// The case: classes as actions, no categories, no pair features.
    pub fn case(&self) -> Case {
        Case {
            name: self.name.clone(),
            about: self.about.clone(),
            actions: self.classes.clone(),
            categories: vec![None; self.classes.len()],
            values: vec![1.0; self.classes.len()],
            dim: self.x.first().map_or(1, Vec::len),
            action_dim: 0,
            drift: false,
        }
    }

    /// The engine's default for a deployment that declares a customer
    /// context and no pair features.
    pub fn default_config(&self) -> BanditConfig {
        BanditConfig {
            model: Model::Disjoint,
            ..BanditConfig::default()
        }
    }

    /// One pass in the order drawn from `seed`, one decision per second.
    pub fn rows(&self, seed: u64) -> impl Iterator<Item = Row> + '_ {
        let mut order: Vec<usize> = (0..self.x.len()).collect();
        order.shuffle(&mut ChaCha8Rng::seed_from_u64(seed));
        let k = self.classes.len();
        order.into_iter().enumerate().map(move |(t, i)| Row {
            t: t as i64 * 1_000,
            x: self.x[i].clone(),
            candidates: (0..k as u32).collect(),
            z: Vec::new(),
            truth: (0..k as u32)
                .map(|c| f64::from(u8::from(self.labels[i].contains(&c))))
                .collect(),
            draw: vec![0.5; k],
            favourite: None,
            popular: None,
            after_change: false,
        })
    }
}

/// The MovieLens ratings stream.
#[derive(Debug, Clone)]
pub struct Ratings {
    genres: Vec<String>,
    /// (user, genres of the rated movie, time ms), in time order.
    events: Vec<(u32, Vec<u32>, i64)>,
    users: usize,
}

impl Ratings {
    /// What it is.
    pub const ABOUT: &'static str = "MovieLens (ml-latest-small): 100,004 ratings by 671 users; choose one of 20 genres per rating";

    /// Loads `dir/movielens.csv`.
    pub fn load(dir: &Path) -> Result<Self, String> {
        let path = dir.join("movielens.csv");
        let text = std::fs::read_to_string(&path).map_err(|e| {
            format!(
                "{}: {e} (run benches/fetch-public-data.sh first)",
                path.display()
            )
        })?;
        let mut genres: Vec<String> = Vec::new();
        let mut users: Vec<String> = Vec::new();
        let mut events = Vec::new();
        for (n, line) in text.lines().enumerate().skip(1) {
            let f = csv_fields(line);
            if f.len() < 5 {
                continue;
            }
            let user = match users.iter().position(|u| *u == f[0]) {
                Some(i) => i,
                None => {
                    users.push(f[0].clone());
                    users.len() - 1
                }
            };
            let t: i64 = f[2]
                .parse()
                .map_err(|e| format!("{}:{}: {e}", path.display(), n + 1))?;
            let gs = f[4]
                .split('|')
                .map(|g| match genres.iter().position(|x| x == g) {
                    Some(i) => i as u32,
                    None => {
                        genres.push(g.to_owned());
                        (genres.len() - 1) as u32
                    }
                })
                .collect();
            events.push((user as u32, gs, t * 1_000));
        }
        events.sort_by_key(|e| e.2);
        Ok(Self {
            genres,
            events,
            users: users.len(),
        })
    }

    /// The case: genres as actions (each its own category), pair features
    /// [bias, affinity, genre one-hot].
    pub fn case(&self) -> Case {
        Case {
            name: "movielens".into(),
            about: Self::ABOUT.into(),
            actions: self.genres.clone(),
            categories: (0..self.genres.len() as u32).map(Some).collect(),
            values: vec![1.0; self.genres.len()],
            dim: self.genres.len() + 2,
            action_dim: 2 + self.genres.len(),
            drift: false,
        }
    }

    /// The engine's default where a deployment declares pair features: the
    /// action-aware model.
    pub fn default_config(&self) -> BanditConfig {
        BanditConfig {
            model: Model::ActionAware {
                features: 2 + self.genres.len(),
                residual: Residual::default(),
            },
            ..BanditConfig::default()
        }
    }

    /// The stream, in time order. Shares are over the user's last 30 days
    /// of ratings, as a deployment with `breakdown_window = "30d"` computes
    /// `categories` and `affinity:category`; the heuristics use all time.
    pub fn rows(&self) -> impl Iterator<Item = Row> + '_ {
        const WINDOW_MS: i64 = 30 * 86_400_000;
        let g = self.genres.len();
        let mut all_time = vec![vec![0u32; g]; self.users];
        let mut recent = vec![vec![0u32; g]; self.users];
        let mut recent_total = vec![0u32; self.users];
        let mut history: Vec<std::collections::VecDeque<usize>> =
            vec![std::collections::VecDeque::new(); self.users];
        let mut global = vec![0u32; g];
        self.events
            .iter()
            .enumerate()
            .map(move |(i, (user, genres, t))| {
                let u = *user as usize;
                // Ratings older than the window leave the shares.
                while let Some(&j) = history[u].front() {
                    let (_, old, at) = &self.events[j];
                    if *at > t - WINDOW_MS {
                        break;
                    }
                    for c in old {
                        recent[u][*c as usize] -= 1;
                    }
                    recent_total[u] -= old.len() as u32;
                    history[u].pop_front();
                }
                let n = f64::from(recent_total[u]);
                let share = |c: usize| {
                    if n > 0.0 {
                        f64::from(recent[u][c]) / n
                    } else {
                        0.0
                    }
                };
                let mut x = vec![1.0];
                x.extend((0..g).map(share));
                x.push((1.0 + n).ln() / 5.0);
                let z = (0..g)
                    .flat_map(|c| {
                        let mut row = vec![0.0; 2 + g];
                        row[0] = 1.0;
                        row[1] = share(c);
                        row[2 + c] = 1.0;
                        row
                    })
                    .collect();
                let row = Row {
                    t: *t,
                    x,
                    candidates: (0..g as u32).collect(),
                    z,
                    truth: (0..g as u32)
                        .map(|c| f64::from(u8::from(genres.contains(&c))))
                        .collect(),
                    draw: vec![0.5; g],
                    favourite: most_frequent(&all_time[u]),
                    popular: most_frequent(&global),
                    after_change: false,
                };
                // What this rating tells, for the decisions after it.
                for c in genres {
                    all_time[u][*c as usize] += 1;
                    recent[u][*c as usize] += 1;
                    global[*c as usize] += 1;
                }
                recent_total[u] += genres.len() as u32;
                history[u].push_back(i);
                row
            })
    }
}
