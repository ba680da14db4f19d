//! `wafer compile [DIR]`: precompile a whole registry into the cache.

use std::path::PathBuf;

use anyhow::{Context, anyhow};
use wafer::Runtime;

use super::{CacheArgs, compile_progress, load_registry, print_line};
use crate::exit::Failure;

/// Precompile every function of a registry into the cache.
///
/// Fetches modules named by URL and compiles every function, keeping both
/// in the cache folder, so that later `wafer` commands (and other wafer
/// processes sharing the cache) start without compiling. Exits 1 if a
/// function cannot be compiled; `wafer check` says why in detail.
#[derive(clap::Args)]
pub struct CompileArgs {
    /// The registry folder or file.
    #[arg(default_value = ".")]
    registry: PathBuf,
    #[command(flatten)]
    cache: CacheArgs,
}

pub fn run(args: CompileArgs) -> Result<(), Failure> {
    let Some(dir) = args.cache.dir() else {
        return Err(Failure::input(anyhow!(
            "--no-cache: compiling into no cache keeps nothing"
        )));
    };
    // Fail here rather than compile into a cache that is not used.
    wafer::sources::DiskCache::open(&dir)
        .with_context(|| format!("cannot use the cache {}", dir.display()))
        .map_err(Failure::failed)?;
    let registry = load_registry(&args.registry)?;
    let runtime = Runtime::with_options(registry, args.cache.options()).map_err(Failure::failed)?;
    let loaded = runtime.load_all(compile_progress());
    let failed: Vec<_> = loaded
        .iter()
        .filter_map(|(id, outcome)| outcome.as_ref().err().map(|e| (id, e)))
        .collect();
    for (id, error) in &failed {
        eprintln!("{id}: {error}");
    }
    let stats = runtime.compile_stats();
    print_line(&format!(
        "{} functions: {} compiled, {} already in the cache ({}), {} failed",
        loaded.len(),
        stats.compiled,
        stats.from_cache,
        dir.display(),
        failed.len()
    ))?;
    if failed.is_empty() {
        Ok(())
    } else {
        Err(Failure::quiet())
    }
}
