//! A gateway called in-process, without listeners, over a store seeded with the test tenants
//! and a [`Runtime`] of the test's choosing: one with a compiled-artefact cache, or one with a
//! small instance pool.

use std::sync::Arc;

use bytes::Bytes;
use http::{Request, header};
use http_body_util::{BodyExt, Full};
use sha2::{Digest, Sha256};
use waedge::Gateway;
use waedge::config::Config;
use waedge::runtime::Runtime;
use waedge_store::Store;
use waedge_store::{ComponentRef, RouteRecord};

use crate::fixture::{FixtureDevices, World};
use crate::server::fixtures;
use crate::tenants::config;

/// A gateway and the store it serves from.
pub struct Host {
    /// The gateway.
    pub gateway: Gateway,
    /// Its store.
    pub store: Store,
}

/// A response: the status and the body.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    /// The status code.
    pub status: u16,
    /// The body as text.
    pub text: String,
}

impl Answer {
    /// The `error.code` of a host error, if the body is one.
    pub fn error_code(&self) -> Option<String> {
        let json: serde_json::Value = serde_json::from_str(&self.text).ok()?;
        json["error"]["code"].as_str().map(str::to_string)
    }
}

impl Host {
    /// A gateway on `runtime` over a new in-memory store seeded with the test tenants.
    pub fn new(runtime: Runtime) -> Host {
        let store = Store::open_in_memory().expect("an in-memory store");
        Config::parse(&config(None)).expect("the test configuration").seed(&store).expect("the store seeds");
        Host::over(store, runtime)
    }

    /// A gateway on `runtime` over `store`, as after a restart.
    pub fn over(store: Store, runtime: Runtime) -> Host {
        let world = World::load(&fixtures().join("world.toml")).expect("fixture world");
        let config = Config::parse(&config(None)).expect("the test configuration");
        let gateway = waedge::app::gateway(runtime, Arc::new(FixtureDevices(world)), &config).expect("the gateway");
        let host = Host { gateway, store };
        host.reload();
        host
    }

    /// Reloads the gateway from the store; every route must load.
    pub fn reload(&self) {
        assert_eq!(self.gateway.reload(&self.store).expect("the store reads"), Vec::<String>::new());
    }

    /// Deploys `bytes` as the active version of `tenant`'s component `name`, served under
    /// `/NAME`; returns the version's hash.
    pub fn deploy(&self, tenant: &str, name: &str, bytes: &[u8]) -> String {
        let sha256 = hex::encode(Sha256::digest(bytes));
        self.gateway.prepare_component(tenant, name, &sha256, bytes).expect("the component compiles");
        self.store.add_component_version(tenant, name, &sha256, bytes, "test").unwrap();
        self.store.activate_component(tenant, name, &sha256).unwrap();
        let route = RouteRecord { prefix: format!("/{name}"), component: ComponentRef::Deployed(name.to_string()) };
        self.store.put_route(tenant, route).unwrap();
        self.reload();
        sha256
    }

    /// `GET path` with the API token `token`.
    pub async fn get(&self, path: &str, token: &str) -> Answer {
        let request = Request::get(path)
            .header(header::HOST, "localhost")
            .header(header::AUTHORIZATION, format!("Bearer {token}"))
            .body(Full::new(Bytes::new()))
            .expect("a valid request");
        let response = self.gateway.handle(request).await;
        let status = response.status().as_u16();
        let body = response.into_body().collect().await.expect("a readable body").to_bytes();
        Answer { status, text: String::from_utf8_lossy(&body).into_owned() }
    }
}
