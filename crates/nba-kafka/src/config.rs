//! Settings from flags, the environment and a TOML file, in that order of
//! precedence; the deployment file with flags and environment variables over
//! its settings; and `--print-config`.

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{ExitCode, exit};

use clap::parser::ValueSource;
use clap::{ArgMatches, Args, CommandFactory, Parser};
use nba_deployment::{Deployment, Override, Source};

/// Words in a setting's name or in a `-X` key that mark a secret.
const SECRET_WORDS: &[&str] = &[
    "password",
    "secret",
    "token",
    "credential",
    "key.pem",
    "jaas",
    "registry-auth",
];

/// The sections of a `--config` file, one per stage binary: a stage takes
/// the file's top-level settings, then its own section's over them, and
/// leaves the other sections to their stages.
pub const STAGE_SECTIONS: [&str; 3] = ["consumer", "aggregator", "updater"];

/// Where a binary's settings came from, kept after parsing: what
/// `--print-config` prints and what deployment overrides are made of.
#[derive(Debug)]
pub struct CliSources {
    matches: ArgMatches,
    from_file: BTreeSet<String>,
    /// Settings of the file's other stage sections (`[updater] alpha`), which
    /// this stage leaves alone.
    for_other_stages: Vec<String>,
    command: clap::Command,
}

/// Parses `C`, the command line of the stage whose `--config` section is
/// `section` (one of [`STAGE_SECTIONS`]), adding the settings of the TOML file
/// named by `--config FILE` (or `NBA_CONFIG`) that neither a flag nor an
/// environment variable sets: its top-level settings, then its `[section]`'s
/// over them. Misuse exits with status 2 and a message that says what to fix.
/// `--print-config` is handled by [`stage_deployment`] (or
/// [`CliSources::print_config`]).
pub fn parse_cli<C: Parser>(section: &str) -> (C, CliSources) {
    let args: Vec<OsString> = std::env::args_os().collect();
    let (
        args,
        FileSettings {
            from_file,
            for_other_stages,
        },
    ) = match config_path(&args) {
        Some(path) => match with_file_settings::<C>(args, &path, section) {
            Ok(r) => r,
            Err(e) => {
                eprintln!("error: {e}");
                exit(2);
            }
        },
        None => (args, FileSettings::default()),
    };
    let matches = C::command().get_matches_from(args);
    match C::from_arg_matches(&matches) {
        Ok(c) => (
            c,
            CliSources {
                matches,
                from_file,
                for_other_stages,
                command: C::command(),
            },
        ),
        Err(e) => e.exit(),
    }
}

/// How a flag's text becomes a deployment setting's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueKind {
    /// A string.
    Text,
    /// A number.
    Number,
    /// A whole number.
    Integer,
    /// A list of strings (a repeated or comma-separated flag).
    List,
    /// A file path, relative to the working directory.
    Path,
}

/// A flag (by its clap id) that overrides a deployment setting.
#[derive(Debug, Clone, Copy)]
pub struct OverrideFlag {
    /// The flag's clap id (its field name).
    pub id: &'static str,
    /// The deployment setting it sets (`policy.alpha`).
    pub setting: &'static str,
    /// How its text is read.
    pub kind: ValueKind,
}

impl OverrideFlag {
    /// `--<id>` sets `setting`.
    pub const fn new(id: &'static str, setting: &'static str, kind: ValueKind) -> Self {
        Self { id, setting, kind }
    }
}

/// The deployment every nba command that decides takes.
#[derive(Debug, Clone, Default, Args)]
pub struct DeploymentArgs {
    /// The deployment (TOML): the business's vocabulary, profile, catalog,
    /// context, policy and contact policy (deploy/examples/ has a retailer
    /// and a bank; `nba config check FILE` checks one). Flags and
    /// environment variables given to this command override its settings.
    #[arg(long, env = "NBA_DEPLOYMENT", value_name = "FILE")]
    pub deployment: Option<PathBuf>,
}

