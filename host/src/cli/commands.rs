//! The admin-API commands: `tenant`, `user`, `token`, `device` and `route`.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;

use clap::Subcommand;
use serde_json::{Map, Value, json};

use super::Connection;
use super::client::{Client, segment};
use super::output;

/// A resource of the admin API and what to do with it.
#[derive(Subcommand)]
pub enum Resource {
    /// Tenants: the customers waedge serves.
    #[command(subcommand)]
    Tenant(TenantAction),
    /// API users of a tenant.
    #[command(subcommand)]
    User(UserAction),
    /// API tokens of a user.
    #[command(subcommand)]
    Token(TokenAction),
    /// WhatsApp devices of a tenant: create, link, status, log out, delete.
    #[command(subcommand)]
    Device(DeviceAction),
    /// Routes of a tenant: path prefix → component.
    #[command(subcommand)]
    Route(RouteAction),
    /// A tenant's own Wasm components: deploy, list versions, activate (roll back), delete.
    #[command(subcommand)]
    Component(ComponentAction),
    /// Events of a tenant's devices (messages received …), oldest first.
    #[command(subcommand)]
    Event(EventAction),
    /// Webhooks: where a tenant's events are POSTed, their delivery logs and dead letters.
    #[command(subcommand)]
    Webhook(WebhookAction),
}

/// `waedge webhook …`
#[derive(Subcommand)]
pub enum WebhookAction {
    /// Create a webhook; prints it with its signing secret, which is shown only now (an event
    /// handler has none).
    Create {
        /// The tenant.
        tenant: String,
        /// The `http://` or `https://` URL events are POSTed to, or the component they are
        /// handed to (an event handler: `component:NAME`, a deployed component).
        url: String,
        /// Only this device's events.
        #[arg(long)]
        device: Option<String>,
        /// Only events of this type (repeat for more; default: every type).
        #[arg(long = "event")]
        events: Vec<String>,
    },
    /// List a tenant's webhooks.
    List {
        /// The tenant.
        tenant: String,
    },
    /// Delete a webhook with its delivery log and dead letters.
    Delete {
        /// The tenant.
        tenant: String,
        /// The webhook's id.
        webhook: String,
    },
    /// A webhook's delivery log, newest first.
    Deliveries {
        /// The tenant.
        tenant: String,
        /// The webhook's id.
        webhook: String,
    },
    /// The events a webhook gave up on.
    DeadLetters {
        /// The tenant.
        tenant: String,
        /// The webhook's id.
        webhook: String,
    },
    /// Send a dead letter once more, now; it goes once the endpoint takes it.
    Replay {
        /// The tenant.
        tenant: String,
        /// The webhook's id.
        webhook: String,
        /// The event's id (from `dead-letters`).
        event: String,
    },
}

