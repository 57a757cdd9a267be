//! Tokens do not leak where people read: an admin token is printed once, on standard output
//! only, and the public demo token of `waedge.toml` never serves other machines.

mod support;

use std::process::Command;

use support::{Waedge, cli, write_config};

/// The demo user of `waedge.toml`, with the public demo token.
const DEMO_TENANT: &str = r#"
[[tenants]]
id = "demo"
[[tenants.users]]
id = "8c1b0e7a-3f52-4c1d-9a6e-2d4f5b7c9e01"
token_sha256 = "3cce807e4702794a873c76d7276b0e8c1cb4d09b6c6d82707a382c9cfc4b68a0"
"#;

#[test]
fn a_new_admin_token_is_printed_once_on_standard_output_only() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "");
    let output = cli(&["admin-token", "create", "--config", config.to_str().unwrap()], None);
    assert!(output.status.success());
    let token = String::from_utf8(output.stdout).unwrap().trim().to_string();
    assert_eq!(token.len(), 36, "a UUID token: {token}");
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(stderr.contains("created"), "{stderr}");
    assert!(!stderr.contains(&token), "the token was echoed to standard error: {stderr}");
}

#[test]
fn the_admin_token_is_not_taken_from_the_command_line() {
    let output = cli(&["tenant", "list", "--admin-token", "x"], None);
    assert!(!output.status.success());
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(stderr.contains("--admin-token"), "{stderr}");
}

#[test]
fn the_public_demo_token_serves_only_this_machine() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), DEMO_TENANT).to_str().unwrap().to_string();
    // On loopback: served, with a warning.
    let gateway = Waedge::start(config.as_ref());
    let log = gateway.stop();
    assert!(log.contains("still has the public demo token"), "{log}");
    // Listening for other machines: refused, saying what to do.
    let text =
        std::fs::read_to_string(&config).unwrap().replacen("listen = \"127.0.0.1:0\"", "listen = \"0.0.0.0:0\"", 1);
    std::fs::write(&config, text).unwrap();
    let output = Command::new(support::WAEDGE).args(["serve", "--config", &config]).output().expect("waedge runs");
    assert!(!output.status.success(), "waedge served other machines with the demo token");
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(stderr.contains("public demo token") && stderr.contains("waedge token revoke demo"), "{stderr}");
}
