//! What the gateway tells its operator: where its log lines are written ([`log`]), the
//! metrics served on `/metrics` ([`metrics`]) and the reporting of a component that hit a
//! sandbox limit ([`violation`]).
//!
//! It sits below every layer of the request path, which all report into it.

pub mod log;
pub mod metrics;
pub mod violation;
