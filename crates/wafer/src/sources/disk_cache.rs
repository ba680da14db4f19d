//! The on-disk cache that several wafer processes share: downloaded modules,
//! compiled artifacts, and which module each URL served last.
//!
//! Every file is written to a temporary name in its final folder and renamed
//! into place, so a reader (in any process) sees a whole file or none. Every
//! read re-checks a SHA-256 digest: a corrupt or altered file is deleted and
//! reported as missing, so the caller falls back to fetching or compiling.

use std::ffi::OsString;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::fetch::Validators;
use crate::files::{self, Accept, ReadError};
use crate::hash::Sha256Hash;

/// Module binaries, named `<sha256 hex>.wasm` after their content.
const MODULES: &str = "modules";
/// Compiled artifacts, named `<key>.cwasm`, each behind a [`COMPILED_HEADER`].
const COMPILED: &str = "compiled";
/// One file per URL, named after the URL's SHA-256, holding `sha256:<hex>`.
const URLS: &str = "urls";

/// A compiled file is this, the payload's `sha256:<hex>`, a newline, then
/// the payload. The version lets a later format be told apart (and discarded).
const COMPILED_HEADER: &str = "wafer-compiled-v1 ";
/// Longer than any valid header, to bound the search for its newline.
const MAX_HEADER_LEN: usize = 128;
/// Keeps `<key>.cwasm` under the usual 255-byte file-name limit.
const MAX_KEY_LEN: usize = 200;

/// What a URL served last: the module's hash, when its server last
/// confirmed it, and what identifies that version to the server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct UrlRecord {
    pub hash: Sha256Hash,
    pub checked: SystemTime,
    pub validators: Validators,
}

impl UrlRecord {
    fn parse(text: &str) -> Option<UrlRecord> {
        let mut lines = text.lines();
        let hash = lines.next()?.trim().parse().ok()?;
        let mut record = UrlRecord {
            hash,
            checked: UNIX_EPOCH,
            validators: Validators::default(),
        };
        for line in lines {
            match line.split_once(' ') {
                Some(("checked", secs)) => {
                    let secs = secs.trim().parse().unwrap_or(0);
                    record.checked = UNIX_EPOCH
                        .checked_add(Duration::from_secs(secs))
                        .unwrap_or(UNIX_EPOCH);
                }
                Some(("etag", value)) => record.validators.etag = Some(value.to_owned()),
                Some(("last-modified", value)) => {
                    record.validators.last_modified = Some(value.to_owned())
                }
                _ => {}
            }
        }
        Some(record)
    }
}

/// A cache directory, safe to share between concurrent wafer processes.
#[derive(Clone, Debug)]
pub struct DiskCache {
    dir: PathBuf,
}

/// What [`DiskCache::clean`] removed, and what it left.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CleanReport {
    /// Files removed (symbolic links count as files).
    pub files: u64,
    /// Their total size in bytes.
    pub bytes: u64,
    /// What lies in the cache's folders but is not wafer's: left alone.
    pub kept: Vec<PathBuf>,
}

impl DiskCache {
    /// Opens the cache in `dir`, creating it and its parents if missing.
    ///
    /// Compiled artifacts are loaded as trusted machine code, so no other
    /// user may be able to write into the cache: on unix a directory it
    /// creates gets mode 0700, and an existing one must belong to this user
    /// and let no one else write into it, or it is refused (never changed:
    /// files another user planted while it was open would stay).
    pub fn open(dir: impl Into<PathBuf>) -> io::Result<DiskCache> {
        let dir = dir.into();
        make_private_dir(&dir)?;
        Ok(DiskCache { dir })
    }

    /// The cache directory to use when none is configured: `$WAFER_CACHE_DIR`
    /// if set, else `$XDG_CACHE_HOME/wafer`, else `$HOME/.cache/wafer`, else
    /// `wafer-cache` in the system's temporary directory. Empty variables
    /// count as unset, and so does a relative `XDG_CACHE_HOME` (as the XDG
    /// specification says).
    pub fn default_dir() -> PathBuf {
        default_dir_from(|name| std::env::var_os(name))
    }

