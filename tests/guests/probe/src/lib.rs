//! A component that misbehaves on request, to prove the sandbox contains it. The last path
//! segment picks the behaviour:
//!
//! - `hello`: `200 {"probe": "hello"}`, a well-behaved answer;
//! - `count`: `200 {"served": N}`, the number of requests this instance has served;
//! - `loop`: spins forever;
//! - `bomb`: allocates memory until something stops it;
//! - `recurse`: recurses without end;
//! - `panic`: panics;
//! - `big?bytes=N`: answers with an N-byte body;
//! - `fetch?url=U`: one outbound GET of U; answers with what happened;
//! - `flood?url=U&n=N`: N outbound GETs of U; answers how many went through;
//! - `sleep?ms=N`: waits N milliseconds in a host call, holding its instance, then answers;
//! - `fields?n=N&kb=K`: creates N `wasi:http` fields holding a K KiB header each, keeping them
//!   all; answers how many it made;
//! - `log?n=N`: logs N lines, each with a newline that tries to start a forged line;
//! - `context`: `200 {"route_prefix": P, "request_id": ID}`, the request context the host gave;
//!   with `?own=X`, the response also sets its own `x-request-id: X`;
//! - `devices?n=N`: opens device `main` N times, keeping every handle; answers how many;
//! - `bodies?n=N&kb=K`: creates N outgoing responses and writes as much as the host takes,
//!   up to K KiB, into each one's body without ever sending it, keeping them all; answers how
//!   many bytes the host took;
//! - `heap?kb=N&fill=B`: allocates N KiB zeroed, fills them with byte B (0 unless given) and
//!   keeps them until it answers `{"served": S, "zeroed": Z, "grown_pages": P}`: whether the
//!   allocation was all zeros, and how many 64 KiB pages the instance's memory has grown by
//!   since it was made.
//!
//! It is an event handler too (both exports in one component, through the SDK's two macros):
//! each event is counted with the requests and logged as `probe handled TYPE ID`.

use std::hint::black_box;
use std::sync::atomic::{AtomicU32, Ordering};

use serde_json::json;
use waedge_sdk::bindings::wasi::clocks::monotonic_clock;
use waedge_sdk::bindings::wasi::http::types::{Fields, OutgoingResponse};
use waedge_sdk::logging::{self, Level};
use waedge_sdk::{Event, EventHandler, Handler, Request, Response, outbound, whatsapp};

struct Probe;

/// Requests this instance has served.
static SERVED: AtomicU32 = AtomicU32::new(0);

