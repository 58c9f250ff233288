//! A small declared world for the engine's own tests (the engine knows no
//! business; deployments live in `deploy/examples/`).

use std::collections::BTreeMap;

use crate::{
    Action, ActionCatalog, AggregatorConfig, AttributeSpec, ConsentEvents, ContactPolicyConfig,
    Declarations, FeatureConfig, FieldKind, MetricSpec, Names, Outcome, OutcomeReward,
    ProfileField, ProfileSpec, RequestSpec, Undeclared, UpdaterConfig, Vocabulary,
};
use crate::{EventTime, NextBestAction, Reward, UpdaterInput};

pub(crate) const CHANNELS: [&str; 5] = ["web", "app", "store", "call", "email"];
pub(crate) const CATEGORIES: [&str; 4] = ["books", "music", "garden", "toys"];
pub(crate) const EVENT_TYPES: [&str; 9] = [
    "visit", "view", "search", "cart", "buy", "click", "convert", "dismiss", "open",
];

fn names(v: &[&str]) -> Names {
    Names::new(v.iter().copied()).expect("distinct names")
}

pub(crate) fn outcome(event_type: &str, reward: f64, negative: bool) -> Outcome {
    Outcome {
        event_type: event_type.into(),
        reward: OutcomeReward::Fixed(reward),
        negative,
        window_ms: None,
    }
}

pub(crate) fn declarations() -> Declarations {
    Declarations {
        vocabulary: Vocabulary {
            channels: names(&CHANNELS),
            categories: names(&CATEGORIES),
            event_types: names(&EVENT_TYPES),
            triggers: vec!["visit".into()],
            outcomes: vec![
                outcome("click", 1.0, false),
                outcome("convert", 1.0, false),
                outcome("dismiss", 0.0, true),
            ],
            undeclared_event_types: Undeclared::Other,
            undeclared_channels: Undeclared::DeadLetter,
            undeclared_categories: Undeclared::Other,
            consent: ConsentEvents {
                opt_out: vec!["opt_out".into()],
                opt_in: vec!["opt_in".into()],
                erase: vec!["erase".into()],
            },
            profile_event: "profile".into(),
        },
        profile: ProfileSpec {
            fields: vec![
                ProfileField {
                    name: "age".into(),
                    kind: FieldKind::Number {
                        min: 18.0,
                        max: 100.0,
                    },
                },
                ProfileField {
                    name: "country".into(),
                    kind: FieldKind::Category(names(&["de", "fr"])),
                },
                ProfileField {
                    name: "products".into(),
                    kind: FieldKind::Set(names(&["card", "loan", "savings"])),
                },
            ],
        },
        request: RequestSpec {
            attributes: vec![
                AttributeSpec {
                    name: "intent".into(),
                    values: Some(names(&["browse", "buy", "cancel"])),
                },
                AttributeSpec {
                    name: "page".into(),
                    values: None,
                },
            ],
            metrics: vec![MetricSpec {
                name: "basket".into(),
                min: 0.0,
                max: 500.0,
            }],
            max_entries: 32,
            max_value_bytes: 256,
        },
        tags: vec![
            ("category".into(), names(&CATEGORIES)),
            ("price_band".into(), names(&["low", "high"])),
        ],
    }
}

/// The breakdown's event types: the declared ones and `other`.
pub(crate) fn event_types_with_other() -> Vec<String> {
    EVENT_TYPES
        .iter()
        .map(|t| (*t).to_owned())
        .chain(["other".to_owned()])
        .collect()
}

/// Eight actions, some limited to the channels where they make sense.
pub(crate) fn catalog() -> ActionCatalog {
    let all = [0, 1, 2, 3, 4];
    let tagged = |id: &str, category: &str| {
        let mut a = Action::plain(id, &all);
        a.tags = BTreeMap::from([("category".to_owned(), category.to_owned())]);
        a
    };
    ActionCatalog::new(vec![
        Action::plain("promo", &all),
        tagged("rec_books", "books"),
        tagged("rec_music", "music"),
        tagged("rec_garden", "garden"),
        tagged("rec_toys", "toys"),
        Action::plain("ship", &[0, 1, 4]),
        Action::plain("push", &[1]),
        Action::plain("loyalty", &[2, 3, 4]),
    ])
    .expect("distinct ids")
}

pub(crate) fn aggregator_config() -> AggregatorConfig {
    AggregatorConfig {
        features: FeatureConfig::default(),
        declared: declarations(),
        catalog: catalog(),
        policy: ContactPolicyConfig::default(),
    }
}

/// A click worth 1 on the action `nba` sent, at `at`.
pub(crate) fn click(nba: &NextBestAction, at: EventTime) -> UpdaterInput {
    UpdaterInput::Reward(Reward {
        reward_id: format!("r-{}", nba.decision_id),
        decision_id: nba.decision_id.clone(),
        customer_id: nba.customer_id.clone(),
        timestamp: at,
        action_id: nba.action_id.clone(),
        value: 1.0,
        event_type: "click".into(),
    })
}

pub(crate) fn updater_config(dim: usize) -> UpdaterConfig {
    UpdaterConfig::new(declarations(), catalog(), dim)
}
