//! The `[simulation]` section checked and compiled: how `nba demo` and
//! `nba simulate` make up this business's customers. The engine never reads
//! it; the simulator (`nba-sim`) does.

use nba_core::{ActionCatalog, Declarations, FieldKind, OutcomeReward};

use crate::file::{LiftSection, SimulationSection};
use crate::problems::Collector;

/// A simulated world, checked against the deployment.
#[derive(Debug, Clone, PartialEq)]
pub struct SimulationSpec {
    /// Event time of the first session, ms.
    pub start_ms: i64,
    /// Mean sessions per customer per day.
    pub sessions_per_day: f64,
    /// Triggers that start a session, with weights.
    pub triggers: Vec<(String, f64)>,
    /// Home channels, with weights.
    pub channels: Vec<(String, f64)>,
    /// Events of a session after its trigger, with weights.
    pub browse: Vec<(String, f64)>,
    /// Least and most events after a trigger.
    pub session_events: (u32, u32),
    /// Event types that concern a category.
    pub categorised: Vec<String>,
    /// The event type that carries an amount.
    pub purchase: Option<String>,
    /// Its amount range.
    pub amount: (f64, f64),
    /// The outcome customers answer with.
    pub response: String,
    /// Response probability of an action no rule names.
    pub base_response: f64,
    /// Hidden traits.
    pub traits: Vec<TraitSpec>,
    /// Response rules, first match wins.
    pub responses: Vec<ResponseSpec>,
}

/// A hidden trait some customers have.
#[derive(Debug, Clone, PartialEq)]
pub struct TraitSpec {
    /// Its name.
    pub name: String,
    /// Share of customers with it.
    pub share: f64,
    /// Their session's event weights instead (empty: the population's).
    pub browse: Vec<(String, f64)>,
    /// Their purchase amounts instead.
    pub amount: Option<(f64, f64)>,
    /// Their trigger weights instead.
    pub triggers: Vec<(String, f64)>,
}

/// The response probability of some actions.
#[derive(Debug, Clone, PartialEq)]
pub struct ResponseSpec {
    /// The actions it names.
    pub actions: Vec<String>,
    /// Or every action with this tag.
    pub tagged: Option<String>,
    /// Probability before lifts.
    pub base: f64,
    /// (when, by how much).
    pub lifts: Vec<(SimCondition, f64)>,
    /// The event times it holds in: [from, until).
    pub during: (i64, i64),
}

impl ResponseSpec {
    /// True if the rule is for `action` (of `catalog`) at event time `at`.
    pub fn covers(&self, action: &str, catalog: &ActionCatalog, at: i64) -> bool {
        let named = self.actions.iter().any(|a| a == action)
            || self
                .tagged
                .as_ref()
                .is_some_and(|t| catalog.get(action).is_some_and(|a| a.tags.contains_key(t)));
        named && (self.during.0..self.during.1).contains(&at)
    }
}

/// A comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpOp {
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
}

impl CmpOp {
    /// `a op b`.
    pub fn holds(self, a: f64, b: f64) -> bool {
        match self {
            CmpOp::Lt => a < b,
            CmpOp::Le => a <= b,
            CmpOp::Gt => a > b,
            CmpOp::Ge => a >= b,
        }
    }
}

/// Who a lift applies to.
#[derive(Debug, Clone, PartialEq)]
pub enum SimCondition {
    /// The customer has the trait at this position.
    Trait(usize),
    /// The action's tag names the customer's preferred category.
    Prefers(String),
    /// The customer's preferred category is this one (its position).
    Likes(usize),
    /// The request is on this channel.
    Channel(String),
    /// A number profile field compared with a value.
    Compare {
        /// The field's position.
        field: usize,
        /// The comparison.
        op: CmpOp,
        /// The value.
        value: f64,
    },
    /// A category profile field has the value at this position.
    Equals {
        /// The field's position.
        field: usize,
        /// The value's position.
        value: usize,
    },
    /// A set profile field holds the value at this position.
    Has {
        /// The field's position.
        field: usize,
        /// The value's position.
        value: usize,
    },
    /// The opposite.
    Not(Box<SimCondition>),
}

fn weights(
    c: &mut Collector<'_>,
    setting: &str,
    items: &std::collections::BTreeMap<String, f64>,
    known: &dyn Fn(&str) -> bool,
    what: &str,
) -> Vec<(String, f64)> {
    let mut out = Vec::new();
    for (name, w) in items {
        let name = name.trim().to_ascii_lowercase();
        if !known(&name) {
            c.problem(setting, format!("{name:?} is not {what}"));
        } else if !(w.is_finite() && *w >= 0.0) {
            c.problem(
                setting,
                format!("the weight of {name:?} must be a number >= 0"),
            );
        } else {
            out.push((name, *w));
        }
    }
    if !items.is_empty() && out.iter().all(|(_, w)| *w == 0.0) {
        c.problem(setting, "at least one weight must be above 0");
    }
    out
}

