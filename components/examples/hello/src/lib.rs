//! The example of `components/sdk/README.md`, built and tested with the rest
//! (`tests/e2e/tests/plugins.rs`): keep the two identical.

use serde_json::json;
use waedge_sdk::{ErrorClass, Handler, Request, Response, authenticate, require_device, whatsapp};

struct Hello;

fn fail(error: ErrorClass) -> Response {
    Response::json(error.status, &json!({ "error": { "code": error.code, "message": error.message } }))
}

impl Handler for Hello {
    fn handle(request: Request) -> Response {
        let principal = match authenticate(&request) {
            Ok(principal) => principal,
            Err(error) => return fail(error),
        };
        let device = request.query().get("device").unwrap_or("main").to_string();
        if let Err(error) = require_device(&principal, &device) {
            return fail(error);
        }
        match whatsapp::list_joined_groups(&device) {
            Ok(groups) => Response::json(200, &json!({ "user": principal.user, "groups": groups.len() })),
            Err(error) => fail(error.into()),
        }
    }
}

waedge_sdk::export_handler!(Hello);
