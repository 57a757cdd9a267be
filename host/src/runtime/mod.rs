//! The component runtime: one wasmtime [`Engine`](wasmtime::Engine) for the process,
//! components compiled once into [`HandlerComponent`]s, and limited instances of them kept
//! per tenant in [`InstancePool`](pool::InstancePool)s.
//!
//! - [`engine`] configures the engine (pooling allocator, epoch interruption) and runs the
//!   single epoch ticker thread.
//! - [`state`] is the store data: WASI contexts and the current request's capabilities.
//! - [`pool`] keeps warm instances of one component for one tenant.
//! - [`dispatch`] runs one HTTP request through a component under its deadline.
//! - [`violation`] reports a component hitting a limit.

pub mod builtin;
pub mod dispatch;
pub mod engine;
pub mod pool;
pub mod state;
pub mod violation;

use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::PathBuf;
use std::sync::Arc;

use sha2::{Digest, Sha256};
use wasmtime::component::{Component, Linker};
use wasmtime_wasi_http::p2::bindings::ProxyPre;

use crate::capability;
use crate::config::Limits;
use pool::{IdleBudget, InstancePool};
use state::RequestState;

/// The engine and linker every component is compiled and linked with.
#[derive(Clone)]
pub struct Runtime {
    engine: wasmtime::Engine,
    linker: Arc<Linker<RequestState>>,
    cache: Option<PathBuf>,
    idle: Arc<IdleBudget>,
}

/// A compiled, import-checked component, ready to be instantiated per request.
pub struct HandlerComponent {
    name: Arc<str>,
    pre: ProxyPre<RequestState>,
}

/// Why a component was refused.
#[derive(Debug, thiserror::Error)]
#[error("component `{name}`: {reason:#}")]
pub struct ComponentError {
    name: String,
    reason: wasmtime::Error,
}

impl Runtime {
    /// Creates the engine, starts its epoch ticker and links every host interface.
    pub fn new() -> wasmtime::Result<Self> {
        let engine = engine::new()?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)?;
        capability::add_to_linker(&mut linker)?;
        Ok(Runtime { engine, linker: Arc::new(linker), cache: None, idle: Arc::default() })
    }

    /// Keeps compiled components in `dir`, keyed by the SHA-256 of the component and the
    /// engine's compatibility hash, so a restart does not compile them again. Only artefacts
    /// this runtime compiled itself are ever loaded: there is no way to hand it a precompiled
    /// one.
    pub fn with_cache(mut self, dir: PathBuf) -> Self {
        self.cache = Some(dir);
        self
    }

    /// Compiles `bytes` and checks that the component exports `wasi:http/incoming-handler` and
    /// imports nothing the host does not provide. CPU-heavy: call it off the request path.
    pub fn compile(&self, name: &str, bytes: &[u8]) -> Result<HandlerComponent, ComponentError> {
        let refuse = |reason| ComponentError { name: name.to_string(), reason };
        let component = match &self.cache {
            Some(dir) => self.compile_cached(dir, bytes),
            None => Component::new(&self.engine, bytes),
        }
        .map_err(refuse)?;
        let pre = self.linker.instantiate_pre(&component).map_err(refuse)?;
        let pre = ProxyPre::new(pre).map_err(refuse)?;
        Ok(HandlerComponent { name: name.into(), pre })
    }

    /// An empty instance pool for one tenant's use of `component` under `limits`.
    pub fn pool(&self, component: Arc<HandlerComponent>, limits: Limits) -> InstancePool {
        InstancePool::new(component, limits, self.idle.clone())
    }
}

impl Runtime {
    /// The compiled form of `bytes` from the cache, or compiled now and cached. A cache that
    /// cannot be read or written only costs the compile.
    fn compile_cached(&self, dir: &std::path::Path, bytes: &[u8]) -> wasmtime::Result<Component> {
        let mut engine_hash = DefaultHasher::new();
        self.engine.precompile_compatibility_hash().hash(&mut engine_hash);
        let key = format!("{}-{:016x}.cwasm", hex::encode(Sha256::digest(bytes)), engine_hash.finish());
        let path = dir.join(key);
        if path.is_file() {
            // SAFETY: the file was written by `Component::serialize` of this same engine
            // configuration (the compatibility hash is in its name) into the operator's data
            // directory; tenants cannot place files there.
            match unsafe { Component::deserialize_file(&self.engine, &path) } {
                Ok(component) => return Ok(component),
                Err(e) => tracing::warn!("ignoring the unreadable cached component {}: {e:#}", path.display()),
            }
        }
        let component = Component::new(&self.engine, bytes)?;
        let written = component.serialize().map_err(std::io::Error::other).and_then(|artefact| {
            std::fs::create_dir_all(dir)?;
            let partial = path.with_extension("partial");
            std::fs::write(&partial, artefact)?;
            std::fs::rename(&partial, &path)
        });
        if let Err(e) = written {
            tracing::warn!("cannot cache the compiled component in {}: {e}", dir.display());
        }
        Ok(component)
    }
}

impl HandlerComponent {
    /// The name the component was compiled under (`builtin:devices-api`, a file path, …).
    pub fn name(&self) -> &Arc<str> {
        &self.name
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compiled_components_are_cached_by_content_and_engine() {
        let dir = tempfile::tempdir().unwrap();
        let runtime = Runtime::new().unwrap().with_cache(dir.path().to_path_buf());
        let bytes = builtin::get("devices-api").unwrap();
        runtime.compile("builtin:devices-api", bytes).unwrap();
        let cached: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(cached.len(), 1);
        let name = cached[0].to_str().unwrap();
        assert!(name.starts_with(&hex::encode(Sha256::digest(bytes))) && name.ends_with(".cwasm"), "{name}");
        // The second compile loads the artefact; a damaged one is compiled again.
        runtime.compile("builtin:devices-api", bytes).unwrap();
        std::fs::write(dir.path().join(name), b"damaged").unwrap();
        runtime.compile("builtin:devices-api", bytes).unwrap();
        assert_ne!(std::fs::read(dir.path().join(name)).unwrap(), b"damaged");
    }
}
