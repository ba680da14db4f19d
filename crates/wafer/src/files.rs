//! Reading files with a bound: every file wafer reads goes through here.
//!
//! A registry, a module path or a command-line argument can name anything:
//! `/dev/zero` never ends, a FIFO blocks until someone writes to it, a
//! directory is no file at all. [`read`] refuses what is not a regular file
//! when the caller needs one, never blocks on opening, and stops at a cap,
//! so a mistaken or hostile path costs at most the cap in memory.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use crate::error::ProblemKind;

/// The largest module file wafer reads (an entry's `limits.max_module_bytes`
/// may say otherwise): 256 MiB, as for downloads
/// ([`crate::sources::DEFAULT_MAX_MODULE_BYTES`]).
pub const MAX_MODULE_BYTES: u64 = crate::sources::DEFAULT_MAX_MODULE_BYTES;

/// The largest registry file (YAML) wafer reads: 16 MiB.
pub const MAX_REGISTRY_FILE_BYTES: u64 = 16 << 20;

/// What a read accepts besides regular files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accept {
    /// Regular files only (modules, sources, registry files): a FIFO or a
    /// device is refused before anything is read.
    RegularFile,
    /// Anything that can be read, such as a FIFO or `/dev/stdin` (the
    /// arguments and stdin of a call), still bounded by the cap.
    Stream,
}

/// Why a file could not be read.
///
/// `Display` names the file: `/dev/zero is a device, not a regular file`.
#[derive(Debug)]
pub enum ReadError {
    /// Opening or reading failed.
    Io {
        /// The file.
        path: PathBuf,
        /// The operating system's reason.
        source: io::Error,
    },
    /// The path names a directory, a FIFO, a device or a socket.
    NotAFile {
        /// The file.
        path: PathBuf,
        /// What it is instead, such as "a directory".
        what: &'static str,
    },
    /// The file holds more than the cap.
    TooLarge {
        /// The file.
        path: PathBuf,
        /// The cap, in bytes.
        limit: u64,
    },
}

impl ReadError {
    /// The kind a registry problem about this file has.
    pub fn problem_kind(&self) -> ProblemKind {
        match self {
            ReadError::Io { .. } | ReadError::NotAFile { .. } => ProblemKind::Unreadable,
            ReadError::TooLarge { .. } => ProblemKind::TooLarge,
        }
    }

    /// The file the error is about.
    pub fn path(&self) -> &Path {
        match self {
            ReadError::Io { path, .. }
            | ReadError::NotAFile { path, .. }
            | ReadError::TooLarge { path, .. } => path,
        }
    }

    /// What is wrong, without the file's name (for messages placed under
    /// the file already).
    pub fn reason(&self) -> String {
        match self {
            ReadError::Io { source, .. } => format!("cannot read: {source}"),
            ReadError::NotAFile { what, .. } => format!("is {what}, not a regular file"),
            ReadError::TooLarge { limit, .. } => format!(
                "is larger than the limit of {limit} bytes ({})",
                bytesize::ByteSize::b(*limit).display().iec()
            ),
        }
    }
}

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let path = self.path().display();
        match self {
            ReadError::Io { source, .. } => write!(f, "cannot read {path}: {source}"),
            _ => write!(f, "{path} {}", self.reason()),
        }
    }
}

/// The I/O error is part of the message, not a separate cause: one line
/// says it all.
impl std::error::Error for ReadError {}

/// Reads the whole file at `path`, refusing it past `limit` bytes and, for
/// [`Accept::RegularFile`], when it is not a regular file.
///
/// # Errors
///
/// See [`ReadError`]; every message names the file.
pub fn read(path: &Path, limit: u64, accept: Accept) -> Result<Vec<u8>, ReadError> {
    let io_error = |source| ReadError::Io {
        path: path.to_path_buf(),
        source,
    };
    if accept == Accept::RegularFile {
        // Checked before opening too: opening some devices does something.
        let metadata = std::fs::metadata(path).map_err(io_error)?;
        refuse_unless_accepted(path, &metadata.file_type(), accept)?;
    }
    let file = open(path, accept).map_err(io_error)?;
    // Checked again on what was opened: the path may have changed since.
    let metadata = file.metadata().map_err(io_error)?;
    refuse_unless_accepted(path, &metadata.file_type(), accept)?;
    if metadata.is_file() && metadata.len() > limit {
        return Err(too_large(path, limit));
    }
    read_bounded(file, limit)
        .map_err(io_error)?
        .ok_or_else(|| too_large(path, limit))
}

