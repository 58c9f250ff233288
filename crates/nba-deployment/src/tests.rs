use std::path::Path;

use super::*;

fn bank_text() -> &'static str {
    EXAMPLES[1].1
}

fn check(text: &str) -> Result<Deployment, Problems> {
    Deployment::from_text(text, Some(Path::new("bank.toml")), Path::new("."), &[])
}

/// `text` with `from` replaced by `to` (which must occur).
fn edited(from: &str, to: &str) -> String {
    assert!(bank_text().contains(from), "the bank example has {from:?}");
    bank_text().replacen(from, to, 1)
}

#[test]
fn the_examples_resolve() {
    let retail = Deployment::example("retail", &[]).expect("retail");
    assert_eq!(retail.settings.dim(), 16);
    assert_eq!(retail.settings.catalog.actions().len(), 8);
    let bank = Deployment::example("bank", &[]).expect("bank");
    assert!(bank.settings.catalog.actions().len() >= 10);
    assert_eq!(bank.settings.dim(), 26);
    assert_eq!(bank.settings.action_dim, 1 + 1 + 7 + 1);
    let groups: std::collections::BTreeSet<&str> = bank
        .settings
        .catalog
        .actions()
        .iter()
        .map(|a| a.group.split('/').next().unwrap_or_default())
        .collect();
    assert!(groups.len() >= 4, "{groups:?}");
}

