//! A real waedge gateway and its admin API on loopback ports, over an in-memory store seeded
//! from a configuration, fed by fixture devices or any device manager.

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use tokio::sync::watch;
use waedge::admin::Admin;
use waedge::config::Config;
use waedge::runtime::Runtime;
use waedge::webhooks::Webhooks;
use waedge::{Gateway, server};
use waedge_device::mailbox::Appended;
use waedge_device::{DeviceManager, DeviceSession};
use waedge_store::Store;

use crate::fixture::{FixtureDevices, World};

/// The directory holding the fixture files.
pub fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

/// One Wasm runtime for every test in a test binary: engines are meant to be shared.
fn runtime() -> &'static Runtime {
    static RUNTIME: OnceLock<Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| Runtime::new().expect("the Wasm runtime starts"))
}

/// A running gateway with its admin API. Stops when dropped.
pub struct TestGateway {
    base: String,
    admin_base: String,
    admin_token: String,
    client: reqwest::Client,
    gateway: Arc<Gateway>,
    store: Store,
    _stop: watch::Sender<bool>,
}

/// A response, with the body parsed as JSON.
#[derive(Debug)]
pub struct Reply {
    /// The status code.
    pub status: u16,
    /// The headers.
    pub headers: reqwest::header::HeaderMap,
    /// The body as JSON (`Null` if it is not JSON).
    pub json: serde_json::Value,
    /// The body as text.
    pub text: String,
}

impl TestGateway {
    /// Starts a gateway for `config` (TOML text) whose devices answer from `world`.
    pub async fn start(config: &str, world: &World) -> TestGateway {
        Self::start_with(config, Arc::new(FixtureDevices(world.clone()))).await
    }

    /// The gateway itself, for calling it without a socket.
    pub fn gateway(&self) -> &Arc<Gateway> {
        &self.gateway
    }

