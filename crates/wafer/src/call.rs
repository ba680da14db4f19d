//! What goes into one call and what comes out: the currency of the one call
//! path ([`crate::Runtime::invoke`], [`crate::Function::invoke`]) that every
//! surface uses.
//!
//! An [`Input`] has the shape the function's ABI takes: typed arguments
//! (JSON or component values) for `abi: wit`, a program's args and stdin
//! for `abi: wasi-command`. The [`Output`] has the matching shape: typed
//! arguments come back as typed results in the same form, a program's run
//! comes back as its exit status, stdout and stderr (a non-zero status is
//! data, not an error). JSON is an adapter on top ([`Output::into_json`]).
//!
//! The message ABIs (`benthos`, later `fluentbit`) take a batch of
//! [`Message`]s and answer the batch rewritten, one message for each, in
//! order; a message a guest failed on is flagged, not dropped.

use bytes::Bytes;
use serde_json::{Value, json};
use wasmtime::component::Val;

use crate::message::Message;
use crate::proxy::HttpCall;
use crate::wasi::{OutputMode, Stdin};

/// The input of one call.
#[derive(Debug)]
#[non_exhaustive]
pub enum Input {
    /// Typed arguments as JSON, mapped onto the function's WIT parameters
    /// (see [`crate::values`]). A WASI program takes them as argv entries:
    /// strings as they are, other values as JSON text.
    Json(Vec<Value>),
    /// Typed arguments as component values, no JSON involved; they must
    /// match [`crate::Function::params`].
    Vals(Vec<Val>),
    /// A WASI program's arguments and stdin.
    Program(CommandInput),
    /// Stream messages, processed in order on one instance.
    Messages(Vec<Message>),
    /// An HTTP request for a wasi:http proxy; its response goes out
    /// through the call's responder (see [`crate::proxy`]).
    Http(HttpCall),
}

/// The answer of one call, in the form its [`Input`] asked for.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Output {
    /// The typed result as JSON (`null` when the function returns nothing).
    Json(Value),
    /// The typed results as component values (none or one).
    Vals(Vec<Val>),
    /// What a WASI program wrote, and its exit status.
    Program(CommandOutput),
    /// The messages rewritten, one for each input message, in order.
    Messages(Vec<Message>),
    /// A proxy's handler returned (its response went out through the
    /// call's responder).
    Http,
}

/// The form of input a function takes, as its ABI declares it: how a
/// surface turns what it received (command-line words, a request body)
/// into an [`Input`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum InputForm {
    /// Typed arguments: [`Input::Json`] or [`Input::Vals`].
    Typed,
    /// A program's args and stdin: [`Input::Program`] (or JSON arguments,
    /// taken as argv entries).
    Program,
    /// Stream messages: [`Input::Messages`].
    Messages,
    /// An HTTP request: [`Input::Http`].
    Http,
}

impl Input {
    /// A copy, to call again with; `None` for an HTTP request, which its
    /// one call consumes.
    pub fn try_clone(&self) -> Option<Input> {
        Some(match self {
            Input::Json(args) => Input::Json(args.clone()),
            Input::Vals(vals) => Input::Vals(vals.clone()),
            Input::Program(input) => Input::Program(input.clone()),
            Input::Messages(messages) => Input::Messages(messages.clone()),
            Input::Http(_) => return None,
        })
    }

    /// How many guest calls the input makes: a batch's messages, else one.
    pub(crate) fn calls(&self) -> u32 {
        match self {
            Input::Messages(messages) => u32::try_from(messages.len()).unwrap_or(u32::MAX),
            _ => 1,
        }
    }

    /// The form's name, for errors: `JSON arguments`, `component values`,
    /// `program input`.
    pub(crate) fn form(&self) -> &'static str {
        match self {
            Input::Json(_) => "JSON arguments",
            Input::Vals(_) => "component values",
            Input::Program(_) => "program input (args and stdin)",
            Input::Messages(_) => "messages",
            Input::Http(_) => "an HTTP request",
        }
    }
}

