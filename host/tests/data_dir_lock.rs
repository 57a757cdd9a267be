//! One process per data directory: a second `waedge serve` on a data directory in use refuses
//! to start, names the process that holds it, and leaves that one serving.

mod support;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::{WAEDGE, Waedge, write_config};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_gateway_on_a_data_directory_in_use_refuses_to_start() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let config = write_config(dir.path(), "");
    let first = Waedge::start(&config);

    let mut second = Command::new(WAEDGE)
        .args(["serve", "--config", config.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the second waedge starts");
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = second.try_wait().expect("waiting for the second waedge") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = second.kill();
            panic!("a second waedge kept running on the data directory of the first");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let stderr = std::io::read_to_string(second.stderr.take().expect("piped stderr")).expect("its error output");
    assert!(!status.success(), "the second waedge exits with an error: {stderr}");
    assert!(
        stderr.contains(&format!("is in use by process {}", first.pid())),
        "the error names the process holding the data directory: {stderr}"
    );

    let health = reqwest::get(format!("{}/healthz", first.admin)).await.expect("the first waedge answers");
    assert_eq!(health.status(), 200, "the first waedge keeps serving");
    first.stop();
}