impl CliSources {
    /// The sources of a (sub)command parsed without [`parse_cli`]: its
    /// `command` and the `matches` it gave.
    pub fn of(command: clap::Command, matches: ArgMatches) -> Self {
        Self {
            matches,
            from_file: BTreeSet::new(),
            for_other_stages: Vec::new(),
            command,
        }
    }

    /// Where the value of the flag with clap id `id` came from, if set.
    fn source(&self, id: &str) -> Option<Source> {
        let arg = self.command.get_arguments().find(|a| a.get_id() == id)?;
        let long = format!("--{}", arg.get_long().unwrap_or(id));
        match self.matches.value_source(id)? {
            _ if self.from_file.contains(id) => {
                Some(Source::Flag(format!("{long} (from --config)")))
            }
            ValueSource::CommandLine => Some(Source::Flag(long)),
            ValueSource::EnvVariable => Some(Source::Environment(
                arg.get_env()
                    .map_or_else(String::new, |e| e.to_string_lossy().into_owned()),
            )),
            _ => None,
        }
    }

    /// The deployment settings that the flags in `flags` set (each only if
    /// given on the command line, in the environment or in the --config file).
    pub fn overrides(&self, flags: &[OverrideFlag]) -> Result<Vec<Override>, String> {
        let mut out = Vec::new();
        for f in flags {
            let Some(source) = self.source(f.id) else {
                continue;
            };
            let Some(raw) = self.matches.get_raw(f.id) else {
                continue;
            };
            let texts: Vec<String> = raw.map(|v| v.to_string_lossy().into_owned()).collect();
            let first = texts.first().cloned().unwrap_or_default();
            let bad = |what: &str| format!("{source}: {first:?} is not {what}");
            let value = match f.kind {
                ValueKind::Text => toml::Value::String(first.clone()),
                ValueKind::Number => {
                    toml::Value::Float(first.trim().parse::<f64>().map_err(|_| bad("a number"))?)
                }
                ValueKind::Integer => toml::Value::Integer(
                    first
                        .trim()
                        .parse::<i64>()
                        .map_err(|_| bad("a whole number"))?,
                ),
                ValueKind::List => toml::Value::Array(
                    texts
                        .iter()
                        .flat_map(|t| t.split(','))
                        .map(|t| toml::Value::String(t.trim().to_owned()))
                        .collect(),
                ),
                ValueKind::Path => {
                    let path = Path::new(&first);
                    let absolute = if path.is_absolute() {
                        path.to_path_buf()
                    } else {
                        std::env::current_dir()
                            .map_err(|e| format!("{source}: cannot resolve {first}: {e}"))?
                            .join(path)
                    };
                    toml::Value::String(absolute.display().to_string())
                }
            };
            out.push(Override::new(f.setting, value, source));
        }
        Ok(out)
    }

    /// The effective configuration as TOML, each line with where it came
    /// from (secrets masked).
    pub fn print_config(&self) -> String {
        let mut out = effective_config(&self.command, &self.matches, &self.from_file);
        for setting in &self.for_other_stages {
            out.push_str(&format!("# {setting}: another stage's, left to it\n"));
        }
        out
    }

    /// True if `--print-config` was given.
    pub fn wants_print_config(&self) -> bool {
        self.matches
            .try_get_one::<bool>("print_config")
            .ok()
            .flatten()
            == Some(&true)
    }
}

