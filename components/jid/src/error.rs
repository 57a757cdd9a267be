//! The error returned when an identifier is rejected.

use std::fmt;

/// Why an identifier was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The input is empty or only whitespace.
    Empty,
    /// A JID was expected but the input has no `@`.
    NotAJid,
    /// A phone number was expected but the input contains `@`.
    NotAPhoneNumber,
    /// The input has more than one `@`.
    MultipleAt,
    /// The server after `@` is not one contacts or groups live on.
    UnsupportedServer,
    /// A character that has no place in the identifier, such as a letter or a misplaced `+`.
    InvalidCharacter,
    /// Too few or too many digits.
    InvalidLength,
    /// A phone number in national format (leading `0`) instead of with its country code.
    MissingCountryCode,
    /// The `:N` device suffix is not a number from 0 to 65535, or is on a group JID.
    InvalidDevice,
}

/// A rejected identifier: what kind of mistake it is, and a message for the person who sent
/// it saying what is wrong and what to send instead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JidError {
    kind: ErrorKind,
    message: String,
}

impl JidError {
    pub(crate) fn new(kind: ErrorKind, message: String) -> Self {
        Self { kind, message }
    }

    /// What kind of mistake the identifier has.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }
}

impl fmt::Display for JidError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for JidError {}
