//! Every diagnostic the parser emits, one constructor per code. Code strings
//! appear nowhere else in this crate.

use crate::diagnostic::Diagnostic;
use crate::span::Span;

/// CLSF0001: the text does not match the grammar.
pub fn syntax_error(span: Span, found: &str, expected: &[String]) -> Diagnostic {
    let label = if expected.is_empty() {
        "unexpected here".to_owned()
    } else {
        format!("expected {}", expected.join(", "))
    };
    Diagnostic::error(
        "CLSF0001",
        format!("syntax error: unexpected {found}"),
        span,
        label,
    )
    .with_help("see spec/language.md for the grammar")
}

/// CLSF0002: an integer literal does not fit in 64 bits.
pub fn integer_too_large(span: Span) -> Diagnostic {
    Diagnostic::error(
        "CLSF0002",
        "integer literal is too large",
        span,
        "does not fit in 64 bits",
    )
}
