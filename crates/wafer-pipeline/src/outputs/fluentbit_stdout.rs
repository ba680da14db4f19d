//! `fluentbit_stdout`: Fluent Bit's `stdout` output. A batch (Fluent Bit's
//! chunk) is written to the standard output in one write, in `format`:
//!
//! * `msgpack` (the default): a line per record,
//!   `[0] dummy.0: [[1700000000.123456789, {}], {"message"=>"dummy"}]`,
//!   numbered from 0 in each batch;
//! * `json`: the batch as one JSON array and a newline;
//! * `json_lines`: a JSON object per record, each on its line;
//! * `json_stream`: the JSON objects one after another, and a newline.
//!
//! The JSON formats put the record's time first, under `json_date_key`
//! (default `date`; `false` leaves it out), written as `json_date_format`
//! says (`double`, `epoch`, `epoch_ms`, `iso8601`, `java_sql_timestamp`).
//! See [`crate::fluentbit::format`] for how records are rendered.

use serde::Deserialize;

use super::stdout::StdoutWriter;
use super::{Output, Rejected};
use crate::config::{ComponentConfig, ComponentError};
use crate::fluentbit::format::{Format, JsonDate, Renderer};
use crate::fluentbit::value;
use crate::{BoxFuture, BuildContext};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FluentBitStdoutConfig {
    #[serde(default, deserialize_with = "value::optional_text")]
    format: Option<String>,
    #[serde(default, deserialize_with = "value::optional_text")]
    json_date_key: Option<String>,
    #[serde(default, deserialize_with = "value::optional_text")]
    json_date_format: Option<String>,
}

/// `format`, `json_date_key` and `json_date_format`, checked.
pub(super) fn json_fields(
    format: Option<&str>,
    default: Format,
    key: Option<&str>,
    date_format: Option<&str>,
) -> Result<(Format, JsonDate), ComponentError> {
    let format = match format {
        Some(text) => Format::parse(text).map_err(|e| ComponentError::invalid("format", e))?,
        None => default,
    };
    let date = JsonDate::from_fields(key, date_format)
        .map_err(|e| ComponentError::invalid("json_date_format", e))?;
    Ok((format, date))
}

struct FluentBitStdout {
    format: Format,
    date: JsonDate,
    renderer: Renderer,
    buffer: Vec<u8>,
    out: StdoutWriter,
}

pub(super) fn build(
    config: &ComponentConfig,
    _: &BuildContext<'_>,
) -> Result<Box<dyn Output>, ComponentError> {
    let parsed: FluentBitStdoutConfig = config.parse()?;
    let (format, date) = json_fields(
        parsed.format.as_deref(),
        Format::Msgpack,
        parsed.json_date_key.as_deref(),
        parsed.json_date_format.as_deref(),
    )?;
    Ok(Box::new(FluentBitStdout {
        format,
        date,
        renderer: Renderer::new(),
        buffer: Vec::new(),
        out: StdoutWriter::new(),
    }))
}

impl Output for FluentBitStdout {
    fn write<'a>(
        &'a mut self,
        batch: &'a [wafer::Message],
    ) -> BoxFuture<'a, Result<Vec<Rejected>, String>> {
        Box::pin(async move {
            if batch.is_empty() {
                return Ok(Vec::new());
            }
            self.buffer.clear();
            match self.format {
                Format::Msgpack => {
                    for (i, message) in batch.iter().enumerate() {
                        self.renderer.print(&mut self.buffer, i, message);
                    }
                }
                format => {
                    self.renderer
                        .chunk(&mut self.buffer, format, &self.date, batch);
                    // out_stdout ends every format but json_lines with a
                    // newline of its own.
                    if format != Format::JsonLines {
                        self.buffer.push(b'\n');
                    }
                }
            }
            self.out.write(&self.buffer).await.map(|()| Vec::new())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(
        format: Option<&str>,
        key: Option<&str>,
        date: Option<&str>,
    ) -> Result<(Format, JsonDate), String> {
        json_fields(format, Format::Msgpack, key, date)
            .map_err(|e| format!("{}: {}", e.field, e.message))
    }

    #[test]
    fn fields_take_fluent_bit_s_spellings() {
        assert_eq!(
            fields(None, None, None).unwrap(),
            (Format::Msgpack, JsonDate::default())
        );
        let (format, date) = fields(Some("JSON"), Some("Off"), Some("epoch")).unwrap();
        assert_eq!(format, Format::Json);
        assert_eq!(date.key, None);
        let refused = fields(Some("otlp_json"), None, None).unwrap_err();
        assert!(refused.starts_with("format: `otlp_json`"), "{refused}");
        let refused = fields(None, None, Some("unix")).unwrap_err();
        assert!(refused.starts_with("json_date_format:"), "{refused}");
    }
}
