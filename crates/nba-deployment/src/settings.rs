//! A deployment file checked and turned into the settings every engine
//! takes: the one place a declared business becomes engine configuration.

use std::path::Path;

use nba_core::{
    ActionCatalog, ActionRecord, AggregatorConfig, AttributeSpec, BanditConfig, BaselineRule,
    CatalogVersion, ChallengerConfig, ConsentEvents, ContactGuard, ContactPolicyConfig,
    Declarations, Eligibility, ExperimentConfig, Exploration, FeatureConfig, FeatureLayout,
    FieldKind, Forgetting, GuardrailConfig, Intake, IntakeConfig, JoinConfig, MetricSpec, Model,
    Names, Objective, Outcome, OutcomeReward, Policy, ProfileField, ProfileSpec, RequestSpec,
    Residual, ShadowConfig, ShadowLearning, TreatmentRecord, Undeclared, UpdaterConfig, Vocabulary,
    parse_duration_ms,
};

use crate::file::{
    BaselineSection, ContactSection, DeploymentFile, ExperimentSection, FieldType, ForgettingName,
    KindName, ModelName, ObjectiveName, PolicyName, PolicySection, ResidualName,
    ShadowLearningName, UndeclaredName,
};
use crate::problems::{Collector, Problem};
use crate::simulation::SimulationSpec;

/// Most entries a context may have: the model keeps d×d sums per action.
pub const MAX_DIM: usize = 1_024;

/// Everything the stages, the demo and the backtest take from a deployment.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The deployment's name.
    pub name: String,
    /// What its records may contain.
    pub declared: Declarations,
    /// Its own catalog (version 0).
    pub catalog: ActionCatalog,
    /// The consumer stage's settings.
    pub intake: IntakeConfig,
    /// What each customer keeps, and the contexts.
    pub features: FeatureConfig,
    /// Caps, cool-down and segments.
    pub contact: ContactPolicyConfig,
    /// The model (its dimension is the context's length); with an
    /// experiment, the champion's.
    pub bandit: BanditConfig,
    /// A champion/challenger split, if declared.
    pub experiment: Option<ExperimentConfig>,
    /// The reward join.
    pub join: JoinConfig,
    /// The model-updater's allowed lateness, ms.
    pub updater_allowed_lateness_ms: i64,
    /// Length of the action context (0: none).
    pub action_dim: usize,
    /// The simulated world, if the deployment declares one.
    pub simulation: Option<SimulationSpec>,
}

impl Settings {
    /// The feature-aggregator's settings.
    pub fn aggregator(&self) -> AggregatorConfig {
        AggregatorConfig {
            features: self.features.clone(),
            declared: self.declared.clone(),
            catalog: self.catalog.clone(),
            policy: self.contact.clone(),
        }
    }

    /// The model-updater's settings; `instance_id` set to share the model.
    pub fn updater(&self, instance_id: Option<String>) -> UpdaterConfig {
        UpdaterConfig {
            bandit: self.bandit.clone(),
            join: self.join,
            allowed_lateness_ms: self.updater_allowed_lateness_ms,
            instance_id,
            contacts: self.contact.clone(),
            declared: self.declared.clone(),
            catalog: self.catalog.clone(),
            experiment: self.experiment.clone(),
        }
    }

    /// The consumer stage's intake.
    pub fn intake(&self) -> Intake {
        Intake::new(self.intake, self.declared.clone())
    }

    /// Length of the customer context: the model's dimension.
    pub fn dim(&self) -> usize {
        self.bandit.dim
    }

    /// The catalog as a version record (to publish it).
    pub fn catalog_version(&self, version: i64, effective_from: i64) -> CatalogVersion {
        self.catalog
            .to_version(&self.name, version, effective_from, &self.declared)
    }
}

fn lower(names: &[String]) -> Vec<String> {
    names
        .iter()
        .map(|n| n.trim().to_ascii_lowercase())
        .collect()
}

fn duration(c: &mut Collector<'_>, setting: &str, text: &str) -> Option<i64> {
    parse_duration_ms(text)
        .map_err(|e| c.problem(setting, e))
        .ok()
}

