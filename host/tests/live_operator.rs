//! The real `waedge` binary against wa-sim, driven the way an operator drives it: from an
//! empty data directory to a linked device and a working API token with only the CLI, and
//! every endpoint of both built-in APIs compared with the sim's world; then, each from a
//! gateway set up that way, a crash, an outage of WhatsApp and an unlink from the phone.
//! No token ever reaches the log.
//!
//! Needs a test build (`wa-sim` feature: devices may connect to a server that is not
//! WhatsApp); `cargo test --workspace` has it.

mod support;

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::{Reply, SELF_PHONE, Waedge, admin_token, cli_ok, handshakes, world, write_config};
use wa_sim::{SimConfig, WaSim};

/// A gateway an operator set up with the CLI alone, from an empty data directory: tenant
/// `acme` with both built-in APIs routed, its device `main`, and an API token of its user
/// Alice, who may use `main`.
struct Operator {
    sim: WaSim,
    _dir: tempfile::TempDir,
    config: PathBuf,
    admin_token: String,
    waedge: Waedge,
    /// Alice's API token.
    token: String,
    /// What the gateways stopped so far logged.
    log: String,
}

impl Operator {
    /// Starts wa-sim and the gateway and sets everything up with the CLI; `main` is not linked.
    async fn set_up() -> Operator {
        let sim = WaSim::start(SimConfig::new(world())).await.expect("wa-sim starts");
        let dir = tempfile::tempdir().expect("a temporary directory");
        let config = write_config(dir.path(), &format!("whatsapp_server = \"{}\"", sim.ws_url()));
        let admin_token = admin_token(&config);
        let waedge = Waedge::start(&config);
        let admin = (waedge.admin.as_str(), admin_token.as_str());

        cli_ok(&["tenant", "create", "acme", "--name", "Acme Corp", "--host", "acme.test"], Some(admin));
        cli_ok(&["device", "create", "acme", "main"], Some(admin));
        cli_ok(&["route", "set", "acme", "/devices", "builtin:devices-api"], Some(admin));
        cli_ok(&["route", "set", "acme", "/contacts", "builtin:contacts-api"], Some(admin));
        let user: Value = serde_json::from_str(&cli_ok(
            &["user", "create", "acme", "--name", "Alice", "--device", "main", "--json"],
            Some(admin),
        ))
        .expect("user create prints JSON");
        let user_id = user["id"].as_str().expect("a user id");
        let token = cli_ok(&["token", "create", "acme", user_id], Some(admin)).trim().to_string();
        Operator { sim, _dir: dir, config, admin_token, waedge, token, log: String::new() }
    }

    /// [`Operator::set_up`], then `main` linked with the CLI and connected.
    async fn linked() -> Operator {
        let operator = Operator::set_up().await;
        link_with_cli(&operator.sim, operator.admin()).await;
        wait_for_state(operator.admin(), "connected", 10);
        operator
    }

    /// The admin listener and the admin token, as the CLI takes them.
    fn admin(&self) -> (&str, &str) {
        (self.waedge.admin.as_str(), self.admin_token.as_str())
    }

    /// A request to the API with Alice's token.
    async fn api(&self, path: &str) -> Reply {
        self.waedge.api(path, &self.token).await
    }

    /// Stops the gateway, with SIGKILL when `crash`, else SIGTERM, and starts it again on the
    /// same data directory.
    fn restart(mut self, crash: bool) -> Operator {
        self.log += &if crash { self.waedge.kill() } else { self.waedge.stop() };
        self.waedge = Waedge::start(&self.config);
        self
    }

    /// Stops the gateway and checks the log of every gateway this operator ran: a line per
    /// request to either listener, with its status and time, and no token.
    fn finish(self) {
        let log = self.log + &self.waedge.stop();
        for secret in [&self.token, &self.admin_token] {
            assert!(!log.contains(secret.as_str()), "a token appears in the log");
        }
        for target in ["waedge::access", "waedge::admin"] {
            assert!(log.lines().any(|line| is_request_line(line, target)), "no {target} request lines in: {log}");
        }
    }
}

