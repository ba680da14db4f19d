//! The `nats_jetstream` input against a real nats-server, through the
//! binary: a `batch` the server would refuse, a shared durable consumer
//! whose config differs from a process's, a pipeline slower than
//! `ack_wait`. Every wait is for a state (a log line, a count in a
//! stream, a consumer with nothing pending).

use async_nats::jetstream::consumer;
use wafer_guests::BENTHOS_TRAP;

use super::nats_pipelines::{Broker, broker_with, relay};
use super::server::Server;
use super::util::Workspace;

/// A Benthos guest that takes 150 ms per message (a WASI sleep, so that
/// the time does not depend on the machine's speed) and leaves it as it
/// is.
const SLOW_GUEST: &str = r#"
(module
  (import "wasi_snapshot_preview1" "poll_oneoff"
    (func $poll_oneoff (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "allocate") (param i32) (result i32) (i32.const 4096))
  (func (export "deallocate") (param i32 i32))
  (func (export "process")
    ;; One subscription at 0: a relative timeout of the monotonic clock.
    (i64.store (i32.const 0) (i64.const 0))           ;; userdata
    (i32.store8 (i32.const 8) (i32.const 0))          ;; tag: clock
    (i32.store (i32.const 16) (i32.const 1))          ;; monotonic
    (i64.store (i32.const 24) (i64.const 150000000))  ;; 150 ms
    (i64.store (i32.const 32) (i64.const 0))          ;; precision
    (i32.store16 (i32.const 40) (i32.const 0))        ;; relative
    (drop (call $poll_oneoff (i32.const 0) (i32.const 64) (i32.const 1) (i32.const 128))))
)
"#;

/// The readiness line of a `nats_jetstream` input.
const CONSUMING: &str = "Consuming JetStream stream";

/// Consumer `workers` of IN, as the server has it.
fn workers(broker: &Broker) -> consumer::Info {
    broker.tokio.block_on(async {
        let stream = broker.jetstream.get_stream("IN").await.unwrap();
        stream.consumer_info("workers").await.unwrap()
    })
}

/// Waits until OUT holds `count` messages and consumer `workers` has
/// acknowledged every message of IN.
fn wait_until_done(broker: &Broker, count: u64) {
    broker.wait_for_count("OUT", count);
    broker.wait_until_all_acknowledged("IN", "workers");
}

/// The summary line of a run's log.
fn summary(log: &str) -> &str {
    log.lines()
        .find(|line| line.starts_with("pipeline ") && line.contains("processed"))
        .unwrap_or_else(|| panic!("no summary in:\n{log}"))
}

#[test]
fn a_batch_larger_than_max_ack_pending_is_refused_naming_the_field() {
    let ws = Workspace::new();
    ws.copy_guest(BENTHOS_TRAP, "trap.wasm");
    let fields = "    max_ack_pending: 32\n    batch: 64";
    // Nothing listens there: the config is refused before any connection.
    ws.write("big.yaml", relay("nats://127.0.0.1:1", "trap.wasm", fields));
    let field = "input.nats_jetstream.batch";
    let why = "64 is more than max_ack_pending (32)";
    ws.wafer(&["check", "big.yaml"])
        .code(1)
        .stdout_has(field)
        .stdout_has(why);
    ws.wafer(&["run", "big.yaml"])
        .code(2)
        .stderr_has(field)
        .stderr_has(why);
}

#[test]
fn a_shared_consumer_keeps_the_server_s_config_and_a_process_that_differs_says_so() {
    let (nats, broker) = broker_with(&["IN", "OUT"]);
    let ws = Workspace::new();
    ws.copy_guest(BENTHOS_TRAP, "trap.wasm");
    let url = &nats.url;
    let old = "    max_deliver: 5\n    max_ack_pending: 32\n    batch: 16\n    nak_delay: [10ms]";
    ws.write("old.yaml", relay(url, "trap.wasm", old));
    // A rolling deploy: the new version says 3, and leaves max_ack_pending
    // and batch (128) at their defaults; a message that fails for good is
    // dropped.
    let new = relay(
        url,
        "trap.wasm",
        "    max_deliver: 3\n    nak_delay: [10ms]",
    );
    ws.write("new.yaml", new + "on_error: drop\n");
    let (code, log) = Server::start_until(&ws, &["run", "old.yaml"], CONSUMING).stop();
    assert_eq!(code, Some(0), "{log}");
    assert!(!log.contains("The shared consumer"), "{log}");

    let node = Server::start_until(&ws, &["run", "new.yaml"], CONSUMING);
    let info = workers(&broker);
    assert_eq!(
        (info.config.max_deliver, info.config.max_ack_pending),
        (5, 32)
    );
    // A batch of 128 would be refused by the server, for ever.
    let payloads = (0..100).map(|i| match i {
        50 => "trap".to_string(),
        i => format!("m{i}"),
    });
    broker.publish_all("in.work", payloads);
    wait_until_done(&broker, 99);
    let (code, log) = node.stop();
    assert_eq!(code, Some(0), "{log}");
    for line in [
        "The shared consumer workers has max_deliver 5, this config 3: following the server's",
        "The shared consumer workers has max_ack_pending 32, this config 1024",
        "The consumer workers has max_ack_pending 32: pulling batches of 32 messages, not 128.",
    ] {
        assert!(log.contains(line), "{line:?} missing from:\n{log}");
    }
    // The poison message had the server's five deliveries: four handed
    // back, the fifth failed for good.
    let summary = summary(&log);
    assert!(
        summary.contains("processed 99, dropped 1, failed 5"),
        "{log}"
    );
    assert!(summary.contains("handed back for redelivery 4"), "{log}");
    let info = workers(&broker);
    assert_eq!(info.config.max_deliver, 5);
}

#[test]
fn messages_held_longer_than_ack_wait_are_kept_in_progress_and_processed_once() {
    let (nats, broker) = broker_with(&["IN", "OUT"]);
    let ws = Workspace::new();
    ws.write("slow.wat", SLOW_GUEST);
    // 40 messages at 150 ms on one thread: the last waits 6 s, three times
    // ack_wait. Batches of 2 fill the pipeline's places, so that most of
    // them wait in the input, the rest in the pipeline.
    let fields = "    ack_wait: 2s\n    batch: 2";
    ws.write("slow.yaml", relay(&nats.url, "slow.wat", fields));
    let node = Server::start_until(&ws, &["run", "slow.yaml"], CONSUMING);
    broker.publish_all("in.work", (0..40).map(|i| format!("m{i}")));
    wait_until_done(&broker, 40);
    // Every delivery counts, redeliveries too: 40 is each message once.
    let info = workers(&broker);
    assert_eq!(info.delivered.consumer_sequence, 40, "{info:?}");
    let (code, log) = node.stop();
    assert_eq!(code, Some(0), "{log}");
    assert!(
        summary(&log).contains("received 40, processed 40,"),
        "{log}"
    );
}