fn names(c: &mut Collector<'_>, setting: &str, list: &[String]) -> Names {
    Names::new(lower(list)).unwrap_or_else(|e| {
        c.problem(setting, format!("{e}: list each name once"));
        Names::default()
    })
}

/// Checks `file` (read from `dir`) and builds its settings; every problem
/// found goes to `c` (or, for an included contact policy, to `extra`).
pub(crate) fn build(
    file: &DeploymentFile,
    dir: &Path,
    c: &mut Collector<'_>,
    extra: &mut Vec<Problem>,
) -> Option<Settings> {
    if file.name.trim().is_empty() {
        c.problem(
            "name",
            "give the deployment a name (the key of its catalog versions)",
        );
    }
    let vocabulary = vocabulary(file, c);
    let profile = profile(file, c);
    let request = request(file, c);
    let tags: Vec<(String, Names)> = file
        .catalog
        .tags
        .iter()
        .map(|(tag, values)| {
            if values.is_empty() {
                c.problem(
                    format!("catalog.tags.{tag}"),
                    "list the tag's values (or remove it: undeclared tags are free text)",
                );
            }
            (
                tag.clone(),
                names(c, &format!("catalog.tags.{tag}"), values),
            )
        })
        .collect();
    let mut declared = Declarations {
        vocabulary,
        profile,
        request,
        tags,
    };
    let features = features(file, &declared, c);
    let layout = features
        .as_ref()
        .and_then(|f| match FeatureLayout::new(f, &declared) {
            Ok(l) => Some(l),
            Err(e) => {
                let setting = if e.contains("action feature") || e.contains("contacted:") {
                    "features.action_context"
                } else if e.contains("breakdown") {
                    "features.breakdown_window"
                } else if e.contains("last time") {
                    "features.last_seen"
                } else if e.contains("feature window") && !e.contains(":") {
                    "features.windows"
                } else {
                    "features.context"
                };
                c.problem(setting, e);
                None
            }
        });
    let dim = layout.as_ref().map(|l| l.context().dim());
    if let Some(d) = dim
        && d > MAX_DIM
    {
        c.problem(
            "features.context",
            format!("the context has {d} entries; the model takes at most {MAX_DIM}: drop or narrow some features"),
        );
    }
    if let (Some(d), Some(want)) = (dim, file.policy.dim)
        && d != want
    {
        c.problem(
            "policy.dim",
            format!("policy.dim is {want} but the context has {d} entries: remove policy.dim (the context sets the dimension) or change the context"),
        );
    }
    let contact = contact(file, dir, &declared, c, extra);
    if let Some(negative) = contact
        .as_ref()
        .and_then(|(_, s)| s.negative_responses.as_ref())
    {
        let negative = lower(negative);
        for o in &mut declared.vocabulary.outcomes {
            o.negative |= negative.contains(&o.event_type);
        }
    }
    let catalog = catalog(file, &declared, contact.as_ref(), c);
    if let (Some(layout), Some((policy, _)), Some(catalog)) = (&layout, &contact, &catalog)
        && let Err(problems) = Eligibility::new(policy, layout, &declared, catalog)
    {
        for p in problems {
            let setting = match p.action {
                Some(i) => format!("action[{i}].eligibility"),
                None => "contact.segments".to_owned(),
            };
            c.problem(setting, p.message);
        }
    }
    if let (Some((policy, _)), Some(catalog)) = (&contact, &catalog)
        && let Err(e) = ContactGuard::new(policy, &declared.vocabulary, catalog)
    {
        c.problem("contact", e);
    }
    let action_dim = layout.as_ref().map_or(0, |l| l.action_context().dim());
    let actions = catalog.as_ref().map_or(0, |c| c.actions().len());
    let (bandit, join, updater_lateness) = policy(
        &file.policy,
        "policy",
        dim.unwrap_or(1),
        action_dim,
        actions,
        c,
    );
    let experiment = bandit.as_ref().and_then(|champion| {
        file.experiment
            .as_ref()
            .and_then(|e| experiment(file, e, champion, layout.as_ref(), catalog.as_ref(), c))
    });
    let intake = duration(c, "intake.dedup_window", &file.intake.dedup_window).zip(duration(
        c,
        "intake.max_ahead_of_record",
        &file.intake.max_ahead_of_record,
    ));
    let intake = intake.map(|(dedup_window_ms, max_ahead_of_record_ms)| IntakeConfig {
        dedup_window_ms,
        max_ahead_of_record_ms,
    });
    let simulation = file
        .simulation
        .as_ref()
        .and_then(|s| crate::simulation::compile(s, &declared, catalog.as_ref(), c));
    if !c.problems.is_empty() || !extra.is_empty() {
        return None;
    }
    Some(Settings {
        name: file.name.trim().to_owned(),
        action_dim,
        declared,
        catalog: catalog?,
        intake: intake?,
        features: features?,
        contact: contact?.0,
        bandit: bandit?,
        experiment,
        join: join?,
        updater_allowed_lateness_ms: updater_lateness?,
        simulation,
    })
}

