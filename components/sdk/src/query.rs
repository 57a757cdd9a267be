//! Query strings and percent-encoded path segments: [`Query`] (also at the crate root) and
//! [`percent_decode`].

/// A parsed query string: `key=value` pairs in order, decoded as
/// `application/x-www-form-urlencoded`.
///
/// That is how clients build query strings (`URLSearchParams`, Python's `urlencode`,
/// `curl --data-urlencode -G`): `+` is a space and `%2B` a plus, so
/// `?number=%2B62+812-3456-7890` reads as `+62 812-3456-7890`. A `%` not followed by two hex
/// digits stays as it is; invalid UTF-8 is replaced.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Query {
    pairs: Vec<(String, String)>,
}

impl Query {
    /// Parses `a=1&b=2` (without the leading `?`).
    pub fn parse(query: &str) -> Self {
        Query { pairs: form_urlencoded::parse(query.as_bytes()).into_owned().collect() }
    }

    /// The first value of `key`, if present.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.pairs.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    /// The first value of `key` if present and not blank after trimming.
    pub fn get_non_empty(&self, key: &str) -> Option<&str> {
        self.get(key).map(str::trim).filter(|v| !v.is_empty())
    }

    /// Reads `key` as a boolean flag: absent is `Ok(None)`; `true`/`1`/`yes` and
    /// `false`/`0`/`no` (any case) are accepted; anything else is an error naming the key.
    pub fn flag(&self, key: &str) -> Result<Option<bool>, String> {
        let Some(value) = self.get(key) else { return Ok(None) };
        match value.trim().to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" => Ok(Some(true)),
            "false" | "0" | "no" => Ok(Some(false)),
            _ => Err(format!("`{key}` must be true or false, not `{value}`")),
        }
    }
}

/// Decodes the `%XX` escapes of a path segment; `+` stays a plus there. A `%` not followed by
/// two hex digits stays as it is; invalid UTF-8 is replaced.
pub fn percent_decode(input: &str) -> String {
    percent_encoding::percent_decode_str(input).decode_utf8_lossy().into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_pairs() {
        let q = Query::parse("jid=5511999999999%40s.whatsapp.net&number=%2B55%2011&preview=true&empty");
        assert_eq!(q.get("jid"), Some("5511999999999@s.whatsapp.net"));
        assert_eq!(q.get("number"), Some("+55 11"));
        assert_eq!(q.flag("preview"), Ok(Some(true)));
        assert_eq!(q.get("empty"), Some(""));
        assert_eq!(q.get_non_empty("empty"), None);
        assert_eq!(q.get("missing"), None);
    }

    #[test]
    fn plus_is_a_space_and_escaped_plus_a_plus() {
        // What `URLSearchParams({number: "+62 812-3456-7890"})` writes.
        let q = Query::parse("number=%2B62+812-3456-7890&the+key=a+%2b+b");
        assert_eq!(q.get("number"), Some("+62 812-3456-7890"));
        assert_eq!(q.get("the key"), Some("a + b"));
    }

    #[test]
    fn an_escape_needs_two_hex_digits() {
        // `u8::from_str_radix("+a", 16)` is `Ok(10)`: a `%+A` must not become a newline.
        assert_eq!(percent_decode("%+A"), "%+A");
        assert_eq!(percent_decode("%-A%+0a"), "%-A%+0a");
        assert_eq!(percent_decode("%0a%0D"), "\n\r");
        assert_eq!(Query::parse("jid=%+A").get("jid"), Some("% A"));
        assert_eq!(Query::parse("jid=%2B%+0A").get("jid"), Some("+% 0A"));
    }

    #[test]
    fn path_segments_keep_plus() {
        assert_eq!(percent_decode("a+b%2Bc%2fd"), "a+b+c/d");
    }

    #[test]
    fn bad_escapes_and_flags() {
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz%4"), "%zz%4");
        assert_eq!(percent_decode("%ff"), "\u{fffd}");
        assert_eq!(Query::parse("q=100%&r=%zz%4").get("r"), Some("%zz%4"));
        assert!(Query::parse("preview=maybe").flag("preview").unwrap_err().contains("preview"));
    }
}
