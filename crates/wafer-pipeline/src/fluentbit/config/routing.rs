//! Fluent Bit's routing rules, as `src/flb_router.c` applies them to an
//! input's tag: `Match` is a pattern where `*` stands for any run of
//! characters (everything else is literal and case-sensitive);
//! `Match_Regex` is a regular expression that must match a non-empty
//! start of the tag (Onigmo's `onig_match` at offset 0). A plugin with
//! both matches when either does.

use regex::Regex;

/// A filter's or an output's rule.
#[derive(Debug, Clone, Default)]
pub(super) struct Rule {
    /// `Match`.
    pub pattern: Option<String>,
    /// `Match_Regex`, anchored at the start of the tag.
    pub regex: Option<Regex>,
}

impl Rule {
    /// A rule from `Match` and `Match_Regex`.
    ///
    /// # Errors
    ///
    /// `Match_Regex` is not a valid regular expression.
    pub fn new(pattern: Option<&str>, regex: Option<&str>) -> Result<Rule, String> {
        let regex = regex
            .map(|r| {
                // Onigmo's syntax, as Fluent Bit compiles it.
                Regex::new(&format!("^(?:{})", crate::parsers::onigmo_to_regex(r)))
                    .map_err(|e| format!("not a valid regular expression: {e}"))
            })
            .transpose()?;
        Ok(Rule {
            pattern: pattern.map(str::to_string),
            regex,
        })
    }

    /// Whether the rule has anything to match with: Fluent Bit leaves a
    /// filter or output without one out (with a warning).
    pub fn is_empty(&self) -> bool {
        self.pattern.is_none() && self.regex.is_none()
    }

    /// Whether `tag` is routed by this rule.
    pub fn matches(&self, tag: &str) -> bool {
        let by_regex = self
            .regex
            .as_ref()
            .and_then(|r| r.find(tag))
            .is_some_and(|m| m.start() == 0 && !m.is_empty());
        by_regex
            || self
                .pattern
                .as_deref()
                .is_some_and(|pattern| wildcard(tag.as_bytes(), pattern.as_bytes()))
    }
}

/// `flb_router_match`'s wildcard match: `*` is any run (empty too), the
/// rest must be equal byte for byte.
fn wildcard(tag: &[u8], pattern: &[u8]) -> bool {
    match pattern.split_first() {
        None => tag.is_empty(),
        Some((b'*', _)) => {
            let rest = trim_stars(pattern);
            if rest.is_empty() {
                return true;
            }
            // Try every place where the next literal byte occurs.
            (0..tag.len())
                .filter(|&i| tag[i] == rest[0])
                .any(|i| wildcard(&tag[i..], rest))
        }
        Some((&first, rest)) => tag.first() == Some(&first) && wildcard(&tag[1..], rest),
    }
}

fn trim_stars(pattern: &[u8]) -> &[u8] {
    let stars = pattern.iter().take_while(|&&b| b == b'*').count();
    &pattern[stars..]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matches(tag: &str, pattern: &str) -> bool {
        Rule::new(Some(pattern), None).unwrap().matches(tag)
    }

    #[test]
    fn wildcards_match_as_fluent_bit_matches_them() {
        assert!(matches("dummy.0", "*"));
        assert!(matches("dummy.0", "dummy.*"));
        assert!(matches("dummy.", "dummy.*"));
        assert!(!matches("dummy", "dummy.*"));
        assert!(matches("app.web.log", "app.*.log"));
        assert!(matches("app..log", "app.*.log"));
        assert!(!matches("app.web.txt", "app.*.log"));
        assert!(matches("a.b.c", "*.c"));
        assert!(matches("a.b.c", "a**c"));
        assert!(matches("exec.wasi.local", "exec.wasi.local"));
        assert!(!matches("exec.wasi.local", "Exec.wasi.local"));
        assert!(!matches("exec.wasi.local2", "exec.wasi.local"));
        assert!(matches("", "*"));
        assert!(!matches("x", ""));
        // The star's next byte occurs early and late: backtracking finds it.
        assert!(matches("a.x.b.y", "a*.y"));
    }

    #[test]
    fn a_regex_matches_a_non_empty_start_of_the_tag() {
        let rule = Rule::new(None, Some(r"dum+y\.\d")).unwrap();
        assert!(rule.matches("dummy.0"));
        assert!(rule.matches("dummy.0.more"));
        assert!(!rule.matches("my.dummy.0"));
        let empty = Rule::new(None, Some("x*")).unwrap();
        assert!(!empty.matches("abc"));
        let either = Rule::new(Some("cpu.*"), Some("^mem")).unwrap();
        assert!(either.matches("cpu.0") && either.matches("mem.0") && !either.matches("disk"));
        assert!(Rule::new(None, Some("(")).is_err());
        assert!(Rule::new(None, None).unwrap().is_empty());
    }
}
