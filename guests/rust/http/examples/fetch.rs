//! Makes an outbound request with `wasi:http/outgoing-handler` and passes
//! the answer on. Asked by the request headers: the URL from `x-fetch-url`,
//! the method from `x-fetch-method` (default GET), and each
//! `x-fetch-header-<name>: <value>` sent upstream as `<name>: <value>`; the
//! request body is streamed upstream as it arrives (a request without one
//! sends none). With `x-follow-redirects: <n>` it follows up to n
//! redirects itself, each hop a new outgoing request: a 3xx other than 304
//! with a `location`, resolved against the current URL if relative; 303
//! turns the method into GET (HEAD stays), 301 and 302 turn POST into GET,
//! both dropping the body and the `content-*` headers; a 307 or 308 after a
//! body was streamed, or a `location` that does not parse, is passed on as
//! the answer. Answers with the last upstream status, its `content-type`
//! if any, `x-fetch-hops: <requests made>`, and its body streamed through.
//! Errors, each with `content-type: text/plain`: 400 `error: bad url` (a
//! URL that does not parse, or that the host refuses), 400
//! `error: missing x-fetch-url`, 400 `error: bad x-follow-redirects`, 400
//! `error: bad method`, 400 `error: bad x-fetch-header-*` (a header the
//! host refuses); 502 `error: <error-code>` when `handle`, the request
//! body's `finish` or the response fails, the error-code as `{:?}` prints
//! it without the leading `ErrorCode::` (`error: HttpRequestDenied`,
//! `error: ConnectionRefused`).

use wafer_guest_http::{BodyReader, BodyWriter, method, method_name, respond, send};
use wasi::exports::http::incoming_handler::Guest;
use wasi::http::outgoing_handler;
use wasi::http::types::{
    ErrorCode, Fields, FutureIncomingResponse, IncomingRequest, IncomingResponse, Method,
    OutgoingRequest, OutgoingResponse, ResponseOutparam, Scheme,
};

struct Fetch;

impl Guest for Fetch {
    fn handle(request: IncomingRequest, out: ResponseOutparam) {
        match fetch(&request) {
            Ok((response, hops)) => pass_on(out, response, hops),
            Err(Failure::BadRequest(error)) => respond(out, 400, "text/plain", error.as_bytes()),
            Err(Failure::Upstream(code)) => {
                let error = format!("{code:?}");
                let error = error.strip_prefix("ErrorCode::").unwrap_or(&error);
                respond(out, 502, "text/plain", format!("error: {error}").as_bytes());
            }
        }
    }
}

wasi::http::proxy::export!(Fetch);

