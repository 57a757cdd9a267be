//! Errors of the sim's control API.

use crate::world::WorldError;

/// Why starting the sim or one of its control calls failed.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// Binding a listener failed.
    #[error("cannot listen on {addr}: {cause}")]
    Bind {
        /// The address.
        addr: std::net::SocketAddr,
        /// The cause.
        cause: std::io::Error,
    },
    /// Only loopback addresses are allowed.
    #[error("{0} is not a loopback address; wa-sim only listens on 127.0.0.1")]
    NotLoopback(std::net::SocketAddr),
    /// The configured Noise static key is unusable.
    #[error("invalid noise static key: {0}")]
    NoiseKey(String),
    /// The world fixture is invalid.
    #[error(transparent)]
    World(#[from] WorldError),
    /// The phone number is not an account of the world.
    #[error("phone {0} is not an account of the world")]
    UnknownAccount(String),
    /// The QR string is malformed.
    #[error("malformed QR code: {0}")]
    BadQr(String),
    /// No connected client shows this QR code.
    #[error("no connected client is showing this QR code")]
    UnknownQr,
    /// No client asked for a pair code for this phone number.
    #[error("no client is waiting for a pair code for phone {0}")]
    NoPairCodeRequest(String),
    /// The code does not match the one the client displays.
    #[error("the pair code does not match the client's")]
    WrongPairCode,
    /// The client answered the pairing with an error.
    #[error("the client rejected the pairing: {0}")]
    Rejected(String),
    /// The client did not answer in time.
    #[error("timed out waiting for the client: {0}")]
    Timeout(&'static str),
    /// The client went away mid-flow.
    #[error("the client disconnected during {0}")]
    Disconnected(&'static str),
    /// Accounts do not message themselves through the sim.
    #[error("sender and recipient are the same account")]
    SelfMessage,
    /// The world has no group with this id.
    #[error("group {0} is not a group of the world")]
    UnknownGroup(String),
    /// The account is not a member of the group it writes to.
    #[error("{phone} is not a member of group {group}")]
    NotAMember {
        /// The account.
        phone: String,
        /// The group id.
        group: String,
    },
    /// No linked device of the account can receive messages (the sim holds pre-keys of none).
    #[error("no linked device of {0} can receive messages (none has uploaded pre-keys)")]
    NoReceivingDevice(String),
    /// The account did not receive a message with this id.
    #[error("{phone} received no message with id {id}")]
    UnknownMessage {
        /// The account.
        phone: String,
        /// The message id.
        id: String,
    },
    /// A crypto operation failed.
    #[error("crypto: {0}")]
    Crypto(String),
}
