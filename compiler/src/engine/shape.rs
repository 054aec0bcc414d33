//! Statement shapes: a query text with its literals taken out, so that
//! `… WHERE id = 10` and `… WHERE id = 11` share one decision.
//!
//! A decision may be reused across literals only when it cannot depend on
//! them. The engine decides relations, columns and functions by name and
//! settings by identifier, never by a literal's value; rewrites splice at
//! relation names. So a shape's decision is reused only for single
//! statements that were forwarded or rewritten (denials are recomputed)
//! and whose rewrites start and end on token boundaries; the rewritten text
//! is rebuilt around the new literals token by token.

use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::tokenizer::{Location, Token, TokenWithSpan, Tokenizer};

use super::rewrite::{self, Edit};
use super::{Decision, Verdict};

/// Longer texts are not shaped (rarely repeated, and tokenizing costs).
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
    /// True when some token is a literal (otherwise the exact-text cache
    /// already covers the text).
    has_literal: bool,
    /// Indices (into `spans`) of the literal tokens.
    literals: Vec<usize>,
    /// The tokens, for the parser on a miss (tokenizing twice would cost
    /// as much as the shape lookup saves).
    pub tokens: Vec<TokenWithSpan>,
}

/// Byte offsets of increasing locations in one pass over the text
/// (`LineIndex` would rescan each line for every token).
struct Cursor<'a> {
    text: &'a str,
    line: u64,
    column: u64,
    byte: usize,
}

impl Cursor<'_> {
    fn offset(&mut self, loc: Location) -> Option<usize> {
        if (loc.line, loc.column) < (self.line, self.column) {
            return None;
        }
        let mut chars = self.text[self.byte..].chars();
        while (self.line, self.column) < (loc.line, loc.column) {
            let c = chars.next()?;
            self.byte += c.len_utf8();
            if c == '\n' {
                self.line += 1;
                self.column = 1;
            } else {
                self.column += 1;
            }
        }
        Some(self.byte)
    }
}

/// A cached decision with its rewrites expressed in token positions.
#[derive(Debug)]
pub struct ShapeEntry {
    decision: Decision,
    /// (first token, last token, replacement).
    edits: Vec<(usize, usize, String)>,
}

/// The shape of `text`, or `None` when it does not tokenize or is long.
pub fn shape(text: &str) -> Option<Shape> {
    if text.len() > MAX_TEXT {
        return None;
    }
    let dialect = PostgreSqlDialect {};
    let tokens = Tokenizer::new(&dialect, text)
        .tokenize_with_location()
        .ok()?;
    let mut cursor = Cursor {
        text,
        line: 1,
        column: 1,
        byte: 0,
    };
    let mut key = String::with_capacity(text.len());
    let mut spans = Vec::with_capacity(tokens.len());
    let mut has_literal = false;
    let mut literals = Vec::new();
    for t in &tokens {
        if matches!(t.token, Token::Whitespace(_) | Token::EOF) {
            continue;
        }
        let start = cursor.offset(t.span.start)?;
        let end = cursor.offset(t.span.end)?;
        spans.push((start, end));
        match &t.token {
            Token::Number(..)
            | Token::SingleQuotedString(_)
            | Token::EscapedStringLiteral(_)
            | Token::NationalStringLiteral(_)
            | Token::HexStringLiteral(_) => {
                has_literal = true;
                literals.push(spans.len() - 1);
                key.push('\u{1}');
            }
            // A dollar-quoted string can hold a function body: kept as is.
            other => {
                use std::fmt::Write;
                let _ = write!(key, "{other}\u{0}");
            }
        }
    }
    Some(Shape {
        key,
        spans,
        has_literal,
        literals,
        tokens,
    })
}

impl Shape {
    /// The entry to remember for `decision` (made for this text with
    /// `edits`), when it may be reused for other literals.
    pub fn entry(&self, decision: &Decision, edits: &[Edit]) -> Option<ShapeEntry> {
        if !self.has_literal || decision.statements.len() != 1 {
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
        Some(ShapeEntry {
            decision: decision.clone(),
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
            let edits = self
                .edits
                .iter()
                .map(|(first, last, replacement)| {
                    Some(Edit {
                        start: shape.spans.get(*first)?.0,
                        end: shape.spans.get(*last)?.1,
                        text: replacement.clone(),
                    })
                })
                .collect::<Option<Vec<_>>>()?;
            Verdict::Rewrite(rewrite::splice(text, edits)?)
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
