//! The request-reply benchmark's load driver: N requests `[i, 1]` on a
//! subject, C at a time over one connection, each reply checked to be
//! `i + 1`. Prints `calls/s p50-µs p99-µs` on one line (the shape the
//! benchmark scripts' `summary` reads); a wrong or missing reply fails it.
//!
//! `request_load URL SUBJECT N C`

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use hdrhistogram::Histogram;

#[tokio::main]
async fn main() -> Result<(), async_nats::Error> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [url, subject, n, c] = args.as_slice() else {
        return Err("usage: request_load URL SUBJECT N C".into());
    };
    let (n, c): (usize, usize) = (n.parse()?, c.parse()?);
    let client = async_nats::connect(url.as_str()).await?;
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let workers: Vec<_> = (0..c)
        .map(|_| {
            let (client, next, subject) = (client.clone(), next.clone(), subject.clone());
            tokio::spawn(async move {
                let mut latencies = Histogram::<u64>::new(3).expect("3 significant figures");
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= n {
                        return Ok::<_, async_nats::Error>(latencies);
                    }
                    let sent = Instant::now();
                    let reply = client
                        .request(subject.clone(), format!("[{i}, 1]").into())
                        .await?;
                    latencies.record(sent.elapsed().as_micros().try_into()?)?;
                    if reply.payload != (i + 1).to_string().as_bytes() {
                        let got = String::from_utf8_lossy(&reply.payload).into_owned();
                        return Err(format!("request {i}: the reply was {got}").into());
                    }
                }
            })
        })
        .collect();
    let mut latencies = Histogram::<u64>::new(3)?;
    for worker in workers {
        latencies.add(worker.await??)?;
    }
    let calls_per_s = n as f64 / started.elapsed().as_secs_f64();
    println!(
        "{calls_per_s:.0} {} {}",
        latencies.value_at_quantile(0.5),
        latencies.value_at_quantile(0.99)
    );
    Ok(())
}
