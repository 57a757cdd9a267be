//! The example of `components/sdk/README.md`, built and tested with the rest
//! (`tests/e2e/tests/components.rs`): keep the two identical.

use serde_json::json;
use waedge_sdk::{ErrorClass, Handler, Request, Response, authenticate, require_device, whatsapp};

struct Hello;

impl Handler for Hello {
    fn handle(request: Request) -> Response {
        count_groups(&request).unwrap_or_else(Response::from)
    }
}

fn count_groups(request: &Request) -> Result<Response, ErrorClass> {
    let principal = authenticate(request)?;
    let device = request.query().get("device").unwrap_or("main");
    require_device(&principal, device)?;
    let groups = whatsapp::open_device(device)?.list_joined_groups()?;
    Ok(Response::json(200, &json!({ "user": principal.user, "groups": groups.len() })))
}

waedge_sdk::export_handler!(Hello);