impl Output {
    /// The answer as JSON: a typed result as it is (component values
    /// converted), a proxy's handled request as `null`, a program's run as
    /// `{"stdout": …, "stderr": …, "exit_code": n}` (see
    /// [`CommandOutput::to_json`]).
    pub fn into_json(self) -> Value {
        match self {
            Output::Json(value) => value,
            Output::Vals(vals) => vals
                .into_iter()
                .next()
                .map_or(Value::Null, crate::values::into_json),
            Output::Program(output) => output.to_json(),
            Output::Http => Value::Null,
            Output::Messages(messages) => Value::Array(
                messages
                    .iter()
                    .map(|message| bytes_json(&message.bytes))
                    .collect(),
            ),
        }
    }

    /// The component values of a [`Input::Vals`] call; `None` for other
    /// forms.
    pub fn into_vals(self) -> Option<Vec<Val>> {
        match self {
            Output::Vals(vals) => Some(vals),
            _ => None,
        }
    }

    /// A WASI program's run; `None` for other forms.
    pub fn into_program(self) -> Option<CommandOutput> {
        match self {
            Output::Program(output) => Some(output),
            _ => None,
        }
    }

    /// The messages of an [`Input::Messages`] call; `None` for other forms.
    pub fn into_messages(self) -> Option<Vec<Message>> {
        match self {
            Output::Messages(messages) => Some(messages),
            _ => None,
        }
    }
}

/// What one run of a WASI program gets.
#[derive(Debug, Clone)]
pub struct CommandInput {
    /// Appended to argv after the program name and the entry's `wasi.args`.
    pub args: Vec<String>,
    /// The program's stdin.
    pub stdin: Stdin,
    /// Whether stdout and stderr are captured (the default) or passed
    /// through to the host's own.
    pub output: OutputMode,
}

impl Default for CommandInput {
    fn default() -> Self {
        CommandInput {
            args: Vec::new(),
            stdin: Stdin::Bytes(Bytes::new()),
            output: OutputMode::Capture,
        }
    }
}

impl CommandInput {
    /// No arguments, empty stdin, output captured.
    pub fn new() -> Self {
        CommandInput::default()
    }

    /// Appends `args` to argv.
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// Sets the bytes the program reads from stdin.
    pub fn stdin(mut self, bytes: impl Into<Bytes>) -> Self {
        self.stdin = Stdin::Bytes(bytes.into());
        self
    }

    /// The JSON form of a call: strings are arguments as they are, other
    /// values their JSON text.
    pub fn from_json_args(args: Vec<Value>) -> Self {
        let args = args.into_iter().map(|arg| match arg {
            Value::String(text) => text,
            other => other.to_string(),
        });
        CommandInput::new().args(args)
    }
}

/// What a WASI program wrote, and how it ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandOutput {
    /// Everything written to stdout (up to `max_output_bytes`).
    pub stdout: Vec<u8>,
    /// Everything written to stderr (sharing that cap).
    pub stderr: Vec<u8>,
    /// The exit status: `proc_exit`'s code for preview 1 programs, 0 or 1
    /// for preview 2 ones; 1 for a program that trapped or was stopped.
    pub exit_code: i32,
}

impl CommandOutput {
    /// `{"stdout": …, "stderr": …, "exit_code": n}`, each stream a string
    /// when it is UTF-8 and an array of bytes otherwise, so nothing is lost.
    pub fn to_json(&self) -> Value {
        json!({
            "stdout": bytes_json(&self.stdout),
            "stderr": bytes_json(&self.stderr),
            "exit_code": self.exit_code,
        })
    }
}

fn bytes_json(bytes: &[u8]) -> Value {
    match std::str::from_utf8(bytes) {
        Ok(text) => Value::String(text.to_string()),
        Err(_) => Value::Array(bytes.iter().map(|&b| Value::from(b)).collect()),
    }
}
