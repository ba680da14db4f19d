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
    /// Remove every fetched module and compiled artifact wafer wrote (other
    /// files are left and listed).
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
            if !dir.exists() {
                return print_line(&format!(
                    "nothing to clean: {} does not exist",
                    dir.display()
                ));
            }
            let cache = DiskCache::open(&dir)
                .context("cannot open the cache")
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
            ))?;
            if !report.kept.is_empty() {
                let kept: Vec<String> = report
                    .kept
                    .iter()
                    .map(|path| path.display().to_string())
                    .collect();
                print_line(&format!(
                    "left {} entries wafer did not write: {}",
                    kept.len(),
                    kept.join(", ")
                ))?;
            }
            Ok(())
        }
    }
}
