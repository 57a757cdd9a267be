use crate::{ErrorKind, Jid, JidError, Kind, Server};

/// The canonical text `input` normalises to.
fn canonical(input: &str) -> String {
    Jid::normalize(input).unwrap_or_else(|error| panic!("{input:?} was rejected: {error}")).to_string()
}

/// Asserts that `result` is an error of `kind` whose message mentions each of `parts` and says
/// what to send instead.
fn assert_rejected(result: Result<Jid, JidError>, kind: ErrorKind, parts: &[&str]) {
    let error = match result {
        Ok(jid) => panic!("accepted as {jid}, expected {kind:?}"),
        Err(error) => error,
    };
    let message = error.to_string();
    assert_eq!(error.kind(), kind, "{message}");
    for part in parts.iter().chain(&["send "]) {
        assert!(message.contains(part), "{message:?} does not mention {part:?}");
    }
}

/// Asserts that `normalize` rejects each input with `kind`, mentioning the paired text.
fn assert_all_rejected(kind: ErrorKind, cases: &[(&str, &str)]) {
    for (input, part) in cases {
        assert_rejected(Jid::normalize(input), kind, &[part]);
    }
}

#[test]
fn phone_numbers_in_international_format() {
    for (input, expected) in [
        ("+62 812-3456-7890", "6281234567890@s.whatsapp.net"),
        ("0062 812 3456 7890", "6281234567890@s.whatsapp.net"),
        ("6281234567890", "6281234567890@s.whatsapp.net"),
        ("62.812.3456.7890", "6281234567890@s.whatsapp.net"),
        ("+62\u{a0}812\u{a0}3456\u{a0}7890", "6281234567890@s.whatsapp.net"),
        ("  +6281234567890\n\t", "6281234567890@s.whatsapp.net"),
        ("+1 (555) 123-4567", "15551234567@s.whatsapp.net"),
        ("00 (1) 555 123 4567", "15551234567@s.whatsapp.net"),
        ("1234567", "1234567@s.whatsapp.net"),
        ("+123456789012345", "123456789012345@s.whatsapp.net"),
    ] {
        assert_eq!(canonical(input), expected, "{input:?}");
    }
}

#[test]
fn phone_number_jid_fields() {
    let jid = Jid::from_phone_number("+62 812-3456-7890").unwrap();
    assert_eq!(jid.user(), "6281234567890");
    assert_eq!(jid.device(), None);
    assert_eq!(jid.server(), Server::Phone);
}

#[test]
fn empty_input() {
    for input in ["", "   ", "\u{a0}\t\n"] {
        for result in [Jid::normalize(input), Jid::parse(input), Jid::from_phone_number(input)] {
            let error = result.unwrap_err();
            assert_eq!(error.kind(), ErrorKind::Empty);
            assert_eq!(error.to_string(), "empty identifier: send a phone number in international format or a JID");
        }
    }
}

#[test]
fn phone_number_characters() {
    assert_all_rejected(
        ErrorKind::InvalidCharacter,
        &[
            ("(+1) 555.123.4567", "misplaced '+'"),
            ("+62+812 3456 7890", "misplaced '+'"),
            ("++6281234567890", "misplaced '+'"),
            ("6281234567890+", "misplaced '+'"),
            ("62812abc4567", "'a'"),
            ("+62 812 3456 7890 #1", "'#'"),
            ("*6281234567890", "'*'"),
            ("62/81234567890", "'/'"),
            ("62\t81234567890", "'\\t'"),
            ("62_81234567890", "'_'"),
            ("６２８１２３４５６７８９０", "'６'"),
        ],
    );
    assert_rejected(
        Jid::normalize("62812abc4567"),
        ErrorKind::InvalidCharacter,
        &["phone number \"62812abc4567\"", "international format"],
    );
}

#[test]
fn phone_number_lengths() {
    let long = "9".repeat(1000);
    assert_all_rejected(
        ErrorKind::InvalidLength,
        &[
            ("123456", "has 6 digits, expected 7 to 15"),
            ("+1234567890123456", "has 16 digits, expected 7 to 15"),
            ("0012345", "has 5 digits"),
            ("+", "has 0 digits"),
            ("(-)", "has 0 digits"),
            (&long, "has 1000 digits"),
        ],
    );
}