fn refuse_unless_accepted(
    path: &Path,
    file_type: &std::fs::FileType,
    accept: Accept,
) -> Result<(), ReadError> {
    if file_type.is_dir() || (accept == Accept::RegularFile && !file_type.is_file()) {
        return Err(ReadError::NotAFile {
            path: path.to_path_buf(),
            what: describe(file_type),
        });
    }
    Ok(())
}

/// Reads `source` to its end, refusing it past `limit` bytes; `name` stands
/// for it in errors (such as `-` for stdin).
///
/// # Errors
///
/// When reading fails or the stream holds more than `limit` bytes.
pub fn read_stream(source: impl Read, name: &Path, limit: u64) -> Result<Vec<u8>, ReadError> {
    read_bounded(source, limit)
        .map_err(|source| ReadError::Io {
            path: name.to_path_buf(),
            source,
        })?
        .ok_or_else(|| too_large(name, limit))
}

/// Reads at most `limit + 1` bytes; `None` when there were more than
/// `limit`.
pub(crate) fn read_bounded(source: impl Read, limit: u64) -> io::Result<Option<Vec<u8>>> {
    let mut bytes = Vec::new();
    source
        .take(limit.saturating_add(1))
        .read_to_end(&mut bytes)?;
    Ok((bytes.len() as u64 <= limit).then_some(bytes))
}

fn too_large(path: &Path, limit: u64) -> ReadError {
    ReadError::TooLarge {
        path: path.to_path_buf(),
        limit,
    }
}

/// Opens for reading. A file that must be regular is opened without
/// blocking: had it become a FIFO since it was checked, opening it would
/// wait for a writer. A stream (a FIFO given on purpose) is opened as any
/// reader opens it, waiting for its writer.
fn open(path: &Path, accept: Accept) -> io::Result<File> {
    let mut options = OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    if accept == Accept::RegularFile {
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(libc::O_NONBLOCK);
    }
    #[cfg(not(unix))]
    let _ = accept;
    options.open(path)
}

fn describe(file_type: &std::fs::FileType) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if file_type.is_fifo() {
            return "a FIFO";
        }
        if file_type.is_char_device() || file_type.is_block_device() {
            return "a device";
        }
        if file_type.is_socket() {
            return "a socket";
        }
    }
    if file_type.is_dir() {
        "a directory"
    } else {
        "not a regular file"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endless_devices_are_refused_or_capped() {
        let zero = Path::new("/dev/zero");
        let refused = read(zero, 1024, Accept::RegularFile).unwrap_err();
        assert!(
            matches!(
                refused,
                ReadError::NotAFile {
                    what: "a device",
                    ..
                }
            ),
            "{refused}"
        );
        let capped = read(zero, 1024, Accept::Stream).unwrap_err();
        assert!(
            matches!(capped, ReadError::TooLarge { limit: 1024, .. }),
            "{capped}"
        );
        assert_eq!(
            capped.to_string(),
            "/dev/zero is larger than the limit of 1024 bytes (1.0 KiB)"
        );
    }

    #[test]
    fn a_fifo_is_refused_without_waiting_for_a_writer() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("f.wat");
        let c_path = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0);
        let refused = read(&fifo, 1024, Accept::RegularFile).unwrap_err();
        assert!(
            matches!(refused, ReadError::NotAFile { what: "a FIFO", .. }),
            "{refused}"
        );
    }

    #[test]
    fn a_fifo_given_as_a_stream_waits_for_its_writer() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("in");
        let c_path = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0);
        let writer = {
            let fifo = fifo.clone();
            std::thread::spawn(move || std::fs::write(fifo, b"[1, 2]").unwrap())
        };
        assert_eq!(read(&fifo, 1024, Accept::Stream).unwrap(), b"[1, 2]");
        writer.join().unwrap();
    }

    #[test]
    fn a_file_at_the_cap_is_read_and_one_past_it_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f");
        std::fs::write(&file, [7u8; 10]).unwrap();
        assert_eq!(read(&file, 10, Accept::RegularFile).unwrap().len(), 10);
        assert!(matches!(
            read(&file, 9, Accept::RegularFile),
            Err(ReadError::TooLarge { limit: 9, .. })
        ));
        assert!(matches!(
            read(dir.path(), 10, Accept::Stream),
            Err(ReadError::NotAFile {
                what: "a directory",
                ..
            })
        ));
    }
}
