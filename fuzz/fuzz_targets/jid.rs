//! Fuzzes the JID parser (`waedge-jid`) with the properties the crate promises
//! (`components/jid/tests/properties.rs`) as oracles, on any text rather than generated text:
//!
//! - `normalize` is `parse` for text with an `@` and `from_phone_number` otherwise, and
//!   `FromStr` is `normalize`, errors included;
//! - an accepted identifier's text form is canonical: it parses back to the same JID, and
//!   normalising it again changes nothing;
//! - a JID's parts obey the rules of its server (digits, lengths, no device on a group);
//! - a phone number keeps exactly the digits that were sent (less a leading `00`);
//! - `with_device` and `without_device` round-trip through the text form.

#![no_main]

use libfuzzer_sys::fuzz_target;
use waedge_jid::{ErrorKind, Jid, Kind, Server};

fuzz_target!(|data: &[u8]| {
    let Ok(input) = std::str::from_utf8(data) else { return };
    let parsed = Jid::parse(input);
    let phone = Jid::from_phone_number(input);
    let normalized = Jid::normalize(input);
    let expected = if input.contains('@') { &parsed } else { &phone };
    assert_eq!(&normalized, expected, "normalize({input:?}) takes the wrong reading");
    assert_eq!(input.parse::<Jid>(), normalized, "FromStr is normalize");
    if let Err(error) = &parsed {
        assert_ne!(error.kind(), ErrorKind::NotAPhoneNumber, "{input:?}: parse expects a JID");
        assert!(!error.to_string().is_empty(), "{input:?}: an error says what is wrong");
    }
    if let Err(error) = &phone {
        assert_ne!(error.kind(), ErrorKind::NotAJid, "{input:?}: from_phone_number expects a phone number");
        assert!(!error.to_string().is_empty(), "{input:?}: an error says what is wrong");
    }
    if let Ok(jid) = &phone {
        assert_phone_keeps_its_digits(input, jid);
    }
    if let Ok(jid) = &normalized {
        assert_canonical(jid);
        // Devices to move to: the main one, a few others and one that depends on the input.
        for device in [0, 1, 99, u16::MAX, data.len() as u16] {
            assert_device_round_trip(jid, device);
        }
    }
});

/// The text form of `jid` is canonical and its parts follow its server's rules.
fn assert_canonical(jid: &Jid) {
    let text = jid.to_string();
    assert_eq!(Jid::parse(&text).as_ref(), Ok(jid), "{text:?} parses back");
    assert_eq!(Jid::normalize(&text).as_ref(), Ok(jid), "normalising {text:?} again changes nothing");
    let device = jid.device().map(|device| format!(":{device}")).unwrap_or_default();
    assert_eq!(text, format!("{}{device}@{}", jid.user(), jid.server().domain()));
    assert_ne!(jid.device(), Some(0), "{text:?}: device 0 is written without a suffix");
    assert_eq!(jid.kind() == Kind::Group, jid.is_group());
    assert_eq!(
        [jid.is_phone(), jid.is_lid(), jid.is_group()],
        [Server::Phone, Server::Lid, Server::Group].map(|server| jid.server() == server)
    );
    match jid.server() {
        Server::Phone => assert_digits(jid.user(), 7..=15, false),
        Server::Lid => assert_digits(jid.user(), 1..=24, true),
        Server::Group => {
            assert_eq!(jid.device(), None, "{text:?}: groups have no devices");
            jid.user().splitn(2, '-').for_each(|part| assert_digits(part, 1..=24, true));
        }
    }
}

/// `digits` is a run of ASCII digits of a length in `len`, starting with 0 only if allowed.
fn assert_digits(digits: &str, len: std::ops::RangeInclusive<usize>, leading_zero: bool) {
    assert!(digits.bytes().all(|b| b.is_ascii_digit()), "{digits:?} is digits only");
    assert!(len.contains(&digits.len()), "{digits:?} has {len:?} digits");
    assert!(leading_zero || !digits.starts_with('0'), "{digits:?} has its country code first");
}

/// A phone number read from `input` keeps the digits that were sent, less an international
/// `00` prefix written instead of `+`.
fn assert_phone_keeps_its_digits(input: &str, jid: &Jid) {
    assert_eq!((jid.server(), jid.device()), (Server::Phone, None));
    let sent: String = input.chars().filter(char::is_ascii_digit).collect();
    let international = !input.trim().starts_with('+') && sent == format!("00{}", jid.user());
    assert!(sent == jid.user() || international, "{input:?} became {jid}");
}

/// Moving `jid` to `device` and back is lossless and survives the text form.
fn assert_device_round_trip(jid: &Jid, device: u16) {
    let moved = jid.with_device(device);
    let expected = (device != 0 && !jid.is_group()).then_some(device);
    assert_eq!(moved.device(), expected, "{jid} on device {device}");
    assert_eq!((moved.user(), moved.server()), (jid.user(), jid.server()));
    assert_eq!(moved.without_device(), jid.without_device());
    assert_eq!(moved.without_device().device(), None);
    assert_eq!(Jid::parse(&moved.to_string()), Ok(moved));
}