fn undeclared(n: UndeclaredName) -> Undeclared {
    match n {
        UndeclaredName::Other => Undeclared::Other,
        UndeclaredName::DeadLetter => Undeclared::DeadLetter,
    }
}

fn vocabulary(file: &DeploymentFile, c: &mut Collector<'_>) -> Vocabulary {
    let v = &file.vocabulary;
    let channels = names(c, "vocabulary.channels", &v.channels);
    if channels.is_empty() {
        c.problem(
            "vocabulary.channels",
            "declare at least one channel (where interactions happen and actions go out)",
        );
    }
    let categories = names(c, "vocabulary.categories", &v.categories);
    let event_types = names(c, "vocabulary.event_types", &v.event_types);
    if event_types.is_empty() {
        c.problem(
            "vocabulary.event_types",
            "declare the business's event types (including the triggers and outcomes)",
        );
    }
    let triggers = lower(&v.triggers);
    if triggers.is_empty() {
        c.problem(
            "vocabulary.triggers",
            "name at least one trigger: the event types that ask for a next best action",
        );
    }
    for t in &triggers {
        if !event_types.contains(t) {
            c.problem(
                "vocabulary.triggers",
                format!(
                    "trigger {t:?} is not a declared event type: add it to vocabulary.event_types"
                ),
            );
        }
    }
    let mut outcomes = Vec::new();
    for (event_type, o) in &v.outcomes {
        let setting = format!("vocabulary.outcomes.{event_type}");
        let name = event_type.trim().to_ascii_lowercase();
        if !event_types.contains(&name) {
            c.problem(
                &setting,
                format!("outcome {name:?} is not a declared event type: add it to vocabulary.event_types"),
            );
        }
        if triggers.contains(&name) {
            c.problem(
                &setting,
                format!("{name:?} is both a trigger and an outcome: an event either asks for a decision or answers one"),
            );
        }
        let reward = match (o.reward, o.reward_per_amount) {
            (Some(r), None) if (0.0..=1.0).contains(&r) => Some(OutcomeReward::Fixed(r)),
            (Some(r), None) => {
                c.problem(
                    format!("{setting}.reward"),
                    format!("reward {r} is outside [0, 1]: rewards are in [0, 1]"),
                );
                None
            }
            (None, Some(f)) if f.is_finite() && f >= 0.0 => Some(OutcomeReward::PerAmount(f)),
            (None, Some(f)) => {
                c.problem(
                    format!("{setting}.reward_per_amount"),
                    format!("{f} must be a number >= 0"),
                );
                None
            }
            (None, None) => {
                c.problem(
                    &setting,
                    "the outcome has no reward value: give reward = <0..1> or reward_per_amount = <factor>",
                );
                None
            }
            (Some(_), Some(_)) => {
                c.problem(
                    &setting,
                    "give either reward or reward_per_amount, not both",
                );
                None
            }
        };
        let window_ms = o
            .window
            .as_deref()
            .and_then(|w| duration(c, &format!("{setting}.window"), w));
        if let Some(reward) = reward {
            outcomes.push(Outcome {
                event_type: name,
                reward,
                negative: o.negative,
                window_ms,
            });
        }
    }
    let consent = ConsentEvents {
        opt_out: lower(&v.consent.opt_out),
        opt_in: lower(&v.consent.opt_in),
        erase: lower(&v.consent.erase),
    };
    let profile_event = v.profile_event.trim().to_ascii_lowercase();
    for (setting, names) in [
        ("vocabulary.consent.opt_out", &consent.opt_out),
        ("vocabulary.consent.opt_in", &consent.opt_in),
        ("vocabulary.consent.erase", &consent.erase),
    ] {
        for n in names {
            if event_types.contains(n) {
                c.problem(
                    setting,
                    format!("{n:?} is also a declared event type: consent events are handled by nba, not counted; remove it from vocabulary.event_types"),
                );
            }
        }
    }
    if event_types.contains(&profile_event) || profile_event == nba_core::LINK_EVENT {
        c.problem(
            "vocabulary.profile_event",
            format!("{profile_event:?} is also a declared event type (or link): the profile event must be one of its own"),
        );
    }
    Vocabulary {
        channels,
        categories,
        event_types,
        triggers,
        outcomes,
        undeclared_event_types: undeclared(v.undeclared.event_types),
        undeclared_channels: undeclared(v.undeclared.channels),
        undeclared_categories: undeclared(v.undeclared.categories),
        consent,
        profile_event,
    }
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|ch| ch.is_ascii_alphanumeric() || ch == '_' || ch == '-')
}

