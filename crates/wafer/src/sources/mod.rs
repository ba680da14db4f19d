//! Module binaries named by URL: downloading them, and caching them on disk
//! so that a restart (or a second wafer process) fetches nothing.
//!
//! [`ModuleSources::load`] is the entry point; [`DiskCache`] is also used on
//! its own for compiled artifacts.

mod disk_cache;
mod error;
mod fetch;
#[cfg(test)]
mod test_server;

use std::time::Instant;

use crate::hash::Sha256Hash;

pub use disk_cache::{CleanReport, DiskCache};
pub use error::SourceError;
pub use fetch::{DEFAULT_FETCH_TIMEOUT, DEFAULT_MAX_MODULE_BYTES, FetchLimits};

use fetch::Location;

/// Where [`ModuleSources::load`] found a module.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// The disk cache, with no network request.
    Cache,
    /// Downloaded just now (and stored in the cache, if there is one).
    Network,
    /// Read from a `file://` path.
    File,
}

/// A module's bytes, checked to start with the Wasm magic and, if the
/// caller gave a pin, to hash to it.
#[derive(Clone, Debug)]
pub struct LoadedModule {
    /// The binary.
    pub bytes: Vec<u8>,
    /// The SHA-256 of `bytes`.
    pub hash: Sha256Hash,
    /// Where it came from.
    pub origin: Origin,
}

/// Loads modules from `http://`, `https://` and `file://` URLs through an
/// optional disk cache.
#[derive(Clone, Debug)]
pub struct ModuleSources {
    cache: Option<DiskCache>,
    limits: FetchLimits,
}

impl ModuleSources {
    /// Loads through `cache` (none: always download) within `limits`.
    pub fn new(cache: Option<DiskCache>, limits: FetchLimits) -> ModuleSources {
        ModuleSources { cache, limits }
    }

    /// The cache modules are kept in, if any.
    pub fn cache(&self) -> Option<&DiskCache> {
        self.cache.as_ref()
    }

    /// The module at `url`, which must hash to `pin` if one is given.
    ///
    /// For http(s), the cache is asked first: by `pin` if given, else by
    /// the hash the URL served last time, so an unpinned URL is downloaded
    /// once per cache and later changes upstream are not seen until the
    /// cache is cleaned. Cached files are re-hashed; a damaged one is deleted
    /// and downloaded again. A download is cached only if it matches the
    /// pin; failing to cache it is logged, not returned, since the module
    /// itself is fine.
    ///
    /// `file://x.wasm` is relative to the working directory and
    /// `file:///x.wasm` is absolute (Dapr's rule); files are read every time
    /// and never copied into the cache.
    ///
    /// Blocks the calling thread for up to [`FetchLimits::timeout`]; it is
    /// safe to call from a thread that runs a Tokio runtime.
    pub fn load(&self, url: &str, pin: Option<Sha256Hash>) -> Result<LoadedModule, SourceError> {
        match fetch::locate(url)? {
            Location::Local(path) => {
                let bytes = fetch::read_local(url, path, self.limits)?;
                let hash = check_pin(url, &bytes, pin)?;
                Ok(LoadedModule {
                    bytes,
                    hash,
                    origin: Origin::File,
                })
            }
            Location::Remote => {
                if let Some(loaded) = self.cached(url, pin) {
                    return Ok(loaded);
                }
                self.download(url, pin)
            }
        }
    }

    fn cached(&self, url: &str, pin: Option<Sha256Hash>) -> Option<LoadedModule> {
        let cache = self.cache.as_ref()?;
        // A pin is authoritative: what the URL served last does not matter.
        let hash = pin.or_else(|| cache.url_hash(url))?;
        let bytes = cache.read_module(&hash)?;
        tracing::debug!(url, %hash, "Loaded module from cache");
        Some(LoadedModule {
            bytes,
            hash,
            origin: Origin::Cache,
        })
    }

    fn download(&self, url: &str, pin: Option<Sha256Hash>) -> Result<LoadedModule, SourceError> {
        let started = Instant::now();
        let bytes = fetch::download(url, self.limits)?;
        let hash = check_pin(url, &bytes, pin)?;
        tracing::info!(
            url,
            bytes = bytes.len(),
            elapsed = ?started.elapsed(),
            "Fetched module"
        );
        if let Some(cache) = &self.cache {
            let stored = cache
                .write_module(&bytes)
                .and_then(|_| cache.remember_url(url, &hash));
            if let Err(error) = stored {
                tracing::warn!(url, %error, "Cannot cache fetched module");
            }
        }
        Ok(LoadedModule {
            bytes,
            hash,
            origin: Origin::Network,
        })
    }
}

/// The hash of `bytes`, if it is `pin` (or there is no pin).
fn check_pin(url: &str, bytes: &[u8], pin: Option<Sha256Hash>) -> Result<Sha256Hash, SourceError> {
    let actual = Sha256Hash::of(bytes);
    match pin {
        Some(expected) if expected != actual => Err(SourceError::HashMismatch {
            url: url.to_owned(),
            expected,
            actual,
        }),
        _ => Ok(actual),
    }
}

#[cfg(test)]
mod tests;