    /// The directory this cache lives in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The module whose content hashes to `hash`, if cached and intact.
    pub fn read_module(&self, hash: &Sha256Hash) -> Option<Vec<u8>> {
        let path = self.dir.join(MODULES).join(module_file_name(hash));
        let bytes = read_if_present(&path)?;
        if Sha256Hash::of(&bytes) != *hash {
            discard(&path, "its content does not match the hash in its name");
            return None;
        }
        Some(bytes)
    }

    /// Stores a module under its own hash, which is returned.
    pub fn write_module(&self, bytes: &[u8]) -> io::Result<Sha256Hash> {
        let hash = Sha256Hash::of(bytes);
        write_atomically(&self.dir.join(MODULES), &module_file_name(&hash), &[bytes])?;
        Ok(hash)
    }

    /// The compiled artifact stored under `key`, if present and intact.
    ///
    /// The check catches truncation and corruption, not a deliberate forgery
    /// (a forger can rewrite the header too): that is what the directory's
    /// 0700 mode is for. An invalid key is never stored, so it reads as absent.
    pub fn read_compiled(&self, key: &str) -> Option<Vec<u8>> {
        let path = self.dir.join(COMPILED).join(compiled_file_name(key).ok()?);
        let mut bytes = read_if_present(&path)?;
        match split_compiled(&bytes) {
            Some((hash, header_len)) if Sha256Hash::of(&bytes[header_len..]) == hash => {
                bytes.drain(..header_len);
                Some(bytes)
            }
            Some(_) => {
                discard(&path, "its payload does not match the hash in its header");
                None
            }
            None => {
                discard(&path, "it has no valid wafer-compiled header");
                None
            }
        }
    }

    /// Stores `payload` under `key`, replacing what was there.
    ///
    /// A key is 1 to 200 characters of `A-Z a-z 0-9 . _ -`, not starting with
    /// `.`; any other key fails with [`io::ErrorKind::InvalidInput`].
    pub fn write_compiled(&self, key: &str, payload: &[u8]) -> io::Result<()> {
        let name = compiled_file_name(key)?;
        let header = format!("{COMPILED_HEADER}{}\n", Sha256Hash::of(payload));
        write_atomically(
            &self.dir.join(COMPILED),
            &name,
            &[header.as_bytes(), payload],
        )
    }

    /// Records what `url` last served and when the server last confirmed
    /// it.
    pub(super) fn remember_url(&self, url: &str, record: &UrlRecord) -> io::Result<()> {
        let checked = record
            .checked
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        let mut content = format!("{}\nchecked {checked}\n", record.hash);
        // Header values hold no newline (HTTP forbids it), so one line each.
        for (name, value) in [
            ("etag", &record.validators.etag),
            ("last-modified", &record.validators.last_modified),
        ] {
            if let Some(value) = value.as_deref().filter(|v| !v.contains('\n')) {
                content.push_str(&format!("{name} {value}\n"));
            }
        }
        write_atomically(
            &self.dir.join(URLS),
            &url_file_name(url),
            &[content.as_bytes()],
        )
    }

    /// What `url` last served, if recorded. A record from before
    /// validators were kept (a hash alone) reads as checked long ago.
    pub(super) fn url_record(&self, url: &str) -> Option<UrlRecord> {
        let path = self.dir.join(URLS).join(url_file_name(url));
        let bytes = read_if_present(&path)?;
        let record = std::str::from_utf8(&bytes).ok().and_then(UrlRecord::parse);
        if record.is_none() {
            discard(&path, "it does not start with a sha256:<hex> hash");
        }
        record
    }

