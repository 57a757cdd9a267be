//! What the gateway tells its operator besides its log: the metrics served on `/metrics`
//! ([`metrics`]) and the reporting of a component that hit a sandbox limit ([`violation`]).
//!
//! It sits below every layer of the request path, which all report into it.

pub mod metrics;
pub mod violation;
