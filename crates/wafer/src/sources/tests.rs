use std::fs;
use std::time::Duration;

use super::test_server::{MODULE, TestServer, unused_port};
use super::*;

/// A small size cap, and a time limit no healthy local download reaches.
fn limits() -> FetchLimits {
    FetchLimits {
        timeout: Duration::from_secs(30),
        max_bytes: 1024,
        ..FetchLimits::default()
    }
}

fn cached_sources() -> (tempfile::TempDir, ModuleSources) {
    let dir = tempfile::tempdir().unwrap();
    let cache = DiskCache::open(dir.path()).unwrap();
    (dir, ModuleSources::new(Some(cache), limits()))
}

#[test]
fn a_second_load_makes_no_request() {
    let server = TestServer::start();
    let url = server.url("/module.wasm");
    let (dir, sources) = cached_sources();

    let first = sources.load(&url, None).unwrap();
    assert_eq!(
        (first.origin, first.bytes.as_slice()),
        (Origin::Network, MODULE)
    );
    assert_eq!(first.hash, Sha256Hash::of(MODULE));
    assert_eq!(server.module_hits(), 1);

    let second = sources.load(&url, None).unwrap();
    assert_eq!(
        (second.origin, second.bytes.as_slice()),
        (Origin::Cache, MODULE)
    );

    // As another process would see it: a new cache on the same directory.
    let restarted = ModuleSources::new(Some(DiskCache::open(dir.path()).unwrap()), limits());
    assert_eq!(restarted.load(&url, None).unwrap().origin, Origin::Cache);
    let pinned = restarted.load(&url, Some(Sha256Hash::of(MODULE))).unwrap();
    assert_eq!(pinned.origin, Origin::Cache);
    assert_eq!(server.module_hits(), 1);
}

#[test]
fn a_pinned_cached_module_needs_no_network_at_all() {
    let (_dir, sources) = cached_sources();
    let hash = sources.cache().unwrap().write_module(MODULE).unwrap();
    let url = format!("http://127.0.0.1:{}/m.wasm", unused_port());
    let loaded = sources.load(&url, Some(hash)).unwrap();
    assert_eq!(
        (loaded.origin, loaded.bytes.as_slice()),
        (Origin::Cache, MODULE)
    );
    // Unpinned, the URL is unknown to the cache and must be fetched.
    let error = sources.load(&url, None).unwrap_err();
    assert!(matches!(error, SourceError::Unreachable { .. }), "{error}");
}

#[test]
fn a_tampered_cached_module_is_fetched_again() {
    let server = TestServer::start();
    let url = server.url("/module.wasm");
    let (dir, sources) = cached_sources();
    let hash = sources.load(&url, None).unwrap().hash;

    let file = dir
        .path()
        .join("modules")
        .join(format!("{}.wasm", hash.hex()));
    fs::write(&file, b"\0asm\x01\0\0\0tampered").unwrap();
    let reloaded = sources.load(&url, None).unwrap();
    assert_eq!(
        (reloaded.origin, reloaded.bytes.as_slice()),
        (Origin::Network, MODULE)
    );
    assert_eq!(server.module_hits(), 2);
    assert_eq!(fs::read(&file).unwrap(), MODULE);
}

#[test]
fn a_pin_mismatch_is_refused_and_not_cached() {
    let server = TestServer::start();
    let url = server.url("/module.wasm");
    let (dir, sources) = cached_sources();
    let pin = Sha256Hash::of(b"another module");

    for attempt in 1..=2 {
        let error = sources.load(&url, Some(pin)).unwrap_err();
        match &error {
            SourceError::HashMismatch {
                expected, actual, ..
            } => assert_eq!((*expected, *actual), (pin, Sha256Hash::of(MODULE))),
            other => panic!("expected a hash mismatch, got {other}"),
        }
        assert!(error.to_string().contains(&url), "{error}");
        assert_eq!(server.module_hits(), attempt);
    }
    assert!(!dir.path().join("modules").exists());
    assert!(sources.cache().unwrap().url_record(&url).is_none());
}

#[test]
fn without_a_cache_every_load_downloads() {
    let server = TestServer::start();
    let url = server.url("/module.wasm");
    let sources = ModuleSources::new(None, limits());
    for _ in 0..2 {
        assert_eq!(sources.load(&url, None).unwrap().origin, Origin::Network);
    }
    assert_eq!(server.module_hits(), 2);
}

#[test]
fn download_errors_are_returned_and_nothing_is_cached() {
    let server = TestServer::start();
    let (dir, sources) = cached_sources();
    for path in ["/missing", "/page.html", "/big.wasm"] {
        assert!(sources.load(&server.url(path), None).is_err(), "{path}");
    }
    // The server answers after 10 s: the short limit is the point.
    let impatient = FetchLimits {
        timeout: Duration::from_millis(300),
        ..limits()
    };
    let impatient = ModuleSources::new(Some(DiskCache::open(dir.path()).unwrap()), impatient);
    assert!(impatient.load(&server.url("/slow.wasm"), None).is_err());
    assert!(!dir.path().join("modules").exists());
    assert!(!dir.path().join("urls").exists());
}

#[test]
fn loads_from_inside_a_tokio_runtime() {
    let server = TestServer::start();
    let url = server.url("/module.wasm");
    let (_dir, sources) = cached_sources();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let loaded = runtime
        .block_on(async { sources.load(&url, None) })
        .unwrap();
    assert_eq!(loaded.origin, Origin::Network);
}

