//! The per-request cost of the Wasm edge, in process (no sockets): one
//! `GET /devices/main/profile` through [`Gateway::handle`], served
//!
//! - `native`: by the host's native port of the endpoint (the baseline, feature `bench`);
//! - `warm instance`: by the built-in component on an instance that served earlier requests;
//! - `fresh instance`: by a new instance from the `InstancePre` on the pooling allocator
//!   (`requests_per_instance = 1`): instantiation, the call, and the instance's teardown.
//!
//! The devices answer from the fixture world (no WhatsApp round trip), so what is measured is
//! routing, admission, the component and its host calls. `cargo bench --bench dispatch`
//! prints criterion's estimates, then each median as a ratio to the native one and the
//! differences between the paths;
//! `cargo test` runs each once.

use bytes::Bytes;
use criterion::{Criterion, criterion_group};
use http_body_util::{BodyExt, Full};
use waedge::Gateway;
use waedge_e2e::fixture::World;
use waedge_e2e::server::{TestGateway, fixtures};
use waedge_e2e::tenants::{ALICE, config};

const PROFILE: &str = "/devices/main/profile?jid=6281234567890@s.whatsapp.net";

/// Sends `path` with alice's token through `gateway` and returns the body.
async fn get(gateway: &Gateway, path: &str) -> Bytes {
    let request = http::Request::get(path)
        .header(http::header::HOST, "acme.test")
        .header(http::header::AUTHORIZATION, format!("Bearer {ALICE}"))
        .body(Full::new(Bytes::new()))
        .expect("a valid request");
    let response = gateway.handle(request).await;
    assert_eq!(response.status(), 200, "{path}");
    response.into_body().collect().await.expect("the body").to_bytes()
}

fn per_request(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("a tokio runtime");
    let world = World::load(&fixtures().join("world.toml")).expect("the fixture world");
    let routes = "{ prefix = \"/devices\", component = \"builtin:devices-api\" },\n          { prefix = \"/native\", component = \"native:devices-profile\" },";
    let warm = config(None).replacen("{ prefix = \"/devices\", component = \"builtin:devices-api\" },", routes, 1);
    let fresh =
        warm.replacen("max_request_body_bytes = 65536", "max_request_body_bytes = 65536, requests_per_instance = 1", 1);
    let warm = runtime.block_on(TestGateway::start(&warm, &world));
    let fresh = runtime.block_on(TestGateway::start(&fresh, &world));
    let native = format!("/native{PROFILE}");
    // The three paths answer the same bytes.
    let expected = runtime.block_on(get(warm.gateway(), PROFILE));
    assert_eq!(runtime.block_on(get(warm.gateway(), &native)), expected);
    assert_eq!(runtime.block_on(get(fresh.gateway(), PROFILE)), expected);

    let mut group = c.benchmark_group("GET /devices/{id}/profile");
    group.bench_function("native", |b| b.iter(|| runtime.block_on(get(warm.gateway(), &native))));
    group.bench_function("warm instance", |b| b.iter(|| runtime.block_on(get(warm.gateway(), PROFILE))));
    group.bench_function("fresh instance", |b| b.iter(|| runtime.block_on(get(fresh.gateway(), PROFILE))));
    group.finish();
}

/// Each path's median as a ratio to the native one, and the differences issue #14 sets targets
/// for (what a warm instance adds to native, what a fresh one adds to a warm one), from the
/// estimates criterion just wrote
/// (`target/criterion/GET _devices_{id}_profile/NAME/new/estimates.json`).
fn print_ratios() {
    let exe = std::env::current_exe().expect("the bench's path");
    // target/release/deps/dispatch-… → target/criterion
    let Some(criterion) = exe.ancestors().nth(3).map(|target| target.join("criterion")) else { return };
    let median = |name: &str| -> Option<f64> {
        let group = std::fs::read_dir(&criterion)
            .ok()?
            .filter_map(Result::ok)
            .find(|entry| entry.file_name().to_string_lossy().contains("profile"))?;
        let text = std::fs::read_to_string(group.path().join(name).join("new/estimates.json")).ok()?;
        serde_json::from_str::<serde_json::Value>(&text).ok()?["median"]["point_estimate"].as_f64()
    };
    let Some(native) = median("native") else { return };
    println!("\nmedians against the native baseline ({:.1} µs):", native / 1e3);
    let (warm, fresh) = (median("warm instance"), median("fresh instance"));
    for (name, measured) in [("warm instance", warm), ("fresh instance", fresh)] {
        if let Some(measured) = measured {
            println!("  {name}: {:.1} µs = {:.1}× native", measured / 1e3, measured / native);
        }
    }
    if let Some(warm) = warm {
        println!("  warm − native: {:.1} µs (target ≤ 8 µs)", (warm - native) / 1e3);
        if let Some(fresh) = fresh {
            println!("  fresh − warm: {:.1} µs (target ≤ 10 µs)", (fresh - warm) / 1e3);
        }
    }
}

criterion_group!(benches, per_request);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    if std::env::args().any(|arg| arg == "--bench") {
        print_ratios();
    }
}
