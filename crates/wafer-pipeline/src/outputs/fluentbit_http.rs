//! `fluentbit_http`: Fluent Bit's `http` output. Each batch (Fluent Bit's
//! chunk) is one request to `http://host:port/uri` (`https` with `tls`),
//! its body the batch in `format`:
//!
//! * `json` (the default, as out_http's code has it): one JSON array,
//!   `Content-Type: application/json`;
//! * `json_stream`: the JSON objects one after another, same type;
//! * `json_lines`: a JSON object per line, `application/x-ndjson`;
//! * `msgpack`: the records as Fluent Bit's chunk holds them,
//!   `[[time, {}], {record}]` each, `application/msgpack`.
//!
//! Fields, with out_http's defaults: `host` (`127.0.0.1`), `port` (80),
//! `uri` (`/`; a `/` is put in front when missing), `format`,
//! `http_method` (`POST` or `PUT`), `header` (a `Name value` text or a
//! list of them), `json_date_key` (`date`, `false` for none),
//! `json_date_format` (`double`), `http_user` and `http_passwd` (basic
//! authentication when a user is given), `tls` (off).
//!
//! Requests say `User-Agent: Fluent-Bit`. A batch is written when the
//! answer is 200 to 205, the statuses out_http accepts. A 4xx other than
//! 408 and 429 rejects every message of the batch, since the server will
//! never take it (out_http's `FLB_ERROR`: the chunk is not retried); any
//! other status, a connection error or no answer within 60 s (out_http's
//! `http.response_timeout`) fails the write (`FLB_RETRY`). With
//! `retry_limit` or a scheduler field (`retry_limit` is always there in a
//! Fluent Bit config) the batch is then retried and at last dropped
//! ([`super::fluentbit_retry`]); without, the pipeline stops and the
//! batch is not acknowledged. The `gelf` format, compression, proxies,
//! OAuth2, AWS signing, `body_key`/`headers_key`, `header_tag` and TLS
//! options are not supported.

use std::time::Duration;

use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue, USER_AGENT};
use reqwest::{Method, Url};
use serde::Deserialize;

use super::fluentbit_stdout::json_fields;
use super::http_client::error_chain;
use super::{Output, Rejected};
use crate::config::{ComponentConfig, ComponentError};
use crate::fluentbit::format::{Format, JsonDate, Renderer};
use crate::fluentbit::value;
use crate::{BoxFuture, BuildContext};

/// out_http's `http.response_timeout`.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(60);

/// The most of a refusing answer's body an error quotes.
const QUOTED_BODY_BYTES: usize = 512;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FluentBitHttpConfig {
    #[serde(default = "default_host", deserialize_with = "value::text")]
    host: String,
    #[serde(default = "default_port", deserialize_with = "value::int")]
    port: i64,
    #[serde(default, deserialize_with = "value::optional_text")]
    uri: Option<String>,
    #[serde(default, deserialize_with = "value::optional_text")]
    format: Option<String>,
    #[serde(default, deserialize_with = "value::optional_text")]
    http_method: Option<String>,
    #[serde(default, deserialize_with = "headers")]
    header: Vec<String>,
    #[serde(default, deserialize_with = "value::optional_text")]
    json_date_key: Option<String>,
    #[serde(default, deserialize_with = "value::optional_text")]
    json_date_format: Option<String>,
    #[serde(default, deserialize_with = "value::optional_text")]
    http_user: Option<String>,
    #[serde(default, deserialize_with = "value::text")]
    http_passwd: String,
    #[serde(default, deserialize_with = "value::bool")]
    tls: bool,
}

fn default_host() -> String {
    "127.0.0.1".into()
}

fn default_port() -> i64 {
    80
}

/// `header`: one `Name value` text (a comma in it is part of the value,
/// as in Fluent Bit), or a list of them (a classic config's repeated
/// `Header` lines).
fn headers<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Headers {
        Many(Vec<String>),
        One(String),
    }
    Ok(match Headers::deserialize(d)? {
        Headers::Many(many) => many,
        Headers::One(one) => vec![one],
    })
}

/// Where out_http sends: `uri` gets a leading `/` when it has none, an
/// IPv6 `host` its brackets.
fn url(host: &str, port: i64, uri: Option<&str>, tls: bool) -> Result<Url, ComponentError> {
    let port = u16::try_from(port)
        .ok()
        .filter(|&p| p != 0)
        .ok_or_else(|| ComponentError::invalid("port", format!("`{port}` is not a port")))?;
    let uri = uri.unwrap_or("/");
    let slash = if uri.starts_with('/') { "" } else { "/" };
    let bracketed = if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]")
    } else {
        host.to_string()
    };
    let scheme = if tls { "https" } else { "http" };
    Url::parse(&format!("{scheme}://{bracketed}:{port}{slash}{uri}")).map_err(|e| {
        ComponentError::invalid("host", format!("`{host}` and `{uri}` make no URL: {e}"))
    })
}

struct FluentBitHttp {
    client: reqwest::Client,
    url: Url,
    method: Method,
    headers: HeaderMap,
    user: Option<(String, String)>,
    format: Format,
    date: JsonDate,
    renderer: Renderer,
    /// The size of the last body.
    last_body: usize,
}

