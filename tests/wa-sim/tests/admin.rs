//! The admin HTTP endpoint: health, JSON errors, and a fault through HTTP.

use std::net::{Ipv4Addr, SocketAddr};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use wa_sim::{SimConfig, WaSim, World};

async fn sim_with_admin() -> WaSim {
    let world = World::load(concat!(env!("CARGO_MANIFEST_DIR"), "/worlds/demo.toml")).unwrap();
    let mut cfg = SimConfig::new(world);
    cfg.admin_listen = Some(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)));
    WaSim::start(cfg).await.unwrap()
}

/// A minimal HTTP/1.1 exchange: returns (status, body).
async fn http(sim: &WaSim, method: &str, path: &str, body: &str) -> (u16, String) {
    let base = sim.admin_url().expect("admin url");
    let addr = base.trim_start_matches("http://");
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    tcp.write_all(req.as_bytes()).await.unwrap();
    let mut resp = String::new();
    tcp.read_to_string(&mut resp).await.unwrap();
    let status = resp.split_whitespace().nth(1).unwrap().parse().unwrap();
    let body = resp.split("\r\n\r\n").nth(1).unwrap_or_default().to_owned();
    (status, body)
}

#[tokio::test]
async fn admin_endpoints_answer_json() {
    let sim = sim_with_admin().await;
    assert_eq!(http(&sim, "GET", "/healthz", "").await, (200, r#"{"ok":true}"#.to_owned()));

    let (status, body) = http(&sim, "POST", "/faults/latency", "{not json").await;
    assert_eq!(status, 400);
    assert!(body.contains("invalid JSON body"), "{body}");

    let (status, body) = http(&sim, "POST", "/faults/logout", r#"{"phone":"999"}"#).await;
    assert_eq!(status, 404);
    assert!(body.contains("not an account"), "{body}");

    let (status, body) = http(&sim, "POST", "/scan-qr", r#"{"qr":"x","phone":"15550001111"}"#).await;
    assert_eq!(status, 400, "{body}");

    assert_eq!(http(&sim, "POST", "/faults/latency", r#"{"ms":5}"#).await.0, 200);
    assert_eq!(http(&sim, "POST", "/faults/drop", "").await, (200, r#"{"dropped":0}"#.to_owned()));
    assert_eq!(http(&sim, "POST", "/faults/refuse", r#"{"seconds":1}"#).await.0, 200);
    assert_eq!(http(&sim, "GET", "/nope", "").await.0, 404);

    let same = r#"{"from":"15550002222","to":"15550002222","text":"hi"}"#;
    assert_eq!(http(&sim, "POST", "/messages", same).await.0, 400);
    let nobody = r#"{"from":"15550002222","to":"15550001111","text":"hi"}"#;
    let (status, body) = http(&sim, "POST", "/messages", nobody).await;
    assert_eq!(status, 409, "{body}");
    assert!(body.contains("no linked device"), "{body}");

    let waiting = r#"{"phone":"15550001111"}"#;
    assert_eq!(http(&sim, "POST", "/unacknowledged", waiting).await, (200, r#"{"unacknowledged":0}"#.to_owned()));
    assert_eq!(http(&sim, "POST", "/unacknowledged", r#"{"phone":"999"}"#).await.0, 404);

    let alice = r#"{"phone":"+15550002222"}"#;
    assert_eq!(http(&sim, "POST", "/received", alice).await, (200, r#"{"received":[]}"#.to_owned()));
    assert_eq!(http(&sim, "POST", "/received", r#"{"phone":"999"}"#).await.0, 404);
    let quiet = r#"{"phone":"15550002222","on":false}"#;
    assert_eq!(http(&sim, "POST", "/auto-delivery", quiet).await, (200, r#"{"ok":true}"#.to_owned()));
    let (status, body) = http(&sim, "POST", "/read", r#"{"phone":"15550002222","id":"NOPE"}"#).await;
    assert_eq!(status, 404, "{body}");
    assert!(body.contains("no message with id NOPE"), "{body}");
    let nack = r#"{"to":"15550002222","code":463,"count":2}"#;
    assert_eq!(http(&sim, "POST", "/faults/nack", nack).await, (200, r#"{"ok":true}"#.to_owned()));
    assert_eq!(http(&sim, "POST", "/faults/nack", r#"{"to":"999","code":463,"count":1}"#).await.0, 404);
}