#[test]
fn phone_numbers_in_national_format() {
    assert_all_rejected(
        ErrorKind::MissingCountryCode,
        &[
            ("0812 3456 7890", "\"0812 3456 7890\" starts with 0"),
            ("+0812 3456 7890", "country code"),
            ("+00 62 812 3456 7890", "starts with 0"),
            ("000 812 3456 7890", "starts with 0"),
        ],
    );
}

#[test]
fn phone_number_with_at_sign() {
    assert_rejected(
        Jid::from_phone_number("6281234567890@s.whatsapp.net"),
        ErrorKind::NotAPhoneNumber,
        &["\"6281234567890@s.whatsapp.net\"", "'@'"],
    );
}

#[test]
fn jids() {
    for (input, expected) in [
        ("6281234567890@s.whatsapp.net", "6281234567890@s.whatsapp.net"),
        ("6281234567890@c.us", "6281234567890@s.whatsapp.net"),
        ("6281234567890@S.WhatsApp.NET", "6281234567890@s.whatsapp.net"),
        ("6281234567890@C.US", "6281234567890@s.whatsapp.net"),
        ("+6281234567890@s.whatsapp.net", "6281234567890@s.whatsapp.net"),
        ("  6281234567890@s.whatsapp.net\n", "6281234567890@s.whatsapp.net"),
        ("6281234567890:3@s.whatsapp.net", "6281234567890:3@s.whatsapp.net"),
        ("6281234567890:0@s.whatsapp.net", "6281234567890@s.whatsapp.net"),
        ("6281234567890:007@c.us", "6281234567890:7@s.whatsapp.net"),
        ("6281234567890:65535@s.whatsapp.net", "6281234567890:65535@s.whatsapp.net"),
        ("123456789012345@lid", "123456789012345@lid"),
        ("123456789012345:2@LID", "123456789012345:2@lid"),
        ("123456789012345:0@lid", "123456789012345@lid"),
        ("1@lid", "1@lid"),
        ("012345678901234567890123@lid", "012345678901234567890123@lid"),
        ("120363406798553856@g.us", "120363406798553856@g.us"),
        ("120363406798553856@G.US", "120363406798553856@g.us"),
        ("6281234567890-1234567890@g.us", "6281234567890-1234567890@g.us"),
    ] {
        assert_eq!(canonical(input), expected, "{input:?}");
        assert_eq!(Jid::parse(input).unwrap().to_string(), expected, "{input:?}");
    }
}

#[test]
fn jid_fields() {
    let jid = Jid::parse("123456789012345:2@lid").unwrap();
    assert_eq!(jid.user(), "123456789012345");
    assert_eq!(jid.device(), Some(2));
    assert_eq!(jid.server(), Server::Lid);
    assert_eq!(Jid::parse("6281234567890@c.us"), Jid::parse("6281234567890:0@s.whatsapp.net"));
}

#[test]
fn jid_without_at_sign() {
    assert_rejected(Jid::parse("6281234567890"), ErrorKind::NotAJid, &["\"6281234567890\"", "no '@'"]);
}

#[test]
fn jid_servers() {
    assert_all_rejected(
        ErrorKind::UnsupportedServer,
        &[
            ("status@broadcast", "\"broadcast\""),
            ("120363406798553856@newsletter", "\"newsletter\""),
            ("6281234567890@", "server \"\""),
            ("6281234567890@ s.whatsapp.net", "\" s.whatsapp.net\""),
            ("6281234567890@s.whatsapp.net.evil", "\"s.whatsapp.net.evil\""),
        ],
    );
    assert_all_rejected(
        ErrorKind::MultipleAt,
        &[("62812@34567890@s.whatsapp.net", "more than one '@'"), ("@@", "\"@@\"")],
    );
}

#[test]
fn jid_user_characters() {
    assert_all_rejected(
        ErrorKind::InvalidCharacter,
        &[
            ("62 812 3456 7890@s.whatsapp.net", "' ' in \"62 812 3456 7890\""),
            ("62-812-3456-7890@s.whatsapp.net", "'-'"),
            ("++6281234567890@s.whatsapp.net", "'+'"),
            ("6281234567890+@s.whatsapp.net", "'+'"),
            ("+123456789012345@lid", "'+'"),
            ("12345abc@lid", "'a'"),
            ("1203634067985538x6@g.us", "'x'"),
            ("62812345678-123-456@g.us", "'-' in \"123-456\""),
        ],
    );
}

