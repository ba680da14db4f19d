//! What `wafer run` serves, and a reload of it: the next generation is
//! built beside the running one and takes over only whole, once every
//! part of it is ready (functions compiled and warm, new listeners bound,
//! NATS endpoints subscribed); a generation with any problem is refused
//! and the running one goes on.

use std::path::PathBuf;
use std::sync::Arc;

use tokio::sync::watch;
use wafer::Runtime;
use wafer_http::Servers;

use super::generation::{self, Configs, Prepared};
use super::pipeline_runs::PipelineRuns;
use super::triggers::{Cause, Triggers};
use super::{EndpointRuns, log_endpoints};
use crate::exit::Failure;

/// Everything a `wafer run` serves, for the generation in place.
pub struct Running {
    /// What is reloaded: the registry folder or file, or a pipeline file.
    pub path: PathBuf,
    pub runtime: Arc<Runtime>,
    pub configs: Configs,
    pub servers: Servers,
    pub endpoints: EndpointRuns,
    pub runs: PipelineRuns,
    /// Tells the progress reporter which generation serves.
    pub generation: watch::Sender<Arc<Runtime>>,
    /// The problems of the last reload refused, so that a watched folder
    /// that stays broken is reported once.
    pub last_refusal: Option<Vec<String>>,
}

impl Running {
    /// Serves, reloading when `triggers` ask, until every pipeline has
    /// ended while no HTTP service or NATS endpoint serves (`None`), or
    /// a server fails (`Some`). A stop signal ends it from outside.
    pub async fn serve_until_stopped(&mut self, triggers: &mut Triggers) -> Option<Failure> {
        loop {
            let serves = self.servers.is_serving() || self.endpoints.serving();
            tokio::select! {
                error = self.servers.failure() => return Some(Failure::failed(error)),
                () = self.runs.all_ended(), if !serves => return None,
                cause = triggers.next() => self.reload(cause).await,
            }
        }
    }

    /// Loads the path again and puts the next generation in place, or
    /// says why not.
    async fn reload(&mut self, cause: Cause) {
        let (path, running, configs) = (
            self.path.clone(),
            self.runtime.clone(),
            self.configs.clone(),
        );
        let prepared =
            tokio::task::spawn_blocking(move || generation::prepare(&path, &running, &configs))
                .await
                .unwrap_or_else(|panicked| {
                    // A bug met while building: the running generation
                    // serves on.
                    Prepared::Refused(vec![format!(
                        "building the new generation failed unexpectedly: {panicked}"
                    )])
                });
        let next = match prepared {
            Prepared::Unchanged => {
                let generation = self.runtime.generation();
                if self.last_refusal.take().is_some() {
                    tracing::info!(
                        generation,
                        "Reload: the problems are gone, and the rest is as it runs."
                    );
                } else if cause == Cause::Signal {
                    tracing::info!(generation, "Reload: nothing changed.");
                } else {
                    tracing::debug!(generation, "Reload: nothing changed.");
                }
                return;
            }
            Prepared::Refused(problems) => return self.refuse(problems, cause),
            Prepared::Next(next) => *next,
        };
        for (id, error) in next.runtime.warm_up().await {
            tracing::warn!(function = %id, "Not ready: {error}");
        }
        let services = match self.servers.plan(&next.runtime).await {
            Ok(services) => services,
            Err(error) => return self.refuse(vec![error.to_string()], cause),
        };
        let endpoints = match wafer_nats::endpoints::bind(&next.runtime, next.endpoints).await {
            Ok(endpoints) => endpoints,
            Err(error) => return self.refuse(vec![error.to_string()], cause),
        };
        // Nothing can fail from here on: the new generation takes over.
        let addresses: Vec<_> = services
            .services()
            .map(|(id, addr)| (id.to_string(), addr))
            .collect();
        let service_changes = self.servers.apply(services);
        for (id, addr) in addresses {
            if service_changes.added.contains(&id) {
                tracing::info!(service = %id, "Listening on http://{addr}");
            }
        }
        for id in &service_changes.removed {
            tracing::info!(service = %id, "Stopped listening; finishing its requests.");
        }
        log_endpoints(&endpoints);
        self.endpoints.replace(endpoints);
        for name in &next.removed {
            self.runs.remove(name);
        }
        for pipeline in next.built {
            self.runs.start(pipeline);
        }
        for (name, stage) in next.stages {
            self.runs.replace_stage(&name, stage);
        }
        next.runtime.reloads().applied();
        self.runtime = next.runtime;
        self.configs = next.configs;
        self.generation.send_replace(self.runtime.clone());
        self.last_refusal = None;
        let changes = next.changes;
        tracing::info!(
            generation = self.runtime.generation(),
            added = %listed(&changes.added),
            changed = %listed(&changes.changed),
            removed = %listed(&changes.removed),
            "Reloaded."
        );
    }

    /// Logs why the next generation was refused (for file changes, once
    /// while the same problems last) and counts it.
    fn refuse(&mut self, problems: Vec<String>, cause: Cause) {
        self.runtime.reloads().refused();
        if cause == Cause::Changed && self.last_refusal.as_ref() == Some(&problems) {
            tracing::debug!("Reload refused again for the same problems.");
            return;
        }
        for problem in &problems {
            tracing::error!("{problem}");
        }
        tracing::warn!(
            generation = self.runtime.generation(),
            problems = problems.len(),
            "Reload refused: the running generation goes on; `wafer check` lists the same problems."
        );
        self.last_refusal = Some(problems);
    }
}

/// Ids as a log field: `a, b`, or `-` for none.
fn listed(ids: &[String]) -> String {
    if ids.is_empty() {
        "-".to_string()
    } else {
        ids.join(", ")
    }
}
