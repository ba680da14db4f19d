//! Pipelines on NATS through the real binary and a real nats-server:
//! several wafer processes sharing one JetStream consumer, a process
//! killed, the broker restarted, a poison message, core NATS. Every wait
//! is for a state (a count in a stream, a consumer with nothing pending).

use std::collections::HashSet;

use async_nats::jetstream::{self, consumer, stream};
use futures_util::StreamExt;
use wafer_guests::{BENTHOS_LOUDER, BENTHOS_TRAP};

use super::nats_server::NatsServer;
use super::server::{Server, wait_until};
use super::util::{Workspace, repo_root, run_with_stdin};

/// What `BENTHOS_LOUDER` appends.
const LOUD: &str = "!!!!111!!11!";

/// The readiness line of a `nats_jetstream` input.
const CONSUMING: &str = "Consuming JetStream stream";

/// A test's own client of the broker.
struct Broker {
    tokio: tokio::runtime::Runtime,
    jetstream: jetstream::Context,
}

impl Broker {
    fn connect(url: &str) -> Broker {
        let tokio = tokio::runtime::Runtime::new().unwrap();
        let jetstream =
            tokio.block_on(async { jetstream::new(async_nats::connect(url).await.unwrap()) });
        Broker { jetstream, tokio }
    }

    /// A file-backed stream `name` holding `subjects`.
    fn create_stream(&self, name: &str, subjects: &[&str]) {
        let config = stream::Config {
            name: name.to_string(),
            subjects: subjects.iter().map(|s| s.to_string()).collect(),
            storage: stream::StorageType::File,
            ..Default::default()
        };
        self.tokio
            .block_on(self.jetstream.create_stream(config))
            .unwrap();
    }

    /// Publishes each payload to `subject`, every acknowledgement awaited.
    fn publish_all(&self, subject: &str, payloads: impl IntoIterator<Item = String>) {
        self.tokio.block_on(async {
            let mut acks = Vec::new();
            for payload in payloads {
                let ack = self
                    .jetstream
                    .publish(subject.to_string(), payload.into())
                    .await
                    .unwrap();
                acks.push(ack);
                if acks.len() == 1000 {
                    for ack in acks.drain(..) {
                        ack.await.unwrap();
                    }
                }
            }
            for ack in acks {
                ack.await.unwrap();
            }
        });
    }

    /// How many messages stream `name` holds; 0 while it cannot tell (the
    /// server restarting).
    fn count(&self, name: &str) -> u64 {
        self.tokio.block_on(async {
            let Ok(stream) = self.jetstream.get_stream(name).await else {
                return 0;
            };
            stream
                .get_info()
                .await
                .map_or(0, |info| info.state.messages)
        })
    }

    /// Waits until stream `name` holds at least `count` messages.
    fn wait_for_count(&self, name: &str, count: u64) {
        wait_until(
            &format!("{count} messages in {name}"),
            || self.count(name),
            |seen| *seen >= count,
        );
    }

    /// Waits until consumer `durable` of `stream_name` has nothing
    /// pending nor waiting for an acknowledgement: every message was
    /// acknowledged.
    fn wait_until_all_acknowledged(&self, stream_name: &str, durable: &str) {
        wait_until(
            &format!("consumer {durable} to have acknowledged everything"),
            || {
                self.tokio.block_on(async {
                    let stream = self.jetstream.get_stream(stream_name).await.ok()?;
                    let consumer: consumer::PullConsumer =
                        stream.get_consumer(durable).await.ok()?;
                    let info = consumer.get_info().await.ok()?;
                    Some((info.num_pending, info.num_ack_pending))
                })
            },
            |seen| *seen == Some((0, 0)),
        );
    }

    /// Every message of stream `name`: payload and headers.
    fn read_all(&self, name: &str) -> Vec<(String, Option<async_nats::HeaderMap>)> {
        let count = self.count(name) as usize;
        self.tokio.block_on(async {
            let stream = self.jetstream.get_stream(name).await.unwrap();
            let consumer = stream
                .create_consumer(consumer::pull::OrderedConfig::default())
                .await
                .unwrap();
            let mut messages = consumer.messages().await.unwrap().take(count);
            let mut read = Vec::with_capacity(count);
            while let Some(message) = messages.next().await {
                let message = message.unwrap();
                read.push((
                    String::from_utf8(message.payload.to_vec()).unwrap(),
                    message.headers.clone(),
                ));
            }
            read
        })
    }
}

