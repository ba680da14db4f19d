//! A fresh temp folder per test, and the `wafer` binary run inside it.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use wafer::Sha256Hash;

/// A registry entry `add`: a WAT function adding two `s32`.
pub const ADD_ENTRY: &str = r#"  - name: add
    kind: function.wat
    source: '(module (func (export "add") (param i32 i32) (result i32) local.get 0 local.get 1 i32.add))'
    wit: "add: func(a: s32, b: s32) -> s32;"
    method: add
"#;

/// A temporary folder holding a registry.
pub struct Workspace {
    dir: tempfile::TempDir,
}

impl Workspace {
    pub fn new() -> Self {
        Workspace {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes a file (creating folders) and returns its path.
    pub fn write(&self, relative: &str, contents: impl AsRef<[u8]>) -> PathBuf {
        let path = self.path().join(relative);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, contents).unwrap();
        path
    }

    /// Copies a built guest into the workspace; returns its `sha256:` pin.
    pub fn copy_guest(&self, guest: &str, relative: &str) -> String {
        let bytes =
            std::fs::read(guest).unwrap_or_else(|e| panic!("guest {guest} was not built: {e}"));
        self.write(relative, &bytes);
        Sha256Hash::of(&bytes).to_string()
    }

    /// `wafer ARGS...` run in the workspace.
    pub fn wafer(&self, args: &[&str]) -> Run {
        self.wafer_with_stdin(args, "")
    }

    pub fn wafer_with_stdin(&self, args: &[&str], stdin: &str) -> Run {
        run_with_stdin(args, self.command(args), stdin)
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_wafer"));
        command
            .args(args)
            .current_dir(self.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        command.env_remove("WAFER_LOG");
        // Each test keeps its own cache, never the user's.
        command.env("WAFER_CACHE_DIR", self.cache_dir());
        command
    }

    /// The cache folder `wafer` uses in this workspace.
    pub fn cache_dir(&self) -> PathBuf {
        self.path().join(".cache")
    }
}

/// Runs `command` (`wafer ARGS...`) with `stdin` as its standard input.
pub fn run_with_stdin(args: &[&str], mut command: Command, stdin: &str) -> Run {
    let mut child = command.stdin(Stdio::piped()).spawn().unwrap();
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), stdin.as_bytes()).unwrap();
    Run::new(args, child.wait_with_output().unwrap())
}

/// Starts `command`, waits until a line of its stderr contains `ready` (a
/// state it reached, never a guess at how long that takes), interrupts it
/// as a terminal's Ctrl-C would, and returns how it ended. Panics when the
/// line never comes (the process ended first).
#[cfg(unix)]
pub fn interrupt_when(args: &[&str], command: Command, ready: &str) -> Run {
    interrupt_on_line(args, command, false, ready)
}

/// [`interrupt_when`], watching stdout for the line.
#[cfg(unix)]
pub fn interrupt_when_stdout(args: &[&str], command: Command, ready: &str) -> Run {
    interrupt_on_line(args, command, true, ready)
}

#[cfg(unix)]
fn interrupt_on_line(args: &[&str], mut command: Command, on_stdout: bool, ready: &str) -> Run {
    use std::io::{BufRead, BufReader, Read};
    let mut child = command.spawn().unwrap();
    let stdout: Box<dyn Read + Send> = Box::new(child.stdout.take().unwrap());
    let stderr: Box<dyn Read + Send> = Box::new(child.stderr.take().unwrap());
    let (watched, other) = if on_stdout {
        (stdout, stderr)
    } else {
        (stderr, stdout)
    };
    // The other stream is read meanwhile, so that a full pipe never stalls it.
    let other = std::thread::spawn(move || {
        let mut other = other;
        let mut bytes = Vec::new();
        other.read_to_end(&mut bytes).unwrap();
        bytes
    });
    let mut watched = BufReader::new(watched);
    let mut seen = String::new();
    loop {
        let mut line = String::new();
        let read = watched.read_line(&mut line).unwrap();
        assert!(
            read > 0,
            "`wafer {}` ended before printing {ready:?}:\n{seen}",
            args.join(" ")
        );
        seen.push_str(&line);
        if line.contains(ready) {
            break;
        }
    }
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    watched.read_to_string(&mut seen).unwrap();
    let status = child.wait().unwrap();
    let (stdout, stderr) = if on_stdout {
        (seen.into_bytes(), other.join().unwrap())
    } else {
        (other.join().unwrap(), seen.into_bytes())
    };
    Run::new(
        args,
        Output {
            status,
            stdout,
            stderr,
        },
    )
}

