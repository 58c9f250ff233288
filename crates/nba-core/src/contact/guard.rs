//! The model-updater's half of the contact policy: frequency caps, cool-downs
//! and budgets, with the contact history they need.

use std::collections::VecDeque;

use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};

use super::{CapScope, ContactPolicyConfig, duration};
use crate::{ActionCatalog, ActionKind, EventTime, Names, Vocabulary};

/// Contact times are kept in whole minutes since the Unix epoch (4 bytes, good
/// until the year 10136): caps and cool-downs are counted in minutes.
type Minute = u32;

fn minute(t: EventTime) -> Minute {
    Minute::try_from(t.div_euclid(60_000).max(0)).unwrap_or(Minute::MAX)
}

fn minutes(ms: i64) -> Minute {
    Minute::try_from(ms.div_euclid(60_000).max(1)).unwrap_or(Minute::MAX)
}

#[derive(Debug, Clone)]
struct Cap {
    scope: CapScope,
    max: u32,
    per: Minute,
}

#[derive(Debug, Clone)]
struct Budget {
    max: u64,
    per_ms: Option<i64>,
    /// Contact times inside the window (or, without one, only their count),
    /// in time order.
    spent: VecDeque<EventTime>,
    total: u64,
    /// This instance's contacts not yet published to the others (only when
    /// budgets are shared).
    unpublished: Vec<EventTime>,
}

impl Budget {
    /// Counts a contact at `at` (this instance's or another's).
    fn spend(&mut self, at: EventTime) {
        self.total += 1;
        if self.per_ms.is_some() {
            // Others' contacts may be older than ours: keep the window sorted.
            let i = self.spent.partition_point(|t| *t <= at);
            self.spent.insert(i, at);
        }
    }

    fn used(&mut self, now: EventTime) -> u64 {
        match self.per_ms {
            Some(per) => {
                while self.spent.front().is_some_and(|t| *t <= now - per) {
                    self.spent.pop_front();
                }
                self.spent.len() as u64
            }
            None => self.total,
        }
    }
}

/// One contact: when, which action, which channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct Contact {
    at: Minute,
    action: u16,
    channel: u8,
}

/// One customer's recent contacts (as many as the caps can count) and their
/// last negative response per action.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct ContactHistory {
    contacts: VecDeque<Contact>,
    negative: Vec<(u16, Minute)>,
}

impl ContactHistory {
    /// The newest minute anything was noted.
    fn newest(&self) -> Minute {
        let contact = self.contacts.back().map_or(0, |c| c.at);
        self.negative
            .iter()
            .map(|(_, t)| *t)
            .fold(contact, Minute::max)
    }
}

/// What the guard has kept from the bandit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuardStats {
    /// Candidates removed by a frequency cap.
    pub capped: u64,
    /// Candidates removed by a cool-down.
    pub cooling_down: u64,
    /// Candidates removed because their budget was spent.
    pub over_budget: u64,
    /// Requests left with no candidate (answered with no action).
    pub suppressed: u64,
}

/// Frequency caps, cool-downs and budgets for one model-updater.
#[derive(Debug, Clone, Default)]
pub struct ContactGuard {
    caps: Vec<Cap>,
    keep: usize,
    cooldown: Option<Minute>,
    negative_responses: Vec<String>,
    channels: Names,
    budgets: FxHashMap<String, Budget>,
    actions: Vec<String>,
    customers: FxHashMap<Box<str>, ContactHistory>,
    /// How long a history matters: the longest cap window or cool-down. A
    /// history with nothing newer is deleted, so the guard holds only
    /// customers contacted (or who declined) that recently.
    horizon: Minute,
    /// (minute, customer) of every note, oldest first: where expiry looks.
    expiry: VecDeque<(Minute, Box<str>)>,
    stats: GuardStats,
    share_budgets: bool,
}