fn workspace() -> Workspace {
    let ws = Workspace::new();
    ws.copy_guest(BENTHOS_LOUDER, "louder.wasm");
    ws.copy_guest(BENTHOS_TRAP, "trap.wasm");
    ws
}

/// A pipeline from stream IN (consumer `workers`) through `processor` to
/// subject `out.done`, with `extra` input fields.
fn relay(url: &str, processor: &str, extra: &str) -> String {
    format!(
        r#"
input:
  nats_jetstream:
    urls: ["{url}"]
    stream: IN
    durable: workers
{extra}
pipeline:
  threads: 1
  processors:
    - wasm: {{module_path: {processor}}}
output:
  nats_jetstream:
    urls: ["{url}"]
    subject: out.done
"#
    )
}

/// `m0` to `m{count-1}`.
fn numbered(count: usize) -> impl Iterator<Item = String> {
    (0..count).map(|i| format!("m{i}"))
}

/// Checks that OUT holds each of `count` messages exactly once, made
/// louder.
fn assert_out_holds_each_once(broker: &Broker, count: usize) {
    let out = broker.read_all("OUT");
    assert_eq!(out.len(), count, "OUT holds duplicates or misses some");
    let distinct: HashSet<&str> = out.iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(distinct.len(), count);
    for payload in numbered(count) {
        assert!(
            distinct.contains(format!("{payload}{LOUD}").as_str()),
            "{payload} is missing from OUT"
        );
    }
}

