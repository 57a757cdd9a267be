//! Process metrics in the Prometheus text format, served by the admin API at `/metrics`.
//!
//! Counters and histograms live behind one mutex each and are updated once per request (a
//! request's series are looked up, not rebuilt: the first request of a series allocates its
//! labels); device states are read from the sessions at scrape time.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use waedge_device::cache::CacheMetrics;

/// Upper bounds (seconds) of the latency histogram buckets.
const BUCKETS: [f64; 14] = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// A cumulative histogram of durations.
#[derive(Default, Clone)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

impl Histogram {
    fn observe(&mut self, elapsed: Duration) {
        let seconds = elapsed.as_secs_f64();
        for (count, bound) in self.counts.iter_mut().zip(BUCKETS) {
            if seconds <= bound {
                *count += 1;
            }
        }
        self.count += 1;
        self.sum += seconds;
    }

    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let sep = if labels.is_empty() { "" } else { "," };
        for (count, bound) in self.counts.iter().zip(BUCKETS) {
            let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"{bound}\"}} {count}");
        }
        let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {}", self.count);
        let _ = writeln!(out, "{name}_sum{{{labels}}} {}", self.sum);
        let _ = writeln!(out, "{name}_count{{{labels}}} {}", self.count);
    }
}

/// The requests one tenant, route and component served: how many of each status, and how
/// long they took.
#[derive(Default)]
struct Requests {
    by_status: BTreeMap<u16, u64>,
    latency: Histogram,
}

/// Which tenant, route and component served a request.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Served {
    /// The tenant id, or `-` when no tenant was found.
    pub tenant: String,
    /// The route prefix, or `-`.
    pub route: String,
    /// The component name, or `-`.
    pub component: String,
}

impl Served {
    /// A request no tenant took (yet): `-` for all three.
    pub fn nobody() -> Self {
        Served { tenant: "-".into(), route: "-".into(), component: "-".into() }
    }
}

/// The gateway's metrics.
#[derive(Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<Served, Requests>>,
    instantiation: Mutex<BTreeMap<String, Histogram>>,
    cache_hits: AtomicU64,
    cache_misses: AtomicU64,
    violations: Mutex<BTreeMap<(String, String, String), u64>>,
    forwarded: Mutex<BTreeMap<&'static str, Histogram>>,
}

impl Metrics {
    /// Counts one request with its status and latency. A status outside 100–599 (a component
    /// may answer any code up to 999) is counted as 0, so components cannot mint series.
    pub fn request(&self, served: &Served, status: u16, elapsed: Duration) {
        let status = if (100..=599).contains(&status) { status } else { 0 };
        let mut requests = lock(&self.requests);
        if !requests.contains_key(served) {
            requests.insert(served.clone(), Requests::default());
        }
        let series = requests.get_mut(served).expect("inserted above");
        *series.by_status.entry(status).or_default() += 1;
        series.latency.observe(elapsed);
    }

    /// Records how long instantiating `component` took.
    pub fn instantiated(&self, component: &str, elapsed: Duration) {
        lock(&self.instantiation).entry(component.to_string()).or_default().observe(elapsed);
    }

    /// Counts a component of `tenant` hitting `limit`.
    pub fn violation(&self, tenant: &str, component: &str, limit: &str) {
        *lock(&self.violations).entry((tenant.to_string(), component.to_string(), limit.to_string())).or_default() += 1;
    }

    /// Records a device call forwarded to the node running the device: how it ended
    /// (`answered`, `no_owner`, `unreachable`, …) and how long it took.
    pub fn forwarded(&self, outcome: &'static str, elapsed: Duration) {
        lock(&self.forwarded).entry(outcome).or_default().observe(elapsed);
    }

    /// Drops every series of a component that `serves(tenant, component)` says is no longer
    /// served or kept (a deleted version, a removed route, a deleted tenant), so series do
    /// not pile up with redeploys. Requests no tenant or no route took are kept.
    pub fn retire(&self, serves: impl Fn(&str, &str) -> bool) {
        let kept = |served: &Served| served.component == "-" || serves(&served.tenant, &served.component);
        lock(&self.requests).retain(|served, _| kept(served));
        lock(&self.violations).retain(|(tenant, component, _), _| serves(tenant, component));
        let live: std::collections::BTreeSet<String> =
            lock(&self.requests).keys().map(|s| s.component.clone()).collect();
        lock(&self.instantiation).retain(|component, _| live.contains(component) || serves("", component));
    }