/// Contacts of one budgeted action, as instances tell each other (in
/// [`crate::ModelDelta`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BudgetSpend {
    /// The action.
    pub action_id: String,
    /// When each contact was made.
    pub at: Vec<EventTime>,
}

/// What a [`ContactGuard`] carries over a restart.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct GuardSnapshot {
    actions: Vec<String>,
    customers: Vec<(String, ContactHistory)>,
    budgets: Vec<(String, Vec<EventTime>, u64)>,
    stats: GuardStats,
}

impl ContactGuard {
    /// Compiles the caps and cool-down of `cfg` and the budgets of the
    /// catalog's actions; refuses caps that the kept history could not count
    /// exactly, saying what to add. The vocabulary's negative outcomes start
    /// the cool-down.
    pub fn new(
        cfg: &ContactPolicyConfig,
        vocabulary: &Vocabulary,
        catalog: &ActionCatalog,
    ) -> Result<Self, String> {
        let mut caps = Vec::new();
        for c in &cfg.caps {
            let per = duration(&format!("cap {:?} per", c.scope), &c.per)?;
            if c.max == 0 {
                return Err(format!(
                    "cap {:?} per {}: max = 0 would forbid every contact; remove the action from the catalog instead",
                    c.scope, c.per
                ));
            }
            caps.push(Cap {
                scope: c.scope,
                max: c.max,
                per: minutes(per),
            });
        }
        // The history keeps the last `keep` contacts. That counts every cap
        // exactly when an overall cap over the longest window bounds how many
        // contacts such a window can hold.
        let longest = caps.iter().map(|c| c.per).max().unwrap_or(0);
        let keep = caps
            .iter()
            .filter(|c| c.scope == CapScope::Overall && c.per >= longest)
            .map(|c| c.max as usize)
            .min();
        let keep = match (caps.is_empty(), keep) {
            (true, _) => 0,
            (false, Some(k)) => k,
            (false, None) => {
                return Err(format!(
                    "add an overall cap over at least the longest cap window ({} minutes), e.g. [[cap]] scope = \"overall\" max = 10 per = \"{}m\": nba keeps as many recent contacts per customer as that cap allows, which is what makes every cap exact",
                    longest, longest
                ));
            }
        };
        let cooldown = cfg
            .cooldown_after_negative
            .as_deref()
            .map(|d| duration("cooldown_after_negative", d).map(minutes))
            .transpose()?;
        let mut guard = Self {
            horizon: longest.max(cooldown.unwrap_or(0)),
            caps,
            keep,
            cooldown,
            negative_responses: vocabulary
                .outcomes
                .iter()
                .filter(|o| o.negative)
                .map(|o| o.event_type.clone())
                .collect(),
            channels: vocabulary.channels.clone(),
            ..Self::default()
        };
        guard.add_budgets(catalog)?;
        Ok(guard)
    }

    /// Takes the budgets of a catalog (a new version's): a new budget starts
    /// empty, a changed one keeps what was spent.
    pub fn add_budgets(&mut self, catalog: &ActionCatalog) -> Result<(), String> {
        for action in catalog.actions() {
            let Some(b) = &action.budget else { continue };
            let per_ms = b
                .per
                .as_deref()
                .map(|p| duration(&format!("budget of {}", action.id), p))
                .transpose()?;
            let budget = self.budgets.entry(action.id.clone()).or_insert(Budget {
                max: b.max,
                per_ms,
                spent: VecDeque::new(),
                total: 0,
                unpublished: Vec::new(),
            });
            budget.max = b.max;
            budget.per_ms = per_ms;
        }
        Ok(())
    }

    /// Keeps this instance's budget spending for [`ContactGuard::take_spent`],
    /// so that instances sharing a model also share budgets.
    pub fn sharing_budgets(mut self) -> Self {
        self.share_budgets = true;
        self
    }

