//! An entry's `wasi:` and `imports:` resolved into the [`Sandbox`] its
//! guest runs in.

use super::{Entry, ModuleSource, Registry};
use crate::error::{Problem, ProblemKind};
use crate::wasi::{EnvBinding, EnvSource, MountGrant, NetworkGrant, Sandbox};

impl Registry {
    /// The WASI world of function `entry`: argv\[0\] (the module's file name
    /// without `.wasm`, as Dapr names it, or the entry's name for WAT),
    /// `wasi.args`, `wasi.env` bound to its `env.variable` entries,
    /// `wasi.cwd`, `wasi.mounts` at their `fs.directory` folders, the
    /// network grants of `imports`, the hosts it may call over HTTP, and
    /// Dapr's `strictSandbox`.
    ///
    /// # Errors
    ///
    /// A [`Problem`] naming the field when a reference is not an entry of
    /// the right kind (the registry reports those at load already).
    pub fn sandbox(&self, entry: &Entry) -> Result<Sandbox, Problem> {
        let Some(function) = entry.function() else {
            return Err(entry.problem(ProblemKind::Reference, "kind", "not a function"));
        };
        let locate =
            |field: String, message: String| entry.problem(ProblemKind::Reference, field, message);
        let mut env = Vec::new();
        for (i, mapping) in function.wasi.env.iter().enumerate() {
            let variable = self
                .env_variable(&mapping.id)
                .map_err(|message| locate(format!("wasi.env[{i}].id"), message))?;
            env.push(EnvBinding {
                name: mapping.name.clone(),
                source: EnvSource::Host {
                    entry: mapping.id.clone(),
                    variable: variable.variable.clone(),
                    default: variable.default.clone(),
                    required: mapping.required,
                },
            });
        }
        let mut mounts = Vec::new();
        for (i, mount) in function.wasi.mounts.iter().enumerate() {
            let dir = self
                .directory(&mount.fs)
                .map_err(|message| locate(format!("wasi.mounts[{i}].fs"), message))?;
            mounts.push(MountGrant {
                host: dir.directory.clone(),
                guest: mount.guest.clone(),
                read_only: mount.read_only,
            });
        }
        let mut network = NetworkGrant::default();
        for grant in &function.imports {
            network.grant(&grant.name, &grant.allow);
        }
        Ok(Sandbox {
            program_name: program_name(&function.source, &entry.id),
            args: function.wasi.args.clone(),
            env,
            cwd: function.wasi.cwd.clone(),
            mounts,
            strict: function.strict_sandbox,
            network,
            http: function.outbound_http.clone(),
        })
    }
}

/// The module's file name without `.wasm`, or the entry's own name.
fn program_name(source: &ModuleSource, id: &str) -> String {
    let file = match source {
        ModuleSource::FsPath { path, .. } => Some(path.as_str()),
        ModuleSource::Url(url) => Some(url.split(['?', '#']).next().unwrap_or(url)),
        ModuleSource::WatFile(_) | ModuleSource::WatInline(_) => None,
    };
    file.and_then(crate::wasi::program_name)
        .unwrap_or_else(|| id.rsplit(':').next().unwrap_or(id).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn program_names_follow_dapr() {
        let url = |u: &str| ModuleSource::Url(u.to_string());
        assert_eq!(
            program_name(&url("file://testdata/args/main.wasm"), "wasm"),
            "main"
        );
        assert_eq!(
            program_name(&url("https://x.test/ruby.wasm?v=1"), "r"),
            "ruby"
        );
        let wat = ModuleSource::WatInline(String::new());
        assert_eq!(program_name(&wat, "app:hello"), "hello");
    }
}
