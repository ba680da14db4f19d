//! `wafer cache clean|dir`: the folder of fetched modules and compiled code.

use anyhow::{Context, anyhow};
use wafer::sources::DiskCache;

use super::{CacheArgs, print_line};
use crate::exit::Failure;

/// Show or empty the cache of fetched modules and compiled code.
#[derive(clap::Args)]
pub struct CacheCommand {
    #[command(subcommand)]
    action: CacheAction,
    #[command(flatten)]
    cache: CacheArgs,
}

#[derive(clap::Subcommand)]
enum CacheAction {
    /// Remove every fetched module and compiled artifact.
    Clean,
    /// Print the cache folder.
    Dir,
}

pub fn run(args: CacheCommand) -> Result<(), Failure> {
    let dir = args
        .cache
        .dir()
        .ok_or_else(|| Failure::input(anyhow!("--no-cache: there is no cache to use")))?;
    match args.action {
        CacheAction::Dir => print_line(&dir.display().to_string()),
        CacheAction::Clean => {
            let cache = DiskCache::open(&dir)
                .with_context(|| format!("cannot open the cache {}", dir.display()))
                .map_err(Failure::failed)?;
            let report = cache
                .clean()
                .with_context(|| format!("cannot clean the cache {}", dir.display()))
                .map_err(Failure::failed)?;
            print_line(&format!(
                "removed {} files ({}) from {}",
                report.files,
                bytesize::ByteSize(report.bytes),
                dir.display()
            ))
        }
    }
}