/// Every kind of mistake gets its own message, on the line it was made,
/// with the setting at fault and what to do.
#[test]
fn mistakes_are_explained_where_they_were_made() {
    let cases: Vec<(String, &str, &str)> = vec![
        // 1. TOML syntax.
        (
            edited("name = \"bank\"", "name = bank"),
            "",
            "string values must be quoted",
        ),
        // 2. An unknown key.
        (
            edited(
                "[policy]\nname = \"linucb\"",
                "[policy]\nname = \"linucb\"\nalpa = 0.3",
            ),
            "",
            "unknown field `alpa`",
        ),
        // 3. A value of the wrong type.
        (
            edited("buckets = 28", "buckets = \"many\""),
            "",
            "invalid type",
        ),
        // 4. A duplicate action id.
        (
            edited("id = \"car_loan\"", "id = \"personal_loan\""),
            "action[4].id",
            "is declared twice",
        ),
        // 5. A treatment on an undeclared channel.
        (
            edited(
                "call = { template = \"script-mortgage\" }",
                "fax = { template = \"script-mortgage\" }",
            ),
            "action[2].channels",
            "\"fax\", which is not a declared channel",
        ),
        // 6. A rule naming an undeclared profile field.
        (
            edited(
                "eligibility = [\"profile.age >= 21\"]",
                "eligibility = [\"profile.income >= 21\"]",
            ),
            "action[3].eligibility",
            "\"income\" is not a declared profile field",
        ),
        // 7. A context feature naming an undeclared attribute.
        (
            edited("\"attribute.intent\",", "\"attribute.mood\","),
            "features.context",
            "attribute \"mood\" is not declared",
        ),
        // 8. A negative value.
        (
            edited("value = 120.0", "value = -120.0"),
            "action[0].value",
            "must be a number >= 0",
        ),
        // 9. A negative budget.
        (
            edited(
                "budget = { max = 500, per = \"24h\" }",
                "budget = { max = -5, per = \"24h\" }",
            ),
            "action[1].budget",
            "a budget must be >= 0",
        ),
        // 10. valid_until before valid_from.
        (
            edited(
                "valid_until = 2026-01-03T00:00:00Z",
                "valid_until = 2025-01-03T00:00:00Z",
            ),
            "action[11].valid_until",
            "valid_until must be after valid_from",
        ),
        // 11. An outcome with no reward value.
        (
            edited("click = { reward = 1.0 }", "click = { negative = false }"),
            "vocabulary.outcomes.click",
            "the outcome has no reward value",
        ),
        // 12. An empty catalog.
        (
            bank_text()
                .split("[[action]]")
                .next()
                .expect("the part before the actions")
                .to_owned(),
            "action",
            "the catalog has no action",
        ),
        // 13. A context longer than the model takes / a declared dimension
        // the context does not have.
        (
            edited(
                "attribution_window = \"30m\"",
                "attribution_window = \"30m\"\ndim = 16",
            ),
            "policy.dim",
            "policy.dim is 16 but the context has 26 entries",
        ),
        // 14. A trigger that is not a declared event type.
        (
            edited(
                "triggers = [\"login\", \"salary_changed\", \"moved_house\"]",
                "triggers = [\"login\", \"logout\"]",
            ),
            "vocabulary.triggers",
            "trigger \"logout\" is not a declared event type",
        ),
        // 15. A duration people cannot mean.
        (
            edited("bucket = \"6h\"", "bucket = \"6 hours\""),
            "policy.bucket",
            "has unit",
        ),
        // 16. A policy setting out of range.
        (
            edited(
                "[policy]\nname = \"linucb\"",
                "[policy]\nname = \"linucb\"\nepsilon = 1.5",
            ),
            "policy",
            "epsilon in [0, 1]",
        ),
        // 17. A category field without values.
        (
            edited(
                "country = { type = \"category\", values = [\"uk\", \"ie\", \"de\", \"fr\", \"es\", \"nl\"] }",
                "country = { type = \"category\" }",
            ),
            "profile.country",
            "needs its values",
        ),
        // 18. A tag value the catalog does not declare.
        (
            edited(
                "tags = { product = \"card\", category = \"credit_cards\" }",
                "tags = { product = \"crypto\", category = \"credit_cards\" }",
            ),
            "action[0].tags",
            "catalog.tags.product does not list",
        ),
        // 19. A channel listed twice.
        (
            edited(
                "channels = [\"branch\", \"app\", \"web\", \"call\", \"email\"]",
                "channels = [\"branch\", \"app\", \"web\", \"app\", \"email\"]",
            ),
            "vocabulary.channels",
            "\"app\" is listed twice",
        ),
        // 20. A segment condition on an event time nba does not keep.
        (
            edited(
                "movers = [\"count:moved_house > 0.3\"]",
                "movers = [\"since:payment < 30d\"]",
            ),
            "contact.segments",
            "add it to features.last_seen",
        ),
        // 21. A simulation naming an undeclared event type.
        (
            edited("payment = 0.1 }", "teleport = 0.1 }"),
            "simulation.browse",
            "\"teleport\" is not a declared event type",
        ),
        // 22. The action-aware model without pair features.
        (
            edited(
                "action_context = [\"bias\", \"affinity:category\", \"tag:product\", \"value:5000\"]",
                "action_context = []",
            )
            .replacen(
                "[policy]\nname = \"linucb\"",
                "[policy]\nname = \"linucb\"\nmodel = \"action-aware\"",
                1,
            ),
            "policy.model",
            "declare features.action_context",
        ),
        // 23. An exploration floor out of range.
        (
            edited(
                "[policy]\nname = \"linucb\"",
                "[policy]\nname = \"linucb\"\nexploration_floor = 1.5",
            ),
            "policy.exploration_floor",
            "must be in [0, 1]",
        ),
    ];
    let mut kinds = std::collections::BTreeSet::new();
    for (text, setting, says) in &cases {
        let problems = check(text).expect_err(says);
        let found = problems
            .0
            .iter()
            .find(|p| p.message.contains(says))
            .unwrap_or_else(|| panic!("{says:?} not in {problems}"));
        assert_eq!(found.setting, *setting, "{found}");
        assert_eq!(found.file.as_deref(), Some(Path::new("bank.toml")));
        let Some(line) = found.line else {
            // Only what the file does not write at all has no line.
            assert!(
                !text.contains(&format!("[[{setting}]]")),
                "no line: {found}"
            );
            kinds.insert(*says);
            continue;
        };
        // The line is where the setting (or its section) is written.
        let key = setting.rsplit(['.', ']']).next().unwrap_or_default();
        let written = text.lines().nth(line - 1).unwrap_or_default();
        assert!(
            key.is_empty() || written.contains(key) || written.starts_with('['),
            "{found}: line {line} is {written:?}"
        );
        kinds.insert(*says);
    }
    assert!(kinds.len() >= 15, "{} kinds", kinds.len());
}

