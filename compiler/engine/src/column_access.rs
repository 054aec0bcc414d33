//! What an identity may do with one column (`Access`) and with one action
//! (`Perm`): the values of the access table, apart from the table so that
//! the rewrite, which reads them, does not depend on how they are computed.

use crate::masks::Mask;
use crate::plan::ClauseId;

/// What an identity may do when reading one column.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Access {
    /// Read in clear.
    Clear,
    /// Read through the mask.
    Masked(Mask),
    /// Read in clear once a member of `approvers` approves.
    Approval {
        /// Approver group (of the first clause).
        approvers: String,
        /// The approval clauses that permit it (never empty).
        clauses: Vec<ClauseId>,
    },
    /// Never read. `policies` are the Cedar policy ids that forbade it
    /// (empty when no policy permitted it).
    Denied {
        /// Determining forbid policies.
        policies: Vec<String>,
        /// True when a mask would have been allowed but the column has none.
        no_mask: bool,
    },
}

/// Whether an action other than read is permitted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Perm {
    /// Permitted.
    Allowed,
    /// Permitted once approved by a member of `approvers`.
    Approval {
        /// Approver group (of the first clause).
        approvers: String,
        /// The approval clauses that permit it (never empty).
        clauses: Vec<ClauseId>,
    },
    /// Not permitted; the determining policies (empty: nothing permitted it).
    Denied(Vec<String>),
}

impl Perm {
    /// True when permitted without approval.
    pub fn allowed(&self) -> bool {
        *self == Perm::Allowed
    }
}
