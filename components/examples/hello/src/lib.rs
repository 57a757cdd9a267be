//! The example of `components/sdk/README.md`, built and tested with the rest
//! (`tests/e2e/tests/components.rs`): keep the two identical.

use serde_json::json;
use waedge_sdk::{ErrorClass, Handler, Request, Response, authenticate, require_device, whatsapp};

struct Hello;

impl Handler for Hello {
    fn handle(request: Request) -> Response {
        let principal = match authenticate(&request) {
            Ok(principal) => principal,
            Err(error) => return error.into_response(),
        };
        let device = request.query().get("device").unwrap_or("main").to_string();
        if let Err(error) = require_device(&principal, &device) {
            return error.into_response();
        }
        match whatsapp::list_joined_groups(&device) {
            Ok(groups) => Response::json(200, &json!({ "user": principal.user, "groups": groups.len() })),
            Err(error) => ErrorClass::from(error).into_response(),
        }
    }
}

waedge_sdk::export_handler!(Hello);
