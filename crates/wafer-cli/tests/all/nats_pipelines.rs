//! Pipelines on NATS through the real binary and a real nats-server:
//! several wafer processes sharing one JetStream consumer, a process
//! killed, the broker restarted, a poison message, core NATS. Every wait
//! is for a state (a count in a stream, a consumer with nothing pending).

use std::collections::HashSet;
use std::time::Duration;

use async_nats::jetstream::{self, consumer, stream};
use futures_util::StreamExt;
use wafer_guests::{BENTHOS_LOUDER, BENTHOS_META, BENTHOS_TRAP};

use super::nats_server::NatsServer;
use super::server::{PATIENCE, Server, send, wait_until};
use super::util::{Workspace, repo_root, run_with_stdin};

/// What `BENTHOS_LOUDER` appends.
const LOUD: &str = "!!!!111!!11!";

/// The readiness line of a `nats_jetstream` input.
pub(super) const CONSUMING: &str = "Consuming JetStream stream";

/// A test's own client of the broker (also for the input tests of
/// `nats_inputs`).
pub(super) struct Broker {
    pub(super) tokio: tokio::runtime::Runtime,
    pub(super) jetstream: jetstream::Context,
}

impl Broker {
    pub(super) fn connect(url: &str) -> Broker {
        let tokio = tokio::runtime::Runtime::new().unwrap();
        let jetstream =
            tokio.block_on(async { jetstream::new(async_nats::connect(url).await.unwrap()) });
        Broker { jetstream, tokio }
    }

