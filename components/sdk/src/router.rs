//! A small router: endpoints by method and path pattern, matched on the path after the route
//! prefix.

use std::ops::Index;

use crate::{ErrorClass, Request, Response};

/// A handler of one endpoint: the request and the parameters its pattern captured.
type Endpoint = Box<dyn Fn(&Request, &Params) -> Result<Response, ErrorClass>>;

/// Endpoints by method and path pattern, matched on [`Request::route_path`], so a plugin
/// answers under whatever prefix it is routed at.
///
/// A pattern is segments separated by `/`: a literal segment matches itself, `:name`
/// matches any one segment and captures it (percent-decoded) as parameter `name`. Empty
/// segments are ignored on both sides, so `/main/groups/` matches `/:device/groups`.
///
/// ```no_run
/// use waedge_sdk::{ErrorClass, Params, Request, Response, Router, whatsapp};
///
/// fn handle(request: Request) -> Response {
///     Router::new()
///         .get("/:device/groups", groups)
///         .post("/:device/notes", add_note)
///         .handle(&request)
/// }
///
/// fn groups(request: &Request, params: &Params) -> Result<Response, ErrorClass> {
///     let groups = whatsapp::open_device(&params["device"])?.list_joined_groups()?;
///     Ok(Response::json(200, &serde_json::json!({ "count": groups.len() })))
/// }
/// # fn add_note(_: &Request, _: &Params) -> Result<Response, ErrorClass> {
/// #     Ok(Response::json(201, &serde_json::json!({})))
/// # }
/// ```
#[derive(Default)]
pub struct Router {
    routes: Vec<(String, Vec<String>, Endpoint)>,
}

/// The parameters a route's pattern captured, by name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Params {
    pairs: Vec<(String, String)>,
}

impl Router {
    /// A router with no endpoints: every path is a 404.
    pub fn new() -> Self {
        Router::default()
    }

    /// Adds an endpoint for `method` (any case) at `pattern`. Endpoints are tried in the
    /// order they were added.
    pub fn route(
        mut self,
        method: &str,
        pattern: &str,
        handler: impl Fn(&Request, &Params) -> Result<Response, ErrorClass> + 'static,
    ) -> Self {
        let segments = pattern.split('/').filter(|s| !s.is_empty()).map(str::to_string).collect();
        self.routes.push((method.to_ascii_uppercase(), segments, Box::new(handler)));
        self
    }

    /// Adds a `GET` endpoint.
    pub fn get(
        self,
        pattern: &str,
        handler: impl Fn(&Request, &Params) -> Result<Response, ErrorClass> + 'static,
    ) -> Self {
        self.route("GET", pattern, handler)
    }

    /// Adds a `POST` endpoint.
    pub fn post(
        self,
        pattern: &str,
        handler: impl Fn(&Request, &Params) -> Result<Response, ErrorClass> + 'static,
    ) -> Self {
        self.route("POST", pattern, handler)
    }

    /// Answers `request` with the first endpoint whose method and pattern match it; an error
    /// the handler returns becomes its JSON answer ([`ErrorClass::into_response`]). A path no
    /// pattern matches is a 404 `NOT_FOUND`; a path matched only for other methods is a 405
    /// `METHOD_NOT_ALLOWED` whose `Allow` header lists them.
    pub fn handle(&self, request: &Request) -> Response {
        self.dispatch(request).unwrap_or_else(Response::from)
    }

    fn dispatch(&self, request: &Request) -> Result<Response, ErrorClass> {
        let segments = request.route_segments();
        let mut allowed: Vec<&str> = Vec::new();
        for (method, pattern, handler) in &self.routes {
            let Some(params) = Params::capture(pattern, &segments) else { continue };
            if method == request.method() {
                return handler(request, &params);
            }
            if !allowed.contains(&method.as_str()) {
                allowed.push(method);
            }
        }
        if allowed.is_empty() {
            Err(ErrorClass::no_route(request.path()))
        } else {
            Err(ErrorClass::method_not_allowed(request.method(), &allowed))
        }
    }
}

