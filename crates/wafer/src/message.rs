//! A stream message: the input and output of the message ABIs (`benthos`,
//! later `fluentbit`) and the unit the pipeline engine moves.

use std::collections::BTreeMap;
use std::time::SystemTime;

use bytes::Bytes;

/// The metadata key of a record's Fluent Bit tag: what `abi: fluentbit`
/// hands its filter as the tag (the empty tag when a message has none).
pub const TAG_METADATA: &str = "tag";

/// A message's metadata: string keys and values, ordered by key so that
/// whatever renders it renders it the same way every time.
pub type Metadata = BTreeMap<String, String>;

/// One message of a stream: its bytes, its metadata, when it was made, and
/// the error a processor flagged it with, if any.
///
/// A flagged message is still a message: it goes on through the pipeline
/// (Benthos' default) unless the pipeline's error policy says otherwise.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// The content.
    pub bytes: Bytes,
    /// String keys and values.
    pub metadata: Metadata,
    /// When the input made the message.
    pub timestamp: SystemTime,
    /// Why a processor flagged it; `None` while nothing failed.
    pub error: Option<String>,
}

impl Message {
    /// A message of `bytes`, made now, without metadata or error.
    pub fn new(bytes: impl Into<Bytes>) -> Message {
        Message {
            bytes: bytes.into(),
            metadata: Metadata::new(),
            timestamp: SystemTime::now(),
            error: None,
        }
    }

    /// The message with metadata `key` set to `value`.
    pub fn with_meta(mut self, key: impl Into<String>, value: impl Into<String>) -> Message {
        self.metadata.insert(key.into(), value.into());
        self
    }

    /// Flags the message with `error` (a later error replaces an earlier
    /// one, as in Benthos).
    pub fn flag(&mut self, error: impl Into<String>) {
        self.error = Some(error.into());
    }
}
