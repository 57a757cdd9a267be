//! The `waedge` command: run the gateway, and manage API tokens for its configuration.

use std::io::Read;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};
use waedge::config::Config;
use waedge::device::whatsapp::WhatsappDevices;
use waedge::runtime::Runtime;
use waedge::token::TokenHash;
use waedge::{Gateway, server};

/// WhatsApp edge gateway: device sessions in the host, request logic in Wasm components.
#[derive(Parser)]
#[command(version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway.
    Serve {
        /// The configuration file.
        #[arg(long, short, default_value = "waedge.toml")]
        config: PathBuf,
    },
    /// Print the SHA-256 of an API token (read from standard input) for `token_sha256`.
    HashToken,
    /// Create a new API token: prints the token once and the hash to put in the configuration.
    NewToken,
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    match Cli::parse().command {
        Command::Serve { config } => {
            let runtime = tokio::runtime::Runtime::new().context("starting tokio")?;
            runtime.block_on(serve(config))
        }
        Command::HashToken => {
            let mut token = String::new();
            std::io::stdin().read_to_string(&mut token).context("reading the token from standard input")?;
            println!("{}", TokenHash::of(token.trim()).to_hex());
            Ok(())
        }
        Command::NewToken => {
            let token = uuid::Uuid::new_v4().to_string();
            println!("token:        {token}\ntoken_sha256: {}", TokenHash::of(&token).to_hex());
            eprintln!("Store the token now: only its hash is kept.");
            Ok(())
        }
    }
}

async fn serve(config_path: PathBuf) -> anyhow::Result<()> {
    let config = Config::load(&config_path)?;
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("creating the data directory {}", config.data_dir.display()))?;
    let runtime = Runtime::new().map_err(|e| anyhow::anyhow!("starting the Wasm runtime: {e:#}"))?;
    let devices = WhatsappDevices::new(&config.data_dir);
    let gateway = Arc::new(Gateway::new(&config, &runtime, &|tenant, device| devices.open(tenant, device))?);
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("binding {}", config.listen))?;
    tracing::info!("waedge listening on http://{}", listener.local_addr()?);
    server::serve(listener, gateway, shutdown_signal()).await;
    devices.shutdown().await;
    tracing::info!("waedge stopped");
    Ok(())
}

async fn shutdown_signal() {
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("installing the SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
    tracing::info!("shutting down");
}