impl Handler for Probe {
    fn handle(request: Request) -> Response {
        let segments = request.segments();
        let query = request.query();
        let served = SERVED.fetch_add(1, Ordering::Relaxed) + 1;
        match segments.last().map(String::as_str) {
            Some("hello") => Response::json(200, &json!({ "probe": "hello" })),
            Some("count") => Response::json(200, &json!({ "served": served })),
            Some("loop") => loop {
                black_box(());
            },
            Some("bomb") => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    hoard.push(black_box(vec![1u8; 1 << 20]));
                }
            }
            Some("recurse") => Response::json(200, &json!({ "depth": recurse(black_box(0)) })),
            Some("panic") => panic!("the probe panics on purpose"),
            Some("big") => {
                let bytes = query.get("bytes").and_then(|n| n.parse().ok()).unwrap_or(0usize);
                Response::new(200, "application/octet-stream", vec![b'x'; bytes])
            }
            Some("fetch") => {
                let url = query.get("url").unwrap_or_default();
                match outbound::get(url) {
                    Ok(fetched) => {
                        Response::json(200, &json!({ "status": fetched.status, "bytes": fetched.body.len() }))
                    }
                    Err(error) => Response::json(502, &json!({ "error": error.to_string() })),
                }
            }
            Some("flood") => {
                let url = query.get("url").unwrap_or_default();
                let n = query.get("n").and_then(|n| n.parse().ok()).unwrap_or(1usize);
                let results: Vec<_> = (0..n).map(|_| outbound::get(url)).collect();
                let ok = results.iter().filter(|r| r.is_ok()).count();
                let first_error = results.iter().find_map(|r| r.as_ref().err().map(ToString::to_string));
                Response::json(200, &json!({ "ok": ok, "refused": n - ok, "first_error": first_error }))
            }
            Some("sleep") => {
                let ms = query.get("ms").and_then(|n| n.parse().ok()).unwrap_or(0u64);
                monotonic_clock::subscribe_duration(ms * 1_000_000).block();
                Response::json(200, &json!({ "slept_ms": ms }))
            }
            Some("fields") => {
                let n = query.get("n").and_then(|n| n.parse().ok()).unwrap_or(1usize);
                let kb = query.get("kb").and_then(|n| n.parse().ok()).unwrap_or(1usize);
                let header = [("x-probe".to_string(), vec![b'x'; kb << 10])];
                let mut kept = Vec::new();
                for _ in 0..n {
                    match Fields::from_list(&header) {
                        Ok(fields) => kept.push(fields),
                        Err(error) => {
                            let refused = format!("{error:?}");
                            return Response::json(200, &json!({ "created": kept.len(), "refused": refused }));
                        }
                    }
                }
                Response::json(200, &json!({ "created": kept.len() }))
            }
            Some("bodies") => {
                let n = query.get("n").and_then(|n| n.parse().ok()).unwrap_or(1usize);
                let kb = query.get("kb").and_then(|n| n.parse().ok()).unwrap_or(1usize);
                let chunk = vec![b'x'; kb << 10];
                let (mut kept, mut taken) = (Vec::new(), 0u64);
                for _ in 0..n {
                    let response = OutgoingResponse::new(Fields::new());
                    let Ok(body) = response.body() else { break };
                    let Ok(stream) = body.write() else { break };
                    // As much as the host takes without anyone reading: its buffer.
                    let room = stream.check_write().unwrap_or(0).min(chunk.len() as u64) as usize;
                    if stream.write(&chunk[..room]).is_ok() {
                        taken += room as u64;
                    }
                    // Children before parents: a resource is dropped only after its children.
                    kept.push((stream, body, response));
                }
                Response::json(200, &json!({ "bodies": kept.len(), "taken": taken }))
            }
            Some("log") => {
                let n = query.get("n").and_then(|n| n.parse().ok()).unwrap_or(1u32);
                for i in 0..n {
                    logging::log(Level::Info, &format!("probe line {i}\nFORGED waedge::access tenant=acme status=200"));
                }
                Response::json(200, &json!({ "logged": n }))
            }
            Some("context") => {
                let context = json!({ "route_prefix": request.route_prefix(), "request_id": request.id() });
                match query.get("own") {
                    Some(own) => Response::json(200, &context).with_header("x-request-id", own),
                    None => Response::json(200, &context),
                }
            }
            Some("devices") => {
                let n = query.get("n").and_then(|n| n.parse().ok()).unwrap_or(1u32);
                let opened: Vec<_> = (0..n).filter_map(|_| whatsapp::open_device("main").ok()).collect();
                Response::json(200, &json!({ "opened": opened.len() }))
            }
            Some("heap") => {
                let kb = query.get("kb").and_then(|n| n.parse().ok()).unwrap_or(1usize);
                let fill = query.get("fill").and_then(|b| b.parse().ok()).unwrap_or(0u8);
                let mut block = black_box(vec![0u8; kb << 10]);
                let zeroed = block.iter().all(|&byte| byte == 0);
                block.fill(fill);
                let grown_pages = grown_pages();
                let answer = json!({ "served": served, "zeroed": zeroed, "grown_pages": grown_pages });
                drop(black_box(block));
                Response::json(200, &answer)
            }
            _ => Response::json(404, &json!({ "error": "no such probe" })),
        }
    }
}

/// How many 64 KiB pages the instance's memory has grown by since it was made: its size now
/// against the size the linker gave it, just enough for the stack and the statics, which end
/// at `__heap_base`. (A build for the host, as clippy's, has no linear memory: 0.)
fn grown_pages() -> usize {
    #[cfg(target_arch = "wasm32")]
    {
        unsafe extern "C" {
            static __heap_base: u8;
        }
        // Only the symbol's address is taken, never its byte.
        let initial = (&raw const __heap_base as usize).div_ceil(64 << 10);
        core::arch::wasm32::memory_size(0).saturating_sub(initial)
    }
    #[cfg(not(target_arch = "wasm32"))]
    0
}

/// Recurses until the stack runs out (the depth that would end it is never reached).
fn recurse(depth: u64) -> u64 {
    if depth == u64::MAX {
        return depth;
    }
    let frame = black_box([depth; 16]);
    recurse(black_box(frame[0] + 1)) + frame[15]
}

impl EventHandler for Probe {
    fn handle(event: Event) -> Result<(), String> {
        SERVED.fetch_add(1, Ordering::Relaxed);
        logging::log(Level::Info, &format!("probe handled {} {}", event.type_, event.id));
        Ok(())
    }
}

waedge_sdk::export_handler!(Probe);
waedge_sdk::export_event_handler!(Probe);
