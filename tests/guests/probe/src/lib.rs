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
//! - `flood?url=U&n=N`: N outbound GETs of U; answers how many went through.

use std::hint::black_box;
use std::sync::atomic::{AtomicU32, Ordering};

use serde_json::json;
use waedge_sdk::{Handler, Request, Response, outbound};

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
                    Err(error) => Response::json(502, &json!({ "error": error })),
                }
            }
            Some("flood") => {
                let url = query.get("url").unwrap_or_default();
                let n = query.get("n").and_then(|n| n.parse().ok()).unwrap_or(1usize);
                let results: Vec<Result<outbound::Fetched, String>> = (0..n).map(|_| outbound::get(url)).collect();
                let ok = results.iter().filter(|r| r.is_ok()).count();
                let first_error = results.iter().find_map(|r| r.as_ref().err().cloned());
                Response::json(200, &json!({ "ok": ok, "refused": n - ok, "first_error": first_error }))
            }
            _ => Response::json(404, &json!({ "error": "no such probe" })),
        }
    }
}

/// Recurses until the stack runs out (the depth that would end it is never reached).
fn recurse(depth: u64) -> u64 {
    if depth == u64::MAX {
        return depth;
    }
    let frame = black_box([depth; 16]);
    recurse(black_box(frame[0] + 1)) + frame[15]
}

waedge_sdk::export_handler!(Probe);
