//! `call`: a registry function of any ABI (`function: ns:name`), called
//! once per message. A typed function gets the message's JSON as its
//! argument (a JSON array as its arguments when it takes several); a WASI
//! program gets the message on stdin; a message function
//! (`abi: benthos`) gets the batch; a wasi:http proxy is refused at build.
//! The answer is the new message: a
//! string result as it is, any other result as JSON, a program's stdout.
//! A message that is not JSON, an error, or a program's non-zero exit
//! flags the message.

use std::sync::Arc;

use serde::Deserialize;
use serde_json::Value;
use wafer::{CommandInput, Function, Input, InputForm, Message, Output, ProblemKind};

use super::{Processor, invoke_messages};
use crate::config::{ComponentConfig, ComponentError};
use crate::{BoxFuture, BuildContext};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CallConfig {
    function: String,
}

struct Call {
    function: Arc<Function>,
}

pub(super) fn build(
    config: &ComponentConfig,
    cx: &BuildContext<'_>,
) -> Result<Box<dyn Processor>, ComponentError> {
    let parsed: CallConfig = config.parse()?;
    cx.dependencies.function(&parsed.function);
    let function = cx
        .runtime
        .function_blocking(&parsed.function)
        .map_err(|e| ComponentError::new(ProblemKind::Reference, "function", e.to_string()))?;
    if function.input_form() == InputForm::Http {
        return Err(ComponentError::new(
            ProblemKind::Reference,
            "function",
            format!(
                "{} is a wasi:http proxy: it serves HTTP requests (an http.endpoint), not messages",
                parsed.function
            ),
        ));
    }
    Ok(Box::new(Call { function }))
}

impl Call {
    async fn call_one(&self, mut message: Message) -> Message {
        let input = match self.function.input_form() {
            InputForm::Program => Input::Program(CommandInput::new().stdin(message.bytes.clone())),
            _ => match serde_json::from_slice::<Value>(&message.bytes) {
                Ok(Value::Array(args)) if self.function.params().len() != 1 => Input::Json(args),
                Ok(value) => Input::Json(vec![value]),
                Err(e) => {
                    message.flag(format!("the message is not JSON: {e}"));
                    return message;
                }
            },
        };
        match self.function.invoke(input).await {
            Ok(Output::Program(run)) if run.exit_code != 0 => {
                let stderr = String::from_utf8_lossy(&run.stderr);
                message.flag(format!(
                    "exited with status {}: {}",
                    run.exit_code,
                    stderr.trim()
                ));
            }
            Ok(Output::Program(run)) => message.bytes = run.stdout.into(),
            Ok(output) => {
                message.bytes = match output.into_json() {
                    Value::String(text) => text.into(),
                    other => other.to_string().into(),
                }
            }
            Err(error) => message.flag(error.to_string()),
        }
        message
    }
}

impl Processor for Call {
    fn process(&self, batch: Vec<Message>) -> BoxFuture<'_, Vec<Message>> {
        Box::pin(async move {
            if self.function.input_form() == InputForm::Messages {
                return invoke_messages(&self.function, batch).await;
            }
            let mut processed = Vec::with_capacity(batch.len());
            for message in batch {
                processed.push(self.call_one(message).await);
            }
            processed
        })
    }
}