/// Checks `s` against the deployment; `None` (and problems in `c`) if it
/// does not fit.
pub(crate) fn compile(
    s: &SimulationSection,
    declared: &Declarations,
    catalog: Option<&ActionCatalog>,
    c: &mut Collector<'_>,
) -> Option<SimulationSpec> {
    let before = c.problems.len();
    let v = &declared.vocabulary;
    let event = |t: &str| v.event_types.contains(t);
    let mut triggers = weights(
        c,
        "simulation.triggers",
        &s.triggers,
        &|t| v.is_trigger(t),
        "a declared trigger",
    );
    if triggers.is_empty() {
        triggers = v
            .triggers
            .first()
            .map(|t| (t.clone(), 1.0))
            .into_iter()
            .collect();
    }
    let mut channels = weights(
        c,
        "simulation.channels",
        &s.channels,
        &|ch| v.channels.contains(ch),
        "a declared channel",
    );
    if channels.is_empty() {
        channels = v
            .channels
            .as_slice()
            .iter()
            .map(|ch| (ch.clone(), 1.0))
            .collect();
    }
    let browse = weights(
        c,
        "simulation.browse",
        &s.browse,
        &event,
        "a declared event type",
    );
    if browse.is_empty() {
        c.problem(
            "simulation.browse",
            "give the event types of a session, with weights (e.g. { page_view = 0.6, purchase = 0.1 })",
        );
    }
    let categorised: Vec<String> = s
        .categorised
        .iter()
        .map(|t| t.to_ascii_lowercase())
        .collect();
    for t in &categorised {
        if !event(t) {
            c.problem(
                "simulation.categorised",
                format!("{t:?} is not a declared event type"),
            );
        }
    }
    if !categorised.is_empty() && v.categories.is_empty() {
        c.problem(
            "simulation.categorised",
            "categorised events need declared categories (vocabulary.categories)",
        );
    }
    let purchase = s.purchase.as_ref().map(|p| p.to_ascii_lowercase());
    if let Some(p) = &purchase
        && !browse.iter().any(|(b, _)| b == p)
    {
        c.problem(
            "simulation.purchase",
            format!("{p:?} is not among simulation.browse: give it a weight there"),
        );
    }
    let range = |c: &mut Collector<'_>, setting: &str, r: [f64; 2]| {
        if !(r[0].is_finite() && r[1].is_finite() && 0.0 <= r[0] && r[0] <= r[1]) {
            c.problem(setting, "give [low, high] with 0 <= low <= high");
        }
        (r[0], r[1])
    };
    let amount = range(c, "simulation.amount", s.amount);
    let response = s.response.to_ascii_lowercase();
    match v.outcome(&response) {
        Some(o)
            if matches!(o.reward, OutcomeReward::Fixed(r) if r > 0.0)
                || matches!(o.reward, OutcomeReward::PerAmount(_)) => {}
        _ => c.problem(
            "simulation.response",
            format!("{response:?} is not a declared outcome with a positive reward"),
        ),
    }
    let probability = |c: &mut Collector<'_>, setting: &str, p: f64| {
        if !(0.0..=1.0).contains(&p) {
            c.problem(setting, format!("{p} is not a probability in [0, 1]"));
        }
    };
    probability(c, "simulation.base_response", s.base_response);
    if !(s.sessions_per_day.is_finite() && s.sessions_per_day > 0.0) {
        c.problem("simulation.sessions_per_day", "must be a number > 0");
    }
    if s.session_events[0] > s.session_events[1] {
        c.problem(
            "simulation.session_events",
            "give [least, most] with least <= most",
        );
    }
    let mut traits: Vec<TraitSpec> = Vec::new();
    for (i, t) in s.traits.iter().enumerate() {
        let setting = format!("simulation.trait[{i}]");
        if traits.iter().any(|u| u.name == t.name) {
            c.problem(&setting, format!("trait {:?} is declared twice", t.name));
        }
        probability(c, &format!("{setting}.share"), t.share);
        let browse = weights(
            c,
            &format!("{setting}.browse"),
            &t.browse,
            &event,
            "a declared event type",
        );
        let amount = t.amount.map(|a| range(c, &format!("{setting}.amount"), a));
        let triggers = weights(
            c,
            &format!("{setting}.triggers"),
            &t.triggers,
            &|x| v.is_trigger(x),
            "a declared trigger",
        );
        traits.push(TraitSpec {
            name: t.name.clone(),
            share: t.share,
            browse,
            amount,
            triggers,
        });
    }
    let mut responses = Vec::new();
    for (i, r) in s.responses.iter().enumerate() {
        let setting = format!("simulation.response_rule[{i}]");
        if r.actions.is_empty() == r.tagged.is_none() {
            c.problem(
                &setting,
                "give either actions = [...] or tagged = \"<tag>\"",
            );
        }
        if let Some(catalog) = catalog {
            for a in &r.actions {
                if catalog.get(a).is_none() {
                    c.problem(
                        format!("{setting}.actions"),
                        format!("{a:?} is not an action of the catalog"),
                    );
                }
            }
        }
        probability(c, &format!("{setting}.base"), r.base);
        let mut lifts = Vec::new();
        for (j, LiftSection { when, by }) in r.lift.iter().enumerate() {
            match condition(when, declared, &traits) {
                Ok(cond) if by.is_finite() => lifts.push((cond, *by)),
                Ok(_) => c.problem(format!("{setting}.lift[{j}].by"), "must be a finite number"),
                Err(e) => c.problem(format!("{setting}.lift[{j}].when"), e),
            }
        }
        let during = (
            r.from.as_ref().map_or(i64::MIN, |t| t.0),
            r.until.as_ref().map_or(i64::MAX, |t| t.0),
        );
        if during.0 >= during.1 {
            c.problem(
                format!("{setting}.until"),
                "the rule ends before it starts: until comes after from",
            );
        }
        responses.push(ResponseSpec {
            actions: r.actions.clone(),
            tagged: r.tagged.clone(),
            base: r.base,
            lifts,
            during,
        });
    }
    (c.problems.len() == before).then(|| SimulationSpec {
        start_ms: s.start.0,
        sessions_per_day: s.sessions_per_day,
        triggers,
        channels,
        browse,
        session_events: (s.session_events[0], s.session_events[1]),
        categorised,
        purchase,
        amount,
        response,
        base_response: s.base_response,
        traits,
        responses,
    })
}

