//! Turning a registry file's YAML into values, safely.
//!
//! YAML aliases repeat what an anchor names: a 1 MB file whose 3,000
//! aliases each repeat a 1 MB anchor expands to 3 GB of values. Before
//! serde_norway builds anything, one pass over the file's events measures
//! each document as it would be expanded and refuses it past
//! [`MAX_EXPANDED_BYTES`]. The same pass finds keys written twice in one
//! mapping, which serde_norway would silently resolve to the last value.

use std::collections::{HashMap, HashSet};

use saphyr_parser::{Event, Parser};
use serde::Deserialize;
use serde_json::Value;

/// The most a registry document may expand to, its aliases replaced by
/// what they name: 32 MiB, counting each value's text and at least
/// [`NODE_BYTES`] per value.
pub const MAX_EXPANDED_BYTES: u64 = 32 << 20;

/// What one value costs at least in the expanded measure, whatever its
/// text: so that aliases of many small values count too.
const NODE_BYTES: u64 = 16;

/// A key written twice in one mapping.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct DuplicateKey {
    /// Where the mapping is: the keys and sequence indexes that lead to it
    /// from the document's top (`["entries", "2"]`).
    pub path: Vec<String>,
    /// The key.
    pub key: String,
    /// The 1-based line of its second appearance.
    pub line: usize,
}

impl DuplicateKey {
    /// The key's field name below the first `skip` path segments, dotted,
    /// with sequence indexes in brackets: `spec.metadata[2].name`.
    pub fn field(&self, skip: usize) -> String {
        let mut field = String::new();
        for segment in self.path.iter().skip(skip).chain([&self.key]) {
            if segment.parse::<usize>().is_ok() && segment != &self.key {
                field.push_str(&format!("[{segment}]"));
            } else {
                if !field.is_empty() {
                    field.push('.');
                }
                field.push_str(segment);
            }
        }
        field
    }

    /// Says what is wrong with it.
    pub fn message(&self) -> String {
        format!(
            "written twice (again on line {}): YAML would silently keep only the last value",
            self.line
        )
    }

    /// Whether it lies in the sequence item `path[..2] == [sequence, index]`.
    pub fn is_in_item(&self, sequence: &str, index: usize) -> bool {
        self.path.len() >= 2 && self.path[0] == sequence && self.path[1] == index.to_string()
    }
}

/// One YAML document of a file, with the duplicate keys found in it.
#[derive(Debug)]
pub(super) struct Document {
    pub value: Value,
    pub duplicates: Vec<DuplicateKey>,
}

/// Why a file's YAML was refused.
#[derive(Debug, thiserror::Error)]
pub(super) enum YamlError {
    #[error("not valid YAML: {0}")]
    Syntax(String),
    #[error(
        "its aliases expand to more than the limit of {} ({MAX_EXPANDED_BYTES} bytes)",
        bytesize::ByteSize::b(MAX_EXPANDED_BYTES).display().iec()
    )]
    TooLarge,
}

/// The documents of `text` (empty ones left out), each measured before
/// it is expanded.
pub(super) fn documents(text: &str) -> Result<Vec<Document>, YamlError> {
    let scans = scan(text)?;
    let mut documents = Vec::new();
    for (document, duplicates) in serde_norway::Deserializer::from_str(text).zip(scans) {
        match Value::deserialize(document) {
            Ok(Value::Null) => {}
            Ok(value) => documents.push(Document { value, duplicates }),
            Err(e) => return Err(YamlError::Syntax(e.to_string())),
        }
    }
    Ok(documents)
}

/// An open sequence or mapping during the scan.
struct Open {
    anchor: usize,
    /// The expanded size so far, to remember under `anchor`.
    bytes: u64,
    /// For a mapping: its keys so far, and whether the next value is a key.
    keys: Option<(HashSet<String>, bool)>,
    /// The key (or index) under which the parent holds this value.
    segment: String,
    /// For a sequence: the index of its next item.
    next_index: usize,
}

