//! Verification of the compiled Cedar with Cedar's symbolic compiler
//! (cedar-policy-symcc) and the cvc5 solver: `clsfc check --verify`
//! (`checks`) and `clsfc who-can` (`who_can`). `domain` narrows every
//! question to this database's columns and these groups; `solver` finds
//! cvc5 and bounds each question in time. spec/verification.md says what
//! is proved and what is not.

mod checks;
pub mod compare;
pub mod domain;
pub mod solver;
pub mod who_can;

pub use checks::{Report, check};
pub use solver::{Prover, SolverConfig, Unproved, VerifyError};
