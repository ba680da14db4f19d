use std::sync::Arc;

use super::*;

fn cache() -> (tempfile::TempDir, DiskCache) {
    let dir = tempfile::tempdir().unwrap();
    let cache = DiskCache::open(dir.path().join("cache")).unwrap();
    (dir, cache)
}

fn files_in(folder: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(folder)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn modules_round_trip_under_their_hash() {
    let (_dir, cache) = cache();
    let hash = cache.write_module(b"\0asm module").unwrap();
    assert_eq!(hash, Sha256Hash::of(b"\0asm module"));
    assert_eq!(cache.read_module(&hash).unwrap(), b"\0asm module");
    assert_eq!(
        files_in(&cache.dir().join(MODULES)),
        [format!("{}.wasm", hash.hex())]
    );
    assert!(cache.read_module(&Sha256Hash::of(b"other")).is_none());
}

#[test]
fn a_tampered_module_is_removed_and_missing() {
    let (_dir, cache) = cache();
    let hash = cache.write_module(b"\0asm module").unwrap();
    let path = cache.dir().join(MODULES).join(module_file_name(&hash));
    fs::write(&path, b"\0asm evil").unwrap();
    assert!(cache.read_module(&hash).is_none());
    assert!(!path.exists());
}

#[test]
fn compiled_artifacts_round_trip_and_replace() {
    let (_dir, cache) = cache();
    assert!(cache.read_compiled("engine-module").is_none());
    cache.write_compiled("engine-module", b"first").unwrap();
    cache.write_compiled("engine-module", b"second").unwrap();
    assert_eq!(cache.read_compiled("engine-module").unwrap(), b"second");
    cache.write_compiled("empty", b"").unwrap();
    assert_eq!(cache.read_compiled("empty").unwrap(), b"");
}

#[test]
fn damaged_compiled_artifacts_are_removed_and_missing() {
    let (_dir, cache) = cache();
    let path = cache.dir().join(COMPILED).join("key.cwasm");
    let damages: [fn(&mut Vec<u8>); 4] = [
        |file| *file.last_mut().unwrap() ^= 1, // payload bit flip
        |file| file.truncate(file.len() - 1),  // truncated payload
        |file| file.truncate(10),              // truncated header
        |file| file[0] = b'W',                 // unknown format
    ];
    for damage in damages {
        cache.write_compiled("key", b"payload").unwrap();
        let mut file = fs::read(&path).unwrap();
        damage(&mut file);
        fs::write(&path, file).unwrap();
        assert!(cache.read_compiled("key").is_none());
        assert!(!path.exists());
    }
}

#[test]
fn compiled_keys_are_validated() {
    let (_dir, cache) = cache();
    let long = "k".repeat(MAX_KEY_LEN + 1);
    for key in [
        "", ".", "..", ".hidden", "a/b", "../x", "a\\b", "a b", "é", "a\nb", &long,
    ] {
        let error = cache.write_compiled(key, b"x").unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::InvalidInput, "{key:?}");
        assert!(!error.to_string().contains('\n'), "{error}");
        assert!(cache.read_compiled(key).is_none());
    }
    let valid = format!("{}-0123456789abcdef.v1_x", "e".repeat(64));
    cache.write_compiled(&valid, b"x").unwrap();
    assert_eq!(cache.read_compiled(&valid).unwrap(), b"x");
    // Nothing escaped the compiled folder.
    assert_eq!(files_in(cache.dir()), [COMPILED]);
}

fn record(content: &[u8]) -> UrlRecord {
    UrlRecord {
        hash: Sha256Hash::of(content),
        checked: UNIX_EPOCH + Duration::from_secs(1_700_000_000),
        validators: Validators {
            etag: Some("\"v1\"".into()),
            last_modified: None,
        },
    }
}

#[test]
fn urls_remember_what_they_served_and_when() {
    let (_dir, cache) = cache();
    let url = "https://example.test/m.wasm?v=1";
    assert!(cache.url_record(url).is_none());
    cache.remember_url(url, &record(b"a")).unwrap();
    cache.remember_url(url, &record(b"b")).unwrap();
    assert_eq!(cache.url_record(url), Some(record(b"b")));
    let path = cache.dir().join(URLS).join(url_file_name(url));
    assert_eq!(
        fs::read_to_string(&path).unwrap(),
        format!(
            "{}\nchecked 1700000000\netag \"v1\"\n",
            Sha256Hash::of(b"b")
        )
    );

    // A record of an earlier version (the hash alone) reads as stale.
    fs::write(&path, Sha256Hash::of(b"c").to_string()).unwrap();
    let old = cache.url_record(url).unwrap();
    assert_eq!((old.hash, old.checked), (Sha256Hash::of(b"c"), UNIX_EPOCH));

    fs::write(&path, "garbage").unwrap();
    assert!(cache.url_record(url).is_none());
    assert!(!path.exists());
}