    /// Starts a gateway for `config` (TOML text) whose device sessions `devices` manages.
    pub async fn start_with(config: &str, devices: Arc<dyn DeviceManager>) -> TestGateway {
        let config = Config::parse(config).expect("the test configuration is valid");
        let store = Store::open_in_memory().expect("an in-memory store");
        config.seed(&store).expect("the configuration seeds the store");
        let (_, admin_token) = store.create_admin_token(None, Default::default()).expect("an admin token");
        let gateway =
            waedge::app::gateway(runtime().clone(), devices, &config).expect("the test build takes the settings");
        let gateway = Arc::new(gateway);
        let problems = gateway.reload(&store).expect("the store reads");
        assert!(problems.is_empty(), "{problems:?}");
        let (stop, stopping) = watch::channel(false);
        let stopped = |mut stopping: watch::Receiver<bool>| async move {
            let _ = stopping.wait_for(|stop| *stop).await;
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("a loopback port");
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(server::serve(listener, gateway.clone(), config.connections, stopped(stopping.clone())));
        let admin_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("a loopback port");
        let admin_base = format!("http://{}", admin_listener.local_addr().unwrap());
        // The fixture devices append no events: nothing tells of any, the webhooks only look at
        // the outbox now and then.
        let webhooks = Arc::new(Webhooks::new(store.clone(), gateway.clone(), Appended::default()));
        webhooks.reload().await.expect("the store reads");
        let admin = Arc::new(Admin::new(store.clone(), gateway.clone(), webhooks));
        tokio::spawn(server::serve(admin_listener, admin, config.connections, stopped(stopping)));
        TestGateway { base, admin_base, admin_token, client: reqwest::Client::new(), gateway, store, _stop: stop }
    }

    /// The session of `device` of `tenant` as requests see it.
    pub fn device(&self, tenant: &str, device: &str) -> Arc<dyn DeviceSession> {
        let tenants = self.gateway.tenants();
        tenants.get(tenant).and_then(|t| t.scope().device(device)).cloned().expect("the device exists")
    }

    /// The store the gateway serves from.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The API listener's base URL, e.g. `http://127.0.0.1:PORT`.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// The admin listener's base URL, e.g. `http://127.0.0.1:PORT`.
    pub fn admin_base(&self) -> &str {
        &self.admin_base
    }

    /// The admin token the gateway was started with.
    pub fn admin_token(&self) -> &str {
        &self.admin_token
    }

    /// `GET path` with an optional bearer token.
    pub async fn get(&self, path: &str, token: Option<&str>) -> Reply {
        self.request(reqwest::Method::GET, path, token, None, Vec::new()).await
    }

    /// Any request: method, path, bearer token, `Host` header and body.
    pub async fn request(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        host: Option<&str>,
        body: Vec<u8>,
    ) -> Reply {
        let mut request = self.client.request(method, format!("{}{path}", self.base)).body(body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(host) = host {
            request = request.header(reqwest::header::HOST, host);
        }
        reply(request).await
    }

    /// `GET path` for the tenant reached as `host`, with `headers` and no bearer token.
    pub async fn get_with_headers(&self, path: &str, host: &str, headers: &[(&str, String)]) -> Reply {
        let mut request = self.client.get(format!("{}{path}", self.base)).header(reqwest::header::HOST, host);
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        reply(request).await
    }

    /// An admin API request with the admin token; `body` is sent as JSON unless `Null`.
    pub async fn admin(&self, method: reqwest::Method, path: &str, body: serde_json::Value) -> Reply {
        self.admin_as(method, path, Some(&self.admin_token), body).await
    }

    /// Deploys the probe component (`tests/guests/probe`) as globex's `component:probe`,
    /// routed at `/probe`; returns its name in logs and metrics (`globex/probe@SHA12`).
    pub async fn deploy_probe(&self) -> String {
        let deployed =
            self.admin_upload("/v1/tenants/globex/components/probe", crate::guests::get("probe").to_vec()).await;
        assert_eq!(deployed.status, 201, "{}", deployed.text);
        let route = serde_json::json!({"prefix": "/probe", "component": "component:probe"});
        let routed = self.admin(reqwest::Method::PUT, "/v1/tenants/globex/routes", route).await;
        assert_eq!(routed.status, 200, "{}", routed.text);
        format!("globex/probe@{}", &deployed.json["sha256"].as_str().expect("the version's hash")[..12])
    }

    /// An admin API `POST` of raw bytes (a component upload) with the admin token.
    pub async fn admin_upload(&self, path: &str, bytes: Vec<u8>) -> Reply {
        let request = self
            .client
            .post(format!("{}{path}", self.admin_base))
            .bearer_auth(&self.admin_token)
            .header(reqwest::header::CONTENT_TYPE, "application/wasm")
            .body(bytes);
        reply(request).await
    }

    /// An admin API request with any token (or none).
    pub async fn admin_as(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: serde_json::Value,
    ) -> Reply {
        let mut request = self.client.request(method, format!("{}{path}", self.admin_base));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if !body.is_null() {
            request = request.header(reqwest::header::CONTENT_TYPE, "application/json").body(body.to_string());
        }
        reply(request).await
    }
}

async fn reply(request: reqwest::RequestBuilder) -> Reply {
    let response = request.send().await.expect("the server answers");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let text = response.text().await.expect("a readable body");
    let json = serde_json::from_str(&text).unwrap_or(serde_json::Value::Null);
    Reply { status, headers, json, text }
}

/// Another tenant's user, served all along while a test attacks the gateway: `GET path` with
/// `token` every `pause`, each of which must answer 200.
pub struct Neighbour {
    stop: Arc<std::sync::atomic::AtomicBool>,
    task: tokio::task::JoinHandle<usize>,
}

impl Neighbour {
    /// Starts the requests against `gw`.
    pub fn start(gw: &Arc<TestGateway>, path: &'static str, token: &'static str, pause: std::time::Duration) -> Self {
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (gw, stopped) = (gw.clone(), stop.clone());
        let task = tokio::spawn(async move {
            let mut served = 0;
            while !stopped.load(std::sync::atomic::Ordering::Relaxed) {
                let reply = gw.get(path, Some(token)).await;
                assert_eq!(reply.status, 200, "the neighbour's GET {path} failed during the attack: {}", reply.text);
                served += 1;
                tokio::time::sleep(pause).await;
            }
            served
        });
        Neighbour { stop, task }
    }

    /// Stops the requests; how many were served (all of them succeeded, or this panics).
    pub async fn stop(self) -> usize {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.task.await.expect("every request of the neighbour succeeded")
    }
}
