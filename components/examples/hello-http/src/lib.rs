//! A component of the standard `wasi:http/proxy` shape and nothing else: it imports only
//! `wasi:http` (and the `wasi:io` streams it needs) and answers every request with
//! `200 Hello, world!`. Because it uses no waedge import, `wasmtime serve` runs it as it is,
//! which makes it the common ground of the benchmark comparing a waedge route with
//! `wasmtime serve` (`host/benches/load/serve.rs`).

#[allow(missing_docs, reason = "generated code")]
mod bindings {
    wit_bindgen::generate!({
        inline: "package example:hello-http;
                 world hello-http { export wasi:http/incoming-handler@0.2.12; }",
        path: "../../../wit",
        generate_all,
    });
}

use bindings::exports::wasi::http::incoming_handler::Guest;
use bindings::wasi::http::types::{Fields, IncomingRequest, OutgoingBody, OutgoingResponse, ResponseOutparam};

/// What every request gets.
const GREETING: &[u8] = b"Hello, world!\n";

struct HelloHttp;

impl Guest for HelloHttp {
    fn handle(_request: IncomingRequest, out: ResponseOutparam) {
        let headers =
            Fields::from_list(&[("content-type".to_string(), b"text/plain".to_vec())]).expect("a valid header");
        let response = OutgoingResponse::new(headers);
        let body = response.body().expect("the body of a new response");
        ResponseOutparam::set(out, Ok(response));
        let stream = body.write().expect("the body's stream");
        stream.blocking_write_and_flush(GREETING).expect("a body of 14 bytes fits one write");
        drop(stream);
        OutgoingBody::finish(body, None).expect("a finished body");
    }
}

bindings::export!(HelloHttp with_types_in bindings);