fn profile(file: &DeploymentFile, c: &mut Collector<'_>) -> ProfileSpec {
    let mut fields = Vec::new();
    for (name, f) in &file.profile {
        let setting = format!("profile.{name}");
        if !valid_name(name) {
            c.problem(&setting, "a field name is letters, digits, _ and - only");
        }
        let kind = match f.kind {
            FieldType::Number => match (f.min, f.max) {
                (Some(min), Some(max)) if min.is_finite() && max.is_finite() && min < max => {
                    FieldKind::Number { min, max }
                }
                (Some(_), Some(_)) => {
                    c.problem(&setting, "min must be below max (both finite)");
                    continue;
                }
                _ => {
                    c.problem(
                        &setting,
                        "a number field needs min and max (the range context features scale it over)",
                    );
                    continue;
                }
            },
            FieldType::Category | FieldType::Set => {
                if f.values.is_empty() {
                    c.problem(
                        &setting,
                        "a category or set field needs its values (values = [...])",
                    );
                    continue;
                }
                let values = names(c, &format!("{setting}.values"), &f.values);
                if f.kind == FieldType::Category {
                    FieldKind::Category(values)
                } else {
                    FieldKind::Set(values)
                }
            }
        };
        if f.kind != FieldType::Number && (f.min.is_some() || f.max.is_some()) {
            c.problem(&setting, "min and max are for number fields only");
        }
        fields.push(ProfileField {
            name: name.clone(),
            kind,
        });
    }
    ProfileSpec { fields }
}

fn request(file: &DeploymentFile, c: &mut Collector<'_>) -> RequestSpec {
    let r = &file.request;
    if r.max_entries == 0 || r.max_value_bytes == 0 {
        c.problem(
            "request",
            "max_entries and max_value_bytes must be at least 1",
        );
    }
    let attributes = r
        .attributes
        .iter()
        .map(|(name, values)| AttributeSpec {
            name: name.clone(),
            values: (!values.is_empty())
                .then(|| names(c, &format!("request.attributes.{name}"), values)),
        })
        .collect();
    let metrics = r
        .metrics
        .iter()
        .filter_map(|(name, range)| {
            if !(range.min.is_finite() && range.max.is_finite() && range.min < range.max) {
                c.problem(
                    format!("request.metrics.{name}"),
                    "min must be below max (both finite)",
                );
                return None;
            }
            Some(MetricSpec {
                name: name.clone(),
                min: range.min,
                max: range.max,
            })
        })
        .collect();
    RequestSpec {
        attributes,
        metrics,
        max_entries: r.max_entries,
        max_value_bytes: r.max_value_bytes,
    }
}

