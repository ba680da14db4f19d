//! How a byte stream splits into messages, as Benthos' `scanner` (and its
//! older `codec`) says: a message per line, or the whole stream as one.

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, BufReader};
use wafer::Message;

use crate::config::ComponentError;
use crate::inputs::MAX_BATCH;
use crate::{Sink, Stopped};

/// How a stream splits into messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scanner {
    /// A message per line, without its `\n` (or `\r\n`); empty lines are
    /// skipped, as Benthos skips them.
    Lines,
    /// The whole stream is one message.
    ToTheEnd,
}

/// The scanner an input's `scanner` (`{lines: {}}`, `{to_the_end: {}}`)
/// or older `codec` (`lines`, `all-bytes`) field chooses; lines by
/// default.
pub fn choose(scanner: Option<&Value>, codec: Option<&str>) -> Result<Scanner, ComponentError> {
    let named = match (scanner, codec) {
        (Some(_), Some(_)) => {
            return Err(ComponentError::invalid(
                "codec",
                "give `scanner` or `codec`, not both",
            ));
        }
        (Some(Value::Object(map)), None) if map.len() == 1 => {
            map.keys().next().cloned().unwrap_or_default()
        }
        (Some(_), None) => {
            return Err(ComponentError::invalid(
                "scanner",
                "a scanner is a mapping with one key: `lines: {}` or `to_the_end: {}`",
            ));
        }
        (None, Some(codec)) => codec.to_string(),
        (None, None) => return Ok(Scanner::Lines),
    };
    match named.as_str() {
        "lines" => Ok(Scanner::Lines),
        "to_the_end" | "all-bytes" => Ok(Scanner::ToTheEnd),
        other => Err(ComponentError::invalid(
            if codec.is_some() { "codec" } else { "scanner" },
            format!(
                "wafer splits streams into `lines` or reads them `to_the_end` (`all-bytes`), not `{other}`"
            ),
        )),
    }
}

/// Reads `reader` to its end into `sink`, split by `scanner`, each message
/// made by `make`. Lines already buffered travel together, up to
/// [`MAX_BATCH`] per batch.
pub async fn scan<R: AsyncRead + Unpin>(
    mut reader: BufReader<R>,
    scanner: Scanner,
    sink: &mut Sink,
    make: impl Fn(Vec<u8>) -> Message,
) -> Result<Result<(), Stopped>, std::io::Error> {
    if scanner == Scanner::ToTheEnd {
        let mut all = Vec::new();
        reader.read_to_end(&mut all).await?;
        return Ok(sink.send(vec![make(all)]).await);
    }
    let mut batch = Vec::new();
    loop {
        let mut line = Vec::new();
        let read = reader.read_until(b'\n', &mut line).await?;
        if read == 0 {
            break;
        }
        if line.last() == Some(&b'\n') {
            line.pop();
            if line.last() == Some(&b'\r') {
                line.pop();
            }
        }
        if !line.is_empty() {
            batch.push(make(line));
        }
        if !batch.is_empty()
            && (batch.len() >= MAX_BATCH || reader.buffer().is_empty())
            && let Err(stopped) = sink.send(std::mem::take(&mut batch)).await
        {
            return Ok(Err(stopped));
        }
    }
    if !batch.is_empty() {
        return Ok(sink.send(batch).await);
    }
    Ok(Ok(()))
}
