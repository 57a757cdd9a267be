//! Parse and normalise the WhatsApp identifiers API users send: phone numbers as people write
//! them, and JIDs of contacts (by phone number or LID) and groups.
//!
//! Every accepted identifier becomes a [`Jid`] whose text form is canonical; everything else is
//! rejected with a [`JidError`] saying what is wrong and what to send instead.
//!
//! ```
//! use waedge_jid::{ErrorKind, Jid, Kind};
//!
//! let jid = Jid::normalize("+62 812-3456-7890")?;
//! assert_eq!(jid.to_string(), "6281234567890@s.whatsapp.net");
//! assert_eq!(jid.kind(), Kind::Contact);
//!
//! let device: Jid = "6281234567890:3@c.us".parse()?;
//! assert_eq!(device.to_string(), "6281234567890:3@s.whatsapp.net");
//! assert_eq!(device.without_device(), jid);
//!
//! let error = Jid::normalize("0812 3456 7890").unwrap_err();
//! assert_eq!(error.kind(), ErrorKind::MissingCountryCode);
//! # Ok::<(), waedge_jid::JidError>(())
//! ```

#![deny(missing_docs)]

mod digits;
mod error;
mod jid;
mod phone;

#[cfg(test)]
mod tests;

pub use error::{ErrorKind, JidError};
pub use jid::{Jid, Kind, Server};
