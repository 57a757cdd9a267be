//! Sandbox violations: when a component hits a limit (deadline, memory, response size, an
//! outbound rule), one log line and one metric name the tenant, the component and the limit.

use std::sync::Arc;

use crate::telemetry::metrics::Metrics;

/// Reports the violations of one request's component.
#[derive(Clone)]
pub struct Reporter {
    tenant: Arc<str>,
    component: Arc<str>,
    metrics: Option<Arc<Metrics>>,
}

impl Reporter {
    /// A reporter for `component` of `tenant`, counting into `metrics`.
    pub fn new(tenant: &str, component: Arc<str>, metrics: Arc<Metrics>) -> Self {
        Reporter { tenant: tenant.into(), component, metrics: Some(metrics) }
    }

    /// A reporter that only logs (unit tests).
    pub fn detached() -> Self {
        Reporter { tenant: "-".into(), component: "-".into(), metrics: None }
    }

    /// The tenant whose component this reports on.
    pub fn tenant(&self) -> &Arc<str> {
        &self.tenant
    }

    /// Records that the component hit `limit`; `what` says how, for the log.
    pub fn violation(&self, limit: &str, what: &str) {
        tracing::warn!(tenant = &*self.tenant, component = &*self.component, limit, "sandbox: {what}");
        if let Some(metrics) = &self.metrics {
            metrics.violation(&self.tenant, &self.component, limit);
        }
    }
}
