//! Statement shapes: a query text with its literals taken out, so that
//! `… WHERE id = 10` and `… WHERE id = 11` share one decision.
//!
//! A decision may be reused across literals only when it cannot depend on
//! them. The engine decides relations, columns and functions by name and
//! settings by identifier, never by a literal's value — except where a
//! setting is named or valued by a string (`current_setting('…')`,
//! `set_config('…', '…')`, `search_path = ''`): texts naming those words
//! get no shape ([`LITERAL_DECIDED`]) — and where a statement has no rows
//! by its literals (`LIMIT 0`, `WHERE 1 = 0`), whose decision the engine
//! does not offer for reuse. Rewrites splice at
//! relation names. So a shape's decision is reused only for single
//! statements that were forwarded or rewritten (denials are recomputed)
//! and whose rewrites start and end on token boundaries; the rewritten text
//! is rebuilt around the new literals token by token.

use std::iter::Peekable;
use std::str::CharIndices;

use crate::rewrite::{self, Edit};
use crate::verdict::{Decision, Verdict};

/// Words whose statements are decided on a literal's value: a text that
/// names one (as a name or a quoted identifier, in any case) has no shape.
pub const LITERAL_DECIDED: &[&str] = &["current_setting", "set_config", "search_path"];

fn literal_decided(word: &str) -> bool {
    LITERAL_DECIDED.iter().any(|w| w.eq_ignore_ascii_case(word))
}

/// Longer texts are not shaped (rarely repeated).
const MAX_TEXT: usize = 8192;

/// A text's shape key and the byte range of each of its tokens (comments
/// and whitespace left out).
#[derive(Debug)]
pub struct Shape {
    /// The tokens, literals replaced by a marker: equal keys mean the texts
    /// differ at most in literal values, whitespace and comments.
    pub key: String,
    /// Byte ranges of the tokens, in order.
    spans: Vec<(usize, usize)>,
    /// Indices (into `spans`) of the literal tokens.
    literals: Vec<usize>,
}

/// Characters PostgreSQL builds operators from. A run of them without
/// whitespace is one token here, so `<=` and `< =` get different keys.
fn is_operator_char(c: char) -> bool {
    matches!(
        c,
        '+' | '-'
            | '*'
            | '/'
            | '<'
            | '>'
            | '='
            | '~'
            | '!'
            | '@'
            | '#'
            | '%'
            | '^'
            | '&'
            | '|'
            | '`'
            | '?'
            | ':'
    )
}

fn is_ident_start(c: char) -> bool {
    c.is_alphabetic() || c == '_' || !c.is_ascii()
}

fn is_ident_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_' || c == '$' || !c.is_ascii()
}

