//! The standard library (`policies/` in the repository), embedded in the
//! compiler so that `use std::NAME` works wherever `clsfc` or the proxy runs,
//! with exactly the text this build was tested with.

/// (module name, file text), sorted by name.
pub const MODULES: &[(&str, &str)] = &[
    ("labels", include_str!("../../policies/labels.clsf")),
    ("pii", include_str!("../../policies/pii.clsf")),
    (
        "postgres-catalog",
        include_str!("../../policies/postgres-catalog.clsf"),
    ),
    ("secrets", include_str!("../../policies/secrets.clsf")),
];

/// The text of `std::NAME`.
pub fn module(name: &str) -> Option<&'static str> {
    MODULES.iter().find(|(n, _)| *n == name).map(|(_, t)| *t)
}

/// Names of all modules.
pub fn names() -> Vec<&'static str> {
    MODULES.iter().map(|(n, _)| *n).collect()
}