/// Parses a lift's `when`.
fn condition(
    text: &str,
    declared: &Declarations,
    traits: &[TraitSpec],
) -> Result<SimCondition, String> {
    let text = text.trim();
    if let Some(rest) = text.strip_prefix("not ") {
        return Ok(SimCondition::Not(Box::new(condition(
            rest, declared, traits,
        )?)));
    }
    let field = |name: &str| {
        declared
            .profile
            .position(name)
            .ok_or_else(|| format!("{text:?}: {name:?} is not a declared profile field"))
    };
    let unquote = |v: &str| v.trim().trim_matches('"').to_owned();
    let words: Vec<&str> = text.split_whitespace().collect();
    match words.as_slice() {
        ["trait", name] => traits
            .iter()
            .position(|t| t.name == *name)
            .map(SimCondition::Trait)
            .ok_or_else(|| format!("{text:?}: no trait {name:?} is declared before this rule")),
        ["prefers", tag] => Ok(SimCondition::Prefers((*tag).to_owned())),
        ["likes", category] => declared
            .vocabulary
            .categories
            .position(&category.to_ascii_lowercase())
            .map(SimCondition::Likes)
            .ok_or_else(|| format!("{text:?}: {category:?} is not a declared category")),
        ["channel", ch] => {
            let ch = ch.to_ascii_lowercase();
            if declared.vocabulary.channels.contains(&ch) {
                Ok(SimCondition::Channel(ch))
            } else {
                Err(format!("{text:?}: {ch:?} is not a declared channel"))
            }
        }
        [value, "in", set] => {
            let f = field(set.strip_prefix("profile.").unwrap_or(set))?;
            match &declared.profile.fields[f].kind {
                FieldKind::Set(values) => values
                    .position(&unquote(value))
                    .map(|value| SimCondition::Has { field: f, value })
                    .ok_or_else(|| format!("{text:?}: {set} has no value {value}")),
                _ => Err(format!("{text:?}: {set} is not a set field")),
            }
        }
        [q, op, value] if q.starts_with("profile.") => {
            let f = field(&q["profile.".len()..])?;
            match (&declared.profile.fields[f].kind, *op) {
                (FieldKind::Category(values), "==") => values
                    .position(&unquote(value))
                    .map(|value| SimCondition::Equals { field: f, value })
                    .ok_or_else(|| format!("{text:?}: {q} has no value {value}")),
                (FieldKind::Number { .. }, op) => {
                    let op = match op {
                        "<" => CmpOp::Lt,
                        "<=" => CmpOp::Le,
                        ">" => CmpOp::Gt,
                        ">=" => CmpOp::Ge,
                        other => return Err(format!("{text:?}: use <, <=, > or >=, not {other}")),
                    };
                    let value = value
                        .parse::<f64>()
                        .map_err(|_| format!("{text:?}: {value} is not a number"))?;
                    Ok(SimCondition::Compare {
                        field: f,
                        op,
                        value,
                    })
                }
                _ => Err(format!(
                    "{text:?}: compare a category with ==, a number with <, <=, > or >="
                )),
            }
        }
        _ => Err(format!(
            "{text:?} is not a condition: write trait <name>, likes <category>, prefers <tag>, channel <name>, profile.<field> <op> <value>, \"<value>\" in profile.<set>, or not <condition>"
        )),
    }
}
