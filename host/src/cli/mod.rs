//! The command line: `serve` runs the gateway; `admin-token` works on the store directly;
//! everything else talks to a running gateway's admin API ([`client`]) and prints human
//! tables or, with `--json`, the API's JSON ([`output`]).

mod client;
mod cluster;
mod commands;
mod migrate;
mod output;
mod serve;

use std::io::{IsTerminal, Read};
use std::path::PathBuf;
use std::process::ExitCode;
use waedge_store::admin::AdminScope;
use waedge_store::token::TokenHash;

use crate::config::Config;
use crate::telemetry::log::LogWriter;
use anyhow::Context;
use clap::{Args, Parser, Subcommand};

use commands::Resource;

/// WhatsApp edge gateway: device sessions in the host, request logic in Wasm components.
#[derive(Parser)]
#[command(version, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    #[command(flatten)]
    connection: Connection,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway (API and admin listeners).
    Serve {
        /// The configuration file.
        #[arg(long, short, default_value = "waedge.toml")]
        config: PathBuf,
        /// Redeploy DIR/TENANT/NAME.wasm as TENANT's component NAME whenever it changes.
        #[arg(long, value_name = "DIR")]
        watch: Option<PathBuf>,
    },
    /// Create, list and revoke admin-API tokens (works on the store directly: run it where
    /// the data directory is).
    AdminToken {
        #[command(subcommand)]
        action: AdminTokenAction,
        /// The configuration file naming the data directory.
        #[arg(long, short, default_value = "waedge.toml", global = true)]
        config: PathBuf,
    },
    /// Work on the store itself (run it where the data directory is, with the gateway
    /// stopped).
    Store {
        #[command(subcommand)]
        action: StoreAction,
        /// The configuration file naming the data directory and the store.
        #[arg(long, short, default_value = "waedge.toml", global = true)]
        config: PathBuf,
    },
    /// The nodes sharing a PostgreSQL store and the devices each runs (read from the store
    /// itself: run it where a node's configuration is).
    Cluster {
        #[command(subcommand)]
        action: ClusterAction,
        /// The configuration file naming the store.
        #[arg(long, short, default_value = "waedge.toml", global = true)]
        config: PathBuf,
    },
    /// Print the SHA-256 of an API token read from standard input (for `token_sha256`).
    HashToken,
    /// Make a new API token and print it with its hash (for a configuration file's seed).
    NewToken,
    /// Compile a component read from standard input into standard output: the child process
    /// `serve` runs, under its `[compile]` budget, for each component a tenant deploys.
    #[command(name = crate::runtime::compiler::SUBCOMMAND, hide = true)]
    CompileComponent,
    /// Everything else talks to a running gateway's admin API.
    #[command(flatten)]
    Remote(Resource),
}

#[derive(Subcommand)]
enum AdminTokenAction {
    /// Create an admin token and print it (once: only its hash is kept).
    Create {
        /// Make it expire after this long: a number and a unit, `s`, `m`, `h` or `d` (e.g.
        /// `90d`, `12h`). Without it, it lasts until revoked.
        #[arg(long, value_name = "LIFETIME", value_parser = lifetime)]
        expires_in: Option<std::time::Duration>,
        /// Limit it to this tenant: its users, devices, routes and components, and reading
        /// the tenant (not changing its limits, hosts or allow-lists, nor other tenants).
        #[arg(long, value_name = "TENANT")]
        tenant: Option<String>,
        /// Limit it to reading (GET).
        #[arg(long)]
        read_only: bool,
    },
    /// List admin tokens (never the tokens themselves).
    List,
    /// Revoke an admin token by its id.
    Revoke {
        /// The token's id, from `admin-token list`.
        id: String,
    },
}

#[derive(Subcommand)]
enum StoreAction {
    /// Copy the SQLite store of the data directory (`waedge.db`) into the PostgreSQL store
    /// the configuration's `store` names, which must be empty — all of it, or nothing — and
    /// the WhatsApp sessions of its linked devices with it.
    Migrate,
}

#[derive(Subcommand)]
enum ClusterAction {
    /// Print the nodes (alive or not, and the count of changes each serves), each device's
    /// lease, and how many devices each node runs.
    Status,
}

/// Where the admin API is and how to authenticate, and how to print answers.
#[derive(Args, Clone)]
pub struct Connection {
    /// The admin API's base URL.
    #[arg(long, env = "WAEDGE_ADMIN_URL", default_value = "http://127.0.0.1:8081", global = true)]
    pub admin_url: String,
    /// The admin token, from the environment variable `WAEDGE_ADMIN_TOKEN` only: a command
    /// line is visible to every user of the machine (`ps`).
    #[arg(skip = std::env::var("WAEDGE_ADMIN_TOKEN").ok().filter(|token| !token.is_empty()))]
    pub admin_token: Option<String>,
    /// Print the admin API's JSON instead of tables.
    #[arg(long, global = true)]
    pub json: bool,
}

