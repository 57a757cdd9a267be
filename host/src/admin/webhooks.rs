//! `/v1/tenants/{tenant}/webhooks…`: a tenant's webhooks, their delivery logs and their dead
//! letters (listed, and replayed one at a time). Delivery itself is the
//! [webhooks service](crate::webhooks)'s.

use http::{Method, StatusCode};
use serde_json::json;
use waedge_store::ComponentRef;
use waedge_store::webhooks::NewWebhook;

use super::{Admin, Answer, Call, check_deployed, json, no_content, no_endpoint};
use crate::gateway::Export;
use crate::webhooks::sign;

/// How many attempts the delivery log shows unless the call asks for fewer.
const LOG_PAGE: usize = 100;
/// The most attempts it shows.
const MAX_LOG_PAGE: usize = 1000;

/// Answers `/v1/tenants/{tenant}/webhooks` followed by `rest`.
pub async fn answer(admin: &Admin, call: &Call, tenant: &str, rest: &[&str]) -> Answer {
    let t = tenant.to_string();
    match (&call.method, rest) {
        (&Method::GET, []) => {
            let webhooks = admin.run(move |store| store.webhooks(&t)).await?;
            json(StatusCode::OK, &json!({ "webhooks": webhooks }))
        }
        (&Method::POST, []) => {
            // The secret is made here, never chosen: shown in this answer only.
            let new = NewWebhook { secret: sign::new_secret(), ..call.json()? };
            // An event handler's component must be there and handle events before it is named,
            // and the gateway loads it with the tenant: the change is applied before the answer.
            let created = if let Some(ComponentRef::Deployed(name)) = new.handler()? {
                check_deployed(admin, &t, name, Export::Events, "url").await?;
                admin.change(move |store| store.create_webhook(&t, new)).await?
            } else {
                let created = admin.run(move |store| store.create_webhook(&t, new)).await?;
                admin.webhooks.reload().await?;
                created
            };
            let mut shown = serde_json::to_value(&created).expect("a webhook serialises");
            if created.handler().is_none() {
                shown["secret"] = json!(created.secret);
            }
            json(StatusCode::CREATED, &shown)
        }
        (&Method::GET, [webhook]) => {
            let w = webhook.to_string();
            json(StatusCode::OK, &admin.run(move |store| store.webhook(&t, &w)).await?)
        }
        (&Method::DELETE, [webhook]) => {
            let w = webhook.to_string();
            let handler = admin.run(move |store| store.webhook(&t, &w)).await?.handler();
            let (t, w) = (tenant.to_string(), webhook.to_string());
            match handler {
                // The gateway lets go of the handler's instances.
                Some(_) => admin.change(move |store| store.delete_webhook(&t, &w)).await?,
                None => {
                    admin.run(move |store| store.delete_webhook(&t, &w)).await?;
                    admin.webhooks.reload().await?;
                }
            }
            no_content()
        }
        (&Method::GET, [webhook, "deliveries"]) => {
            let limit = call.limit(LOG_PAGE, MAX_LOG_PAGE)?;
            let w = webhook.to_string();
            let attempts = admin.run(move |store| store.attempts(&t, &w, limit)).await?;
            json(StatusCode::OK, &json!({ "deliveries": attempts }))
        }
        (&Method::GET, [webhook, "dead-letters"]) => {
            let w = webhook.to_string();
            let letters = admin.run(move |store| store.dead_letters(&t, &w)).await?;
            json(StatusCode::OK, &json!({ "dead_letters": letters }))
        }
        (&Method::POST, [webhook, "dead-letters", event, "replay"]) => {
            let (attempt, delivered) = admin.webhooks.replay(tenant, webhook, event).await?;
            json(StatusCode::OK, &json!({ "delivered": delivered, "attempt": attempt }))
        }
        _ => Err(no_endpoint(call)),
    }
}
