//! The end-to-end suite as one test binary: one link instead of one per
//! file, and the files' tests share the two cores instead of waiting for
//! the slowest test of each file in turn. Each file is a module; run one
//! with `cargo test -p clsf-tests --test e2e -- <module>::`.

mod approvals;
mod audit;
mod binaries;
mod bundle;
mod bypass;
mod catalog;
mod clients;
mod clsfc;
mod copy;
mod deploy;
mod differential;
mod docs;
mod editors;
mod explain;
mod hash_key;
mod identities;
mod layout;
mod limits;
mod lineage;
mod lsp;
mod masks;
mod mcp;
mod otel;
mod pool;
mod quickstart;
mod reload;
mod replicas;
mod rules;
mod schema;
mod shutdown;
mod stdlib;
mod suggest;
mod tls;
mod tools;
mod wire;
