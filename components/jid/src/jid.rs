//! JIDs: `user[:device]@server`.

use std::fmt;
use std::str::FromStr;

use crate::digits::{Digits, E164, NUMERIC_ID};
use crate::error::{ErrorKind, JidError};
use crate::phone;

/// The WhatsApp server a JID belongs to: the part after `@`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Server {
    /// `s.whatsapp.net`: a contact addressed by phone number. The legacy `c.us` is accepted on
    /// input.
    Phone,
    /// `lid`: a contact addressed by its LID, a linked identity that hides the phone number.
    Lid,
    /// `g.us`: a group.
    Group,
}

impl Server {
    /// The canonical domain written after `@`: `s.whatsapp.net`, `lid` or `g.us`.
    pub fn domain(self) -> &'static str {
        match self {
            Server::Phone => "s.whatsapp.net",
            Server::Lid => "lid",
            Server::Group => "g.us",
        }
    }

    /// Reads a domain, ignoring ASCII case.
    fn from_domain(domain: &str) -> Option<Server> {
        match domain.to_ascii_lowercase().as_str() {
            "s.whatsapp.net" | "c.us" => Some(Server::Phone),
            "lid" => Some(Server::Lid),
            "g.us" => Some(Server::Group),
            _ => None,
        }
    }

    /// A valid JID on this server, for error messages.
    fn example(self) -> &'static str {
        match self {
            Server::Phone => "6281234567890@s.whatsapp.net",
            Server::Lid => "123456789012345@lid",
            Server::Group => "120363406798553856@g.us",
        }
    }
}

/// Whether a JID addresses one person or a group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// A person, by phone number or LID.
    Contact,
    /// A group.
    Group,
}

/// A valid, normalised WhatsApp identifier: `user[:device]@server`.
///
/// Its [`Display`](fmt::Display) form is canonical, such as `6281234567890@s.whatsapp.net`,
/// `6281234567890:3@s.whatsapp.net`, `123456789012345:2@lid` or `120363406798553856@g.us`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Jid {
    user: String,
    /// Never `Some(0)`: device 0 is the main device, written without a suffix.
    device: Option<u16>,
    server: Server,
}

impl Jid {
    /// Parses a JID such as `6281234567890@s.whatsapp.net`, `6281234567890:3@c.us`,
    /// `123456789012345@lid` or `120363406798553856@g.us`. Surrounding whitespace is ignored.
    ///
    /// # Errors
    ///
    /// If the input is not a valid JID on one of the three [`Server`]s.
    pub fn parse(input: &str) -> Result<Jid, JidError> {
        let input = trimmed(input)?;
        let Some((user, domain)) = input.split_once('@') else {
            return Err(JidError::new(
                ErrorKind::NotAJid,
                format!("{input:?} is not a JID, it has no '@': send a JID like {}", Server::Phone.example()),
            ));
        };
        if domain.contains('@') {
            return Err(JidError::new(
                ErrorKind::MultipleAt,
                format!(
                    "{input:?} has more than one '@': send a single user@server JID like {}",
                    Server::Phone.example()
                ),
            ));
        }
        let server = Server::from_domain(domain).ok_or_else(|| {
            JidError::new(
                ErrorKind::UnsupportedServer,
                format!(
                    "unsupported server {domain:?} in {input:?}: send a phone number, \
                     a contact JID (…@s.whatsapp.net or …@lid) or a group JID (…@g.us)"
                ),
            )
        })?;
        let (user, device) = match user.split_once(':') {
            Some((user, device)) => (user, Some(device)),
            None => (user, None),
        };
        let user = check_user(user, server, input)?;
        let device = device.map(|device| parse_device(device, server, input)).transpose()?;
        Ok(Jid { user: user.to_owned(), device: device.filter(|&device| device != 0), server })
    }

    /// Reads a phone number in international format, such as `+62 812-3456-7890`,
    /// `0062 812 3456 7890` or `6281234567890`, into a JID on [`Server::Phone`].
    ///
    /// Surrounding whitespace is ignored, and so are spaces, non-breaking spaces, `-`, `.`, `(`
    /// and `)` within the number. A `+` may only come first. What is left must be 7 to 15
    /// digits that do not start with 0.
    ///
    /// # Errors
    ///
    /// If the input is not such a phone number; a JID is rejected too.
    pub fn from_phone_number(input: &str) -> Result<Jid, JidError> {
        let input = trimmed(input)?;
        if input.contains('@') {
            return Err(JidError::new(
                ErrorKind::NotAPhoneNumber,
                format!("{input:?} is not a phone number, it contains '@': {}", phone::HINT),
            ));
        }
        let user = phone::e164_digits(input)
            .map_err(|problem| problem.at(format_args!("phone number {input:?}"), phone::HINT))?;
        Ok(Jid { user, device: None, server: Server::Phone })
    }