/// Why no upstream response is passed on.
enum Failure {
    /// The request asks for what cannot be sent: 400 with this body.
    BadRequest(&'static str),
    /// The outgoing request failed: 502.
    Upstream(ErrorCode),
}

/// What the request's headers ask for.
struct Ask {
    url: Url,
    method: Method,
    redirects: u32,
    headers: Vec<(String, Vec<u8>)>,
}

fn ask(request: &IncomingRequest) -> Result<Ask, Failure> {
    let mut url = None;
    let mut method_name = None;
    let mut redirects = 0;
    let mut headers = Vec::new();
    for (name, value) in request.headers().entries() {
        match name.to_ascii_lowercase().as_str() {
            "x-fetch-url" => url = url.or(Some(value)),
            "x-fetch-method" => method_name = method_name.or(Some(value)),
            "x-follow-redirects" => {
                redirects = std::str::from_utf8(&value)
                    .ok()
                    .and_then(|n| n.trim().parse().ok())
                    .ok_or(Failure::BadRequest("error: bad x-follow-redirects"))?;
            }
            name => {
                if let Some(upstream) = name.strip_prefix("x-fetch-header-") {
                    headers.push((upstream.to_owned(), value));
                }
            }
        }
    }
    let url = url.ok_or(Failure::BadRequest("error: missing x-fetch-url"))?;
    let url = std::str::from_utf8(&url)
        .ok()
        .and_then(Url::parse)
        .ok_or(Failure::BadRequest("error: bad url"))?;
    let method = match method_name {
        None => Method::Get,
        Some(name) => method(
            std::str::from_utf8(&name).map_err(|_| Failure::BadRequest("error: bad method"))?,
        ),
    };
    Ok(Ask {
        url,
        method,
        redirects,
        headers,
    })
}

/// Sends what the request asks for, following redirects as asked: the last
/// response and the number of requests made.
fn fetch(request: &IncomingRequest) -> Result<(IncomingResponse, u32), Failure> {
    let Ask {
        mut url,
        mut method,
        redirects,
        mut headers,
    } = ask(request)?;
    let mut body = request.consume().ok().map(BodyReader::new);
    let mut hops = 0;
    loop {
        let outgoing = new_request(&url, &method, &headers)?;
        hops += 1;
        let (response, body_sent) = send_request(outgoing, body.take())?;
        if hops > redirects {
            return Ok((response, hops));
        }
        let Some((next_url, next_method)) = redirect(&response, &url, &method, body_sent) else {
            return Ok((response, hops));
        };
        if method_name(&next_method) != method_name(&method) {
            // The body is dropped with the method: so are the headers on it.
            headers.retain(|(name, _)| !name.starts_with("content-"));
        }
        url = next_url;
        method = next_method;
    }
}

/// The outgoing request for `method url` with `headers`.
fn new_request(
    url: &Url,
    method: &Method,
    headers: &[(String, Vec<u8>)],
) -> Result<OutgoingRequest, Failure> {
    let headers = Fields::from_list(headers)
        .map_err(|_| Failure::BadRequest("error: bad x-fetch-header-*"))?;
    let request = OutgoingRequest::new(headers);
    request
        .set_method(method)
        .map_err(|()| Failure::BadRequest("error: bad method"))?;
    let url_taken = request.set_scheme(Some(&url.scheme)).is_ok()
        && request.set_authority(Some(&url.authority)).is_ok()
        && request
            .set_path_with_query(Some(&url.path_with_query))
            .is_ok();
    if !url_taken {
        return Err(Failure::BadRequest("error: bad url"));
    }
    Ok(request)
}

/// Sends `request`, streaming the rest of `body` as its body, and waits for
/// the response's head: the response, and whether a body was sent. The
/// outgoing body is only taken once the first chunk is in: one left alone
/// goes out empty (no chunked encoding for a GET).
fn send_request(
    request: OutgoingRequest,
    body: Option<BodyReader>,
) -> Result<(IncomingResponse, bool), Failure> {
    let first = body.as_ref().and_then(|body| body.read().ok().flatten());
    let writer = first
        .as_ref()
        .map(|_| BodyWriter::new(request.body().expect("a request's body is taken once")));
    let future = outgoing_handler::handle(request, None).map_err(Failure::Upstream)?;
    if let (Some(writer), Some(first), Some(body)) = (writer, &first, &body) {
        // On a stream error the body is dropped unfinished: upstream sees it
        // fail, and the future tells how.
        if writer.write_all(first).is_ok() && body.copy_to(&writer).is_ok() {
            writer.finish(None).map_err(Failure::Upstream)?;
        }
    }
    Ok((wait(&future)?, first.is_some()))
}

/// The response `future` resolves to, blocking until it does.
fn wait(future: &FutureIncomingResponse) -> Result<IncomingResponse, Failure> {
    loop {
        match future.get() {
            Some(Ok(Ok(response))) => return Ok(response),
            Some(Ok(Err(code))) => return Err(Failure::Upstream(code)),
            Some(Err(())) => unreachable!("a response is taken once"),
            None => future.subscribe().block(),
        }
    }
}

/// Where and how a redirect `response` to `method url` says to go next, if
/// it is one that can be followed.
fn redirect(
    response: &IncomingResponse,
    url: &Url,
    method: &Method,
    body_sent: bool,
) -> Option<(Url, Method)> {
    let status = response.status();
    if !(300..400).contains(&status) || status == 304 {
        return None;
    }
    let location = response.headers().get("location").into_iter().next()?;
    let next_url = url.join(std::str::from_utf8(&location).ok()?)?;
    let next_method = match (status, method) {
        (303, Method::Head) => Method::Head,
        (303, _) | (301 | 302, Method::Post) => Method::Get,
        // Same method, same body: a streamed one is gone.
        _ if body_sent => return None,
        (_, method) => method.clone(),
    };
    Some((next_url, next_method))
}

/// Answers with the upstream `response`: its status, its `content-type`,
/// `x-fetch-hops`, and its body streamed through.
fn pass_on(out: ResponseOutparam, response: IncomingResponse, hops: u32) {
    let headers = Fields::new();
    if let Some(content_type) = response.headers().get("content-type").first() {
        let _ = headers.append("content-type", content_type);
    }
    let _ = headers.append("x-fetch-hops", hops.to_string().as_bytes());
    let outgoing = OutgoingResponse::new(headers);
    let _ = outgoing.set_status_code(response.status());
    let writer = send(out, outgoing);
    let Ok(body) = response.consume() else {
        let _ = writer.finish(None);
        return;
    };
    let reader = BodyReader::new(body);
    if reader.copy_to(&writer).is_ok() {
        let _ = writer.finish(None);
    }
}

/// An absolute http(s) URL, split as an outgoing request takes it.
struct Url {
    scheme: Scheme,
    authority: String,
    /// Starts with `/`; no fragment.
    path_with_query: String,
}

impl Url {
    /// `scheme://authority[/path][?query][#fragment]`, the fragment dropped.
    fn parse(text: &str) -> Option<Url> {
        let text = text.trim();
        let text = text.split_once('#').map_or(text, |(url, _)| url);
        let (scheme, rest) = text.split_once("://")?;
        let mut chars = scheme.chars();
        let scheme_ok = chars.next().is_some_and(|c| c.is_ascii_alphabetic())
            && chars.all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c));
        if !scheme_ok {
            return None;
        }
        let (authority, path_with_query) =
            rest.split_at(rest.find(['/', '?']).unwrap_or(rest.len()));
        if authority.is_empty() || authority.contains(|c: char| c.is_whitespace()) {
            return None;
        }
        let scheme = match scheme.to_ascii_lowercase().as_str() {
            "http" => Scheme::Http,
            "https" => Scheme::Https,
            other => Scheme::Other(other.to_owned()),
        };
        Some(Url {
            scheme,
            authority: authority.to_owned(),
            path_with_query: with_path(path_with_query),
        })
    }

    /// `reference` (a `location`) resolved against this URL, as RFC 3986
    /// does: absolute, scheme-relative (`//host/path`), absolute-path,
    /// query-only or relative to this URL's directory.
    fn join(&self, reference: &str) -> Option<Url> {
        let reference = reference.trim();
        let reference = reference.split_once('#').map_or(reference, |(r, _)| r);
        if let Some((scheme, _)) = reference.split_once("://")
            && !scheme.contains(['/', '?'])
        {
            return Url::parse(reference);
        }
        if reference.starts_with("//") {
            let scheme = wafer_guest_http::scheme_name(&self.scheme);
            return Url::parse(&format!("{scheme}:{reference}"));
        }
        let base_path = wafer_guest_http::path(&self.path_with_query);
        let path_with_query = if reference.is_empty() {
            self.path_with_query.clone()
        } else if reference.starts_with('/') {
            reference.to_owned()
        } else if reference.starts_with('?') {
            format!("{base_path}{reference}")
        } else {
            let directory = &base_path[..=base_path.rfind('/').unwrap_or(0)];
            format!("{directory}{reference}")
        };
        Some(Url {
            scheme: self.scheme.clone(),
            authority: self.authority.clone(),
            path_with_query: with_path(&path_with_query),
        })
    }
}

/// `path_with_query` with a path (`/` if none) free of `.` and `..`
/// segments.
fn with_path(path_with_query: &str) -> String {
    let (path, query) = match path_with_query.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (path_with_query, None),
    };
    let segments: Vec<&str> = path.split('/').skip(1).collect();
    let mut kept: Vec<&str> = Vec::with_capacity(segments.len());
    for (i, segment) in segments.iter().enumerate() {
        let last = i + 1 == segments.len();
        match *segment {
            "." => {}
            ".." => {
                kept.pop();
            }
            segment => {
                kept.push(segment);
                continue;
            }
        }
        if last {
            kept.push("");
        }
    }
    let mut out = format!("/{}", kept.join("/"));
    if let Some(query) = query {
        out.push('?');
        out.push_str(query);
    }
    out
}
