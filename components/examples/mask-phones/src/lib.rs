//! Example plugin: response shaping. `GET /masked/{device}/profile?jid=…` (routed at
//! `/masked`, or any other prefix) answers a contact's profile with every phone number masked
//! (`6281****7890`), for a tenant whose agents must not see numbers. LIDs, which are not phone
//! numbers, are left alone.

use serde_json::json;
use waedge_sdk::{ErrorClass, Handler, Request, Response, authenticate, require_device, user_info, user_jid, whatsapp};

struct MaskPhones;

impl Handler for MaskPhones {
    fn handle(request: Request) -> Response {
        serve(&request).unwrap_or_else(Response::from)
    }
}

fn serve(request: &Request) -> Result<Response, ErrorClass> {
    let segments = request.route_segments();
    let [device, endpoint] = segments.as_slice() else { return Err(ErrorClass::no_route(request.path())) };
    if endpoint != "profile" {
        return Err(ErrorClass::no_route(request.path()));
    }
    require_device(&authenticate(request)?, device)?;
    let info = user_info(&whatsapp::open_device(device)?, &user_jid(request, "jid")?)?;
    Ok(Response::json(
        200,
        &json!({ "data": {
            "jid": mask(&info.jid),
            "lid": info.lid,
            "status": info.status,
            "devices": info.devices.iter().flatten().map(|d| mask(d)).collect::<Vec<_>>(),
        }}),
    ))
}

/// `6281234567890@s.whatsapp.net` → `6281*****7890@s.whatsapp.net`: the first four and the
/// last four digits of a phone JID stay; anything else is returned as it is.
fn mask(jid: &str) -> String {
    let Some((user, server)) = jid.split_once('@') else { return jid.to_string() };
    if server != "s.whatsapp.net" {
        return jid.to_string();
    }
    let (number, device) = user.split_once(':').map_or((user, None), |(n, d)| (n, Some(d)));
    let digits = number.len();
    let masked: String =
        number.chars().enumerate().map(|(i, c)| if i < 4 || i + 4 >= digits { c } else { '*' }).collect();
    match device {
        Some(device) => format!("{masked}:{device}@{server}"),
        None => format!("{masked}@{server}"),
    }
}

waedge_sdk::export_handler!(MaskPhones);

#[cfg(test)]
mod tests {
    use super::mask;

    #[test]
    fn masks_the_middle_of_phone_numbers_only() {
        assert_eq!(mask("6281234567890@s.whatsapp.net"), "6281*****7890@s.whatsapp.net");
        assert_eq!(mask("6281234567890:1@s.whatsapp.net"), "6281*****7890:1@s.whatsapp.net");
        assert_eq!(mask("1234567890987654321@lid"), "1234567890987654321@lid");
    }
}
