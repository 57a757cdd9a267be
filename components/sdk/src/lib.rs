//! The waedge guest SDK: write a waedge request handler in a few lines of Rust.
//!
//! A handler is a WebAssembly component that exports the standard
//! `wasi:http/incoming-handler` and imports the host's `waedge:gateway` interfaces (see
//! `wit/gateway.wit`, world `handler`). This crate hides the streaming plumbing of `wasi:http`:
//! a handler receives a whole [`Request`] and returns a whole [`Response`].
//!
//! ```no_run
//! use waedge_sdk::{Handler, Request, Response, whatsapp};
//!
//! struct Hello;
//!
//! impl Handler for Hello {
//!     fn handle(request: Request) -> Response {
//!         let devices = whatsapp::list_devices();
//!         Response::json(200, &serde_json::json!({
//!             "path": request.route_path(),
//!             "devices": devices.len(),
//!         }))
//!     }
//! }
//!
//! waedge_sdk::export_handler!(Hello);
//! ```
//!
//! Build it for `wasm32-unknown-unknown` and turn the core module into a component with
//! `wasm-tools component new` (or let the waedge workspace build do both); or build it with
//! `cargo build --target wasm32-wasip2`, whose output is already a component targeting the
//! `handler` world.
//!
//! An event handler (world `event-handler`) implements [`EventHandler`] and exports it with
//! [`export_event_handler!`]; a component may export both.
#![deny(missing_docs)]

mod authentication;
pub mod config;
mod error;
mod events;
#[cfg(all(feature = "allocator", target_arch = "wasm32", not(target_feature = "atomics")))]
mod heap;
mod io;
pub mod logging;
mod lookup;
mod names;
pub mod outbound;
pub mod query;
mod request;
mod response;
mod router;
mod time;

/// The `http` crate, whose request and response types [`Request`] and [`Response`] convert
/// to and from (`TryFrom`/`From`): the version this crate was built with.
pub use http;

/// Bindings generated from `wit/gateway.wit` (world `platform`: everything the host offers),
/// for components that need more than this crate wraps: raw `wasi:http` types,
/// `wasi:config/store` as `bindings::wasi::config::store`, `wasi:logging` as
/// `bindings::wasi::logging::logging`.
///
/// The exports are bound apart ([`http_export`], [`events_export`]), each with the imports it
/// shares taken from here: a component embeds the export its macro names
/// ([`export_handler!`], [`export_event_handler!`]), either or both, and nothing else.
#[allow(missing_docs, reason = "generated code")]
pub mod bindings {
    wit_bindgen::generate!({
        world: "platform",
        path: "../../wit",
        generate_all,
    });
}

/// The `wasi:http/incoming-handler` export, for [`export_handler!`].
#[doc(hidden)]
#[allow(missing_docs, reason = "generated code")]
pub mod http_export {
    wit_bindgen::generate!({
        inline: "package waedge:sdk-http;
                 world http-export { export wasi:http/incoming-handler@0.2.12; }",
        path: "../../wit",
        with: {
            "wasi:http/types@0.2.12": crate::bindings::wasi::http::types,
            "wasi:io/error@0.2.12": crate::bindings::wasi::io::error,
            "wasi:io/poll@0.2.12": crate::bindings::wasi::io::poll,
            "wasi:io/streams@0.2.12": crate::bindings::wasi::io::streams,
            "wasi:clocks/monotonic-clock@0.2.12": crate::bindings::wasi::clocks::monotonic_clock,
        },
        pub_export_macro: true,
        default_bindings_module: "waedge_sdk::http_export",
    });
}

/// The `waedge:gateway/events` export, for [`export_event_handler!`].
#[doc(hidden)]
#[allow(missing_docs, reason = "generated code")]
pub mod events_export {
    wit_bindgen::generate!({
        inline: "package waedge:sdk-events;
                 world events-export { export waedge:gateway/events@0.2.3; }",
        path: "../../wit",
        pub_export_macro: true,
        default_bindings_module: "waedge_sdk::events_export",
    });
}

pub use authentication::{authenticate, require_device};
pub use bindings::waedge::gateway::auth::Principal;
pub use bindings::waedge::gateway::types::{
    BusinessCategory, BusinessHours, BusinessProfile, Contact, ContactProfile, DayOfWeek, DeviceState, DeviceStatus,
    Error, Group, LidMapping, LidVerification, LidVerificationRequest, LidVerificationState, MessageStatus, OnWhatsapp,
    OpeningMode, OutgoingText, ProfileExtras, ProfilePicture, SendOutcome, SentMessage, UserInfo, VerifiedLink,
};
pub use bindings::waedge::gateway::whatsapp::Device;
pub use bindings::waedge::gateway::{auth, whatsapp};
pub use error::ErrorClass;
pub use events::{Event, EventHandler, ReceivedText};
pub use lookup::{user_info, user_jid};
pub use query::Query;
pub use request::Request;
pub use response::Response;
pub use router::{Params, Router};
pub use time::{Timestamp, now};

/// A waedge request handler: one call per HTTP request, with the whole request in hand.
///
/// `handle` takes no `self`: the host reuses an instance for up to `requests_per_instance`
/// requests of one tenant, so what lives between requests lives in statics, and lives as long
/// as the instance does.
pub trait Handler {
    /// Answers one request.
    fn handle(request: Request) -> Response;
}

/// Serves one `wasi:http` request with handler `H`. Used by [`export_handler!`].
#[doc(hidden)]
pub fn serve<H: Handler>(
    incoming: bindings::wasi::http::types::IncomingRequest,
    out: bindings::wasi::http::types::ResponseOutparam,
) {
    let response = match Request::read(incoming) {
        Ok(request) => H::handle(request),
        Err(message) => ErrorClass::new(400, "BAD_REQUEST", message).into_response(),
    };
    response.send(out);
}

/// Exports a [`Handler`] as the component's `wasi:http/incoming-handler`.
#[macro_export]
macro_rules! export_handler {
    ($handler:ty) => {
        struct __WaedgeIncomingHandler;

        impl $crate::http_export::exports::wasi::http::incoming_handler::Guest
            for __WaedgeIncomingHandler
        {
            fn handle(
                request: $crate::bindings::wasi::http::types::IncomingRequest,
                response_out: $crate::bindings::wasi::http::types::ResponseOutparam,
            ) {
                $crate::serve::<$handler>(request, response_out)
            }
        }

        $crate::http_export::export!(__WaedgeIncomingHandler with_types_in $crate::http_export);
    };
}
