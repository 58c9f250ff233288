//! The header of nba's versioned JSON documents (model snapshots, checkpoints).

use serde::{Deserialize, Serialize};

use crate::Rejection;

/// Which document this is, and in which version of its format.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct FormatTag {
    format: String,
    format_version: u32,
}

impl FormatTag {
    /// The tag of `format` version `version`.
    pub(crate) fn new(format: &str, version: u32) -> Self {
        Self {
            format: format.to_owned(),
            format_version: version,
        }
    }

    /// Refuses a document that is not `expected`, saying what it is instead.
    pub(crate) fn expect(&self, expected: &FormatTag) -> Result<(), Rejection> {
        if self == expected {
            return Ok(());
        }
        Err(Rejection::new(format!(
            "format {} v{} is not {} v{}",
            self.format, self.format_version, expected.format, expected.format_version
        )))
    }
}
