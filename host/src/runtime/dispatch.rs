//! Running one HTTP request through a component.
//!
//! The request gets an instance from the tenant's [`InstancePool`]: a warm one that served
//! earlier requests of the same tenant, or a new one. The store carries the tenant's memory
//! cap and the request's deadline: on every epoch tick the guest yields to tokio (a busy
//! guest cannot starve other requests on the same worker thread) until the deadline, when it
//! is interrupted. A guest parked in a host call is covered too: the whole request is bounded
//! by the same deadline. Only an instance whose call returned cleanly, with its response read,
//! goes back to the pool.

use std::time::Instant;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::Response;
use tokio::sync::oneshot;
use wasmtime::Trap;
use wasmtime_wasi_http::WasiHttpView;
use wasmtime_wasi_http::p2::bindings::http::types::{ErrorCode, Scheme};
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;

use super::pool::InstancePool;
use crate::capability::Capabilities;
use crate::capability::outbound::OutboundPolicy;
use crate::metrics::Metrics;

/// Why a component produced no response.
#[derive(Debug, thiserror::Error)]
pub enum DispatchError {
    /// The request's wall-clock budget ran out.
    #[error("the component did not answer within the request deadline")]
    Timeout,
    /// The component hit its memory cap.
    #[error("the component exceeded its memory limit")]
    MemoryLimit,
    /// The component trapped (a panic, an `unreachable`, a failed host call).
    #[error("the component failed: {0}")]
    Trap(String),
    /// The component needs more Wasm instances than the tenant allows.
    #[error("the component needs more Wasm instances than this tenant allows (max_instances)")]
    InstanceLimit,
    /// The component needs more Wasm tables than the tenant allows.
    #[error("the component needs more Wasm tables than this tenant allows (max_tables)")]
    TableLimit,
    /// The component's response body was larger than the tenant allows.
    #[error("the component's response body was larger than {0} bytes")]
    ResponseTooLarge(usize),
    /// The component returned without setting a response.
    #[error("the component returned without a response")]
    NoResponse,
    /// The component answered with a `wasi:http` error instead of a response.
    #[error("the component answered with an error: {0:?}")]
    Refused(ErrorCode),
}

/// Serves `request` with an instance from `pool`, scoped to `capabilities` and `outbound`,
/// and reads the component's whole response body, up to `max_body` bytes: a component that
/// sends too much, or stalls, gets a clean error instead of a cut-off response.
///
/// The call and the reading of its response run in this one future: no task is spawned and
/// nothing crosses threads, and dropping the future (the client went away) drops the
/// instance.
pub async fn dispatch(
    pool: &InstancePool,
    capabilities: Capabilities,
    outbound: OutboundPolicy,
    metrics: &Metrics,
    request: hyper::Request<Full<Bytes>>,
    max_body: usize,
) -> Result<Response<Bytes>, DispatchError> {
    let deadline = capabilities.deadline;
    let mut instance = pool.take(capabilities, outbound);
    instance.store.set_epoch_deadline(1);
    let (sender, receiver) = oneshot::channel();
    let mut http = instance.store.data_mut().http();
    let resources = http.new_incoming_request(Scheme::Http, request).and_then(|incoming| {
        let outparam = http.new_response_outparam(sender)?;
        Ok((incoming, outparam))
    });
    let (incoming, outparam) = resources.map_err(|e| DispatchError::Trap(format!("{e:#}")))?;
    let call = async {
        let proxy = match instance.proxy.take() {
            Some(proxy) => proxy,
            None => {
                let started = Instant::now();
                let proxy = pool.component().pre.instantiate_async(&mut instance.store).await?;
                metrics.instantiated(pool.component().name(), started.elapsed());
                proxy
            }
        };
        proxy.wasi_http_incoming_handler().call_handle(&mut instance.store, incoming, outparam).await?;
        wasmtime::Result::Ok(proxy)
    };
    let response = async {
        match receiver.await {
            Ok(Ok(response)) => read_body(response, max_body).await.map(Some),
            Ok(Err(code)) => Err(DispatchError::Refused(code)),
            // The call ended without answering; its result says why.
            Err(_no_response) => Ok(None),
        }
    };
    // The response is read while the call runs (a large body needs both), but the call decides:
    // when it fails, nothing else is waited for; when it returns, the response was set or
    // never will be.
    let served = async {
        tokio::pin!(call, response);
        let mut answered = None;
        let called = loop {
            tokio::select! {
                called = &mut call => break called,
                answer = &mut response, if answered.is_none() => answered = Some(answer?),
            }
        };
        let proxy = called.map_err(classify)?;
        let answer = match answered {
            Some(answer) => answer,
            None => response.await?,
        };
        Ok((proxy, answer))
    };
    let (proxy, answer) =
        tokio::time::timeout_at(deadline.into(), served).await.map_err(|_elapsed| DispatchError::Timeout)??;
    let response = answer.ok_or(DispatchError::NoResponse)?;
    instance.proxy = Some(proxy);
    pool.put(instance);
    Ok(response)
}

/// The response with its body read whole, up to `max_body` bytes.
async fn read_body(response: Response<HyperOutgoingBody>, max_body: usize) -> Result<Response<Bytes>, DispatchError> {
    let (parts, body) = response.into_parts();
    match Limited::new(body, max_body).collect().await {
        Ok(collected) => Ok(Response::from_parts(parts, collected.to_bytes())),
        Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => Err(DispatchError::ResponseTooLarge(max_body)),
        Err(e) => Err(DispatchError::Trap(format!("while sending its response body: {e}"))),
    }
}

fn classify(error: wasmtime::Error) -> DispatchError {
    if error.downcast_ref::<Trap>() == Some(&Trap::Interrupt) {
        return DispatchError::Timeout;
    }
    let text = format!("{error:#}");
    if text.contains("forcing trap when growing memory") || text.contains("memory limit") {
        DispatchError::MemoryLimit
    } else if text.contains("instance count too high") || text.contains("memory count too high") {
        DispatchError::InstanceLimit
    } else if text.contains("table count too high") || text.contains("table elements") {
        DispatchError::TableLimit
    } else {
        DispatchError::Trap(first_line(&text))
    }
}

fn first_line(text: &str) -> String {
    text.lines().next().unwrap_or_default().to_string()
}
