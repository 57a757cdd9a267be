//! `/v1/tenants` and `/v1/tenants/{tenant}`.

use http::{Method, StatusCode};
use serde_json::json;
use waedge_store::tenants::{NewTenant, TenantPatch};

use super::{Admin, Answer, Call, json, no_content, no_endpoint};

/// Answers the tenant collection (`tenant` is `None`) or one tenant.
pub async fn answer(admin: &Admin, call: &Call, tenant: Option<&str>) -> Answer {
    match (&call.method, tenant) {
        (&Method::GET, None) => {
            let tenants = admin.run(|store| store.tenants()).await?;
            json(StatusCode::OK, &json!({ "tenants": tenants }))
        }
        (&Method::POST, None) => {
            let new: NewTenant = call.json()?;
            let tenant = admin.change(move |store| store.create_tenant(new)).await?;
            json(StatusCode::CREATED, &tenant)
        }
        (&Method::GET, Some(id)) => {
            let id = id.to_string();
            json(StatusCode::OK, &admin.run(move |store| store.tenant(&id)).await?)
        }
        (&Method::PATCH, Some(id)) => {
            let patch: TenantPatch = call.json()?;
            let id = id.to_string();
            json(StatusCode::OK, &admin.change(move |store| store.update_tenant(&id, patch)).await?)
        }
        (&Method::DELETE, Some(id)) => {
            // The store first (see devices.rs), with the devices it held, then each device's
            // WhatsApp session — even when the gateway cannot apply the deletion yet.
            let tenant = id.to_string();
            let devices = admin.run(move |store| store.delete_tenant(&tenant)).await?;
            // Every session goes, even when one fails to: the first failure is the answer.
            let mut failure = None;
            for device in devices {
                if let Err(e) = super::devices::remove_session(admin, id, &device.id).await {
                    failure.get_or_insert(e);
                }
            }
            admin.apply().await?;
            failure.map_or_else(no_content, Err)
        }
        _ => Err(no_endpoint(call)),
    }
}