fn features(
    file: &DeploymentFile,
    declared: &Declarations,
    c: &mut Collector<'_>,
) -> Option<FeatureConfig> {
    let f = &file.features;
    let windows: Vec<Option<i64>> = f
        .windows
        .iter()
        .map(|w| duration(c, "features.windows", w))
        .collect();
    let breakdown = duration(c, "features.breakdown_window", &f.breakdown_window);
    let lateness = duration(c, "features.allowed_lateness", &f.allowed_lateness);
    let last_seen = lower(&f.last_seen);
    for t in &last_seen {
        if !declared.vocabulary.event_types.contains(t) {
            c.problem(
                "features.last_seen",
                format!("{t:?} is not a declared event type"),
            );
        }
    }
    Some(FeatureConfig {
        windows_ms: windows.into_iter().collect::<Option<Vec<_>>>()?,
        breakdown_window_ms: breakdown?,
        allowed_lateness_ms: lateness?,
        context: f.context.clone(),
        action_context: f.action_context.clone(),
        last_seen,
        recent_actions: f.recent_actions,
    })
}

/// The contact policy (inline or included) and the eligibility conditions
/// and budgets it gives by action id.
type ContactParts = (ContactPolicyConfig, ContactSection);

fn contact(
    file: &DeploymentFile,
    dir: &Path,
    declared: &Declarations,
    c: &mut Collector<'_>,
    extra: &mut Vec<Problem>,
) -> Option<ContactParts> {
    let section = match &file.contact.include {
        None => file.contact.clone(),
        Some(include) => {
            if file.contact
                != (ContactSection {
                    include: Some(include.clone()),
                    ..ContactSection::default()
                })
            {
                c.problem(
                    "contact",
                    "give either contact.include or the policy's keys, not both",
                );
            }
            let path = dir.join(include);
            match crate::read_contact_file(&path) {
                Ok(s) => s,
                Err(problems) => {
                    extra.extend(problems);
                    return None;
                }
            }
        }
    };
    if let Some(negative) = &section.negative_responses {
        for n in lower(negative) {
            if declared.vocabulary.outcome(&n).is_none() {
                c.problem(
                    "contact.negative_responses",
                    format!("{n:?} is not a declared outcome: declare it under vocabulary.outcomes (with negative = true)"),
                );
            }
        }
    }
    if let Some(cd) = &section.cooldown_after_negative {
        duration(c, "contact.cooldown_after_negative", cd);
    }
    for (i, cap) in section.caps.iter().enumerate() {
        duration(c, &format!("contact.cap[{i}].per"), &cap.per);
    }
    Some((
        ContactPolicyConfig {
            cooldown_after_negative: section.cooldown_after_negative.clone(),
            caps: section.caps.clone(),
            segments: section.segments.clone(),
        },
        section,
    ))
}

