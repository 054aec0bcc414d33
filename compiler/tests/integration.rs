//! The compiler's integration tests as one binary (one link); each file is
//! a module: `cargo test -p clsf-compiler --test integration -- <module>::`.

mod bundle;
mod cedar_props;
mod diagnostics;
mod engine;
mod engine_cases;
mod holds;
mod lineage;
mod report;
mod rules;
mod spec_examples;
mod verify;
