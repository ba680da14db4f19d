//! Turning module bytes into compiled code, once per machine: with a
//! [`DiskCache`], compiled artifacts are kept on disk, keyed by the
//! module's sha256 and the engine's compatibility hash, so a restart (or a
//! second wafer process) compiles nothing.
//!
//! Loading a compiled artifact skips wasmtime's validation, which is why
//! it is `unsafe`: the cache checks each artifact's own sha256 before
//! handing it over (a damaged file is deleted and the module recompiled),
//! keeps its directory private (0700), and writes atomically.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use wasmtime::component::Component;
use wasmtime::{Engine, Module};

use crate::hash::Sha256Hash;
use crate::sources::DiskCache;

/// Compiles modules and components for one engine, through an optional
/// disk cache.
pub(crate) struct Compiler {
    engine: Engine,
    cache: Option<DiskCache>,
    /// The engine's compatibility hash: compiled code from another wasmtime
    /// version or another configuration gets another key.
    engine_key: String,
    compiled: AtomicUsize,
    cached: AtomicUsize,
    compile_ns: AtomicU64,
}

/// How many modules a runtime compiled, and how many it loaded compiled
/// from the disk cache.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CompileStats {
    /// Compiled by Cranelift.
    pub compiled: usize,
    /// Loaded from the disk cache, already compiled.
    pub from_cache: usize,
    /// Time spent compiling.
    pub compile_time: Duration,
}

/// What kind of artifact a cache key names.
#[derive(Clone, Copy)]
enum Kind {
    Module,
    Component,
}

impl Compiler {
    pub fn new(engine: &Engine, cache: Option<DiskCache>) -> Compiler {
        let mut hasher = DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        Compiler {
            engine: engine.clone(),
            cache,
            engine_key: format!("{:016x}", hasher.finish()),
            compiled: AtomicUsize::new(0),
            cached: AtomicUsize::new(0),
            compile_ns: AtomicU64::new(0),
        }
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    pub fn stats(&self) -> CompileStats {
        CompileStats {
            compiled: self.compiled.load(Ordering::Relaxed),
            from_cache: self.cached.load(Ordering::Relaxed),
            compile_time: Duration::from_nanos(self.compile_ns.load(Ordering::Relaxed)),
        }
    }

    /// A component from its binary.
    pub fn component(&self, bytes: &[u8]) -> wasmtime::Result<Component> {
        self.through_cache(
            bytes,
            Kind::Component,
            // SAFETY: the payload is an artifact this engine configuration
            // serialized, checked against its sha256 by the cache.
            |payload| unsafe { Component::deserialize(&self.engine, payload) },
            || Component::new(&self.engine, bytes),
            Component::serialize,
        )
    }

    /// A core module from its binary.
    pub fn module(&self, bytes: &[u8]) -> wasmtime::Result<Module> {
        self.through_cache(
            bytes,
            Kind::Module,
            // SAFETY: as for components above.
            |payload| unsafe { Module::deserialize(&self.engine, payload) },
            || Module::new(&self.engine, bytes),
            Module::serialize,
        )
    }

    fn through_cache<T>(
        &self,
        bytes: &[u8],
        kind: Kind,
        deserialize: impl FnOnce(&[u8]) -> wasmtime::Result<T>,
        compile: impl FnOnce() -> wasmtime::Result<T>,
        serialize: impl FnOnce(&T) -> wasmtime::Result<Vec<u8>>,
    ) -> wasmtime::Result<T> {
        let compile = || {
            let started = Instant::now();
            let compiled = compile();
            let nanos = u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX);
            self.compile_ns.fetch_add(nanos, Ordering::Relaxed);
            self.compiled.fetch_add(1, Ordering::Relaxed);
            compiled
        };
        let Some(cache) = &self.cache else {
            return compile();
        };
        let key = self.key(bytes, kind);
        if let Some(payload) = cache.read_compiled(&key) {
            match deserialize(&payload) {
                Ok(loaded) => {
                    self.cached.fetch_add(1, Ordering::Relaxed);
                    return Ok(loaded);
                }
                Err(error) => {
                    tracing::warn!(%key, error = %format!("{error:#}"), "Cached compiled code does not load; compiling again.");
                }
            }
        }
        let compiled = compile()?;
        match serialize(&compiled).map(|payload| cache.write_compiled(&key, &payload)) {
            Ok(Ok(())) => {}
            Ok(Err(error)) => tracing::warn!(%key, %error, "Cannot cache compiled code."),
            Err(error) => {
                tracing::warn!(%key, error = %format!("{error:#}"), "Cannot serialize compiled code.")
            }
        }
        Ok(compiled)
    }

    fn key(&self, bytes: &[u8], kind: Kind) -> String {
        let kind = match kind {
            Kind::Module => "module",
            Kind::Component => "component",
        };
        format!("{}-{kind}-{}", self.engine_key, Sha256Hash::of(bytes).hex())
    }
}
