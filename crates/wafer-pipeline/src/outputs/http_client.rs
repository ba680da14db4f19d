//! `http_client`: one HTTP request per message, its body the message's
//! bytes, as Benthos' `http_client` output sends a batch when
//! `batch_as_multipart` is off (its default). The messages of a batch go
//! one after another, in order; a batch is written once every one of them
//! succeeded.
//!
//! Fields, with Benthos' defaults: `url` (required), `verb` (`POST`),
//! `headers` (none), `timeout` (`5s`, for the whole request),
//! `retry_period` (`1s`), `max_retry_backoff` (`300s`), `retries` (3),
//! `backoff_on` (`[429]`), `drop_on` (`[]`), `successful_on` (`[]`).
//!
//! A response is a success when its status is 2xx or in `successful_on`,
//! unless it is in `backoff_on` or `drop_on`. A failure is tried again up
//! to `retries` times: after `retry_period`, or, for a status in
//! `backoff_on`, after a period that doubles from the second retry on, up
//! to `max_retry_backoff`; a status in `drop_on` is not tried again. When
//! no try succeeded the write fails (the pipeline then stops and
//! acknowledges nothing more). A connection error or a timeout is a
//! failure like any other.
//!
//! A message's metadata is not sent as headers; Bloblang interpolation
//! (`${! … }`) in `url` and `headers` is not supported, nor are TLS
//! options, authentication, rate limits, multipart batches and
//! `propagate_response`.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::{Method, Url};
use serde::Deserialize;
use serde_json::Value;

use super::{Output, Rejected};
use crate::config::duration::GoDuration;
use crate::config::{ComponentConfig, ComponentError};
use crate::{BoxFuture, BuildContext};

/// The most of an unexpected response's body an error quotes.
const QUOTED_BODY_BYTES: usize = 512;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HttpClientConfig {
    url: String,
    #[serde(default = "default_verb")]
    verb: String,
    #[serde(default)]
    headers: BTreeMap<String, Value>,
    #[serde(default = "default_timeout")]
    timeout: GoDuration,
    #[serde(default = "default_retry_period")]
    retry_period: GoDuration,
    #[serde(default = "default_max_retry_backoff")]
    max_retry_backoff: GoDuration,
    #[serde(default = "default_retries")]
    retries: u32,
    #[serde(default = "default_backoff_on")]
    backoff_on: Vec<u16>,
    #[serde(default)]
    drop_on: Vec<u16>,
    #[serde(default)]
    successful_on: Vec<u16>,
}

fn default_verb() -> String {
    "POST".into()
}

fn default_timeout() -> GoDuration {
    GoDuration::of("5s")
}

fn default_retry_period() -> GoDuration {
    GoDuration::of("1s")
}

fn default_max_retry_backoff() -> GoDuration {
    GoDuration::of("300s")
}

fn default_retries() -> u32 {
    3
}

fn default_backoff_on() -> Vec<u16> {
    vec![429]
}

/// What to do after a failed try.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Retry {
    /// Try again after `retry_period`.
    Linear,
    /// Try again after a growing period.
    Backoff,
    /// Do not try again.
    Never,
}

struct HttpClient {
    pipeline: String,
    name: String,
    client: reqwest::Client,
    url: Url,
    verb: Method,
    headers: HeaderMap,
    retry_period: Duration,
    max_retry_backoff: Duration,
    retries: u32,
    backoff_on: BTreeSet<u16>,
    drop_on: BTreeSet<u16>,
    successful_on: BTreeSet<u16>,
}

pub(super) fn build(
    config: &ComponentConfig,
    cx: &BuildContext<'_>,
) -> Result<Box<dyn Output>, ComponentError> {
    let parsed: HttpClientConfig = config.parse()?;
    refuse_interpolation("url", &parsed.url)?;
    let url = Url::parse(&parsed.url).map_err(|e| {
        ComponentError::invalid("url", format!("`{}` is not a URL: {e}", parsed.url))
    })?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(ComponentError::invalid(
            "url",
            format!(
                "wafer sends to http:// and https:// URLs, not `{}`",
                parsed.url
            ),
        ));
    }
    let verb = Method::from_bytes(parsed.verb.as_bytes()).map_err(|_| {
        ComponentError::invalid("verb", format!("`{}` is not an HTTP method", parsed.verb))
    })?;
    let mut headers = HeaderMap::new();
    for (key, value) in &parsed.headers {
        let field = format!("headers.{key}");
        let text = match value {
            Value::String(text) => text.clone(),
            Value::Number(_) | Value::Bool(_) => value.to_string(),
            _ => {
                return Err(ComponentError::invalid(
                    &field,
                    "a header's value is a string",
                ));
            }
        };
        refuse_interpolation(&field, &text)?;
        let name = HeaderName::from_bytes(key.as_bytes()).map_err(|_| {
            ComponentError::invalid(&field, format!("`{key}` is not a header name"))
        })?;
        let value = HeaderValue::from_str(&text).map_err(|_| {
            ComponentError::invalid(&field, format!("`{text}` is not a header value"))
        })?;
        headers.insert(name, value);
    }
    if parsed.timeout.0.is_zero() {
        return Err(ComponentError::invalid(
            "timeout",
            "a timeout above zero, like `5s`",
        ));
    }
    let client = reqwest::Client::builder()
        .timeout(parsed.timeout.0)
        .build()
        .map_err(|e| ComponentError::invalid("", format!("cannot make an HTTP client: {e}")))?;
    Ok(Box::new(HttpClient {
        pipeline: cx.pipeline.to_string(),
        name: config.name().to_string(),
        client,
        url,
        verb,
        headers,
        retry_period: parsed.retry_period.0,
        max_retry_backoff: parsed.max_retry_backoff.0,
        retries: parsed.retries,
        backoff_on: parsed.backoff_on.into_iter().collect(),
        drop_on: parsed.drop_on.into_iter().collect(),
        successful_on: parsed.successful_on.into_iter().collect(),
    }))
}

