//! Test harness for waedge end-to-end tests.
//!
//! - [`browser`]: headless Chromium over WebDriver;
//! - [`dns`]: a scripted DNS server for outbound calls by name;
//! - [`guests`]: the test components of `tests/guests/` (a hostile probe);
//! - [`host`]: a gateway called in-process, on a runtime of the test's choosing;
//! - [`live`]: a gateway on the real device layer against wa-sim, a WhatsApp server on loopback;
//! - [`log`]: the host's log, for tests that read it;
//! - [`process`]: what the kernel says of a process (its CPU time);
//! - [`fixture`]: a [`DeviceSession`](waedge_device::DeviceSession) answering from a fixture
//!   file, standing in for a linked phone;
//! - [`server`]: a real waedge gateway and admin API on loopback ports, and a small HTTP
//!   client for them;
//! - [`signing`]: request signatures of the example `hmac-auth` plugin;
//! - [`stub`]: a stub HTTP service for outbound calls;
//! - [`tenants`]: the two test tenants most tests start from.

pub mod browser;
pub mod dns;
pub mod fixture;
pub mod guests;
pub mod host;
pub mod live;
pub mod log;
pub mod process;
pub mod server;
pub mod signing;
pub mod stub;
pub mod tenants;