    /// A file-backed stream `name` holding `subjects`.
    pub(super) fn create_stream(&self, name: &str, subjects: &[&str]) {
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
    pub(super) fn publish_all(&self, subject: &str, payloads: impl IntoIterator<Item = String>) {
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

    /// Publishes each payload to `subject` with its headers, every
    /// acknowledgement awaited.
    fn publish_with_headers(&self, subject: &str, messages: Vec<(String, async_nats::HeaderMap)>) {
        self.tokio.block_on(async {
            for (payload, headers) in messages {
                self.jetstream
                    .publish_with_headers(subject.to_string(), headers, payload.into())
                    .await
                    .unwrap()
                    .await
                    .unwrap();
            }
        });
    }

    /// The last stream sequence consumer `durable` of `stream_name` has
    /// acknowledged everything up to (0: nothing acknowledged yet).
    fn ack_floor(&self, stream_name: &str, durable: &str) -> u64 {
        self.tokio.block_on(async {
            let stream = self.jetstream.get_stream(stream_name).await.unwrap();
            let consumer: consumer::PullConsumer = stream.get_consumer(durable).await.unwrap();
            consumer.get_info().await.unwrap().ack_floor.stream_sequence
        })
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
    pub(super) fn wait_for_count(&self, name: &str, count: u64) {
        wait_until(
            &format!("{count} messages in {name}"),
            || self.count(name),
            |seen| *seen >= count,
        );
    }

    /// Waits until consumer `durable` of `stream_name` has nothing
    /// pending nor waiting for an acknowledgement: every message was
    /// acknowledged.
    pub(super) fn wait_until_all_acknowledged(&self, stream_name: &str, durable: &str) {
        self.wait_for_consumer(stream_name, durable, (0, 0));
    }

    /// Waits until consumer `durable` of `stream_name` has `pending`:
    /// messages not delivered yet, and messages delivered and waiting for
    /// an acknowledgement.
    fn wait_for_consumer(&self, stream_name: &str, durable: &str, pending: (u64, usize)) {
        wait_until(
            &format!("consumer {durable} to have {pending:?} (undelivered, unacknowledged)"),
            || {
                self.tokio.block_on(async {
                    let stream = self.jetstream.get_stream(stream_name).await.ok()?;
                    let consumer: consumer::PullConsumer =
                        stream.get_consumer(durable).await.ok()?;
                    let info = consumer.get_info().await.ok()?;
                    Some((info.num_pending, info.num_ack_pending))
                })
            },
            |seen| *seen == Some(pending),
        );
    }

    /// Up to `count` messages that consumer `durable` of `stream_name`
    /// delivers within `within`, each with its delivery count; none
    /// acknowledged.
    fn pull(
        &self,
        stream_name: &str,
        durable: &str,
        count: usize,
        within: Duration,
    ) -> Vec<(String, i64)> {
        self.tokio.block_on(async {
            let stream = self.jetstream.get_stream(stream_name).await.unwrap();
            let consumer: consumer::PullConsumer = stream.get_consumer(durable).await.unwrap();
            let mut batch = consumer
                .batch()
                .max_messages(count)
                .expires(within)
                .messages()
                .await
                .unwrap();
            let mut pulled = Vec::new();
            while let Some(message) = batch.next().await {
                let message = message.unwrap();
                let delivered = message.info().unwrap().delivered;
                pulled.push((
                    String::from_utf8(message.payload.to_vec()).unwrap(),
                    delivered,
                ));
            }
            pulled
        })
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

/// An `input` reading stream IN through consumer `workers`, with `extra`
/// fields.
fn workers_input(url: &str, extra: &str) -> String {
    format!(
        r#"
input:
  nats_jetstream:
    urls: ["{url}"]
    stream: IN
    durable: workers
{extra}
"#
    )
}

/// A pipeline from stream IN (consumer `workers`) through `processor` to
/// subject `out.done`, with `extra` input fields.
pub(super) fn relay(url: &str, processor: &str, extra: &str) -> String {
    let input = workers_input(url, extra);
    format!(
        r#"{input}
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
pub(super) fn numbered(count: usize) -> impl Iterator<Item = String> {
    (0..count).map(|i| format!("m{i}"))
}

/// Checks that OUT holds each of `count` messages exactly once, made
/// louder.
pub(super) fn assert_out_holds_each_once(broker: &Broker, count: usize) {
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

/// A fresh broker holding, for each name, a stream of that name with the
/// subjects below its name in lower case (`IN`: `in.>`).
pub(super) fn broker_with(streams: &[&str]) -> (NatsServer, Broker) {
    let nats = NatsServer::start();
    let broker = Broker::connect(&nats.url);
    for name in streams {
        broker.create_stream(name, &[&format!("{}.>", name.to_lowercase())]);
    }
    (nats, broker)
}

/// A broker with streams IN and OUT, and a workspace whose `relay.yaml`
/// makes messages from IN louder into OUT (`extra`: more input fields).
pub(super) fn louder_relay(extra: &str) -> (NatsServer, Broker, Workspace) {
    let (nats, broker) = broker_with(&["IN", "OUT"]);
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
    // What the stopped process held comes back at once; `ack_wait` is
    // long enough that nothing written is delivered again because its
    // acknowledgement was slow.
    let (_nats, broker, ws) = louder_relay("    max_ack_pending: 256\n    ack_wait: 30s");
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
    // handed back. One more is the broker's: nats-server before 2.10.14
    // (Debian's is 2.9) may deliver the last message again as new when a
    // message is handed back (nats-server#5305, see `end_pull_requests`),
    // which this test has seen once in many runs; the output still holds
    // it once.
    let both = processed(&first) + processed(&second);
    assert!(
        (30_000..=30_001).contains(&both),
        "{both} processed; first run:\n{first}\nsecond run:\n{second}"
    );
    assert_out_holds_each_once(&broker, 30_000);
}

#[test]
fn a_stopped_input_hands_back_at_once_what_it_held_and_nothing_more() {
    // An HTTP output whose server takes the connection and never answers:
    // the pipeline stands still, and the input takes every message and
    // holds it.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_url = format!("http://{}/", silent.local_addr().unwrap());
    let (nats, broker) = broker_with(&["IN"]);
    let ws = workspace();
    let input = workers_input(
        &nats.url,
        "    max_ack_pending: 50\n    batch: 5\n    ack_wait: 300s",
    );
    ws.write(
        "relay.yaml",
        format!(
            r#"{input}
output:
  http_client:
    url: {silent_url}
    timeout: 300s
    retries: 0
"#
        ),
    );
    broker.publish_all("in.work", numbered(50));
    let node = Server::start_until(&ws, &["run", "relay.yaml"], CONSUMING);
    let (accepted, connection) = std::sync::mpsc::channel();
    std::thread::spawn(move || accepted.send(silent.accept().map(|(c, _)| c)));
    let connection = connection.recv_timeout(PATIENCE).unwrap().unwrap();
    broker.wait_for_consumer("IN", "workers", (0, 50));

    // Stopped, and the output's request fails: every message goes back.
    node.interrupt();
    drop(connection);
    let (_, log) = node.wait();

    // At once (its ack_wait is 300 s), and each message once: a second
    // delivery. Handed back while a pull request of the stopped input
    // was still open, a message would go to it (and come back only after
    // ack_wait); with none open but not yet dropped by the server,
    // nats-server before 2.10.14 sends the last message it delivered
    // again as a first delivery.
    let pulled = broker.pull("IN", "workers", 50, Duration::from_secs(60));
    let mut expected: Vec<(String, i64)> = numbered(50).map(|m| (m, 2)).collect();
    let mut seen = pulled.clone();
    expected.sort();
    seen.sort();
    assert_eq!(seen, expected, "pulled {pulled:?}\n{log}");
}

#[test]
fn pipelines_reading_one_stream_through_consumers_of_their_own_each_write_every_message() {
    let (nats, broker) = broker_with(&["IN", "OUT"]);
    let ws = workspace();
    for durable in ["workers", "audit"] {
        let config = relay(&nats.url, "louder.wasm", "")
            .replace("durable: workers", &format!("durable: {durable}"));
        ws.write(&format!("{durable}.yaml"), config);
    }
    broker.publish_all("in.work", numbered(100));
    let nodes = ["workers", "audit"]
        .map(|durable| Server::start_until(&ws, &["run", &format!("{durable}.yaml")], CONSUMING));
    broker.wait_until_all_acknowledged("IN", "workers");
    broker.wait_until_all_acknowledged("IN", "audit");
    for node in nodes {
        let (code, log) = node.stop();
        assert_eq!(code, Some(0), "{log}");
    }
    // Each consumer's copy has an id of its own: neither is taken for a
    // duplicate of the other.
    let out = broker.read_all("OUT");
    assert_eq!(out.len(), 200);
    let distinct: HashSet<&str> = out.iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(distinct.len(), 100);
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

/// Waits until DLQ holds `dead` messages and OUT `written`, and consumer
/// `workers` of IN acknowledged everything; then stops `node`, which must
/// end well, and answers its log.
fn stop_once_settled(broker: &Broker, node: Server, dead: u64, written: u64) -> String {
    broker.wait_for_count("DLQ", dead);
    broker.wait_for_count("OUT", written);
    broker.wait_until_all_acknowledged("IN", "workers");
    let (code, log) = node.stop();
    assert_eq!(code, Some(0), "{log}");
    log
}

#[test]
fn a_poison_message_is_retried_then_dead_lettered_and_the_rest_flow_on() {
    let (nats, broker) = broker_with(&["IN", "OUT", "DLQ"]);
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
    let log = stop_once_settled(&broker, node, 1, 99);
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
        tokio::time::timeout(PATIENCE, out.next())
            .await
            .expect("the relayed message arrives")
            .unwrap()
    });
    assert_eq!(received.subject.as_str(), "out.in.a");
    assert_eq!(&received.payload[..], format!("hello{LOUD}").as_bytes());
    let headers = received.headers.unwrap();
    assert_eq!(headers.get("From").unwrap().as_str(), "wafer");
    let (code, log) = node.stop();
    assert_eq!(code, Some(0), "{log}");
}

#[test]
fn a_metadata_value_with_a_line_break_is_left_out_of_the_headers_and_the_message_is_sent() {
    let (nats, broker) = broker_with(&["OUT"]);
    let ws = Workspace::new();
    ws.copy_guest(BENTHOS_META, "meta.wasm");
    let url = &nats.url;
    // Every query parameter is metadata; `meta` sets metadata `greeting`
    // to "hello " and the parameter `name`.
    ws.write(
        "hook.yaml",
        format!(
            r#"
input:
  http_server: {{address: "127.0.0.1:0", path: /hook}}
pipeline:
  processors:
    - wasm: {{module_path: meta.wasm}}
output:
  nats_jetstream:
    urls: ["{url}"]
    subject: out.hook
    metadata: {{include_patterns: [".*"]}}
"#
        ),
    );
    let server = Server::start_with(&ws, &["run", "hook.yaml"]);
    for query in ["name=two%0Alines", "name=one&a%3Ab=colon"] {
        let response = send("POST", &format!("{}?{query}", server.base), "hello");
        assert_eq!(response.status, 200, "{query}: {}", response.text());
    }
    broker.wait_for_count("OUT", 2);
    let (code, log) = server.stop();
    assert_eq!(code, Some(0), "{log}");
    let warned = log
        .lines()
        .find(|line| line.contains("A header NATS cannot carry was left out"))
        .unwrap_or_else(|| panic!("no warning:\n{log}"));
    assert!(
        warned.contains("WARN") && warned.contains("greeting"),
        "{warned}"
    );
    let out = broker.read_all("OUT");
    let (payload, headers) = &out[0];
    assert_eq!(payload, "two\nlines:hello");
    let headers = headers.as_ref().expect("the other metadata are headers");
    assert_eq!(headers.get("http_server_verb").unwrap().as_str(), "POST");
    assert!(headers.get("name").is_none() && headers.get("greeting").is_none());
    let (payload, headers) = &out[1];
    assert_eq!(payload, "one:hello");
    let headers = headers.as_ref().unwrap();
    assert_eq!(headers.get("greeting").unwrap().as_str(), "hello one");
    assert!(
        headers
            .iter()
            .all(|(name, _)| !name.to_string().contains(':'))
    );
}

#[test]
fn a_message_whose_subject_cannot_be_made_is_dead_lettered_and_the_others_are_written() {
    let (nats, broker) = broker_with(&["IN", "OUT", "DLQ"]);
    let ws = workspace();
    let url = &nats.url;
    let input = workers_input(url, "");
    ws.write(
        "relay.yaml",
        format!(
            r#"{input}
pipeline:
  threads: 1
  processors:
    - wasm: {{module_path: louder.wasm}}
output:
  nats_jetstream:
    urls: ["{url}"]
    subject: out.${{! meta("kind") }}
on_error:
  output:
    nats_jetstream:
      urls: ["{url}"]
      subject: dlq.rejected
      metadata: {{include_patterns: ["^error$"]}}
"#
        ),
    );
    let node = Server::start_until(&ws, &["run", "relay.yaml"], CONSUMING);
    // Header `kind` becomes metadata; m10 has none, m20's makes a subject
    // with a space.
    let messages = numbered(100)
        .enumerate()
        .map(|(i, payload)| {
            let mut headers = async_nats::HeaderMap::new();
            match i {
                10 => {}
                20 => headers.insert("kind", "two words"),
                _ => headers.insert("kind", "a"),
            }
            (payload, headers)
        })
        .collect();
    broker.publish_with_headers("in.work", messages);
    let log = stop_once_settled(&broker, node, 2, 98);
    assert!(
        log.contains("processed 98, dropped 0, failed 2 (2 to the dead-letter output)"),
        "{log}"
    );
    let dead = broker.read_all("DLQ");
    let payloads: Vec<&str> = dead.iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(payloads, [format!("m10{LOUD}"), format!("m20{LOUD}")]);
    let error = |i: usize| {
        let headers = dead[i].1.as_ref().expect("the dead letter has headers");
        headers.get("error").unwrap().as_str().to_string()
    };
    assert!(error(0).contains("no metadata `kind`"), "{}", error(0));
    assert!(
        error(1).contains("`out.two words` is not a subject"),
        "{}",
        error(1)
    );
    assert_eq!(broker.count("OUT"), 98);
}

#[test]
fn ctrl_c_ends_a_run_whose_output_has_no_stream_and_acknowledges_nothing() {
    let (nats, broker) = broker_with(&["IN"]);
    let ws = workspace();
    // No stream holds the output's subject out.done (yet).
    ws.write(
        "relay.yaml",
        relay(&nats.url, "louder.wasm", "    ack_wait: 5s"),
    );
    let mut node = Server::start_until(&ws, &["run", "relay.yaml"], CONSUMING);
    broker.publish_all("in.work", numbered(10));
    let warned = node.wait_for_line("No JetStream stream holds subject out.done");
    assert!(warned.contains("WARN"), "{warned}");
    node.interrupt();
    let (code, log) = node.wait_within(Duration::from_secs(60));
    assert_eq!(code, Some(1), "{log}");
    assert!(log.contains("within 10s of the pipeline stopping"), "{log}");
    assert_eq!(broker.ack_floor("IN", "workers"), 0, "{log}");
    // Nothing was lost: once the stream is there, a new run writes all.
    broker.create_stream("OUT", &["out.>"]);
    let node = Server::start_until(&ws, &["run", "relay.yaml"], CONSUMING);
    broker.wait_for_count("OUT", 10);
    broker.wait_until_all_acknowledged("IN", "workers");
    let (code, log) = node.stop();
    assert_eq!(code, Some(0), "{log}");
    assert_out_holds_each_once(&broker, 10);
}

#[test]
fn a_batch_larger_than_the_client_s_default_ack_window_is_published_whole() {
    // async-nats lets 5000 publishes wait for their acknowledgement by
    // default; a batch of 6000 sent at once must not stop at the 5001st.
    let (nats, broker) = broker_with(&["OUT"]);
    let ws = Workspace::new();
    let url = &nats.url;
    ws.write(
        "burst.yaml",
        format!(
            r#"
input:
  generate: {{mapping: 'root = "x"', count: 6000, interval: "", batch_size: 6000}}
output:
  nats_jetstream:
    urls: ["{url}"]
    subject: out.burst
    max_in_flight: 6000
"#
        ),
    );
    let run = Server::spawn_until(ws.command(&["run", "burst.yaml"]), "Running.");
    let (code, log) = run.wait();
    assert_eq!(code, Some(0), "{log}");
    assert!(log.contains("received 6000, processed 6000"), "{log}");
    assert_eq!(broker.count("OUT"), 6000);
}

#[test]
fn an_output_that_cannot_connect_fails_the_run_before_its_input_takes_a_message() {
    let (nats, _broker) = broker_with(&["IN"]);
    let nobody = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = nobody.local_addr().unwrap().port();
    drop(nobody);
    let ws = workspace();
    // The input's server is there; nobody listens where the output goes.
    let relay = relay(&nats.url, "louder.wasm", "");
    let (input, output) = relay.split_at(relay.find("output:").unwrap());
    let output = output.replace(&nats.url, &format!("nats://127.0.0.1:{port}"));
    ws.write("relay.yaml", format!("{input}{output}"));
    let run = Server::spawn_until(ws.command(&["run", "relay.yaml"]), "Running.");
    let (code, log) = run.wait();
    assert_eq!(code, Some(1), "{log}");
    assert!(log.contains("cannot connect to nats://127.0.0.1"), "{log}");
    assert!(!log.contains(CONSUMING), "{log}");
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
