//! Reloading a `wafer run` whose pipeline reads a JetStream stream: a
//! changed input drains through the old definition, and its successor
//! resumes from the durable consumer; each message is processed once.

use super::nats_pipelines::{CONSUMING, assert_out_holds_each_once, louder_relay, numbered, relay};
use super::server::Server;

/// Every `processed N` of the summaries in `log`, added up.
fn processed_in_all_runs(log: &str) -> u64 {
    log.split("processed ")
        .skip(1)
        .map(|after| {
            let digits: String = after.chars().take_while(char::is_ascii_digit).collect();
            digits.parse::<u64>().unwrap_or(0)
        })
        .sum()
}

#[cfg(unix)]
#[test]
fn a_changed_jetstream_input_drains_and_the_new_one_resumes_from_the_durable_consumer() {
    let fields = "    max_ack_pending: 64\n    ack_wait: 30s";
    let (nats, broker, ws) = louder_relay(fields);
    let mut node = Server::start_until(&ws, &["run", "relay.yaml"], CONSUMING);
    // Half before the reload, half once it is done: both definitions
    // have work.
    broker.publish_all("in.work", numbered(30_000).take(15_000));
    broker.wait_for_count("OUT", 5_000);

    // Its input changes (smaller pulls): the running one drains, then the
    // new one takes the durable consumer where it stands.
    ws.write(
        "relay.yaml",
        relay(
            &nats.url,
            "louder.wasm",
            &format!("{fields}\n    batch: 16"),
        ),
    );
    node.hangup();
    node.wait_for_line("Reloaded. generation=2");
    node.wait_for_line("Drained for a reload");
    node.wait_for_line(CONSUMING);
    broker.publish_all("in.work", numbered(30_000).skip(15_000));
    broker.wait_for_count("OUT", 30_000);
    broker.wait_until_all_acknowledged("IN", "workers");
    let (code, log) = node.stop();
    assert_eq!(code, Some(0), "{log}");
    // The two runs processed each message once between them.
    assert_eq!(processed_in_all_runs(&log), 30_000, "{log}");
    assert_out_holds_each_once(&broker, 30_000);
}

#[cfg(unix)]
#[test]
fn a_stage_changed_under_a_running_jetstream_input_processes_each_message_once() {
    let fields = "    max_ack_pending: 256\n    ack_wait: 30s";
    let (nats, broker, ws) = louder_relay(fields);
    let mut node = Server::start_until(&ws, &["run", "relay.yaml"], CONSUMING);
    // Half before the reload, half once it is done: both definitions
    // have work.
    broker.publish_all("in.work", numbered(30_000).take(15_000));
    broker.wait_for_count("OUT", 5_000);

    // Two workers instead of one, with batches in flight: the input runs
    // on, and the new stage takes over from the first batch not taken.
    let two_workers = relay(&nats.url, "louder.wasm", fields).replace("threads: 1", "threads: 2");
    ws.write("relay.yaml", two_workers);
    node.hangup();
    node.wait_for_line("Reloaded. generation=2");
    node.wait_for_line("Took the new processors");
    broker.publish_all("in.work", numbered(30_000).skip(15_000));
    broker.wait_for_count("OUT", 30_000);
    broker.wait_until_all_acknowledged("IN", "workers");
    let (code, log) = node.stop();
    assert_eq!(code, Some(0), "{log}");
    assert!(!log.contains("Drained for a reload"), "{log}");
    assert_eq!(processed_in_all_runs(&log), 30_000, "{log}");
    assert_out_holds_each_once(&broker, 30_000);
}
