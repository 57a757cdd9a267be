//! The open endpoints of the admin listener: `/healthz`, `/readyz`, `/metrics`,
//! `/openapi.json` and the pairing page `/pair`.

use std::collections::BTreeMap;

use http::{Method, StatusCode};
use serde_json::json;

use super::{Admin, Answer, Call, json, no_endpoint, respond};

/// The OpenAPI 3.1 document of the admin API and of the two built-in APIs.
pub const OPENAPI: &str = include_str!("../../openapi.json");

/// The pairing page: shows the rotating QR code of a device and turns to "linked".
const PAIR_PAGE: &str = include_str!("pair.html");

/// Answers the open endpoint `name`.
pub async fn answer(admin: &Admin, call: &Call, name: &str) -> Answer {
    if call.method != Method::GET {
        return Err(no_endpoint(call));
    }
    match name {
        "healthz" => json(StatusCode::OK, &json!({ "status": "ok" })),
        "readyz" => {
            // A node cut off from its shared store is behind, whatever else it could say; any
            // other node whose store does not answer is not ready at all (500).
            if !admin.gateway.is_behind() {
                admin.run(|store| store.is_empty()).await?;
            }
            let tenants = admin.gateway.tenants();
            let mut devices: BTreeMap<&str, usize> = BTreeMap::new();
            for tenant in tenants.iter() {
                for device in tenant.scope().devices() {
                    *devices.entry(device.status().state.name()).or_default() += 1;
                }
            }
            // Stale: a stored change has not reached the gateway yet (it is being retried).
            // Behind: this node lost touch with the other nodes of its store (it refuses requests).
            let (status, word) = if admin.gateway.is_behind() {
                (StatusCode::SERVICE_UNAVAILABLE, "behind")
            } else if admin.is_stale() {
                (StatusCode::SERVICE_UNAVAILABLE, "stale")
            } else {
                (StatusCode::OK, "ready")
            };
            json(status, &json!({ "status": word, "tenants": tenants.iter().count(), "devices": devices }))
        }
        "metrics" => {
            let tenants = admin.gateway.tenants();
            let states: Vec<(String, String, &'static str)> = tenants
                .iter()
                .flat_map(|tenant| {
                    // The devices this node runs: the nodes of a cluster, added up, count each
                    // device once.
                    tenant.scope().devices().filter(|device| device.runs_here()).map(|device| {
                        let status = device.status();
                        (tenant.id().to_string(), status.id, status.state.name())
                    })
                })
                .collect();
            let cpu = admin.gateway.cpu_use();
            let text = admin.gateway.metrics().render(
                states.iter().map(|(t, d, s)| (t.as_str(), d.as_str(), *s)),
                admin.gateway.devices().clients_running(),
                cpu.iter().map(|(tenant, used)| (tenant.as_str(), used.seconds, used.throttled_seconds)),
            );
            Ok(respond(StatusCode::OK, "text/plain; version=0.0.4", text))
        }
        "openapi.json" => Ok(respond(StatusCode::OK, "application/json", OPENAPI)),
        "pair" => Ok(respond(StatusCode::OK, "text/html; charset=utf-8", PAIR_PAGE)),
        _ => Err(no_endpoint(call)),
    }
}
