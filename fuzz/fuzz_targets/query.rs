//! Fuzzes the guest SDK's query decoder (`waedge_sdk::Query`, `waedge_sdk::query::percent_decode`)
//! against a model written here from its documentation:
//!
//! - pairs are split on `&` (empty ones skipped) and at their first `=`; in names and values
//!   `+` is a space and `%XX` a byte, while a `%` not followed by two hex digits stays as it
//!   is; invalid UTF-8 is replaced. `get` answers the first pair of a name, and `flag` and
//!   `get_non_empty` agree with `get`;
//! - `percent_decode` decodes `%XX` the same way and keeps `+`;
//! - any text, encoded as clients encode it, decodes back to itself.

#![no_main]

use libfuzzer_sys::fuzz_target;
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use waedge_sdk::Query;
use waedge_sdk::query::percent_decode;

/// How many of an input's pairs have their name looked up (and the last one).
const CHECKED: usize = 16;

fuzz_target!(|data: &[u8]| {
    let input = String::from_utf8_lossy(data);
    let query = Query::parse(&input);
    let pairs = model_pairs(&input);
    // `get` searches linearly: the names of the first CHECKED pairs and of the last one are
    // looked up, so that an input costs time linear in its length.
    let mut names: Vec<&str> = pairs.iter().take(CHECKED).map(|(name, _)| name.as_str()).collect();
    names.extend(pairs.last().map(|(name, _)| name.as_str()));
    for name in names {
        let first = pairs.iter().find(|(n, _)| n == name).map(|(_, value)| value.as_str());
        assert_eq!(query.get(name), first, "{input:?}: first value of {name:?}");
        assert_accessors_agree(&query, name);
    }
    assert_accessors_agree(&query, "absent\u{0}name");
    assert_eq!(percent_decode(&input), model_decode(input.as_bytes()), "percent_decode({input:?})");

    let form: String = form_urlencoded::byte_serialize(input.as_bytes()).collect();
    assert_eq!(Query::parse(&format!("{form}={form}")).get(&input), Some(input.as_ref()), "{form:?}");
    let escaped = utf8_percent_encode(&input, NON_ALPHANUMERIC).to_string();
    assert_eq!(percent_decode(&escaped), input, "{escaped:?}");
    assert_eq!(percent_decode(&input.replace('%', "%25")), input, "only `%` needs escaping in a path");
});

/// `get_non_empty` and `flag` read what `get` answers for `name`.
fn assert_accessors_agree(query: &Query, name: &str) {
    let value = query.get(name);
    assert_eq!(query.get_non_empty(name), value.map(str::trim).filter(|v| !v.is_empty()));
    let expected = match value.map(|v| v.trim().to_ascii_lowercase()) {
        None => Some(None),
        Some(word) if ["true", "1", "yes"].contains(&word.as_str()) => Some(Some(true)),
        Some(word) if ["false", "0", "no"].contains(&word.as_str()) => Some(Some(false)),
        Some(_) => None,
    };
    match (query.flag(name), expected) {
        (Ok(flag), Some(expected)) => assert_eq!(flag, expected, "flag {name:?} of {value:?}"),
        (Err(message), None) => assert!(message.contains(name), "{message:?} names {name:?}"),
        (flag, _) => panic!("flag {name:?} of {value:?} is {flag:?}"),
    }
}

/// The pairs of a form-encoded query, decoded.
fn model_pairs(query: &str) -> Vec<(String, String)> {
    let decode = |part: &str| model_decode(part.replace('+', " ").as_bytes());
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            (decode(name), decode(value))
        })
        .collect()
}

/// `%XX` escapes decoded, everything else (a lone `%` too) kept, as lossy UTF-8.
fn model_decode(text: &[u8]) -> String {
    let mut bytes = Vec::with_capacity(text.len());
    let mut rest = text;
    while let Some((&byte, tail)) = rest.split_first() {
        let escaped = match tail {
            [high, low, ..] if byte == b'%' => hex(*high).zip(hex(*low)).map(|(high, low)| high << 4 | low),
            _ => None,
        };
        match escaped {
            Some(decoded) => {
                bytes.push(decoded);
                rest = &tail[2..];
            }
            None => {
                bytes.push(byte);
                rest = tail;
            }
        }
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

/// The value of an ASCII hex digit.
fn hex(digit: u8) -> Option<u8> {
    char::from(digit).to_digit(16).map(|value| value as u8)
}
