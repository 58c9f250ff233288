//! Why a record was refused: the text that goes into the dead-letter header.

use std::fmt;

/// A record the engine cannot accept, with a reason a person can act on.
///
/// The shells route the record to the dead-letter topic with this reason; the
/// engine's state is unchanged by a rejected record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    reason: String,
    misfit: bool,
}

impl Rejection {
    /// A rejection with the given reason.
    pub fn new(reason: impl Into<String>) -> Self {
        Self {
            reason: reason.into(),
            misfit: false,
        }
    }

    /// A record made under another deployment (a context of another length):
    /// not wrong in itself, but no record like it can be taken until the
    /// stages run the same deployment.
    pub fn misfit(reason: impl Into<String>) -> Self {
        Self {
            reason: reason.into(),
            misfit: true,
        }
    }

    /// Whether the record was made under another deployment (see
    /// [`Rejection::misfit`]).
    pub fn is_misfit(&self) -> bool {
        self.misfit
    }

    /// The reason, as it goes into the `nba.dlq.reason` header.
    pub fn reason(&self) -> &str {
        &self.reason
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.reason)
    }
}

impl std::error::Error for Rejection {}
