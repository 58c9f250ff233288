//! The actions a deployment can choose from: where each may go out and with
//! which treatment, what it is worth, when it is valid, and what kind it is.
//!
//! A catalog changes while nba runs: every version takes effect at its own
//! event time ([`CatalogTimeline`]), so every instance and a backtest agree on
//! which actions existed when.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::contact::BudgetConfig;
use crate::features::parse_duration_ms;
use crate::{ActionRecord, CatalogVersion, Declarations, EventTime, Names, TreatmentRecord};

/// How the decision treats an action.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ActionKind {
    /// Chosen by the bandit among the other candidates.
    #[default]
    Normal,
    /// Chosen whenever eligible, ahead of the bandit (a compliance notice);
    /// still subject to the caps. Logged with propensity 1 and not learned.
    Mandatory,
    /// A receipt or other service message: never counted against caps.
    Transactional,
}

impl ActionKind {
    /// Its name in a deployment file.
    pub fn name(self) -> &'static str {
        match self {
            ActionKind::Normal => "normal",
            ActionKind::Mandatory => "mandatory",
            ActionKind::Transactional => "transactional",
        }
    }

    /// The kind called `name`.
    pub fn parse(name: &str) -> Option<Self> {
        [
            ActionKind::Normal,
            ActionKind::Mandatory,
            ActionKind::Transactional,
        ]
        .into_iter()
        .find(|k| k.name() == name)
    }
}

/// What is wrong with one action of a catalog version (or with the whole,
/// when `action` is `None`).
#[derive(Debug, Clone, PartialEq)]
pub struct CatalogProblem {
    /// Position of the action in the version.
    pub action: Option<usize>,
    /// The field at fault (`id`, `channels`, `value`, ...).
    pub field: &'static str,
    /// What is wrong and how to fix it.
    pub message: String,
}

/// What a channel shows for an action: a template of the channel's, and an
/// opaque payload nba carries on the next-best-action so the channel can
/// render it without a lookup.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Treatment {
    /// The channel's template id.
    pub template: String,
    /// Whatever the template needs.
    pub payload: BTreeMap<String, String>,
}

/// One action: an offer, a message, a recommendation.
#[derive(Debug, Clone, PartialEq)]
pub struct Action {
    /// Its id, as it appears in decisions.
    pub id: String,
    /// A name for people.
    pub name: String,
    /// Where it sits in a two-level taxonomy (`issue/group`, e.g.
    /// `retention/cards`).
    pub group: String,
    /// Normal, mandatory or transactional.
    pub kind: ActionKind,
    /// What one response to it is worth to the business (≥ 0).
    pub value: f64,
    /// A lever a marketer turns (≥ 0; 1 is neutral).
    pub weight: f64,
    /// First event time it may be chosen at.
    pub valid_from: Option<EventTime>,
    /// Event time from which it may no longer be chosen.
    pub valid_until: Option<EventTime>,
    /// The action's own features (category, product, price band, ...).
    pub tags: BTreeMap<String, String>,
    /// The channels it may go out on, each with its treatment, by position
    /// in the vocabulary's channels.
    pub treatments: Vec<(usize, Treatment)>,
    /// Conditions that must all hold for it to be a candidate.
    pub eligibility: Vec<String>,
    /// How many contacts it may have, over all customers.
    pub budget: Option<BudgetConfig>,
}

impl Action {
    /// A normal action on the channels at these positions, with empty
    /// treatments and no tags (for tests and tools).
    pub fn plain(id: impl Into<String>, channels: &[usize]) -> Self {
        let id = id.into();
        Self {
            name: id.clone(),
            id,
            group: String::new(),
            kind: ActionKind::Normal,
            value: 1.0,
            weight: 1.0,
            valid_from: None,
            valid_until: None,
            tags: BTreeMap::new(),
            treatments: channels
                .iter()
                .map(|c| (*c, Treatment::default()))
                .collect(),
            eligibility: Vec::new(),
            budget: None,
        }
    }

