//! The world fixture: the accounts and groups the simulated WhatsApp knows about.
//!
//! A world is written in TOML (see `worlds/demo.toml` for a documented example) and is
//! read-only for the lifetime of a sim. Runtime state (linked devices, connections) lives
//! elsewhere; the sim answers every lookup (usync, pictures, business profiles, groups)
//! from this data.

use std::collections::HashSet;
use std::path::Path;

use serde::Deserialize;
use wacore_binary::Jid;

/// Why a world fixture could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum WorldError {
    /// The file could not be read.
    #[error("cannot read world file {path}: {cause}")]
    Io {
        /// The path that failed.
        path: String,
        /// The underlying error.
        cause: std::io::Error,
    },
    /// The TOML did not parse or did not match the schema.
    #[error("invalid world TOML: {0}")]
    Toml(#[from] toml::de::Error),
    /// The TOML parsed but describes an inconsistent world.
    #[error("invalid world: {0}")]
    Invalid(String),
}

/// Everything the simulated WhatsApp knows: accounts and groups.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct World {
    /// Registered WhatsApp accounts.
    #[serde(default)]
    pub accounts: Vec<Account>,
    /// Groups between those accounts (and unknown phone numbers).
    #[serde(default)]
    pub groups: Vec<Group>,
}

/// One WhatsApp account (a phone number with its primary phone).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Account {
    /// Phone number, digits only with country code (`15550001111`).
    pub phone: String,
    /// The account's LID user part, digits only (`100000000000001`).
    pub lid: String,
    /// The name the account shows to others (and the own push name after linking).
    pub push_name: String,
    /// The "about" text; absent means the user has none.
    #[serde(default)]
    pub about: Option<String>,
    /// When the about text was set (unix seconds).
    #[serde(default = "default_time")]
    pub about_set_at: u64,
    /// Profile picture, if the account has one.
    #[serde(default)]
    pub picture: Option<Picture>,
    /// Privacy switches hiding fields from other users.
    #[serde(default)]
    pub privacy: Privacy,
    /// Companion device ids already linked besides the primary phone (device 0). The sim
    /// plays them (and the phone): they have pre-keys and decrypt what clients send the
    /// account, unless a real client logs in as one of them.
    #[serde(default)]
    pub devices: Vec<u16>,
    /// Business data; present only for business accounts.
    #[serde(default)]
    pub business: Option<Business>,
}

/// A profile picture (of an account or a group).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Picture {
    /// Numeric picture id.
    pub id: String,
    /// URL of the full-size image.
    pub url: String,
    /// URL of the preview (thumbnail) image.
    pub preview_url: String,
}

/// Privacy switches: each hides one field from every other user.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Privacy {
    /// Hide the about text.
    #[serde(default)]
    pub hide_about: bool,
    /// Hide the profile picture.
    #[serde(default)]
    pub hide_picture: bool,
    /// Hide the device list.
    #[serde(default)]
    pub hide_devices: bool,
    /// Write to others by LID only, and keep the phone ↔ LID mapping from them: messages
    /// come `from` the LID without the phone number, and user look-ups disclose neither the
    /// LID of the phone number nor the phone number of the LID. Others never learn the
    /// mapping from WhatsApp (as with WhatsApp's usernames).
    #[serde(default)]
    pub lid_only: bool,
}

/// Business-account data.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Business {
    /// The verified business name.
    pub verified_name: String,
    /// Profile description.
    #[serde(default)]
    pub description: String,
    /// Contact e-mail.
    #[serde(default)]
    pub email: Option<String>,
    /// Websites.
    #[serde(default)]
    pub websites: Vec<String>,
    /// Street address.
    #[serde(default)]
    pub address: Option<String>,
    /// Business categories.
    #[serde(default)]
    pub categories: Vec<Category>,
    /// Opening hours.
    #[serde(default)]
    pub hours: Option<Hours>,
}

/// A business category.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Category {
    /// Category id.
    pub id: String,
    /// Category display name.
    pub name: String,
}

/// Business opening hours.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Hours {
    /// IANA time zone, e.g. `Europe/Berlin`.
    pub timezone: String,
    /// Per-day configuration.
    #[serde(default)]
    pub days: Vec<DayHours>,
}

/// Opening hours of one weekday.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DayHours {
    /// `sun`, `mon`, `tue`, `wed`, `thu`, `fri` or `sat`.
    pub day: String,
    /// `open_24h`, `specific_hours` or `appointment_only`.
    pub mode: String,
    /// Opening time in minutes after midnight (for `specific_hours`).
    #[serde(default)]
    pub open: Option<u32>,
    /// Closing time in minutes after midnight (for `specific_hours`).
    #[serde(default)]
    pub close: Option<u32>,
}

