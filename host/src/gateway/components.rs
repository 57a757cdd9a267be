//! The component registry: the built-ins, component files and deployed versions the routes
//! name, compiled once and kept in [`Parts`] across reloads.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http::{Request, header};
use http_body_util::{BodyExt, Full};
use tracing::Instrument;
use waedge_store::{ComponentRef, Store};

use crate::capability::request::RequestContext;
use crate::runtime::{ComponentError, HandlerComponent, builtin};
use crate::tenancy::admission::Caller;

use super::request::{Answerer, Arrival, request_span, serve};
use super::{Gateway, Parts};

impl Parts {
    /// The component compiled under `key`; compiled now by `compile` (named `name`, from what
    /// `bytes` reads) if it is not yet.
    fn compiled(
        &mut self,
        compile: impl FnOnce(&str, &[u8]) -> Result<HandlerComponent, ComponentError>,
        key: String,
        name: &str,
        bytes: impl FnOnce() -> anyhow::Result<Vec<u8>>,
    ) -> anyhow::Result<Arc<HandlerComponent>> {
        if let Some(component) = self.components.get(&key) {
            return Ok(component.clone());
        }
        let component = Arc::new(compile(name, &bytes()?)?);
        self.components.insert(key, component.clone());
        Ok(component)
    }
}

impl Gateway {
    /// Checks that `component` is one a route can be served by: a built-in, a readable file
    /// holding a component for the `handler` world (compiled if it is new), or a registered
    /// native handler. A deployed component is checked against the store instead.
    pub fn check_component(&self, component: &ComponentRef) -> anyhow::Result<()> {
        if let ComponentRef::Native(name) = component {
            return self.native(name).map(drop);
        }
        let mut parts = self.parts.lock().unwrap_or_else(|p| p.into_inner());
        let compiled = self.component_in(&mut parts, component)?;
        exports(&compiled, component, Export::Http)
    }

    /// Validates and compiles version `sha256` of `tenant`'s component `name`, ready for the
    /// reload that activates it. CPU-heavy: call it off the async workers.
    pub fn prepare_component(&self, tenant: &str, name: &str, sha256: &str, bytes: &[u8]) -> anyhow::Result<()> {
        let key = deployed_key(tenant, name, sha256);
        if self.parts.lock().unwrap_or_else(|p| p.into_inner()).components.contains_key(&key) {
            return Ok(());
        }
        // Compiled without the lock: a reload (a token revocation, say) does not wait for it.
        let component = Arc::new(self.runtime.compile_deployed(&deployed_name(tenant, name, sha256), bytes)?);
        let mut parts = self.parts.lock().unwrap_or_else(|p| p.into_inner());
        // Kept through the reloads that may run before the deploy has stored the version.
        parts.prepared.insert(key.clone(), Instant::now());
        parts.components.entry(key).or_insert(component);
        Ok(())
    }

    /// Sends `GET path` through version `sha256` of `tenant`'s component `name` (prepared,
    /// not necessarily active) as a smoke test; returns the status and the start of the body.
    pub async fn smoke(&self, tenant: &str, name: &str, sha256: &str, path: &str) -> anyhow::Result<(u16, String)> {
        let tenants = self.tenants();
        let tenant = tenants.get(tenant).ok_or_else(|| anyhow::anyhow!("tenant `{tenant}` does not exist"))?.clone();
        let key = deployed_key(tenant.id(), name, sha256);
        let (component, share) = {
            let parts = self.parts.lock().unwrap_or_else(|p| p.into_inner());
            (parts.components.get(&key).cloned(), parts.shares.get(tenant.id()).cloned())
        };
        let component = component.ok_or_else(|| anyhow::anyhow!("version {sha256} of `{name}` is not prepared"))?;
        let share = share.ok_or_else(|| anyhow::anyhow!("tenant `{}` is not loaded yet", tenant.id()))?;
        let instances = Arc::new(self.runtime.pool(component, *tenant.limits(), share));
        let request = Request::get(path).header(header::HOST, "localhost").body(Full::new(Bytes::new()))?;
        // A smoke request takes no route: its component sees the whole path under `/`.
        let context = RequestContext { id: RequestContext::new_id(), route_prefix: "/".into() };
        let span = request_span(&context.id);
        let arrival = Arrival { caller: Caller::User, at: Instant::now(), context };
        let answerer = Answerer::Component(&instances);
        let response = serve(&tenant, answerer, &self.metrics, &self.outbound, arrival, request).instrument(span).await;
        let status = response.status().as_u16();
        let body = response.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
        let start = String::from_utf8_lossy(&body[..body.len().min(300)]).into_owned();
        Ok((status, start))
    }