fn catalog(
    file: &DeploymentFile,
    declared: &Declarations,
    contact: Option<&ContactParts>,
    c: &mut Collector<'_>,
) -> Option<ActionCatalog> {
    let empty = ContactSection::default();
    let by_id = contact.map_or(&empty, |(_, s)| s);
    for (table, ids) in [
        ("eligibility", by_id.eligibility.keys().collect::<Vec<_>>()),
        ("budgets", by_id.budgets.keys().collect()),
    ] {
        for id in ids {
            if !file.actions.iter().any(|a| a.id == *id) {
                c.problem(
                    format!("contact.{table}.{id}"),
                    format!("names action {id:?}, which is not in the catalog: declare it as an [[action]] or remove the entry"),
                );
            }
        }
    }
    let actions: Vec<ActionRecord> = file
        .actions
        .iter()
        .map(|a| {
            let mut eligibility = a.eligibility.clone();
            eligibility.extend(by_id.eligibility.get(&a.id).cloned().unwrap_or_default());
            let budget = a.budget.as_ref().or_else(|| by_id.budgets.get(&a.id));
            ActionRecord {
                id: a.id.trim().to_owned(),
                name: if a.name.is_empty() {
                    a.id.clone()
                } else {
                    a.name.clone()
                },
                group: a.group.clone(),
                kind: match a.kind {
                    KindName::Normal => "normal",
                    KindName::Mandatory => "mandatory",
                    KindName::Transactional => "transactional",
                }
                .to_owned(),
                value: a.value,
                weight: a.weight,
                valid_from: a.valid_from.map(|t| t.0),
                valid_until: a.valid_until.map(|t| t.0),
                tags: a.tags.clone(),
                treatments: a
                    .channels
                    .iter()
                    .map(|(channel, t)| TreatmentRecord {
                        channel: channel.trim().to_ascii_lowercase(),
                        template: t.template.clone(),
                        payload: t.payload.clone(),
                    })
                    .collect(),
                eligibility,
                budget_max: budget.map(|b| b.max),
                budget_per: budget.and_then(|b| b.per.clone()),
            }
        })
        .collect();
    let version = CatalogVersion {
        deployment: file.name.clone(),
        version: 0,
        effective_from: i64::MIN,
        actions,
    };
    ActionCatalog::from_version(&version, declared)
        .map_err(|problems| {
            for p in problems {
                let setting = match (p.action, p.field) {
                    (Some(i), "budget") => format!("action[{i}].budget"),
                    (Some(i), field) => format!("action[{i}].{field}"),
                    (None, _) => "action".to_owned(),
                };
                c.problem(setting, p.message);
            }
        })
        .ok()
}

type PolicyParts = (Option<BanditConfig>, Option<JoinConfig>, Option<i64>);

/// The bandit and join of the policy section `p`, found at `at` in the file
/// (`policy`, or a challenger's).
fn policy(
    p: &PolicySection,
    at: &str,
    dim: usize,
    action_dim: usize,
    actions: usize,
    c: &mut Collector<'_>,
) -> PolicyParts {
    let rule = match p.name {
        PolicyName::Linucb => Policy::LinUcb {
            alpha: p.alpha,
            epsilon: p.epsilon,
        },
        PolicyName::Thompson => Policy::Thompson {
            scale: p.thompson_scale,
        },
        PolicyName::EpsilonGreedy => Policy::EpsilonGreedy { epsilon: p.epsilon },
        PolicyName::Softmax => Policy::Softmax {
            temperature: p.temperature,
        },
        PolicyName::Squarecb => Policy::SquareCb {
            gamma: p.squarecb_gamma,
        },
    };
    let mut ok = true;
    if let Err(e) = rule.validate() {
        c.problem(at, e);
        ok = false;
    }
    for (field, v) in [
        (format!("{at}.lambda"), p.lambda),
        (format!("{at}.residual_lambda"), p.residual_lambda),
    ] {
        if !(v.is_finite() && v > 0.0) {
            c.problem(field, format!("{v} must be a finite number > 0"));
            ok = false;
        }
    }
    if !(p.gamma > 0.0 && p.gamma <= 1.0) {
        c.problem(
            format!("{at}.gamma"),
            format!("{} must be in (0, 1]", p.gamma),
        );
        ok = false;
    }
    if p.buckets == 0 {
        c.problem(
            format!("{at}.buckets"),
            "the window needs at least one bucket",
        );
        ok = false;
    }
    if !(0.0..=1.0).contains(&p.default_reward) {
        c.problem(
            format!("{at}.default_reward"),
            format!("{} must be in [0, 1]", p.default_reward),
        );
        ok = false;
    }
    if !(0.0..=1.0).contains(&p.exploration_floor) {
        c.problem(format!("{at}.exploration_floor"),
            format!(
                "{} must be in [0, 1] (the share of uniform choices that never fades; 0.01 by default)",
                p.exploration_floor
            ),
        );
        ok = false;
    }
    let model = match p.model {
        Some(ModelName::Disjoint) => Model::Disjoint,
        Some(ModelName::Hybrid) => Model::Hybrid { action_features: 1 },
        Some(ModelName::ActionAware) if action_dim == 0 => {
            c.problem(format!("{at}.model"),
                "the action-aware model reads each candidate's action context: declare features.action_context (e.g. [\"bias\", \"affinity:category\"]) or choose model = \"disjoint\"",
            );
            ok = false;
            Model::Disjoint
        }
        // The action-aware model is the default wherever there are pair
        // features to learn from.
        Some(ModelName::ActionAware) | None if action_dim > 0 => Model::ActionAware {
            features: action_dim,
            residual: match p.residual {
                None => Residual::for_catalog(actions),
                Some(ResidualName::None) => Residual::None,
                Some(ResidualName::Intercept) => Residual::Intercept,
                Some(ResidualName::Context) => Residual::Context,
            },
        },
        _ => Model::Disjoint,
    };
    let period = duration(c, &format!("{at}.bucket"), &p.bucket);
    let window = duration(
        c,
        &format!("{at}.attribution_window"),
        &p.attribution_window,
    );
    let lateness = duration(c, &format!("{at}.allowed_lateness"), &p.allowed_lateness);
    let bandit = period.filter(|_| ok).map(|period_ms| BanditConfig {
        dim,
        lambda: p.lambda,
        residual_lambda: p.residual_lambda,
        forgetting: match p.forgetting {
            ForgettingName::Stationary => Forgetting::Stationary,
            ForgettingName::Window => Forgetting::SlidingWindow {
                bucket_ms: period_ms,
                buckets: p.buckets,
            },
            ForgettingName::Discounted => Forgetting::Discounted {
                gamma: p.gamma,
                tick_ms: period_ms,
            },
        },
        model,
        policy: rule,
        exploration: Exploration {
            fade: p.exploration_fade,
            floor: p.exploration_floor,
        },
        keep_at_least: p.keep_at_least,
        objective: match p.objective {
            ObjectiveName::Reward => Objective::Reward,
            ObjectiveName::Value => Objective::Value,
        },
        seed: p.seed,
        ..BanditConfig::default()
    });
    let join = window.map(|window_ms| JoinConfig {
        window_ms,
        default_reward: p.default_reward,
    });
    (bandit, join, lateness)
}