    /// True if it may be chosen at `t`.
    pub fn valid_at(&self, t: EventTime) -> bool {
        self.valid_from.is_none_or(|f| t >= f) && self.valid_until.is_none_or(|u| t < u)
    }

    /// Its treatment on the channel at position `channel`, if it may go out
    /// there.
    pub fn treatment(&self, channel: usize) -> Option<&Treatment> {
        self.treatments
            .iter()
            .find(|(c, _)| *c == channel)
            .map(|(_, t)| t)
    }
}

/// The actions of one catalog version.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ActionCatalog {
    actions: Vec<Action>,
    ids: Names,
    has_mandatory: bool,
}

impl ActionCatalog {
    /// A catalog of the given actions; refuses a repeated id.
    pub fn new(actions: Vec<Action>) -> Result<Self, String> {
        let ids = Names::new(actions.iter().map(|a| a.id.clone()))
            .map_err(|e| format!("action ids: {e}"))?;
        let has_mandatory = actions.iter().any(|a| a.kind == ActionKind::Mandatory);
        Ok(Self {
            actions,
            ids,
            has_mandatory,
        })
    }

    /// The actions, in catalog order.
    pub fn actions(&self) -> &[Action] {
        &self.actions
    }

    /// True if some action is mandatory.
    pub fn has_mandatory(&self) -> bool {
        self.has_mandatory
    }

    /// The action `id`.
    pub fn get(&self, id: &str) -> Option<&Action> {
        self.ids.position(id).map(|i| &self.actions[i])
    }

    /// Each of `ids`' value × lever weight, what an objective of value
    /// scores a response by; 0 for an id the catalog does not know.
    pub fn values_of(&self, ids: &[String]) -> Vec<f64> {
        ids.iter()
            .map(|id| self.get(id).map_or(0.0, |a| a.value * a.weight))
            .collect()
    }

    /// Ids of the actions that may go out on the channel at position
    /// `channel` at `t`, in catalog order.
    pub fn eligible(&self, channel: usize, t: EventTime) -> Vec<String> {
        self.actions
            .iter()
            .filter(|a| a.valid_at(t) && a.treatment(channel).is_some())
            .map(|a| a.id.clone())
            .collect()
    }
}

impl ActionCatalog {
    /// The catalog a published version describes, checked against what the
    /// deployment declares; every problem found, otherwise.
    pub fn from_version(
        v: &CatalogVersion,
        declared: &Declarations,
    ) -> Result<Self, Vec<CatalogProblem>> {
        let mut problems = Vec::new();
        if v.actions.is_empty() {
            problems.push(CatalogProblem {
                action: None,
                field: "action",
                message: "the catalog has no action: declare at least one [[action]]".into(),
            });
        }
        let mut actions = Vec::with_capacity(v.actions.len());
        for (i, a) in v.actions.iter().enumerate() {
            let mut problem = |field, message: String| {
                problems.push(CatalogProblem {
                    action: Some(i),
                    field,
                    message,
                });
            };
            if let Some(action) = action_of(a, declared, &mut problem) {
                if actions.iter().any(|b: &Action| b.id == action.id) {
                    problem(
                        "id",
                        format!("action id {:?} is declared twice: ids must be unique", a.id),
                    );
                }
                actions.push(action);
            }
        }
        match problems.is_empty() {
            true => Self::new(actions).map_err(|message| {
                vec![CatalogProblem {
                    action: None,
                    field: "id",
                    message,
                }]
            }),
            false => Err(problems),
        }
    }

