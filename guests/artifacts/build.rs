//! Builds every guest once, one cargo call per wasm target, and writes a
//! path constant per guest (`P2_TYPES`, `CORE_CANONICAL`, `P1_ECHO`,
//! `P2_ECHO`, `WAT_TRAP`...).
//!
//! A target that cannot be built (its rustup target missing, say) is a
//! warning, not a build failure: its constants point at files that do not
//! exist, so only the tests that need them fail, naming the file.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

struct Target {
    triple: &'static str,
    /// The packages this target's one cargo call builds.
    packages: &'static [&'static str],
    /// (constant, file name) for each artifact, besides the commands.
    artifacts: &'static [(&'static str, &'static str)],
    /// Prefix of the constants of the command programs, if this target
    /// builds them: `P1` gives `P1_ECHO` for `commands/src/bin/echo.rs`.
    commands: Option<&'static str>,
}

/// One built guest: its constant, its file and what it is.
struct Artifact {
    constant: String,
    file: String,
    /// Doc lines after "`file`, built for triple." (a command's `//!` lines).
    doc: Vec<String>,
}

const TARGETS: &[Target] = &[
    Target {
        triple: "wasm32-wasip1",
        packages: &["wafer-guest-commands"],
        artifacts: &[],
        commands: Some("P1"),
    },
    Target {
        triple: "wasm32-wasip2",
        packages: &["wafer-guest-components", "wafer-guest-commands"],
        artifacts: &[("P2_TYPES", "p2_types.wasm")],
        commands: Some("P2"),
    },
    Target {
        triple: "wasm32-unknown-unknown",
        packages: &["core-canonical"],
        artifacts: &[("CORE_CANONICAL", "core_canonical.wasm")],
        commands: None,
    },
];

fn main() {
    let manifest_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    let guests = manifest_dir.parent().unwrap();
    let rust = guests.join("rust");
    let out_dir = PathBuf::from(std::env::var("OUT_DIR").unwrap());
    let target_dir = out_dir.join("target");
    println!("cargo:rerun-if-changed={}", rust.display());
    println!("cargo:rerun-if-changed={}", guests.join("wat").display());

    let commands = commands(&rust);
    let mut constants = String::new();
    for target in TARGETS {
        let built = build(&rust, &target_dir, target);
        for artifact in artifacts(target, &commands) {
            let path = target_dir
                .join(target.triple)
                .join("release")
                .join(&artifact.file);
            if !built {
                let _ = std::fs::remove_file(&path);
            }
            writeln!(
                constants,
                "/// `{}`, built for {}.",
                artifact.file, target.triple
            )
            .unwrap();
            if !artifact.doc.is_empty() {
                writeln!(constants, "///").unwrap();
            }
            for line in &artifact.doc {
                writeln!(constants, "///{line}").unwrap();
            }
            writeln!(
                constants,
                "pub const {}: &str = {:?};",
                artifact.constant,
                path.display().to_string()
            )
            .unwrap();
        }
    }
    let mut wat_files: Vec<PathBuf> = std::fs::read_dir(guests.join("wat"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "wat"))
        .collect();
    wat_files.sort();
    for path in wat_files {
        let stem = path
            .file_stem()
            .unwrap()
            .to_string_lossy()
            .to_uppercase()
            .replace('-', "_");
        writeln!(
            constants,
            "/// `guests/wat/{}`.",
            path.file_name().unwrap().to_string_lossy()
        )
        .unwrap();
        writeln!(
            constants,
            "pub const WAT_{stem}: &str = {:?};",
            path.display().to_string()
        )
        .unwrap();
    }
    std::fs::write(out_dir.join("guests.rs"), constants).unwrap();
}

/// The command programs, `commands/src/bin/<name>.rs`: each name, sorted,
/// with the file's `//!` lines.
fn commands(rust: &Path) -> Vec<(String, Vec<String>)> {
    let mut commands: Vec<(String, Vec<String>)> =
        std::fs::read_dir(rust.join("commands").join("src").join("bin"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "rs"))
            .map(|p| {
                let name = p.file_stem().unwrap().to_string_lossy().into_owned();
                let source = std::fs::read_to_string(&p).unwrap();
                let doc = source
                    .lines()
                    .map_while(|l| l.strip_prefix("//!"))
                    .map(str::to_owned)
                    .collect();
                (name, doc)
            })
            .collect();
    commands.sort();
    commands
}

/// The artifacts of one target: its own, then the commands if it builds them.
fn artifacts(target: &Target, commands: &[(String, Vec<String>)]) -> Vec<Artifact> {
    let mut artifacts: Vec<Artifact> = target
        .artifacts
        .iter()
        .map(|(constant, file)| Artifact {
            constant: constant.to_string(),
            file: file.to_string(),
            doc: Vec::new(),
        })
        .collect();
    if let Some(prefix) = target.commands {
        artifacts.extend(commands.iter().map(|(name, doc)| Artifact {
            constant: format!("{prefix}_{}", name.to_uppercase()),
            file: format!("{name}.wasm"),
            doc: doc.clone(),
        }));
    }
    artifacts
}

/// Builds one target's packages; `false` (with a warning) if it fails.
fn build(rust: &Path, target_dir: &Path, target: &Target) -> bool {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut command = Command::new(cargo);
    command.args(["build", "--release", "--target", target.triple]);
    for package in target.packages {
        command.args(["-p", package]);
    }
    let output = command
        .arg("--manifest-path")
        .arg(rust.join("Cargo.toml"))
        .env("CARGO_TARGET_DIR", target_dir)
        // The outer build's flags are for the host, not for wasm.
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_BUILD_TARGET")
        .output();
    match output {
        Ok(output) if output.status.success() => true,
        Ok(output) => {
            let stderr = String::from_utf8_lossy(&output.stderr);
            let last = stderr.lines().rfind(|l| !l.trim().is_empty()).unwrap_or("");
            println!(
                "cargo:warning=guests for {} did not build (is `rustup target add {}` done?): {last}",
                target.triple, target.triple
            );
            false
        }
        Err(e) => {
            println!(
                "cargo:warning=cannot run cargo to build guests for {}: {e}",
                target.triple
            );
            false
        }
    }
}
