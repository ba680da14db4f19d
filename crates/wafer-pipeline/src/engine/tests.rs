//! The engine run with test inputs, processors and outputs: failures,
//! rejections, stops, stage replacement.

use std::sync::Mutex as StdMutex;
use std::time::Duration;

use tokio::sync::oneshot;
use wafer::Message;

use super::writer::DEAD_LETTER;
use super::*;
use crate::BoxFuture;
use crate::outputs::Rejected;

/// Acknowledgements an input waits for, in the order it sent.
type Acks = Arc<StdMutex<Vec<oneshot::Receiver<Result<(), String>>>>>;

/// Sends each of its messages as a batch of one, keeping the
/// acknowledgements.
struct Batches(Vec<&'static str>, Acks);

impl Input for Batches {
    fn run(self: Box<Self>, mut sink: Sink) -> BoxFuture<'static, Result<(), String>> {
        Box::pin(async move {
            for text in self.0 {
                let Ok(acked) = sink.send_acked(vec![Message::new(text)]).await else {
                    return Ok(());
                };
                self.1.lock().unwrap().push(acked);
            }
            Ok(())
        })
    }
}

/// Panics on the message `boom`: a bug in a processor.
struct PanicsOnBoom;

impl Processor for PanicsOnBoom {
    fn process(&self, batch: Vec<Message>) -> BoxFuture<'_, Vec<Message>> {
        Box::pin(async move {
            assert!(batch.iter().all(|m| m.bytes != "boom"), "a bug, on purpose");
            batch
        })
    }
}

/// Keeps what it is given.
struct Collect(Arc<StdMutex<Vec<String>>>);

impl Output for Collect {
    fn write<'a>(
        &'a mut self,
        batch: &'a [Message],
    ) -> BoxFuture<'a, Result<Vec<Rejected>, String>> {
        let texts = batch
            .iter()
            .map(|m| String::from_utf8_lossy(&m.bytes).into_owned());
        self.0.lock().unwrap().extend(texts);
        Box::pin(async { Ok(Vec::new()) })
    }
}

/// [`Collect`], telling when it is started.
struct CollectStarted(Collect, Option<oneshot::Sender<()>>);

impl Output for CollectStarted {
    fn start(&mut self, _: Stopping) -> BoxFuture<'_, Result<(), String>> {
        if let Some(started) = self.1.take() {
            let _ = started.send(());
        }
        Box::pin(async { Ok(()) })
    }

    fn write<'a>(
        &'a mut self,
        batch: &'a [Message],
    ) -> BoxFuture<'a, Result<Vec<Rejected>, String>> {
        self.0.write(batch)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_panic_fails_the_run_and_answers_its_batch() {
    let acks = Acks::default();
    let written = Arc::new(StdMutex::new(Vec::new()));
    let mut pipeline = straight(
        Batches(vec!["a", "boom", "b"], acks.clone()),
        Collect(written.clone()),
    );
    pipeline.stage.processors = vec![Box::new(PanicsOnBoom)];
    pipeline.stage.metrics = Arc::new(PipelineMetrics::new("p", vec!["panics".into()]));
    let error = pipeline.run(std::future::pending()).await.unwrap_err();
    let PipelineError::Worker { message, .. } = &error else {
        panic!("not a worker's failure: {error}")
    };
    assert!(message.contains("a bug, on purpose"), "{message}");
    assert_eq!(*written.lock().unwrap(), ["a"]);
    let mut acks = std::mem::take(&mut *acks.lock().unwrap()).into_iter();
    assert_eq!(acks.next().unwrap().await.unwrap(), Ok(()));
    // The batch the worker held, and any queued after it once no
    // worker was left: answered, never just dropped.
    for ack in acks {
        assert_eq!(ack.await.unwrap(), Err(NOT_FINISHED.to_string()));
    }
    assert!(error.summary().received >= 2, "{:?}", error.summary());
}

/// A message to send, and where its acknowledgement goes.
type Feed = (
    &'static str,
    oneshot::Sender<oneshot::Receiver<Result<(), String>>>,
);

