//! The composition root: the one place that puts a [`Gateway`] together from a configuration,
//! used by `waedge serve`, the tests and the benchmarks alike.

use std::sync::Arc;
use waedge_device::DeviceManager;

use crate::Gateway;
use crate::config::Config;
use crate::runtime::Runtime;

/// The gateway of `config` on `runtime` and `devices`: [`Gateway::from_config`], with the
/// native handlers of this build registered (the benchmarks' baseline, feature `bench`).
pub fn gateway(runtime: Runtime, devices: Arc<dyn DeviceManager>, config: &Config) -> anyhow::Result<Gateway> {
    let gateway = Gateway::from_config(runtime, devices, config)?;
    #[cfg(feature = "bench")]
    let gateway = gateway.with_native(crate::bench::NAME, Arc::new(crate::bench::NativeProfile));
    Ok(gateway)
}
