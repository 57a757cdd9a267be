//! Test harness for waedge end-to-end tests.
//!
//! - [`fixture`]: a [`DeviceSession`](waedge::device::DeviceSession) answering from a fixture
//!   file, standing in for a linked phone;
//! - [`server`]: a real waedge gateway on a loopback port, and a small HTTP client for it.

pub mod fixture;
pub mod server;
