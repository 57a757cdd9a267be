//! `wa-sim --world FILE [--listen 127.0.0.1:PORT] [--admin 127.0.0.1:PORT] [--static-key HEX]`
//!
//! Runs the simulated WhatsApp server until interrupted; prints the WebSocket URL and
//! the admin URL on stdout.

use std::net::SocketAddr;

use anyhow::{Context, bail};
use wa_sim::{SimConfig, WaSim, World};

const USAGE: &str = "usage: wa-sim --world FILE [--listen 127.0.0.1:PORT] [--admin 127.0.0.1:PORT] [--static-key HEX]";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "wa_sim=info".into()))
        .with_writer(std::io::stderr)
        .init();
    let cfg = parse_args(std::env::args().skip(1))?;
    let sim = WaSim::start(cfg).await?;
    println!("ws {}", sim.ws_url());
    if let Some(admin) = sim.admin_url() {
        println!("admin {admin}");
    }
    println!("noise-public-key {}", hex::encode(sim.noise_public_key()));
    tokio::signal::ctrl_c().await.context("waiting for ctrl-c")?;
    sim.shutdown().await;
    Ok(())
}

fn parse_args(mut args: impl Iterator<Item = String>) -> anyhow::Result<SimConfig> {
    let mut world = None;
    let mut listen: Option<SocketAddr> = None;
    let mut admin: Option<SocketAddr> = None;
    let mut key: Option<[u8; 32]> = None;
    while let Some(flag) = args.next() {
        let mut value = || args.next().with_context(|| format!("{flag} needs a value\n{USAGE}"));
        match flag.as_str() {
            "--world" => world = Some(World::load(value()?)?),
            "--listen" => listen = Some(value()?.parse().context("--listen")?),
            "--admin" => admin = Some(value()?.parse().context("--admin")?),
            "--static-key" => {
                let bytes = hex::decode(value()?).context("--static-key must be hex")?;
                key = Some(bytes.try_into().map_err(|_| anyhow::anyhow!("--static-key must be 32 bytes"))?);
            }
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => bail!("unknown argument {other}\n{USAGE}"),
        }
    }
    let mut cfg = SimConfig::new(world.with_context(|| format!("--world is required\n{USAGE}"))?);
    if let Some(listen) = listen {
        cfg.listen = listen;
    }
    cfg.admin_listen = admin;
    cfg.noise_static_key = key;
    Ok(cfg)
}