/// The shape of `text`, or `None` when the text is too long or holds
/// something this scanner does not classify with certainty (prefixed
/// strings such as `E'…'`, dollar quotes, a number run into a name, an
/// unterminated quote or comment): such texts are decided afresh every time.
///
/// Scanned by hand rather than with sqlparser's tokenizer because this runs
/// for every statement the exact-text cache misses, and finding the shape
/// must cost much less than the analysis it saves. The scanner only needs
/// to be conservative: anything it keeps in the key verbatim can only make
/// two texts differ.
pub fn shape(text: &str) -> Option<Shape> {
    if text.len() > MAX_TEXT {
        return None;
    }
    let bytes = text.as_bytes();
    let mut key = String::with_capacity(text.len());
    let mut spans = Vec::with_capacity(text.len() / 3);
    let mut literals = Vec::new();
    let mut chars = text.char_indices().peekable();
    while let Some(&(i, c)) = chars.peek() {
        let next_byte = bytes.get(i + 1).copied();
        if c.is_whitespace() {
            chars.next();
            continue;
        }
        if c == '-' && next_byte == Some(b'-') {
            // A line comment.
            for (_, c) in chars.by_ref() {
                if c == '\n' {
                    break;
                }
            }
            continue;
        }
        if c == '/' && next_byte == Some(b'*') {
            // A block comment; PostgreSQL nests them.
            chars.next();
            chars.next();
            let mut depth = 1;
            let mut prev = '\0';
            while depth > 0 {
                let (_, c) = chars.next()?;
                if prev == '/' && c == '*' {
                    depth += 1;
                    prev = '\0';
                } else if prev == '*' && c == '/' {
                    depth -= 1;
                    prev = '\0';
                } else {
                    prev = c;
                }
            }
            continue;
        }
        let start = i;
        let end;
        if c == '\'' {
            // E'…', B'…', X'…', N'…': a prefix glued to the quote changes
            // how the body is read (and, for E, where it ends).
            if text[..start].ends_with(is_ident_char) {
                return None;
            }
            end = quoted_end(&mut chars, '\'')?;
            literals.push(spans.len());
            key.push('\u{1}');
        } else if c.is_ascii_digit() {
            if text[..start].ends_with(|p: char| is_ident_char(p) || p == '.') {
                return None;
            }
            // ASCII only: digits, an optional fraction, an optional
            // exponent that must have digits.
            let digits = |mut k: usize| {
                while bytes.get(k).is_some_and(u8::is_ascii_digit) {
                    k += 1;
                }
                k
            };
            let mut k = digits(start);
            if bytes.get(k) == Some(&b'.') {
                k = digits(k + 1);
            }
            if matches!(bytes.get(k), Some(b'e' | b'E')) {
                k += 1;
                if matches!(bytes.get(k), Some(b'+' | b'-')) {
                    k += 1;
                }
                let first = k;
                k = digits(k);
                if k == first {
                    return None;
                }
            }
            if bytes.get(k).is_some_and(|&n| {
                n == b'.' || n == b'$' || n == b'_' || n.is_ascii_alphanumeric() || n >= 0x80
            }) {
                return None;
            }
            while chars.peek().is_some_and(|&(j, _)| j < k) {
                chars.next();
            }
            end = k;
            literals.push(spans.len());
            key.push('\u{1}');
        } else if c == '"' {
            end = quoted_end(&mut chars, '"')?;
            if literal_decided(&text[start + 1..end - 1]) {
                return None;
            }
            key.push_str(&text[start..end]);
            key.push('\0');
        } else if c == '$' {
            // `$1` is a parameter; `$tag$…$tag$` a dollar-quoted string.
            chars.next();
            let mut e = start + 1;
            while let Some(&(j, d)) = chars.peek() {
                if !d.is_ascii_digit() {
                    break;
                }
                chars.next();
                e = j + 1;
            }
            if e == start + 1 || chars.peek().is_some_and(|&(_, n)| is_ident_char(n)) {
                return None;
            }
            end = e;
            key.push_str(&text[start..end]);
            key.push('\0');
        } else if is_ident_start(c) {
            let mut e = start;
            while let Some(&(j, d)) = chars.peek() {
                if !is_ident_char(d) {
                    break;
                }
                chars.next();
                e = j + d.len_utf8();
            }
            end = e;
            if literal_decided(&text[start..end]) {
                return None;
            }
            key.push_str(&text[start..end]);
            key.push('\0');
        } else if is_operator_char(c) {
            let mut e = start;
            while let Some(&(j, d)) = chars.peek() {
                // A comment start ends the operator, as in PostgreSQL.
                let two = bytes.get(j..j + 2);
                if !is_operator_char(d) || (j > start && matches!(two, Some(b"--" | b"/*"))) {
                    break;
                }
                chars.next();
                e = j + 1;
            }
            end = e;
            key.push_str(&text[start..end]);
            key.push('\0');
        } else {
            chars.next();
            end = start + c.len_utf8();
            key.push_str(&text[start..end]);
            key.push('\0');
        }
        spans.push((start, end));
    }
    Some(Shape {
        key,
        spans,
        literals,
    })
}

/// Consumes a string or quoted name that starts at the next character
/// (`quote`), where a doubled quote stands for itself; the byte offset
/// just past its closing quote, or `None` if it is not closed.
fn quoted_end(chars: &mut Peekable<CharIndices<'_>>, quote: char) -> Option<usize> {
    chars.next();
    loop {
        let (j, c) = chars.next()?;
        if c == quote {
            if chars.peek().is_some_and(|&(_, n)| n == quote) {
                chars.next();
                continue;
            }
            return Some(j + 1);
        }
    }
}

/// A cached decision with its rewrites expressed in token positions.
#[derive(Debug)]
pub struct ShapeEntry {
    decision: Decision,
    /// (first token, last token, replacement), in the order of the text.
    edits: Vec<(usize, usize, String)>,
    /// The replacements' length, to size the rewritten text once.
    extra: usize,
}

impl Shape {
    /// The entry to remember for `decision` (made for this text with
    /// `edits`), when it may be reused for other literals.
    pub fn entry(&self, decision: &Decision, edits: &[Edit]) -> Option<ShapeEntry> {
        if self.literals.is_empty() || decision.statements.len() != 1 {
            return None;
        }
        if !matches!(decision.verdict, Verdict::Forward | Verdict::Rewrite(_)) {
            return None;
        }
        let mut positions = Vec::with_capacity(edits.len());
        for e in edits {
            let first = self.spans.iter().position(|s| s.0 == e.start)?;
            let last = self.spans.iter().position(|s| s.1 == e.end)?;
            // A replacement that covers a literal was made from its value
            // (a COPY rebuilt as a query keeps its options): not reusable.
            if self.literals.iter().any(|&i| (first..=last).contains(&i)) {
                return None;
            }
            positions.push((first, last, e.text.clone()));
        }
        positions.sort_by_key(|p| p.0);
        Some(ShapeEntry {
            decision: decision.clone(),
            extra: positions.iter().map(|p| p.2.len()).sum(),
            edits: positions,
        })
    }
}