/// The duplicate keys of each document, or why the file is refused.
fn scan(text: &str) -> Result<Vec<Vec<DuplicateKey>>, YamlError> {
    let mut documents = Vec::new();
    let mut duplicates = Vec::new();
    let mut anchors: HashMap<usize, u64> = HashMap::new();
    let mut open: Vec<Open> = Vec::new();
    let mut expanded: u64 = 0;
    // The key under which the parent mapping will hold the next value.
    let mut pending_key: Option<String> = None;
    for event in Parser::new_from_str(text) {
        let (event, span) = event.map_err(|e| YamlError::Syntax(e.to_string()))?;
        let line = span.start.line();
        let (node_bytes, anchor, starts) = match &event {
            Event::DocumentStart(_) => {
                anchors.clear();
                expanded = 0;
                continue;
            }
            Event::DocumentEnd => {
                documents.push(std::mem::take(&mut duplicates));
                continue;
            }
            Event::Scalar(value, _, anchor, _) => {
                (NODE_BYTES.max(value.len() as u64), *anchor, None)
            }
            Event::Alias(anchor) => (anchors.get(anchor).copied().unwrap_or(0), 0, None),
            Event::SequenceStart(anchor, _) => (NODE_BYTES, *anchor, Some(false)),
            Event::MappingStart(anchor, _) => (NODE_BYTES, *anchor, Some(true)),
            Event::SequenceEnd | Event::MappingEnd => {
                let Some(closed) = open.pop() else { continue };
                if closed.anchor != 0 {
                    anchors.insert(closed.anchor, closed.bytes);
                }
                if let Some(parent) = open.last_mut() {
                    parent.bytes = parent.bytes.saturating_add(closed.bytes);
                }
                continue;
            }
            _ => continue,
        };
        expanded = expanded.saturating_add(node_bytes);
        if expanded > MAX_EXPANDED_BYTES {
            return Err(YamlError::TooLarge);
        }
        // Where this value sits in its parent, and whether it is a key.
        let mut is_key = false;
        let mut segment = String::new();
        if let Some(parent) = open.last_mut() {
            match &mut parent.keys {
                Some((keys, expects_key)) => {
                    is_key = *expects_key;
                    *expects_key = !*expects_key;
                    if is_key {
                        if let Event::Scalar(key, ..) = &event
                            && !keys.insert(key.to_string())
                        {
                            duplicates.push(DuplicateKey {
                                path: open.iter().skip(1).map(|o| o.segment.clone()).collect(),
                                key: key.to_string(),
                                line,
                            });
                        }
                    } else {
                        segment = pending_key.take().unwrap_or_default();
                    }
                }
                None => {
                    segment = parent.next_index.to_string();
                    parent.next_index += 1;
                }
            }
        }
        if is_key {
            pending_key = match &event {
                Event::Scalar(key, ..) => Some(key.to_string()),
                _ => None,
            };
        }
        match starts {
            Some(is_mapping) => open.push(Open {
                anchor,
                bytes: node_bytes,
                keys: is_mapping.then(|| (HashSet::new(), true)),
                segment,
                next_index: 0,
            }),
            None => {
                if anchor != 0 {
                    anchors.insert(anchor, node_bytes);
                }
                if let Some(parent) = open.last_mut() {
                    parent.bytes = parent.bytes.saturating_add(node_bytes);
                }
            }
        }
    }
    Ok(documents)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aliases_are_measured_as_expanded() {
        let big = "x".repeat(1 << 20);
        let mut text = format!("a: &e0 {big}\nb:\n");
        for _ in 0..40 {
            text.push_str("  - *e0\n");
        }
        assert!(matches!(documents(&text), Err(YamlError::TooLarge)));
        // The same anchor named a few times stays well under the bound.
        let text = format!("a: &e0 {big}\nb: [*e0, *e0]\n");
        assert_eq!(documents(&text).unwrap().len(), 1);
    }

    #[test]
    fn nested_aliases_multiply() {
        // Each level doubles what it names: 2^30 scalars in the end.
        let mut text = String::from("l0: &l0 [x, x]\n");
        for level in 1..=30 {
            text.push_str(&format!(
                "l{level}: &l{level} [*l{}, *l{}]\n",
                level - 1,
                level - 1
            ));
        }
        assert!(matches!(documents(&text), Err(YamlError::TooLarge)));
    }

    #[test]
    fn duplicate_keys_are_found_with_where_they_are() {
        let text = "version: 1\nentries:\n  - name: a\n    hash: x\n    hash: y\nversion: 2\n";
        let documents = documents(text).unwrap();
        assert_eq!(
            documents[0].duplicates,
            [
                DuplicateKey {
                    path: vec!["entries".into(), "0".into()],
                    key: "hash".into(),
                    line: 5,
                },
                DuplicateKey {
                    path: vec![],
                    key: "version".into(),
                    line: 6,
                },
            ]
        );
    }

    #[test]
    fn duplicate_fields_are_named_as_problems_name_fields() {
        let duplicate = DuplicateKey {
            path: vec!["entries".into(), "3".into(), "pool".into()],
            key: "type".into(),
            line: 9,
        };
        assert_eq!(duplicate.field(0), "entries[3].pool.type");
        assert_eq!(duplicate.field(2), "pool.type");
        assert!(duplicate.is_in_item("entries", 3));
        assert!(!duplicate.is_in_item("entries", 2));
    }

    #[test]
    fn each_document_has_its_own_duplicates() {
        let documents = documents("a: 1\n---\nb: 1\nb: 2\n").unwrap();
        assert!(documents[0].duplicates.is_empty());
        assert_eq!(documents[1].duplicates[0].key, "b");
    }

    #[test]
    fn syntax_errors_are_reported() {
        assert!(matches!(documents("a: [1, 2\n"), Err(YamlError::Syntax(_))));
    }
}
