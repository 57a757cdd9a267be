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
use wasmtime::component::ResourceTableError;
use wasmtime::{PoolConcurrencyLimitError, Trap};
use wasmtime_wasi_http::p2::bindings::http::types::{ErrorCode, Scheme};
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;
use wasmtime_wasi_http::{FieldMapError, WasiHttpView};

use super::capacity::Slot;
use super::cpu::metered;
use super::footprint::Exceeded;
use super::limiter::MemoryLimitExceeded;
use super::pool::{Instance, InstancePool};
use super::state::{MAX_FIELDS_BYTES, MAX_RESOURCES};
use crate::capability::Capabilities;
use crate::capability::outbound::OutboundPolicy;
use crate::telemetry::metrics::Metrics;

/// Why a component produced no response.
#[derive(Debug, thiserror::Error)]
pub enum DispatchError {
    /// The request's wall-clock budget ran out.
    #[error("the component did not answer within the request deadline")]
    Timeout,
    /// The component hit its memory cap.
    #[error("the component exceeded its memory limit")]
    MemoryLimit,
    /// The component held more resource handles (fields, streams, requests) at once than the
    /// host allows a request.
    #[error("the component held more than {MAX_RESOURCES} resource handles (fields, streams, requests) at once")]
    ResourceLimit,
    /// The component built headers or trailers larger than the host allows.
    #[error("the component built headers or trailers larger than {MAX_FIELDS_BYTES} bytes")]
    FieldsTooLarge,
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
    /// The host had no instance slot for the request: the tenant's share of the instance
    /// pool, or the pool itself, is in use. Not the component's fault.
    #[error("the host is at capacity: {0}; retry shortly")]
    Capacity(String),
}

impl DispatchError {
    /// The tenant limit the failure hit, as a violation names it (`trap` for a failure of the
    /// component's own); `None` for the host's capacity, which is no violation.
    pub fn limit(&self) -> Option<&'static str> {
        Some(match self {
            DispatchError::Timeout => "request_timeout_ms",
            DispatchError::MemoryLimit => "memory_mib",
            DispatchError::ResourceLimit | DispatchError::FieldsTooLarge => "host_resources",
            DispatchError::InstanceLimit => "max_instances",
            DispatchError::TableLimit => "max_tables",
            DispatchError::ResponseTooLarge(_) => "max_response_body_bytes",
            DispatchError::Trap(_) | DispatchError::NoResponse | DispatchError::Refused(_) => "trap",
            DispatchError::Capacity(_) => return None,
        })
    }
}

/// Serves `request` with an instance from `pool`, in the instance slot `slot` of the
/// tenant's share (see [`Share::take`](super::capacity::Share::take)), scoped to
/// `capabilities` and `outbound`, and reads the component's whole response body, up to `max_body` bytes: a component that
/// sends too much, or stalls, gets a clean error instead of a cut-off response.
///
/// The call and the reading of its response run in this one future: no task is spawned and
/// nothing crosses threads, and dropping the future (the client went away) drops the
/// instance.
pub async fn dispatch(
    pool: &InstancePool,
    slot: Slot,
    capabilities: Capabilities,
    outbound: OutboundPolicy,
    metrics: &Metrics,
    request: hyper::Request<Full<Bytes>>,
    max_body: usize,
) -> Result<Response<Bytes>, DispatchError> {
    let deadline = capabilities.deadline;
    // Bound before the instance, so it is returned after the instance is dropped or kept.
    let _slot = slot;
    let Some(pre) = &pool.component().http else {
        return Err(DispatchError::Trap("the component exports no `wasi:http/incoming-handler`".into()));
    };
    let mut instance = start(pool, capabilities, outbound).await?;
    let (sender, receiver) = oneshot::channel();
    let mut http = instance.store.data_mut().http();
    let resources = http.new_incoming_request(Scheme::Http, request).and_then(|incoming| {
        let outparam = http.new_response_outparam(sender)?;
        Ok((incoming, outparam))
    });
    let (incoming, outparam) = resources.map_err(|e| DispatchError::Trap(format!("{e:#}")))?;
    let meter = instance.meter.clone();
    let call = metered(&meter, pool.share().cpu(), async {
        let proxy = match instance.export.take() {
            Some(proxy) => proxy,
            None => {
                let started = Instant::now();
                let proxy = pre.instantiate_async(&mut instance.store).await?;
                metrics.instantiated(pool.component().name(), started.elapsed());
                proxy
            }
        };
        proxy.wasi_http_incoming_handler().call_handle(&mut instance.store, incoming, outparam).await?;
        wasmtime::Result::Ok(proxy)
    });
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
    instance.export = Some(proxy);
    pool.put(instance);
    Ok(response)
}