    /// Removes the modules, compiled code and URL records wafer wrote,
    /// and nothing else: only files in the cache's own subfolders whose
    /// names wafer gives, so a cache directory set by mistake to a folder
    /// with other content (`$HOME`, say) loses nothing else. What is left is
    /// listed in the report. Symbolic links are removed, never followed; a
    /// file another process writes meanwhile may survive.
    ///
    /// # Errors
    ///
    /// When a folder cannot be read or a file cannot be removed.
    pub fn clean(&self) -> io::Result<CleanReport> {
        let mut report = CleanReport::default();
        type IsOurs = fn(&str) -> bool;
        let owned: [(&str, IsOurs); 3] = [
            (MODULES, is_module_file_name),
            (COMPILED, is_compiled_file_name),
            (URLS, is_url_file_name),
        ];
        for (folder, is_ours) in owned {
            let folder = self.dir.join(folder);
            let entries = match fs::read_dir(&folder) {
                Ok(entries) => entries,
                Err(error) if error.kind() == io::ErrorKind::NotFound => continue,
                Err(error) => return Err(at(&folder, error)),
            };
            for entry in entries {
                let entry = entry.map_err(|error| at(&folder, error))?;
                let path = entry.path();
                let metadata = fs::symlink_metadata(&path).map_err(|error| at(&path, error))?;
                let name = entry.file_name();
                // Writes go through temporary files (`.tmp…`) in the same
                // folder; a process that died mid-write leaves one.
                let ours = name
                    .to_str()
                    .is_some_and(|name| is_ours(name) || name.starts_with(".tmp"));
                if metadata.is_dir() || !ours {
                    report.kept.push(path);
                    continue;
                }
                match fs::remove_file(&path) {
                    Ok(()) => {
                        report.files += 1;
                        report.bytes += metadata.len();
                    }
                    // Another process removed it first.
                    Err(error) if error.kind() == io::ErrorKind::NotFound => {}
                    Err(error) => return Err(at(&path, error)),
                }
            }
        }
        Ok(report)
    }
}

fn default_dir_from(var: impl Fn(&str) -> Option<OsString>) -> PathBuf {
    let set = |name: &str| {
        var(name)
            .filter(|value| !value.is_empty())
            .map(PathBuf::from)
    };
    if let Some(dir) = set("WAFER_CACHE_DIR") {
        return dir;
    }
    if let Some(dir) = set("XDG_CACHE_HOME").filter(|dir| dir.is_absolute()) {
        return dir.join("wafer");
    }
    if let Some(home) = set("HOME") {
        return home.join(".cache").join("wafer");
    }
    std::env::temp_dir().join("wafer-cache")
}

fn module_file_name(hash: &Sha256Hash) -> String {
    format!("{}.wasm", hash.hex())
}

/// Hashing the URL gives a fixed-length name that is safe on any file system
/// whatever the URL contains.
fn url_file_name(url: &str) -> String {
    Sha256Hash::of(url.as_bytes()).hex()
}

fn is_module_file_name(name: &str) -> bool {
    name.strip_suffix(".wasm").is_some_and(is_hex_digest)
}

fn is_url_file_name(name: &str) -> bool {
    is_hex_digest(name)
}

fn is_compiled_file_name(name: &str) -> bool {
    name.strip_suffix(".cwasm")
        .is_some_and(|key| compiled_file_name(key).is_ok())
}

fn is_hex_digest(text: &str) -> bool {
    text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit())
}

fn compiled_file_name(key: &str) -> io::Result<String> {
    let valid = !key.is_empty()
        && key.len() <= MAX_KEY_LEN
        // Also rules out `.` and `..`, and tempfile's `.tmp…` names.
        && !key.starts_with('.')
        && key
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'.' | b'_' | b'-'));
    if valid {
        Ok(format!("{key}.cwasm"))
    } else {
        Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "invalid compiled-cache key {key:?}: use 1 to {MAX_KEY_LEN} characters \
                 of A-Z a-z 0-9 . _ -, not starting with `.`"
            ),
        ))
    }
}