pub(super) fn build(
    config: &ComponentConfig,
    _: &BuildContext<'_>,
) -> Result<Box<dyn Output>, ComponentError> {
    let parsed: FluentBitHttpConfig = config.parse()?;
    let (format, date) = json_fields(
        parsed.format.as_deref(),
        Format::Json,
        parsed.json_date_key.as_deref(),
        parsed.json_date_format.as_deref(),
    )?;
    let url = url(&parsed.host, parsed.port, parsed.uri.as_deref(), parsed.tls)?;
    let method = match parsed
        .http_method
        .as_deref()
        .map(str::to_ascii_uppercase)
        .as_deref()
    {
        None | Some("POST") => Method::POST,
        Some("PUT") => Method::PUT,
        Some(other) => {
            return Err(ComponentError::invalid(
                "http_method",
                format!("out_http sends POST or PUT, not `{other}`"),
            ));
        }
    };
    let mut headers = HeaderMap::new();
    let content_type = match format {
        Format::Msgpack => "application/msgpack",
        Format::JsonLines => "application/x-ndjson",
        Format::Json | Format::JsonStream => "application/json",
    };
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(USER_AGENT, HeaderValue::from_static("Fluent-Bit"));
    for line in &parsed.header {
        let (name, value) = line
            .trim()
            .split_once(char::is_whitespace)
            .map(|(name, value)| (name, value.trim()))
            .ok_or_else(|| {
                ComponentError::invalid("header", format!("`{line}` is not `Name value`"))
            })?;
        let name = HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
            ComponentError::invalid("header", format!("`{name}` is not a header name"))
        })?;
        let value = HeaderValue::from_str(value).map_err(|_| {
            ComponentError::invalid("header", format!("`{value}` is not a header value"))
        })?;
        // A header given twice is sent twice, as out_http allows; one
        // naming our content type or agent replaces ours.
        if name == CONTENT_TYPE || name == USER_AGENT {
            headers.insert(name, value);
        } else {
            headers.append(name, value);
        }
    }
    let client = reqwest::Client::builder()
        .timeout(RESPONSE_TIMEOUT)
        .build()
        .map_err(|e| ComponentError::invalid("", format!("cannot make an HTTP client: {e}")))?;
    Ok(Box::new(FluentBitHttp {
        client,
        url,
        method,
        headers,
        user: parsed.http_user.map(|user| (user, parsed.http_passwd)),
        format,
        date,
        renderer: Renderer::new(),
        last_body: 0,
    }))
}

impl Output for FluentBitHttp {
    fn write<'a>(
        &'a mut self,
        batch: &'a [wafer::Message],
    ) -> BoxFuture<'a, Result<Vec<Rejected>, String>> {
        Box::pin(async move {
            if batch.is_empty() {
                return Ok(Vec::new());
            }
            // The body is handed to the client: a buffer per request,
            // sized after the last one.
            let mut body = Vec::with_capacity(self.last_body);
            self.renderer
                .chunk(&mut body, self.format, &self.date, batch);
            self.last_body = body.len();
            let mut request = self
                .client
                .request(self.method.clone(), self.url.clone())
                .headers(self.headers.clone())
                .body(body);
            if let Some((user, password)) = &self.user {
                request = request.basic_auth(user, Some(password));
            }
            let failed = |error: String| format!("{} {}: {error}", self.method, self.url);
            let mut response = request.send().await.map_err(|e| failed(error_chain(e)))?;
            let status = response.status();
            let mut quoted = Vec::new();
            while let Ok(Some(chunk)) = response.chunk().await {
                if quoted.len() < QUOTED_BODY_BYTES {
                    quoted.extend_from_slice(&chunk);
                }
            }
            if (200..=205).contains(&status.as_u16()) {
                return Ok(Vec::new());
            }
            quoted.truncate(QUOTED_BODY_BYTES);
            let quoted = String::from_utf8_lossy(&quoted).replace(['\r', '\n'], " ");
            let mut error = format!("HTTP {status}");
            if !quoted.trim().is_empty() {
                error.push_str(": ");
                error.push_str(quoted.trim());
            }
            let error = failed(error);
            // out_http's FLB_ERROR: the server will never take this chunk.
            if status.is_client_error() && ![408, 429].contains(&status.as_u16()) {
                return Ok(Rejected::all(
                    batch.len(),
                    &format!("{error} (a 4xx is not tried again)"),
                ));
            }
            Err(error)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url_of(host: &str, port: i64, uri: Option<&str>, tls: bool) -> Result<String, String> {
        url(host, port, uri, tls)
            .map(String::from)
            .map_err(|e| format!("{}: {}", e.field, e.message))
    }

    #[test]
    fn the_url_is_made_as_out_http_makes_it() {
        assert_eq!(
            url_of("127.0.0.1", 80, None, false).unwrap(),
            "http://127.0.0.1/"
        );
        assert_eq!(
            url_of("logs.example", 9880, Some("in/app?x=1"), true).unwrap(),
            "https://logs.example:9880/in/app?x=1"
        );
        assert_eq!(
            url_of("::1", 8080, Some("/v1"), false).unwrap(),
            "http://[::1]:8080/v1"
        );
        assert!(
            url_of("h", 0, None, false)
                .unwrap_err()
                .starts_with("port:")
        );
        assert!(
            url_of("h", 70000, None, false)
                .unwrap_err()
                .starts_with("port:")
        );
        assert!(
            url_of("bad host", 80, None, false)
                .unwrap_err()
                .starts_with("host:")
        );
    }
}
