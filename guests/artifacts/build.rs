//! Builds every guest once, one cargo call per wasm target, and writes a
//! path constant per guest (`P2_TYPES`, `CORE_CANONICAL`, `WAT_TRAP`...).
//!
//! A target that cannot be built (its rustup target missing, say) is a
//! warning, not a build failure: its constants point at files that do not
//! exist, so only the tests that need them fail, naming the file.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

struct Target {
    triple: &'static str,
    package: &'static str,
    /// (constant, file name) for each artifact.
    artifacts: &'static [(&'static str, &'static str)],
}

const TARGETS: &[Target] = &[
    Target {
        triple: "wasm32-wasip2",
        package: "wafer-guest-components",
        artifacts: &[("P2_TYPES", "p2_types.wasm")],
    },
    Target {
        triple: "wasm32-unknown-unknown",
        package: "core-canonical",
        artifacts: &[("CORE_CANONICAL", "core_canonical.wasm")],
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
        for (name, file) in target.artifacts {
            let path = target_dir.join(target.triple).join("release").join(file);
            if !built {
                let _ = std::fs::remove_file(&path);
            }
            writeln!(constants, "/// `{file}`, built for {}.", target.triple).unwrap();
            writeln!(
                constants,
                "pub const {name}: &str = {:?};",
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

/// Builds one target's package; `false` (with a warning) if it fails.
fn build(rust: &Path, target_dir: &Path, target: &Target) -> bool {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let output = Command::new(cargo)
        .args([
            "build",
            "--release",
            "--target",
            target.triple,
            "-p",
            target.package,
            "--manifest-path",
        ])
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
            let last = stderr
                .lines()
                .filter(|l| !l.trim().is_empty())
                .last()
                .unwrap_or("");
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
