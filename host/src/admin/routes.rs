//! `/v1/tenants/{tenant}/routes`: list, set (`PUT` with `{prefix, component}`) and delete
//! (`DELETE ?prefix=/x`) routes. A route whose component names none is invalid (400); one
//! naming a component that cannot be served (not deployed, no such built-in, a file that is
//! not a component) conflicts with what the gateway has (409).

use http::{Method, StatusCode};
use serde::Deserialize;
use serde_json::json;
use waedge_store::{ComponentRef, RouteRecord};

use super::{Admin, Answer, Call, Failure, check_deployed, json, no_content, no_endpoint};
use crate::gateway::Export;

/// A route as a client sends it: the component as text, parsed here so that what names no
/// component is answered as such.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RouteBody {
    prefix: String,
    component: String,
}

/// Answers `/v1/tenants/{tenant}/routes`.
pub async fn answer(admin: &Admin, call: &Call, tenant: &str) -> Answer {
    let tenant = tenant.to_string();
    match call.method {
        Method::GET => {
            let routes = admin.run(move |store| store.routes(&tenant)).await?;
            json(StatusCode::OK, &json!({ "routes": routes }))
        }
        Method::PUT => {
            let body: RouteBody = call.json()?;
            let component = body.component.parse().map_err(|e| Failure::invalid(format!("route component: {e}")))?;
            let route = RouteRecord { prefix: body.prefix, component };
            match &route.component {
                ComponentRef::Deployed(name) => {
                    check_deployed(admin, &tenant, name.clone(), Export::Http, "route component").await?;
                }
                ComponentRef::File(_) | ComponentRef::Native(_) if call.scope.tenant.is_some() => {
                    return Err(Failure::new(
                        StatusCode::FORBIDDEN,
                        "FORBIDDEN",
                        "a tenant's admin token routes to `component:NAME` or `builtin:NAME`: component files on \
                         the server are the operator's",
                    ));
                }
                _ => {
                    let gateway = admin.gateway.clone();
                    let component = route.component.clone();
                    // Compiling is CPU work: off the async workers, like every store call.
                    admin
                        .run(move |_| Ok(gateway.check_component(&component)))
                        .await?
                        .map_err(|e| Failure::conflict(format!("route component: {e:#}")))?;
                }
            }
            json(StatusCode::OK, &admin.change(move |store| store.put_route(&tenant, route)).await?)
        }
        Method::DELETE => {
            let prefix = call
                .query("prefix")
                .ok_or_else(|| Failure::invalid("say which route to delete: `?prefix=/devices`"))?;
            admin.change(move |store| store.delete_route(&tenant, &prefix)).await?;
            no_content()
        }
        _ => Err(no_endpoint(call)),
    }
}
