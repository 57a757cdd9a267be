//! A gateway with a linked device, for the tests of what happens on it (events, webhooks).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use wa_sim::{SimConfig, WaSim};

use super::{SELF_PHONE, Waedge, admin_token, cli_ok, world, write_config};

/// A gateway on `sim` with tenant `acme` and its device `main` linked to [`SELF_PHONE`].
pub struct Linked {
    /// The sim.
    pub sim: WaSim,
    _dir: tempfile::TempDir,
    config: PathBuf,
    /// The gateway.
    pub waedge: Waedge,
    /// An admin token of the gateway.
    pub admin_token: String,
}

impl Linked {
    /// Starts wa-sim and the gateway, creates `acme` and links `main`.
    pub async fn start() -> Linked {
        Linked::start_with("").await
    }

    /// Like [`Linked::start`], with `extra` TOML in the gateway's configuration.
    pub async fn start_with(extra: &str) -> Linked {
        let sim = WaSim::start(SimConfig::new(world())).await.expect("wa-sim starts");
        let dir = tempfile::tempdir().expect("a temporary directory");
        let config = write_config(dir.path(), &format!("whatsapp_server = \"{}\"\n{extra}", sim.ws_url()));
        let admin_token = admin_token(&config);
        let waedge = Waedge::start(&config);
        waedge.admin_expect(reqwest::Method::POST, "/v1/tenants", &admin_token, json!({ "id": "acme" }), 201).await;
        waedge.link_new_device(&admin_token, &sim, ("acme", "main", SELF_PHONE), Duration::from_secs(30)).await;
        Linked { sim, _dir: dir, config, waedge, admin_token }
    }

    /// Like [`Linked::start`], with `acme` serving the devices API at `/devices`; also returns
    /// an API token of a user who may use `main`.
    pub async fn serving_devices_api() -> (Linked, String) {
        let linked = Linked::start().await;
        let admin = (linked.waedge.admin.as_str(), linked.admin_token.as_str());
        cli_ok(&["route", "set", "acme", "/devices", "builtin:devices-api"], Some(admin));
        let token = linked.waedge.new_user_token(&linked.admin_token, "acme", &["main"]).await;
        (linked, token)
    }

    /// Kills the gateway with SIGKILL, as a crash would, runs `while_down`, and starts the
    /// gateway again; returns once `main` is connected again.
    pub async fn crash_and_restart(mut self, while_down: impl AsyncFnOnce(&WaSim)) -> Linked {
        self.waedge.kill();
        while_down(&self.sim).await;
        self.waedge = Waedge::start(&self.config);
        let patience = Duration::from_secs(30);
        self.waedge.wait_for_device(&self.admin_token, "acme", "main", "connected", patience).await;
        self
    }

    /// Every message event of `acme` (`message.*`: the device's own `device.status` events
    /// come and go with its restarts), oldest first, read a page of `page` events at a time.
    pub async fn events(&self, page: usize) -> Vec<Value> {
        let events = self.all_events(page).await;
        events.into_iter().filter(is_message_event).collect()
    }

    /// Every event of `acme`, oldest first, read a page of `page` at a time.
    pub async fn all_events(&self, page: usize) -> Vec<Value> {
        let (mut events, mut after) = (Vec::new(), None::<String>);
        loop {
            let cursor = after.as_ref().map(|id| format!("&after={id}")).unwrap_or_default();
            let path = format!("/v1/tenants/acme/events?limit={page}{cursor}");
            let answer =
                self.waedge.admin_expect(reqwest::Method::GET, &path, &self.admin_token, Value::Null, 200).await;
            let got = answer["events"].as_array().expect("a list of events").clone();
            if got.is_empty() {
                assert_eq!(answer["next"].as_str(), after.as_deref(), "an empty page points where it started");
                return events;
            }
            after = Some(answer["next"].as_str().expect("a next cursor").to_string());
            events.extend(got);
        }
    }

    /// Waits up to `seconds` until `acme` has `count` message events; returns them.
    pub async fn wait_for_events(&self, count: usize, seconds: u64) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(seconds);
        loop {
            let events = self.events(100).await;
            if events.len() >= count || Instant::now() > deadline {
                assert_eq!(events.len(), count, "events: {events:#?}");
                return events;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Whether `event` is about a message (`message.received`, `message.status`).
pub fn is_message_event(event: &Value) -> bool {
    event["type"].as_str().is_some_and(|kind| kind.starts_with("message."))
}