/// Starts `command`, waits until `ready` holds (a state it reached, such
/// as a file's content: checked every few milliseconds for up to
/// [`crate::server::PATIENCE`], never a guess at how long it takes),
/// interrupts it as a terminal's Ctrl-C would, and returns how it ended.
/// Panics when the state never comes or the process ends first.
#[cfg(unix)]
pub fn interrupt_once(args: &[&str], mut command: Command, mut ready: impl FnMut() -> bool) -> Run {
    use std::io::Read;
    let mut child = command.spawn().unwrap();
    // Both streams are read meanwhile, so that a full pipe never stalls it.
    let drain = |mut stream: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            stream.read_to_end(&mut bytes).unwrap();
            bytes
        })
    };
    let stdout = drain(Box::new(child.stdout.take().unwrap()));
    let stderr = drain(Box::new(child.stderr.take().unwrap()));
    let deadline = std::time::Instant::now() + crate::server::PATIENCE;
    while !ready() {
        if let Some(status) = child.try_wait().unwrap() {
            let stderr = String::from_utf8_lossy(&stderr.join().unwrap()).into_owned();
            panic!(
                "`wafer {}` ended ({status}) before it was ready:\n{stderr}",
                args.join(" ")
            );
        }
        if std::time::Instant::now() >= deadline {
            let _ = child.kill();
            panic!("`wafer {}` was never ready", args.join(" "));
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let status = child.wait().unwrap();
    let output = Output {
        status,
        stdout: stdout.join().unwrap(),
        stderr: stderr.join().unwrap(),
    };
    Run::new(args, output)
}

/// What one run of `wafer` printed, with assertions that show both streams.
pub struct Run {
    args: String,
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn new(args: &[&str], output: Output) -> Self {
        Run {
            args: args.join(" "),
            code: output.status.code(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    fn context(&self) -> String {
        format!(
            "wafer {}\n--- exit code: {:?}\n--- stdout:\n{}\n--- stderr:\n{}",
            self.args, self.code, self.stdout, self.stderr
        )
    }

    /// Asserts exit 0 and that stdout is exactly `expected` (plus newline).
    pub fn prints(&self, expected: &str) -> &Self {
        assert_eq!(self.code, Some(0), "expected success\n{}", self.context());
        assert_eq!(
            self.stdout.trim_end(),
            expected,
            "stdout differs\n{}",
            self.context()
        );
        self
    }

    /// Asserts exit `code`, nothing on stdout, and `message` in stderr.
    pub fn fails(&self, code: i32, message: &str) -> &Self {
        assert_eq!(
            self.code,
            Some(code),
            "expected exit {code}\n{}",
            self.context()
        );
        assert!(
            self.stdout.is_empty(),
            "expected no stdout\n{}",
            self.context()
        );
        self.stderr_has(message)
    }

    pub fn stderr_has(&self, text: &str) -> &Self {
        assert!(
            self.stderr.contains(text),
            "expected in stderr: {text}\n{}",
            self.context()
        );
        self
    }

    pub fn stdout_has(&self, text: &str) -> &Self {
        assert!(
            self.stdout.contains(text),
            "expected in stdout: {text}\n{}",
            self.context()
        );
        self
    }

    pub fn code(&self, code: i32) -> &Self {
        assert_eq!(
            self.code,
            Some(code),
            "expected exit {code}\n{}",
            self.context()
        );
        self
    }
}

/// The registry header.
pub fn header(namespace: &str) -> String {
    format!("version: \"1.0\"\nnamespace: {namespace}\nentries:\n")
}

/// The repository root, for the examples.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .to_path_buf()
}