/// `waedge event …`
#[derive(Subcommand)]
pub enum EventAction {
    /// List a tenant's events, oldest first; `--json` shows each one's data and the `next`
    /// page's `--after`.
    List {
        /// The tenant.
        tenant: String,
        /// Start after this event id (the `next` of an earlier page).
        #[arg(long)]
        after: Option<String>,
        /// At most this many events (1 to 1000).
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
}

/// `waedge component …`
#[derive(Subcommand)]
pub enum ComponentAction {
    /// Deploy a .wasm component for a tenant and activate it (the swap is atomic: requests in
    /// flight finish on the old version).
    Deploy {
        /// The component file.
        file: std::path::PathBuf,
        /// The tenant.
        #[arg(long)]
        tenant: String,
        /// The component's name (default: the file name without `.wasm`).
        #[arg(long)]
        name: Option<String>,
        /// Also route this path prefix to the component.
        #[arg(long)]
        route: Option<String>,
        /// Store the version without activating it.
        #[arg(long)]
        no_activate: bool,
        /// Send `GET PATH` through the new version first; a 5xx answer refuses the deploy.
        #[arg(long, value_name = "PATH")]
        smoke: Option<String>,
    },
    /// List a tenant's components and their versions.
    List {
        /// The tenant.
        #[arg(long)]
        tenant: String,
    },
    /// Activate an earlier (or later) version: a rollback is a swap like any other.
    Activate {
        /// The tenant.
        #[arg(long)]
        tenant: String,
        /// The component's name.
        name: String,
        /// The version's SHA-256 (from `component list`).
        sha256: String,
    },
    /// Delete an inactive version.
    Delete {
        /// The tenant.
        #[arg(long)]
        tenant: String,
        /// The component's name.
        name: String,
        /// The version's SHA-256.
        sha256: String,
    },
}

/// `waedge tenant …`
#[derive(Subcommand)]
pub enum TenantAction {
    /// List tenants.
    List,
    /// Show one tenant.
    Show {
        /// The tenant id.
        tenant: String,
    },
    /// Create a tenant.
    Create {
        /// The tenant id.
        tenant: String,
        /// Display name.
        #[arg(long)]
        name: Option<String>,
        /// A host name whose requests go to the tenant (repeat for more).
        #[arg(long = "host")]
        hosts: Vec<String>,
        /// A limit, e.g. `requests_per_second=50` (repeat for more).
        #[arg(long = "limit", value_parser = key_value)]
        limits: Vec<(String, String)>,
    },
    /// Change a tenant's name, host names or limits.
    Update {
        /// The tenant id.
        tenant: String,
        /// New display name.
        #[arg(long)]
        name: Option<String>,
        /// Replace the host names (repeat for more).
        #[arg(long = "host")]
        hosts: Option<Vec<String>>,
        /// A limit, e.g. `requests_per_second=50` (repeat; replaces all limits).
        #[arg(long = "limit", value_parser = key_value)]
        limits: Option<Vec<(String, String)>>,
    },
    /// Delete a tenant with its users, tokens, devices (logged out) and routes.
    Delete {
        /// The tenant id.
        tenant: String,
    },
}

/// `waedge user …`
#[derive(Subcommand)]
pub enum UserAction {
    /// List the users of a tenant.
    List {
        /// The tenant id.
        tenant: String,
    },
    /// Create a user; prints its id.
    Create {
        /// The tenant id.
        tenant: String,
        /// Display name.
        #[arg(long, default_value = "")]
        name: String,
        /// A device the user may use (repeat; the first is the user's own).
        #[arg(long = "device")]
        devices: Vec<String>,
        /// A scope (repeat for more).
        #[arg(long = "scope")]
        scopes: Vec<String>,
    },
    /// Delete a user and its tokens.
    Delete {
        /// The tenant id.
        tenant: String,
        /// The user's id.
        user: String,
    },
}

/// `waedge token …`
#[derive(Subcommand)]
pub enum TokenAction {
    /// List a user's tokens (never the tokens themselves).
    List {
        /// The tenant id.
        tenant: String,
        /// The user's id.
        user: String,
    },
    /// Create a token for a user and print it (once: only its hash is kept).
    Create {
        /// The tenant id.
        tenant: String,
        /// The user's id.
        user: String,
    },
    /// Revoke a token; it stops working at once.
    Revoke {
        /// The tenant id.
        tenant: String,
        /// The user's id.
        user: String,
        /// The token's id (from `token list`).
        token_id: String,
    },
}

/// `waedge device …`
#[derive(Subcommand)]
pub enum DeviceAction {
    /// List the devices of a tenant with their state.
    List {
        /// The tenant id.
        tenant: String,
    },
    /// Create an (unlinked) device.
    Create {
        /// The tenant id.
        tenant: String,
        /// The device id.
        device: String,
    },
    /// Show a device's state and WhatsApp identity.
    Status {
        /// The tenant id.
        tenant: String,
        /// The device id.
        device: String,
    },
    /// Link a device by QR code: prints the code in the terminal, redraws it as WhatsApp
    /// rotates it, and ends when the phone has linked the device.
    Link {
        /// The tenant id.
        tenant: String,
        /// The device id.
        device: String,
    },
    /// Link a device by pair code: prints the code to enter on the phone, then waits.
    PairCode {
        /// The tenant id.
        tenant: String,
        /// The device id.
        device: String,
        /// The account's phone number with country code, e.g. 6281234567890.
        phone_number: String,
    },
    /// Connect a replaced, banned or disconnected device again, on its own session.
    Reconnect {
        /// The tenant id.
        tenant: String,
        /// The device id.
        device: String,
    },
    /// Log a device out of WhatsApp (the phone forgets it).
    Logout {
        /// The tenant id.
        tenant: String,
        /// The device id.
        device: String,
    },
    /// Delete a device, logging it out first.
    Delete {
        /// The tenant id.
        tenant: String,
        /// The device id.
        device: String,
    },
}

/// `waedge route …`
#[derive(Subcommand)]
pub enum RouteAction {
    /// List a tenant's routes.
    List {
        /// The tenant id.
        tenant: String,
    },
    /// Route a path prefix to a component (`builtin:NAME` or a .wasm file on the server).
    Set {
        /// The tenant id.
        tenant: String,
        /// The path prefix, e.g. `/devices`.
        prefix: String,
        /// `builtin:NAME`, `component:NAME` or a .wasm file on the server.
        component: String,
    },
    /// Delete the route with this prefix.
    Delete {
        /// The tenant id.
        tenant: String,
        /// The path prefix, e.g. `/devices`.
        prefix: String,
    },
}

fn key_value(text: &str) -> Result<(String, String), String> {
    text.split_once('=')
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .ok_or_else(|| format!("`{text}`: write NAME=VALUE, e.g. requests_per_second=50"))
}

fn limits(pairs: &[(String, String)]) -> anyhow::Result<Value> {
    let mut limits = Map::new();
    for (name, value) in pairs {
        let number: u64 =
            value.parse().map_err(|_| anyhow::anyhow!("limit {name}: `{value}` is not a whole number"))?;
        limits.insert(name.clone(), json!(number));
    }
    Ok(Value::Object(limits))
}

/// Runs one admin-API command.
pub fn run(resource: Resource, connection: &Connection) -> anyhow::Result<ExitCode> {
    let client = Client::new(connection)?;
    let print = Printer { json: connection.json };
    match resource {
        Resource::Tenant(action) => tenant(&client, &print, action),
        Resource::User(action) => user(&client, &print, action),
        Resource::Token(action) => token(&client, &print, action),
        Resource::Device(action) => device(&client, &print, action),
        Resource::Route(action) => route(&client, &print, action),
        Resource::Component(action) => component(&client, &print, action),
        Resource::Event(action) => event(&client, &print, action),
        Resource::Webhook(action) => webhook(&client, &print, action),
    }
}

/// Prints answers as tables or JSON.
struct Printer {
    json: bool,
}

impl Printer {
    fn list(&self, answer: &Value, key: &str, columns: &[(&str, &str)]) -> anyhow::Result<ExitCode> {
        if self.json {
            output::json(answer);
        } else {
            let items = answer[key].as_array().cloned().unwrap_or_default();
            let rows = items.iter().map(|item| columns.iter().map(|(_, field)| output::cell(&item[*field])).collect());
            output::table(&columns.iter().map(|(header, _)| *header).collect::<Vec<_>>(), rows);
        }
        Ok(ExitCode::SUCCESS)
    }