/// A group chat.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Group {
    /// Group id, the user part of `ID@g.us` (digits, optionally `creator-timestamp`).
    pub id: String,
    /// Group name.
    pub subject: String,
    /// Group description.
    #[serde(default)]
    pub description: Option<String>,
    /// Creation time (unix seconds).
    #[serde(default = "default_time")]
    pub created_at: u64,
    /// Whether the group addresses participants by LID (`true`) or phone number.
    #[serde(default)]
    pub lid_addressed: bool,
    /// Only admins may send messages.
    #[serde(default)]
    pub announce: bool,
    /// Only admins may edit the group info.
    #[serde(default)]
    pub locked: bool,
    /// Disappearing-messages timer in seconds, if on.
    #[serde(default)]
    pub ephemeral: Option<u32>,
    /// New members need admin approval.
    #[serde(default)]
    pub join_approval: bool,
    /// Group picture.
    #[serde(default)]
    pub picture: Option<Picture>,
    /// Members; the first super-admin (or first member) is reported as creator.
    pub participants: Vec<Participant>,
}

/// A group member, addressed by phone number or LID.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Participant {
    /// Phone number (digits); the member may or may not be an account of this world.
    #[serde(default)]
    pub phone: Option<String>,
    /// LID user part (digits), for members only known by LID.
    #[serde(default)]
    pub lid: Option<String>,
    /// `member` (default), `admin` or `superadmin`.
    #[serde(default)]
    pub role: Role,
}

/// A participant's role in a group.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Ordinary member.
    #[default]
    Member,
    /// Admin.
    Admin,
    /// Super admin (creator).
    Superadmin,
}

impl Role {
    /// The wire value of the participant `type` attribute, `None` for plain members.
    pub fn wire(self) -> Option<&'static str> {
        match self {
            Role::Member => None,
            Role::Admin => Some("admin"),
            Role::Superadmin => Some("superadmin"),
        }
    }
}

fn default_time() -> u64 {
    1_700_000_000
}

impl World {
    /// Parses and validates a world from TOML text.
    pub fn from_toml_str(text: &str) -> Result<World, WorldError> {
        let world: World = toml::from_str(text)?;
        world.validate()?;
        Ok(world)
    }

    /// Reads, parses and validates a world file.
    pub fn load(path: impl AsRef<Path>) -> Result<World, WorldError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path)
            .map_err(|cause| WorldError::Io { path: path.display().to_string(), cause })?;
        World::from_toml_str(&text)
    }

    /// The account with this phone number (digits; a leading `+` is ignored).
    pub fn account_by_phone(&self, phone: &str) -> Option<&Account> {
        let phone = phone.trim_start_matches('+');
        self.accounts.iter().find(|a| a.phone == phone)
    }

    /// The account with this LID user part.
    pub fn account_by_lid(&self, lid: &str) -> Option<&Account> {
        self.accounts.iter().find(|a| a.lid == lid)
    }

    /// The account a user JID (phone number or LID, any device) belongs to.
    pub fn account_by_jid(&self, jid: &Jid) -> Option<&Account> {
        if jid.is_lid() {
            self.account_by_lid(&jid.user)
        } else if jid.is_pn() {
            self.account_by_phone(&jid.user)
        } else {
            None
        }
    }

    /// The group with this id (user part of the `@g.us` JID).
    pub fn group(&self, id: &str) -> Option<&Group> {
        self.groups.iter().find(|g| g.id == id)
    }

    /// The groups the account takes part in.
    pub fn groups_of<'a>(&'a self, account: &'a Account) -> impl Iterator<Item = &'a Group> + 'a {
        self.groups.iter().filter(move |g| g.has_member(account))
    }

    fn validate(&self) -> Result<(), WorldError> {
        let mut phones = HashSet::new();
        let mut lids = HashSet::new();
        for a in &self.accounts {
            check_digits("account phone", &a.phone)?;
            check_digits("account lid", &a.lid)?;
            if !phones.insert(a.phone.as_str()) {
                return invalid(format!("duplicate account phone {}", a.phone));
            }
            if !lids.insert(a.lid.as_str()) {
                return invalid(format!("duplicate account lid {}", a.lid));
            }
            check_attr_text("push_name", &a.push_name)?;
            if let Some(p) = &a.picture {
                p.validate()?;
            }
            if a.devices.contains(&0) {
                return invalid(format!("account {}: device 0 is the phone itself, list companions only", a.phone));
            }
            if let Some(b) = &a.business {
                check_attr_text("verified_name", &b.verified_name)?;
                for c in &b.categories {
                    check_attr_text("category id", &c.id)?;
                }
                if let Some(h) = &b.hours {
                    check_attr_text("timezone", &h.timezone)?;
                }
            }
        }
        let mut group_ids = HashSet::new();
        for g in &self.groups {
            if g.id.is_empty() || !g.id.chars().all(|c| c.is_ascii_digit() || c == '-') {
                return invalid(format!("group id {:?} must be digits (and '-')", g.id));
            }
            if !group_ids.insert(g.id.as_str()) {
                return invalid(format!("duplicate group id {}", g.id));
            }
            check_attr_text("group subject", &g.subject)?;
            if let Some(p) = &g.picture {
                p.validate()?;
            }
            if g.participants.is_empty() {
                return invalid(format!("group {} has no participants", g.id));
            }
            for p in &g.participants {
                match (&p.phone, &p.lid) {
                    (Some(phone), None) => check_digits("participant phone", phone)?,
                    (None, Some(lid)) => check_digits("participant lid", lid)?,
                    _ => {
                        return invalid(format!("group {}: each participant needs exactly one of phone or lid", g.id));
                    }
                }
            }
        }
        Ok(())
    }
}

