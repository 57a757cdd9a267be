//! schemathesis (PyPI) against both listeners of a running gateway: the admin API with
//! `host/openapi.json`, and the built-in devices and contacts APIs with the operations of that
//! file tagged `devices-api` and `contacts-api` (the seed documents), each authenticated, on
//! the fixture tenants, users and devices. It generates requests from the document, valid and
//! invalid, and fails on any answer the document does not allow: a server error, an
//! undocumented status, content type or header, a body off its schema, a valid request
//! refused, an invalid one accepted, an undeclared method not answered with 405 and `Allow`.

use std::path::{Path, PathBuf};

use waedge_e2e::fixture::World;
use waedge_e2e::server::{TestGateway, fixtures};
use waedge_e2e::tenants::{ALICE, config};

/// eve, globex's user (`waedge_e2e::tenants`).
const EVE_ID: &str = "e7e00000-0000-4000-8000-000000000004";

/// The workspace's root.
fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `schemathesis`, as `scripts/setup --test-tools` installs it, or from `PATH`.
fn schemathesis() -> Option<PathBuf> {
    let installed = workspace().join("target/tools/py/bin/schemathesis");
    if installed.is_file() {
        return Some(installed);
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|dir| dir.join("schemathesis")).find(|tool| tool.is_file())
}

/// One `schemathesis run`: the operations of `host/openapi.json` tagged `tag` but those with
/// the ids in `excluded`, against the listener at `base`, sending `Authorization: Bearer
/// token`, with the path parameters of `parameters` fixed to fixtures that exist, and `config`
/// added to schemathesis's configuration file.
struct Run<'a> {
    tag: &'a str,
    base: &'a str,
    token: &'a str,
    parameters: &'a [(&'a str, &'a str)],
    excluded: &'a [&'a str],
    config: &'a str,
}

impl Run<'_> {
    /// Runs schemathesis; its report, and whether it found nothing.
    async fn go(&self, tool: &Path) -> (String, bool) {
        let work = tempfile::tempdir().expect("a directory for schemathesis's files");
        let config = work.path().join("schemathesis.toml");
        let parameters: String =
            self.parameters.iter().map(|(name, value)| format!("\"path.{name}\" = \"{value}\"\n")).collect();
        std::fs::write(&config, format!("[parameters]\n{parameters}\n{}", self.config))
            .expect("the configuration is written");
        let mut command = tokio::process::Command::new(tool);
        command
            .arg("--config-file")
            .arg(&config)
            .arg("run")
            .arg(workspace().join("host/openapi.json"))
            .args(["--url", self.base, "--include-tag", self.tag])
            .args(["--header", &format!("Authorization: Bearer {}", self.token)])
            // No `--checks`: schemathesis then runs every check but max_response_time (which
            // needs a limit), the five named in issue #12 among them (not_a_server_error,
            // status_code_conformance, response_schema_conformance, negative_data_rejection,
            // positive_data_acceptance), and unsupported_method's 405 with `Allow`. `--checks
            // all` would enable each check on the command line, which 4.32.5 ranks above the
            // configuration file: a check switched off there would run all the same.
            // Bounded: under a minute on two cores for the three runs, every phase included.
            // One worker: two threads make CPython 3.11's ast.parse, which hypothesis calls to
            // describe a filter, fail now and then with "AST constructor recursion depth
            // mismatch", a runtime error in schemathesis rather than a finding.
            .args(["--max-examples", "20", "--workers", "1", "--request-timeout", "10"])
            .args(["--generation-database", "none", "--no-color"])
            // A fixed seed: every run sends the same examples, so the test fails on a change of
            // the server or the documents, not on a draw. Drop it by hand to explore further.
            .args(["--seed", "12"])
            .current_dir(work.path());
        for id in self.excluded {
            command.args(["--exclude-operation-id", id]);
        }
        let output = command.output().await.expect("schemathesis runs");
        let report = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
        (report, output.status.success())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs schemathesis (scripts/setup --test-tools)"]
async fn both_listeners_answer_as_their_documents_say() {
    let tool = schemathesis().expect("schemathesis is needed: scripts/setup --test-tools installs it");
    let world = World::load(&fixtures().join("world.toml")).expect("fixture world");
    let gw = TestGateway::start(&config(None), &world).await;
    // The API listener first: the admin run changes the fixture tenants. alice, of acme, may
    // use acme's `main`, whose fixture session knows the documents' example contacts.
    let api = |tag| Run {
        tag,
        base: gw.base(),
        token: ALICE,
        parameters: &[("device_id", "main")],
        excluded: &[],
        // The seed documents (which must not change) type `jid` and `number` as optional
        // strings; their descriptions require one of the two, and a WhatsApp identifier, which
        // their schemas do not say: such requests are answered 400 VALIDATION_ERROR, as the
        // documents list.
        // The fixture devices send no messages: a valid send (or verification code) is
        // answered 502 UPSTREAM_ERROR, as the document lists (openapi.rs checks the successes on
        // devices that send). A text longer than acme's `max_request_body_bytes` (64 KiB) is
        // refused by the host, with 413.
        config: "[checks.positive_data_acceptance]\n\
                 expected-statuses = [\"2xx\", \"3xx\", \"400\", \"401\", \"403\", \"404\", \"409\", \"429\", \"5xx\"]\n\
                 [[operations]]\n\
                 include-operation-id = \"devicesApiSendMessage\"\n\
                 checks.not_a_server_error.expected-statuses = [\"2xx\", \"3xx\", \"4xx\", \"502\"]\n\
                 checks.negative_data_rejection.expected-statuses = \
                 [\"400\", \"401\", \"403\", \"404\", \"405\", \"413\", \"422\", \"429\", \"5xx\"]\n\
                 [[operations]]\n\
                 include-operation-id = \"devicesApiStartLidVerification\"\n\
                 checks.not_a_server_error.expected-statuses = [\"2xx\", \"3xx\", \"4xx\", \"502\"]\n",
    };
    let admin = Run {
        tag: "admin",
        base: gw.admin_base(),
        token: gw.admin_token(),
        parameters: &[("tenant", "globex"), ("device", "main"), ("user", EVE_ID)],
        excluded: &[
            // A component upload is a `.wasm` body, which schemathesis cannot make; deploys are
            // tested in components.rs and openapi.rs.
            "deployComponent",
            // A stream that lasts as long as the linking it follows (openapi.rs reads its first
            // event against wa-sim).
            "streamLinkEvents",
            // The tenant's events as a stream that lasts as long as the tenant (openapi.rs and
            // host/tests/events.rs read it).
            "streamEvents",
            // They would delete the fixtures every other operation works on (with the path
            // parameters fixed to them); openapi.rs and admin_api.rs call them.
            "deleteTenant",
            "deleteDevice",
            "deleteUser",
        ],
        config: "\
            # With the path parameters fixed to the fixtures, the links schemathesis infers from a\n\
            # created resource lead to the fixtures instead: no check of those links.\n\
            [checks.ensure_resource_availability]\n\
            enabled = false\n",
    };
    let mut failed = Vec::new();
    for run in [api("devices-api"), api("contacts-api"), admin] {
        let (report, passed) = run.go(&tool).await;
        println!("schemathesis on the {} operations:\n{report}", run.tag);
        if !passed {
            failed.push(run.tag);
        }
    }
    assert!(failed.is_empty(), "schemathesis found failures in the {failed:?} operations (reports above)");
}
