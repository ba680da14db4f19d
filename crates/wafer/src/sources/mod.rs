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

use std::time::{Instant, SystemTime};

use crate::error::ProblemKind;
use crate::hash::Sha256Hash;

pub use disk_cache::{CleanReport, DiskCache};
pub use error::SourceError;
pub use fetch::{
    DEFAULT_FETCH_TIMEOUT, DEFAULT_MAX_MODULE_BYTES, DEFAULT_URL_FRESHNESS, FetchLimits,
};

use disk_cache::UrlRecord;
use fetch::{Fetched, Location, Validators};

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
    /// For http(s), the cache is asked first. A pinned module is taken from
    /// it whenever it is there: its content cannot change. An unpinned
    /// URL's module is taken from it for [`FetchLimits::freshness`] after
    /// the server last served or confirmed it; after that the server is
    /// asked whether it changed, as HTTP caches ask (`If-None-Match`,
    /// `If-Modified-Since`): a new version replaces the cached one, and
    /// when the server cannot be reached the cached copy is used, with a
    /// warning. Cached files are re-hashed; a damaged one is deleted and
    /// downloaded again. A download is cached only if it matches the pin;
    /// failing to cache it is logged, not returned, since the module itself
    /// is fine.
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
            Location::Remote => match pin {
                Some(pin) => match self.cached(pin) {
                    Some(loaded) => Ok(loaded),
                    None => self.download(url, Some(pin), None),
                },
                None => self.load_unpinned(url),
            },
        }
    }

    /// An unpinned URL's module: from the cache while fresh, else checked
    /// with its server.
    fn load_unpinned(&self, url: &str) -> Result<LoadedModule, SourceError> {
        let Some((record, cached)) = self.cache.as_ref().and_then(|cache| {
            let record = cache.url_record(url)?;
            let cached = self.cached(record.hash)?;
            Some((record, cached))
        }) else {
            return self.download(url, None, None);
        };
        // A check "in the future" (the clock was wrong then) is stale too.
        let fresh = SystemTime::now()
            .duration_since(record.checked)
            .is_ok_and(|age| age < self.limits.freshness);
        if fresh {
            return Ok(cached);
        }
        match self.download(url, None, Some(&record)) {
            Ok(loaded) => Ok(loaded),
            Err(error) if error.problem_kind() == ProblemKind::Fetch => {
                tracing::warn!(url, %error, "Cannot ask whether the module changed; using the cached copy.");
                Ok(cached)
            }
            Err(error) => Err(error),
        }
    }

    fn cached(&self, hash: Sha256Hash) -> Option<LoadedModule> {
        let bytes = self.cache.as_ref()?.read_module(&hash)?;
        tracing::debug!(%hash, "Loaded module from cache");
        Some(LoadedModule {
            bytes,
            hash,
            origin: Origin::Cache,
        })
    }

    /// Downloads `url`; with the `known` record of an earlier download,
    /// only if the server has another version.
    fn download(
        &self,
        url: &str,
        pin: Option<Sha256Hash>,
        known: Option<&UrlRecord>,
    ) -> Result<LoadedModule, SourceError> {
        let started = Instant::now();
        let (bytes, validators) =
            match fetch::download(url, self.limits, known.map(|k| &k.validators))? {
                Fetched::Body(bytes, validators) => (bytes, validators),
                Fetched::NotModified => {
                    let known = known.expect("only a conditional request is answered 304");
                    self.remember(url, known.hash, known.validators.clone());
                    tracing::debug!(url, "Module unchanged on the server");
                    return self
                        .cached(known.hash)
                        .ok_or_else(|| SourceError::Transfer {
                            url: url.to_owned(),
                            reason: "the cached copy vanished while the server confirmed it".into(),
                        });
                }
            };
        let hash = check_pin(url, &bytes, pin)?;
        tracing::info!(
            url,
            bytes = bytes.len(),
            elapsed = ?started.elapsed(),
            "Fetched module"
        );
        if let Some(cache) = &self.cache {
            match cache.write_module(&bytes) {
                Ok(_) => self.remember(url, hash, validators),
                Err(error) => tracing::warn!(url, %error, "Cannot cache fetched module"),
            }
        }
        Ok(LoadedModule {
            bytes,
            hash,
            origin: Origin::Network,
        })
    }

    /// Records that `url` served `hash` as of now.
    fn remember(&self, url: &str, hash: Sha256Hash, validators: Validators) {
        let Some(cache) = &self.cache else { return };
        let record = UrlRecord {
            hash,
            checked: SystemTime::now(),
            validators,
        };
        if let Err(error) = cache.remember_url(url, &record) {
            tracing::warn!(url, %error, "Cannot record what the URL served");
        }
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
