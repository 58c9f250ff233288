//! A deployment of nba: one TOML file that declares a business.
//!
//! What differs between a bank, a telco, a streaming service and a retailer is
//! data, not code. A deployment file declares the **vocabulary** (channels,
//! categories, event types, triggers, outcomes and what each is worth), the
//! customer **profile** and what **requests** carry, the **features** and
//! contexts, the model-updater's **policy**, the **contact** policy, the
//! **catalog** of actions, and optionally a **simulation** of its customers.
//! `deploy/examples/` has two (retail, bank).
//!
//! [`Deployment::load`] reads one, applies the settings given by flags and
//! environment variables over the file's ([`Override`]), checks everything
//! (each [`Problem`] with its file, line, setting and how to fix it) and
//! resolves it into [`Settings`]: the one value every stage binary, `nba
//! demo`, `nba simulate` and `nba backtest` build their engines from, so a
//! backtest with the same file makes the live decisions. Every default is
//! the engine's own or lives in `file.rs`; nothing else keeps one.

mod file;
mod problems;
mod report;
mod settings;
mod simulation;
mod source;
mod time;

pub use file::*;
pub use problems::{Problem, Problems};
pub use settings::{MAX_DIM, Settings};
pub use simulation::{CmpOp, ResponseSpec, SimCondition, SimulationSpec, TraitSpec};
pub use source::{Override, Source};
pub use time::{EventTimeField, format_event_time, parse_event_time};

use std::path::{Path, PathBuf};

use problems::{Collector, line_at};

/// The example deployments compiled in: (name, file text).
pub const EXAMPLES: [(&str, &str); 2] = [
    (
        "retail",
        include_str!("../../../deploy/examples/retail/deployment.toml"),
    ),
    (
        "bank",
        include_str!("../../../deploy/examples/bank/deployment.toml"),
    ),
];

/// A deployment, read, checked and resolved.
#[derive(Debug, Clone)]
pub struct Deployment {
    /// Every setting, resolved (defaults filled in, overrides applied).
    pub file: DeploymentFile,
    /// What the engines take.
    pub settings: Settings,
    /// The file it was read from (`None` for a compiled-in example).
    pub path: Option<PathBuf>,
    /// The file's own settings, as written.
    written: toml::Value,
    /// Settings given by flags or the environment.
    overridden: Vec<(String, Source)>,
}

/// A TOML parse error of `text` as a problem.
fn toml_problem(file: Option<&Path>, text: &str, e: &toml::de::Error) -> Problem {
    Problem {
        setting: String::new(),
        message: e.message().trim().to_owned(),
        file: file.map(Path::to_path_buf),
        line: e.span().map(|s| line_at(text, s.start)),
        source: None,
    }
}

impl Deployment {
    /// Reads the deployment file at `path`, with `overrides` over its
    /// settings; every problem found, otherwise.
    pub fn load(path: &Path, overrides: &[Override]) -> Result<Self, Problems> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            Problems(vec![Problem {
                setting: String::new(),
                message: format!("cannot read the deployment: {e}"),
                file: Some(path.to_path_buf()),
                line: None,
                source: None,
            }])
        })?;
        let dir = path.parent().unwrap_or(Path::new("."));
        Self::from_text(&text, Some(path), dir, overrides)
    }

    /// The compiled-in example `name` (`retail`, `bank`), with `overrides`.
    pub fn example(name: &str, overrides: &[Override]) -> Result<Self, Problems> {
        let Some((_, text)) = EXAMPLES.iter().find(|(n, _)| *n == name) else {
            return Err(Problems(vec![Problem {
                setting: String::new(),
                message: format!(
                    "there is no example deployment {name:?}; the examples are {}",
                    EXAMPLES.map(|(n, _)| n).join(", ")
                ),
                file: None,
                line: None,
                source: None,
            }]));
        };
        Self::from_text(text, None, Path::new("."), overrides)
    }

    /// The deployment at `path`, or the retail example without one (what
    /// `nba demo` and `nba simulate` run by default).
    pub fn load_or_example(path: Option<&Path>, overrides: &[Override]) -> Result<Self, Problems> {
        match path {
            Some(p) => Self::load(p, overrides),
            None => Self::example("retail", overrides),
        }
    }

    /// A deployment from its text; `file` names it in messages, `dir` is
    /// where its includes are read from.
    pub fn from_text(
        text: &str,
        file: Option<&Path>,
        dir: &Path,
        overrides: &[Override],
    ) -> Result<Self, Problems> {
        let fail = |e: &toml::de::Error| Problems(vec![toml_problem(file, text, e)]);
        let mut table: toml::Table = toml::from_str(text).map_err(|e| fail(&e))?;
        let written = toml::Value::Table(table.clone());
        // The file alone first: its mistakes are reported on their lines.
        toml::from_str::<DeploymentFile>(text).map_err(|e| fail(&e))?;
        let mut problems = Vec::new();
        for o in overrides {
            if let Err(e) = o.apply(&mut table) {
                problems.push(Problem {
                    setting: o.setting.clone(),
                    message: e,
                    file: None,
                    line: None,
                    source: Some(o.source.clone()),
                });
            }
        }
        let parsed: DeploymentFile =
            toml::Value::Table(table)
                .try_into()
                .map_err(|e: toml::de::Error| {
                    Problems(vec![Problem {
                        setting: String::new(),
                        message: format!(
                            "{} (set by {})",
                            e.message().trim(),
                            overrides
                                .iter()
                                .map(|o| o.source.to_string())
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                        file: None,
                        line: None,
                        source: None,
                    }])
                })?;
        let overridden: Vec<(String, Source)> = overrides
            .iter()
            .map(|o| (o.setting.clone(), o.source.clone()))
            .collect();
        let mut c = Collector::new(file, text, &overridden);
        let settings = settings::build(&parsed, dir, &mut c, &mut problems);
        problems.extend(c.problems);
        match settings {
            Some(settings) if problems.is_empty() => Ok(Self {
                file: parsed,
                settings,
                path: file.map(Path::to_path_buf),
                written,
                overridden,
            }),
            _ => Err(Problems(problems)),
        }
    }
}

/// Reads a contact-policy file (today's `--contact-policy` format: the
/// `[contact]` section's keys at top level).
pub(crate) fn read_contact_file(path: &Path) -> Result<ContactSection, Vec<Problem>> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        vec![Problem {
            setting: "contact.include".into(),
            message: format!("cannot read the contact policy: {e}"),
            file: Some(path.to_path_buf()),
            line: None,
            source: None,
        }]
    })?;
    let section: ContactSection =
        toml::from_str(&text).map_err(|e| vec![toml_problem(Some(path), &text, &e)])?;
    if section.include.is_some() {
        return Err(vec![Problem {
            setting: "include".into(),
            message: "an included contact policy cannot include another".into(),
            file: Some(path.to_path_buf()),
            line: problems::line_of(&text, "include"),
            source: None,
        }]);
    }
    Ok(section)
}

#[cfg(test)]
mod tests;
