//! Rules for the runs of digits identifiers are made of.
//!
//! Identifiers are checked as text and never converted to integers, so digit strings of any
//! length are handled: the length rules reject them.

use std::fmt::Display;
use std::ops::RangeInclusive;

use crate::error::{ErrorKind, JidError};

/// What is wrong with a run of digits, before the context for an error message is known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Problem {
    /// A character that is not a digit.
    Character(char),
    /// A `+` anywhere but at the start of a phone number.
    MisplacedPlus,
    /// The wrong number of digits.
    Length { found: usize, expected: RangeInclusive<usize> },
    /// A leading `0`, where the country code should be.
    LeadingZero,
}

impl Problem {
    /// The error for this problem in `subject` (which names the offending text), ending with
    /// `hint` (which says what to send instead).
    pub(crate) fn at(self, subject: impl Display, hint: impl Display) -> JidError {
        let (kind, message) = match self {
            Problem::Character(c) => {
                (ErrorKind::InvalidCharacter, format!("invalid character {c:?} in {subject}: {hint}"))
            }
            Problem::MisplacedPlus => (
                ErrorKind::InvalidCharacter,
                format!("misplaced '+' in {subject}: '+' may only start the number; {hint}"),
            ),
            Problem::Length { found, expected } => (
                ErrorKind::InvalidLength,
                format!("{subject} has {found} digits, expected {} to {}: {hint}", expected.start(), expected.end()),
            ),
            Problem::LeadingZero => (
                ErrorKind::MissingCountryCode,
                format!(
                    "{subject} starts with 0, a national format: \
                     put the country code in place of the leading 0; {hint}"
                ),
            ),
        };
        JidError::new(kind, message)
    }
}

/// A rule for a run of ASCII digits.
pub(crate) struct Digits {
    len: RangeInclusive<usize>,
    leading_zero: bool,
}

/// A phone number in E.164 format without its `+`: 7 to 15 digits, the first being part of the
/// country code and so never 0.
pub(crate) const E164: Digits = Digits { len: 7..=15, leading_zero: false };

/// A numeric id assigned by WhatsApp, such as a LID or a group id: 1 to 24 digits.
pub(crate) const NUMERIC_ID: Digits = Digits { len: 1..=24, leading_zero: true };

impl Digits {
    /// Checks `text` against this rule.
    pub(crate) fn check(&self, text: &str) -> Result<(), Problem> {
        if !self.leading_zero && text.starts_with('0') {
            return Err(Problem::LeadingZero);
        }
        if let Some(c) = text.chars().find(|c| !c.is_ascii_digit()) {
            return Err(Problem::Character(c));
        }
        // Only ASCII digits are left, so bytes are characters.
        if !self.len.contains(&text.len()) {
            return Err(Problem::Length { found: text.len(), expected: self.len.clone() });
        }
        Ok(())
    }
}