#[test]
fn every_problem_is_reported_at_once() {
    let text = edited("value = 120.0", "value = -1.0")
        .replacen("id = \"car_loan\"", "id = \"personal_loan\"", 1)
        .replacen("buckets = 28", "buckets = 0", 1);
    let problems = check(&text).expect_err("three problems");
    assert_eq!(problems.0.len(), 3, "{problems}");
    assert!(problems.to_string().starts_with("bank.toml:"), "{problems}");
}

#[test]
fn flags_and_the_environment_override_the_file_and_say_so() {
    let overrides = [
        Override::new("policy.alpha", 0.25, Source::Flag("--alpha".into())),
        Override::new(
            "features.windows",
            toml::Value::Array(vec!["1h".into(), "30d".into()]),
            Source::Environment("NBA_FEATURE_WINDOWS".into()),
        ),
        Override::new(
            "features.breakdown_window",
            "30d",
            Source::Flag("--breakdown-window".into()),
        ),
    ];
    let d = Deployment::example("bank", &overrides).expect("checks");
    assert_eq!(
        d.settings.bandit.policy,
        nba_core::Policy::LinUcb {
            alpha: 0.25,
            epsilon: 0.05
        }
    );
    assert_eq!(d.settings.features.windows_ms, [3_600_000, 2_592_000_000]);
    let report = d.report();
    for line in [
        "policy.alpha = 0.25  # flag --alpha",
        "features.windows = [\"1h\", \"30d\"]  # environment NBA_FEATURE_WINDOWS",
        "policy.epsilon = 0.05  # default",
        "name = \"bank\"  # file",
        "\"action[0]\".id = \"credit_card\"  # file",
    ] {
        assert!(report.contains(line), "{line} in\n{report}");
    }
    // What the report prints is TOML.
    let _: toml::Table = report.parse().expect("the report is TOML");
    // A bad override names its source, not a line.
    let bad = [Override::new(
        "features.context",
        "bias,colour",
        Source::Flag("--context".into()),
    )];
    let problems = Deployment::example("bank", &bad).expect_err("colour");
    assert_eq!(problems.0[0].source, Some(Source::Flag("--context".into())));
    assert!(
        problems
            .to_string()
            .starts_with("flag --context: features.context: "),
        "{problems}"
    );
}

