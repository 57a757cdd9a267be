//! The component runtime: one wasmtime [`Engine`](wasmtime::Engine) for the process,
//! components compiled once into [`HandlerComponent`]s, and limited instances of them kept
//! per tenant in [`InstancePool`](pool::InstancePool)s.
//!
//! - [`engine`] configures the engine (pooling allocator, epoch interruption) and runs the
//!   single epoch ticker thread.
//! - [`artefact`] keeps compiled components on disk, checked before they are loaded.
//! - [`compiler`] compiles tenants' components in a child process, under a budget.
//! - [`capacity`] sizes the instance pool and gives each tenant a share of it.
//! - [`cpu`] budgets each tenant's guest CPU time.
//! - [`state`] is the store data: WASI contexts and the current request's capabilities.
//! - [`limiter`] caps what one instance may allocate.
//! - [`pool`] keeps warm instances of one component for one tenant.
//! - [`dispatch`] runs one HTTP request through a component under its deadline.
//! - [`event`] hands one event to a component's `events` export under the same bounds.

pub mod artefact;
pub mod builtin;
pub mod capacity;
pub mod compiler;
pub mod cpu;
pub mod dispatch;
pub mod engine;
pub mod event;
pub mod footprint;
pub mod limiter;
pub mod pool;
pub mod state;

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;

use sha2::{Digest, Sha256};
use waedge_contract::EventHandlerPre;
use wasmtime::component::{Component, Linker};
use wasmtime_wasi_http::p2::bindings::ProxyPre;

use crate::capability;
use crate::limits::Limits;
use artefact::ArtefactCache;
use capacity::Share;
use compiler::IsolatedCompiler;
use footprint::Footprint;
use pool::{IdleBudget, InstancePool};
use state::RequestState;

/// The largest component accepted, in bytes (a deploy, a file a route names).
pub const MAX_COMPONENT_BYTES: usize = 32 << 20;

/// The engine and linker every component is compiled and linked with.
#[derive(Clone)]
pub struct Runtime {
    engine: wasmtime::Engine,
    linker: Arc<Linker<RequestState>>,
    cache: Option<Arc<ArtefactCache>>,
    /// Where deployed components are compiled; in process when `None`.
    isolated: Option<IsolatedCompiler>,
    idle: Arc<IdleBudget>,
    /// Slots of the pooling allocator for requests in flight, divided between tenants.
    in_flight: usize,
}

/// A compiled, import-checked component, ready to be instantiated per request or event.
pub struct HandlerComponent {
    name: Arc<str>,
    sha256: String,
    footprint: Footprint,
    /// The engine it was compiled for.
    engine: wasmtime::Engine,
    /// Its `wasi:http/incoming-handler` export, when it has one: a route may name it.
    http: Option<ProxyPre<RequestState>>,
    /// Its `waedge:gateway/events` export, when it has one: it may be subscribed to events.
    events: Option<EventHandlerPre<RequestState>>,
}

/// Why a component was refused.
#[derive(Debug, thiserror::Error)]
#[error("component `{name}`: {reason:#}")]
pub struct ComponentError {
    name: String,
    reason: wasmtime::Error,
}

impl Runtime {
    /// Creates the engine, with a pool of [`capacity::SLOTS`] instances, starts its epoch
    /// ticker and links every host interface.
    pub fn new() -> wasmtime::Result<Self> {
        Self::with_slots(capacity::SLOTS)
    }

