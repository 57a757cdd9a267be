//! WhatsApp for the gateway: wa-sim in this process, with a generated world of one account per
//! device to link plus a contact to look up.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use wa_sim::{SimConfig, WaSim, World};

/// The phone number of the contact every scenario looks up.
pub const CONTACT: &str = "15559999999";

/// The contact: about text, a picture and a linked companion, so that a lookup returns a
/// full contact profile.
const CONTACT_ACCOUNT: &str = r#"
[[accounts]]
phone = "15559999999"
lid = "199999999999999"
push_name = "Bench Contact"
about = "Measuring the edge"
devices = [1]
[accounts.picture]
id = "1700009999"
url = "https://pps.whatsapp.net/v/t61/bench-contact-full.jpg"
preview_url = "https://pps.whatsapp.net/v/t61/bench-contact-preview.jpg"
"#;

/// The profile of [`CONTACT`] as seen through a tenant's device `main`.
pub fn contact_profile() -> String {
    format!("/devices/main/profile?jid={CONTACT}")
}

/// A running wa-sim and the accounts not yet given to a device.
pub struct Sim {
    server: Arc<WaSim>,
    url: String,
    accounts: usize,
    next_account: usize,
}

impl Sim {
    /// Starts a sim with `accounts` accounts to link devices to (and the contact) on a free
    /// loopback port, which it keeps across outages.
    pub async fn start(accounts: usize) -> Sim {
        let config = SimConfig::new(world(accounts));
        let server = WaSim::start(config).await.unwrap_or_else(|e| panic!("wa-sim did not start: {e}"));
        let url = server.ws_url();
        Sim { server: Arc::new(server), url, accounts, next_account: 0 }
    }

    /// The URL devices connect to.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The running server.
    pub fn server(&self) -> &Arc<WaSim> {
        &self.server
    }

    /// The phone numbers of `n` accounts no device has been linked to yet.
    pub fn phones(&mut self, n: usize) -> Vec<String> {
        let range = self.next_account..self.next_account + n;
        assert!(range.end <= self.accounts, "the world has {} accounts; {} are needed", self.accounts, range.end);
        self.next_account = range.end;
        range.map(phone).collect()
    }

    /// An outage of WhatsApp: every connection closes and the sim stops listening for `down`,
    /// then listens again on the same port, knowing what it knew (see
    /// [`WaSim::stop_listening`]); returns when it listens again.
    pub async fn outage(&mut self, down: Duration) -> Instant {
        let server = Arc::get_mut(&mut self.server).expect("nothing else holds wa-sim during an outage");
        server.stop_listening().await;
        tokio::time::sleep(down).await;
        server.listen_again().await.unwrap_or_else(|e| {
            panic!("wa-sim did not listen again on {}: {e}; is another process on that port?", self.url)
        });
        Instant::now()
    }
}

/// The phone number of account `i`.
fn phone(i: usize) -> String {
    format!("1555{i:07}")
}

/// The contact and `accounts` accounts, each with its own phone number, LID and push name.
fn world(accounts: usize) -> World {
    let mut toml = CONTACT_ACCOUNT.to_string();
    for i in 0..accounts {
        let lid = 200_000_000_000_000 + i;
        write!(toml, "\n[[accounts]]\nphone = \"{}\"\nlid = \"{lid}\"\npush_name = \"Bench device {i}\"\n", phone(i))
            .unwrap();
    }
    World::from_toml_str(&toml).unwrap_or_else(|e| panic!("the generated world is invalid: {e}"))
}
