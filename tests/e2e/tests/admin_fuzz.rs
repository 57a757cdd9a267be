//! Mutation-based fuzzing of the admin API's request bodies, over real sockets against the real
//! admin handler (coverage-guided fuzzing of the host crate would instrument wasmtime and
//! whatsapp-rust: see `fuzz/README.md`).
//!
//! A body each endpoint accepts is mutated structurally (wrong types, huge and negative
//! numbers, unknown, missing and duplicate fields, deep nesting, long strings, unicode, NUL,
//! bad escapes) and byte-wise (bit flips, invalid UTF-8, insertions, deletions, truncation)
//! with a seeded PRNG. Every answer must be a success or a 4xx with the documented error
//! envelope — never a 5xx, a dropped connection or a hang — and the gateway must go on serving
//! normal requests.
//!
//! `WAEDGE_FUZZ_ITERATIONS` sets the number of inputs (default [`ITERATIONS`]) and
//! `WAEDGE_FUZZ_SEED` the seed (default [`SEED`]): the same seed sends the same inputs. A long
//! run reports its progress every [`GATEWAY_INPUTS`] inputs.

use std::collections::BTreeMap;
use std::fmt;
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};
use waedge_e2e::fixture::World;
use waedge_e2e::server::{TestGateway, fixtures};
use waedge_e2e::tenants::{ALICE, config};

/// Inputs sent by a normal test run: about 15 seconds in a debug build.
const ITERATIONS: u64 = 4_000;
/// The seed of a normal test run.
const SEED: u64 = 0x000a_d417_f022;
/// The longest an answer may take: changes are applied in milliseconds (the admin API's own
/// limit, 30 s before a 503, is a failure too).
const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);
/// Inputs between two checks that the gateway still serves normal requests.
const HEALTH_EVERY: u64 = 250;
/// Inputs one gateway takes before a fresh one replaces it. Every stored component version
/// stays compiled and is reloaded with every change (rollbacks are swaps), so a gateway slows
/// down as the mutated components that still compile pile up.
const GATEWAY_INPUTS: u64 = 20_000;
/// Findings kept before the run stops: enough to tell one bug from several.
const MAX_FINDINGS: usize = 20;
/// The largest body the admin API reads (`host/src/admin/mod.rs`, `MAX_BODY`).
const MAX_BODY: usize = 1 << 20;

/// The tenant the per-tenant endpoints are fuzzed on, and its device and user.
const TENANT: &str = "fuzz";
const DEVICE: &str = "phone";
const USER: &str = "f0220000-0000-4000-8000-000000000001";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutated_admin_bodies_get_json_errors_and_never_break_the_gateway() {
    let iterations = env_number("WAEDGE_FUZZ_ITERATIONS", ITERATIONS);
    let seed = env_number("WAEDGE_FUZZ_SEED", SEED);
    let client = reqwest::Client::builder().timeout(ANSWER_TIMEOUT).build().expect("an HTTP client");
    let endpoints = endpoints();
    let mut gw = gateway(&client, &endpoints).await;

    let mut rng = Rng::new(seed);
    let mut findings = Vec::new();
    let mut tally = Tally::default();
    let started = Instant::now();
    let mut sent = 0;
    while sent < iterations && findings.len() < MAX_FINDINGS {
        let endpoint = &endpoints[rng.below(endpoints.len())];
        let body = endpoint.body.mutate(&mut rng);
        let asked = Instant::now();
        let answer = send(&gw, &client, endpoint, body.clone()).await;
        tally.add(endpoint, &answer, asked.elapsed());
        if let Err(problem) = answer.check(endpoint, &body) {
            let body = String::from_utf8_lossy(&body[..body.len().min(300)]).into_owned();
            findings.push(format!("input {sent} (seed {seed:#x}): {}: {problem}\n  body: {body:?}", endpoint.name()));
        }
        sent += 1;
        if sent % HEALTH_EVERY == 0 {
            assert_serves(&gw).await;
        }
        if sent % GATEWAY_INPUTS == 0 && sent < iterations {
            eprintln!("{sent} inputs in {:.1?}, {} findings so far", started.elapsed(), findings.len());
            gw = gateway(&client, &endpoints).await;
        }
    }
    assert_serves(&gw).await;
    let elapsed = started.elapsed();
    eprintln!("{sent} mutated bodies in {elapsed:.1?} ({:.0}/s):\n{tally}", sent as f64 / elapsed.as_secs_f64());
    assert!(findings.is_empty(), "{} findings:\n{}", findings.len(), findings.join("\n"));
}