#[cfg(unix)]
#[test]
fn directories_are_0700_and_files_0600() {
    use std::os::unix::fs::PermissionsExt;
    let mode = |path: &Path| fs::metadata(path).unwrap().permissions().mode() & 0o777;

    let dir = tempfile::tempdir().unwrap();
    let nested = dir.path().join("a").join("b");
    let cache = DiskCache::open(&nested).unwrap();
    assert_eq!(mode(&nested), 0o700);
    cache.write_module(b"\0asm").unwrap();
    cache.write_compiled("key", b"x").unwrap();
    cache.remember_url("http://x/", &record(b"\0asm")).unwrap();
    for folder in [MODULES, COMPILED, URLS] {
        let folder = nested.join(folder);
        assert_eq!(mode(&folder), 0o700);
        for name in files_in(&folder) {
            assert_eq!(mode(&folder.join(name)), 0o600);
        }
    }

    // A folder others may write into is refused, not repaired: files
    // planted in it before would stay.
    let open = dir.path().join("open");
    fs::create_dir(&open).unwrap();
    fs::set_permissions(&open, fs::Permissions::from_mode(0o777)).unwrap();
    let error = DiskCache::open(&open).unwrap_err();
    assert!(error.to_string().contains("mode 777"), "{error}");
    assert_eq!(mode(&open), 0o777);
    fs::set_permissions(&open, fs::Permissions::from_mode(0o755)).unwrap();
    DiskCache::open(&open).unwrap();
    let link = dir.path().join("link");
    std::os::unix::fs::symlink(&nested, &link).unwrap();
    assert!(DiskCache::open(&link).is_err());
}

#[test]
fn concurrent_writers_of_one_key_leave_a_whole_file() {
    let (_dir, cache) = cache();
    let cache = Arc::new(cache);
    // Big enough for a reader to catch a write halfway, were it not atomic.
    let payloads: Vec<Vec<u8>> = (0..6u8).map(|n| vec![n; 256 * 1024]).collect();
    let payloads = Arc::new(payloads);
    let writers: Vec<_> = (0..payloads.len())
        .map(|n| {
            let (cache, payloads) = (cache.clone(), payloads.clone());
            std::thread::spawn(move || {
                for _ in 0..5 {
                    cache.write_compiled("shared", &payloads[n]).unwrap();
                    // Every read sees one writer's complete payload.
                    let read = cache.read_compiled("shared").unwrap();
                    assert!(payloads.contains(&read));
                }
            })
        })
        .collect();
    for writer in writers {
        writer.join().unwrap();
    }
    assert!(payloads.contains(&cache.read_compiled("shared").unwrap()));
    // No temporary file was left behind.
    assert_eq!(files_in(&cache.dir().join(COMPILED)), ["shared.cwasm"]);
}

#[test]
fn clean_removes_only_what_wafer_wrote() {
    let (_dir, cache) = cache();
    let module = b"\0asm module".as_slice();
    let hash = cache.write_module(module).unwrap();
    cache.write_compiled("key", b"payload").unwrap();
    cache.remember_url("http://x/", &record(b"\0asm")).unwrap();
    fs::write(cache.dir().join("unrelated.txt"), "keep me").unwrap();
    fs::create_dir(cache.dir().join("projects")).unwrap();
    fs::write(cache.dir().join(COMPILED).join(".tmpAbC12"), "half written").unwrap();
    let expected_bytes = [MODULES, COMPILED, URLS]
        .iter()
        .flat_map(|folder| fs::read_dir(cache.dir().join(folder)).unwrap())
        .map(|entry| entry.unwrap().metadata().unwrap().len())
        .sum::<u64>();
    let notes = cache.dir().join(COMPILED).join("notes.txt");
    fs::write(&notes, "mine").unwrap();

    let report = cache.clean().unwrap();
    assert_eq!(
        report,
        CleanReport {
            files: 4,
            bytes: expected_bytes,
            kept: vec![notes.clone()],
        }
    );
    assert_eq!(
        files_in(cache.dir()),
        [COMPILED, MODULES, "projects", "unrelated.txt", URLS]
    );
    assert_eq!(files_in(&cache.dir().join(COMPILED)), ["notes.txt"]);

    // Cleaning again removes nothing, and the cache still works after.
    let again = cache.clean().unwrap();
    assert_eq!((again.files, again.kept), (0, vec![notes]));
    assert_eq!(cache.write_module(module).unwrap(), hash);
    assert!(cache.read_module(&hash).is_some());
}

#[test]
fn a_cache_path_that_is_a_file_is_refused_plainly() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("cache");
    fs::write(&file, "").unwrap();
    let error = DiskCache::open(&file).unwrap_err();
    assert!(
        error
            .to_string()
            .ends_with("cache: is a file, not a folder"),
        "{error}"
    );
}

#[test]
fn the_default_directory_follows_the_environment() {
    fn env<'a>(pairs: &'a [(&str, &str)]) -> impl Fn(&str) -> Option<OsString> + 'a {
        |name| {
            pairs
                .iter()
                .find(|(key, _)| *key == name)
                .map(|(_, value)| OsString::from(value))
        }
    }
    let all = [
        ("WAFER_CACHE_DIR", "/w"),
        ("XDG_CACHE_HOME", "/x"),
        ("HOME", "/h"),
    ];
    assert_eq!(default_dir_from(env(&all)), Path::new("/w"));
    assert_eq!(default_dir_from(env(&all[1..])), Path::new("/x/wafer"));
    assert_eq!(
        default_dir_from(env(&all[2..])),
        Path::new("/h/.cache/wafer")
    );
    assert_eq!(
        default_dir_from(env(&[
            ("WAFER_CACHE_DIR", ""),
            ("XDG_CACHE_HOME", "rel"),
            ("HOME", "/h")
        ])),
        Path::new("/h/.cache/wafer")
    );
    assert_eq!(
        default_dir_from(env(&[])),
        std::env::temp_dir().join("wafer-cache")
    );
}
