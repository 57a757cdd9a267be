//! The bearer token of a request: `Authorization: Bearer TOKEN`, as both listeners read it.

use http::HeaderMap;
use http::header::AUTHORIZATION;

/// The token of the request's `Authorization` header, if it uses the `Bearer` scheme (in any
/// case) and the token is not empty.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    let header = headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = header.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    fn of(value: &[u8]) -> Option<String> {
        let mut headers = HeaderMap::new();
        headers.insert(AUTHORIZATION, HeaderValue::from_bytes(value).unwrap());
        bearer(&headers).map(str::to_string)
    }

    #[test]
    fn reads_the_bearer_scheme_only() {
        assert_eq!(of(b"Bearer abc").as_deref(), Some("abc"));
        assert_eq!(of(b"bearer   abc ").as_deref(), Some("abc"));
        assert_eq!(of(b"Basic abc"), None);
        assert_eq!(of(b"Bearer "), None);
        assert_eq!(of(b"abc"), None);
        // Not text: no token, never a panic.
        assert_eq!(of(b"Bearer \xff"), None);
        assert_eq!(bearer(&HeaderMap::new()), None);
    }
}
