//! Where a setting's value came from, and settings given on the command line
//! or in the environment over the file's.

use std::fmt;

/// Where a setting's value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// Not set anywhere: the default.
    Default,
    /// The deployment file.
    File,
    /// An environment variable.
    Environment(String),
    /// A command-line flag.
    Flag(String),
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Default => f.write_str("default"),
            Source::File => f.write_str("file"),
            Source::Environment(v) => write!(f, "environment {v}"),
            Source::Flag(flag) => write!(f, "flag {flag}"),
        }
    }
}

/// One setting given over the file's: its path in the deployment
/// (`policy.alpha`), its value, and where it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Override {
    /// The setting's path.
    pub setting: String,
    /// Its value.
    pub value: toml::Value,
    /// A flag or an environment variable.
    pub source: Source,
}

impl Override {
    /// `setting` = `value` from `source`.
    pub fn new(setting: &str, value: impl Into<toml::Value>, source: Source) -> Self {
        Self {
            setting: setting.to_owned(),
            value: value.into(),
            source,
        }
    }

    /// Puts the value in `table` at its path (creating the tables on the way).
    /// An `include` replaces its whole section (a contact-policy file given
    /// by a flag stands instead of the deployment's `[contact]`).
    pub(crate) fn apply(&self, table: &mut toml::Table) -> Result<(), String> {
        let mut keys: Vec<&str> = self.setting.split('.').collect();
        let last = keys.pop().unwrap_or_default();
        let mut at = table;
        for k in keys {
            let entry = at
                .entry(k.to_owned())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            at = entry
                .as_table_mut()
                .ok_or_else(|| format!("{}: {k} is not a table in the deployment", self.setting))?;
        }
        if last == "include" {
            at.clear();
        }
        at.insert(last.to_owned(), self.value.clone());
        Ok(())
    }
}