/// The `waedge` command: sets up logging to standard error, parses the command line and runs
/// the command; an error is printed as one line.
///
/// Log lines (an access line per request among them) are written to standard error in
/// batches by a thread of their own ([`LogWriter`]): a request never waits on the write, and
/// wakes the thread only when it is idle. No line is dropped; what is still waiting is written
/// when the command returns (a panic of the main thread unwinds to here too), before its
/// error.
pub fn main() -> ExitCode {
    let (writer, written) = LogWriter::new(std::io::stderr());
    tracing_subscriber::fmt()
        .with_writer(writer)
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .init();
    let result = run();
    drop(written);
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Parses the command line and runs the command.
fn run() -> anyhow::Result<ExitCode> {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve { config, watch } => {
            let runtime = tokio::runtime::Runtime::new().context("starting tokio")?;
            runtime.block_on(serve::serve(&config, watch))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::AdminToken { action, config } => admin_token(action, &config),
        Command::Cluster { action: ClusterAction::Status, config } => {
            let runtime = tokio::runtime::Runtime::new().context("starting tokio")?;
            runtime.block_on(cluster::status(&config))
        }
        Command::Store { action: StoreAction::Migrate, config } => migrate::migrate(&config),
        Command::HashToken => {
            let mut token = String::new();
            std::io::stdin().read_to_string(&mut token).context("reading the token from standard input")?;
            println!("{}", TokenHash::of(token.trim()).to_hex());
            Ok(ExitCode::SUCCESS)
        }
        Command::NewToken => {
            let token = uuid::Uuid::new_v4().to_string();
            println!("token:        {token}\ntoken_sha256: {}", TokenHash::of(&token).to_hex());
            eprintln!("Store the token now: only its hash is kept.");
            Ok(ExitCode::SUCCESS)
        }
        Command::CompileComponent => Ok(crate::runtime::compiler::serve_child()),
        Command::Remote(resource) => commands::run(resource, &cli.connection),
    }
}

fn admin_token(action: AdminTokenAction, config: &std::path::Path) -> anyhow::Result<ExitCode> {
    let config = Config::load(config)?;
    let store = serve::open_store(&config)?;
    match action {
        AdminTokenAction::Create { expires_in, tenant, read_only } => {
            let (record, token) = store.create_admin_token(expires_in, AdminScope { tenant, read_only })?;
            // Standard output only, once: standard error often ends up in a log.
            println!("{token}");
            let until = record.expires_at.map(|at| format!(" It expires at {at}.")).unwrap_or_default();
            eprintln!(
                "Admin token {} ({}) created. It is printed above, only this once: put it in \
                 WAEDGE_ADMIN_TOKEN.{until}",
                record.id, record.scope
            );
        }
        AdminTokenAction::List => {
            let rows = store.admin_tokens()?.into_iter().map(|t| {
                let or_dash = |at: Option<String>| at.unwrap_or_else(|| "-".into());
                vec![t.id, t.scope.to_string(), t.created_at, or_dash(t.expires_at), or_dash(t.revoked_at)]
            });
            output::table(&["ID", "SCOPE", "CREATED", "EXPIRES", "REVOKED"], rows);
        }
        AdminTokenAction::Revoke { id } => {
            store.revoke_admin_token(&id)?;
            eprintln!("Admin token {id} revoked.");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Parses a lifetime such as `90d`, `12h`, `30m` or `3600s` (at least a second, at most 100
/// years).
fn lifetime(text: &str) -> Result<std::time::Duration, String> {
    let usage = || format!("`{text}` is not a lifetime: give a number and a unit, s, m, h or d (e.g. 90d)");
    let split = text.find(|c: char| !c.is_ascii_digit()).ok_or_else(usage)?;
    let count: i64 = text[..split].parse().map_err(|_| usage())?;
    let seconds = match &text[split..] {
        "s" => 1,
        "m" => 60,
        "h" => 3_600,
        "d" => 86_400,
        _ => return Err(usage()),
    };
    match count.checked_mul(seconds) {
        Some(total @ 1..=3_155_760_000) => Ok(std::time::Duration::from_secs(total as u64)),
        _ => Err(format!("`{text}`: a lifetime is at least 1s and at most 36525d")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lifetimes_have_a_unit_and_stay_in_range() {
        let seconds = |s| Ok(std::time::Duration::from_secs(s));
        assert_eq!(lifetime("90d"), seconds(90 * 86_400));
        assert_eq!(lifetime("12h"), seconds(12 * 3_600));
        assert_eq!(lifetime("30m"), seconds(1_800));
        assert_eq!(lifetime("1s"), seconds(1));
        for bad in ["", "90", "d", "-1d", "1.5h", "2w", "1 d"] {
            assert!(lifetime(bad).unwrap_err().contains("is not a lifetime"), "{bad}");
        }
        for out in ["0s", "36526d", "99999999999999999d"] {
            assert!(lifetime(out).is_err(), "{out}");
        }
    }
}