/// The guardrail `[experiment.baseline]` declares: the defaults are
/// [`GuardrailConfig::new`]'s.
fn guardrail(
    b: &BaselineSection,
    layout: Option<&FeatureLayout>,
    catalog: Option<&ActionCatalog>,
    c: &mut Collector<'_>,
) -> Option<GuardrailConfig> {
    let rule = match b.rule.trim() {
        "order" => {
            if let Some(unknown) = b
                .order
                .iter()
                .find(|a| catalog.is_some_and(|cat| cat.get(a).is_none()))
            {
                c.problem(
                    "experiment.baseline.order",
                    format!("{unknown:?} is not an action of the catalog: list catalog actions"),
                );
                return None;
            }
            BaselineRule::Order(b.order.clone())
        }
        "ranking" => BaselineRule::Ranking,
        feature => match layout.and_then(|l| l.action_context().column(feature)) {
            Some((column, 1)) => BaselineRule::ActionContext {
                column,
                feature: feature.to_owned(),
            },
            Some((_, width)) => {
                c.problem(
                    "experiment.baseline.rule",
                    format!("{feature} is {width} values per candidate: the baseline ranks by a feature of one value, such as affinity:TAG"),
                );
                return None;
            }
            None => {
                c.problem(
                    "experiment.baseline.rule",
                    format!("{feature:?} is not a rule: use \"order\" (with order = [...]), \"ranking\" (value × lever weight), or a feature of features.action_context such as \"affinity:category\""),
                );
                return None;
            }
        },
    };
    if !b.order.is_empty() && !matches!(rule, BaselineRule::Order(_)) {
        c.problem(
            "experiment.baseline.order",
            "order is read only with rule = \"order\": remove it or set the rule",
        );
    }
    let mut g = GuardrailConfig::new(rule);
    if let Some(name) = &b.name {
        g.baseline_arm = name.trim().to_owned();
    }
    g.trial_share = b.trial_share.unwrap_or(g.trial_share);
    g.takeover_share = b.takeover_share.unwrap_or(g.takeover_share);
    g.window = b.window.unwrap_or(g.window);
    g.min_outcomes = b.min_outcomes.unwrap_or(g.min_outcomes);
    if let Some(text) = &b.fallback_after {
        g.fallback_after_ms = duration(c, "experiment.baseline.fallback_after", text)?;
    }
    Some(g)
}

