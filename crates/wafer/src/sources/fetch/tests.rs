use super::super::test_server::{self, MODULE, TestServer};
use super::*;

/// A small size cap, and a time limit no healthy local download reaches.
fn small() -> FetchLimits {
    FetchLimits {
        timeout: Duration::from_secs(30),
        max_bytes: 1024,
        ..FetchLimits::default()
    }
}

/// An unconditional download's body.
fn get(url: &str, limits: FetchLimits) -> Result<Vec<u8>, SourceError> {
    match download(url, limits, None)? {
        Fetched::Body(bytes, _) => Ok(bytes),
        Fetched::NotModified => panic!("an unconditional request was answered 304"),
    }
}

#[test]
fn downloads_a_module() {
    let server = TestServer::start();
    let bytes = get(&server.url("/module.wasm"), small()).unwrap();
    assert_eq!(bytes, MODULE);
}

#[test]
fn works_on_a_tokio_runtime_thread() {
    let server = TestServer::start();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let url = server.url("/module.wasm");
    let bytes = runtime.block_on(async { get(&url, small()) }).unwrap();
    assert_eq!(bytes, MODULE);
}

#[test]
fn reports_status_codes() {
    let server = TestServer::start();
    let error = get(&server.url("/missing"), small()).unwrap_err();
    assert!(
        matches!(error, SourceError::Status { status: 404, .. }),
        "{error}"
    );
    assert!(
        error.to_string().contains("/missing answered HTTP 404"),
        "{error}"
    );
}

#[test]
fn reports_html_by_content_type_and_by_content() {
    let server = TestServer::start();
    for path in ["/page.html", "/octet-html"] {
        let error = get(&server.url(path), small()).unwrap_err();
        assert!(
            matches!(error, SourceError::HtmlInsteadOfWasm { .. }),
            "{error}"
        );
        assert!(error.to_string().contains("sent HTML/text"), "{error}");
    }
    let error = get(&server.url("/page.html"), small()).unwrap_err();
    assert!(
        error.to_string().contains("Content-Type text/html"),
        "{error}"
    );
}

#[test]
fn reports_other_non_wasm_content() {
    let server = TestServer::start();
    let error = get(&server.url("/zip"), small()).unwrap_err();
    assert!(matches!(error, SourceError::NotWasm { .. }), "{error}");
}

#[test]
fn refuses_a_declared_length_over_the_cap() {
    let server = TestServer::start();
    let error = get(&server.url("/big.wasm"), small()).unwrap_err();
    assert!(
        matches!(error, SourceError::TooLarge { limit: 1024, .. }),
        "{error}"
    );
    // The same body is fine under the default limit.
    assert!(get(&server.url("/big.wasm"), FetchLimits::default()).is_ok());
}

#[test]
fn refuses_an_undeclared_length_over_the_cap() {
    let mut body = MODULE.to_vec();
    body.resize(64 * 1024, b'x');
    let url = test_server::serve_once_without_length(body);
    let error = get(&url, small()).unwrap_err();
    assert!(matches!(error, SourceError::TooLarge { .. }), "{error}");
}

#[test]
fn times_out() {
    let server = TestServer::start();
    // The server answers after 10 s: the short limit is the point.
    let limits = FetchLimits {
        timeout: Duration::from_millis(300),
        ..small()
    };
    let error = get(&server.url("/slow.wasm"), limits).unwrap_err();
    assert!(matches!(error, SourceError::Timeout { .. }), "{error}");
    assert!(error.to_string().contains("within 300 ms"), "{error}");
}

#[test]
fn reports_an_unreachable_server() {
    let url = format!("http://127.0.0.1:{}/m.wasm", test_server::unused_port());
    let error = get(&url, small()).unwrap_err();
    assert!(matches!(error, SourceError::Unreachable { .. }), "{error}");
    assert!(
        error
            .to_string()
            .starts_with(&format!("cannot reach {url}: ")),
        "{error}"
    );
}

#[test]
fn sorts_urls_by_scheme() {
    assert_eq!(locate("HTTPS://x/m.wasm").unwrap(), Location::Remote);
    assert_eq!(locate("http://x/m.wasm").unwrap(), Location::Remote);
    assert_eq!(
        locate("file://m.wasm").unwrap(),
        Location::Local(Path::new("m.wasm"))
    );
    assert_eq!(
        locate("file:///abs/m.wasm").unwrap(),
        Location::Local(Path::new("/abs/m.wasm"))
    );
    for url in ["ftp://x/m.wasm", "m.wasm", "file://", ""] {
        assert!(
            matches!(locate(url), Err(SourceError::BadUrl { .. })),
            "{url}"
        );
    }
}

#[test]
fn reads_local_files_with_the_same_checks() {
    let dir = tempfile::tempdir().unwrap();
    let module = dir.path().join("m.wasm");
    std::fs::write(&module, MODULE).unwrap();
    let url = format!("file://{}", module.display());
    assert_eq!(read_local(&url, &module, small()).unwrap(), MODULE);

    let text = dir.path().join("m.wat");
    std::fs::write(&text, "(module)").unwrap();
    let error = read_local("file://m.wat", &text, small()).unwrap_err();
    assert!(matches!(error, SourceError::NotWasm { .. }), "{error}");

    let big = dir.path().join("big.wasm");
    std::fs::write(&big, [MODULE, &[0; 2048]].concat()).unwrap();
    let error = read_local("file://big.wasm", &big, small()).unwrap_err();
    assert!(matches!(error, SourceError::TooLarge { .. }), "{error}");

    // A directory is reported as unreadable, not as too large.
    let error = read_local("file://dir", dir.path(), small()).unwrap_err();
    assert!(matches!(error, SourceError::File { .. }), "{error}");

    let missing = dir.path().join("missing.wasm");
    let error = read_local("file://missing.wasm", &missing, small()).unwrap_err();
    assert!(matches!(error, SourceError::File { .. }), "{error}");
    assert!(error.to_string().contains("missing.wasm"), "{error}");
}
