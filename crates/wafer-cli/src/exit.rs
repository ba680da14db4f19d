//! How a failed command ends: one line on stderr and an exit code.

use std::io::ErrorKind;
use std::process::ExitCode;

/// Why a command failed, carrying its exit code.
#[derive(Debug)]
pub struct Failure {
    code: u8,
    error: Option<anyhow::Error>,
}

impl Failure {
    /// A call failed (trap, limit), or `check` found problems: exit 1.
    pub fn failed(error: impl Into<anyhow::Error>) -> Self {
        Failure {
            code: 1,
            error: Some(error.into()),
        }
    }

    /// Exit 1 with nothing more to print (the output said it all).
    pub fn quiet() -> Self {
        Failure {
            code: 1,
            error: None,
        }
    }

    /// A guest program's own non-zero exit status, passed on; its output
    /// said it all. A status no exit code can carry (above 255, negative)
    /// exits 255 and says so.
    pub fn exit(status: i32) -> Self {
        match u8::try_from(status) {
            Ok(code) => Failure { code, error: None },
            Err(_) => Failure {
                code: u8::MAX,
                error: Some(anyhow::anyhow!(
                    "the program exited with status {status}, which no exit code can carry (0 to 255); exiting with 255"
                )),
            },
        }
    }

    /// Bad usage or input: exit 2.
    pub fn input(error: impl Into<anyhow::Error>) -> Self {
        Failure {
            code: 2,
            error: Some(error.into()),
        }
    }

    /// Interrupted by Ctrl-C: exit 130.
    pub fn interrupted(error: impl Into<anyhow::Error>) -> Self {
        Failure {
            code: 130,
            error: Some(error.into()),
        }
    }

    /// Prints the error on one line and returns the exit code. A broken
    /// pipe (the reader went away) counts as success.
    pub fn report(self) -> ExitCode {
        let Some(error) = self.error else {
            return ExitCode::from(self.code);
        };
        let broken_pipe = error.chain().any(|cause| {
            cause
                .downcast_ref::<std::io::Error>()
                .is_some_and(|e| e.kind() == ErrorKind::BrokenPipe)
        });
        if broken_pipe {
            return ExitCode::SUCCESS;
        }
        eprintln!("error: {}", one_line(&error));
        ExitCode::from(self.code)
    }
}

impl std::fmt::Display for Failure {
    /// The error on one line, as [`Failure::report`] prints it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.error {
            Some(error) => f.write_str(&one_line(error)),
            None => write!(f, "exit status {}", self.code),
        }
    }
}

/// The error and its causes on one line, with any control character (from
/// a module's names, a guest's trap message) escaped.
fn one_line(error: &anyhow::Error) -> String {
    let text = format!("{error:#}");
    let line = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    wafer::printable::escape_controls(&line).into_owned()
}