#[test]
fn file_urls_are_read_every_time_and_not_cached() {
    let files = tempfile::tempdir().unwrap();
    let module = files.path().join("m.wasm");
    fs::write(&module, MODULE).unwrap();
    let (dir, sources) = cached_sources();

    let absolute = format!("file://{}", module.display());
    assert!(absolute.starts_with("file:///"));
    for _ in 0..2 {
        let loaded = sources
            .load(&absolute, Some(Sha256Hash::of(MODULE)))
            .unwrap();
        assert_eq!(
            (loaded.origin, loaded.bytes.as_slice()),
            (Origin::File, MODULE)
        );
    }
    assert!(!dir.path().join("modules").exists());

    let error = sources
        .load(&absolute, Some(Sha256Hash::of(b"x")))
        .unwrap_err();
    assert!(matches!(error, SourceError::HashMismatch { .. }), "{error}");
}

/// `file://x` is relative to the working directory. The test reaches the
/// temporary file with `../` from there, rather than changing the process's
/// working directory under the other tests' feet.
#[cfg(unix)]
#[test]
fn relative_file_urls_start_at_the_working_directory() {
    let files = tempfile::tempdir().unwrap();
    let module = files.path().join("m.wasm");
    fs::write(&module, MODULE).unwrap();
    let cwd = std::env::current_dir().unwrap();
    let up = "../".repeat(cwd.components().count() - 1);
    let relative = module.strip_prefix("/").unwrap();
    let url = format!("file://{up}{}", relative.display());

    let sources = ModuleSources::new(None, limits());
    let loaded = sources.load(&url, None).unwrap();
    assert_eq!(
        (loaded.origin, loaded.bytes.as_slice()),
        (Origin::File, MODULE)
    );

    let error = sources.load("file://no-such-dir/m.wasm", None).unwrap_err();
    let expected_path = cwd.join("no-such-dir/m.wasm");
    assert!(
        error
            .to_string()
            .contains(&expected_path.display().to_string()),
        "{error}"
    );
}

/// A module served at `/versioned.wasm` with an `ETag`, answering 304 to a
/// request that names the current one; `failing` makes it answer 500.
struct Versioned {
    url: String,
    state: std::sync::Arc<std::sync::Mutex<(Vec<u8>, u32, bool)>>,
    requests: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    not_modified: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl Versioned {
    fn start() -> Versioned {
        use super::test_server::{Response, serve};
        use std::sync::atomic::Ordering;
        let state = std::sync::Arc::new(std::sync::Mutex::new((MODULE.to_vec(), 1, false)));
        let requests = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let not_modified = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (shared, counted, unchanged) = (state.clone(), requests.clone(), not_modified.clone());
        let addr = serve(move |request| {
            counted.fetch_add(1, Ordering::SeqCst);
            let (body, version, failing) = shared.lock().unwrap().clone();
            let etag = format!("\"v{version}\"");
            if failing {
                return Response {
                    status: "500 Internal Server Error",
                    ..Response::not_found()
                };
            }
            if request.header("If-None-Match") == Some(etag.as_str()) {
                unchanged.fetch_add(1, Ordering::SeqCst);
                return Response::not_modified();
            }
            Response::ok("application/wasm", body).with_header("ETag", etag)
        });
        Versioned {
            url: format!("http://{addr}/versioned.wasm"),
            state,
            requests,
            not_modified,
        }
    }

    fn publish(&self, body: &[u8]) {
        let mut state = self.state.lock().unwrap();
        state.0 = body.to_vec();
        state.1 += 1;
    }

    fn fail(&self) {
        self.state.lock().unwrap().2 = true;
    }

    fn counts(&self) -> (usize, usize) {
        use std::sync::atomic::Ordering;
        (
            self.requests.load(Ordering::SeqCst),
            self.not_modified.load(Ordering::SeqCst),
        )
    }
}

#[test]
fn an_unpinned_url_is_asked_again_once_stale_and_kept_when_unchanged() {
    let server = Versioned::start();
    let dir = tempfile::tempdir().unwrap();
    let sources = |freshness| {
        let cache = DiskCache::open(dir.path()).unwrap();
        ModuleSources::new(
            Some(cache),
            FetchLimits {
                freshness,
                ..limits()
            },
        )
    };
    let fresh = sources(Duration::from_secs(3600));
    let stale = sources(Duration::ZERO);

    assert_eq!(
        fresh.load(&server.url, None).unwrap().origin,
        Origin::Network
    );
    // Fresh: no request at all.
    assert_eq!(fresh.load(&server.url, None).unwrap().origin, Origin::Cache);
    assert_eq!(server.counts(), (1, 0));
    // Stale: asked, and told it did not change.
    assert_eq!(stale.load(&server.url, None).unwrap().origin, Origin::Cache);
    assert_eq!(server.counts(), (2, 1));

    let second = [MODULE, b"\x00\x01"].concat();
    server.publish(&second);
    // Still fresh from the 304 just now: the change is not seen yet.
    assert_eq!(fresh.load(&server.url, None).unwrap().bytes, MODULE);
    let changed = stale.load(&server.url, None).unwrap();
    assert_eq!(
        (changed.origin, changed.bytes),
        (Origin::Network, second.clone())
    );
    assert_eq!(fresh.load(&server.url, None).unwrap().bytes, second);

    // The server failing keeps the cached copy in use.
    server.fail();
    let kept = stale.load(&server.url, None).unwrap();
    assert_eq!((kept.origin, kept.bytes), (Origin::Cache, second));
}