    /// [`Runtime::new`] with a pool of `slots` instances (at least 2): for a host with little
    /// address space, and for tests that fill the pool.
    pub fn with_slots(slots: u32) -> wasmtime::Result<Self> {
        wasmtime::ensure!(slots >= 2, "the instance pool needs at least 2 slots");
        let (idle, in_flight) = capacity::split(slots);
        let engine = engine::new(slots)?;
        let mut linker = Linker::new(&engine);
        // The `platform` world of wit/gateway.wit: `wasi:cli/imports` (exactly what this
        // links, inert in an empty context), `wasi:http`'s types and outgoing handler, and the
        // contract's own interfaces (with those of every earlier contract version).
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)?;
        capability::add_to_linker(&mut linker, RequestState::capabilities_view)?;
        let idle = Arc::new(IdleBudget::new(idle));
        Ok(Runtime { engine, linker: Arc::new(linker), cache: None, isolated: None, idle, in_flight })
    }

    /// Keeps compiled components in `dir` (see [`artefact`]), so a restart does not compile
    /// them again. Only artefacts this runtime compiled itself are ever loaded: there is no
    /// way to hand it a precompiled one.
    pub fn with_cache(mut self, dir: PathBuf) -> Self {
        self.cache = Some(Arc::new(ArtefactCache::new(dir, &self.engine)));
        self
    }

    /// Removes the cached artefacts of every component whose SHA-256 (hex) is not in `keep`.
    pub fn retain_cached(&self, keep: &HashSet<&str>) {
        if let Some(cache) = &self.cache {
            let removed = cache.retain(keep);
            if removed > 0 {
                tracing::info!(removed, "removed unused compiled components");
            }
        }
    }

    /// Compiles components that tenants deploy with `compiler`, in a child process under its
    /// budget (see [`compiler`]), instead of in process.
    pub fn with_isolated_compiler(mut self, compiler: IsolatedCompiler) -> Self {
        self.isolated = Some(compiler);
        self
    }

    /// Compiles `bytes`, a component the operator provides (a built-in, a file in the
    /// configuration), in process, and checks that it exports `wasi:http/incoming-handler` or
    /// `waedge:gateway/events` (or both) and imports nothing the host does not provide. CPU-heavy: call it off the request path.
    pub fn compile(&self, name: &str, bytes: &[u8]) -> Result<HandlerComponent, ComponentError> {
        self.compile_with(name, bytes, None)
    }

    /// [`Runtime::compile`] for a component a tenant deployed: in a child process under the
    /// compile budget, when the runtime has one ([`Runtime::with_isolated_compiler`]).
    pub fn compile_deployed(&self, name: &str, bytes: &[u8]) -> Result<HandlerComponent, ComponentError> {
        self.compile_with(name, bytes, self.isolated.as_ref())
    }

    fn compile_with(
        &self,
        name: &str,
        bytes: &[u8],
        isolated: Option<&IsolatedCompiler>,
    ) -> Result<HandlerComponent, ComponentError> {
        let refuse = |reason| ComponentError { name: name.to_string(), reason };
        let sha256 = hex::encode(Sha256::digest(bytes));
        let compile = |bytes: &[u8]| match isolated {
            Some(compiler) => compiler.compile(&self.engine, bytes),
            None => Component::new(&self.engine, bytes),
        };
        let component = match &self.cache {
            Some(cache) => self.compile_cached(cache, &sha256, bytes, compile),
            None => compile(bytes),
        }
        .map_err(refuse)?;
        let pre = self.linker.instantiate_pre(&component).map_err(refuse)?;
        let (http, events) = (ProxyPre::new(pre.clone()), EventHandlerPre::new(pre));
        if let (Err(no_http), Err(_)) = (&http, &events) {
            return Err(refuse(wasmtime::format_err!(
                "{no_http:#}, nor `waedge:gateway/events`: target the `handler` world of wit/gateway.wit (HTTP \
                 requests) or its `event-handler` world (events)"
            )));
        }
        let footprint = Footprint::of(bytes).map_err(|e| refuse(e.into()))?;
        let engine = self.engine.clone();
        Ok(HandlerComponent { name: name.into(), sha256, footprint, engine, http: http.ok(), events: events.ok() })
    }

    /// An empty instance pool for one tenant's use of `component`'s export `E` under `limits`,
    /// taking slots of the tenant's `share`.
    pub fn pool<E>(&self, component: Arc<HandlerComponent>, limits: Limits, share: Arc<Share>) -> InstancePool<E> {
        InstancePool::new(component, limits, share, self.idle.clone())
    }

    /// The size of each tenant's [`Share`] when there are `tenants`: an even split of the slots
    /// for requests in flight (at least one).
    pub fn share_size(&self, tenants: usize) -> usize {
        (self.in_flight / tenants.max(1)).max(1)
    }
}

impl Runtime {
    /// The compiled form of `bytes` (whose SHA-256 is `sha256`) from the cache, or compiled
    /// now by `compile` and cached. A cache that cannot be read or written only costs the compile.
    fn compile_cached(
        &self,
        cache: &ArtefactCache,
        sha256: &str,
        bytes: &[u8],
        compile: impl FnOnce(&[u8]) -> wasmtime::Result<Component>,
    ) -> wasmtime::Result<Component> {
        if let Some(component) = cache.load(&self.engine, sha256) {
            return Ok(component);
        }
        let component = compile(bytes)?;
        if let Err(e) = cache.store(sha256, &component) {
            tracing::warn!("cannot cache the compiled component {sha256}: {e}");
        }
        Ok(component)
    }
}