/// Reads the deployment a command was given (`--deployment`, or the
/// compiled-in `example` when none is and the command has one), with the
/// settings `flags` override; prints every problem and exits 2 when it does
/// not check. With `--print-config`, prints the effective configuration and
/// the resolved deployment, each value with its source, and exits 0.
pub fn stage_deployment(
    args: &DeploymentArgs,
    sources: &CliSources,
    flags: &[OverrideFlag],
    example: Option<&str>,
) -> Result<Deployment, ExitCode> {
    let fail = |message: &dyn std::fmt::Display| {
        eprintln!("{message}");
        Err(ExitCode::from(2))
    };
    let overrides = match sources.overrides(flags) {
        Ok(o) => o,
        Err(e) => return fail(&format!("error: {e}")),
    };
    let loaded = match (&args.deployment, example) {
        (Some(path), _) => Deployment::load(path, &overrides),
        (None, Some(name)) => Deployment::example(name, &overrides),
        (None, None) => {
            return fail(
                &"error: give --deployment FILE (or NBA_DEPLOYMENT): the deployment declares the business this stage serves (deploy/examples/ has a retailer and a bank; `nba config check FILE` checks one)",
            );
        }
    };
    let deployment = match loaded {
        Ok(d) => d,
        Err(problems) => {
            return fail(&format!(
                "error: the deployment does not check ({} problem{}):\n{problems}",
                problems.0.len(),
                if problems.0.len() == 1 { "" } else { "s" }
            ));
        }
    };
    if sources.wants_print_config() {
        let text = format!(
            "{}\n[deployment-settings]\n{}",
            sources.print_config(),
            deployment.report()
        );
        return Err(match crate::print_stdout(&text) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: cannot print the configuration: {e}");
                ExitCode::FAILURE
            }
        });
    }
    Ok(deployment)
}

fn config_path(args: &[OsString]) -> Option<PathBuf> {
    let mut it = args.iter().skip(1);
    while let Some(a) = it.next() {
        let a = a.to_string_lossy();
        if a == "--config" {
            return it.next().map(PathBuf::from);
        }
        if let Some(v) = a.strip_prefix("--config=") {
            return Some(PathBuf::from(v));
        }
    }
    std::env::var_os("NBA_CONFIG").map(PathBuf::from)
}

/// What a `--config` file gave: the ids of the settings it set, and the
/// settings of other stages' sections (`[updater] alpha`).
#[derive(Debug, Default)]
struct FileSettings {
    from_file: BTreeSet<String>,
    for_other_stages: Vec<String>,
}

/// `args` plus `--key value` for every file setting not given otherwise (the
/// top-level settings, with `[section]`'s over them), and what came from
/// where.
fn with_file_settings<C: CommandFactory>(
    mut args: Vec<OsString>,
    path: &Path,
    section: &str,
) -> Result<(Vec<OsString>, FileSettings), String> {
    let file = path.display();
    let text =
        std::fs::read_to_string(path).map_err(|e| format!("cannot read --config {file}: {e}"))?;
    let table: toml::Table = text
        .parse()
        .map_err(|e| format!("--config {file} is not valid TOML: {e}"))?;
    let mut settings = FileSettings::default();
    // (long flag name, key as written, value): the top level first, then this
    // stage's section; a later value replaces an earlier one, but librdkafka
    // lists add up.
    let long_name = |key: &str| key.replace('_', "-");
    let mut entries: Vec<(String, String, toml::Value)> = Vec::new();
    let mut own = None;
    for (key, value) in table {
        match value {
            toml::Value::Table(t) if key == section => own = Some(t),
            toml::Value::Table(t) if STAGE_SECTIONS.contains(&key.as_str()) => settings
                .for_other_stages
                .extend(t.keys().map(|k| format!("[{key}] {k}"))),
            toml::Value::Table(_) => {
                return Err(format!(
                    "--config {file}: unknown section [{key}]; the sections are [{}], one per stage",
                    STAGE_SECTIONS.join("], [")
                ));
            }
            v => entries.push((long_name(&key), key, v)),
        }
    }
    for (key, value) in own.into_iter().flatten() {
        let long = long_name(&key);
        match entries.iter().position(|(l, _, _)| *l == long) {
            Some(i) if long == "kafka-config" => {
                let shared = &mut entries[i].2;
                if !shared.is_array() {
                    *shared = toml::Value::Array(vec![shared.clone()]);
                }
                if let toml::Value::Array(all) = shared {
                    match value {
                        toml::Value::Array(more) => all.extend(more),
                        one => all.push(one),
                    }
                }
            }
            Some(i) => entries[i].2 = value,
            None => entries.push((long, key, value)),
        }
    }
    let cmd = C::command();
    let given: Vec<String> = args
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    for (long, key, value) in entries {
        // The file's librdkafka list adds to the environment's and the flags'
        // (`KafkaArgs::client_config`) instead of giving way to them.
        let long = if long == "kafka-config" {
            "kafka-config-file".to_owned()
        } else {
            long
        };
        let Some(arg) = cmd
            .get_arguments()
            .find(|a| a.get_long() == Some(long.as_str()))
        else {
            return Err(format!(
                "--config {file}: `{key}` is not a setting of {}; the settings are the long flag names of --help (a setting of another stage goes in its section: [{}])",
                cmd.get_name(),
                STAGE_SECTIONS.join("], [")
            ));
        };
        let on_command_line = given.iter().any(|g| {
            g == &format!("--{long}")
                || g.starts_with(&format!("--{long}="))
                || arg
                    .get_short()
                    .is_some_and(|s| g.starts_with(&format!("-{s}")))
        });
        let in_env = arg.get_env().is_some_and(|v| std::env::var_os(v).is_some());
        if on_command_line || in_env {
            continue;
        }
        let values = match value {
            toml::Value::Array(a) => a,
            v => vec![v],
        };
        for v in values {
            match v {
                toml::Value::Boolean(true) => args.push(format!("--{long}").into()),
                toml::Value::Boolean(false) => {}
                toml::Value::String(s) => {
                    args.push(format!("--{long}").into());
                    args.push(s.into());
                }
                toml::Value::Integer(i) => {
                    args.push(format!("--{long}").into());
                    args.push(i.to_string().into());
                }
                toml::Value::Float(f) => {
                    args.push(format!("--{long}").into());
                    args.push(f.to_string().into());
                }
                other => {
                    return Err(format!(
                        "--config {file}: `{key}` must be a string, number, boolean or array of those, not {}",
                        other.type_str()
                    ));
                }
            }
        }
        settings.from_file.insert(arg.get_id().to_string());
    }
    Ok((args, settings))
}