/// The payload hash and the header's length, if `bytes` starts with a
/// well-formed header.
fn split_compiled(bytes: &[u8]) -> Option<(Sha256Hash, usize)> {
    let newline = bytes
        .iter()
        .take(MAX_HEADER_LEN)
        .position(|&byte| byte == b'\n')?;
    let header = std::str::from_utf8(&bytes[..newline]).ok()?;
    let hash = header.strip_prefix(COMPILED_HEADER)?.parse().ok()?;
    Some((hash, newline + 1))
}

/// Creates `dir` if needed (mode 0700 on unix) and checks that it is
/// private.
fn make_private_dir(dir: &Path) -> io::Result<()> {
    if fs::metadata(dir).is_ok_and(|metadata| !metadata.is_dir()) {
        let error = io::Error::new(io::ErrorKind::AlreadyExists, "is a file, not a folder");
        return Err(at(dir, error));
    }
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir).map_err(|error| at(dir, error))?;
    check_private(dir).map_err(|error| at(dir, error))
}

/// A real directory (not a link), owned by this user, that nobody else
/// may write into.
#[cfg(unix)]
fn check_private(dir: &Path) -> io::Result<()> {
    use std::os::unix::fs::MetadataExt;
    let meta = fs::symlink_metadata(dir)?;
    // SAFETY: geteuid has no preconditions and cannot fail.
    let me = unsafe { libc::geteuid() };
    let refuse = |why: String| Err(io::Error::new(io::ErrorKind::PermissionDenied, why));
    if !meta.is_dir() {
        return refuse("not a directory (a cache folder may not be a link)".to_owned());
    }
    if meta.uid() != me {
        return refuse(format!(
            "owned by user {}, not by this user ({me}): another user could plant compiled code",
            meta.uid()
        ));
    }
    if meta.mode() & 0o022 != 0 {
        return refuse(format!(
            "mode {:o} lets other users write into it; `chmod 700` it or choose another folder",
            meta.mode() & 0o777
        ));
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_private(_dir: &Path) -> io::Result<()> {
    Ok(())
}

/// Writes `parts` to `folder/name` so that no reader ever sees a partial
/// file: concurrent writers of one name each rename a complete file into
/// place, and the last rename wins.
fn write_atomically(folder: &Path, name: &str, parts: &[&[u8]]) -> io::Result<()> {
    // Made again on every write: `clean` (maybe in another process) removes it.
    make_private_dir(folder)?;
    // The temporary file is in the same folder so the rename cannot cross
    // file systems; tempfile creates it with mode 0600 on unix.
    let mut file = tempfile::NamedTempFile::new_in(folder).map_err(|error| at(folder, error))?;
    for part in parts {
        file.write_all(part)
            .map_err(|error| at(file.path(), error))?;
    }
    let path = folder.join(name);
    file.persist(&path)
        .map_err(|error| at(&path, error.error))?;
    Ok(())
}

/// The most a cache file may hold: compiled code is larger than its
/// module, which is at most [`files::MAX_MODULE_BYTES`].
const MAX_CACHE_FILE_BYTES: u64 = 4 * files::MAX_MODULE_BYTES;

/// The file's content, or `None` if it is absent or unreadable (the cache
/// never fails a load: it only saves work).
fn read_if_present(path: &Path) -> Option<Vec<u8>> {
    match files::read(path, MAX_CACHE_FILE_BYTES, Accept::RegularFile) {
        Ok(bytes) => Some(bytes),
        Err(ReadError::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => None,
        Err(error) => {
            tracing::warn!(%error, "Cannot read cache file; ignoring it");
            None
        }
    }
}

fn discard(path: &Path, reason: &str) {
    tracing::warn!(file = %path.display(), reason, "Removing damaged cache file");
    if let Err(error) = fs::remove_file(path)
        && error.kind() != io::ErrorKind::NotFound
    {
        tracing::warn!(file = %path.display(), %error, "Cannot remove damaged cache file");
    }
}

/// Adds the path to an I/O error, whose own message never names the file.
fn at(path: &Path, error: io::Error) -> io::Error {
    io::Error::new(error.kind(), format!("{}: {error}", path.display()))
}

#[cfg(test)]
mod tests;