    /// This catalog as a version record.
    pub fn to_version(
        &self,
        deployment: &str,
        version: i64,
        effective_from: EventTime,
        declared: &Declarations,
    ) -> CatalogVersion {
        let channels = declared.vocabulary.channels.as_slice();
        CatalogVersion {
            deployment: deployment.to_owned(),
            version,
            effective_from,
            actions: self
                .actions
                .iter()
                .map(|a| ActionRecord {
                    id: a.id.clone(),
                    name: a.name.clone(),
                    group: a.group.clone(),
                    kind: a.kind.name().to_owned(),
                    value: a.value,
                    weight: a.weight,
                    valid_from: a.valid_from,
                    valid_until: a.valid_until,
                    tags: a.tags.clone(),
                    treatments: a
                        .treatments
                        .iter()
                        .map(|(c, t)| TreatmentRecord {
                            channel: channels.get(*c).cloned().unwrap_or_default(),
                            template: t.template.clone(),
                            payload: t.payload.clone(),
                        })
                        .collect(),
                    eligibility: a.eligibility.clone(),
                    budget_max: a
                        .budget
                        .as_ref()
                        .map(|b| i64::try_from(b.max).unwrap_or(i64::MAX)),
                    budget_per: a.budget.as_ref().and_then(|b| b.per.clone()),
                })
                .collect(),
        }
    }
}