fn is_secret(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    SECRET_WORDS.iter().any(|w| n.contains(w))
}

/// `value` with a secret's value replaced by `****`; a `-X key=value` is
/// masked by its key.
fn masked(id: &str, value: &str) -> String {
    if is_secret(id) {
        return "****".to_owned();
    }
    match value.split_once('=') {
        Some((k, _)) if is_secret(k) => format!("{k}=****"),
        _ => value.to_owned(),
    }
}

/// The effective configuration as TOML, each line with where it came from.
fn effective_config(
    cmd: &clap::Command,
    matches: &clap::ArgMatches,
    from_file: &BTreeSet<String>,
) -> String {
    let mut out = String::new();
    for arg in cmd.get_arguments() {
        let id = arg.get_id().as_str();
        let Some(long) = arg.get_long() else { continue };
        if matches!(long, "help" | "version" | "print-config" | "config") {
            continue;
        }
        let values: Vec<String> = matches
            .get_raw(id)
            .map(|v| v.map(|s| masked(long, &s.to_string_lossy())).collect())
            .unwrap_or_default();
        let source = match matches.value_source(id) {
            Some(_) if from_file.contains(id) => "file",
            Some(ValueSource::CommandLine) => "flag",
            Some(ValueSource::EnvVariable) => "environment",
            Some(ValueSource::DefaultValue) => "default",
            _ => "unset",
        };
        let quoted: Vec<String> = values.iter().map(|v| format!("{v:?}")).collect();
        if quoted.is_empty() {
            out.push_str(&format!("# {long} is not set\n"));
            continue;
        }
        let rendered = match quoted.len() {
            1 if arg.get_num_args().is_none_or(|n| n.max_values() <= 1)
                && !matches!(arg.get_action(), clap::ArgAction::Append) =>
            {
                quoted[0].clone()
            }
            _ => format!("[{}]", quoted.join(", ")),
        };
        out.push_str(&format!("{long} = {rendered}  # {source}\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_masked_by_name_and_by_librdkafka_key() {
        assert_eq!(
            masked("kafka-config", "sasl.password=hunter2"),
            "sasl.password=****"
        );
        assert_eq!(
            masked("kafka-config", "security.protocol=ssl"),
            "security.protocol=ssl"
        );
        assert_eq!(masked("sasl-password", "x"), "****");
    }
}
