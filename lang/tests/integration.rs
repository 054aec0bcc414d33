//! The language's integration tests as one binary (one link); each file is
//! a module: `cargo test -p clsf-lang --test integration -- <module>::`.

mod robustness;
mod roundtrip;