    /// This instance's contacts of budgeted actions since the last call, per
    /// action (sorted by action), for the other instances.
    pub fn take_spent(&mut self) -> Vec<BudgetSpend> {
        let mut out: Vec<BudgetSpend> = self
            .budgets
            .iter_mut()
            .filter(|(_, b)| !b.unpublished.is_empty())
            .map(|(action, b)| BudgetSpend {
                action_id: action.clone(),
                at: std::mem::take(&mut b.unpublished),
            })
            .collect();
        out.sort_by(|a, b| a.action_id.cmp(&b.action_id));
        out
    }

    /// True if some spending awaits [`ContactGuard::take_spent`].
    pub fn has_unpublished_spending(&self) -> bool {
        self.budgets.values().any(|b| !b.unpublished.is_empty())
    }

    /// Counts another instance's contacts against the budgets.
    pub fn add_spent(&mut self, spent: &[BudgetSpend]) {
        for s in spent {
            if let Some(b) = self.budgets.get_mut(&s.action_id) {
                for t in &s.at {
                    b.spend(*t);
                }
            }
        }
    }

    /// True if the guard never removes anything.
    pub fn is_empty(&self) -> bool {
        self.caps.is_empty() && self.cooldown.is_none() && self.budgets.is_empty()
    }

    /// What it has removed so far.
    pub fn stats(&self) -> GuardStats {
        self.stats
    }

    /// Customers with a contact history.
    pub fn customers(&self) -> usize {
        self.customers.len()
    }

    fn action_index(&mut self, action: &str) -> u16 {
        match self.actions.iter().position(|a| a == action) {
            Some(i) => u16::try_from(i).unwrap_or(u16::MAX),
            None => {
                self.actions.push(action.to_owned());
                u16::try_from(self.actions.len() - 1).unwrap_or(u16::MAX)
            }
        }
    }

    fn channel_index(&self, channel: &str) -> u8 {
        self.channels
            .position(channel)
            .and_then(|c| u8::try_from(c).ok())
            .unwrap_or(u8::MAX)
    }

    /// The candidates the customer may be contacted with now (in their order);
    /// `catalog` (the version in force) says which are transactional: they
    /// skip caps and cool-downs.
    pub fn allowed(
        &mut self,
        customer: &str,
        channel: &str,
        now: EventTime,
        candidates: &[String],
        catalog: &ActionCatalog,
    ) -> Vec<String> {
        if self.is_empty() {
            return candidates.to_vec();
        }
        let at = minute(now);
        let channel = self.channel_index(channel);
        let mut kept = Vec::with_capacity(candidates.len());
        for action in candidates {
            let transactional = catalog
                .get(action)
                .is_some_and(|a| a.kind == ActionKind::Transactional);
            let index = self.action_index(action);
            let history = self.customers.get(customer);
            let within = |per: Minute| {
                history
                    .into_iter()
                    .flat_map(|h| &h.contacts)
                    .filter(move |c| at.saturating_sub(c.at) < per)
            };
            let capped = !transactional
                && self.caps.iter().any(|cap| {
                    let n = match cap.scope {
                        CapScope::Overall => within(cap.per).count(),
                        CapScope::Action => within(cap.per).filter(|c| c.action == index).count(),
                        CapScope::Channel => {
                            within(cap.per).filter(|c| c.channel == channel).count()
                        }
                    };
                    n >= cap.max as usize
                });
            let cooling = !transactional
                && self.cooldown.is_some_and(|cd| {
                    history
                        .into_iter()
                        .flat_map(|h| &h.negative)
                        .any(|(a, t)| *a == index && at.saturating_sub(*t) < cd)
                });
            let over_budget = self
                .budgets
                .get_mut(action.as_str())
                .is_some_and(|b| b.used(now) >= b.max);
            match (capped, cooling, over_budget) {
                (true, _, _) => self.stats.capped += 1,
                (_, true, _) => self.stats.cooling_down += 1,
                (_, _, true) => self.stats.over_budget += 1,
                _ => kept.push(action.clone()),
            }
        }
        if kept.is_empty() {
            self.stats.suppressed += 1;
        }
        kept
    }