/// A gateway with the test tenants and the tenant [`TENANT`] with its device and user, where
/// every endpoint's unmutated body gets the status it is documented to get.
async fn gateway(client: &reqwest::Client, endpoints: &[Endpoint]) -> TestGateway {
    let world = World::load(&fixtures().join("world.toml")).expect("fixture world");
    let gw = TestGateway::start(&config(None), &world).await;
    let setup = [
        ("/v1/tenants".to_string(), json!({"id": TENANT})),
        (format!("/v1/tenants/{TENANT}/devices"), json!({"id": DEVICE})),
        (format!("/v1/tenants/{TENANT}/users"), json!({"id": USER, "devices": [DEVICE]})),
    ];
    for (path, body) in setup {
        let created = gw.admin(Method::POST, &path, body).await;
        assert_eq!(created.status, 201, "{path}: {}", created.text);
    }
    for endpoint in endpoints {
        let answer = send(&gw, client, endpoint, endpoint.body.to_bytes()).await;
        assert_eq!(answer.status(), Some(endpoint.accepted), "{}: the unmutated body: {answer:?}", endpoint.name());
    }
    gw
}

/// The gateway answers health checks, is not stale, and serves the admin API and the API.
async fn assert_serves(gw: &TestGateway) {
    let health = gw.admin(Method::GET, "/healthz", Value::Null).await;
    assert_eq!((health.status, health.json), (200, json!({"status": "ok"})));
    let ready = gw.admin(Method::GET, "/readyz", Value::Null).await;
    assert_eq!((ready.status, &ready.json["status"]), (200, &json!("ready")), "every change applied: {}", ready.text);
    let tenant = gw.admin(Method::GET, &format!("/v1/tenants/{TENANT}"), Value::Null).await;
    assert_eq!((tenant.status, &tenant.json["id"]), (200, &json!(TENANT)), "{}", tenant.text);
    // By acme's host: a fuzzed tenant may claim `localhost` or `127.0.0.1`, never a host
    // another tenant has.
    let groups = gw.request(Method::GET, "/devices/main/groups", Some(ALICE), Some("acme.test"), Vec::new()).await;
    assert_eq!(groups.status, 200, "the API still serves: {}", groups.text);
}

/// `name` from the environment, or `default`.
fn env_number(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(value) => value.parse().unwrap_or_else(|_| panic!("{name}={value:?} is not a number")),
        Err(_) => default,
    }
}

/// An admin endpoint that reads a request body, with a body it accepts.
struct Endpoint {
    method: Method,
    path: String,
    body: Body,
    /// The status the unmutated body gets.
    accepted: u16,
}

impl Endpoint {
    fn new(method: Method, path: impl Into<String>, body: Body, accepted: u16) -> Self {
        Endpoint { method, path: path.into(), body, accepted }
    }

    /// `METHOD /path`, for messages.
    fn name(&self) -> String {
        format!("{} {}", self.method, self.path)
    }
}

