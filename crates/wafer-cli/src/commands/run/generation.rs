//! A registry generation: the first one `wafer run` starts with, and each
//! next one a reload builds beside the running one. Building runs outside
//! async code (it reads files and compiles); nothing here binds a socket
//! or connects, so a generation that is refused leaves no trace.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;

use anyhow::anyhow;
use wafer::engine::{EngineSettings, WaferEngine};
use wafer::{Carried, Problem, ProblemKind, Registry, Runtime, RuntimeOptions};
use wafer_nats::endpoints::Endpoint;
use wafer_pipeline::config::PipelineConfig;
use wafer_pipeline::{Dependencies, Pipeline, Stage};

use super::super::pipelines;
use crate::exit::Failure;

/// The pipelines of a generation, by name: what the next reload compares
/// with.
pub type Configs = BTreeMap<String, Built>;

/// A pipeline as it was built: its config, and what its input and its
/// stage loaded beyond it.
#[derive(Clone)]
pub struct Built {
    config: PipelineConfig,
    input: Dependencies,
    stage: Dependencies,
    /// Where a new run of its input would go on from
    /// ([`Pipeline::input_position`]): a reload may replace the input only
    /// with one of the same position.
    position: Option<String>,
}

/// What a reload does to a running pipeline.
enum Change {
    /// Nothing: it runs on untouched.
    None,
    /// Its processors or outputs (or what they load) changed, and not its
    /// input: the input runs on and a new stage takes over.
    Stage,
    /// Its input changed, or it is new: it is built whole (the running
    /// one, if any, drains first).
    Whole,
}

impl Built {
    fn of(config: PipelineConfig, pipeline: &Pipeline) -> Built {
        let (input, stage) = pipeline.dependencies();
        Built {
            config,
            input: input.clone(),
            stage: stage.clone(),
            position: pipeline.input_position().map(str::to_string),
        }
    }

    /// What `next`, its config in the next generation, does to it:
    /// `kept` holds the functions the next generation takes over as they
    /// run. It reads the module files it loaded: call it outside async
    /// code.
    fn change_to(&self, next: &PipelineConfig, kept: &impl Fn(&str) -> bool) -> Change {
        let name = &next.name;
        if self.config.input != next.input || self.config.base_dir != next.base_dir {
            return Change::Whole;
        }
        if let Some(why) = self.input.changed(kept) {
            tracing::debug!(pipeline = %name, "Its input is built again: {why}.");
            return Change::Whole;
        }
        if self.config != *next {
            return Change::Stage;
        }
        match self.stage.changed(kept) {
            Some(why) => {
                tracing::debug!(pipeline = %name, "Its processors and outputs are built again: {why}.");
                Change::Stage
            }
            None => Change::None,
        }
    }
}

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
    let mut by_name: BTreeMap<String, PipelineConfig> = loaded
        .configs
        .iter()
        .map(|config| (config.name.clone(), config.clone()))
        .collect();
    let (pipelines, mut problems) = pipelines::build(&runtime, loaded.configs);
    let configs = pipelines
        .iter()
        .filter_map(|pipeline| {
            let config = by_name.remove(pipeline.name())?;
            Some((config.name.clone(), Built::of(config, pipeline)))
        })
        .collect();
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
    // Everything is built even past a problem, so that the refusal lists
    // what `wafer check` would.
    let mut problems: Vec<Problem> = loaded.registry.problems().to_vec();
    problems.extend(loaded.problems);
    let (runtime, carried) = match running.successor(loaded.registry) {
        Ok(next) => next,
        Err(e) => {
            let mut found: Vec<String> = problems.iter().map(ToString::to_string).collect();
            found.push(format!("cannot build an engine for the new registry: {e}"));
            return Prepared::Refused(found);
        }
    };
    let runtime = Arc::new(runtime);
    // Every function loads now (those carried over are loaded already): a
    // module that does not compile refuses the generation, where at a
    // start it would answer 422.
    for (id, loaded) in runtime.load_all(|_, _| {}) {
        match loaded {
            Err(wafer::Error::Refused {
                problems: found, ..
            }) => problems.extend(found),
            Err(other) => {
                problems.push(Problem::new(ProblemKind::Reference, other.to_string()).in_entry(id));
            }
            Ok(_) => {}
        }
    }
    let mut changes = entry_changes(running.registry(), runtime.registry(), &carried);
    let kept = |id: &str| carried.kept.iter().any(|kept| kept == id);
    let names: BTreeSet<String> = loaded.configs.iter().map(|c| c.name.clone()).collect();
    let mut next_configs = Configs::new();
    let mut built = Vec::new();
    let mut stages = Vec::new();
    for config in loaded.configs {
        let name = config.name.clone();
        let before = configs.get(&name);
        let change = before.map_or(Change::Whole, |before| before.change_to(&config, &kept));
        if let (Change::None, Some(before)) = (&change, before) {
            next_configs.insert(name, before.clone());
            continue;
        }
        // A registry entry's own change is listed already; not one that
        // only a module file or a function it calls changed.
        let id = config.entry.clone().unwrap_or_else(|| name.clone());
        let list = match before {
            Some(_) => &mut changes.changed,
            None => &mut changes.added,
        };
        if !list.contains(&id) {
            list.push(id);
        }
        match (change, before) {
            (Change::Stage, Some(before)) => match Pipeline::build_stage(&runtime, &config) {
                Ok(stage) => {
                    let built = Built {
                        config,
                        input: before.input.clone(),
                        stage: stage.dependencies().clone(),
                        position: before.position.clone(),
                    };
                    next_configs.insert(name.clone(), built);
                    stages.push((name, stage));
                }
                Err(found) => problems.extend(found),
            },
            (Change::Whole, Some(before)) if before.position.is_none() => {
                problems.push(cannot_resume(&before.config));
            }
            (_, before) => {
                // Its counters and file modules start afresh with it.
                runtime.forget_pipeline(&name);
                match Pipeline::build(&runtime, config.clone()) {
                    Ok(pipeline) => {
                        let resumes = before.is_none_or(|before| {
                            before.position.as_deref() == pipeline.input_position()
                        });
                        if !resumes {
                            problems.push(cannot_resume(&config));
                        }
                        next_configs.insert(name, Built::of(config, &pipeline));
                        built.push(pipeline);
                    }
                    Err(found) => problems.extend(found),
                }
            }
        }
    }
    let removed: Vec<String> = configs
        .iter()
        .filter(|(name, _)| !names.contains(*name))
        .map(|(name, before)| {
            runtime.forget_pipeline(name);
            if before.config.entry.is_none() {
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

/// Why a reload may not replace the input of running pipeline `running`.
fn cannot_resume(running: &PipelineConfig) -> Problem {
    let mut problem = Problem::new(
        ProblemKind::InvalidValue,
        format!(
            "pipeline {}: a reload cannot replace its input ({}): a new run would not go on from where the running one stands (only nats on the same subject, and nats_jetstream with the same stream and durable consumer, do); change only its processors and outputs, or restart `wafer run`",
            running.name, running.input.kind
        ),
    )
    .in_file(&running.file)
    .at_field(&running.input.path);
    if let Some(entry) = &running.entry {
        problem = problem.in_entry(entry);
    }
    problem
}

fn refused(problems: &[Problem]) -> Prepared {
    Prepared::Refused(problems.iter().map(ToString::to_string).collect())
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
