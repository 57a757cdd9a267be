//! `/v1/tenants/{tenant}/users…`: users and their API tokens.

use http::{Method, StatusCode};
use serde_json::json;
use waedge_store::users::NewUser;

use super::{Admin, Answer, Call, Failure, json, no_content, no_endpoint};

/// Answers `/v1/tenants/{tenant}/users` followed by `rest`.
pub async fn answer(admin: &Admin, call: &Call, tenant: &str, rest: &[&str]) -> Answer {
    let tenant = tenant.to_string();
    match (&call.method, rest) {
        (&Method::GET, []) => {
            let users = admin.run(move |store| store.users(&tenant)).await?;
            json(StatusCode::OK, &json!({ "users": users }))
        }
        (&Method::POST, []) => {
            let new: NewUser = call.json()?;
            json(StatusCode::CREATED, &admin.change(move |store| store.create_user(&tenant, new)).await?)
        }
        (&Method::GET, [user]) => {
            let user = user.to_string();
            json(StatusCode::OK, &admin.run(move |store| store.user(&tenant, &user)).await?)
        }
        (&Method::PUT, [user]) => {
            if call.body.iter().all(u8::is_ascii_whitespace) {
                return Err(Failure::invalid("send the user's new name, devices and scopes as JSON"));
            }
            let new: NewUser = call.json()?;
            // The id comes from the path; one in the body is ignored, but must still be a UUID.
            if let Some(id) = new.id.as_deref().filter(|id| uuid::Uuid::try_parse(id).is_err()) {
                return Err(Failure::invalid(format!("id `{id}`: a user's id is a UUID (and comes from the path)")));
            }
            let user = user.to_string();
            json(StatusCode::OK, &admin.change(move |store| store.update_user(&tenant, &user, new)).await?)
        }
        (&Method::DELETE, [user]) => {
            let user = user.to_string();
            admin.change(move |store| store.delete_user(&tenant, &user)).await?;
            no_content()
        }
        (&Method::GET, [user, "tokens"]) => {
            let user = user.to_string();
            let tokens = admin.run(move |store| store.tokens(&tenant, &user)).await?;
            json(StatusCode::OK, &json!({ "tokens": tokens }))
        }
        (&Method::POST, [user, "tokens"]) => {
            let user = user.to_string();
            let (record, token) = admin.change(move |store| store.create_token(&tenant, &user)).await?;
            let mut body = serde_json::to_value(&record).expect("token records serialise");
            body["token"] = json!(token);
            json(StatusCode::CREATED, &body)
        }
        (&Method::DELETE, [user, "tokens", token]) => {
            let (user, token) = (user.to_string(), token.to_string());
            json(StatusCode::OK, &admin.change(move |store| store.revoke_token(&tenant, &user, &token)).await?)
        }
        _ => Err(no_endpoint(call)),
    }
}
