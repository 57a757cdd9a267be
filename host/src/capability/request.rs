//! `waedge:gateway/request-context`: what a component may know of the request it serves.

use std::sync::Arc;
use waedge_contract::request_context::Host;

use super::CapabilitiesView;

/// The request's id and the prefix of the route it took.
#[derive(Debug, Clone)]
pub struct RequestContext {
    /// The host's id for the request (in `x-request-id` and the request's log lines).
    pub id: Arc<str>,
    /// The prefix of the route the request matched.
    pub route_prefix: Arc<str>,
}

impl RequestContext {
    /// A new request id: 128 random bits in hex, so ids never repeat in practice and say
    /// nothing about the gateway (no counter, no clock).
    pub fn new_id() -> Arc<str> {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let bits = fastrand::u128(..);
        // Written in place: one allocation per request instead of formatting's two.
        let mut id = [0u8; 32];
        for (i, digit) in id.iter_mut().enumerate() {
            *digit = HEX[(bits >> (124 - 4 * i)) as usize & 0xf];
        }
        Arc::from(std::str::from_utf8(&id).expect("hex digits are ASCII"))
    }
}

impl Host for CapabilitiesView<'_> {
    async fn route_prefix(&mut self) -> String {
        self.capabilities.request.route_prefix.to_string()
    }

    async fn request_id(&mut self) -> String {
        self.capabilities.request.id.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_id_is_its_128_random_bits_in_32_lowercase_hex_digits() {
        for seed in [1, 2, 0x5eed] {
            fastrand::seed(seed);
            let id = RequestContext::new_id();
            fastrand::seed(seed);
            assert_eq!(&*id, format!("{:032x}", fastrand::u128(..)));
        }
        assert_ne!(RequestContext::new_id(), RequestContext::new_id());
    }
}
