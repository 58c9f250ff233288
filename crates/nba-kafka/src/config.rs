//! Settings from flags, the environment and a TOML file, in that order of
//! precedence, and `--print-config`.

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::exit;

use clap::parser::ValueSource;
use clap::{CommandFactory, Parser};

/// Words in a setting's name or in a `-X` key that mark a secret.
const SECRET_WORDS: &[&str] = &[
    "password",
    "secret",
    "token",
    "credential",
    "key.pem",
    "jaas",
];

/// Parses `C` from the command line, adding the settings of the TOML file named
/// by `--config FILE` (or `NBA_CONFIG`) that neither a flag nor an environment
/// variable sets. Handles `--print-config`. Misuse exits with status 2 and a
/// message that says what to fix.
pub fn parse_cli<C: Parser>() -> C {
    let args: Vec<OsString> = std::env::args_os().collect();
    let (args, from_file) = match config_path(&args) {
        Some(path) => match with_file_settings::<C>(args, &path) {
            Ok(r) => r,
            Err(e) => {
                eprintln!("error: {e}");
                exit(2);
            }
        },
        None => (args, BTreeSet::new()),
    };
    let matches = C::command().get_matches_from(args);
    if matches.try_get_one::<bool>("print_config").ok().flatten() == Some(&true) {
        print!("{}", effective_config::<C>(&matches, &from_file));
        exit(0);
    }
    match C::from_arg_matches(&matches) {
        Ok(c) => c,
        Err(e) => e.exit(),
    }
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

/// `args` plus `--key value` for every file setting not given otherwise, and
/// the ids of the settings that came from the file.
fn with_file_settings<C: CommandFactory>(
    mut args: Vec<OsString>,
    path: &Path,
) -> Result<(Vec<OsString>, BTreeSet<String>), String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read --config {}: {e}", path.display()))?;
    let table: toml::Table = text
        .parse()
        .map_err(|e| format!("--config {} is not valid TOML: {e}", path.display()))?;
    let cmd = C::command();
    let given: Vec<String> = args
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let mut from_file = BTreeSet::new();
    for (key, value) in table {
        let long = key.replace('_', "-");
        let Some(arg) = cmd
            .get_arguments()
            .find(|a| a.get_long() == Some(long.as_str()))
        else {
            return Err(format!(
                "--config {}: unknown setting `{key}`; the settings are the long flag names of --help",
                path.display()
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
                        "--config {}: `{key}` must be a string, number, boolean or array of those, not {}",
                        path.display(),
                        other.type_str()
                    ));
                }
            }
        }
        from_file.insert(arg.get_id().to_string());
    }
    Ok((args, from_file))
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
fn effective_config<C: CommandFactory>(
    matches: &clap::ArgMatches,
    from_file: &BTreeSet<String>,
) -> String {
    let mut out = String::new();
    let cmd = C::command();
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

/// Reads a contact policy file (TOML; see `nba_core`'s `contact` module and
/// `deploy/contact-policy.toml`).
pub fn load_contact_policy(path: &Path) -> Result<nba_core::ContactPolicyConfig, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read the contact policy {}: {e}", path.display()))?;
    toml::from_str(&text)
        .map_err(|e| format!("the contact policy {} is not valid: {e}", path.display()))
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
