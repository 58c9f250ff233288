//! The recipes under `deploy/` stay in step with the code: every file parses,
//! the Kubernetes ConfigMap's settings are settings the binaries accept, the
//! Grafana dashboard and Prometheus config use metric names and ports the stages
//! really serve, and `--print-config` masks secrets.

use std::path::{Path, PathBuf};
use std::process::Command;

use yaml_rust2::{Yaml, YamlLoader};

fn deploy() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy")
}

fn yaml(path: &str) -> Vec<Yaml> {
    let text = std::fs::read_to_string(deploy().join(path)).expect(path);
    YamlLoader::load_from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn updater() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_nba-model-updater"));
    cmd.env("NBA_DEPLOYMENT", retail());
    cmd
}

fn retail() -> PathBuf {
    deploy().join("examples/retail/deployment.toml")
}

#[test]
fn recipes_parse_and_name_what_the_code_serves() {
    for f in [
        "compose.yaml",
        "prometheus.yml",
        "grafana/provisioning/datasources/prometheus.yaml",
        "grafana/provisioning/dashboards/nba.yaml",
        "k8s/consumer.yaml",
        "k8s/feature-aggregator.yaml",
        "k8s/model-updater.yaml",
    ] {
        assert!(!yaml(f).is_empty(), "{f} is empty");
    }
    for stage in ["consumer", "feature-aggregator", "model-updater"] {
        let d = &yaml(&format!("k8s/{stage}.yaml"))[0];
        let c = &d["spec"]["template"]["spec"]["containers"][0];
        assert_eq!(
            c["livenessProbe"]["httpGet"]["path"].as_str(),
            Some("/healthz")
        );
        assert_eq!(
            c["readinessProbe"]["httpGet"]["path"].as_str(),
            Some("/readyz")
        );
    }
    // The dashboard queries metrics the stages export.
    let dashboard: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(deploy().join("grafana/dashboards/nba.json")).expect("dashboard"),
    )
    .expect("the dashboard is JSON");
    let runner = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../nba-kafka/src/ops.rs"),
    )
    .expect("ops.rs");
    let stages = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../nba-pipeline/src/stages.rs"),
    )
    .expect("stages.rs");
    let mut queried = 0;
    for panel in dashboard["panels"].as_array().expect("panels") {
        for target in panel["targets"].as_array().expect("targets") {
            let expr = target["expr"].as_str().expect("expr");
            for word in expr.split(|c: char| !(c.is_alphanumeric() || c == '_')) {
                if let Some(base) = word.strip_prefix("nba_") {
                    let base = base.trim_end_matches("_bucket");
                    let name = format!("nba_{base}");
                    assert!(
                        runner.contains(&format!("\"{name}\""))
                            || stages.contains(&format!("\"{name}\"")),
                        "the dashboard queries {name}, which no stage exports"
                    );
                    queried += 1;
                }
            }
        }
    }
    assert!(queried >= 10);
}

