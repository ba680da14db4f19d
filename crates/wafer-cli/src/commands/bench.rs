//! `wafer bench ID [ARG_JSON...]`: call a function over and over and report
//! its throughput and latency.

use std::cell::RefCell;
use std::io::IsTerminal;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde_json::{Value, json};
use wafer::{ErrorKind, Input};

use super::call::call_failure;
use super::{FunctionArgs, print_line};
use crate::exit::Failure;

/// Call a function repeatedly and print calls/s and latency percentiles.
///
/// Warms up first (instances created, code paths hot), then runs
/// `--concurrency` callers until `--duration` or `--calls` is reached,
/// showing progress on a terminal. Calls go through the same call path as
/// every other surface; the counts by outcome and the instances come from
/// the function's metrics, the latency percentiles from each caller's
/// clock. Throughput counts successful calls only; failed calls (a trap, a
/// full pool) are counted and timed apart, and a caller refused by a full
/// pool backs off before it tries again. A concurrency above what the
/// function's pool can ever hold (calls running plus waiting) is refused.
///
/// Example: wafer bench quickstart:add 2 40 -r examples/quickstart --duration 3s
#[derive(clap::Args)]
pub struct BenchArgs {
    #[command(flatten)]
    target: FunctionArgs,
    /// Callers running at once.
    #[arg(long, short, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    concurrency: u32,
    /// How long to measure, e.g. `10s`, `500ms`, `1m`.
    #[arg(long, short, default_value = "10s", value_parser = parse_duration, conflicts_with = "calls")]
    duration: Duration,
    /// Stop after this many calls instead of after a duration.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    calls: Option<u64>,
    /// How long to warm up before measuring.
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    warmup: Duration,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    let wrong = || format!("`{text}` is not a duration like 10s, 500ms or 1.5m");
    let split = text
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: f64 = number.parse().map_err(|_| wrong())?;
    let seconds = match unit {
        "ms" => number / 1000.0,
        "s" | "" => number,
        "m" => number * 60.0,
        _ => return Err(wrong()),
    };
    Duration::try_from_secs_f64(seconds).map_err(|e| format!("`{text}`: {e}"))
}

/// What one caller measured.
struct Tally {
    ok: Histogram<u64>,
    failed: Histogram<u64>,
    first_error: Option<wafer::Error>,
}

impl Tally {
    fn new() -> Self {
        let histogram =
            || Histogram::new_with_bounds(1, 3_600_000_000_000, 3).expect("valid histogram bounds");
        Tally {
            ok: histogram(),
            failed: histogram(),
            first_error: None,
        }
    }

    fn merge(&mut self, other: Tally) {
        self.ok.add(&other.ok).expect("same bounds");
        self.failed.add(&other.failed).expect("same bounds");
        self.first_error = self.first_error.take().or(other.first_error);
    }
}

pub fn run(args: BenchArgs) -> Result<(), Failure> {
    let target = &args.target;
    let runtime = target.runtime()?;
    let (function, input) = super::tokio_runtime()?.block_on(async {
        let function = runtime.function(&target.id).await.map_err(call_failure)?;
        check_concurrency(&function, args.concurrency)?;
        let input = target.input(&function, Vec::new())?;
        function.warm_up().await.map_err(call_failure)?;
        // The first call shows bad arguments at once, not after a run.
        let first = input
            .try_clone()
            .expect("a bench input is never an HTTP request");
        function.invoke(first).await.map_err(call_failure)?;
        Ok::<_, Failure>((function, input))
    })?;
    measure(
        &function,
        &input,
        args.concurrency,
        Stop::At(Instant::now() + args.warmup),
        false,
    )?;
    let stop = match args.calls {
        Some(calls) => Stop::After(calls),
        None => Stop::At(Instant::now() + args.duration),
    };
    let before = function.call_stats();
    let started = Instant::now();
    let tally = measure(
        &function,
        &input,
        args.concurrency,
        stop,
        std::io::stderr().is_terminal(),
    )?;
    let elapsed = started.elapsed();
    let report = report(&function, &args, tally, &before, elapsed);
    print_line(&if args.json {
        report.to_string()
    } else {
        as_text(&report)
    })
}

/// Refuses more callers than the pool can ever hold: the rest would only
/// measure how fast "pool full" comes back.
fn check_concurrency(function: &wafer::Function, concurrency: u32) -> Result<(), Failure> {
    let policy = function.pool_policy();
    let capacity = policy.max_active.saturating_add(policy.max_waiting);
    if concurrency as usize > capacity {
        return Err(Failure::input(anyhow::anyhow!(
            "--concurrency {concurrency} is more than {} can ever take: {} calls running plus {} waiting (its pool's size and queue)",
            function.id(),
            policy.max_active,
            policy.max_waiting,
        )));
    }
    Ok(())
}

