//! A plain async-nats responder adding two numbers, `[a, b]` in and
//! `a + b` out as JSON: what a wafer function on a NATS subject is
//! measured against (benches/request_reply/run.sh). It answers each
//! request in its subscription loop, as a hand-written responder does.
//!
//! `plain_responder URL SUBJECT`; it prints `ready` on stderr once
//! subscribed (in the queue group named as the subject).

use futures_util::StreamExt;

#[tokio::main]
async fn main() -> Result<(), async_nats::Error> {
    let mut args = std::env::args().skip(1);
    let (Some(url), Some(subject)) = (args.next(), args.next()) else {
        return Err("usage: plain_responder URL SUBJECT".into());
    };
    let client = async_nats::connect(url).await?;
    let mut requests = client.queue_subscribe(subject.clone(), subject).await?;
    client.flush().await?;
    eprintln!("ready");
    while let Some(request) = requests.next().await {
        let Some(reply) = request.reply else {
            continue;
        };
        let answer = match serde_json::from_slice::<[i32; 2]>(&request.payload) {
            Ok([a, b]) => serde_json::to_vec(&a.wrapping_add(b))?,
            Err(e) => serde_json::to_vec(&serde_json::json!({"error": e.to_string()}))?,
        };
        client.publish(reply, answer.into()).await?;
    }
    Ok(())
}