/// Whether `line` is a request line of `target`: `… target: method=… path="…" … status=200 micros=…`.
fn is_request_line(line: &str, target: &str) -> bool {
    let Some((_, fields)) = line.split_once(&format!(" {target}: method=")) else { return false };
    let number = |field: Option<&str>, name: &str| {
        field.and_then(|f| f.strip_prefix(name)).is_some_and(|n| n.parse::<u64>().is_ok())
    };
    let mut last = fields.rsplit(' ');
    let micros = last.next();
    fields.contains(" path=\"/") && number(last.next(), "status=") && number(micros, "micros=")
}

/// Asserts a 200 and returns the body's `data`.
fn data(reply: &Reply) -> &Value {
    assert_eq!(reply.status, 200, "body: {}", reply.text);
    &reply.json["data"]
}

/// Runs `waedge device link acme main` and scans the first QR code it prints with the
/// simulated phone; returns what the command printed.
async fn link_with_cli(sim: &WaSim, admin: (&str, &str)) -> String {
    let mut child = Command::new(support::WAEDGE)
        .args(["device", "link", "acme", "main"])
        .env("WAEDGE_ADMIN_URL", admin.0)
        .env("WAEDGE_ADMIN_TOKEN", admin.1)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("waedge device link runs");
    let stdout = child.stdout.take().expect("piped stdout");
    let (lines, printed) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = lines.send(line);
        }
    });
    let mut output = String::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    let code = loop {
        let line = printed.recv_timeout(deadline - Instant::now()).expect("the CLI prints a QR code");
        output.push_str(&line);
        output.push('\n');
        if let Some(code) = line.strip_prefix("code: ") {
            break code.to_string();
        }
    };
    sim.scan_qr(&code, SELF_PHONE).await.expect("the phone scans the QR code");
    let waited = tokio::time::timeout(Duration::from_secs(60), tokio::task::spawn_blocking(move || child.wait()));
    let status = waited.await.expect("the CLI ends once the device is linked").unwrap().expect("the CLI ends");
    // The reader ends at the end of the pipe: everything the CLI printed is collected.
    output.extend(printed.iter().map(|line| line + "\n"));
    assert!(status.success(), "waedge device link failed:\n{output}");
    output
}