#[derive(Clone, Copy)]
enum Stop {
    At(Instant),
    After(u64),
}

/// Runs `concurrency` callers until `stop`: one OS thread per core (at
/// most), each with its own single-threaded runtime running its share of
/// the callers, so the load lands on every core the same way each run.
fn measure(
    function: &Arc<wafer::Function>,
    input: &Input,
    concurrency: u32,
    stop: Stop,
    progress: bool,
) -> Result<Tally, Failure> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let threads = (concurrency as usize).min(cores);
    let issued = Arc::new(AtomicU64::new(0));
    let done = AtomicBool::new(false);
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|t| {
                let callers = concurrency as usize / threads
                    + usize::from(t < concurrency as usize % threads);
                let issued = issued.clone();
                scope.spawn(move || -> Result<Tally, Failure> {
                    let runtime = super::tokio_runtime()?;
                    let local = tokio::task::LocalSet::new();
                    // One tally per thread, shared by its callers: a
                    // histogram each would cost memory per caller.
                    let tally = Rc::new(RefCell::new(Tally::new()));
                    local.block_on(&runtime, async {
                        let tasks: Vec<_> = (0..callers)
                            .map(|_| {
                                tokio::task::spawn_local(caller(
                                    function.clone(),
                                    input.try_clone(),
                                    stop,
                                    issued.clone(),
                                    tally.clone(),
                                ))
                            })
                            .collect();
                        for task in tasks {
                            task.await.expect("a bench caller never panics");
                        }
                    });
                    Ok(tally.replace(Tally::new()))
                })
            })
            .collect();
        if progress {
            show_progress(stop, &issued, &done, &workers);
        }
        let mut total = Tally::new();
        for worker in workers {
            total.merge(worker.join().expect("a bench thread never panics")?);
        }
        done.store(true, Ordering::Relaxed);
        Ok(total)
    })
}

/// The first pause of a caller refused by a full pool; each refusal in a
/// row doubles it, up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(1);
const MAX_BACKOFF: Duration = Duration::from_millis(100);

/// One caller: calls in a loop until `stop`, timing each call into `tally`.
async fn caller(
    function: Arc<wafer::Function>,
    input: Option<Input>,
    stop: Stop,
    issued: Arc<AtomicU64>,
    tally: Rc<RefCell<Tally>>,
) {
    let mut backoff = FIRST_BACKOFF;
    // Counted locally and published in batches: a shared counter touched
    // by every call would itself limit the scaling measured.
    let mut unpublished = 0u64;
    loop {
        let more = match stop {
            Stop::At(end) => Instant::now() < end,
            Stop::After(calls) => issued.fetch_add(1, Ordering::Relaxed) < calls,
        };
        if !more {
            issued.fetch_add(unpublished, Ordering::Relaxed);
            return;
        }
        if matches!(stop, Stop::At(_)) {
            unpublished += 1;
            if unpublished == 256 {
                issued.fetch_add(unpublished, Ordering::Relaxed);
                unpublished = 0;
            }
        }
        let start = Instant::now();
        let Some(input) = input.as_ref().and_then(Input::try_clone) else {
            return;
        };
        let outcome = function.invoke(input).await;
        let nanos = start.elapsed().as_nanos().max(1) as u64;
        let pool_full = {
            let mut tally = tally.borrow_mut();
            match outcome {
                Ok(_) => {
                    tally.ok.saturating_record(nanos);
                    false
                }
                Err(e) => {
                    tally.failed.saturating_record(nanos);
                    let pool_full = e.kind() == ErrorKind::PoolFull;
                    tally.first_error.get_or_insert(e);
                    pool_full
                }
            }
        };
        if pool_full {
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
        } else {
            backoff = FIRST_BACKOFF;
        }
    }
}

