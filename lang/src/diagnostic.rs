//! Diagnostics as plain data (code, severity, message, spans, help), and
//! their rendering through miette at the edge.

use std::fmt;

use miette::{GraphicalReportHandler, GraphicalTheme, LabeledSpan, NamedSource, SourceSpan};

use crate::span::{SourceSet, Span};

/// How serious a diagnostic is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Severity {
    /// The policy is rejected.
    Error,
    /// The policy is accepted, but something is probably wrong.
    Warning,
}

/// One finding about a policy, with the source it points at.
#[must_use]
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    /// Stable code such as `CLSF0102`.
    pub code: &'static str,
    /// Error or warning.
    pub severity: Severity,
    /// One lowercase line, no final period.
    pub message: String,
    /// The primary location and its label.
    pub primary: Option<(Span, String)>,
    /// Secondary locations (same file as the primary one).
    pub labels: Vec<(Span, String)>,
    /// What to do about it.
    pub help: Option<String>,
}

impl Diagnostic {
    /// An error with a primary span.
    pub fn error(
        code: &'static str,
        message: impl Into<String>,
        span: Span,
        label: impl Into<String>,
    ) -> Diagnostic {
        Diagnostic {
            code,
            severity: Severity::Error,
            message: message.into(),
            primary: Some((span, label.into())),
            labels: Vec::new(),
            help: None,
        }
    }

    /// A warning with a primary span.
    pub fn warning(
        code: &'static str,
        message: impl Into<String>,
        span: Span,
        label: impl Into<String>,
    ) -> Diagnostic {
        Diagnostic {
            severity: Severity::Warning,
            ..Diagnostic::error(code, message, span, label)
        }
    }

    /// A diagnostic about the schema rather than a place in the policy.
    pub fn unlocated(
        code: &'static str,
        severity: Severity,
        message: impl Into<String>,
    ) -> Diagnostic {
        Diagnostic {
            code,
            severity,
            message: message.into(),
            primary: None,
            labels: Vec::new(),
            help: None,
        }
    }

    /// Adds help text.
    pub fn with_help(mut self, help: impl Into<String>) -> Diagnostic {
        self.help = Some(help.into());
        self
    }

    /// Adds a secondary label.
    pub fn with_label(mut self, span: Span, label: impl Into<String>) -> Diagnostic {
        self.labels.push((span, label.into()));
        self
    }

    /// True for errors.
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

/// The adapter miette renders: one diagnostic with its file's text.
#[derive(Debug)]
struct Rendered {
    diag: Diagnostic,
    source: NamedSource<String>,
}

impl fmt::Display for Rendered {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.diag.message)
    }
}

impl std::error::Error for Rendered {}

impl miette::Diagnostic for Rendered {
    fn code<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        Some(Box::new(self.diag.code))
    }

    fn severity(&self) -> Option<miette::Severity> {
        Some(match self.diag.severity {
            Severity::Error => miette::Severity::Error,
            Severity::Warning => miette::Severity::Warning,
        })
    }

    fn help<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        self.diag
            .help
            .as_ref()
            .map(|h| Box::new(h) as Box<dyn fmt::Display>)
    }

    fn source_code(&self) -> Option<&dyn miette::SourceCode> {
        Some(&self.source)
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        let to_source = |span: &Span| SourceSpan::new(span.start.into(), span.len());
        let primary = self.diag.primary.iter().map(move |(span, label)| {
            LabeledSpan::new_primary_with_span(Some(label.clone()), to_source(span))
        });
        let secondary = self.diag.labels.iter().map(move |(span, label)| {
            LabeledSpan::new_with_span(Some(label.clone()), to_source(span))
        });
        Some(Box::new(primary.chain(secondary)))
    }
}

/// Renders diagnostics as text, in the style of rustc. `color` selects
/// ANSI colours; tests and CI logs use plain text at a fixed width.
pub fn render(diags: &[Diagnostic], sources: &SourceSet, color: bool) -> String {
    let theme = if color {
        GraphicalTheme::unicode()
    } else {
        GraphicalTheme::unicode_nocolor()
    };
    let handler = GraphicalReportHandler::new_themed(theme).with_width(100);
    let mut out = String::new();
    for diag in diags {
        let Some((span, _)) = &diag.primary else {
            out.push_str(&format!(
                "{}[{}]: {}\n",
                severity_word(diag.severity),
                diag.code,
                diag.message
            ));
            if let Some(help) = &diag.help {
                out.push_str(&format!("  help: {help}\n"));
            }
            continue;
        };
        let file = sources.file(span.file);
        // miette shows one source per report: labels in other files become
        // notes with their location.
        let mut diag = diag.clone();
        let (same, other): (Vec<_>, Vec<_>) = diag
            .labels
            .drain(..)
            .partition(|(s, _)| s.file == span.file);
        diag.labels = same;
        for (s, label) in other {
            let note = format!("{label}: {}", sources.location(s));
            diag.help = Some(match diag.help.take() {
                Some(h) => format!("{h}\n{note}"),
                None => note,
            });
        }
        let rendered = Rendered {
            diag,
            source: NamedSource::new(file.name.clone(), file.text.clone()),
        };
        // Rendering into a String cannot fail.
        let _ = handler.render_report(&mut out, &rendered);
        out.push('\n');
    }
    out
}

fn severity_word(severity: Severity) -> &'static str {
    match severity {
        Severity::Error => "error",
        Severity::Warning => "warning",
    }
}