#[test]
fn the_configmap_settings_are_accepted_and_secrets_are_masked() {
    let cm = &yaml("k8s/configmap.yaml")[0];
    let toml_text = cm["data"]["nba.toml"]
        .as_str()
        .expect("nba.toml in the ConfigMap");
    let dir = std::env::temp_dir().join(format!("nba-deploy-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let file = dir.join("nba.toml");
    std::fs::write(
        &file,
        format!("kafka-config = [\"sasl.password=hunter2\", \"security.protocol=sasl_ssl\"]\n{toml_text}"),
    )
    .expect("written");
    let out = updater()
        .arg("--config")
        .arg(&file)
        .args(["--print-config", "--policy", "thompson"])
        .env_remove("NBA_BROKERS")
        .env("NBA_ALPHA", "0.7")
        .output()
        .expect("runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(
        printed.contains("brokers = \"kafka-bootstrap.kafka:9092\"  # file"),
        "{printed}"
    );
    assert!(
        printed.contains("policy = \"thompson\"  # flag"),
        "{printed}"
    );
    assert!(
        printed.contains("alpha = \"0.7\"  # environment"),
        "{printed}"
    );
    // The deployment as resolved: the flag and the variable over the file.
    assert!(
        printed.contains("policy.name = \"thompson\"  # flag --policy"),
        "{printed}"
    );
    assert!(
        printed.contains("policy.alpha = 0.7  # environment NBA_ALPHA"),
        "{printed}"
    );
    assert!(printed.contains("name = \"retail\"  # file"), "{printed}");
    assert!(printed.contains("sasl.password=****"), "{printed}");
    assert!(!printed.contains("hunter2"), "{printed}");
    // The printed configuration is itself a valid file of settings.
    let _: toml::Table = printed.parse().expect("--print-config prints TOML");
    // A setting the binaries do not have is refused with the fix.
    std::fs::write(&file, "polcy = \"thompson\"\n").expect("written");
    let out = updater().arg("--config").arg(&file).output().expect("runs");
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("`polcy` is not a setting of nba-model-updater")
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// One file for every stage: shared settings, each stage's section over them,
/// the other stages' sections left alone (and listed), librdkafka lists adding
/// up from the file's top level, its section, the environment and the flags.
#[test]
fn one_config_file_serves_every_stage() {
    let dir = std::env::temp_dir().join(format!("nba-sections-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let file = dir.join("nba.toml");
    std::fs::write(
        &file,
        r#"brokers = "shared:9092"
policy = "linucb"
kafka-config = ["security.protocol=sasl_ssl", "sasl.username=shared"]

[consumer]
dedup-window = "1h"

[aggregator]
context = "counts"
changelog-interval = "5s"

[updater]
policy = "thompson"
kafka-config = ["sasl.username=updater", "client.id=nba-updater"]
"#,
    )
    .expect("written");
    let out = updater()
        .arg("--config")
        .arg(&file)
        .args(["--print-config", "-X", "linger.ms=2"])
        .env("NBA_KAFKA_CONFIG", "sasl.password=secret")
        .env_remove("NBA_BROKERS")
        .env_remove("NBA_POLICY")
        .output()
        .expect("runs");
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for line in [
        "brokers = \"shared:9092\"  # file",
        "policy = \"thompson\"  # file",
        "kafka-config = [\"linger.ms=2\"]  # flag",
        "kafka-config-env = [\"sasl.password=****\"]  # environment",
        "kafka-config-file = [\"security.protocol=sasl_ssl\", \"sasl.username=shared\", \"sasl.username=updater\", \"client.id=nba-updater\"]  # file",
        "# [aggregator] changelog-interval: another stage's, left to it",
        "# [aggregator] context: another stage's, left to it",
        "# [consumer] dedup-window: another stage's, left to it",
    ] {
        assert!(printed.contains(line), "{line} in\n{printed}");
    }
    for (text, says) in [
        (
            "[model-updater]\npolicy = \"thompson\"\n",
            "unknown section [model-updater]",
        ),
        (
            "dedup-window = \"1h\"\n",
            "`dedup-window` is not a setting of nba-model-updater",
        ),
        (
            "[updater]\npolcy = 1\n",
            "`polcy` is not a setting of nba-model-updater",
        ),
    ] {
        std::fs::write(&file, text).expect("written");
        let out = updater().arg("--config").arg(&file).output().expect("runs");
        assert_eq!(out.status.code(), Some(2), "{text}");
        let said = String::from_utf8_lossy(&out.stderr);
        assert!(said.contains(says), "{said}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// The example contact policy, given to the retail example, checks for
/// both stages, and a bad one stops the model-updater before it connects,
/// saying what is wrong.
#[test]
fn the_example_contact_policy_is_valid_and_a_bad_one_is_explained() {
    let path = deploy().join("contact-policy.toml");
    let overrides = [nba_deployment::Override::new(
        "contact.include",
        path.display().to_string(),
        nba_deployment::Source::Flag("--contact-policy".into()),
    )];
    let d = nba_deployment::Deployment::load(&retail(), &overrides).expect("checks");
    assert_eq!(d.settings.contact.caps.len(), 3);
    let promo = d
        .settings
        .catalog
        .get("discount_10")
        .expect("in the catalog");
    assert_eq!(
        promo.eligibility.len(),
        2,
        "the policy's conditions are the action's"
    );
    assert!(promo.budget.is_some());
    nba_core::FeatureAggregator::new(d.settings.aggregator()).expect("the aggregator's half");
    nba_core::ModelUpdater::new(d.settings.updater(None)).expect("the updater's half");

    let dir = std::env::temp_dir().join(format!("nba-policy-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let bad = dir.join("bad.toml");
    for (policy, says) in [
        (
            "[[cap]]\nscope = \"action\"\nmax = 1\nper = \"24h\"\n",
            "add an overall cap",
        ),
        ("caps = 3\n", "unknown field `caps`"),
        (
            "[eligibility]\ndiscount_10 = [\"since_purchase > 30d\"]\n",
            "unknown quantity",
        ),
    ] {
        std::fs::write(&bad, policy).expect("written");
        let out = updater()
            .arg("--contact-policy")
            .arg(&bad)
            .output()
            .expect("runs");
        assert_eq!(out.status.code(), Some(2));
        let said = String::from_utf8_lossy(&out.stderr);
        assert!(said.contains(says), "{said}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
