//! A real waedge gateway on a loopback port, fed by fixture devices or any device opener.

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use tokio::sync::oneshot;
use waedge::config::Config;
use waedge::gateway::DeviceOpener;
use waedge::runtime::Runtime;
use waedge::{Gateway, server};

use crate::fixture::World;

/// The directory holding the fixture files.
pub fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

/// One Wasm runtime for every test in a test binary: engines are meant to be shared.
fn runtime() -> &'static Runtime {
    static RUNTIME: OnceLock<Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| Runtime::new().expect("the Wasm runtime starts"))
}

/// A running gateway. Stops when dropped.
pub struct TestGateway {
    base: String,
    client: reqwest::Client,
    _stop: oneshot::Sender<()>,
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
        Self::start_with(config, &|tenant, device| Arc::new(world.session(tenant, device))).await
    }

    /// Starts a gateway for `config` (TOML text) whose device sessions `open_device` opens.
    pub async fn start_with(config: &str, open_device: &DeviceOpener<'_>) -> TestGateway {
        let config = Config::parse(config).expect("the test configuration is valid");
        let gateway = Gateway::new(&config, runtime(), open_device).expect("the gateway starts");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("a loopback port");
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(server::serve(listener, Arc::new(gateway), async move {
            let _ = stopped.await;
        }));
        TestGateway { base, client: reqwest::Client::new(), _stop: stop }
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
        let response = request.send().await.expect("the gateway answers");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = response.text().await.expect("a readable body");
        let json = serde_json::from_str(&text).unwrap_or(serde_json::Value::Null);
        Reply { status, headers, json, text }
    }
}