    fn one(&self, answer: &Value) -> anyhow::Result<ExitCode> {
        if self.json {
            output::json(answer)
        } else {
            output::record(answer)
        }
        Ok(ExitCode::SUCCESS)
    }

    fn done(&self, message: &str) -> anyhow::Result<ExitCode> {
        if self.json {
            output::json(&json!({ "ok": true }));
        } else {
            println!("{message}");
        }
        Ok(ExitCode::SUCCESS)
    }
}

const TENANT_COLUMNS: &[(&str, &str)] = &[("ID", "id"), ("NAME", "name"), ("HOSTS", "hosts"), ("LIMITS", "limits")];
const DEVICE_COLUMNS: &[(&str, &str)] =
    &[("ID", "id"), ("STATE", "state"), ("JID", "jid"), ("NAME", "push_name"), ("LINKING", "linking")];

fn tenant(client: &Client, print: &Printer, action: TenantAction) -> anyhow::Result<ExitCode> {
    match action {
        TenantAction::List => print.list(&client.get("/v1/tenants")?, "tenants", TENANT_COLUMNS),
        TenantAction::Show { tenant } => print.one(&client.get(&format!("/v1/tenants/{}", segment(&tenant)))?),
        TenantAction::Create { tenant, name, hosts, limits: pairs } => {
            // The document has no `null` for `name`: an absent name is left out.
            let mut body = json!({ "id": tenant, "hosts": hosts, "limits": limits(&pairs)? });
            if let Some(name) = name {
                body["name"] = json!(name);
            }
            print.one(&client.post("/v1/tenants", &body)?)
        }
        TenantAction::Update { tenant, name, hosts, limits: pairs } => {
            let mut body = Map::new();
            if let Some(name) = name {
                body.insert("name".into(), json!(name));
            }
            if let Some(hosts) = hosts {
                body.insert("hosts".into(), json!(hosts));
            }
            if let Some(pairs) = pairs {
                body.insert("limits".into(), limits(&pairs)?);
            }
            print.one(&client.patch(&format!("/v1/tenants/{}", segment(&tenant)), &Value::Object(body))?)
        }
        TenantAction::Delete { tenant } => {
            client.delete(&format!("/v1/tenants/{}", segment(&tenant)))?;
            print.done(&format!("Tenant {tenant} deleted."))
        }
    }
}

fn user(client: &Client, print: &Printer, action: UserAction) -> anyhow::Result<ExitCode> {
    match action {
        UserAction::List { tenant } => {
            let answer = client.get(&format!("/v1/tenants/{}/users", segment(&tenant)))?;
            print.list(
                &answer,
                "users",
                &[("ID", "id"), ("NAME", "name"), ("DEVICES", "devices"), ("SCOPES", "scopes")],
            )
        }
        UserAction::Create { tenant, name, devices, scopes } => {
            let body = json!({ "name": name, "devices": devices, "scopes": scopes });
            print.one(&client.post(&format!("/v1/tenants/{}/users", segment(&tenant)), &body)?)
        }
        UserAction::Delete { tenant, user } => {
            client.delete(&format!("/v1/tenants/{}/users/{}", segment(&tenant), segment(&user)))?;
            print.done(&format!("User {user} deleted."))
        }
    }
}

fn token(client: &Client, print: &Printer, action: TokenAction) -> anyhow::Result<ExitCode> {
    let tokens = |tenant: &str, user: &str| format!("/v1/tenants/{}/users/{}/tokens", segment(tenant), segment(user));
    match action {
        TokenAction::List { tenant, user } => {
            let answer = client.get(&tokens(&tenant, &user))?;
            print.list(&answer, "tokens", &[("ID", "id"), ("CREATED", "created_at"), ("REVOKED", "revoked_at")])
        }
        TokenAction::Create { tenant, user } => {
            let answer = client.post(&tokens(&tenant, &user), &Value::Null)?;
            if print.json {
                output::json(&answer);
            } else {
                println!("{}", answer["token"].as_str().unwrap_or_default());
                eprintln!("Token {} created. It is shown only now: store it.", output::cell(&answer["id"]));
            }
            Ok(ExitCode::SUCCESS)
        }
        TokenAction::Revoke { tenant, user, token_id } => {
            let answer = client.delete(&format!("{}/{}", tokens(&tenant, &user), segment(&token_id)))?;
            if print.json {
                output::json(&answer)
            } else {
                println!("Token {token_id} revoked.")
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn device(client: &Client, print: &Printer, action: DeviceAction) -> anyhow::Result<ExitCode> {
    let devices = |tenant: &str| format!("/v1/tenants/{}/devices", segment(tenant));
    let one = |tenant: &str, device: &str| format!("{}/{}", devices(tenant), segment(device));
    match action {
        DeviceAction::List { tenant } => print.list(&client.get(&devices(&tenant))?, "devices", DEVICE_COLUMNS),
        DeviceAction::Create { tenant, device } => {
            print.one(&client.post(&devices(&tenant), &json!({ "id": device }))?)
        }
        DeviceAction::Status { tenant, device } => print.one(&client.get(&one(&tenant, &device))?),
        DeviceAction::Link { tenant, device } => {
            follow_link(client, print, &format!("{}/link/events", one(&tenant, &device)))
        }
        DeviceAction::PairCode { tenant, device, phone_number } => {
            let answer = client
                .post(&format!("{}/pair-code", one(&tenant, &device)), &json!({ "phone_number": phone_number }))?;
            if print.json {
                output::json(&answer);
            } else {
                println!("Pair code: {}", output::cell(&answer["pair_code"]));
                println!("On the phone: WhatsApp → Linked devices → Link a device → Link with phone number instead.");
            }
            follow_link(client, print, &format!("{}/link/events", one(&tenant, &device)))
        }
        DeviceAction::Reconnect { tenant, device } => {
            print.one(&client.post(&format!("{}/reconnect", one(&tenant, &device)), &Value::Null)?)
        }
        DeviceAction::Logout { tenant, device } => {
            print.one(&client.post(&format!("{}/logout", one(&tenant, &device)), &Value::Null)?)
        }
        DeviceAction::Delete { tenant, device } => {
            client.delete(&one(&tenant, &device))?;
            print.done(&format!("Device {device} deleted."))
        }
    }
}

/// Follows a linking's events: draws each QR code (or prints the events as JSON lines) and
/// ends with success when the device is linked.
fn follow_link(client: &Client, print: &Printer, path: &str) -> anyhow::Result<ExitCode> {
    let mut linked = false;
    let terminal = std::io::stdout().is_terminal();
    client.events(path, |event| {
        if print.json {
            println!("{}", event.data);
        } else {
            match event.name.as_str() {
                "qr" => {
                    let code = event.data["code"].as_str().unwrap_or_default();
                    if terminal {
                        print!("\x1b[2J\x1b[H");
                    }
                    println!("{}", crate::qr::terminal(code)?);
                    println!(
                        "Scan with WhatsApp → Linked devices → Link a device. The code changes every {} s.",
                        output::cell(&event.data["expires_in_seconds"])
                    );
                    if !terminal {
                        println!("code: {code}");
                    }
                }
                "linked" => println!("Linked: {}", output::cell(&event.data["jid"])),
                "failed" => println!("Not linked: {}", output::cell(&event.data["reason"])),
                _ => {}
            }
            std::io::stdout().flush()?;
        }
        linked = event.name == "linked";
        Ok(!matches!(event.name.as_str(), "linked" | "failed"))
    })?;
    Ok(if linked { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

fn route(client: &Client, print: &Printer, action: RouteAction) -> anyhow::Result<ExitCode> {
    let routes = |tenant: &str| format!("/v1/tenants/{}/routes", segment(tenant));
    match action {
        RouteAction::List { tenant } => {
            print.list(&client.get(&routes(&tenant))?, "routes", &[("PREFIX", "prefix"), ("COMPONENT", "component")])
        }
        RouteAction::Set { tenant, prefix, component } => {
            print.one(&client.put(&routes(&tenant), &json!({ "prefix": prefix, "component": component }))?)
        }
        RouteAction::Delete { tenant, prefix } => {
            client.delete(&format!("{}?prefix={}", routes(&tenant), segment(&prefix)))?;
            print.done(&format!("Route {prefix} deleted."))
        }
    }
}

fn event(client: &Client, print: &Printer, action: EventAction) -> anyhow::Result<ExitCode> {
    match action {
        EventAction::List { tenant, after, limit } => {
            let mut path = format!("/v1/tenants/{}/events?limit={limit}", segment(&tenant));
            if let Some(after) = after {
                path.push_str(&format!("&after={}", segment(&after)));
            }
            let columns =
                [("ID", "id"), ("AT", "at"), ("TYPE", "type"), ("DEVICE", "device"), ("CHAT", "chat"), ("SEQ", "seq")];
            print.list(&client.get(&path)?, "events", &columns)
        }
    }
}

fn webhook(client: &Client, print: &Printer, action: WebhookAction) -> anyhow::Result<ExitCode> {
    let webhooks = |tenant: &str| format!("/v1/tenants/{}/webhooks", segment(tenant));
    let one = |tenant: &str, webhook: &str| format!("{}/{}", webhooks(tenant), segment(webhook));
    match action {
        WebhookAction::Create { tenant, url, device, events } => {
            let mut body = json!({ "url": url, "events": events });
            if let Some(device) = device {
                body["device"] = json!(device);
            }
            print.one(&client.post(&webhooks(&tenant), &body)?)
        }
        WebhookAction::List { tenant } => print.list(
            &client.get(&webhooks(&tenant))?,
            "webhooks",
            &[("ID", "id"), ("URL", "url"), ("DEVICE", "device"), ("EVENTS", "events")],
        ),
        WebhookAction::Delete { tenant, webhook } => {
            client.delete(&one(&tenant, &webhook))?;
            print.done(&format!("Webhook {webhook} deleted."))
        }
        WebhookAction::Deliveries { tenant, webhook } => print.list(
            &client.get(&format!("{}/deliveries", one(&tenant, &webhook)))?,
            "deliveries",
            &[("AT", "at"), ("EVENT", "event_id"), ("ATTEMPT", "attempt"), ("STATUS", "status"), ("ERROR", "error")],
        ),
        WebhookAction::DeadLetters { tenant, webhook } => {
            let answer = client.get(&format!("{}/dead-letters", one(&tenant, &webhook)))?;
            // The table shows each event's id and type next to why it was given up.
            let mut rows = answer.clone();
            if let Some(letters) = rows["dead_letters"].as_array_mut() {
                for letter in letters {
                    letter["event_id"] = letter["event"]["id"].clone();
                    letter["type"] = letter["event"]["type"].clone();
                }
            }
            let columns =
                [("EVENT", "event_id"), ("TYPE", "type"), ("AT", "at"), ("ATTEMPTS", "attempts"), ("ERROR", "error")];
            if print.json { print.one(&answer) } else { print.list(&rows, "dead_letters", &columns) }
        }
        WebhookAction::Replay { tenant, webhook, event } => {
            let path = format!("{}/dead-letters/{}/replay", one(&tenant, &webhook), segment(&event));
            let answer = client.post(&path, &Value::Null)?;
            if print.json {
                return print.one(&answer);
            }
            match answer["delivered"].as_bool() {
                Some(true) => print.done(&format!("Event {event} delivered.")),
                _ => {
                    let why = answer["attempt"]["error"].as_str().unwrap_or("no reason given");
                    anyhow::bail!("event {event} was not delivered: {why}; it stays a dead letter")
                }
            }
        }
    }
}

fn component(client: &Client, print: &Printer, action: ComponentAction) -> anyhow::Result<ExitCode> {
    let components = |tenant: &str| format!("/v1/tenants/{}/components", segment(tenant));
    match action {
        ComponentAction::Deploy { file, tenant, name, route, no_activate, smoke } => {
            let name = match name {
                Some(name) => name,
                None => file
                    .file_stem()
                    .and_then(|stem| stem.to_str())
                    .map(str::to_string)
                    .ok_or_else(|| anyhow::anyhow!("{}: name the component with --name", file.display()))?,
            };
            let bytes = std::fs::read(&file).map_err(|e| anyhow::anyhow!("reading {}: {e}", file.display()))?;
            let mut path = format!("{}/{}?activate={}", components(&tenant), segment(&name), !no_activate);
            if let Some(smoke) = smoke {
                path.push_str(&format!("&smoke={}", segment(&smoke)));
            }
            let version = client.post_bytes(&path, "application/wasm", &bytes)?;
            if let Some(prefix) = route {
                let body = json!({ "prefix": prefix, "component": format!("component:{name}") });
                client.put(&format!("/v1/tenants/{}/routes", segment(&tenant)), &body)?;
            }
            print.one(&version)
        }
        ComponentAction::List { tenant } => print.list(
            &client.get(&components(&tenant))?,
            "components",
            &[
                ("NAME", "name"),
                ("SHA256", "sha256"),
                ("SIZE", "size"),
                ("ACTIVE", "active"),
                ("CREATED", "created_at"),
                ("BY", "created_by"),
            ],
        ),
        ComponentAction::Activate { tenant, name, sha256 } => {
            let path = format!("{}/{}/versions/{}/activate", components(&tenant), segment(&name), segment(&sha256));
            print.one(&client.post(&path, &Value::Null)?)
        }
        ComponentAction::Delete { tenant, name, sha256 } => {
            client.delete(&format!("{}/{}/versions/{}", components(&tenant), segment(&name), segment(&sha256)))?;
            print.done(&format!("Version {sha256} of {name} deleted."))
        }
    }
}
