//! Query-string parsing.

/// A parsed query string: `key=value` pairs in order, percent-decoded.
///
/// `+` is kept as a literal plus sign (RFC 3986), so `?number=+6281…` keeps its `+`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Query {
    pairs: Vec<(String, String)>,
}

impl Query {
    /// Parses `a=1&b=2` (without the leading `?`).
    pub fn parse(query: &str) -> Self {
        let pairs = query
            .split('&')
            .filter(|pair| !pair.is_empty())
            .map(|pair| {
                let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
                (percent_decode(key), percent_decode(value))
            })
            .collect();
        Query { pairs }
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

/// Decodes `%XX` escapes. Invalid escapes are kept as they are; invalid UTF-8 is replaced.
pub fn percent_decode(input: &str) -> String {
    let bytes = input.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = (bytes[i] == b'%')
            .then(|| bytes.get(i + 1..i + 3))
            .flatten()
            .and_then(|hex| std::str::from_utf8(hex).ok())
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match escaped {
            Some(byte) => {
                out.push(byte);
                i += 3;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_pairs_and_keeps_plus() {
        let q = Query::parse("jid=5511999999999%40s.whatsapp.net&number=+55%2011&preview=true&empty");
        assert_eq!(q.get("jid"), Some("5511999999999@s.whatsapp.net"));
        assert_eq!(q.get("number"), Some("+55 11"));
        assert_eq!(q.flag("preview"), Ok(Some(true)));
        assert_eq!(q.get("empty"), Some(""));
        assert_eq!(q.get_non_empty("empty"), None);
        assert_eq!(q.get("missing"), None);
    }

    #[test]
    fn bad_escapes_and_flags() {
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz%4"), "%zz%4");
        assert!(Query::parse("preview=maybe").flag("preview").unwrap_err().contains("preview"));
    }
}
