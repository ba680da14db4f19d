//! The pipelines of a `wafer run`, each in its own task, across reloads:
//! a pipeline whose input changed stops taking input and drains through
//! its old processors and outputs before the new one starts; one whose
//! processors or outputs changed keeps its input running and takes the
//! new stage once the old one wrote what it took; a removed one drains
//! and ends.

use std::collections::BTreeMap;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use wafer_pipeline::{Pipeline, PipelineError, Stage, Summary};

use crate::exit::Failure;

type Outcome = Result<Summary, PipelineError>;

/// Every pipeline running, by name.
pub struct PipelineRuns {
    runs: BTreeMap<String, Run>,
    /// Removed pipelines draining, by name: one added again waits for it.
    retired: BTreeMap<String, JoinHandle<()>>,
    /// Set once the process stops: every run stops.
    stopping: watch::Receiver<bool>,
    /// Each run's task says here when it ends.
    ended_tx: mpsc::UnboundedSender<()>,
    ended: mpsc::UnboundedReceiver<()>,
    /// Runs started whose end was not heard yet.
    live: usize,
}

struct Run {
    stop: watch::Sender<bool>,
    /// Stages that replace the running one.
    stages: mpsc::UnboundedSender<Stage>,
    task: JoinHandle<Outcome>,
}

impl PipelineRuns {
    /// No pipeline yet; each will stop when `stopping` turns true.
    pub fn new(stopping: watch::Receiver<bool>) -> PipelineRuns {
        let (ended_tx, ended) = mpsc::unbounded_channel();
        PipelineRuns {
            runs: BTreeMap::new(),
            retired: BTreeMap::new(),
            stopping,
            ended_tx,
            ended,
            live: 0,
        }
    }

    /// Starts `pipeline`. A run of the same name is told to stop first
    /// (or, removed by an earlier reload, may still be draining), and the
    /// new one starts once it has drained: two never share an input.
    pub fn start(&mut self, pipeline: Pipeline) {
        let name = pipeline.name().to_string();
        let previous = self.runs.remove(&name);
        let retired = self.retired.remove(&name);
        let (stop, own) = watch::channel(false);
        let (stages, replacements) = mpsc::unbounded_channel();
        let stopped = stopped_by(own, self.stopping.clone());
        let ended = self.ended_tx.clone();
        let task = tokio::spawn(async move {
            // Said however the task ends, a panic included.
            let _ended = Ended(ended);
            if let Some(previous) = previous {
                drain(previous).await;
            }
            if let Some(retired) = retired {
                let _ = retired.await;
            }
            tracing::info!(pipeline = %pipeline.name(), "Running.");
            pipeline.run_replaced(stopped, replacements).await
        });
        self.live += 1;
        self.runs.insert(name, Run { stop, stages, task });
    }

    /// Gives pipeline `name` a new stage, which it takes while its input
    /// runs on (the last one given, when several came while its running
    /// stage drained); nothing when it has ended.
    pub fn replace_stage(&mut self, name: &str, stage: Stage) {
        let Some(run) = self.runs.get(name) else {
            return;
        };
        if run.stages.send(stage).is_err() {
            tracing::info!(pipeline = %name, "The pipeline has ended; its new processors and outputs are not started.");
        }
    }

    /// Stops pipeline `name`, which a reload removed: it drains in the
    /// background.
    pub fn remove(&mut self, name: &str) {
        self.retired.retain(|_, draining| !draining.is_finished());
        if let Some(run) = self.runs.remove(name) {
            self.retired
                .insert(name.to_string(), tokio::spawn(drain(run)));
        }
    }

    /// Resolves once every run has ended (at once when there is none).
    pub async fn all_ended(&mut self) {
        while self.live > 0 {
            if self.ended.recv().await.is_some() {
                self.live -= 1;
            }
        }
    }

    /// Waits for every run (each was told to stop, or ends with its
    /// input), printing each one's summary on stderr; the first failure,
    /// if one failed.
    pub async fn finish(self) -> Option<Failure> {
        let mut failure = None;
        for (name, run) in self.runs {
            match run.task.await {
                Ok(Ok(summary)) => eprintln!("{summary}"),
                Ok(Err(error)) => {
                    eprintln!("{}", error.summary());
                    failure.get_or_insert(Failure::failed(error));
                }
                Err(panicked) => {
                    let error = anyhow::anyhow!("pipeline {name} panicked: {panicked}");
                    failure.get_or_insert(Failure::failed(error));
                }
            }
        }
        for retired in self.retired.into_values() {
            let _ = retired.await;
        }
        failure
    }
}

/// Tells [`PipelineRuns`] that a run's task ended, when dropped.
struct Ended(mpsc::UnboundedSender<()>);

impl Drop for Ended {
    fn drop(&mut self) {
        let _ = self.0.send(());
    }
}

/// Stops `run` and waits until it has drained, logging what it did.
async fn drain(run: Run) {
    run.stop.send_replace(true);
    match run.task.await {
        Ok(Ok(summary)) => tracing::info!("Drained for a reload: {summary}."),
        Ok(Err(error)) => tracing::error!("Drained for a reload: {error}"),
        Err(panicked) => tracing::error!("A pipeline panicked: {panicked}"),
    }
}

/// Resolves once `own` or `all` turns true.
async fn stopped_by(mut own: watch::Receiver<bool>, mut all: watch::Receiver<bool>) {
    tokio::select! {
        _ = own.wait_for(|stop| *stop) => {}
        _ = all.wait_for(|stop| *stop) => {}
    }
}