#[test]
fn a_contact_policy_file_is_included_and_its_mistakes_located_in_it() {
    let dir = std::env::temp_dir().join(format!("nba-include-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let policy = dir.join("policy.toml");
    std::fs::write(
        &policy,
        "cooldown_after_negative = \"3d\"\n[[cap]]\nscope = \"overall\"\nmax = 2\nper = \"24h\"\n[eligibility]\ncredit_card = [\"profile.tenure >= 1\"]\n",
    )
    .expect("written");
    let text = bank_text()
        .split("[contact]")
        .next()
        .expect("before")
        .to_owned()
        + "[contact]\ninclude = \"policy.toml\"\n"
        + &bank_text()[bank_text().find("[catalog.tags]").expect("after")..];
    let file = dir.join("bank.toml");
    std::fs::write(&file, &text).expect("written");
    let d = Deployment::load(&file, &[]).expect("checks");
    assert_eq!(d.settings.contact.caps.len(), 1);
    let card = d.settings.catalog.get("credit_card").expect("card");
    assert_eq!(
        card.eligibility.len(),
        3,
        "its own two and the policy's one"
    );
    std::fs::write(
        &policy,
        "\n[[cap]]\nscope = \"everyone\"\nmax = 2\nper = \"24h\"\n",
    )
    .expect("written");
    let problems = Deployment::load(&file, &[]).expect_err("bad scope");
    assert_eq!(problems.0[0].file.as_deref(), Some(policy.as_path()));
    assert_eq!(problems.0[0].line, Some(3));
    let _ = std::fs::remove_dir_all(&dir);
}

/// The action-aware model is the default where pair features are declared;
/// every new policy setting reaches the engine's configuration.
#[test]
fn the_model_follows_the_declared_features_and_every_policy_setting_resolves() {
    use nba_core::{Model, Objective, Residual};
    let bank = check(bank_text()).expect("bank").settings;
    assert_eq!(
        bank.bandit.model,
        Model::ActionAware {
            features: bank.action_dim,
            residual: Residual::Context
        }
    );
    let none = check(&edited(
        "action_context = [\"bias\", \"affinity:category\", \"tag:product\", \"value:5000\"]",
        "action_context = []",
    ))
    .expect("checks")
    .settings;
    assert_eq!(none.bandit.model, Model::Disjoint);
    let text = edited(
        "[policy]\nname = \"linucb\"",
        "[policy]\nname = \"linucb\"\nresidual = \"intercept\"\nobjective = \"value\"\nexploration_floor = 0.02\nexploration_fade = 500\nkeep_at_least = 250\nresidual_lambda = 20.0",
    );
    let d = check(&text).expect("checks");
    let b = &d.settings.bandit;
    assert_eq!(
        b.model,
        Model::ActionAware {
            features: bank.action_dim,
            residual: Residual::Intercept
        }
    );
    assert_eq!(b.objective, Objective::Value);
    assert_eq!((b.exploration.floor, b.exploration.fade), (0.02, 500));
    assert_eq!(b.keep_at_least, 250);
    assert_eq!(b.residual_lambda, 20.0);
    assert_eq!(b.own_lambda(), 20.0);
    let report = d.report();
    assert!(report.contains("policy.objective = \"value\""), "{report}");
    assert!(
        report.contains("# model: action-aware(features=10,residual=intercept)"),
        "{report}"
    );
    let bad = check(&edited(
        "[policy]\nname = \"linucb\"",
        "[policy]\nname = \"linucb\"\nresidual_lambda = -1.0",
    ))
    .expect_err("a negative residual prior");
    assert!(bad.to_string().contains("policy.residual_lambda"), "{bad}");
}

/// Unless a residual is declared, a catalog of more actions than
/// `Residual::LARGE_CATALOG` gets none (its cost grows with candidates × d²),
/// a smaller one the default.
#[test]
fn the_residual_follows_the_catalogs_size_unless_declared() {
    use nba_core::{Model, Residual};
    let residual = |text: &str| match check(text).expect("checks").settings.bandit.model {
        Model::ActionAware { residual, .. } => residual,
        other => panic!("{other:?}"),
    };
    assert_eq!(residual(bank_text()), Residual::default());
    let mut large = bank_text().to_owned();
    for i in 0..Residual::LARGE_CATALOG {
        large.push_str(&format!(
            "\n[[action]]\nid = \"extra_{i}\"\nname = \"Extra {i}\"\ngroup = \"growth/savings\"\nvalue = 1.0\n[action.channels]\napp = {{ template = \"extra\" }}\n"
        ));
    }
    assert_eq!(residual(&large), Residual::None);
    let declared = large.replacen(
        "[policy]\nname = \"linucb\"",
        "[policy]\nname = \"linucb\"\nresidual = \"context\"",
        1,
    );
    assert_eq!(residual(&declared), Residual::Context);
}

/// `[experiment]` with one challenger whose `policy` table changes `changes`.
fn with_experiment(share: &str, changes: &str) -> String {
    edited(
        "attribution_window = \"30m\"\n",
        &format!(
            "attribution_window = \"30m\"\n\n[experiment]\nname = \"q4-trial\"\n\n[[experiment.challenger]]\nname = \"thompson\"\nshare = {share}\npolicy = {{ {changes} }}\n"
        ),
    )
}

#[test]
fn a_challenger_is_the_policy_with_the_keys_it_changes() {
    let d = check(&with_experiment(
        "0.25",
        "name = \"thompson\", thompson_scale = 0.1",
    ))
    .expect("checks");
    let champion = &d.settings.bandit;
    let e = d.settings.experiment.as_ref().expect("an experiment");
    assert_eq!(
        (e.name.as_str(), e.champion.as_str()),
        ("q4-trial", "champion")
    );
    let c = &e.challengers[0];
    assert_eq!((c.name.as_str(), c.share), ("thompson", 0.25));
    assert_eq!(c.bandit.policy, nba_core::Policy::Thompson { scale: 0.1 });
    // Everything it does not change is the champion's.
    assert_eq!(c.bandit.forgetting, champion.forgetting);
    assert_eq!(c.bandit.model, champion.model);
    assert_eq!(c.bandit.dim, champion.dim);
    assert_eq!(d.settings.updater(None).experiment.as_ref(), Some(e));

    // A shadow alone is an experiment too, and learns from what it is told.
    let text = edited(
        "attribution_window = \"30m\"\n",
        "attribution_window = \"30m\"\n\n[experiment]\nname = \"shadowing\"\n\n[[experiment.shadow]]\nname = \"greedy\"\nlearning = \"all\"\npolicy = { name = \"epsilon-greedy\", epsilon = 0.0 }\n",
    );
    let d = check(&text).expect("checks");
    let e = d.settings.experiment.as_ref().expect("an experiment");
    assert!(e.challengers.is_empty());
    assert_eq!(e.shadows[0].learning, nba_core::ShadowLearning::All);
    assert_eq!(
        e.shadows[0].bandit.policy,
        nba_core::Policy::EpsilonGreedy { epsilon: 0.0 }
    );
    // Undeclared, it is the engine's default; declared, what is declared.
    for (declared, learning) in [
        ("", nba_core::ShadowLearning::default()),
        (
            "learning = \"observed\"\n",
            nba_core::ShadowLearning::Observed,
        ),
    ] {
        let d = check(&text.replace("learning = \"all\"\n", declared)).expect("checks");
        let e = d.settings.experiment.as_ref().expect("an experiment");
        assert_eq!(e.shadows[0].learning, learning, "{declared:?}");
    }
    let problems =
        check(&text.replace("learning = \"all\"", "learning = \"some\"")).expect_err("refused");
    assert!(
        problems.to_string().contains("unknown variant"),
        "{problems}"
    );

    for (text, setting, says) in [
        (
            with_experiment("0.25", "attribution_window = \"1h\""),
            "experiment.challenger[0].policy.attribution_window",
            "every arm shares the reward join",
        ),
        (
            with_experiment("0.25", "alpa = 0.3"),
            "experiment.challenger[0].policy",
            "unknown field `alpa`",
        ),
        (
            with_experiment("0.25", "epsilon = 2.0"),
            "experiment.challenger[0].policy",
            "epsilon in [0, 1]",
        ),
        (
            with_experiment("1.0", ""),
            "experiment",
            "a share is in (0, 1)",
        ),
    ] {
        let problems = check(&text).expect_err(says);
        let found = &problems.0[0];
        assert_eq!(found.setting, setting, "{problems}");
        assert!(found.message.contains(says), "{problems}");
    }
}

/// `[experiment]` with `[experiment.baseline]` holding `baseline`.
fn with_baseline(baseline: &str) -> String {
    edited(
        "attribution_window = \"30m\"\n",
        &format!(
            "attribution_window = \"30m\"\n\n[experiment]\nname = \"apprentice\"\n\n[experiment.baseline]\n{baseline}\n"
        ),
    )
}

#[test]
fn a_baseline_guards_the_champion_with_its_rule_and_the_documented_defaults() {
    let d = check(&with_baseline("rule = \"affinity:category\"")).expect("checks");
    let e = d.settings.experiment.as_ref().expect("an experiment");
    let g = e.guardrail.as_ref().expect("a guardrail");
    // bias is column 0, so the customer's category affinity is column 1.
    let defaults = nba_core::GuardrailConfig::new(nba_core::BaselineRule::ActionContext {
        column: 1,
        feature: "affinity:category".into(),
    });
    assert_eq!(g, &defaults);
    assert_eq!(e.champion_share(), defaults.trial_share);

    let d = check(&with_baseline(
        "name = \"rules\"\nrule = \"order\"\norder = [\"fee_waiver\", \"savings_nudge\"]\ntrial_share = 0.05\ntakeover_share = 0.5\nwindow = 500\nmin_outcomes = 50\nfallback_after = \"2h\"",
    ))
    .expect("checks");
    let g = d
        .settings
        .experiment
        .as_ref()
        .and_then(|e| e.guardrail.as_ref());
    let g = g.expect("a guardrail");
    assert_eq!(
        g.baseline,
        nba_core::BaselineRule::Order(vec!["fee_waiver".into(), "savings_nudge".into()])
    );
    assert_eq!(g.baseline_arm, "rules");
    assert_eq!((g.trial_share, g.takeover_share), (0.05, 0.5));
    assert_eq!((g.window, g.min_outcomes), (500, 50));
    assert_eq!(g.fallback_after_ms, 7_200_000);

    for (baseline, setting, says) in [
        (
            "rule = \"most-popular\"",
            "experiment.baseline.rule",
            "is not a rule",
        ),
        (
            "rule = \"tag:product\"",
            "experiment.baseline.rule",
            "a feature of one value",
        ),
        (
            "rule = \"order\"\norder = [\"free_lunch\"]",
            "experiment.baseline.order",
            "not an action of the catalog",
        ),
        (
            "rule = \"ranking\"\norder = [\"fee_waiver\"]",
            "experiment.baseline.order",
            "only with rule = \"order\"",
        ),
        (
            "rule = \"ranking\"\ntrial_share = 0.5\ntakeover_share = 0.2",
            "experiment",
            "not fewer",
        ),
        (
            "rule = \"ranking\"\nfallback_after = \"soon\"",
            "experiment.baseline.fallback_after",
            "",
        ),
    ] {
        let problems = check(&with_baseline(baseline)).expect_err(says);
        let found = &problems.0[0];
        assert_eq!(found.setting, setting, "{problems}");
        assert!(found.message.contains(says), "{problems}");
    }
    let text = with_experiment("0.25", "").replace(
        "[[experiment.challenger]]",
        "[experiment.baseline]\nrule = \"ranking\"\n\n[[experiment.challenger]]",
    );
    let problems = check(&text).expect_err("a baseline and a challenger");
    assert!(
        problems
            .to_string()
            .contains("remove the [[experiment.challenger]]s"),
        "{problems}"
    );
}

#[test]
fn a_response_rule_holds_between_its_times() {
    let d = check(&edited(
        "[[simulation.response_rule]]\n",
        "[[simulation.response_rule]]\nfrom = \"2026-01-02T00:00:00Z\"\nuntil = \"2026-01-03T00:00:00Z\"\n",
    ))
    .expect("checks");
    let sim = d.settings.simulation.as_ref().expect("a simulation");
    let rule = &sim.responses[0];
    let catalog = &d.settings.catalog;
    let action = rule.actions.first().expect("names an action");
    let day = 86_400_000;
    let jan2 = 1_767_225_600_000 + day;
    assert!(!rule.covers(action, catalog, jan2 - 1));
    assert!(rule.covers(action, catalog, jan2));
    assert!(!rule.covers(action, catalog, jan2 + day));
    let problems = check(&edited(
        "[[simulation.response_rule]]\n",
        "[[simulation.response_rule]]\nfrom = \"2026-01-03T00:00:00Z\"\nuntil = \"2026-01-02T00:00:00Z\"\n",
    ))
    .expect_err("ends before it starts");
    assert!(
        problems.to_string().contains("until comes after from"),
        "{problems}"
    );
}

/// `nba config check` says how low a logged propensity can go, what weight
/// that gives a decision in off-policy estimates, and when that is too
/// heavy to compare policies on the log.
#[test]
fn the_report_says_what_the_exploration_floor_allows_off_policy() {
    let report = |floor: &str| {
        check(&edited(
            "[policy]\nname = \"linucb\"",
            &format!("[policy]\nname = \"linucb\"\nexploration_floor = {floor}"),
        ))
        .expect("checks")
        .report()
    };
    let default = check(bank_text()).expect("checks").report();
    assert!(
        default.contains("# logged propensities: at least 4.17e-4 (policy.exploration_floor 0.005 over 12 actions)")
            && default.contains("up to 2400×: to compare policies on this log, raise policy.exploration_floor"),
        "{default}"
    );
    let high = report("0.6");
    assert!(
        high.contains("up to 20×") && !high.contains("raise"),
        "{high}"
    );
    assert!(report("0.0").contains("no floor"));
}