/// The number after `processed` in a run's summary line.
fn processed(log: &str) -> u64 {
    let line = log
        .lines()
        .find(|line| line.starts_with("pipeline ") && line.contains("processed"))
        .unwrap_or_else(|| panic!("no summary in:\n{log}"));
    let after = &line[line.find("processed ").unwrap() + "processed ".len()..];
    after
        .split(|c: char| !c.is_ascii_digit())
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

/// A broker with streams IN and OUT, and a workspace whose `relay.yaml`
/// makes messages from IN louder into OUT (`extra`: more input fields).
fn louder_relay(extra: &str) -> (NatsServer, Broker, Workspace) {
    let nats = NatsServer::start();
    let broker = Broker::connect(&nats.url);
    broker.create_stream("IN", &["in.>"]);
    broker.create_stream("OUT", &["out.>"]);
    let ws = workspace();
    ws.write("relay.yaml", relay(&nats.url, "louder.wasm", extra));
    (nats, broker, ws)
}

fn start_nodes(ws: &Workspace, count: usize) -> Vec<Server> {
    (0..count)
        .map(|_| Server::start_until(ws, &["run", "relay.yaml"], CONSUMING))
        .collect()
}

#[test]
fn three_processes_share_one_stream_and_the_output_holds_each_message_once() {
    let (_nats, broker, ws) = louder_relay("    max_ack_pending: 32\n    batch: 16");
    let nodes = start_nodes(&ws, 3);
    broker.publish_all("in.work", numbered(30_000));
    broker.wait_for_count("OUT", 30_000);
    broker.wait_until_all_acknowledged("IN", "workers");
    let mut total = 0;
    for node in nodes {
        let (code, log) = node.stop();
        assert_eq!(code, Some(0), "{log}");
        let done = processed(&log);
        assert!(done > 0, "a process did none of the work:\n{log}");
        total += done;
    }
    assert!(total >= 30_000, "{total}");
    assert_out_holds_each_once(&broker, 30_000);
}

#[test]
fn a_killed_process_leaves_its_messages_to_the_others() {
    // A short ack_wait: what the killed process held comes back soon.
    let (_nats, broker, ws) =
        louder_relay("    max_ack_pending: 32\n    batch: 16\n    ack_wait: 2s");
    let mut nodes = start_nodes(&ws, 3);
    broker.publish_all("in.work", numbered(30_000));
    broker.wait_for_count("OUT", 10_000);
    nodes.remove(0).kill();
    broker.wait_for_count("OUT", 30_000);
    broker.wait_until_all_acknowledged("IN", "workers");
    for node in nodes {
        let (code, log) = node.stop();
        assert_eq!(code, Some(0), "{log}");
    }
    assert_out_holds_each_once(&broker, 30_000);
}

#[test]
fn ctrl_c_acknowledges_what_was_written_and_the_next_run_goes_on() {
    // What the stopped process had prefetched but never saw comes back
    // after `ack_wait`; long enough that nothing written is redelivered
    // because its acknowledgement was slow.
    let (_nats, broker, ws) = louder_relay("    max_ack_pending: 256\n    ack_wait: 10s");
    broker.publish_all("in.work", numbered(30_000));
    let node = Server::start_until(&ws, &["run", "relay.yaml"], CONSUMING);
    broker.wait_for_count("OUT", 5_000);
    let (code, first) = node.stop();
    assert_eq!(code, Some(0), "{first}");
    let node = Server::start_until(&ws, &["run", "relay.yaml"], CONSUMING);
    broker.wait_for_count("OUT", 30_000);
    broker.wait_until_all_acknowledged("IN", "workers");
    let (code, second) = node.stop();
    assert_eq!(code, Some(0), "{second}");
    // Each message was processed by one run only: what the first wrote,
    // it acknowledged before it ended, and what it had not finished it
    // handed back.
    assert_eq!(
        processed(&first) + processed(&second),
        30_000,
        "first run:\n{first}\nsecond run:\n{second}"
    );
    assert_out_holds_each_once(&broker, 30_000);
}

#[test]
fn a_restarted_broker_pauses_the_pipeline_and_it_resumes() {
    let (mut nats, broker, ws) = louder_relay("    max_ack_pending: 64\n    ack_wait: 5s");
    let mut node = Server::start_until(&ws, &["run", "relay.yaml"], CONSUMING);
    broker.publish_all("in.work", numbered(30_000));
    broker.wait_for_count("OUT", 10_000);
    nats.restart();
    node.wait_for_line("Lost the connection to NATS");
    broker.wait_for_count("OUT", 30_000);
    broker.wait_until_all_acknowledged("IN", "workers");
    let (code, log) = node.stop();
    assert_eq!(code, Some(0), "{log}");
    assert!(log.contains("Reconnected to NATS"), "{log}");
    assert_out_holds_each_once(&broker, 30_000);
}

#[test]
fn a_poison_message_is_retried_then_dead_lettered_and_the_rest_flow_on() {
    let nats = NatsServer::start();
    let broker = Broker::connect(&nats.url);
    broker.create_stream("IN", &["in.>"]);
    broker.create_stream("OUT", &["out.>"]);
    broker.create_stream("DLQ", &["dlq.>"]);
    let ws = workspace();
    let url = &nats.url;
    ws.write(
        "relay.yaml",
        format!(
            r#"{}
on_error:
  output:
    nats_jetstream:
      urls: ["{url}"]
      subject: dlq.${{! meta("nats_stream") }}
      metadata: {{include_patterns: ["^error$", "^nats_num_delivered$"]}}
"#,
            relay(
                url,
                "trap.wasm",
                "    max_deliver: 3\n    nak_delay: [10ms]"
            )
        ),
    );
    let node = Server::start_until(&ws, &["run", "relay.yaml"], CONSUMING);
    let payloads = (0..100).map(|i| {
        if i == 50 {
            "trap".to_string()
        } else {
            format!("m{i}")
        }
    });
    broker.publish_all("in.work", payloads);
    broker.wait_for_count("DLQ", 1);
    broker.wait_for_count("OUT", 99);
    broker.wait_until_all_acknowledged("IN", "workers");
    let (code, log) = node.stop();
    assert_eq!(code, Some(0), "{log}");
    assert!(
        log.contains("processed 99, dropped 0, failed 3 (1 to the dead-letter output)"),
        "{log}"
    );
    assert!(log.contains("handed back for redelivery 2"), "{log}");
    let dead = broker.read_all("DLQ");
    assert_eq!(dead.len(), 1);
    let (payload, headers) = &dead[0];
    assert_eq!(payload, "trap");
    let headers = headers.as_ref().expect("the dead letter has headers");
    assert_eq!(headers.get("nats_num_delivered").unwrap().as_str(), "3");
    let error = headers.get("error").unwrap().as_str();
    assert!(error.contains("unreachable"), "{error}");
    let out = broker.read_all("OUT");
    assert_eq!(out.len(), 99);
    assert!(out.iter().all(|(p, _)| p.ends_with(LOUD)));
}

#[test]
fn core_nats_messages_go_through_and_metadata_routes_them() {
    let nats = NatsServer::start();
    let ws = workspace();
    let url = &nats.url;
    ws.write(
        "relay.yaml",
        format!(
            r#"
input:
  nats: {{urls: ["{url}"], subject: "in.*", queue: workers}}
pipeline:
  processors:
    - wasm: {{module_path: louder.wasm}}
output:
  nats:
    urls: ["{url}"]
    subject: out.${{! meta("nats_subject") }}
    headers: {{From: wafer}}
"#
        ),
    );
    let node = Server::start_until(
        &ws,
        &["run", "relay.yaml"],
        "Subscribed to NATS subject in.*",
    );
    let tokio = tokio::runtime::Runtime::new().unwrap();
    let received = tokio.block_on(async {
        let client = async_nats::connect(url.as_str()).await.unwrap();
        let mut out = client.subscribe("out.>").await.unwrap();
        client.flush().await.unwrap();
        client.publish("in.a", "hello".into()).await.unwrap();
        client.flush().await.unwrap();
        out.next().await.unwrap()
    });
    assert_eq!(received.subject.as_str(), "out.in.a");
    assert_eq!(&received.payload[..], format!("hello{LOUD}").as_bytes());
    let headers = received.headers.unwrap();
    assert_eq!(headers.get("From").unwrap().as_str(), "wafer");
    let (code, log) = node.stop();
    assert_eq!(code, Some(0), "{log}");
}

#[test]
fn nats_fields_are_checked_before_anything_runs() {
    let ws = workspace();
    ws.write(
        "bad.yaml",
        r#"
input:
  nats_jetstream: {urls: [], durable: w, bind: true}
output:
  nats_jetstream:
    urls: ["nats://127.0.0.1:4222"]
    subject: out.${! content() }
"#,
    );
    let run = ws.wafer(&["check", "bad.yaml"]);
    run.code(1)
        .stdout_has("input.nats_jetstream.urls")
        .stdout_has("output.nats_jetstream.subject")
        .stdout_has("content()");
}

/// `wafer run examples/scale-out/FILE` from the repository's root, as
/// the README runs it, against `url`.
fn scale_out(ws: &Workspace, url: &str, file: &str) -> std::process::Command {
    let path = format!("examples/scale-out/{file}");
    let mut command = ws.command(&["run", &path]);
    command.current_dir(repo_root()).env("NATS_URL", url);
    command
}

#[test]
fn the_scale_out_example_shares_the_orders_between_two_workers() {
    let nats = NatsServer::start();
    let broker = Broker::connect(&nats.url);
    let ws = Workspace::new();
    let workers: Vec<Server> = (0..2)
        .map(|_| Server::spawn_until(scale_out(&ws, &nats.url, "worker.yaml"), CONSUMING))
        .collect();
    let orders: String = (1..=2000).map(|i| format!("order {i}\n")).collect();
    let args = ["run", "examples/scale-out/feed.yaml"];
    run_with_stdin(&args, scale_out(&ws, &nats.url, "feed.yaml"), &orders)
        .code(0)
        .stderr_has("pipeline feed: received 2000, processed 2000");
    broker.wait_for_count("DONE", 2000);
    broker.wait_until_all_acknowledged("ORDERS", "workers");
    for worker in workers {
        let (code, log) = worker.stop();
        assert_eq!(code, Some(0), "{log}");
        assert!(processed(&log) > 0, "a worker did none of the work:\n{log}");
    }
    let done = broker.read_all("DONE");
    let distinct: HashSet<&str> = done.iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!((done.len(), distinct.len()), (2000, 2000));
    assert!(distinct.contains("ORDER 1") && distinct.contains("ORDER 2000"));
}
