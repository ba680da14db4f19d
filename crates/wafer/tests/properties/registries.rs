//! Registries: generated valid ones load whole; mutated ones and alias
//! bombs load or are refused, never panic, and stay within memory bounds.

use proptest::prelude::*;
use wafer::{ProblemKind, Registry};

use super::alloc::peak_during;

/// Loading any registry file of a few KiB stays well below this; a file
/// whose aliases expand near the 32 MiB bound needs a few times that.
const SMALL_FILE_PEAK: usize = 64 << 20;
const ALIAS_BOMB_PEAK: usize = 512 << 20;

fn name() -> impl Strategy<Value = String> {
    "[a-z][a-z0-9_-]{0,8}"
}

/// One valid entry's YAML, under `name`.
fn entry(name: String) -> impl Strategy<Value = String> {
    prop_oneof![
        Just(format!("  - name: {name}\n    kind: fs.directory\n    directory: .\n")),
        ("[A-Z][A-Z0-9_]{0,6}", proptest::option::of("[ -~&&[^'\\\\]]{0,12}")).prop_map({
            let name = name.clone();
            move |(variable, default)| {
                let default = default
                    .map(|d| format!("    default: '{}'\n", d.replace('\'', "''")))
                    .unwrap_or_default();
                format!("  - name: {name}\n    kind: env.variable\n    variable: {variable}\n{default}")
            }
        }),
        (
            prop_oneof![Just("inline"), Just("lazy"), Just("static"), Just("adaptive")],
            1u32..50,
            proptest::option::of(1u64..100_000),
        )
            .prop_map(move |(pool, size, limit)| {
                let size_field = if pool == "static" { "workers" } else { "max_size" };
                let limits = limit
                    .map(|ms| format!("    limits:\n      max_execution_ms: {ms}\n"))
                    .unwrap_or_default();
                format!(
                    "  - name: {name}\n    kind: function.wat\n    source: '(module (func (export \"add\") (param i32 i32) (result i32) local.get 0 local.get 1 i32.add))'\n    wit: \"add: func(a: s32, b: s32) -> s32;\"\n    method: add\n    pool:\n      type: {pool}\n      {size_field}: {size}\n{limits}"
                )
            }),
    ]
}

/// A valid registry file and the ids it declares.
fn registry() -> impl Strategy<Value = (String, Vec<String>)> {
    (
        "[a-z]{1,6}(\\.[a-z]{1,6}){0,2}",
        proptest::collection::btree_set(name(), 0..12),
    )
        .prop_flat_map(|(namespace, names)| {
            let ids: Vec<String> = names.iter().map(|n| format!("{namespace}:{n}")).collect();
            let entries: Vec<_> = names.into_iter().map(entry).collect();
            entries.prop_map(move |entries| {
                let text = format!(
                    "version: \"1.0\"\nnamespace: {namespace}\nentries:\n{}",
                    entries.concat()
                );
                (text, ids.clone())
            })
        })
}

/// Tokens that YAML gives meaning to, for mutations to insert.
const TOKENS: &[&str] = &[
    "&a ",
    "*a",
    "<<: *a",
    ": ",
    "- ",
    "[",
    "]",
    "{",
    "}",
    "\n",
    "  ",
    "\"",
    "'",
    "!!binary ",
    "\t",
    "#",
    "---\n",
    "? ",
    "|",
    ">",
    "%YAML 1.2\n",
    "\u{0}",
    "\u{1b}",
    "é",
    "\\",
];

#[derive(Debug, Clone)]
enum Edit {
    Delete(usize, usize),
    Insert(usize, &'static str),
    Duplicate(usize, usize),
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        (any::<usize>(), 1usize..40).prop_map(|(at, len)| Edit::Delete(at, len)),
        (any::<usize>(), proptest::sample::select(TOKENS)).prop_map(|(at, t)| Edit::Insert(at, t)),
        (any::<usize>(), 1usize..200).prop_map(|(at, len)| Edit::Duplicate(at, len)),
    ]
}

/// `at` moved back to a char boundary of `text`.
fn boundary(text: &str, at: usize) -> usize {
    let mut at = at % (text.len() + 1);
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    at
}

fn apply(mut text: String, edits: &[Edit]) -> String {
    for edit in edits {
        match *edit {
            Edit::Delete(at, len) => {
                let start = boundary(&text, at);
                let end = boundary(&text, start + len.min(text.len() - start));
                text.replace_range(start..end, "");
            }
            Edit::Insert(at, token) => {
                let at = boundary(&text, at);
                text.insert_str(at, token);
            }
            Edit::Duplicate(at, len) => {
                let start = boundary(&text, at);
                let end = boundary(&text, start + len.min(text.len() - start));
                let copy = text[start..end].to_string();
                text.insert_str(end, &copy);
            }
        }
    }
    text
}

proptest! {
    #![proptest_config(super::config())]

    #[test]
    fn valid_registries_load_whole((text, ids) in registry()) {
        let (registry, peak) = peak_during(|| Registry::from_yaml("prop.yaml", &text));
        prop_assert!(registry.problems().is_empty(), "{:?}\n{text}", registry.problems());
        for id in &ids {
            prop_assert!(registry.get(id).is_some(), "{id} missing\n{text}");
        }
        prop_assert!(peak < SMALL_FILE_PEAK, "{peak} bytes for {} bytes of YAML", text.len());
    }

    #[test]
    fn mutated_registries_never_panic(
        (text, _) in registry(),
        edits in proptest::collection::vec(edit(), 1..8),
    ) {
        let text = apply(text, &edits);
        let (registry, peak) = peak_during(|| Registry::from_yaml("prop.yaml", &text));
        // Whatever loaded is consistent: each entry is found by its id.
        for entry in registry.entries() {
            prop_assert!(registry.get(&entry.id).is_some());
        }
        prop_assert!(peak < SMALL_FILE_PEAK, "{peak} bytes for {} bytes of YAML:\n{text}", text.len());
    }

    /// Each level names the one before `fan_out` times: the document
    /// expands to `fan_out ^ levels` copies of the base.
    #[test]
    fn alias_bombs_are_refused_within_bounded_memory(
        levels in 1u32..30,
        fan_out in 1usize..12,
        base_len in 1usize..100_000,
        in_entry in any::<bool>(),
    ) {
        let mut text = format!("version: \"1.0\"\nnamespace: b\nmeta:\n  l0: &l0 \"{}\"\n", "x".repeat(base_len));
        for level in 1..=levels {
            let refs = vec![format!("*l{}", level - 1); fan_out].join(", ");
            text.push_str(&format!("  l{level}: &l{level} [{refs}]\n"));
        }
        let last = format!("*l{levels}");
        text.push_str("entries:\n");
        if in_entry {
            text.push_str(&format!("  - name: e\n    kind: env.variable\n    variable: X\n    meta: {last}\n"));
        }
        let (registry, peak) = peak_during(|| Registry::from_yaml("bomb.yaml", &text));
        let expanded = (fan_out as f64).powi(levels as i32) * base_len.max(16) as f64;
        if expanded > 64.0 * (1 << 20) as f64 {
            prop_assert!(
                registry.problems().iter().any(|p| p.kind == ProblemKind::TooLarge),
                "{expanded} bytes expanded, yet: {:?}", registry.problems()
            );
        }
        prop_assert!(peak < ALIAS_BOMB_PEAK, "{peak} bytes (expands to {expanded})");
    }
}