/// Bloblang's `${! … }` is not evaluated: refusing it beats sending it.
fn refuse_interpolation(field: &str, text: &str) -> Result<(), ComponentError> {
    if text.contains("${!") {
        return Err(ComponentError::invalid(
            field,
            format!("wafer does not support Bloblang interpolation (`${{! … }}`): `{text}`"),
        ));
    }
    Ok(())
}

impl Output for HttpClient {
    fn write<'a>(
        &'a mut self,
        batch: &'a [wafer::Message],
    ) -> BoxFuture<'a, Result<Vec<Rejected>, String>> {
        Box::pin(async move {
            for message in batch {
                self.send(message).await?;
            }
            Ok(Vec::new())
        })
    }
}

impl HttpClient {
    /// Sends `message` until a try succeeds or the retries are spent.
    async fn send(&self, message: &wafer::Message) -> Result<(), String> {
        let mut period = self.retry_period;
        let mut retried = 0;
        loop {
            let (error, retry) = match self.try_once(message).await {
                Ok(()) => return Ok(()),
                Err(failure) => failure,
            };
            if retry == Retry::Never || retried >= self.retries {
                let tries = match retried + 1 {
                    1 => "1 try".to_string(),
                    n => format!("{n} tries"),
                };
                return Err(format!("{} {}: {error} ({tries})", self.verb, self.url));
            }
            // Benthos' throttle: the period doubles from the second
            // retry on, and stays doubled for any later retry.
            if retry == Retry::Backoff && retried > 0 && period < self.max_retry_backoff {
                period = period.saturating_mul(2).min(self.max_retry_backoff);
            }
            tracing::warn!(
                pipeline = %self.pipeline,
                output = %self.name,
                "{} {} failed, trying again in {period:?}: {error}",
                self.verb,
                self.url
            );
            tokio::time::sleep(period).await;
            retried += 1;
        }
    }

    /// One request: `Ok` on success, else why and whether to try again.
    async fn try_once(&self, message: &wafer::Message) -> Result<(), (String, Retry)> {
        let sent = self
            .client
            .request(self.verb.clone(), self.url.clone())
            .headers(self.headers.clone())
            .body(message.bytes.clone())
            .send()
            .await;
        let mut response = match sent {
            Ok(response) => response,
            Err(e) => return Err((error_chain(e), Retry::Linear)),
        };
        let status = response.status();
        let retry = self.judge(status.as_u16());
        let Some(retry) = retry else {
            // Read to the end so that the connection can be used again.
            while let Ok(Some(_)) = response.chunk().await {}
            return Ok(());
        };
        let mut body = Vec::new();
        while body.len() < QUOTED_BODY_BYTES {
            match response.chunk().await {
                Ok(Some(chunk)) => body.extend_from_slice(&chunk),
                _ => break,
            }
        }
        body.truncate(QUOTED_BODY_BYTES);
        let body = String::from_utf8_lossy(&body).replace(['\r', '\n'], " ");
        let mut error = format!("HTTP {status}");
        if !body.trim().is_empty() {
            error.push_str(": ");
            error.push_str(body.trim());
        }
        Err((error, retry))
    }

    /// `None` for a success, else what to do next (Benthos' order:
    /// `drop_on`, `backoff_on`, `successful_on`, then 2xx or not).
    fn judge(&self, status: u16) -> Option<Retry> {
        if self.drop_on.contains(&status) {
            Some(Retry::Never)
        } else if self.backoff_on.contains(&status) {
            Some(Retry::Backoff)
        } else if self.successful_on.contains(&status) || (200..300).contains(&status) {
            None
        } else {
            Some(Retry::Linear)
        }
    }
}

/// An error and its causes on one line, without the URL (the caller
/// names it): reqwest's own text says only which step failed, its causes
/// say why.
pub(super) fn error_chain(error: reqwest::Error) -> String {
    let error = error.without_url();
    let mut text = error.to_string();
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(backoff_on: &[u16], drop_on: &[u16], successful_on: &[u16]) -> HttpClient {
        HttpClient {
            pipeline: "p".into(),
            name: "out".into(),
            client: reqwest::Client::new(),
            url: Url::parse("http://127.0.0.1:1/").unwrap(),
            verb: Method::POST,
            headers: HeaderMap::new(),
            retry_period: Duration::from_millis(1),
            max_retry_backoff: Duration::from_millis(4),
            retries: 0,
            backoff_on: backoff_on.iter().copied().collect(),
            drop_on: drop_on.iter().copied().collect(),
            successful_on: successful_on.iter().copied().collect(),
        }
    }

    #[test]
    fn statuses_are_judged_in_benthos_order() {
        let judge = client(&[429, 503], &[400, 204], &[409]);
        assert_eq!(judge.judge(200), None);
        assert_eq!(judge.judge(409), None);
        assert_eq!(judge.judge(500), Some(Retry::Linear));
        assert_eq!(judge.judge(302), Some(Retry::Linear));
        assert_eq!(judge.judge(429), Some(Retry::Backoff));
        assert_eq!(judge.judge(400), Some(Retry::Never));
        // drop_on wins even over a 2xx.
        assert_eq!(judge.judge(204), Some(Retry::Never));
    }
}