/// Sends what it is given, each as a batch of one, and hands back
/// each acknowledgement.
struct Fed(mpsc::UnboundedReceiver<Feed>);

impl Input for Fed {
    fn run(mut self: Box<Self>, mut sink: Sink) -> BoxFuture<'static, Result<(), String>> {
        Box::pin(async move {
            while let Some((text, acked)) = self.0.recv().await {
                let Ok(ack) = sink.send_acked(vec![Message::new(text)]).await else {
                    return Ok(());
                };
                let _ = acked.send(ack);
            }
            Ok(())
        })
    }
}

/// A pipeline from [`Fed`] to an output, running, that takes the stages
/// `replace` sends.
struct FedRun {
    feed: mpsc::UnboundedSender<Feed>,
    replace: mpsc::UnboundedSender<Stage>,
    run: tokio::task::JoinHandle<Result<Summary, PipelineError>>,
    metrics: Arc<PipelineMetrics>,
}

impl FedRun {
    fn start(output: impl Output + 'static) -> FedRun {
        let (feed, fed) = mpsc::unbounded_channel();
        let pipeline = straight(Fed(fed), output);
        let metrics = pipeline.metrics();
        let (replace, stages) = mpsc::unbounded_channel();
        let run = tokio::spawn(pipeline.run_replaced(std::future::pending(), stages));
        FedRun {
            feed,
            replace,
            run,
            metrics,
        }
    }

    /// Feeds `text`, and waits until the output acknowledged it.
    async fn send(&self, text: &'static str) {
        let (acked, ack) = oneshot::channel();
        self.feed.send((text, acked)).unwrap();
        ack.await.unwrap().await.unwrap().unwrap();
    }

    /// Ends the input, and the run's summary.
    async fn end(self) -> Summary {
        drop(self.feed);
        self.run.await.unwrap().unwrap()
    }
}

/// Appends `!`.
struct Loud;

impl Processor for Loud {
    fn process(&self, mut batch: Vec<Message>) -> BoxFuture<'_, Vec<Message>> {
        for message in &mut batch {
            message.bytes = format!("{}!", String::from_utf8_lossy(&message.bytes)).into();
        }
        Box::pin(async move { batch })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replaced_stage_takes_over_from_the_next_message_and_the_input_runs_on() {
    let written = Arc::new(StdMutex::new(Vec::new()));
    let run = FedRun::start(Collect(written.clone()));
    for text in ["a", "b"] {
        run.send(text).await;
    }
    let next_written = Arc::new(StdMutex::new(Vec::new()));
    let (started, taken) = oneshot::channel();
    let mut next = straight(
        Batches(Vec::new(), Acks::default()),
        CollectStarted(Collect(next_written.clone()), Some(started)),
    )
    .stage;
    next.processors = vec![Box::new(Loud)];
    next.threads = 2;
    // As Pipeline::build_stage counts: on from where the run is.
    next.metrics = Arc::new(run.metrics.continued(vec!["loud".into()]));
    run.replace.send(next).unwrap();
    // Its outputs start as the run takes it; the run reads its input
    // again only once the swap is done: from then on the input feeds the
    // new stage.
    taken.await.unwrap();
    for text in ["c", "d", "e"] {
        run.send(text).await;
    }
    let summary = run.end().await;
    assert_eq!(*written.lock().unwrap(), ["a", "b"]);
    assert_eq!(*next_written.lock().unwrap(), ["c!", "d!", "e!"]);
    assert_eq!((summary.received, summary.processed), (5, 5));
}

/// An output whose first write waits until a reload replaces it (as a
/// retry's wait ends then), telling when it began to wait.
struct WaitsForReplacement {
    stopping: Option<Stopping>,
    waiting: Option<oneshot::Sender<()>>,
}

impl Output for WaitsForReplacement {
    fn start(&mut self, stopping: Stopping) -> BoxFuture<'_, Result<(), String>> {
        self.stopping = Some(stopping);
        Box::pin(async { Ok(()) })
    }

