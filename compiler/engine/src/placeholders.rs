//! The `{claim.NAME}` placeholders of a row filter's SQL template: which
//! claims it reads, and the template with each replaced by a bound value.
//! The compiler checks templates with these; the engine binds them per
//! identity.

/// Why a filter template's placeholders cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlaceholderError {
    /// A `{` with no `}` after it.
    #[error("`{{` without a closing `}}`")]
    Unclosed,
    /// A placeholder that is not `{claim.…}`.
    #[error("unknown placeholder `{{{0}}}`; write `{{claim.NAME}}`")]
    Unknown(String),
    /// `{claim.}` or `{claim.a..b}`.
    #[error("empty claim name in `{{{0}}}`")]
    EmptyClaim(String),
}

/// The `{claim.a.b}` placeholders of a filter template, as paths, in order.
pub fn claim_placeholders(template: &str) -> Result<Vec<Vec<String>>, PlaceholderError> {
    let mut out = Vec::new();
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        let close = rest[open..].find('}').ok_or(PlaceholderError::Unclosed)?;
        let inner = &rest[open + 1..open + close];
        let path = inner
            .strip_prefix("claim.")
            .ok_or_else(|| PlaceholderError::Unknown(inner.to_owned()))?;
        if path.is_empty() || path.split('.').any(str::is_empty) {
            return Err(PlaceholderError::EmptyClaim(inner.to_owned()));
        }
        out.push(path.split('.').map(str::to_owned).collect());
        rest = &rest[open + close + 1..];
    }
    Ok(out)
}

/// Replaces each `{…}` placeholder with `replacement(index)`.
pub fn substitute(template: &str, mut replacement: impl FnMut(usize) -> String) -> String {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    let mut n = 0;
    while let Some(open) = rest.find('{') {
        let Some(close) = rest[open..].find('}') else {
            break;
        };
        out.push_str(&rest[..open]);
        out.push_str(&replacement(n));
        n += 1;
        rest = &rest[open + close + 1..];
    }
    out.push_str(rest);
    out
}
