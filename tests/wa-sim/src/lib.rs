//! wa-sim: a WhatsApp server on loopback for tests.
//!
//! It speaks the real wire protocol (WebSocket, Noise XX/IK, binary XML nodes) so the
//! unmodified `whatsapp-rust` client can log in, link devices with QR or pair codes,
//! and look up users, pictures, business profiles and groups, all answered from a
//! [`World`] fixture. Contacts send texts ([`WaSim::send_text`]); like a real server, the
//! sim keeps every message until the device acknowledges it and delivers it (again) at
//! the device's next login. Texts a client sends to world accounts are decrypted by the
//! devices the sim plays for them and recorded ([`WaSim::received`]), acked, and
//! confirmed by delivery and read receipts ([`WaSim::read`]). Faults (dropped connections,
//! refusals, logouts, replacements, latency, refused messages) can be injected through
//! [`WaSim`] or the admin HTTP endpoint.
#![deny(missing_docs)]

pub mod admin;
pub mod chat;
pub mod conn;
pub mod error;
pub mod faults;
pub mod framing;
pub mod handshake;
pub mod hub;
pub mod inbox;
pub mod keyshare;
pub mod mailbox;
pub mod node;
pub mod noise;
pub mod pairing;
pub mod phone;
pub mod receipts;
pub mod receiving;
pub mod signal;
pub mod sim;
pub mod sim_device;
pub mod stanza;
pub mod wire;
pub mod world;

pub use chat::Sent;
pub use error::SimError;
pub use handshake::Pattern;
pub use inbox::ReceivedText;
pub use sim::{SimConfig, WaSim};
pub use world::{World, WorldError};
