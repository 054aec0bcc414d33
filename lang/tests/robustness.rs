//! The parser never panics: thousands of deterministic mutations of a real
//! policy (byte deletions, insertions of grammar-relevant characters,
//! truncations) each parse to a tree or to diagnostics with valid spans.

use clsf_lang::{FileId, parse};

const POLICY: &str = include_str!("../../examples/quickstart/policy/quickstart.clsf");

/// xorshift64*: deterministic, so a failure reproduces.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

const PIECES: &[&str] = &[
    "{",
    "}",
    "(",
    ")",
    ":",
    ";",
    "<",
    "<=",
    ">=",
    "==",
    "\"",
    "\"\"",
    "/*",
    "*/",
    "//",
    "\n",
    "mask",
    "table",
    "rule",
    "group",
    "labels",
    "é",
    "\u{0}",
    "99999999999999999999999",
    ".",
    "-",
    "_",
];

fn mutate(rng: &mut Rng, text: &str) -> String {
    let mut chars: Vec<char> = text.chars().collect();
    for _ in 0..=rng.below(4) {
        if chars.is_empty() {
            break;
        }
        let at = rng.below(chars.len());
        match rng.below(4) {
            0 => {
                chars.remove(at);
            }
            1 => {
                let piece = PIECES[rng.below(PIECES.len())];
                for (i, c) in piece.chars().enumerate() {
                    chars.insert(at + i, c);
                }
            }
            2 => chars.truncate(at),
            _ => {
                let end = (at + rng.below(20)).min(chars.len());
                chars.drain(at..end);
            }
        }
    }
    chars.into_iter().collect()
}

#[test]
fn mutated_policies_parse_or_report_with_valid_spans() {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut errors = 0;
    for _ in 0..3000 {
        let text = mutate(&mut rng, POLICY);
        let res = parse(FileId(0), &text);
        for d in &res.diagnostics {
            errors += 1;
            let (span, _) = d.primary.as_ref().expect("parse errors have a location");
            assert!(
                span.start <= span.end && span.end <= text.len(),
                "bad span {span:?} for {text:?}"
            );
            assert!(
                text.is_char_boundary(span.start) && text.is_char_boundary(span.end),
                "span splits a character in {text:?}"
            );
        }
    }
    // The mutations must actually exercise the error paths.
    assert!(errors > 1000, "only {errors} mutations failed to parse");
}

#[test]
fn the_quickstart_policy_parses_cleanly() {
    let res = parse(FileId(0), POLICY);
    assert!(res.diagnostics.is_empty(), "{:?}", res.diagnostics);
    assert_eq!(res.file.items.len(), 8);
}
