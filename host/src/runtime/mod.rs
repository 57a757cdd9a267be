//! The component runtime: one wasmtime [`Engine`] for the process, components compiled once
//! into [`HandlerComponent`]s, and a fresh, limited [`Store`](wasmtime::Store) per request.
//!
//! - [`engine`] configures the engine (pooling allocator, epoch interruption) and runs the
//!   single epoch ticker thread.
//! - [`state`] is the per-request store data: WASI contexts and the tenant's capabilities.
//! - [`dispatch`] runs one HTTP request through a component under its deadline.
//! - [`violation`] reports a component hitting a limit.

pub mod builtin;
pub mod dispatch;
pub mod engine;
pub mod state;
pub mod violation;

use std::sync::Arc;

use wasmtime::component::{Component, Linker};
use wasmtime_wasi_http::p2::bindings::ProxyPre;

use crate::capability;
use state::RequestState;

/// The engine and linker every component is compiled and linked with.
#[derive(Clone)]
pub struct Runtime {
    engine: wasmtime::Engine,
    linker: Arc<Linker<RequestState>>,
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
        Ok(Runtime { engine, linker: Arc::new(linker) })
    }

    /// Compiles `bytes` and checks that the component exports `wasi:http/incoming-handler` and
    /// imports nothing the host does not provide. CPU-heavy: call it off the request path.
    pub fn compile(&self, name: &str, bytes: &[u8]) -> Result<HandlerComponent, ComponentError> {
        let refuse = |reason| ComponentError { name: name.to_string(), reason };
        let component = Component::new(&self.engine, bytes).map_err(refuse)?;
        let pre = self.linker.instantiate_pre(&component).map_err(refuse)?;
        let pre = ProxyPre::new(pre).map_err(refuse)?;
        Ok(HandlerComponent { name: name.into(), pre })
    }
}

impl HandlerComponent {
    /// The name the component was compiled under (`builtin:devices-api`, a file path, …).
    pub fn name(&self) -> &Arc<str> {
        &self.name
    }
}
