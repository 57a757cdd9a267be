//! `/v1/tenants/{tenant}/components…`: deploy a tenant's component (the `.wasm` as the request
//! body), list its versions, activate one (deploy or roll back) and delete inactive ones.
//!
//! A deploy validates and compiles the component off the request path before anything is
//! stored: what is not a component for the `handler` or the `event-handler` world is refused
//! with wasmtime's reason (the missing export, the unknown import), and a version that lacks
//! the export its component is used for (a route's, a webhook's) cannot be activated. Activating swaps the gateway's snapshot:
//! requests in flight finish on the version they started with, new ones get the new one.

use http::{Method, StatusCode};
use serde_json::json;
use sha2::{Digest, Sha256};

use super::{Admin, Answer, Call, Failure, json, no_content, no_endpoint, refusal};

/// Answers `/v1/tenants/{tenant}/components` followed by `rest`.
pub async fn answer(admin: &Admin, call: &Call, tenant: &str, rest: &[&str]) -> Answer {
    let t = tenant.to_string();
    match (&call.method, rest) {
        (&Method::GET, []) => {
            let versions = admin.run(move |store| store.component_versions(&t)).await?;
            json(StatusCode::OK, &json!({ "components": versions }))
        }
        (&Method::POST, [name]) => {
            let activate = call.query("activate").is_none_or(|value| value != "false");
            let smoke = call.query("smoke");
            let version =
                deploy(admin, tenant, name, call.body.to_vec(), &call.author, activate, smoke.as_deref()).await?;
            json(StatusCode::CREATED, &version)
        }
        (&Method::POST, [name, "versions", sha256, "activate"]) => {
            let (n, sha) = (name.to_string(), sha256.to_string());
            let versions = admin.run(move |store| store.component_versions(&t)).await?;
            if !versions.iter().any(|v| v.name == n && v.sha256 == sha) {
                let message = format!("tenant `{tenant}` has no version {sha256} of component `{name}`");
                return Err(Failure::new(StatusCode::NOT_FOUND, "NOT_FOUND", message));
            }
            check_activation(admin, tenant, name, sha256).await?;
            let t = tenant.to_string();
            let (n, sha) = (name.to_string(), sha256.to_string());
            json(StatusCode::OK, &admin.change(move |store| store.activate_component(&t, &n, &sha)).await?)
        }
        (&Method::DELETE, [name, "versions", sha256]) => {
            let (n, sha) = (name.to_string(), sha256.to_string());
            admin.change(move |store| store.delete_component_version(&t, &n, &sha)).await?;
            no_content()
        }
        _ => Err(no_endpoint(call)),
    }
}

/// Validates, compiles and stores `bytes` as a version of `tenant`'s component `name`, and
/// activates it if asked; returns the version. With `smoke`, a `GET smoke` is sent through
/// the new version first, and a 5xx answer refuses the deploy.
pub async fn deploy(
    admin: &Admin,
    tenant: &str,
    name: &str,
    bytes: Vec<u8>,
    author: &str,
    activate: bool,
    smoke: Option<&str>,
) -> Result<waedge_store::components::ComponentVersion, Failure> {
    if bytes.is_empty() {
        return Err(Failure::invalid("send the component's .wasm file as the request body"));
    }
    let sha256 = hex::encode(Sha256::digest(&bytes));
    let t = tenant.to_string();
    admin.run(move |store| store.tenant(&t).map(drop)).await?;
    let gateway = admin.gateway.clone();
    let (t, n, sha, compiled_bytes) = (tenant.to_string(), name.to_string(), sha256.clone(), bytes.clone());
    admin
        .run(move |_| Ok(gateway.prepare_component(&t, &n, &sha, &compiled_bytes)))
        .await?
        .map_err(|e| Failure::new(StatusCode::BAD_REQUEST, "INVALID_COMPONENT", format!("{e:#}")))?;
    if activate {
        check_activation(admin, tenant, name, &sha256).await?;
    }
    if let Some(path) = smoke {
        if !path.starts_with('/') {
            return Err(Failure::invalid("smoke: give a path starting with `/`, e.g. `?smoke=/hello`"));
        }
        let (status, body) = admin
            .gateway
            .smoke(tenant, name, &sha256, path)
            .await
            .map_err(|e| Failure::invalid(format!("smoke: {e:#}")))?;
        if status >= 500 {
            let message =
                format!("the smoke request GET {path} answered {status}: {body}; the version was not deployed");
            return Err(Failure::new(StatusCode::BAD_REQUEST, "SMOKE_FAILED", message));
        }
    }
    let (t, n, author) = (tenant.to_string(), name.to_string(), author.to_string());
    let version = admin
        .change(move |store| {
            let version = store.add_component_version(&t, &n, &sha256, &bytes, &author)?;
            if activate { store.activate_component(&t, &n, &sha256) } else { Ok(version) }
        })
        .await?;
    tracing::info!(tenant, component = name, sha256 = version.sha256, activate, "component deployed");
    Ok(version)
}

/// 409 unless version `sha256` of `tenant`'s component `name` exports what the routes and
/// webhooks naming the component call (a version that only handles events cannot take over a
/// route, nor one that only serves HTTP a subscription); 404 for an unknown version.
async fn check_activation(admin: &Admin, tenant: &str, name: &str, sha256: &str) -> Result<(), Failure> {
    let (gateway, t, n, sha) = (admin.gateway.clone(), tenant.to_string(), name.to_string(), sha256.to_string());
    let checked = admin.run(move |store| Ok(gateway.check_activation(store, &t, &n, &sha))).await?;
    checked.map_err(|e| refusal(e, ""))
}
