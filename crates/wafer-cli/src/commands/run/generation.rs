//! A registry generation: the first one `wafer run` starts with, and each
//! next one a reload builds beside the running one. Building runs outside
//! async code (it reads files and compiles); nothing here binds a socket
//! or connects, so a generation that is refused leaves no trace.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use anyhow::anyhow;
use wafer::engine::{EngineSettings, WaferEngine};
use wafer::{Carried, Problem, Registry, Runtime, RuntimeOptions};
use wafer_nats::endpoints::Endpoint;
use wafer_pipeline::config::PipelineConfig;
use wafer_pipeline::{Pipeline, Stage};

use super::super::pipelines;
use crate::exit::Failure;

/// The pipelines' configs of a generation, by name: what the next reload
/// compares with.
pub type Configs = BTreeMap<String, PipelineConfig>;

/// The first generation, built.
pub struct First {
    pub runtime: Arc<Runtime>,
    pub pipelines: Vec<Pipeline>,
    pub configs: Configs,
    pub endpoints: Vec<Endpoint>,
}

/// Loads and builds the first generation at `path`. Problems in the
/// registry's entries are logged (those entries answer 422 when called);
/// a pipeline or a NATS endpoint with problems is a failure.
pub fn first(path: &Path, options: RuntimeOptions) -> Result<First, Failure> {
    let loaded = pipelines::load(path)?;
    for problem in loaded.registry.problems() {
        tracing::warn!("{problem}");
    }
    // Room for reloads that add functions to share the engine.
    let engine = WaferEngine::new(&EngineSettings::for_reloads(&loaded.registry))
        .map_err(Failure::failed)?;
    let runtime =
        Arc::new(Runtime::with_engine(loaded.registry, engine, options).map_err(Failure::failed)?);
    let configs = by_name(&loaded.configs);
    let (pipelines, mut problems) = pipelines::build(&runtime, loaded.configs);
    problems.splice(0..0, loaded.problems);
    let (endpoints, endpoint_problems) = wafer_nats::endpoints::plan(runtime.registry());
    problems.extend(endpoint_problems);
    if let Some(first) = problems.first() {
        for problem in &problems[1..] {
            tracing::error!("{problem}");
        }
        return Err(Failure::input(anyhow!("{first}")));
    }
    Ok(First {
        runtime,
        pipelines,
        configs,
        endpoints,
    })
}

/// A next generation, built beside the running one and not started.
pub struct Next {
    pub runtime: Arc<Runtime>,
    /// The pipelines that are new or whose input changed, built.
    pub built: Vec<Pipeline>,
    /// The new stages of pipelines whose processors or outputs changed
    /// and not their input, by pipeline.
    pub stages: Vec<(String, Stage)>,
    /// The pipelines that are gone.
    pub removed: Vec<String>,
    pub configs: Configs,
    pub endpoints: Vec<Endpoint>,
    pub changes: Changes,
}

/// What a reload changes, by entry id (and pipeline name, for pipelines
/// that are not registry entries).
#[derive(Debug, Default)]
pub struct Changes {
    pub added: Vec<String>,
    pub changed: Vec<String>,
    pub removed: Vec<String>,
}

impl Changes {
    fn is_empty(&self) -> bool {
        self.added.is_empty() && self.changed.is_empty() && self.removed.is_empty()
    }
}

/// What a reload found at the path.
pub enum Prepared {
    /// Nothing changed: the running generation stays, no reload counted.
    Unchanged,
    /// A generation to put in place.
    Next(Box<Next>),
    /// The new registry has problems (each on one line, located): the
    /// running generation stays.
    Refused(Vec<String>),
}

