//! Phone numbers as people write them.

use crate::digits::{E164, Problem};

/// What to send instead of a rejected phone number.
pub(crate) const HINT: &str = "send a phone number in international format, like +62 812-3456-7890";

/// Characters people format phone numbers with, ignored when reading one: space, `-`, `.`,
/// parentheses and the non-breaking space.
const FORMATTING: [char; 6] = [' ', '-', '.', '(', ')', '\u{a0}'];

/// Reads a trimmed phone number in international format, with a leading `+`, a leading `00` or
/// neither, into its bare E.164 digits.
pub(crate) fn e164_digits(input: &str) -> Result<String, Problem> {
    let (plus, rest) = match input.strip_prefix('+') {
        Some(rest) => (true, rest),
        None => (false, input),
    };
    let mut digits = String::with_capacity(rest.len());
    for c in rest.chars() {
        match c {
            '0'..='9' => digits.push(c),
            '+' => return Err(Problem::MisplacedPlus),
            c if FORMATTING.contains(&c) => {}
            c => return Err(Problem::Character(c)),
        }
    }
    if !plus && digits.starts_with("00") {
        digits.drain(..2);
    }
    E164.check(&digits)?;
    Ok(digits)
}