#[test]
fn jid_user_lengths() {
    let long = format!("{}@lid", "1".repeat(1000));
    assert_all_rejected(
        ErrorKind::InvalidLength,
        &[
            ("123456@s.whatsapp.net", "has 6 digits, expected 7 to 15"),
            ("1234567890123456@c.us", "has 16 digits, expected 7 to 15"),
            ("@s.whatsapp.net", "has 0 digits"),
            (":2@s.whatsapp.net", "has 0 digits"),
            ("1234567890123456789012345@lid", "has 25 digits, expected 1 to 24"),
            (&long, "has 1000 digits"),
            ("@lid", "has 0 digits"),
            ("1234567890123456789012345@g.us", "has 25 digits"),
            ("@g.us", "has 0 digits"),
            ("-1234567890@g.us", "\"\" of JID \"-1234567890@g.us\" has 0 digits"),
            ("6281234567890-@g.us", "has 0 digits"),
        ],
    );
    assert_rejected(
        Jid::parse("081234567890@s.whatsapp.net"),
        ErrorKind::MissingCountryCode,
        &["\"081234567890\" of JID \"081234567890@s.whatsapp.net\" starts with 0"],
    );
}

#[test]
fn jid_devices() {
    assert_all_rejected(
        ErrorKind::InvalidDevice,
        &[
            ("6281234567890:65536@s.whatsapp.net", "\"65536\""),
            ("6281234567890:99999999999999999999@s.whatsapp.net", "\"99999999999999999999\""),
            ("6281234567890:@s.whatsapp.net", "device \"\""),
            ("6281234567890:+1@s.whatsapp.net", "\"+1\""),
            ("6281234567890:-1@s.whatsapp.net", "\"-1\""),
            ("6281234567890: 1@s.whatsapp.net", "\" 1\""),
            ("6281234567890:1:2@s.whatsapp.net", "\"1:2\""),
            ("123456789012345:x@lid", "\"x\""),
            ("120363406798553856:1@g.us", "\":1\" in group JID"),
            ("120363406798553856:0@g.us", "\":0\""),
        ],
    );
}

#[test]
fn kinds() {
    let phone = Jid::normalize("+6281234567890").unwrap();
    let lid = Jid::normalize("123456789012345@lid").unwrap();
    let group = Jid::normalize("120363406798553856@g.us").unwrap();
    assert_eq!([phone.kind(), lid.kind(), group.kind()], [Kind::Contact, Kind::Contact, Kind::Group]);
    assert_eq!([phone.is_phone(), phone.is_lid(), phone.is_group()], [true, false, false]);
    assert_eq!([lid.is_phone(), lid.is_lid(), lid.is_group()], [false, true, false]);
    assert_eq!([group.is_phone(), group.is_lid(), group.is_group()], [false, false, true]);
}

#[test]
fn devices() {
    let main = Jid::parse("6281234567890@s.whatsapp.net").unwrap();
    let third = main.with_device(3);
    assert_eq!(third.to_string(), "6281234567890:3@s.whatsapp.net");
    assert_eq!(third.device(), Some(3));
    assert_eq!(third.without_device(), main);
    assert_eq!(third.with_device(0), main);
    assert_eq!(main.with_device(0).to_string(), "6281234567890@s.whatsapp.net");
    assert_eq!(Jid::parse("123456789012345@lid").unwrap().with_device(2).to_string(), "123456789012345:2@lid");
    let group = Jid::parse("120363406798553856@g.us").unwrap();
    assert_eq!(group.with_device(4), group);
}

#[test]
fn from_str_is_normalize() {
    let jid: Jid = " +62 812-3456-7890 ".parse().unwrap();
    assert_eq!(jid.to_string(), "6281234567890@s.whatsapp.net");
    let jid: Jid = "6281234567890:1@c.us".parse().unwrap();
    assert_eq!(jid.to_string(), "6281234567890:1@s.whatsapp.net");
    assert_eq!("x".parse::<Jid>(), Err(Jid::normalize("x").unwrap_err()));
}

#[test]
fn error_is_std_error() {
    let error: Box<dyn std::error::Error> = Box::new(Jid::normalize("abc").unwrap_err());
    assert!(error.to_string().starts_with("invalid character 'a' in phone number \"abc\""));
}

#[test]
fn server_domains() {
    assert_eq!([Server::Phone, Server::Lid, Server::Group].map(Server::domain), ["s.whatsapp.net", "lid", "g.us"]);
}
