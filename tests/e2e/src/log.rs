//! The host's log as the operator's log file would hold it, for tests that read it.

use std::sync::{Arc, Mutex, OnceLock};

/// Every log event of this process (all its threads), as the default `fmt` layer writes it.
#[derive(Clone, Default)]
pub struct HostLog(Arc<Mutex<Vec<u8>>>);

impl HostLog {
    /// The process's log: installed as the global subscriber by the first call, shared by the
    /// later ones (tests of one binary tell their lines apart by tenant or request id).
    pub fn install() -> HostLog {
        static LOG: OnceLock<HostLog> = OnceLock::new();
        LOG.get_or_init(|| {
            let log = HostLog::default();
            let subscriber = tracing_subscriber::fmt().with_writer(log.clone()).with_ansi(false).finish();
            tracing::subscriber::set_global_default(subscriber).expect("no other global subscriber");
            log
        })
        .clone()
    }

    /// Everything logged so far.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl std::io::Write for HostLog {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for HostLog {
    type Writer = HostLog;

    fn make_writer(&'a self) -> HostLog {
        self.clone()
    }
}
