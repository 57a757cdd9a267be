//! The compiled-artefact cache: components compiled once and kept on disk, so a restart does
//! not compile them again.
//!
//! An artefact is native code the engine maps and runs, so the cache checks what it loads.
//! Each file is named by the SHA-256 of the component it was compiled from and the engine's
//! compatibility hash, and holds the SHA-256 of the artefact followed by the artefact. The
//! file is read whole, its digest checked, and only the checked bytes are deserialized: a
//! torn, truncated or altered file is discarded (and the component compiled again), and
//! nothing can change between the check and the load. Files are written under a temporary
//! name, synced, renamed and the directory synced, so a crash leaves either no artefact or a
//! whole one.
//!
//! The digest detects damage, not a deliberate forgery: whoever can write the cache
//! directory can write a matching digest too (as they could write `waedge.db` beside it).
//! The data directory must be writable by the gateway's user only.

use std::collections::HashSet;
use std::fs::File;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::io::Write;
use std::path::PathBuf;

use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

/// Bytes of the digest at the start of every artefact file.
const DIGEST_LEN: usize = 32;

/// The extension of a finished artefact file.
const EXTENSION: &str = "cwasm";

/// A directory of compiled components for one engine configuration.
pub struct ArtefactCache {
    dir: PathBuf,
    /// The engine's compatibility hash, as it appears in file names.
    engine: String,
}

impl ArtefactCache {
    /// The cache in `dir` for artefacts of `engine` (created when the first one is written).
    pub fn new(dir: PathBuf, engine: &Engine) -> Self {
        let mut hash = DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hash);
        ArtefactCache { dir, engine: format!("{:016x}", hash.finish()) }
    }

    /// The component compiled from the component whose SHA-256 is `sha256` (hex), if the
    /// cache holds an intact artefact of it. A damaged one is removed.
    pub fn load(&self, engine: &Engine, sha256: &str) -> Option<Component> {
        let path = self.path(sha256);
        let file = std::fs::read(&path).ok()?;
        let loaded = match file.split_at_checked(DIGEST_LEN) {
            Some((digest, artefact)) if Sha256::digest(artefact).as_slice() == digest => {
                // SAFETY: `artefact` is exactly the output of `Component::serialize` by an
                // engine of this configuration (its compatibility hash is in the file name):
                // the digest recorded when it was written matches. Tenants cannot write here.
                unsafe { Component::deserialize(engine, artefact) }.map_err(|e| format!("{e:#}"))
            }
            _ => Err("its digest does not match its contents".to_string()),
        };
        match loaded {
            Ok(component) => Some(component),
            Err(why) => {
                tracing::warn!("discarding the cached component {}: {why}", path.display());
                let _ = std::fs::remove_file(&path);
                None
            }
        }
    }

    /// Keeps the artefact of `component`, compiled from the component whose SHA-256 is
    /// `sha256` (hex).
    pub fn store(&self, sha256: &str, component: &Component) -> std::io::Result<()> {
        let artefact = component.serialize().map_err(std::io::Error::other)?;
        std::fs::create_dir_all(&self.dir)?;
        let path = self.path(sha256);
        // A name of its own per writer: two compiles of one component never share a file.
        let partial = path.with_extension(format!("{}.partial", uuid::Uuid::new_v4().simple()));
        let written = (|| {
            let mut file = File::create(&partial)?;
            file.write_all(&Sha256::digest(&artefact))?;
            file.write_all(&artefact)?;
            file.sync_all()?;
            std::fs::rename(&partial, &path)?;
            File::open(&self.dir)?.sync_all()
        })();
        if written.is_err() {
            let _ = std::fs::remove_file(&partial);
        }
        written
    }

    /// Removes every file except the artefacts of this engine compiled from the components
    /// whose SHA-256 (hex) is in `keep`: artefacts no longer used, of another engine
    /// configuration, or left half-written. Returns how many files were removed.
    pub fn retain(&self, keep: &HashSet<&str>) -> usize {
        let Ok(entries) = std::fs::read_dir(&self.dir) else { return 0 };
        let mut removed = 0;
        for entry in entries.flatten() {
            let name = entry.file_name();
            let kept = name.to_str().and_then(|name| self.sha256_of(name)).is_some_and(|sha256| keep.contains(sha256));
            if !kept && entry.file_type().is_ok_and(|t| t.is_file()) && std::fs::remove_file(entry.path()).is_ok() {
                removed += 1;
            }
        }
        removed
    }

    /// `DIR/SHA256-ENGINE.cwasm`.
    fn path(&self, sha256: &str) -> PathBuf {
        self.dir.join(format!("{sha256}-{}.{EXTENSION}", self.engine))
    }

    /// The component hash in the file name of one of this engine's artefacts.
    fn sha256_of<'a>(&self, file_name: &'a str) -> Option<&'a str> {
        let stem = file_name.strip_suffix(EXTENSION)?.strip_suffix('.')?;
        stem.strip_suffix(self.engine.as_str())?.strip_suffix('-')
    }
}