/// An instance of `pool` for a call under `capabilities` and `outbound`, its epoch deadline
/// armed, once the component's footprint fits the tenant's limits and a tenant over its CPU
/// budget has waited — before its guest runs at all, not only at its ticks.
pub(super) async fn start<E>(
    pool: &InstancePool<E>,
    capabilities: Capabilities,
    outbound: OutboundPolicy,
) -> Result<Instance<E>, DispatchError> {
    let deadline = capabilities.deadline;
    match pool.component().footprint().exceeds(pool.limits()) {
        Some(Exceeded::Instances) => return Err(DispatchError::InstanceLimit),
        Some(Exceeded::Tables) => return Err(DispatchError::TableLimit),
        None => {}
    }
    let now = Instant::now();
    let wait = pool.share().cpu().wait(now, deadline);
    if !wait.is_zero() {
        tokio::time::sleep(wait).await;
        if now + wait >= deadline {
            return Err(DispatchError::Timeout);
        }
    }
    let mut instance = pool.take(capabilities, outbound);
    instance.store.set_epoch_deadline(1);
    Ok(instance)
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

/// What a failed call into a component means.
pub(super) fn classify(error: wasmtime::Error) -> DispatchError {
    if error.downcast_ref::<Trap>() == Some(&Trap::Interrupt) {
        return DispatchError::Timeout;
    }
    if let Some(full) = error.downcast_ref::<PoolConcurrencyLimitError>() {
        return DispatchError::Capacity(format!("the instance pool is full ({full})"));
    }
    if error.downcast_ref::<MemoryLimitExceeded>().is_some() {
        return DispatchError::MemoryLimit;
    }
    if matches!(error.downcast_ref::<ResourceTableError>(), Some(ResourceTableError::Full)) {
        return DispatchError::ResourceLimit;
    }
    if matches!(
        error.downcast_ref::<FieldMapError>(),
        Some(FieldMapError::TotalSizeTooBig | FieldMapError::TooManyFields)
    ) {
        return DispatchError::FieldsTooLarge;
    }
    // Instance and table counts are checked before instantiation (see `footprint`). A few
    // shapes escape that count: the adapter modules wasmtime generates between the
    // sub-components of a composed component, and modules a nested component imports from its
    // parent. For those only wasmtime's own check (the same caps, from the store's limiter)
    // knows, and only its message says which cap it was.
    let text = format!("{error:#}");
    if text.contains("instance count too high") {
        DispatchError::InstanceLimit
    } else if text.contains("table count too high") {
        DispatchError::TableLimit
    } else {
        DispatchError::Trap(text.lines().next().unwrap_or_default().to_string())
    }
}

#[cfg(test)]
mod tests {
    use wasmtime::Store;
    use wasmtime::component::{Component, Linker};

    use super::super::limiter::Limiter;
    use super::*;

    /// The smallest component: no imports, no exports, nothing inside.
    const EMPTY_COMPONENT: &[u8] = b"\0asm\x0d\0\x01\0";

    /// A component of `memories` core instances, each of a module defining one memory of
    /// `pages` 64 KiB pages (the pool allows one memory per module, four per component).
    fn component_with_memories(memories: u8, pages: u8) -> Vec<u8> {
        let module = [b"\0asm\x01\0\0\0".as_slice(), &[0x05, 0x03, 0x01, 0x00, pages]].concat();
        let mut component = b"\0asm\x0d\0\x01\0".to_vec();
        for _ in 0..memories {
            component.extend([0x01, module.len() as u8]);
            component.extend(&module);
        }
        // The core instance section: instantiate each module with no arguments.
        component.extend([0x02, 1 + 3 * memories, memories]);
        (0..memories).for_each(|index| component.extend([0x00, index, 0x00]));
        component
    }

    #[tokio::test]
    async fn memory_mib_caps_all_of_an_instances_memories_together() {
        let engine = super::super::engine::new(4).unwrap();
        let limits = crate::limits::Limits { memory_mib: 2, ..Default::default() };
        let linker = Linker::<Limiter>::new(&engine);
        let instantiate = async |bytes: Vec<u8>| {
            let component = Component::new(&engine, bytes).unwrap();
            let mut store = Store::new(&engine, Limiter::new(&limits));
            store.limiter(|limiter| limiter);
            linker.instantiate_async(&mut store, &component).await.map(drop)
        };
        // 20 pages are 1.25 MiB, 62.5% of memory_mib: one memory fits, two do not.
        instantiate(component_with_memories(1, 20)).await.expect("one memory under memory_mib");
        let over = instantiate(component_with_memories(2, 20)).await.unwrap_err();
        assert!(matches!(classify(over), DispatchError::MemoryLimit));
    }

    /// A module a nested component imports from its parent escapes the footprint's count;
    /// wasmtime's own check stops it, and the host still names the cap.
    #[tokio::test]
    async fn what_the_footprint_misses_is_still_named_as_its_limit() {
        let engine = super::super::engine::new(4).unwrap();
        let bytes = wat::parse_str(
            r#"(component
                 (core module $m)
                 (component $c
                   (import "m" (core module $i))
                   (core instance (instantiate $i)))
                 (instance (instantiate $c (with "m" (core module $m))))
                 (instance (instantiate $c (with "m" (core module $m)))))"#,
        )
        .unwrap();
        let limits = crate::limits::Limits { max_instances: 1, ..Default::default() };
        assert_eq!(super::super::footprint::Footprint::of(&bytes).unwrap().exceeds(&limits), None);
        let component = Component::new(&engine, bytes).unwrap();
        let mut store = Store::new(&engine, Limiter::new(&limits));
        store.limiter(|limiter| limiter);
        let refused = Linker::<Limiter>::new(&engine).instantiate_async(&mut store, &component).await.unwrap_err();
        assert!(matches!(classify(refused), DispatchError::InstanceLimit));
    }

    #[tokio::test]
    async fn a_full_pool_is_a_capacity_error_not_a_trap() {
        let engine = super::super::engine::new(1).unwrap();
        let component = Component::new(&engine, EMPTY_COMPONENT).unwrap();
        let linker = Linker::<()>::new(&engine);
        let mut holder = Store::new(&engine, ());
        linker.instantiate_async(&mut holder, &component).await.expect("the one slot is free");
        let full = linker.instantiate_async(&mut Store::new(&engine, ()), &component).await.unwrap_err();
        match classify(full) {
            DispatchError::Capacity(why) => assert!(why.contains("maximum concurrent limit of 1"), "{why}"),
            other => panic!("a full pool is the host's capacity, not the component's failure: {other:?}"),
        }
    }
}
