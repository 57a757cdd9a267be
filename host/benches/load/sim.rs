//! WhatsApp for the gateway: wa-sim in this process, with a generated world of one account per
//! device to link plus a contact to look up, and a fixed Noise key and port so that a restarted
//! sim is the same server to the clients.

use std::fmt::Write as _;
use std::net::SocketAddr;
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

/// The sim's Noise static key: the same across restarts, so clients keep trusting it.
const NOISE_KEY: [u8; 32] = [0x5a; 32];

/// The profile of [`CONTACT`] as seen through a tenant's device `main`.
pub fn contact_profile() -> String {
    format!("/devices/main/profile?jid={CONTACT}")
}

/// A running wa-sim and the accounts not yet given to a device.
pub struct Sim {
    server: Option<Arc<WaSim>>,
    config: SimConfig,
    url: String,
    accounts: usize,
    next_account: usize,
}

impl Sim {
    /// Starts a sim with `accounts` accounts to link devices to (and the contact) on a free
    /// loopback port, which it keeps across restarts.
    pub async fn start(accounts: usize) -> Sim {
        let mut config = SimConfig::new(world(accounts));
        config.noise_static_key = Some(NOISE_KEY);
        let server = WaSim::start(config.clone()).await.unwrap_or_else(|e| panic!("wa-sim did not start: {e}"));
        let url = server.ws_url();
        let address = url.trim_start_matches("ws://").split('/').next().and_then(|a| a.parse::<SocketAddr>().ok());
        config.listen = address.unwrap_or_else(|| panic!("wa-sim's URL {url} names no socket address"));
        Sim { server: Some(Arc::new(server)), config, url, accounts, next_account: 0 }
    }

    /// The URL devices connect to.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The running server.
    pub fn server(&self) -> &Arc<WaSim> {
        self.server.as_ref().expect("wa-sim is running")
    }

    /// The phone numbers of `n` accounts no device has been linked to yet.
    pub fn phones(&mut self, n: usize) -> Vec<String> {
        let range = self.next_account..self.next_account + n;
        assert!(range.end <= self.accounts, "the world has {} accounts; {} are needed", self.accounts, range.end);
        self.next_account = range.end;
        range.map(phone).collect()
    }

    /// Shuts the sim down (every connection closes), waits `down`, and starts it again on
    /// the same port with the same key and world; returns when it listens again.
    pub async fn restart(&mut self, down: Duration) -> Instant {
        let server = self.server.take().and_then(Arc::into_inner).expect("nothing else holds wa-sim while it restarts");
        server.shutdown().await;
        tokio::time::sleep(down).await;
        let listen = self.config.listen;
        let server = WaSim::start(self.config.clone()).await.unwrap_or_else(|e| {
            panic!("wa-sim did not start again on {listen}: {e}; is another process on that port?")
        });
        self.server = Some(Arc::new(server));
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