    /// Counts a contact: the customer was shown `action` (of `kind`) on
    /// `channel` at `now`. A transactional one spends its budget but counts
    /// against no cap.
    pub fn contacted(
        &mut self,
        customer: &str,
        action: &str,
        kind: ActionKind,
        channel: &str,
        now: EventTime,
    ) {
        if let Some(b) = self.budgets.get_mut(action) {
            b.spend(now);
            if self.share_budgets {
                b.unpublished.push(now);
            }
        }
        if self.keep == 0 || kind == ActionKind::Transactional {
            return;
        }
        let channel = self.channel_index(channel);
        let action = self.action_index(action);
        let keep = self.keep;
        let at = minute(now);
        let h = self.customers.entry(customer.into()).or_default();
        h.contacts.push_back(Contact {
            at,
            action,
            channel,
        });
        while h.contacts.len() > keep {
            h.contacts.pop_front();
        }
        self.noted(customer, at);
    }

    /// Queues the customer for expiry and deletes the histories that have
    /// outlived the horizon (event time, so a replay expires as the live run).
    fn noted(&mut self, customer: &str, at: Minute) {
        self.expiry.push_back((at, customer.into()));
        while let Some((t, _)) = self.expiry.front()
            && at.saturating_sub(*t) >= self.horizon
        {
            if let Some((_, c)) = self.expiry.pop_front()
                && self
                    .customers
                    .get(&c)
                    .is_some_and(|h| at.saturating_sub(h.newest()) >= self.horizon)
            {
                self.customers.remove(&c);
            }
        }
    }

    /// Deletes everything kept of `customer` (an erasure).
    pub fn forget(&mut self, customer: &str) {
        if self.customers.remove(customer).is_some() {
            self.expiry.retain(|(_, c)| &**c != customer);
        }
    }

    /// Notes a response: `event_type` to `action` at `now` (a negative one starts
    /// the cool-down).
    pub fn responded(&mut self, customer: &str, action: &str, event_type: &str, now: EventTime) {
        if self.cooldown.is_none() || !self.negative_responses.iter().any(|n| n == event_type) {
            return;
        }
        let action = self.action_index(action);
        let h = self.customers.entry(customer.into()).or_default();
        let at = minute(now);
        match h.negative.iter_mut().find(|(a, _)| *a == action) {
            Some((_, t)) => *t = (*t).max(at),
            None => h.negative.push((action, at)),
        }
        self.noted(customer, at);
    }

    pub(crate) fn snapshot(&self) -> GuardSnapshot {
        let mut customers: Vec<(String, ContactHistory)> = self
            .customers
            .iter()
            .map(|(c, h)| (c.to_string(), h.clone()))
            .collect();
        customers.sort_by(|a, b| a.0.cmp(&b.0));
        let mut budgets: Vec<(String, Vec<EventTime>, u64)> = self
            .budgets
            .iter()
            .map(|(a, b)| (a.clone(), b.spent.iter().copied().collect(), b.total))
            .collect();
        budgets.sort_by(|a, b| a.0.cmp(&b.0));
        GuardSnapshot {
            actions: self.actions.clone(),
            customers,
            budgets,
            stats: self.stats,
        }
    }

    pub(crate) fn restore(&mut self, s: GuardSnapshot) {
        self.actions = s.actions;
        let mut expiry: Vec<(Minute, Box<str>)> = s
            .customers
            .iter()
            .map(|(c, h)| (h.newest(), c.as_str().into()))
            .collect();
        expiry.sort();
        self.expiry = expiry.into();
        self.customers = s
            .customers
            .into_iter()
            .map(|(c, h)| (c.into_boxed_str(), h))
            .collect();
        for (action, spent, total) in s.budgets {
            if let Some(b) = self.budgets.get_mut(&action) {
                b.spent = spent.into();
                b.total = total;
            }
        }
        self.stats = s.stats;
    }
}
