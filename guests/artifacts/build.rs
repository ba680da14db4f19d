//! Builds every guest once, one cargo call per wasm target, and writes a
//! path constant per guest (`P2_TYPES`, `CORE_CANONICAL`, `P1_ECHO`,
//! `P2_ECHO`, `BENTHOS_LOUDER`, `WAT_TRAP`...).
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
    /// Cargo's target selection (`--examples`...), if not its default:
    /// libraries and binaries.
    select: &'static [&'static str],
    /// (constant, file name) for each artifact, besides the programs.
    artifacts: &'static [(&'static str, &'static str)],
    /// The one-file programs this target builds.
    programs: &'static [Programs],
}

/// One-file programs: a constant per `<dir>/<name>.rs`, whose doc is that
/// file's `//!` lines.
struct Programs {
    /// Their folder in guests/rust.
    dir: &'static str,
    /// Their constants' prefix: `P1` gives `P1_ECHO` for `echo.rs`.
    prefix: &'static str,
    /// Where cargo writes them in `release/`: "" for binaries, "examples/".
    out: &'static str,
}

const P1_COMMANDS: Programs = Programs {
    dir: "commands/src/bin",
    prefix: "P1",
    out: "",
};
const P2_COMMANDS: Programs = Programs {
    prefix: "P2",
    ..P1_COMMANDS
};
/// Benthos processors in TinyGo's style: wasip1 commands, in the same
/// `release/` as the commands, so their names must differ from theirs.
const BENTHOS_COMMANDS: Programs = Programs {
    dir: "benthos/src/bin",
    prefix: "BENTHOS",
    out: "",
};
/// Benthos processors in its Rust example's style: cdylib examples.
const BENTHOS_MODULES: Programs = Programs {
    dir: "benthos/examples",
    prefix: "BENTHOS",
    out: "examples/",
};

/// Fluent Bit's `exec_wasi` programs: wasip1 commands.
const FLUENTBIT_COMMANDS: Programs = Programs {
    dir: "fluentbit/src/bin",
    prefix: "FLUENTBIT",
    out: "",
};
/// Fluent Bit's `wasm` filters in its Rust examples' style: cdylib examples.
const FLUENTBIT_MODULES: Programs = Programs {
    dir: "fluentbit/examples",
    prefix: "FLUENTBIT",
    out: "examples/",
};

/// wasi:http proxy components (`wasi:http/incoming-handler`): cdylib
/// examples for wasm32-wasip2.
const HTTP_COMPONENTS: Programs = Programs {
    dir: "http/examples",
    prefix: "HTTP",
    out: "examples/",
};

/// Dapr-shaped programs that make HTTP calls through the 2023 preview of
/// wasi-http imported as core functions: wasip1 commands.
const DAPR_COMMANDS: Programs = Programs {
    dir: "dapr/src/bin",
    prefix: "DAPR",
    out: "",
};

/// One built guest: its constant, its file and what it is.
struct Artifact {
    constant: String,
    file: String,
    /// Doc lines after "`file`, built for triple." (a program's `//!` lines).
    doc: Vec<String>,
}

const TARGETS: &[Target] = &[
    Target {
        triple: "wasm32-wasip1",
        packages: &[
            "wafer-guest-commands",
            "wafer-guest-benthos",
            "wafer-guest-fluentbit",
            "wafer-guest-dapr",
        ],
        select: &[],
        artifacts: &[],
        programs: &[
            P1_COMMANDS,
            BENTHOS_COMMANDS,
            FLUENTBIT_COMMANDS,
            DAPR_COMMANDS,
        ],
    },
    Target {
        triple: "wasm32-wasip2",
        packages: &["wafer-guest-components", "wafer-guest-commands"],
        select: &[],
        artifacts: &[("P2_TYPES", "p2_types.wasm")],
        programs: &[P2_COMMANDS],
    },
    Target {
        triple: "wasm32-wasip2",
        packages: &["wafer-guest-http"],
        select: &["--examples"],
        artifacts: &[],
        programs: &[HTTP_COMPONENTS],
    },
    Target {
        triple: "wasm32-unknown-unknown",
        packages: &[
            "core-canonical",
            "wafer-guest-benthos",
            "wafer-guest-fluentbit",
        ],
        select: &["--lib", "--examples"],
        artifacts: &[("CORE_CANONICAL", "core_canonical.wasm")],
        programs: &[BENTHOS_MODULES, FLUENTBIT_MODULES],
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

    let mut constants = String::new();
    for target in TARGETS {
        let built = build(&rust, &target_dir, target);
        for artifact in artifacts(&rust, target) {
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

/// The programs of a folder, `<dir>/<name>.rs`: each name, sorted, with the
/// file's `//!` lines.
fn programs(dir: &Path) -> Vec<(String, Vec<String>)> {
    let mut programs: Vec<(String, Vec<String>)> = std::fs::read_dir(dir)
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
    programs.sort();
    programs
}

/// The artifacts of one target: its own, then its programs.
fn artifacts(rust: &Path, target: &Target) -> Vec<Artifact> {
    let mut artifacts: Vec<Artifact> = target
        .artifacts
        .iter()
        .map(|(constant, file)| Artifact {
            constant: constant.to_string(),
            file: file.to_string(),
            doc: Vec::new(),
        })
        .collect();
    for group in target.programs {
        artifacts.extend(
            programs(&rust.join(group.dir))
                .into_iter()
                .map(|(name, doc)| Artifact {
                    constant: format!("{}_{}", group.prefix, name.to_uppercase()),
                    file: format!("{}{name}.wasm", group.out),
                    doc,
                }),
        );
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
    command.args(target.select);
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