/// A progress bar on stderr until every worker thread has finished.
fn show_progress<T>(
    stop: Stop,
    issued: &AtomicU64,
    done: &AtomicBool,
    workers: &[std::thread::ScopedJoinHandle<'_, T>],
) {
    let started = Instant::now();
    while !done.load(Ordering::Relaxed) && !workers.iter().all(|w| w.is_finished()) {
        std::thread::sleep(Duration::from_millis(200));
        let share = match stop {
            Stop::At(end) => {
                started.elapsed().as_secs_f64()
                    / end
                        .saturating_duration_since(started)
                        .as_secs_f64()
                        .max(1e-9)
            }
            Stop::After(calls) => issued.load(Ordering::Relaxed) as f64 / calls as f64,
        };
        let filled = (share.clamp(0.0, 1.0) * 30.0) as usize;
        eprint!(
            "\r[{}{}] {:.1}s {} calls",
            "=".repeat(filled),
            " ".repeat(30 - filled),
            started.elapsed().as_secs_f64(),
            issued.load(Ordering::Relaxed)
        );
    }
    eprint!("\r\x1b[K");
}

fn latency(histogram: &Histogram<u64>) -> Value {
    if histogram.is_empty() {
        return Value::Null;
    }
    json!({
        "p50_ns": histogram.value_at_quantile(0.50),
        "p90_ns": histogram.value_at_quantile(0.90),
        "p99_ns": histogram.value_at_quantile(0.99),
        "max_ns": histogram.max(),
    })
}

/// The report: counts from the function's metrics (what the run added to
/// them), latency percentiles from the callers.
fn report(
    function: &wafer::Function,
    args: &BenchArgs,
    tally: Tally,
    before: &wafer::metrics::CallStats,
    elapsed: Duration,
) -> Value {
    let after = function.call_stats();
    let calls = after.calls() - before.calls();
    let ok = after.succeeded() - before.succeeded();
    let failed_by_kind: serde_json::Map<String, Value> = ErrorKind::ALL
        .iter()
        .map(|&kind| (kind, after.failed(kind) - before.failed(kind)))
        .filter(|&(_, count)| count > 0)
        .map(|(kind, count)| (kind.as_str().to_string(), json!(count)))
        .collect();
    let stats = function.pool_stats();
    json!({
        "function": function.id(),
        "concurrency": args.concurrency,
        "seconds": elapsed.as_secs_f64(),
        "calls": calls,
        // Failed calls are no throughput: a full pool answers fast.
        "calls_per_second": ok as f64 / elapsed.as_secs_f64(),
        "ok": ok,
        "guest_errors": after.guest_errors() - before.guest_errors(),
        "latency": latency(&tally.ok),
        "failed": calls - ok,
        "failed_by_kind": failed_by_kind,
        "failed_latency": latency(&tally.failed),
        "first_error": tally.first_error.map(|e| e.to_string()),
        "instances_created": stats.created,
        "instances_live": stats.live,
    })
}

fn human(nanos: &Value) -> String {
    let nanos = nanos.as_u64().unwrap_or(0) as f64;
    match nanos {
        n if n < 1e3 => format!("{n:.0} ns"),
        n if n < 1e6 => format!("{:.1} µs", n / 1e3),
        n if n < 1e9 => format!("{:.1} ms", n / 1e6),
        n => format!("{:.2} s", n / 1e9),
    }
}

fn latency_line(latency: &Value) -> String {
    format!(
        "p50 {}  p90 {}  p99 {}  max {}",
        human(&latency["p50_ns"]),
        human(&latency["p90_ns"]),
        human(&latency["p99_ns"]),
        human(&latency["max_ns"])
    )
}

fn as_text(report: &Value) -> String {
    let mut out = format!(
        "function      {}\nconcurrency   {}\ncalls         {} in {:.2} s\nthroughput    {:.0} successful calls/s\n",
        report["function"].as_str().unwrap_or_default(),
        report["concurrency"],
        report["calls"],
        report["seconds"].as_f64().unwrap_or_default(),
        report["calls_per_second"].as_f64().unwrap_or_default(),
    );
    if !report["latency"].is_null() {
        out.push_str(&format!(
            "latency       {}\n",
            latency_line(&report["latency"])
        ));
    }
    if report["failed"].as_u64().unwrap_or(0) > 0 {
        out.push_str(&format!(
            "failed        {} ({})\nfailed in     {}\n",
            report["failed"],
            report["first_error"].as_str().unwrap_or_default(),
            latency_line(&report["failed_latency"])
        ));
    }
    out.push_str(&format!(
        "instances     {} created, {} alive",
        report["instances_created"], report["instances_live"]
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::parse_duration;
    use std::time::Duration;

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("10s").unwrap(), Duration::from_secs(10));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("1.5m").unwrap(), Duration::from_secs(90));
        assert!(parse_duration("ten").is_err());
        assert!(parse_duration("5h").is_err());
    }
}