/// Every admin endpoint that reads a body. Limits are fuzzed within the tenant bodies.
fn endpoints() -> Vec<Endpoint> {
    let limits = json!({
        "request_timeout_ms": 5000, "memory_mib": 32, "max_request_body_bytes": 65536,
        "max_concurrent_requests": 16, "anonymous_requests_per_second": 0, "cache_ttl_seconds": 30,
        "requests_per_instance": 10, "requests_per_second": 50, "burst": 100,
    });
    let tenant = format!("/v1/tenants/{TENANT}");
    vec![
        Endpoint::new(
            Method::POST,
            "/v1/tenants",
            Body::Json(json!({
                "id": "initech", "name": "Initech", "hosts": ["initech.test"], "limits": limits,
                "outbound_hosts": ["api.initech.test"], "outbound_private_hosts": [],
                "settings": {"greeting": "hello", "webhook_secret": "s3cret"},
            })),
            201,
        ),
        Endpoint::new(
            Method::PATCH,
            tenant.clone(),
            Body::Json(json!({
                "name": "Fuzz", "hosts": ["fuzz.test"], "limits": limits, "outbound_hosts": ["api.fuzz.test"],
                "outbound_private_hosts": ["api.fuzz.test"], "settings": {"mode": "fuzz"},
            })),
            200,
        ),
        Endpoint::new(
            Method::POST,
            format!("{tenant}/users"),
            Body::Json(json!({"name": "Bob", "devices": [DEVICE], "scopes": ["read", "send"]})),
            201,
        ),
        Endpoint::new(
            Method::PUT,
            format!("{tenant}/users/{USER}"),
            Body::Json(json!({"id": USER, "name": "Fuzzer", "devices": [DEVICE], "scopes": ["read"]})),
            200,
        ),
        Endpoint::new(Method::POST, format!("{tenant}/users/{USER}/tokens"), Body::Unread(json!({})), 201),
        Endpoint::new(Method::POST, format!("{tenant}/devices"), Body::Json(json!({"id": "second"})), 201),
        // Fixture devices are linked by their world file: a valid request is refused with 409.
        Endpoint::new(
            Method::POST,
            format!("{tenant}/devices/{DEVICE}/pair-code"),
            Body::Json(json!({"phone_number": "+62 812-3456-7890"})),
            409,
        ),
        Endpoint::new(
            Method::PUT,
            format!("{tenant}/routes"),
            Body::Json(json!({"prefix": "/devices", "component": "builtin:devices-api"})),
            200,
        ),
        Endpoint::new(
            Method::POST,
            format!("{tenant}/components/hello?activate=false"),
            Body::Wasm(waedge_e2e::guests::get("hello")),
            201,
        ),
    ]
}

/// A body an endpoint accepts, to mutate.
enum Body {
    Json(Value),
    /// JSON sent to an endpoint that reads no body: whatever is sent is ignored.
    Unread(Value),
    /// A component: only byte-wise mutations make sense.
    Wasm(&'static [u8]),
}

impl Body {
    fn to_bytes(&self) -> Vec<u8> {
        match self {
            Body::Json(value) | Body::Unread(value) => value.to_string().into_bytes(),
            Body::Wasm(bytes) => bytes.to_vec(),
        }
    }

    fn content_type(&self) -> &'static str {
        match self {
            Body::Json(_) | Body::Unread(_) => "application/json",
            Body::Wasm(_) => "application/wasm",
        }
    }

    /// A mutant: JSON is mutated structurally, then (or only) byte-wise.
    fn mutate(&self, rng: &mut Rng) -> Vec<u8> {
        let mut bytes = match self {
            Body::Json(value) | Body::Unread(value) if !rng.chance(4) => structural::mutant(value, rng),
            _ => self.to_bytes(),
        };
        if matches!(self, Body::Wasm(_)) || rng.chance(3) {
            for _ in 0..=rng.below(3) {
                bytewise::mutate(&mut bytes, rng);
            }
        }
        bytes
    }
}

/// Sends `body` to `endpoint` with the admin token.
async fn send(gw: &TestGateway, client: &reqwest::Client, endpoint: &Endpoint, body: Vec<u8>) -> Answer {
    let request = client
        .request(endpoint.method.clone(), format!("{}{}", gw.admin_base(), endpoint.path))
        .bearer_auth(gw.admin_token())
        .header(reqwest::header::CONTENT_TYPE, endpoint.body.content_type())
        .body(body);
    let response = match request.send().await {
        Ok(response) => response,
        Err(e) if e.is_timeout() => return Answer::Hung,
        Err(e) => return Answer::Dropped(format!("{e:?}")),
    };
    let status = response.status().as_u16();
    let content_type = response.headers().get(reqwest::header::CONTENT_TYPE).cloned();
    match response.bytes().await {
        Ok(body) => Answer::Response { status, content_type, body: body.to_vec() },
        Err(e) if e.is_timeout() => Answer::Hung,
        Err(e) => Answer::Dropped(format!("reading the body: {e:?}")),
    }
}

/// The answers of a run by endpoint: how many of each status, and the time they took.
#[derive(Default)]
struct Tally(BTreeMap<String, (Duration, BTreeMap<String, u64>)>);

