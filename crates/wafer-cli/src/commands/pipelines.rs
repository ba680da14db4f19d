//! What `wafer run` and `wafer check` share about pipelines: a path names
//! a registry, a pipeline file (a Benthos config) or a Fluent Bit config
//! (classic `.conf` or YAML, one pipeline per input), and either way its
//! pipelines are read and built with every problem located.

use std::path::Path;
use std::sync::Arc;

use wafer::{Problem, Registry, Runtime};
use wafer_pipeline::Pipeline;
use wafer_pipeline::config::{PipelineConfig, is_pipeline_file};
use wafer_pipeline::fluentbit::config as fluentbit;

use super::load_registry;
use crate::exit::Failure;

/// A registry and its pipelines' configs, or a pipeline file's (or a
/// Fluent Bit config's) configs with an empty registry; the problems
/// reading them found.
pub struct Loaded {
    /// The registry (empty for a pipeline file).
    pub registry: Registry,
    /// The pipelines that read without problems.
    pub configs: Vec<PipelineConfig>,
    /// What was wrong with the others.
    pub problems: Vec<Problem>,
}

/// Loads what `path` names: a Fluent Bit config, a pipeline file, or a
/// registry folder or file.
pub fn load(path: &Path) -> Result<Loaded, Failure> {
    // Before the Benthos test: a Fluent Bit YAML has a `pipeline` key too.
    if fluentbit::is_fluentbit_file(path) {
        let translated = fluentbit::load(path);
        return Ok(Loaded {
            registry: Registry::default(),
            configs: translated.pipelines,
            problems: translated.problems,
        });
    }
    if is_pipeline_file(path) {
        let (configs, problems) = match PipelineConfig::from_file(path) {
            Ok(config) => (vec![config], Vec::new()),
            Err(problems) => (Vec::new(), problems),
        };
        return Ok(Loaded {
            registry: Registry::default(),
            configs,
            problems,
        });
    }
    let registry = load_registry(path)?;
    let mut configs = Vec::new();
    let mut problems = Vec::new();
    for (entry, pipeline) in registry.pipelines() {
        match PipelineConfig::from_entry(&entry.id, &entry.file, pipeline.body.clone()) {
            Ok(config) => configs.push(config),
            Err(found) => problems.extend(found),
        }
    }
    Ok(Loaded {
        registry,
        configs,
        problems,
    })
}

/// Builds every pipeline (compiling its modules, loading the functions it
/// calls); the problems of those that cannot be built. Call it outside
/// async code.
pub fn build(
    runtime: &Arc<Runtime>,
    configs: Vec<PipelineConfig>,
) -> (Vec<Pipeline>, Vec<Problem>) {
    let mut built = Vec::new();
    let mut problems = Vec::new();
    for config in configs {
        match Pipeline::build(runtime, config) {
            Ok(pipeline) => built.push(pipeline),
            Err(found) => problems.extend(found),
        }
    }
    (built, problems)
}
