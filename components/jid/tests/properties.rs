//! Properties of identifier normalisation over generated inputs.

use proptest::prelude::*;
use waedge_jid::{Jid, Server};

/// Any text at all, text made of the characters identifiers are made of, or a valid
/// identifier.
fn identifier_like() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "\\s?(\\+|00)?[0-9 ().\\-]{0,20}(:[0-9]{1,6})?(@(s\\.whatsapp\\.net|c\\.us|lid|g\\.us|G\\.US))?\\s?",
        formatted_phone_number().prop_map(|(input, _)| input),
        valid_jid().prop_map(|(input, ..)| input),
    ]
}

/// The digits of a valid E.164 phone number, without the `+`.
fn e164() -> impl Strategy<Value = String> {
    "[1-9][0-9]{6,14}"
}

/// Text the user part of a valid JID on `server` may be, before normalisation.
fn user(server: Server) -> BoxedStrategy<String> {
    match server {
        Server::Phone => {
            (e164(), any::<bool>()).prop_map(|(digits, plus)| if plus { format!("+{digits}") } else { digits }).boxed()
        }
        Server::Lid => "[0-9]{1,24}".boxed(),
        Server::Group => "[0-9]{1,24}(-[0-9]{1,24})?".boxed(),
    }
}

/// Spellings of the domain of `server` accepted on input.
fn domain(server: Server) -> BoxedStrategy<&'static str> {
    match server {
        Server::Phone => prop::sample::select(vec!["s.whatsapp.net", "c.us", "S.WhatsApp.Net", "C.US"]).boxed(),
        Server::Lid => prop::sample::select(vec!["lid", "LID"]).boxed(),
        Server::Group => prop::sample::select(vec!["g.us", "G.us"]).boxed(),
    }
}

/// A valid JID as it may be sent, with its server and the user part and device it should have
/// once normalised.
fn valid_jid() -> impl Strategy<Value = (String, Server, String, Option<u16>)> {
    prop::sample::select(vec![Server::Phone, Server::Lid, Server::Group]).prop_flat_map(|server| {
        let device = if server == Server::Group { Just(None).boxed() } else { any::<Option<u16>>().boxed() };
        (user(server), device, domain(server)).prop_map(move |(user, device, domain)| {
            let input = match device {
                Some(device) => format!("{user}:{device}@{domain}"),
                None => format!("{user}@{domain}"),
            };
            let user = user.trim_start_matches('+').to_owned();
            (input, server, user, device.filter(|&device| device != 0))
        })
    })
}

/// A valid phone number as a person may write it, with its E.164 digits.
fn formatted_phone_number() -> impl Strategy<Value = (String, String)> {
    let prefix = prop::sample::select(vec!["", "+", "00"]);
    let separator = prop::sample::select(vec!["", "", " ", "-", ".", "(", ")", "\u{a0}", " - "]);
    (e164(), prefix, prop::collection::vec(separator, 15)).prop_map(|(digits, prefix, separators)| {
        let mut input = prefix.to_owned();
        for (digit, separator) in digits.chars().zip(separators) {
            input.push(digit);
            input.push_str(separator);
        }
        (input, digits)
    })
}

proptest! {
    #[test]
    fn normalize_never_panics(input in identifier_like()) {
        let _ = Jid::normalize(&input);
    }

    #[test]
    fn normalize_is_idempotent(input in identifier_like()) {
        if let Ok(jid) = Jid::normalize(&input) {
            let text = jid.to_string();
            let again = Jid::normalize(&text);
            prop_assert_eq!(again.as_ref(), Ok(&jid));
            prop_assert_eq!(again.unwrap().to_string(), text);
        }
    }

    #[test]
    fn formatted_phone_numbers_normalise_to_their_digits((input, digits) in formatted_phone_number()) {
        let jid = Jid::normalize(&input);
        prop_assert!(jid.is_ok(), "{:?}: {}", input, jid.unwrap_err());
        prop_assert_eq!(jid.unwrap().to_string(), format!("{digits}@s.whatsapp.net"));
    }

    #[test]
    fn valid_jids_round_trip((input, server, user, device) in valid_jid()) {
        let jid = Jid::parse(&input);
        prop_assert!(jid.is_ok(), "{:?}: {}", input, jid.unwrap_err());
        let jid = jid.unwrap();
        prop_assert_eq!(jid.server(), server);
        prop_assert_eq!(jid.user(), user.as_str());
        prop_assert_eq!(jid.device(), device);
        prop_assert_eq!(Jid::parse(&jid.to_string()), Ok(jid));
    }
}