/// Every endpoint of both APIs, compared with the world, through device `main`.
async fn check_lookups(waedge: &Waedge, token: &str) {
    // John Doe writes to the device: that is how it learns his push name.
    // (The caller has the sim send the text.)
    let john = json!({
        "jid": "6281234567890@s.whatsapp.net",
        "lid": "1234567890987654321@lid",
        "status": "Available",
        "picture_url": "https://pps.whatsapp.net/v/t61/john-full.jpg",
        "picture_id": "1059769838",
        "push_name": "John Doe",
        "business_name": "",
        "verified_name": "",
        "devices": ["6281234567890@s.whatsapp.net", "6281234567890:1@s.whatsapp.net"],
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    for query in ["6281234567890", "6281234567890@s.whatsapp.net"] {
        loop {
            let reply = waedge.api(&format!("/devices/main/profile?jid={query}"), token).await;
            if data(&reply)["profile"]["push_name"].is_string() || Instant::now() > deadline {
                assert_eq!(data(&reply), &json!({"type": "contact", "profile": john}), "{query}");
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let by_lid = waedge.api("/devices/main/profile?jid=1234567890987654321@lid", token).await;
    let profile = &data(&by_lid)["profile"];
    assert_eq!(profile["jid"], "1234567890987654321@lid");
    assert_eq!(profile["phone_jid"], "6281234567890@s.whatsapp.net");
    assert_eq!(profile["lid"], "1234567890987654321@lid");
    assert_eq!((&profile["status"], &profile["picture_id"]), (&json!("Available"), &json!("1059769838")));
    let preview = waedge.api("/devices/main/profile?jid=6281234567890&preview=true", token).await;
    assert_eq!(data(&preview)["profile"]["picture_url"], "https://pps.whatsapp.net/v/t61/john-preview.jpg");

    let groups = waedge.api("/devices/main/groups", token).await;
    assert_eq!(
        data(&groups),
        &json!({"groups": [
            {
                "jid": "120363406798553856@g.us",
                "name": "My Group Chat",
                "subject": "My Group Chat",
                "description": "Group description or topic",
                "participant_count": 3,
                "is_announce": false,
                "is_locked": false,
                "is_ephemeral": false,
                "is_join_approval_required": false,
            },
            {
                "jid": "6281234567890-1580000000@g.us",
                "name": "Family",
                "subject": "Family",
                "description": "",
                "participant_count": 2,
                "is_announce": true,
                "is_locked": true,
                "is_ephemeral": true,
                "is_join_approval_required": true,
            },
        ], "count": 2})
    );
    let group = waedge.api("/devices/main/profile?jid=120363406798553856@g.us", token).await;
    assert_eq!(
        data(&group),
        &json!({"type": "group", "profile": {
            "jid": "120363406798553856@g.us",
            "name": "My Group Chat",
            "subject": "My Group Chat",
            "description": "Group description or topic",
            "picture_url": "https://pps.whatsapp.net/v/t61/group-full.jpg",
            "picture_id": "1700000901",
            "participants": ["6281234567890@s.whatsapp.net", "6285550000001@s.whatsapp.net", "6289876543210@s.whatsapp.net"],
        }})
    );
    let former = waedge.api("/devices/main/profile?jid=120363000000000001@g.us", token).await;
    assert_eq!((former.status, &former.json["error"]["code"]), (403, &json!("FORBIDDEN")), "{}", former.text);
    let unknown = waedge.api("/devices/main/profile?jid=120363999999999999@g.us", token).await;
    assert_eq!((unknown.status, &unknown.json["error"]["code"]), (404, &json!("NOT_FOUND")), "{}", unknown.text);

    let hidden = waedge.api("/devices/main/profile?jid=5511999999999", token).await;
    assert_eq!(
        data(&hidden),
        &json!({"type": "contact", "profile": {"jid": "5511999999999@s.whatsapp.net", "lid": "5511000000000001@lid", "business_name": "", "verified_name": ""}})
    );
    let contact = waedge.api("/contacts/profile?number=6281234567890", token).await;
    assert_eq!(
        contact.json,
        json!({"success": true, "data": {"jid": "6281234567890@s.whatsapp.net", "user_info": {
            "Status": "Available",
            "PictureID": "1059769838",
            "Devices": ["6281234567890@s.whatsapp.net", "6281234567890:1@s.whatsapp.net"],
            "VerifiedName": null,
        }, "business_profile": null}}),
        "{}",
        contact.text
    );
    let business = waedge.api("/contacts/profile?number=14155550123", token).await;
    assert_eq!(business.status, 200, "{}", business.text);
    assert_eq!(business.json["data"]["user_info"]["VerifiedName"], "Bay Bikes");
    assert_eq!(
        business.json["data"]["business_profile"],
        json!({
            "JID": "14155550123@s.whatsapp.net",
            "Description": "Bicycles and repairs in San Francisco",
            "Email": "hello@baybikes.example",
            "Websites": ["https://baybikes.example"],
            "Categories": [{"ID": "1223524174334504", "Name": "Bicycle Shop"}],
            "Address": "1 Market St, San Francisco",
            "BusinessHoursTimeZone": "America/Los_Angeles",
            "BusinessHours": [
                {"DayOfWeek": "mon", "Mode": "specific_hours", "OpenTime": 540, "CloseTime": 1080},
                {"DayOfWeek": "sun", "Mode": "appointment_only", "OpenTime": null, "CloseTime": null},
            ],
        })
    );
}

/// Polls the device's status through the CLI until it is `state`.
fn wait_for_state(admin: (&str, &str), state: &str, seconds: u64) -> Value {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    loop {
        let status: Value = serde_json::from_str(&cli_ok(&["device", "status", "acme", "main", "--json"], Some(admin)))
            .expect("device status prints JSON");
        if status["state"] == state {
            return status;
        }
        assert!(Instant::now() < deadline, "device main is {}, not {state}", status["state"]);
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_goes_from_an_empty_data_dir_to_a_working_api_with_the_cli_alone() {
    let operator = Operator::set_up().await;
    let admin = operator.admin();
    assert!(uuid::Uuid::parse_str(&operator.token).is_ok(), "an API token is a UUID: {}", operator.token);
    let routes = cli_ok(&["route", "list", "acme"], Some(admin));
    assert!(
        routes.contains("/contacts  builtin:contacts-api") && routes.contains("/devices   builtin:devices-api"),
        "{routes}"
    );

    // Before linking, the API says what is wrong.
    let early = operator.api("/devices/main/groups").await;
    assert_eq!((early.status, &early.json["error"]["code"]), (503, &json!("DEVICE_NOT_CONNECTED")), "{}", early.text);

    let printed = link_with_cli(&operator.sim, admin).await;
    assert!(printed.contains("Linked: 6285550000001@s.whatsapp.net"), "{printed}");
    let status = wait_for_state(admin, "connected", 10);
    assert_eq!(
        (&status["jid"], &status["lid"]),
        (&json!("6285550000001@s.whatsapp.net"), &json!("900000000000001@lid"))
    );

    let sent = operator.sim.send_text("6281234567890", SELF_PHONE, "hi").await.expect("John Doe sends a text");
    assert_eq!(sent.devices, 1);
    check_lookups(&operator.waedge, &operator.token).await;
    operator.finish();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_crash_everything_is_still_there_and_the_device_comes_back_without_pairing() {
    let operator = Operator::linked().await;
    let before_restart = handshakes(&operator.sim);

    let operator = operator.restart(true);
    wait_for_state(operator.admin(), "connected", 15);
    assert!(handshakes(&operator.sim) > before_restart, "the device reconnected");
    assert_eq!(data(&operator.api("/devices/main/groups").await)["count"], 2);
    let tenants = cli_ok(&["tenant", "list"], Some(operator.admin()));
    assert!(tenants.contains("acme") && tenants.contains("Acme Corp") && tenants.contains("acme.test"), "{tenants}");
    operator.finish();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_of_whatsapp_is_reported_and_the_device_comes_back_by_itself() {
    let operator = Operator::linked().await;

    operator.sim.refuse_connections(Duration::from_secs(3)).await;
    operator.sim.drop_connections().await;
    let deadline = Instant::now() + Duration::from_secs(3);
    let mut saw_outage = false;
    while Instant::now() < deadline && !saw_outage {
        let reply = operator.api("/devices/main/groups").await;
        saw_outage = reply.status == 503 && reply.json["error"]["code"] == "DEVICE_NOT_CONNECTED";
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(saw_outage, "the API reports the outage");
    wait_for_state(operator.admin(), "connected", 30);
    assert_eq!(data(&operator.api("/devices/main/groups").await)["count"], 2);
    operator.finish();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_unlinked_from_the_phone_stays_logged_out_even_after_a_restart() {
    let operator = Operator::linked().await;

    operator.sim.log_out(SELF_PHONE).await;
    wait_for_state(operator.admin(), "logged-out", 10);
    // Its client has stopped, and nothing starts another: it cannot reconnect.
    operator.waedge.wait_for_no_client(10).await;
    let after_logout = handshakes(&operator.sim);
    let reply = operator.api("/devices/main/groups").await;
    assert_eq!((reply.status, &reply.json["error"]["code"]), (503, &json!("DEVICE_NOT_CONNECTED")), "{}", reply.text);

    let operator = operator.restart(false);
    wait_for_state(operator.admin(), "logged-out", 10);
    operator.waedge.wait_for_no_client(10).await;
    assert_eq!(handshakes(&operator.sim), after_logout, "a logged-out device does not reconnect after a restart");
    operator.finish();
}