/// One action of a version, checked; `None` if a problem was reported.
fn action_of(
    a: &ActionRecord,
    declared: &Declarations,
    problem: &mut dyn FnMut(&'static str, String),
) -> Option<Action> {
    let before = std::cell::Cell::new(0usize);
    let mut report = |field, message| {
        before.set(before.get() + 1);
        problem(field, message);
    };
    if a.id.trim().is_empty() || a.id.len() > 256 {
        report("id", "an action id must be 1 to 256 bytes".into());
    }
    let kind = ActionKind::parse(&a.kind).unwrap_or_else(|| {
        report(
            "kind",
            format!(
                "action {:?} has kind {:?}; the kinds are normal, mandatory and transactional",
                a.id, a.kind
            ),
        );
        ActionKind::Normal
    });
    for (field, v) in [("value", a.value), ("weight", a.weight)] {
        if !(v.is_finite() && v >= 0.0) {
            report(
                field,
                format!(
                    "action {:?} has {field} {v}; it must be a number >= 0",
                    a.id
                ),
            );
        }
    }
    if let (Some(from), Some(until)) = (a.valid_from, a.valid_until)
        && until <= from
    {
        report(
            "valid_until",
            format!(
                "action {:?} is valid until before it is valid from: valid_until must be after valid_from",
                a.id
            ),
        );
    }
    let channels = &declared.vocabulary.channels;
    if a.treatments.is_empty() {
        report(
            "channels",
            format!(
                "action {:?} goes out on no channel: give it a treatment on at least one of {}",
                a.id,
                channels.as_slice().join(", ")
            ),
        );
    }
    let mut treatments = Vec::with_capacity(a.treatments.len());
    for t in &a.treatments {
        match channels.position(&t.channel) {
            Some(c) if treatments.iter().any(|(d, _)| *d == c) => report(
                "channels",
                format!("action {:?} has two treatments on {:?}", a.id, t.channel),
            ),
            Some(c) => treatments.push((
                c,
                Treatment {
                    template: t.template.clone(),
                    payload: t.payload.clone(),
                },
            )),
            None => report(
                "channels",
                format!(
                    "action {:?} has a treatment on {:?}, which is not a declared channel ({}); declare it in vocabulary.channels or remove the treatment",
                    a.id,
                    t.channel,
                    channels.as_slice().join(", ")
                ),
            ),
        }
    }
    for (tag, value) in &a.tags {
        if let Some(values) = declared.tag(tag)
            && !values.contains(value)
        {
            report(
                "tags",
                format!(
                    "action {:?} has tag {tag} = {value:?}, which catalog.tags.{tag} does not list ({})",
                    a.id,
                    values.as_slice().join(", ")
                ),
            );
        }
    }
    let budget = match (a.budget_max, &a.budget_per) {
        (None, None) => None,
        (None, Some(_)) => {
            report(
                "budget",
                format!("action {:?} has a budget period but no max", a.id),
            );
            None
        }
        (Some(max), per) => {
            if max < 0 {
                report(
                    "budget",
                    format!(
                        "action {:?} has budget max {max}; a budget must be >= 0",
                        a.id
                    ),
                );
            }
            if let Some(p) = per
                && let Err(e) = parse_duration_ms(p)
            {
                report("budget", format!("action {:?}: budget per: {e}", a.id));
            }
            Some(BudgetConfig {
                max: u64::try_from(max).unwrap_or(0),
                per: per.clone(),
            })
        }
    };
    (before.get() == 0).then(|| Action {
        id: a.id.clone(),
        name: a.name.clone(),
        group: a.group.clone(),
        kind,
        value: a.value,
        weight: a.weight,
        valid_from: a.valid_from,
        valid_until: a.valid_until,
        tags: a.tags.clone(),
        treatments,
        eligibility: a.eligibility.clone(),
        budget,
    })
}

/// Catalog versions, each in force from its event time on. Version 0, the
/// deployment file's catalog, is in force from the beginning of time.
#[derive(Debug, Clone)]
pub struct CatalogTimeline<T> {
    /// (effective from, version, what it compiles to), by effective time.
    versions: Vec<(EventTime, i64, Arc<T>)>,
}

impl<T> CatalogTimeline<T> {
    /// A timeline with only the deployment's own version.
    pub fn new(base: T) -> Self {
        Self {
            versions: vec![(EventTime::MIN, 0, Arc::new(base))],
        }
    }

    /// What is in force at `t`.
    pub fn at(&self, t: EventTime) -> &T {
        let i = self.versions.partition_point(|(from, _, _)| *from <= t);
        // The first version is in force from EventTime::MIN, so i >= 1.
        &self.versions[i.saturating_sub(1)].2
    }

    /// Adds a version in force from `effective_from`; false (nothing
    /// changes) if this version number is known already, as when a compacted
    /// topic is read again.
    pub fn add(&mut self, effective_from: EventTime, version: i64, value: T) -> bool {
        if self.versions.iter().any(|(_, v, _)| *v == version) {
            return false;
        }
        let i = self
            .versions
            .partition_point(|(from, v, _)| (*from, *v) <= (effective_from, version));
        self.versions
            .insert(i, (effective_from, version, Arc::new(value)));
        true
    }

    /// True if version `version` is known.
    pub fn has(&self, version: i64) -> bool {
        self.versions.iter().any(|(_, v, _)| *v == version)
    }

    /// Every version: (effective from, version, value), by effective time.
    pub fn versions(&self) -> impl Iterator<Item = (EventTime, i64, &T)> {
        self.versions.iter().map(|(f, v, t)| (*f, *v, &**t))
    }

    /// The newest version number known.
    pub fn newest_version(&self) -> i64 {
        self.versions.iter().map(|(_, v, _)| *v).max().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn catalog() -> ActionCatalog {
        let mut later = Action::plain("later", &[0, 1]);
        later.valid_from = Some(1_000);
        later.valid_until = Some(2_000);
        ActionCatalog::new(vec![
            Action::plain("everywhere", &[0, 1, 2]),
            Action::plain("only_app", &[1]),
            later,
        ])
        .expect("valid")
    }

    #[test]
    fn candidates_follow_channels_and_validity() {
        let c = catalog();
        assert_eq!(c.eligible(1, 0), ["everywhere", "only_app"]);
        assert_eq!(c.eligible(0, 1_500), ["everywhere", "later"]);
        assert_eq!(c.eligible(0, 2_000), ["everywhere"], "retired at 2000");
        assert_eq!(c.eligible(3, 0), Vec::<String>::new());
        assert!(
            ActionCatalog::new(vec![Action::plain("a", &[0]), Action::plain("a", &[1])]).is_err()
        );
    }

    #[test]
    fn a_timeline_gives_the_version_in_force() {
        let mut t = CatalogTimeline::new("v0");
        assert!(t.add(5_000, 2, "v2"));
        assert!(t.add(1_000, 1, "v1"));
        assert!(!t.add(1_000, 1, "again"), "known version");
        assert_eq!(*t.at(0), "v0");
        assert_eq!(*t.at(1_000), "v1");
        assert_eq!(*t.at(4_999), "v1");
        assert_eq!(*t.at(i64::MAX), "v2");
        assert_eq!(t.newest_version(), 2);
    }
}