impl Picture {
    fn validate(&self) -> Result<(), WorldError> {
        check_digits("picture id", &self.id)?;
        check_attr_text("picture url", &self.url)?;
        check_attr_text("picture preview_url", &self.preview_url)
    }
}

impl Group {
    /// The group's JID (`ID@g.us`).
    pub fn jid(&self) -> Jid {
        Jid::group(self.id.as_str())
    }

    /// Whether the account is one of the participants (by phone or LID).
    pub fn has_member(&self, account: &Account) -> bool {
        self.participants.iter().any(|p| p.is(account))
    }

    /// `account` as the group addresses its members: by LID in a LID-addressed group, by
    /// phone number otherwise.
    pub fn address_of(&self, account: &Account) -> Jid {
        if self.lid_addressed { Jid::lid(account.lid.as_str()) } else { Jid::pn(account.phone.as_str()) }
    }

    /// The participant reported as creator: the first super-admin, else the first member.
    pub fn creator(&self) -> &Participant {
        self.participants.iter().find(|p| p.role == Role::Superadmin).unwrap_or(&self.participants[0])
    }
}

impl Participant {
    /// Whether this participant entry refers to the account.
    pub fn is(&self, account: &Account) -> bool {
        self.phone.as_deref() == Some(account.phone.as_str()) || self.lid.as_deref() == Some(account.lid.as_str())
    }
}

fn invalid<T>(msg: String) -> Result<T, WorldError> {
    Err(WorldError::Invalid(msg))
}

fn check_digits(what: &str, value: &str) -> Result<(), WorldError> {
    if value.is_empty() || !value.chars().all(|c| c.is_ascii_digit()) {
        return invalid(format!("{what} {value:?} must be digits only"));
    }
    Ok(())
}

/// Values that travel as node attributes must not contain '@': the binary codec would
/// encode them as a JID and the client would drop the whole stanza.
fn check_attr_text(what: &str, value: &str) -> Result<(), WorldError> {
    if value.contains('@') {
        return invalid(format!("{what} {value:?} must not contain '@' (it is sent as a node attribute)"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demo_world_parses() {
        let world = World::load(concat!(env!("CARGO_MANIFEST_DIR"), "/worlds/demo.toml")).expect("demo world");
        assert!(world.account_by_phone("+15550001111").is_some());
        assert!(!world.groups.is_empty());
    }

    #[test]
    fn rejects_duplicate_phone_and_at_sign_in_attribute() {
        let dup = r#"
            [[accounts]]
            phone = "1"
            lid = "2"
            push_name = "a"
            [[accounts]]
            phone = "1"
            lid = "3"
            push_name = "b"
        "#;
        assert!(matches!(World::from_toml_str(dup), Err(WorldError::Invalid(_))));
        let at = r#"
            [[accounts]]
            phone = "1"
            lid = "2"
            push_name = "me@home"
        "#;
        assert!(matches!(World::from_toml_str(at), Err(WorldError::Invalid(_))));
    }
}