    /// Checks that `tenant`'s deployed component `name` has an active version that exports
    /// what `export` needs (compiled if it is new: call it off the async workers).
    pub fn check_deployed(&self, store: &Store, tenant: &str, name: &str, export: Export) -> anyhow::Result<()> {
        let versions = store.component_versions(tenant)?;
        let Some(active) = versions.iter().find(|v| v.name == name && v.active) else {
            anyhow::bail!("tenant `{tenant}` has no active component `{name}`: deploy it first");
        };
        let compiled = self.compiled_version(store, tenant, name, &active.sha256)?;
        exports(&compiled, &ComponentRef::Deployed(name.to_string()), export)
    }

    /// Checks that version `sha256` of `tenant`'s component `name` exports what its uses call
    /// once it is active: the routes that name it, its HTTP handler; the webhooks that name it,
    /// its events (compiled if it is new: call it off the async workers).
    pub fn check_activation(&self, store: &Store, tenant: &str, name: &str, sha256: &str) -> anyhow::Result<()> {
        let component = ComponentRef::Deployed(name.to_string());
        let routed = store.routes(tenant)?.iter().any(|route| route.component == component);
        let subscribed = store.webhooks(tenant)?.iter().any(|webhook| webhook.handler().as_ref() == Some(&component));
        if !routed && !subscribed {
            return Ok(());
        }
        let compiled = self.compiled_version(store, tenant, name, sha256)?;
        let needed = [(routed, Export::Http, "routes"), (subscribed, Export::Events, "webhooks")];
        for (_, export, users) in needed.into_iter().filter(|(used, _, _)| *used) {
            anyhow::ensure!(
                export.is_exported_by(&compiled),
                "version {sha256} of `{component}` exports no `{}`, which the {users} naming the component call: it \
                 cannot be active while they do (store it with `?activate=false`, or change those {users} first)",
                export.interface()
            );
        }
        Ok(())
    }

    /// Version `sha256` of `tenant`'s component `name`, compiled: from the registry, else now,
    /// without the registry's lock (a reload, a token revocation, does not wait for it).
    fn compiled_version(
        &self,
        store: &Store,
        tenant: &str,
        name: &str,
        sha256: &str,
    ) -> anyhow::Result<Arc<HandlerComponent>> {
        let compiled = {
            let parts = self.parts.lock().unwrap_or_else(|p| p.into_inner());
            parts.components.get(&deployed_key(tenant, name, sha256)).cloned()
        };
        if let Some(compiled) = compiled {
            return Ok(compiled);
        }
        let bytes = store.component_bytes(tenant, name, sha256)?;
        let compiled = Arc::new(self.runtime.compile_deployed(&deployed_name(tenant, name, sha256), &bytes)?);
        // Kept like a deploy's, so the reload that activates it does not compile it again.
        let key = deployed_key(tenant, name, sha256);
        let mut parts = self.parts.lock().unwrap_or_else(|p| p.into_inner());
        parts.prepared.insert(key.clone(), Instant::now());
        Ok(parts.components.entry(key).or_insert(compiled).clone())
    }

    /// The compiled `component` of `tenant`: a built-in, a file, or the version of a deployed
    /// component that `active` says is active (by name). Not a native handler.
    pub(super) fn resolve(
        &self,
        parts: &mut Parts,
        store: &Store,
        tenant: &str,
        active: &dyn Fn(&str) -> Option<String>,
        component: &ComponentRef,
    ) -> anyhow::Result<Arc<HandlerComponent>> {
        let ComponentRef::Deployed(name) = component else {
            return self.component_in(parts, component);
        };
        match active(name) {
            Some(sha256) => self.deployed_in(parts, store, tenant, name, &sha256),
            None => Err(anyhow::anyhow!("tenant `{tenant}` has no active component `{name}`: deploy it first")),
        }
    }

    pub(super) fn deployed_in(
        &self,
        parts: &mut Parts,
        store: &Store,
        tenant: &str,
        name: &str,
        sha256: &str,
    ) -> anyhow::Result<Arc<HandlerComponent>> {
        let key = deployed_key(tenant, name, sha256);
        let display = deployed_name(tenant, name, sha256);
        let compile = |name: &str, bytes: &[u8]| self.runtime.compile_deployed(name, bytes);
        parts.compiled(compile, key, &display, || Ok(store.component_bytes(tenant, name, sha256)?))
    }