/// Loads the registry at `path` again and builds what changed from the
/// running generation (`running`, whose pipelines were `configs`): a
/// runtime that takes over unchanged functions as they are
/// ([`Runtime::successor`]), and the pipelines that are new or whose
/// config changed. Any problem (an entry, a pipeline, a NATS endpoint)
/// refuses the whole generation, so that a broken file never replaces a
/// working one.
pub fn prepare(path: &Path, running: &Runtime, configs: &Configs) -> Prepared {
    let loaded = match pipelines::load(path) {
        Ok(loaded) => loaded,
        Err(failure) => return Prepared::Refused(vec![failure.to_string()]),
    };
    let mut problems: Vec<Problem> = loaded.registry.problems().to_vec();
    problems.extend(loaded.problems);
    if !problems.is_empty() {
        return refused(&problems);
    }
    let (runtime, carried) = match running.successor(loaded.registry) {
        Ok(next) => next,
        Err(e) => {
            return Prepared::Refused(vec![format!(
                "cannot build an engine for the new registry: {e}"
            )]);
        }
    };
    let runtime = Arc::new(runtime);
    // Every function loads now (those carried over are loaded already): a
    // module that does not compile refuses the generation, where at a
    // start it would answer 422.
    for (_, loaded) in runtime.load_all(|_, _| {}) {
        match loaded {
            Err(wafer::Error::Refused {
                problems: found, ..
            }) => problems.extend(found),
            Err(other) => return Prepared::Refused(vec![other.to_string()]),
            Ok(_) => {}
        }
    }
    let mut changes = entry_changes(running.registry(), runtime.registry(), &carried);
    let next_configs = by_name(&loaded.configs);
    let mut built = Vec::new();
    let mut stages = Vec::new();
    for config in loaded.configs {
        let running = configs.get(&config.name);
        if running == Some(&config) {
            continue;
        }
        if config.entry.is_none() {
            let list = match configs.contains_key(&config.name) {
                true => &mut changes.changed,
                false => &mut changes.added,
            };
            list.push(config.name.clone());
        }
        if running.is_some_and(|running| same_input(running, &config)) {
            match Pipeline::build_stage(&runtime, &config) {
                Ok(stage) => stages.push((config.name, stage)),
                Err(found) => problems.extend(found),
            }
            continue;
        }
        // Its counters and file modules start afresh with it.
        runtime.forget_pipeline(&config.name);
        match Pipeline::build(&runtime, config) {
            Ok(pipeline) => built.push(pipeline),
            Err(found) => problems.extend(found),
        }
    }
    let removed: Vec<String> = configs
        .iter()
        .filter(|(name, _)| !next_configs.contains_key(*name))
        .map(|(name, config)| {
            runtime.forget_pipeline(name);
            if config.entry.is_none() {
                changes.removed.push(name.clone());
            }
            name.clone()
        })
        .collect();
    let (endpoints, endpoint_problems) = wafer_nats::endpoints::plan(runtime.registry());
    problems.extend(endpoint_problems);
    if !problems.is_empty() {
        return refused(&problems);
    }
    if changes.is_empty() && built.is_empty() && stages.is_empty() && removed.is_empty() {
        return Prepared::Unchanged;
    }
    Prepared::Next(Box::new(Next {
        runtime,
        built,
        stages,
        removed,
        configs: next_configs,
        endpoints,
        changes,
    }))
}

/// Whether `next` reads the same input as `running`, the same way: then
/// the running input goes on, and only the stage is replaced.
fn same_input(running: &PipelineConfig, next: &PipelineConfig) -> bool {
    running.input == next.input && running.base_dir == next.base_dir
}

fn refused(problems: &[Problem]) -> Prepared {
    Prepared::Refused(problems.iter().map(ToString::to_string).collect())
}

fn by_name(configs: &[PipelineConfig]) -> Configs {
    configs
        .iter()
        .map(|config| (config.name.clone(), config.clone()))
        .collect()
}

/// The entries added, changed (declared otherwise, or a function whose
/// module or grants changed) and removed between two registries.
fn entry_changes(old: &Registry, new: &Registry, carried: &Carried) -> Changes {
    let mut changes = Changes::default();
    for entry in new.entries() {
        match old.get(&entry.id) {
            None => changes.added.push(entry.id.clone()),
            Some(before) if before != entry || carried.reloaded.contains(&entry.id) => {
                changes.changed.push(entry.id.clone());
            }
            Some(_) => {}
        }
    }
    for entry in old.entries() {
        if new.get(&entry.id).is_none() {
            changes.removed.push(entry.id.clone());
        }
    }
    changes
}