    /// Reads either a JID, as [`Jid::parse`] does, or a phone number, as
    /// [`Jid::from_phone_number`] does: an input with an `@` is a JID.
    ///
    /// # Errors
    ///
    /// If the input is neither a valid JID nor a valid phone number.
    pub fn normalize(input: &str) -> Result<Jid, JidError> {
        if input.contains('@') { Jid::parse(input) } else { Jid::from_phone_number(input) }
    }

    /// The user part: the digits before `:` or `@`, or `CREATOR-TIMESTAMP` for legacy groups.
    pub fn user(&self) -> &str {
        &self.user
    }

    /// The device number, or `None` for the main device (device 0).
    pub fn device(&self) -> Option<u16> {
        self.device
    }

    /// The server the JID belongs to.
    pub fn server(&self) -> Server {
        self.server
    }

    /// Whether the JID addresses a group or a contact.
    pub fn kind(&self) -> Kind {
        match self.server {
            Server::Group => Kind::Group,
            Server::Phone | Server::Lid => Kind::Contact,
        }
    }

    /// Whether the JID is a group (`g.us`).
    pub fn is_group(&self) -> bool {
        self.server == Server::Group
    }

    /// Whether the JID is a contact's LID (`lid`).
    pub fn is_lid(&self) -> bool {
        self.server == Server::Lid
    }

    /// Whether the JID is a contact's phone number (`s.whatsapp.net`).
    pub fn is_phone(&self) -> bool {
        self.server == Server::Phone
    }

    /// The same JID without its device part: the contact's main device.
    pub fn without_device(&self) -> Jid {
        self.with_device(0)
    }

    /// The same JID on another device of the contact; device 0, the main device, is written
    /// without a suffix. Groups have no devices: a group JID is returned unchanged.
    pub fn with_device(&self, device: u16) -> Jid {
        let device = (device != 0 && !self.is_group()).then_some(device);
        Jid { device, ..self.clone() }
    }
}

impl fmt::Display for Jid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.user)?;
        if let Some(device) = self.device {
            write!(f, ":{device}")?;
        }
        write!(f, "@{}", self.server.domain())
    }
}

impl FromStr for Jid {
    type Err = JidError;

    /// Same as [`Jid::normalize`].
    fn from_str(input: &str) -> Result<Jid, JidError> {
        Jid::normalize(input)
    }
}

/// The input without surrounding whitespace, if anything is left.
fn trimmed(input: &str) -> Result<&str, JidError> {
    match input.trim() {
        "" => Err(JidError::new(
            ErrorKind::Empty,
            "empty identifier: send a phone number in international format or a JID".to_owned(),
        )),
        input => Ok(input),
    }
}

/// Checks the user part of a JID on `server`, returning it in canonical form.
fn check_user<'a>(user: &'a str, server: Server, input: &str) -> Result<&'a str, JidError> {
    let check = |part: &str, rule: &Digits| {
        rule.check(part).map_err(|problem| {
            problem.at(format_args!("{part:?} of JID {input:?}"), format_args!("send a JID like {}", server.example()))
        })
    };
    match server {
        Server::Phone => {
            let digits = user.strip_prefix('+').unwrap_or(user);
            check(digits, &E164)?;
            Ok(digits)
        }
        Server::Lid => {
            check(user, &NUMERIC_ID)?;
            Ok(user)
        }
        // A numeric id, or the legacy CREATOR-TIMESTAMP form: each part is checked alone.
        Server::Group => {
            for part in user.splitn(2, '-') {
                check(part, &NUMERIC_ID)?;
            }
            Ok(user)
        }
    }
}

/// Parses the device number after `:` in a contact JID.
fn parse_device(device: &str, server: Server, input: &str) -> Result<u16, JidError> {
    if server == Server::Group {
        return Err(JidError::new(
            ErrorKind::InvalidDevice,
            format!(
                "device suffix \":{device}\" in group JID {input:?}: groups have no devices, \
                 send a JID like {}",
                Server::Group.example()
            ),
        ));
    }
    // Digits only: `u16::from_str` would also accept a sign.
    Some(device)
        .filter(|device| device.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|device| device.parse().ok())
        .ok_or_else(|| {
            JidError::new(
                ErrorKind::InvalidDevice,
                format!(
                    "invalid device {device:?} in {input:?}: send the device after ':' as \
                     a number from 0 to 65535, like 6281234567890:2@s.whatsapp.net"
                ),
            )
        })
}
