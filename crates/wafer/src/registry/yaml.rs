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

/// How deep values may nest: serde_norway's own recursion limit.
const MAX_DEPTH: usize = 128;

/// Keys written twice that one file reports at most: the first are enough
/// to refuse its entries, and each costs memory.
const MAX_DUPLICATES: usize = 100;

/// One step from a document's top to a value: a mapping key or a sequence
/// index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Segment {
    Key(String),
    Index(usize),
}

/// A key written twice in one mapping.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct DuplicateKey {
    /// Where the mapping is, from the document's top.
    pub path: Vec<Segment>,
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
        for segment in &self.path[skip.min(self.path.len())..] {
            match segment {
                Segment::Index(i) => field.push_str(&format!("[{i}]")),
                Segment::Key(key) => {
                    if !field.is_empty() {
                        field.push('.');
                    }
                    field.push_str(key);
                }
            }
        }
        if !field.is_empty() {
            field.push('.');
        }
        field.push_str(&self.key);
        field
    }

    /// Says what is wrong with it.
    pub fn message(&self) -> String {
        format!(
            "written twice (again on line {}): YAML would silently keep only the last value",
            self.line
        )
    }

    /// Whether it lies in item `index` of the top-level sequence `key`.
    pub fn is_in_item(&self, key: &str, index: usize) -> bool {
        matches!(
            self.path.as_slice(),
            [Segment::Key(k), Segment::Index(i), ..] if k == key && *i == index
        )
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
        "it expands to more than the limit of {} ({MAX_EXPANDED_BYTES} bytes) once its aliases are replaced by what they name, counting at least {NODE_BYTES} bytes per value",
        bytesize::ByteSize::b(MAX_EXPANDED_BYTES).display().iec()
    )]
    TooLarge,
    #[error("values nest deeper than {MAX_DEPTH} levels")]
    TooDeep,
}

/// The documents of `text` (empty ones left out), the whole file measured
/// before anything is expanded.
pub(super) fn documents(text: &str) -> Result<Vec<Document>, YamlError> {
    let scans = scan(text)?;
    let expected = scans.len();
    let disagree = |parsed| {
        YamlError::Syntax(format!(
            "its documents cannot be told apart ({parsed} or {expected})"
        ))
    };
    let mut scans = scans.into_iter();
    let mut documents = Vec::new();
    let mut parsed = 0;
    // Lazily, stopping at the first error: after one, serde_norway's
    // iterator may go on yielding errors.
    for document in serde_norway::Deserializer::from_str(text) {
        parsed += 1;
        // An empty text is one empty document to serde_norway, none to the scan.
        if parsed > expected.max(1) {
            return Err(disagree(parsed));
        }
        let duplicates = scans.next().unwrap_or_default();
        match Value::deserialize(document) {
            Ok(Value::Null) => {}
            Ok(value) => documents.push(Document { value, duplicates }),
            Err(e) => return Err(YamlError::Syntax(e.to_string())),
        }
    }
    if parsed < expected {
        return Err(disagree(parsed));
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
    /// Where the parent holds this value (none for a document's top).
    segment: Option<Segment>,
    /// For a sequence: the index of its next item.
    next_index: usize,
}

/// The duplicate keys of each document, or why the file is refused.
fn scan(text: &str) -> Result<Vec<Vec<DuplicateKey>>, YamlError> {
    let mut documents = Vec::new();
    let mut duplicates = Vec::new();
    let mut reported = 0;
    let mut anchors: HashMap<usize, u64> = HashMap::new();
    let mut open: Vec<Open> = Vec::new();
    // Over the whole file: every document is kept in memory at once.
    let mut expanded: u64 = 0;
    // The key under which the parent mapping will hold the next value.
    let mut pending_key: Option<String> = None;
    for event in Parser::new_from_str(text) {
        let (event, span) = event.map_err(|e| YamlError::Syntax(e.to_string()))?;
        let line = span.start.line();
        let (node_bytes, anchor, starts) = match &event {
            Event::DocumentStart(_) => {
                // Anchors are per document.
                anchors.clear();
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
        let mut segment = None;
        if let Some(parent) = open.last_mut() {
            match &mut parent.keys {
                Some((keys, expects_key)) => {
                    is_key = *expects_key;
                    *expects_key = !*expects_key;
                    if is_key {
                        if let Event::Scalar(key, ..) = &event
                            && !keys.insert(key.to_string())
                            && reported < MAX_DUPLICATES
                        {
                            reported += 1;
                            duplicates.push(DuplicateKey {
                                path: open.iter().filter_map(|o| o.segment.clone()).collect(),
                                key: key.to_string(),
                                line,
                            });
                        }
                    } else {
                        segment = pending_key.take().map(Segment::Key);
                    }
                }
                None => {
                    segment = Some(Segment::Index(parent.next_index));
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
            Some(is_mapping) => {
                if open.len() == MAX_DEPTH {
                    return Err(YamlError::TooDeep);
                }
                open.push(Open {
                    anchor,
                    bytes: node_bytes,
                    keys: is_mapping.then(|| (HashSet::new(), true)),
                    segment,
                    next_index: 0,
                })
            }
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
                    path: vec![Segment::Key("entries".into()), Segment::Index(0)],
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
            path: vec![
                Segment::Key("entries".into()),
                Segment::Index(3),
                Segment::Key("7".into()),
            ],
            key: "1".into(),
            line: 9,
        };
        assert_eq!(duplicate.field(0), "entries[3].7.1");
        assert_eq!(duplicate.field(2), "7.1");
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
    fn the_bound_covers_the_whole_file_not_each_document() {
        let one = format!(
            "a: &a {}\nb: [{}]\n",
            "x".repeat(1000),
            vec!["*a"; 10_000].join(", ")
        );
        assert_eq!(documents(&one).unwrap().len(), 1);
        let many = vec![one; 4].join("---\n");
        assert!(matches!(documents(&many), Err(YamlError::TooLarge)));
    }

    #[test]
    fn deep_nesting_and_many_duplicates_are_bounded() {
        let deep = "- ".repeat(200) + "x\n";
        assert!(matches!(documents(&deep), Err(YamlError::TooDeep)));
        let keys = vec!["a: 1"; 5000].join(", ");
        let text = format!("{}{{{keys}}}\n", "- ".repeat(100));
        match documents(&text) {
            Ok(documents) => assert_eq!(documents[0].duplicates.len(), MAX_DUPLICATES),
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn syntax_errors_are_reported() {
        assert!(matches!(documents("a: [1, 2\n"), Err(YamlError::Syntax(_))));
    }
}