impl ShapeEntry {
    /// The decision for `text`, which has this entry's shape `shape`.
    pub fn instantiate(&self, text: &str, shape: &Shape) -> Option<Decision> {
        let mut statements = self.decision.statements.clone();
        if let Some(report) = statements.first_mut() {
            report.text = text.to_owned();
        }
        let verdict = if self.edits.is_empty() {
            Verdict::Forward
        } else {
            // Same key, same tokens: a position out of range is a bug, and
            // the statement is then decided afresh.
            if self
                .edits
                .iter()
                .any(|&(_, last, _)| last >= shape.spans.len())
            {
                return None;
            }
            let edits = self.edits.iter().map(|(first, last, replacement)| {
                (
                    shape.spans[*first].0,
                    shape.spans[*last].1,
                    replacement.as_str(),
                )
            });
            Verdict::Rewrite(rewrite::splice_ordered(text, edits, self.extra)?)
        };
        Some(Decision {
            verdict,
            statements,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_whitespace_and_comments_do_not_change_the_shape() {
        let a = shape("SELECT a FROM t WHERE id = 10 AND s = 'x'").unwrap();
        let b = shape("SELECT  a FROM t -- note\n WHERE id = 123456 AND s = 'it''s'").unwrap();
        assert_eq!(a.key, b.key);
        let c = shape("SELECT b FROM t WHERE id = 10 AND s = 'x'").unwrap();
        assert_ne!(a.key, c.key);
        let d = shape("SELECT a FROM \"T\" WHERE id = 10 AND s = 'x'").unwrap();
        assert_ne!(a.key, d.key);
    }
}

#[cfg(test)]
mod scanner_tests {
    use super::shape;

    fn key(text: &str) -> String {
        shape(text)
            .unwrap_or_else(|| panic!("no shape for {text:?}"))
            .key
    }

    #[test]
    fn operators_keep_their_spacing_and_comments_end_them() {
        assert_ne!(key("SELECT a <= 1"), key("SELECT a < = 1"));
        assert_ne!(key("SELECT a - -1"), key("SELECT a --1\n"));
        assert_eq!(key("SELECT a+1"), key("SELECT a + 2"));
        assert_eq!(
            key("SELECT 1 /* a /* nested */ comment */ + 2"),
            key("SELECT 3 + 4")
        );
        assert_ne!(key("SELECT a::text"), key("SELECT a: :text"));
    }

    #[test]
    fn literals_of_every_plain_kind_are_masked() {
        assert_eq!(
            key("SELECT * FROM t WHERE a = 'x' AND b IN (1, 2.5, 3e4) AND c = 'it''s'"),
            key("SELECT * FROM t WHERE a = '' AND b IN (9, 0.1, 1E-2) AND c = 'y'")
        );
        assert_ne!(key("SELECT $1"), key("SELECT $2"));
        assert_ne!(key("SELECT \"a\"\"b\""), key("SELECT \"a\"\"c\""));
        assert_eq!(
            key("SELECT DATE '2020-01-01'"),
            key("SELECT DATE '1999-12-31'")
        );
    }

    #[test]
    fn doubtful_texts_get_no_shape() {
        for text in [
            "SELECT E'it\\'s'",
            "SELECT B'0101'",
            "SELECT x'1f'",
            "SELECT $$body$$",
            "SELECT $tag$ x $tag$",
            "SELECT 1abc",
            "SELECT 1e",
            "SELECT 1.2.3",
            "SELECT 'unterminated",
            "SELECT \"unterminated",
            "SELECT /* unterminated",
            "SELECT t.5",
        ] {
            assert!(shape(text).is_none(), "{text}");
        }
    }

    #[test]
    fn spans_cover_names_for_rewrites() {
        let text = "SELECT c.email FROM public.\"Customers\" AS c WHERE id = 42";
        let s = shape(text).unwrap();
        let words: Vec<&str> = s.spans.iter().map(|&(a, b)| &text[a..b]).collect();
        assert_eq!(
            words,
            [
                "SELECT",
                "c",
                ".",
                "email",
                "FROM",
                "public",
                ".",
                "\"Customers\"",
                "AS",
                "c",
                "WHERE",
                "id",
                "=",
                "42"
            ]
        );
        assert_eq!(s.literals, [13]);
    }
}