impl Tally {
    fn add(&mut self, endpoint: &Endpoint, answer: &Answer, took: Duration) {
        let (time, answers) = self.0.entry(endpoint.name()).or_default();
        *time += took;
        let answer = match answer {
            Answer::Response { status, .. } => status.to_string(),
            Answer::Dropped(_) => "dropped".to_string(),
            Answer::Hung => "hung".to_string(),
        };
        *answers.entry(answer).or_default() += 1;
    }
}

impl fmt::Display for Tally {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (endpoint, (time, answers)) in &self.0 {
            let answers: Vec<String> = answers.iter().map(|(answer, count)| format!("{answer}: {count}")).collect();
            writeln!(f, "  {endpoint} ({time:.1?}): {}", answers.join(", "))?;
        }
        Ok(())
    }
}

/// What the admin API did with an input.
#[derive(Debug)]
enum Answer {
    Response { status: u16, content_type: Option<reqwest::header::HeaderValue>, body: Vec<u8> },
    Dropped(String),
    Hung,
}

impl Answer {
    fn status(&self) -> Option<u16> {
        match self {
            Answer::Response { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// Whether this is a success or a documented 4xx for `sent` to `endpoint`.
    fn check(&self, endpoint: &Endpoint, sent: &[u8]) -> Result<(), String> {
        let (status, content_type, body) = match self {
            Answer::Response { status, content_type, body } => (*status, content_type, body),
            Answer::Dropped(error) => return Err(format!("the connection dropped: {error}")),
            Answer::Hung => return Err(format!("no answer within {ANSWER_TIMEOUT:?}")),
        };
        let text = String::from_utf8_lossy(body);
        let json = || serde_json::from_slice::<Value>(body).map_err(|e| format!("{status} with a non-JSON body: {e}"));
        match status {
            204 => return if body.is_empty() { Ok(()) } else { Err(format!("204 with a body: {text}")) },
            200..=299 => return json().map(drop),
            400..=499 => {}
            _ => return Err(format!("{status}: {text}")),
        }
        if content_type.as_ref().is_none_or(|value| value != "application/json") {
            return Err(format!("{status} with content type {content_type:?}: {text}"));
        }
        let code = error_code(&json()?).ok_or_else(|| format!("{status} without the error envelope: {text}"))?;
        match expected_error(endpoint, sent) {
            Some(expected) if expected != (status, code.as_str()) => {
                Err(format!("{status} {code} where {expected:?} was due: {text}"))
            }
            _ => Ok(()),
        }
    }
}

/// The `error.code` of the documented envelope `{"error": {"code", "message"}}`: no other
/// fields, a SCREAMING_SNAKE_CASE code and a message that is not empty.
fn error_code(json: &Value) -> Option<String> {
    let envelope = json.as_object().filter(|object| object.len() == 1)?;
    let error = envelope.get("error")?.as_object().filter(|error| error.len() == 2)?;
    let code = error.get("code")?.as_str().filter(|code| {
        !code.is_empty() && code.bytes().all(|b| b.is_ascii_uppercase() || b == b'_' || b.is_ascii_digit())
    })?;
    error.get("message")?.as_str().filter(|message| !message.trim().is_empty())?;
    Some(code.to_string())
}

/// The error due for `sent` whatever the endpoint makes of it: 413 past the size limit, and
/// 400 `INVALID` for JSON that does not parse.
fn expected_error(endpoint: &Endpoint, sent: &[u8]) -> Option<(u16, &'static str)> {
    match &endpoint.body {
        Body::Wasm(_) => None,
        _ if sent.len() > MAX_BODY => Some((413, "PAYLOAD_TOO_LARGE")),
        Body::Unread(_) => None,
        Body::Json(_) if sent.iter().all(u8::is_ascii_whitespace) => None,
        Body::Json(_) => serde_json::from_slice::<Value>(sent).is_err().then_some((400, "INVALID")),
    }
}

/// A small deterministic PRNG (SplitMix64): the same seed, the same inputs.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Rng(seed)
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n` > 0).
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    /// True once in `n` times.
    fn chance(&mut self, n: usize) -> bool {
        self.below(n) == 0
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())]
    }
}

/// Mutations of the JSON value tree. Text JSON cannot hold as a value (numbers beyond `f64`,
/// deep nesting, duplicate keys, bad escapes) is spliced in as a raw fragment.
mod structural {
    use serde_json::{Map, Value, json};

    use super::Rng;

    /// Strings worth trying in any field.
    const STRINGS: &[&str] = &[
        "",
        " ",
        "\u{0}",
        "a\u{0}b",
        "é",
        "😀",
        "\u{202e}gnp.exe",
        "\u{feff}",
        "\u{fffd}",
        "\u{10ffff}",
        "ǅ",
        "\r\n",
        "\\",
        "\"",
        "%00",
        "../../etc/passwd",
        "/dev/zero",
        "/proc/self/mem",
        "builtin:",
        "builtin:contacts-api",
        "component:",
        "component:hello",
        "component:../hello",
        "/",
        "//",
        "/a/../b",
        "acme",
        "ACME",
        "acme.test",
        "localhost",
        "127.0.0.1",
        "[::1]:8080",
        "http://x.test:80/",
        "*",
        "a11ce000-0000-4000-8000-000000000001",
        "00000000-0000-0000-0000-000000000000",
        "+62 812-3456-7890",
        "6281234567890@s.whatsapp.net",
    ];

    /// Numbers as text: beyond `u64`, `i64` and `f64`, negative zero, exponents.
    const NUMBERS: &[&str] = &[
        "18446744073709551616",
        "-9223372036854775809",
        "123456789012345678901234567890",
        "1e400",
        "-1e400",
        "1e-400",
        "-0",
        "1E2",
        "4294967296",
        "65536",
    ];

    /// Text that is not valid JSON, or barely is.
    const BAD: &[&str] = &[
        "\"\\ud800\"",
        "\"\\udc00\\ud800\"",
        "\"\\u0000\"",
        "\"\\x41\"",
        "'single'",
        "\"unterminated",
        "NaN",
        "Infinity",
        "undefined",
        "0x10",
        "01",
        "+1",
        ".5",
        "[1,]",
        "{\"a\":1,}",
        "",
    ];

    /// The text of a mutant of `value`.
    pub fn mutant(value: &Value, rng: &mut Rng) -> Vec<u8> {
        let mut value = value.clone();
        let mut raws = Vec::new();
        for _ in 0..=rng.below(3) {
            mutate(node(&mut value, rng), rng, &mut raws);
        }
        let mut text = value.to_string();
        for (i, raw) in raws.iter().enumerate() {
            text = text.replacen(&format!("\"\\u0001raw{i}\\u0001\""), raw, 1);
        }
        text.into_bytes()
    }

    /// A node of `value` at random: the root, a child, a grandchild …
    fn node<'a>(value: &'a mut Value, rng: &mut Rng) -> &'a mut Value {
        let children = match value {
            Value::Array(items) => items.len(),
            Value::Object(fields) => fields.len(),
            _ => 0,
        };
        if children == 0 || rng.chance(3) {
            return value;
        }
        let child = rng.below(children);
        match value {
            Value::Array(items) => node(&mut items[child], rng),
            Value::Object(fields) => node(fields.values_mut().nth(child).expect("a child"), rng),
            _ => unreachable!("only arrays and objects have children"),
        }
    }

    /// Replaces `node` with `text`, spliced in after serialisation.
    fn raw(node: &mut Value, text: String, raws: &mut Vec<String>) {
        *node = Value::String(format!("\u{1}raw{}\u{1}", raws.len()));
        raws.push(text);
    }

    fn mutate(node: &mut Value, rng: &mut Rng, raws: &mut Vec<String>) {
        match rng.below(10) {
            0 => *node = other_value(node, rng),
            1 => raw(node, rng.pick(NUMBERS).to_string(), raws),
            2 => raw(node, rng.pick(BAD).to_string(), raws),
            3 => {
                let depth = rng.pick(&[16, 127, 128, 129, 1_000, 100_000]);
                let (open, close) = rng.pick(&[("[", "]"), ("{\"a\":", "}")]);
                raw(node, format!("{}1{}", open.repeat(depth), close.repeat(depth)), raws);
            }
            4 => match node {
                Value::Object(fields) if !fields.is_empty() => {
                    let duplicate = fields.keys().nth(rng.below(fields.len())).expect("a field").clone();
                    let mut members: Vec<String> =
                        fields.iter().map(|(key, value)| format!("{}:{value}", Value::from(key.as_str()))).collect();
                    let copy = format!("{}:{}", Value::from(duplicate.as_str()), other_value(&fields[&duplicate], rng));
                    members.insert(rng.below(members.len() + 1), copy);
                    raw(node, format!("{{{}}}", members.join(",")), raws);
                }
                _ => *node = json!({ "key": node.take() }),
            },
            5 => match node {
                Value::Object(fields) if !fields.is_empty() && rng.chance(2) => {
                    let key = fields.keys().nth(rng.below(fields.len())).expect("a field").clone();
                    fields.remove(&key);
                }
                Value::Object(fields) => {
                    let key = rng.pick(&["colour", "", "\u{0}", "id ", "ID", "__proto__", "limits"]).to_string();
                    fields.insert(key, other_value(&Value::Null, rng));
                }
                _ => *node = Value::Object(Map::new()),
            },
            6 => {
                // Many elements, but not much more than the body limit in all.
                let most = 2 * super::MAX_BODY / (node.to_string().len() + 1);
                let copies = rng.pick(&[2, 100, 10_000]).min(most).max(2);
                *node = Value::Array(vec![node.take(); copies]);
            }
            7 => *node = Value::String(long_string(rng)),
            8 => *node = Value::String(rng.pick(STRINGS).to_string()),
            _ => match node {
                Value::String(text) => {
                    let at = rng.below(text.len() + 1);
                    let at = (0..=at).rev().find(|&at| text.is_char_boundary(at)).expect("0 is a boundary");
                    text.insert_str(at, rng.pick(STRINGS));
                }
                _ => *node = other_value(node, rng),
            },
        }
    }

    /// A value of another type than the one usually there, or an extreme of its own type.
    fn other_value(node: &Value, rng: &mut Rng) -> Value {
        match rng.below(12) {
            0 => Value::Null,
            1 => Value::Bool(rng.chance(2)),
            2 => json!(u64::MAX),
            3 => json!(i64::MIN),
            4 => json!(-1),
            5 => json!(0),
            6 => json!(1.5),
            7 => json!(f64::MAX),
            8 => json!([]),
            9 => json!({}),
            10 => json!([node]),
            _ => Value::String(rng.pick(STRINGS).to_string()),
        }
    }

    /// A long string: past the admin API's limits on names and, rarely, past its body limit.
    fn long_string(rng: &mut Rng) -> String {
        let unit = rng.pick(&["a", "é", "😀", "\u{0}", "a."]);
        let count = match rng.chance(40) {
            true => (super::MAX_BODY / unit.len()) + 1,
            false => rng.pick(&[64, 65, 256, 4_096, 70_000]),
        };
        unit.repeat(count)
    }
}

/// Byte-wise mutations of a body's text.
mod bytewise {
    use super::Rng;

    /// Bytes that matter to a JSON parser, or to UTF-8.
    const INTERESTING: &[u8] = b"\x00\x7f\x80\xbf\xc0\xc3\xed\xf4\xff{}[]\",:\\-+.0eE \t\n";

    /// Applies one mutation to `bytes`.
    pub fn mutate(bytes: &mut Vec<u8>, rng: &mut Rng) {
        if bytes.is_empty() {
            bytes.push(rng.pick(INTERESTING));
            return;
        }
        let at = rng.below(bytes.len());
        match rng.below(8) {
            0 => bytes[at] ^= 1 << rng.below(8),
            1 => bytes[at] = rng.pick(INTERESTING),
            2 => bytes[at] = rng.next() as u8,
            3 => bytes.insert(at, rng.pick(INTERESTING)),
            4 => {
                // Invalid UTF-8: a lone continuation byte, a truncated sequence, an encoded
                // surrogate, an overlong encoding.
                let sequences: [&[u8]; 5] = [b"\x80", b"\xe2\x82", b"\xed\xa0\x80", b"\xc0\xaf", b"\xf8"];
                bytes.splice(at..at, rng.pick(&sequences).iter().copied());
            }
            5 => {
                let end = (at + 1 + rng.below(16)).min(bytes.len());
                bytes.drain(at..end);
            }
            6 => {
                let end = (at + 1 + rng.below(16)).min(bytes.len());
                let copy = bytes[at..end].to_vec();
                bytes.splice(at..at, copy);
            }
            _ => bytes.truncate(at),
        }
    }
}
