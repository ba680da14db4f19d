//! The `wafer` command: a thin layer over the `wafer` library.
//!
//! `main` owns the exit policy: results go to stdout, logs and errors to
//! stderr (one line, the cause chain joined with `: `), and a closed stdout
//! pipe is not an error.

mod commands;
mod exit;

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::writer::BoxMakeWriter;

/// Run WebAssembly functions declared in a YAML registry.
///
/// A registry is a folder of `_index.yaml` files (Wippy's format) and Dapr
/// component files. Start with `wafer check` to see what a registry holds,
/// then `wafer call ID ARGS...`.
///
/// Exit codes: 0 success; 1 a call failed or `check` found problems;
/// 2 bad usage or input (unknown function, bad arguments, unreadable file);
/// 130 interrupted. A WASI program's own non-zero status is passed on.
#[derive(Parser)]
#[command(name = "wafer", version, max_term_width = 100)]
struct Cli {
    /// Log more (-v: info, -vv: debug). WAFER_LOG=<filter> sets the filter.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    /// Log only errors; guest output is not shown.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    quiet: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    Call(commands::call::CallArgs),
    Exec(commands::exec::ExecArgs),
    Bench(commands::bench::BenchArgs),
    Check(commands::check::CheckArgs),
    Compile(commands::compile::CompileArgs),
    Cache(commands::cache::CacheCommand),
    Hash(commands::hash::HashArgs),
    Inspect(commands::inspect::InspectArgs),
    Run(commands::run::RunArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // A server says where it listens and when it stops.
    let serving = matches!(cli.command, Command::Run(_));
    let logging = init_logging(cli.verbose.max(u8::from(serving)), cli.quiet, serving);
    let outcome = match cli.command {
        Command::Call(args) => commands::call::run(args),
        Command::Exec(args) => commands::exec::run(args),
        Command::Bench(args) => commands::bench::run(args),
        Command::Check(args) => commands::check::run(args),
        Command::Compile(args) => commands::compile::run(args),
        Command::Cache(args) => commands::cache::run(args),
        Command::Hash(args) => commands::hash::run(args),
        Command::Inspect(args) => commands::inspect::run(args),
        Command::Run(args) => commands::run::run(args),
    };
    // Every log line is written before the error line, and before exit.
    drop(logging);
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => failure.report(),
    }
}

/// Logs to stderr: for a server through a writer thread, so that no
/// request waits for a write to stderr (one access-log line per request;
/// lines queue rather than being dropped, and dropping the guard writes
/// what is pending); for other commands directly, in order with what they
/// print themselves.
fn init_logging(
    verbose: u8,
    quiet: bool,
    serving: bool,
) -> Option<tracing_appender::non_blocking::WorkerGuard> {
    let default = match (quiet, verbose) {
        (true, _) => "error",
        (false, 0) => "warn,wafer::guest=info",
        // async-nats logs each connection at info; wafer's own line says it.
        (false, 1) => "info,async_nats=warn",
        (false, _) => "debug,cranelift_codegen=info,wasmtime=info",
    };
    let filter = std::env::var("WAFER_LOG")
        .ok()
        .and_then(|f| EnvFilter::try_new(f).ok())
        .unwrap_or_else(|| EnvFilter::new(default));
    let (writer, guard) = if serving {
        let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
            .lossy(false)
            // Lines queued while one is written go out in one write.
            .finish(std::io::BufWriter::with_capacity(
                64 << 10,
                std::io::stderr(),
            ));
        (BoxMakeWriter::new(writer), Some(guard))
    } else {
        (BoxMakeWriter::new(std::io::stderr), None)
    };
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .without_time()
        .init();
    guard
}