    /// The metrics in Prometheus text format; `devices` gives `(tenant, device, state)` of
    /// every device session, `clients` how many WhatsApp clients run, `cpu` gives `(tenant, seconds, throttled seconds)`: the CPU time
    /// each tenant's guests were charged, and how long they waited for being over budget.
    pub fn render<'a>(
        &self,
        devices: impl Iterator<Item = (&'a str, &'a str, &'static str)>,
        clients: usize,
        cpu: impl Iterator<Item = (&'a str, f64, f64)>,
    ) -> String {
        let mut out = String::new();
        out.push_str("# HELP waedge_requests_total Requests served, by tenant, route, component and status.\n");
        out.push_str("# TYPE waedge_requests_total counter\n");
        let requests = lock(&self.requests);
        for (served, series) in requests.iter() {
            for (status, count) in &series.by_status {
                let _ = writeln!(out, "waedge_requests_total{{{},status=\"{status}\"}} {count}", labels(served));
            }
        }
        out.push_str("# HELP waedge_request_duration_seconds Request latency, by tenant, route and component.\n");
        out.push_str("# TYPE waedge_request_duration_seconds histogram\n");
        for (served, series) in requests.iter() {
            series.latency.render(&mut out, "waedge_request_duration_seconds", &labels(served));
        }
        drop(requests);
        out.push_str("# HELP waedge_component_instantiation_seconds Time to instantiate a component for a request.\n");
        out.push_str("# TYPE waedge_component_instantiation_seconds histogram\n");
        for (component, histogram) in lock(&self.instantiation).iter() {
            let labels = format!("component=\"{}\"", escape(component));
            histogram.render(&mut out, "waedge_component_instantiation_seconds", &labels);
        }
        out.push_str(
            "# HELP waedge_cache_lookups_total WhatsApp look-ups made through the cache, by whether it answered.\n",
        );
        out.push_str("# TYPE waedge_cache_lookups_total counter\n");
        let _ =
            writeln!(out, "waedge_cache_lookups_total{{result=\"hit\"}} {}", self.cache_hits.load(Ordering::Relaxed));
        let _ = writeln!(
            out,
            "waedge_cache_lookups_total{{result=\"miss\"}} {}",
            self.cache_misses.load(Ordering::Relaxed)
        );
        out.push_str(
            "# HELP waedge_sandbox_violations_total Components stopped at a limit, by tenant, component and limit.\n",
        );
        out.push_str("# TYPE waedge_sandbox_violations_total counter\n");
        for ((tenant, component, limit), count) in lock(&self.violations).iter() {
            let _ = writeln!(
                out,
                "waedge_sandbox_violations_total{{tenant=\"{}\",component=\"{}\",limit=\"{}\"}} {count}",
                escape(tenant),
                escape(component),
                escape(limit)
            );
        }
        out.push_str("# HELP waedge_guest_cpu_seconds_total CPU time of guest instantiations and calls (the guest and the host's synchronous work in them), charged to each tenant's budget.\n");
        out.push_str("# TYPE waedge_guest_cpu_seconds_total counter\n");
        let cpu: Vec<_> = cpu.collect();
        for (tenant, seconds, _) in &cpu {
            let _ = writeln!(out, "waedge_guest_cpu_seconds_total{{tenant=\"{}\"}} {seconds}", escape(tenant));
        }
        out.push_str(
            "# HELP waedge_guest_cpu_throttled_seconds_total Time guests waited because their tenant was over its CPU budget.\n",
        );
        out.push_str("# TYPE waedge_guest_cpu_throttled_seconds_total counter\n");
        for (tenant, _, throttled) in &cpu {
            let _ =
                writeln!(out, "waedge_guest_cpu_throttled_seconds_total{{tenant=\"{}\"}} {throttled}", escape(tenant));
        }
        out.push_str("# HELP waedge_forwarded_call_duration_seconds ");
        out.push_str("Device calls forwarded to the node running the device, by outcome.\n");
        out.push_str("# TYPE waedge_forwarded_call_duration_seconds histogram\n");
        for (outcome, histogram) in lock(&self.forwarded).iter() {
            histogram.render(&mut out, "waedge_forwarded_call_duration_seconds", &format!("outcome=\"{outcome}\""));
        }
        out.push_str("# HELP waedge_device_state Device sessions this node runs, 1 for the state each is in.\n");
        out.push_str("# TYPE waedge_device_state gauge\n");
        for (tenant, device, state) in devices {
            let _ = writeln!(
                out,
                "waedge_device_state{{tenant=\"{}\",device=\"{}\",state=\"{state}\"}} 1",
                escape(tenant),
                escape(device)
            );
        }
        out.push_str("# HELP waedge_whatsapp_clients WhatsApp clients running: one per device connected, connecting or being linked.\n");
        out.push_str("# TYPE waedge_whatsapp_clients gauge\n");
        let _ = writeln!(out, "waedge_whatsapp_clients {clients}");
        out
    }
}

impl CacheMetrics for Metrics {
    fn cache_lookups(&self, hits: u64, misses: u64) {
        self.cache_hits.fetch_add(hits, Ordering::Relaxed);
        self.cache_misses.fetch_add(misses, Ordering::Relaxed);
    }
}

fn labels(served: &Served) -> String {
    format!(
        "tenant=\"{}\",route=\"{}\",component=\"{}\"",
        escape(&served.tenant),
        escape(&served.route),
        escape(&served.component)
    )
}

/// Escapes a label value: backslash, double quote and newline.
fn escape(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_histograms_and_gauges() {
        let metrics = Metrics::default();
        let served =
            Served { tenant: "acme".into(), route: "/devices".into(), component: "builtin:devices-api".into() };
        metrics.request(&served, 200, Duration::from_millis(3));
        metrics.request(&served, 200, Duration::from_millis(30));
        metrics.cache_lookups(1, 0);
        metrics.forwarded("answered", Duration::from_millis(2));
        let text = metrics.render([("acme", "main", "connected")].into_iter(), 1, [("acme", 0.25, 0.5)].into_iter());
        let labels = r#"tenant="acme",route="/devices",component="builtin:devices-api""#;
        assert!(text.contains(&format!("waedge_requests_total{{{labels},status=\"200\"}} 2\n")), "{text}");
        assert!(
            text.contains(&format!("waedge_request_duration_seconds_bucket{{{labels},le=\"0.005\"}} 1\n")),
            "{text}"
        );
        assert!(
            text.contains(&format!("waedge_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} 2\n")),
            "{text}"
        );
        assert!(text.contains("waedge_cache_lookups_total{result=\"hit\"} 1\n"), "{text}");
        assert!(
            text.contains("waedge_device_state{tenant=\"acme\",device=\"main\",state=\"connected\"} 1\n"),
            "{text}"
        );
        assert!(text.contains("waedge_guest_cpu_seconds_total{tenant=\"acme\"} 0.25\n"), "{text}");
        assert!(text.contains("waedge_guest_cpu_throttled_seconds_total{tenant=\"acme\"} 0.5\n"), "{text}");
        assert!(text.contains("\nwaedge_whatsapp_clients 1\n"), "{text}");
        let forwarded = "waedge_forwarded_call_duration_seconds_bucket{outcome=\"answered\",le=\"0.0025\"} 1\n";
        assert!(text.contains(forwarded), "{text}");
    }

    #[test]
    fn series_of_retired_components_and_odd_statuses_do_not_pile_up() {
        let metrics = Metrics::default();
        let served =
            |component: &str| Served { tenant: "acme".into(), route: "/x".into(), component: component.into() };
        metrics.request(&served("acme/x@111111111111"), 200, Duration::from_millis(1));
        metrics.request(&served("acme/x@222222222222"), 200, Duration::from_millis(1));
        metrics.request(&served("acme/x@222222222222"), 999, Duration::from_millis(1));
        metrics.instantiated("acme/x@111111111111", Duration::from_millis(1));
        metrics.violation("acme", "acme/x@111111111111", "trap");
        metrics.retire(|_, component| component == "acme/x@222222222222");
        let text = metrics.render(std::iter::empty(), 0, std::iter::empty());
        assert!(!text.contains("111111111111"), "{text}");
        assert!(text.contains("component=\"acme/x@222222222222\",status=\"200\"} 1"), "{text}");
        assert!(text.contains("status=\"0\"} 1") && !text.contains("status=\"999\""), "{text}");
    }

    #[test]
    fn escapes_label_values() {
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