    fn write<'a>(&'a mut self, _: &'a [Message]) -> BoxFuture<'a, Result<Vec<Rejected>, String>> {
        Box::pin(async move {
            let stopping = self.stopping.as_mut().expect("started");
            assert!(!stopping.is_replaced());
            if let Some(waiting) = self.waiting.take() {
                let _ = waiting.send(());
            }
            stopping.replaced().await;
            assert!(stopping.is_replaced() && !stopping.is_requested());
            Ok(Vec::new())
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_tells_the_outputs_it_replaces() {
    let (waiting, waits) = oneshot::channel();
    let run = FedRun::start(WaitsForReplacement {
        stopping: None,
        waiting: Some(waiting),
    });
    let (acked, ack) = oneshot::channel();
    run.feed.send(("a", acked)).unwrap();
    let ack = ack.await.unwrap();
    waits.await.unwrap();
    let next_written = Arc::new(StdMutex::new(Vec::new()));
    let mut next = straight(
        Batches(Vec::new(), Acks::default()),
        Collect(next_written.clone()),
    )
    .stage;
    next.metrics = Arc::new(run.metrics.continued(Vec::new()));
    run.replace.send(next).unwrap();
    // Told, the old output ends its write: the swap can finish.
    let written = tokio::time::timeout(Duration::from_secs(60), ack)
        .await
        .expect("the old output was told it is replaced");
    assert_eq!(written.unwrap(), Ok(()));
    run.send("b").await;
    run.end().await;
    assert_eq!(*next_written.lock().unwrap(), ["b"]);
}

/// An output that cannot start (a broker it cannot reach), telling when
/// it was tried.
struct CannotStart(Option<oneshot::Sender<()>>);

impl Output for CannotStart {
    fn start(&mut self, _: Stopping) -> BoxFuture<'_, Result<(), String>> {
        if let Some(tried) = self.0.take() {
            let _ = tried.send(());
        }
        Box::pin(async { Err("no broker".to_string()) })
    }

    fn write<'a>(&'a mut self, _: &'a [Message]) -> BoxFuture<'a, Result<Vec<Rejected>, String>> {
        Box::pin(async { Err("never started".to_string()) })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stage_whose_outputs_cannot_start_leaves_the_running_one_in_place() {
    let written = Arc::new(StdMutex::new(Vec::new()));
    let run = FedRun::start(Collect(written.clone()));
    run.send("a").await;
    let (tried, refused) = oneshot::channel();
    let next = straight(
        Batches(Vec::new(), Acks::default()),
        CannotStart(Some(tried)),
    );
    run.replace.send(next.stage).unwrap();
    refused.await.unwrap();
    // The run goes on, and every later message is written by the running
    // stage.
    for text in ["b", "c"] {
        run.send(text).await;
    }
    let summary = run.end().await;
    assert_eq!(*written.lock().unwrap(), ["a", "b", "c"]);
    assert_eq!((summary.received, summary.processed), (3, 3));
}

/// A pipeline of one worker from `input` straight to `output`.
fn straight(input: impl Input + 'static, output: impl Output + 'static) -> Pipeline {
    Pipeline {
        name: "p".into(),
        input_name: "input".into(),
        input: Box::new(input),
        input_dependencies: Dependencies::default(),
        input_position: None,
        stage: Stage {
            processors: Vec::new(),
            output_name: "output".into(),
            output: Box::new(output),
            dead_letter: None,
            drop_failed: false,
            threads: 1,
            ordered: true,
            metrics: Arc::new(PipelineMetrics::new("p", Vec::new())),
            dependencies: Dependencies::default(),
            retire: tokio::sync::watch::Sender::new(false),
        },
    }
}

/// Rejects each message whose text starts with `bad`, and keeps the
/// others.
struct Picky(Arc<StdMutex<Vec<String>>>);

impl Output for Picky {
    fn write<'a>(
        &'a mut self,
        batch: &'a [Message],
    ) -> BoxFuture<'a, Result<Vec<Rejected>, String>> {
        let mut rejected = Vec::new();
        for (index, message) in batch.iter().enumerate() {
            let text = String::from_utf8_lossy(&message.bytes).into_owned();
            if text.starts_with("bad") {
                rejected.push(Rejected {
                    index,
                    error: format!("cannot take {text}"),
                });
            } else {
                self.0.lock().unwrap().push(text);
            }
        }
        Box::pin(async move { Ok(rejected) })
    }
}

/// Keeps the messages it is given, metadata and all.
struct Keep(Arc<StdMutex<Vec<Message>>>);

impl Output for Keep {
    fn write<'a>(
        &'a mut self,
        batch: &'a [Message],
    ) -> BoxFuture<'a, Result<Vec<Rejected>, String>> {
        self.0.lock().unwrap().extend(batch.iter().cloned());
        Box::pin(async { Ok(Vec::new()) })
    }
}

#[test]
fn a_run_can_be_spawned() {
    // As `wafer run` spawns each one on the async runtime.
    fn spawnable<T: Send + 'static>(_: &T) {}
    let pipeline = straight(Endless(Acks::default()), Collect(Arc::default()));
    spawnable(&pipeline.run(std::future::pending()));
}

/// Every acknowledgement, in order.
async fn answers(acks: &Acks) -> Vec<Result<(), String>> {
    let mut answers = Vec::new();
    let taken = std::mem::take(&mut *acks.lock().unwrap());
    for ack in taken {
        answers.push(ack.await.unwrap());
    }
    answers
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_the_output_rejects_goes_to_the_dead_letter_output_and_the_rest_is_written() {
    let (acks, written, dead) = (Acks::default(), Arc::default(), Arc::default());
    let input = Batches(vec!["a", "bad b", "c", "bad d"], acks.clone());
    let mut pipeline = straight(input, Picky(Arc::clone(&written)));
    pipeline.stage.dead_letter = Some(Box::new(Keep(Arc::clone(&dead))));
    let summary = pipeline.run(std::future::pending()).await.unwrap();
    assert_eq!(*written.lock().unwrap(), ["a", "c"]);
    let dead = dead.lock().unwrap().clone();
    let texts: Vec<_> = dead.iter().map(|m| m.bytes.clone()).collect();
    assert_eq!(texts, ["bad b", "bad d"]);
    assert_eq!(dead[0].metadata[ERROR_METADATA], "cannot take bad b");
    assert_eq!(dead[0].error.as_deref(), Some("cannot take bad b"));
    assert!(answers(&acks).await.iter().all(Result::is_ok));
    assert_eq!(
        (summary.processed, summary.failed, summary.dead_lettered),
        (2, 2, 2)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejected_message_is_dropped_without_a_dead_letter_output() {
    for drop_failed in [true, false] {
        let (acks, written) = (Acks::default(), Arc::default());
        let input = Batches(vec!["bad a", "b"], acks.clone());
        let mut pipeline = straight(input, Picky(Arc::clone(&written)));
        pipeline.stage.drop_failed = drop_failed;
        let summary = pipeline.run(std::future::pending()).await.unwrap();
        assert_eq!(*written.lock().unwrap(), ["b"]);
        assert!(answers(&acks).await.iter().all(Result::is_ok));
        assert_eq!(
            (summary.processed, summary.failed, summary.dropped),
            (1, 1, 1)
        );
    }
}

/// Waits in its writes for something that never comes, for as long as
/// the pipeline is not stopping, then fails; says when a write began.
struct Stuck {
    stopping: Option<Stopping>,
    writing: Arc<tokio::sync::Notify>,
}

impl Output for Stuck {
    fn start(&mut self, stopping: Stopping) -> BoxFuture<'_, Result<(), String>> {
        self.stopping = Some(stopping);
        Box::pin(async { Ok(()) })
    }

    fn write<'a>(&'a mut self, _: &'a [Message]) -> BoxFuture<'a, Result<Vec<Rejected>, String>> {
        self.writing.notify_one();
        let stopping = self.stopping.as_mut().expect("started");
        Box::pin(async move {
            let waited = stopping
                .bounded(Duration::from_millis(50), std::future::pending::<()>())
                .await;
            assert!(waited.is_none());
            Err("gave up".to_string())
        })
    }
}

/// Sends `a`, then waits until it is stopped.
struct Endless(Acks);

impl Input for Endless {
    fn run(self: Box<Self>, mut sink: Sink) -> BoxFuture<'static, Result<(), String>> {
        Box::pin(async move {
            if let Ok(acked) = sink.send_acked(vec![Message::new("a")]).await {
                self.0.lock().unwrap().push(acked);
            }
            std::future::pending().await
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_ends_an_output_that_waits_and_its_batch_is_not_acknowledged() {
    // Stopped while the input runs, and after it ended on its own.
    for endless in [true, false] {
        let acks = Acks::default();
        let writing = Arc::new(tokio::sync::Notify::new());
        let output = Stuck {
            stopping: None,
            writing: writing.clone(),
        };
        let pipeline = if endless {
            straight(Endless(acks.clone()), output)
        } else {
            straight(Batches(vec!["a"], acks.clone()), output)
        };
        let run = pipeline.run(async move { writing.notified().await });
        let error = tokio::time::timeout(Duration::from_secs(60), run)
            .await
            .expect("the run ends")
            .unwrap_err();
        let PipelineError::Output { message, .. } = &error else {
            panic!("not the output's failure: {error}")
        };
        assert_eq!(message, "gave up");
        assert_eq!(answers(&acks).await, [Err("gave up".to_string())]);
    }
}

/// Cannot start.
struct Unreachable;

impl Output for Unreachable {
    fn start(&mut self, _: Stopping) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(async { Err("cannot connect".to_string()) })
    }

    fn write<'a>(&'a mut self, _: &'a [Message]) -> BoxFuture<'a, Result<Vec<Rejected>, String>> {
        unreachable!("never started")
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_output_that_cannot_start_fails_the_run_before_its_input_runs() {
    let acks = Acks::default();
    let mut pipeline = straight(Batches(vec!["a"], acks.clone()), Collect(Arc::default()));
    pipeline.stage.dead_letter = Some(Box::new(Unreachable));
    let error = pipeline.run(std::future::pending()).await.unwrap_err();
    let PipelineError::Output {
        output, message, ..
    } = &error
    else {
        panic!("not the output's failure: {error}")
    };
    assert_eq!(
        (output.as_str(), message.as_str()),
        (DEAD_LETTER, "cannot connect")
    );
    assert_eq!(error.summary().received, 0);
    assert!(acks.lock().unwrap().is_empty());
}

#[tokio::test]
async fn bounded_work_has_all_its_time_until_the_stop_then_its_patience() {
    let (stop, mut stopping) = Stopping::channel();
    let patience = Duration::from_millis(20);
    assert_eq!(stopping.bounded(patience, async { 7 }).await, Some(7));
    let slow = tokio::time::sleep(Duration::from_millis(100));
    assert_eq!(stopping.bounded(patience, slow).await, Some(()));
    stop.send_replace(true);
    let never = std::future::pending::<()>();
    assert_eq!(stopping.bounded(patience, never).await, None);
}

#[test]
fn a_check_binds_no_socket_and_a_build_does() {
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = busy.local_addr().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("busy.yaml");
    std::fs::write(
        &path,
        format!("input: {{http_server: {{address: \"{address}\"}}}}\noutput: {{drop: {{}}}}\n"),
    )
    .unwrap();
    let config = PipelineConfig::from_file(&path).unwrap();
    let runtime = Arc::new(wafer::Runtime::new(wafer::Registry::default()).unwrap());
    assert!(Pipeline::check(&runtime, config.clone()).is_empty());
    let Err(problems) = Pipeline::build(&runtime, config) else {
        panic!("built on a busy address")
    };
    assert!(
        problems[0].message.contains("cannot listen on"),
        "{problems:?}"
    );
    std::fs::write(
        &path,
        "input: {http_server: {address: \"not an address\"}}\noutput: {drop: {}}\n",
    )
    .unwrap();
    let config = PipelineConfig::from_file(&path).unwrap();
    let problems = Pipeline::check(&runtime, config);
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(
        problems[0]
            .message
            .contains("cannot listen on not an address"),
        "{problems:?}"
    );
}