/// The policy keys every arm of an experiment shares: one reward join
/// closes every decision, whichever arm made it.
const SHARED_POLICY_KEYS: [&str; 4] = [
    "attribution_window",
    "default_reward",
    "allowed_lateness",
    "dim",
];

/// The experiment `e`: each challenger's and shadow's policy is `[policy]`
/// with the keys it changes.
fn experiment(
    file: &DeploymentFile,
    e: &ExperimentSection,
    champion: &BanditConfig,
    layout: Option<&FeatureLayout>,
    catalog: Option<&ActionCatalog>,
    c: &mut Collector<'_>,
) -> Option<ExperimentConfig> {
    let action_dim = layout.map_or(0, |l| l.action_context().dim());
    let actions = catalog.map_or(0, |c| c.actions().len());
    let problems_before = c.problems.len();
    if e.challengers.is_empty() && e.shadows.is_empty() && e.baseline.is_none() {
        c.problem(
            "experiment",
            "declare at least one [[experiment.challenger]] (name, share, and the [policy] keys it changes), [[experiment.shadow]] (name and policy) or [experiment.baseline] (rule), or remove [experiment]",
        );
    }
    let bandit_of = |at: String, changes: &toml::Table, c: &mut Collector<'_>| {
        if let Some(key) = changes
            .keys()
            .find(|k| SHARED_POLICY_KEYS.contains(&k.as_str()))
        {
            c.problem(
                format!("{at}.{key}"),
                format!("every arm shares the reward join: set {key} in [policy], not here"),
            );
            return None;
        }
        let mut merged = match toml::Value::try_from(&file.policy) {
            Ok(toml::Value::Table(t)) => t,
            _ => toml::Table::new(),
        };
        merged.extend(changes.clone());
        let section: PolicySection = match toml::Value::Table(merged).try_into() {
            Ok(s) => s,
            Err(err) => {
                c.problem(
                    at,
                    format!("{err}: an experiment's policy takes the keys of [policy]"),
                );
                return None;
            }
        };
        policy(&section, &at, champion.dim, action_dim, actions, c).0
    };
    let mut challengers = Vec::new();
    for (i, ch) in e.challengers.iter().enumerate() {
        let at = format!("experiment.challenger[{i}].policy");
        if let Some(bandit) = bandit_of(at, &ch.policy, c) {
            challengers.push(ChallengerConfig {
                name: ch.name.trim().to_owned(),
                share: ch.share,
                bandit,
            });
        }
    }
    let mut shadows = Vec::new();
    for (i, sh) in e.shadows.iter().enumerate() {
        let at = format!("experiment.shadow[{i}].policy");
        if let Some(bandit) = bandit_of(at, &sh.policy, c) {
            shadows.push(ShadowConfig {
                name: sh.name.trim().to_owned(),
                bandit,
                learning: match sh.learning {
                    ShadowLearningName::Observed => ShadowLearning::Observed,
                    ShadowLearningName::All => ShadowLearning::All,
                },
            });
        }
    }
    let experiment = ExperimentConfig {
        name: e.name.trim().to_owned(),
        champion: e.champion.trim().to_owned(),
        challengers,
        shadows,
        guardrail: e
            .baseline
            .as_ref()
            .and_then(|b| guardrail(b, layout, catalog, c)),
    };
    if c.problems.len() > problems_before {
        return None;
    }
    if let Err(err) = experiment.validate(champion) {
        c.problem("experiment", err);
        return None;
    }
    Some(experiment)
}
