//! Running one HTTP request through a component.
//!
//! Every request gets a fresh instance in a fresh store, so nothing one request leaves in
//! memory can reach the next. The store carries the tenant's memory cap and the request's
//! deadline: on every epoch tick the guest yields to tokio (a busy guest cannot starve other
//! requests on the same worker thread) until the deadline, when it is interrupted. A guest
//! parked in a host call is covered too: the whole request is bounded by the same deadline.

use std::time::Instant;

use bytes::Bytes;
use http_body_util::Full;
use hyper::Response;
use tokio::sync::oneshot;
use wasmtime::{Store, Trap, UpdateDeadline};
use wasmtime_wasi_http::WasiHttpView;
use wasmtime_wasi_http::p2::bindings::http::types::{ErrorCode, Scheme};
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;

use super::HandlerComponent;
use super::state::RequestState;
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

/// Serves `request` with a new instance of `component`.
///
/// Returns once the component has set its response head; the body then streams from the
/// still-running instance, under the same deadline.
pub async fn dispatch(
    component: &HandlerComponent,
    state: RequestState,
    metrics: std::sync::Arc<Metrics>,
    request: hyper::Request<Full<Bytes>>,
) -> Result<Response<HyperOutgoingBody>, DispatchError> {
    let deadline = state.deadline();
    let mut store = Store::new(component.pre.engine(), state);
    store.limiter(RequestState::limits);
    store.set_epoch_deadline(1);
    store.epoch_deadline_callback(move |_| {
        Ok(if Instant::now() < deadline { UpdateDeadline::Yield(1) } else { UpdateDeadline::Interrupt })
    });
    let (sender, receiver) = oneshot::channel();
    let mut http = store.data_mut().http();
    let resources = http.new_incoming_request(Scheme::Http, request).and_then(|incoming| {
        let outparam = http.new_response_outparam(sender)?;
        Ok((incoming, outparam))
    });
    let (incoming, outparam) = resources.map_err(|e| DispatchError::Trap(format!("{e:#}")))?;
    let pre = component.pre.clone();
    let name = component.name.clone();
    let task = tokio::spawn(async move {
        let started = Instant::now();
        let proxy = pre.instantiate_async(&mut store).await?;
        metrics.instantiated(&name, started.elapsed());
        proxy.wasi_http_incoming_handler().call_handle(&mut store, incoming, outparam).await
    });
    match tokio::time::timeout_at(deadline.into(), receiver).await {
        Err(_elapsed) => {
            task.abort();
            Err(DispatchError::Timeout)
        }
        Ok(Ok(Ok(response))) => Ok(response),
        Ok(Ok(Err(code))) => Err(DispatchError::Refused(code)),
        Ok(Err(_no_response)) => match task.await {
            Ok(Ok(())) => Err(DispatchError::NoResponse),
            Ok(Err(error)) => Err(classify(error)),
            Err(join) => Err(DispatchError::Trap(join.to_string())),
        },
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
