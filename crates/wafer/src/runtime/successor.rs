//! A reload's next generation: [`Runtime::successor`] builds a runtime over
//! a new registry that takes over from the running one without paying
//! again for what did not change.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use super::{Runtime, Slot};
use crate::abi::Linkers;
use crate::compiler::Compiler;
use crate::engine::{Allocator, EngineSettings, WaferEngine};
use crate::error::EngineError;
use crate::hash::Sha256Hash;
use crate::registry::{Entry, ModuleSource, Registry};

/// What [`Runtime::successor`] did with each function of the running
/// generation, for the reload's log line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Carried {
    /// Functions taken over as they run: entry, sandbox and module bytes
    /// unchanged, so their compiled code and warm instances carry on.
    pub kept: Vec<String>,
    /// Functions that load again in the new generation because their
    /// entry, what their sandbox grants or their module changed, keeping
    /// their call counters.
    pub reloaded: Vec<String>,
    /// Functions unchanged that load again all the same, on the new
    /// engine ([`Carried::new_engine`]), keeping their call counters.
    pub moved: Vec<String>,
    /// The new registry's pools wanted more instance slots than the
    /// running engine has: the new generation has an engine of its own.
    pub new_engine: bool,
}

impl Runtime {
    /// A runtime over `registry` to take over from this one on a reload.
    ///
    /// It shares this runtime's engine when the new registry's pools fit
    /// in the engine's instance slots (else it gets an engine of its own,
    /// sized by [`EngineSettings::for_reloads`], and every function loads
    /// again, from the disk cache's compiled code where there is one); a
    /// runtime built on such an engine has room for reloads that add
    /// functions. It shares its compiled-code and
    /// download caches, and its broker connections and pipeline counters
    /// (a pipeline built again replaces its own; see
    /// [`Runtime::forget_pipeline`]). A registry function whose entry,
    /// sandbox and module bytes are unchanged is the same loaded
    /// [`Function`](crate::Function) in both, with its warm instances;
    /// every other one loads on first use, as at a start, and keeps its
    /// call counters. Functions loaded from files rather than the registry
    /// ([`Runtime::load_module`]) are carried as they are, for the
    /// pipelines that keep running. This runtime is not changed: calls in
    /// flight finish on it.
    ///
    /// It reads module files (to see whether they changed): call it
    /// outside async code.
    ///
    /// # Errors
    ///
    /// When a new engine is needed and cannot be built.
    pub fn successor(&self, registry: Registry) -> Result<(Runtime, Carried), EngineError> {
        let wanted = EngineSettings::for_registry(&registry);
        let fits = match self.engine.allocator() {
            Allocator::Pooling { slots } => *slots >= wanted.max_instances,
            Allocator::OnDemand { .. } => true,
        };
        let (engine, compiler, linkers) = if fits {
            (
                self.engine.clone(),
                self.compiler.clone(),
                self.linkers.clone(),
            )
        } else {
            let engine = WaferEngine::new(&EngineSettings::for_reloads(&registry))?
                .interrupted_with(&self.engine);
            let compiler = Arc::new(Compiler::new(
                engine.engine(),
                self.sources.cache().cloned(),
            ));
            let linkers = Arc::new(Linkers::new(engine.engine())?);
            (engine, compiler, linkers)
        };
        let mut carried = Carried {
            new_engine: !fits,
            ..Carried::default()
        };
        let mut slots = HashMap::new();
        for (id, slot) in self.slots.read().unwrap_or_else(|p| p.into_inner()).iter() {
            let was_entry = self.registry.get(id).is_some() || self.registry.refusal(id).is_some();
            if !was_entry {
                slots.insert(id.clone(), slot.clone());
                continue;
            }
            let Some(entry) = registry.get(id).filter(|e| e.function().is_some()) else {
                if registry.refusal(id).is_some() {
                    slots.insert(id.clone(), Arc::new(Slot::unloaded(slot.metrics.clone())));
                }
                continue;
            };
            match (self.unchanged(id, slot, entry, &registry), fits) {
                (true, true) => {
                    carried.kept.push(id.clone());
                    slots.insert(id.clone(), slot.clone());
                    continue;
                }
                (true, false) => carried.moved.push(id.clone()),
                (false, _) => carried.reloaded.push(id.clone()),
            }
            slots.insert(id.clone(), Arc::new(Slot::unloaded(slot.metrics.clone())));
        }
        carried.kept.sort();
        carried.reloaded.sort();
        carried.moved.sort();
        let runtime = Runtime {
            engine,
            linkers,
            compiler,
            sources: self.sources.clone(),
            registry,
            slots: RwLock::new(slots),
            pipelines: RwLock::new(
                self.pipelines
                    .read()
                    .unwrap_or_else(|p| p.into_inner())
                    .clone(),
            ),
            connections: self.connections.clone(),
            generation: self.generation + 1,
            reloads: self.reloads.clone(),
        };
        Ok((runtime, carried))
    }

    /// Forgets pipeline `name`'s counters and the functions it loaded from
    /// files (`<name>/<component>`): for a pipeline that a reload removed,
    /// or is about to build again.
    pub fn forget_pipeline(&self, name: &str) {
        self.pipelines
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|pipeline| pipeline.name() != name);
        let prefix = format!("{name}/");
        self.slots
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|id, _| !id.starts_with(&prefix) || self.registry.get(id).is_some());
    }

    /// Whether registry function `id`, loaded in `slot` of this runtime, is
    /// the same as `entry` of `registry`: same entry, same sandbox, same
    /// module bytes.
    fn unchanged(&self, id: &str, slot: &Slot, entry: &Entry, registry: &Registry) -> bool {
        let Some(Ok(_)) = slot.loaded.get() else {
            return false;
        };
        let (Some(old), Some(new)) = (self.registry.get(id), entry.function()) else {
            return false;
        };
        if old.function() != Some(new) {
            return false;
        }
        match (self.registry.sandbox(old), registry.sandbox(entry)) {
            (Ok(before), Ok(after)) if before == after => {}
            _ => return false,
        }
        match &new.source {
            // Pinned or fetched once into the download cache: the same URL
            // (and hash) gives the same bytes.
            ModuleSource::Url(_) => true,
            _ => {
                let loaded_from = slot.module.get();
                registry
                    .module_bytes(entry)
                    .is_ok_and(|bytes| loaded_from == Some(&Sha256Hash::of(&bytes)))
            }
        }
    }
}