impl HandlerComponent {
    /// The name the component was compiled under (`builtin:devices-api`, a file path, …).
    pub fn name(&self) -> &Arc<str> {
        &self.name
    }

    /// The SHA-256 (hex) of the component's bytes.
    pub fn sha256(&self) -> &str {
        &self.sha256
    }

    /// The core instances and tables each of its instances creates.
    pub fn footprint(&self) -> Footprint {
        self.footprint
    }

    /// Whether it exports `wasi:http/incoming-handler`, so a route may name it.
    pub fn serves_http(&self) -> bool {
        self.http.is_some()
    }

    /// Whether it exports `waedge:gateway/events`, so it may be subscribed to events.
    pub fn handles_events(&self) -> bool {
        self.events.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The cache directory's files and their contents.
    fn cached(dir: &std::path::Path) -> Vec<(String, Vec<u8>)> {
        let mut files: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap())
            .map(|e| (e.file_name().into_string().unwrap(), std::fs::read(e.path()).unwrap()))
            .collect();
        files.sort();
        files
    }

    #[test]
    fn compiled_components_are_cached_by_content_and_engine() {
        let dir = tempfile::tempdir().unwrap();
        let runtime = Runtime::new().unwrap().with_cache(dir.path().to_path_buf());
        let bytes = builtin::get("devices-api").unwrap();
        let compiled = runtime.compile("builtin:devices-api", bytes).unwrap();
        assert_eq!(compiled.sha256(), hex::encode(Sha256::digest(bytes)));
        let files = cached(dir.path());
        assert_eq!(files.len(), 1);
        let (name, artefact) = &files[0];
        assert!(name.starts_with(&format!("{}-", compiled.sha256())) && name.ends_with(".cwasm"), "{name}");
        let (digest, serialized) = artefact.split_at(32);
        assert_eq!(digest, Sha256::digest(serialized).as_slice(), "the artefact's own digest comes first");
        // The second compile loads the artefact: nothing is written.
        let path = dir.path().join(name);
        let written = std::fs::metadata(&path).unwrap().modified().unwrap();
        runtime.compile("builtin:devices-api", bytes).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().modified().unwrap(), written);
    }

    #[test]
    fn damaged_artefacts_are_discarded_and_compiled_again() {
        let dir = tempfile::tempdir().unwrap();
        let runtime = Runtime::new().unwrap().with_cache(dir.path().to_path_buf());
        let bytes = builtin::get("devices-api").unwrap();
        runtime.compile("builtin:devices-api", bytes).unwrap();
        let [(name, intact)] = <[_; 1]>::try_from(cached(dir.path())).unwrap();
        let path = dir.path().join(&name);
        // One flipped bit in the code (a valid ELF still), a truncated file, a foreign file.
        let mut flipped = intact.clone();
        flipped[intact.len() / 2] ^= 0x01;
        let damaged = [flipped, intact[..intact.len() - 100].to_vec(), b"damaged".to_vec()];
        for damage in damaged {
            std::fs::write(&path, &damage).unwrap();
            runtime.compile("builtin:devices-api", bytes).unwrap();
            let [(rewritten, artefact)] = <[_; 1]>::try_from(cached(dir.path())).unwrap();
            assert_eq!(rewritten, name);
            assert_ne!(artefact, damage, "the damaged artefact was loaded instead of compiled again");
            let (digest, serialized) = artefact.split_at(32);
            assert_eq!(digest, Sha256::digest(serialized).as_slice());
        }
    }

    #[test]
    fn unused_artefacts_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        let runtime = Runtime::new().unwrap().with_cache(dir.path().to_path_buf());
        let devices = runtime.compile("builtin:devices-api", builtin::get("devices-api").unwrap()).unwrap();
        let contacts = runtime.compile("builtin:contacts-api", builtin::get("contacts-api").unwrap()).unwrap();
        std::fs::write(dir.path().join("stale.partial"), b"left by a crash").unwrap();
        runtime.retain_cached(&HashSet::from([devices.sha256()]));
        let names: Vec<_> = cached(dir.path()).into_iter().map(|(name, _)| name).collect();
        assert_eq!(names.len(), 1);
        assert!(names[0].starts_with(devices.sha256()) && !names[0].starts_with(contacts.sha256()), "{names:?}");
    }
}
