//! What is wrong with a deployment, each problem where it was written: the
//! file, the line, the setting, and how to fix it.

use std::fmt;
use std::path::{Path, PathBuf};

use toml::de::{DeTable, DeValue};

use crate::Source;

/// One problem with a deployment.
#[derive(Debug, Clone, PartialEq)]
pub struct Problem {
    /// The setting at fault, as a path (`policy.alpha`, `action[2].channels`);
    /// empty for the file as a whole.
    pub setting: String,
    /// What is wrong and how to fix it.
    pub message: String,
    /// The file it was written in (`None` for a flag or the environment).
    pub file: Option<PathBuf>,
    /// The line, if known.
    pub line: Option<usize>,
    /// Where the value came from, when not from a file.
    pub source: Option<Source>,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.file, self.line, &self.source) {
            (_, _, Some(s)) if !matches!(s, Source::File | Source::Default) => {
                write!(f, "{s}: ")?;
            }
            (Some(file), Some(line), _) => write!(f, "{}:{line}: ", file.display())?,
            (Some(file), None, _) => write!(f, "{}: ", file.display())?,
            _ => {}
        }
        if !self.setting.is_empty() {
            write!(f, "{}: ", self.setting)?;
        }
        f.write_str(&self.message)
    }
}

/// Every problem found with a deployment.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Problems(pub Vec<Problem>);

impl fmt::Display for Problems {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{p}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Problems {}

/// One step of a setting's path.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Step {
    Key(String),
    Index(usize),
}

/// `action[2].channels.web` as steps.
fn steps(setting: &str) -> Vec<Step> {
    let mut out = Vec::new();
    for part in setting.split('.').filter(|p| !p.is_empty()) {
        let (key, rest) = part.split_once('[').unwrap_or((part, ""));
        out.push(Step::Key(key.to_owned()));
        for index in rest.split('[') {
            if let Ok(i) = index.trim_end_matches(']').parse() {
                out.push(Step::Index(i));
            }
        }
    }
    out
}

/// The line a setting is written on in `text`: the deepest part of its path
/// the file has (a setting left at its default is reported at its section).
pub(crate) fn line_of(text: &str, setting: &str) -> Option<usize> {
    let root = DeTable::parse(text).ok()?;
    let start = root.span().start;
    let root = DeValue::Table(root.into_inner());
    let mut at = start;
    let mut found = false;
    let mut value = &root;
    for step in steps(setting) {
        let next = match &step {
            Step::Key(k) => value.get(k.as_str()),
            Step::Index(i) => value.get(*i),
        };
        match next {
            Some(v) => {
                at = v.span().start;
                found = true;
                value = v.get_ref();
            }
            None => break,
        }
    }
    found.then(|| line_at(text, at))
}

/// The 1-based line of byte `offset`.
pub(crate) fn line_at(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())]
        .bytes()
        .filter(|b| *b == b'\n')
        .count()
        + 1
}

/// Collects problems of one file.
#[derive(Debug)]
pub(crate) struct Collector<'a> {
    pub(crate) file: Option<&'a Path>,
    pub(crate) text: &'a str,
    /// Where each overridden setting came from.
    pub(crate) overridden: &'a [(String, Source)],
    pub(crate) problems: Vec<Problem>,
}

impl<'a> Collector<'a> {
    pub(crate) fn new(
        file: Option<&'a Path>,
        text: &'a str,
        overridden: &'a [(String, Source)],
    ) -> Self {
        Self {
            file,
            text,
            overridden,
            problems: Vec::new(),
        }
    }

    /// Notes a problem with `setting`.
    pub(crate) fn problem(&mut self, setting: impl Into<String>, message: impl Into<String>) {
        let setting = setting.into();
        let source = self
            .overridden
            .iter()
            .find(|(s, _)| {
                setting == *s
                    || setting.starts_with(&format!("{s}."))
                    || setting.starts_with(&format!("{s}["))
            })
            .map(|(_, src)| src.clone());
        let line = match source {
            Some(_) => None,
            None => line_of(self.text, &setting),
        };
        self.problems.push(Problem {
            setting,
            message: message.into(),
            file: self.file.map(Path::to_path_buf),
            line,
            source,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "name = \"x\"\n\n[policy]\nalpha = 3\n\n[[action]]\nid = \"a\"\n\n[[action]]\nid = \"b\"\n[action.channels.web]\ntemplate = \"t\"\n";

    #[test]
    fn settings_are_found_on_their_line() {
        assert_eq!(line_of(TEXT, "policy.alpha"), Some(4));
        assert_eq!(line_of(TEXT, "action[1].id"), Some(10));
        assert_eq!(line_of(TEXT, "action[1].channels.web.template"), Some(12));
        assert_eq!(line_of(TEXT, "policy.epsilon"), Some(3), "at its section");
        assert_eq!(line_of(TEXT, "features.context"), None);
    }
}
