//! `wafer check [DIR]`: load and compile a whole registry, list every entry,
//! every skipped file and every problem.

use std::path::PathBuf;

use serde_json::{Value, json};
use wafer::printable::escape_controls;
use wafer::registry::{Entry, EntryKind, SkippedFile};
use wafer::{Problem, Runtime};

use super::{CacheArgs, compile_progress, pipelines, print_line};
use crate::exit::Failure;

/// Check a registry or a pipeline file: every entry, skipped file and
/// problem.
///
/// Loads and compiles every function, then lists the entries with their
/// signatures, the files skipped, the fields not active yet, and every
/// problem with its file, entry and field. Exits 1 if there is any problem.
/// Environment values are never printed.
#[derive(clap::Args)]
pub struct CheckArgs {
    /// The registry folder or file, or a pipeline file.
    #[arg(default_value = ".")]
    registry: PathBuf,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    cache: CacheArgs,
}

struct Listed<'a> {
    entry: &'a Entry,
    /// The signature of a function that compiled; `None` otherwise.
    signature: Option<String>,
    /// A function that failed to compile.
    refused: bool,
}

pub fn run(args: CheckArgs) -> Result<(), Failure> {
    let target = pipelines::load(&args.registry)?;
    let runtime = std::sync::Arc::new(
        Runtime::with_options(target.registry, args.cache.options()).map_err(Failure::failed)?,
    );
    let loaded = runtime.load_all(compile_progress());
    let registry = runtime.registry();
    let inactive = runtime.inactive();
    let mut problems: Vec<Problem> = registry.problems().to_vec();
    problems.extend(target.problems);
    // Pipelines are checked as `wafer run` builds them (modules compiled,
    // the functions they call loaded), but bind no sockets: the pipeline
    // may be running.
    for config in target.configs {
        problems.extend(wafer_pipeline::Pipeline::check(&runtime, config));
    }
    // NATS endpoints' servers and credentials files, checked without
    // connecting.
    problems.extend(wafer_nats::endpoints::plan(registry).1);
    let mut signatures = std::collections::HashMap::new();
    for (id, outcome) in loaded {
        match outcome {
            Ok(function) => {
                signatures.insert(id, Some(function.signature().to_string()));
                continue;
            }
            Err(wafer::Error::Refused {
                problems: found, ..
            }) => problems.extend(found),
            Err(other) => problems
                .push(Problem::new(wafer::ProblemKind::Reference, other.to_string()).in_entry(&id)),
        }
        signatures.insert(id, None);
    }
    let listed: Vec<Listed> = registry
        .entries()
        .iter()
        .map(|entry| {
            let outcome = signatures.get(&entry.id);
            Listed {
                entry,
                signature: outcome.cloned().flatten(),
                refused: matches!(outcome, Some(None)),
            }
        })
        .collect();
    let output = if args.json {
        as_json(&listed, registry.skipped(), &inactive, &problems).to_string()
    } else {
        as_text(&listed, registry.skipped(), &inactive, &problems)
    };
    print_line(&output)?;
    if problems.is_empty() {
        Ok(())
    } else {
        Err(Failure::quiet())
    }
}

/// What a service or an endpoint does, for the listing.
fn describe(entry: &Entry) -> Option<String> {
    match &entry.kind {
        EntryKind::HttpService(service) => Some(format!("listens on {}", service.addr)),
        EntryKind::HttpEndpoint(endpoint) => Some(format!(
            "{} {} -> {}{}",
            endpoint.method.as_deref().unwrap_or("*"),
            endpoint.path,
            endpoint.func,
            endpoint
                .service
                .as_ref()
                .map(|s| format!(" on {s}"))
                .unwrap_or_default()
        )),
        EntryKind::NatsEndpoint(endpoint) => Some(format!(
            "NATS {} (queue {}) -> {}",
            endpoint.subject, endpoint.queue, endpoint.func
        )),
        _ => None,
    }
}

fn abi_of(entry: &Entry) -> &'static str {
    entry.function().map_or("-", |f| f.abi.as_str())
}

fn as_text(
    listed: &[Listed],
    skipped: &[SkippedFile],
    inactive: &[Problem],
    problems: &[Problem],
) -> String {
    let mut out = format!("entries ({}):\n", listed.len());
    let width = listed.iter().map(|l| l.entry.id.len()).max().unwrap_or(0);
    let kind_width = listed
        .iter()
        .map(|l| l.entry.kind_name().len())
        .max()
        .unwrap_or(0);
    for Listed {
        entry,
        signature,
        refused,
    } in listed
    {
        let described = describe(entry);
        let detail = if *refused {
            "(refused: see problems)"
        } else {
            signature.as_deref().or(described.as_deref()).unwrap_or("")
        };
        let line = format!(
            "  {:width$}  {:kind_width$}  {:12}  {}",
            escape_controls(&entry.id),
            entry.kind_name(),
            abi_of(entry),
            escape_controls(detail),
        );
        out.push_str(line.trim_end());
        out.push('\n');
    }
    if !skipped.is_empty() {
        out.push_str(&format!("\nskipped files ({}):\n", skipped.len()));
        for file in skipped {
            let line = format!("{}: {}", file.path.display(), file.reason);
            out.push_str(&format!("  {}\n", escape_controls(&line)));
        }
    }
    if !inactive.is_empty() {
        out.push_str(&format!("\nnot active yet ({}):\n", inactive.len()));
        for notice in inactive {
            out.push_str(&format!("  {notice}\n"));
        }
    }
    out.push_str(&format!("\nproblems ({}):\n", problems.len()));
    for problem in problems {
        out.push_str(&format!("  {problem}\n"));
    }
    out.trim_end().to_string()
}

fn problem_json(problem: &Problem) -> Value {
    json!({
        "kind": problem.kind.as_str(),
        "file": problem.file.as_ref().map(|f| f.display().to_string()),
        "entry": problem.entry,
        "field": problem.field,
        "message": problem.message,
    })
}

fn as_json(
    listed: &[Listed],
    skipped: &[SkippedFile],
    inactive: &[Problem],
    problems: &[Problem],
) -> Value {
    json!({
        "entries": listed.iter().map(|Listed { entry, signature, refused }| json!({
            "id": entry.id,
            "kind": entry.kind_name(),
            "abi": entry.function().map(|f| f.abi.as_str()),
            "signature": signature,
            "route": describe(entry),
            "refused": refused,
            "file": entry.file.display().to_string(),
        })).collect::<Vec<_>>(),
        "skipped": skipped.iter().map(|s| json!({"path": s.path.display().to_string(), "reason": s.reason})).collect::<Vec<_>>(),
        "inactive": inactive.iter().map(problem_json).collect::<Vec<_>>(),
        "problems": problems.iter().map(problem_json).collect::<Vec<_>>(),
    })
}