impl Params {
    /// What `pattern` captures from `segments`, if it matches them.
    fn capture(pattern: &[String], segments: &[String]) -> Option<Self> {
        if pattern.len() != segments.len() {
            return None;
        }
        let mut pairs = Vec::new();
        for (part, segment) in pattern.iter().zip(segments) {
            match part.strip_prefix(':') {
                Some(name) => pairs.push((name.to_string(), segment.clone())),
                None if part == segment => {}
                None => return None,
            }
        }
        Some(Params { pairs })
    }

    /// The parameter `name`, if the pattern has it.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.pairs.iter().find(|(n, _)| n == name).map(|(_, value)| value.as_str())
    }
}

/// `params["device"]`: the parameter, for a name the route's pattern has.
///
/// # Panics
///
/// When the pattern has no parameter of that name: a mistake in the route, not the request.
/// `params["device"]`: the parameter of that name. Panics — the guest traps and the request
/// gets a 500 — when the route's pattern has no such parameter: a bug in the plugin, not in
/// the request. [`Params::get`] answers `None` instead.
impl Index<&str> for Params {
    type Output = str;

    fn index(&self, name: &str) -> &str {
        self.get(name).unwrap_or_else(|| panic!("the route's pattern has no parameter `{name}`"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn router() -> Router {
        let echo = |request: &Request, params: &Params| {
            Ok(Response::json(200, &serde_json::json!({ "method": request.method(), "device": &params["device"] })))
        };
        Router::new()
            .get("/:device/groups", echo)
            .post("/:device/groups", echo)
            .route("delete", "/:device/groups", echo)
            .get("/:device/profile", |_, _| Err(ErrorClass::validation("give the contact as ?jid=")))
    }

    fn call(method: &str, path: &str) -> (u16, serde_json::Value, Vec<(String, String)>) {
        let request = Request::new(method, path, Vec::new(), Vec::new()).with_context("/api", "req-1");
        let response = router().handle(&request);
        (response.status, serde_json::from_slice(&response.body).unwrap(), response.headers)
    }

    #[test]
    fn captures_parameters_after_the_route_prefix() {
        let (status, body, _) = call("GET", "/api/support%2Dbr/groups/?x=1");
        assert_eq!((status, body), (200, serde_json::json!({ "method": "GET", "device": "support-br" })));
        assert_eq!(call("POST", "/api/main/groups").1["method"], "POST");
        assert_eq!(call("DELETE", "/api/main/groups").1["method"], "DELETE");
    }

    #[test]
    fn a_handler_error_is_its_json_answer() {
        let (status, body, _) = call("GET", "/api/main/profile");
        assert_eq!((status, &body["error"]["code"]), (400, &serde_json::json!("VALIDATION_ERROR")));
    }

    #[test]
    fn an_unknown_path_is_a_404() {
        for path in ["/api/main", "/api/main/groups/extra", "/api/main/contacts", "/api"] {
            let (status, body, _) = call("GET", path);
            assert_eq!((status, &body["error"]["code"]), (404, &serde_json::json!("NOT_FOUND")), "{path}");
            assert_eq!(body["error"]["message"], format!("no endpoint at `{path}`"));
        }
    }

    #[test]
    fn another_method_is_a_405_listing_the_allowed_ones() {
        let (status, body, headers) = call("PUT", "/api/main/groups");
        assert_eq!((status, &body["error"]["code"]), (405, &serde_json::json!("METHOD_NOT_ALLOWED")));
        assert!(headers.contains(&("allow".to_string(), "GET, POST, DELETE".to_string())), "{headers:?}");
        let (_, _, headers) = call("POST", "/api/main/profile");
        assert!(headers.contains(&("allow".to_string(), "GET".to_string())), "{headers:?}");
    }

    #[test]
    fn params_by_name() {
        let params = Params::capture(&["a".into(), ":x".into()], &["a".into(), "1".into()]).unwrap();
        assert_eq!((params.get("x"), params.get("y"), &params["x"]), (Some("1"), None, "1"));
        assert_eq!(Params::capture(&["a".into()], &["b".into()]), None);
    }
}
