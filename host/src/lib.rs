//! waedge: a WhatsApp edge gateway.
//!
//! The host keeps WhatsApp device sessions open and serves an HTTP API over them; everything
//! that is policy about a request — parsing, authentication, identifier normalisation and the
//! shape of the response — runs in sandboxed WebAssembly components, one set per tenant.
//!
//! The modules follow the path of a request:
//!
//! - [`server`]: the hyper listener; turns connections into calls to the [`Gateway`].
//! - [`tenancy`]: tenants, their users, devices and route tables; picks the tenant and the
//!   component for a request.
//! - [`runtime`]: the wasmtime engine, compiled components, per-request stores with their
//!   limits, and the dispatch of one request into a component.
//! - [`capability`]: the host side of the WIT interfaces a component imports (`whatsapp`,
//!   `auth`, `config`, `logging`, outbound HTTP), each scoped to the calling tenant.
//! - [`config`]: the TOML configuration file.
//! - [`telemetry`]: the metrics and the sandbox-violation reports every layer writes to.
//! - [`forward`]: on a node of a cluster, device calls forwarded to the node running the
//!   device, and the cluster listener that answers them.
//! - [`webhooks`]: the delivery of tenants' events from the outbox to their endpoints, through
//!   the same outbound rules as components' HTTP.
//! - [`admin`]: the admin API on its own listener; [`qr`] serves it.
//! - [`cli`]: the `waedge` command, the composition root of `waedge serve`.
//!
//! Below the host, in crates of their own: `waedge_device` (device sessions — the
//! `DeviceSession` trait, the TTL cache in front of it, and the `whatsapp-rust`
//! implementation), `waedge_store` (the SQLite store of tenants, users, tokens, devices and
//! routes) and `waedge_contract` (the contract's bindings).
#![deny(missing_docs)]

pub mod admin;
pub mod app;
pub mod bearer;
#[cfg(feature = "bench")]
pub mod bench;
pub mod body;
pub mod capability;
pub mod cli;
pub mod config;
pub mod forward;
pub mod gateway;
pub mod limits;
pub mod memory;
pub mod qr;
pub mod rate;
pub mod runtime;
pub mod server;
pub mod telemetry;
pub mod tenancy;
pub mod webhooks;

pub use gateway::Gateway;
