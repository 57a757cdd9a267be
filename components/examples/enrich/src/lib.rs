//! Example plugin: an edge call. `GET /enriched/{device}/profile?jid=…` (routed at
//! `/enriched`, or any other prefix; another method is a 405) answers a contact's WhatsApp
//! profile together with what the tenant's CRM knows about the number, fetched over outbound
//! HTTP from the URL in the tenant's `crm_url` setting (`…?phone=DIGITS`). The CRM host must
//! be on the tenant's `outbound_hosts`; if the CRM cannot be reached the profile is still
//! answered, with `crm: null` and the reason.

use serde_json::{Value, json};
use waedge_sdk::{
    ErrorClass, Handler, Params, Request, Response, Router, authenticate, config, outbound, require_device, user_info,
    user_jid, whatsapp,
};

struct Enrich;

impl Handler for Enrich {
    fn handle(request: Request) -> Response {
        Router::new().get("/:device/profile", profile).handle(&request)
    }
}

fn profile(request: &Request, params: &Params) -> Result<Response, ErrorClass> {
    let device = &params["device"];
    require_device(&authenticate(request)?, device)?;
    let jid = user_jid(request, "jid")?;
    let info = user_info(&whatsapp::open_device(device)?, &jid)?;
    let phone: String = jid.split('@').next().unwrap_or_default().chars().filter(char::is_ascii_digit).collect();
    let (crm, crm_error) = match crm_record(&phone) {
        Ok(record) => (record, Value::Null),
        Err(reason) => (Value::Null, json!(reason)),
    };
    Ok(Response::json(
        200,
        &json!({ "data": { "jid": info.jid, "status": info.status, "crm": crm, "crm_error": crm_error } }),
    ))
}

/// What the CRM answers for `phone`, as JSON.
fn crm_record(phone: &str) -> Result<Value, String> {
    let base = config::get("crm_url").ok_or("this tenant has no `crm_url` setting")?;
    let fetched = outbound::get(&format!("{base}?phone={phone}")).map_err(|e| e.to_string())?;
    if fetched.status != 200 {
        return Err(format!("the CRM answered {}", fetched.status));
    }
    fetched.json().map_err(|e| format!("the CRM's answer is not JSON: {e}"))
}

waedge_sdk::export_handler!(Enrich);
