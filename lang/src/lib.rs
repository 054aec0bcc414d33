//! The clsf policy language: grammar, typed AST with spans, parser and
//! diagnostics. This crate knows nothing of databases, SQL or Cedar and does
//! no I/O: it takes text and returns values.

pub mod ast;
pub mod diagnostic;
pub mod diagnostics;
pub mod format;
pub mod lexical;
pub mod parser;
pub mod span;

pub use diagnostic::{Diagnostic, Severity, render};
pub use format::format;
pub use parser::{ParseResult, parse};
pub use span::{FileId, Location, SourceSet, Span};