    /// The compiled built-in or file `component`.
    pub(super) fn component_in(
        &self,
        parts: &mut Parts,
        component: &ComponentRef,
    ) -> anyhow::Result<Arc<HandlerComponent>> {
        match component {
            ComponentRef::Builtin(builtin) => {
                let name = component.to_string();
                parts.compiled(
                    |name, bytes| self.runtime.compile(name, bytes),
                    name.clone(),
                    &name,
                    || {
                        builtin::get(builtin).map(<[u8]>::to_vec).ok_or_else(|| {
                            let known: Vec<_> = builtin::names().map(|n| format!("builtin:{n}")).collect();
                            anyhow::anyhow!("unknown component `{name}`; built-ins are {}", known.join(", "))
                        })
                    },
                )
            }
            ComponentRef::Deployed(_) | ComponentRef::Native(_) => {
                anyhow::bail!("`{component}` is not a built-in or a file")
            }
            ComponentRef::File(name) => {
                // A file is known by its path, modification time and size, so an edited file
                // is compiled again at the next reload.
                let meta = std::fs::metadata(name).map_err(|e| anyhow::anyhow!("cannot read component {name}: {e}"))?;
                let modified = meta.modified().map_err(|e| anyhow::anyhow!("cannot read component {name}: {e}"))?;
                let key = format!("file:{name}@{modified:?}+{}", meta.len());
                // Named by its file name only: the name is in a response header, and a server
                // path is nobody's business outside.
                let file_name = std::path::Path::new(name).file_name().unwrap_or_default().to_string_lossy();
                let display = format!("file:{file_name}");
                parts.compiled(
                    |name, bytes| self.runtime.compile(name, bytes),
                    key,
                    &display,
                    || read_component_file(name, &meta),
                )
            }
        }
    }
}

/// Reads a component file named by a route (`meta` is its metadata): a regular file of at
/// most the deploy size limit.
fn read_component_file(path: &str, meta: &std::fs::Metadata) -> anyhow::Result<Vec<u8>> {
    let limit = crate::runtime::MAX_COMPONENT_BYTES as u64;
    anyhow::ensure!(meta.is_file(), "component {path} is not a regular file");
    anyhow::ensure!(meta.len() <= limit, "component {path} is larger than {limit} bytes");
    std::fs::read(path).map_err(|e| anyhow::anyhow!("cannot read component {path}: {e}"))
}

/// The key a deployed version is compiled under: `TENANT/NAME@` and its whole hash, so two
/// versions are never taken for one another.
pub(super) fn deployed_key(tenant: &str, name: &str, sha256: &str) -> String {
    format!("{tenant}/{name}@{sha256}")
}

/// The name a deployed version is logged and measured under: `TENANT/NAME@` and the first 12
/// hex digits of its hash (a display name only: [`deployed_key`] tells versions apart).
pub(super) fn deployed_name(tenant: &str, name: &str, sha256: &str) -> String {
    format!("{tenant}/{name}@{}", &sha256[..sha256.len().min(12)])
}

/// What a use of a component calls: a route its HTTP handler, a subscription its event handler.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Export {
    /// `wasi:http/incoming-handler`.
    Http,
    /// `waedge:gateway/events`.
    Events,
}

/// `Ok` when `compiled` (which `component` names) exports what `export` needs; else what to do.
pub(super) fn exports(compiled: &HandlerComponent, component: &ComponentRef, export: Export) -> anyhow::Result<()> {
    anyhow::ensure!(
        export.is_exported_by(compiled),
        "`{component}` exports no `{}`: {}",
        export.interface(),
        match export {
            Export::Http => "it only handles events (name it as a webhook's `url` instead)",
            Export::Events => "build it for the `event-handler` world of wit/gateway.wit",
        }
    );
    Ok(())
}

impl Export {
    /// The interface it is.
    fn interface(self) -> &'static str {
        match self {
            Export::Http => "wasi:http/incoming-handler",
            Export::Events => "waedge:gateway/events",
        }
    }

    /// Whether `compiled` exports it.
    fn is_exported_by(self, compiled: &HandlerComponent) -> bool {
        match self {
            Export::Http => compiled.serves_http(),
            Export::Events => compiled.handles_events(),
        }
    }
}
