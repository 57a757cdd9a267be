//! The device itself: its keys, account and settings, as whatsapp-rust serializes them.

use async_trait::async_trait;
use std::sync::Arc;
use wacore::store::Device;
use wacore::store::traits::DeviceStore;

use super::{DeviceState, Result, fenced, serialization};

#[async_trait]
impl DeviceStore for DeviceState {
    async fn save(&self, device: &Device) -> Result<()> {
        let data = serde_json::to_vec(device).map_err(serialization)?;
        self.write(
            fenced!(
                "INSERT INTO wa_device_data (device, data) SELECT lease.id, $3 FROM lease
                 ON CONFLICT (device) DO UPDATE SET data = excluded.data"
            ),
            &[&data],
        )
        .await?;
        Ok(())
    }

    async fn load(&self) -> Result<Option<Device>> {
        let Some(row) = self.read_one("SELECT data FROM wa_device_data WHERE device = $1", &[]).await? else {
            return Ok(None);
        };
        let mut device: Device = serde_json::from_slice(row.get(0)).map_err(serialization)?;
        // Not serialized: what this build of whatsapp-rust presents itself as.
        device.device_props = Arc::new(wacore::store::device::DEVICE_PROPS.clone());
        device.client_profile = wacore::client_profile::ClientProfile::web();
        Ok(Some(device))
    }

    async fn exists(&self) -> Result<bool> {
        Ok(self.read_one("SELECT 1 FROM wa_device_data WHERE device = $1", &[]).await?.is_some())
    }

    /// Stores a new device (fresh keys) for this state's device unless it has one, and
    /// returns the device's key (whatsapp-rust logs it). The device is the lease's, not a
    /// new row: a state is always one device's.
    async fn create(&self) -> Result<i32> {
        let data = serde_json::to_vec(&Device::new()).map_err(serialization)?;
        self.write(
            fenced!(
                "INSERT INTO wa_device_data (device, data) SELECT lease.id, $3 FROM lease
                 ON CONFLICT (device) DO NOTHING"
            ),
            &[&data],
        )
        .await?;
        // whatsapp-rust only logs this id: a key past i32 must not stop a device linking.
        Ok(i32::try_from(self.id).unwrap_or(i32::MAX))
    }

    async fn resource_report(&self) -> wacore::stats::StorageResourceReport {
        // The state lives in the database, not in this process.
        wacore::stats::StorageResourceReport { memory_bytes: Some(0), ..Default::default() }
    }
}
