//! Per-identity access to every column, asked of the Cedar authorizer.

use std::collections::HashSet;

use cedar_policy::{
    Authorizer, Context, Decision as CedarDecision, Entities, Entity, PolicySet, Request,
};

use crate::cedar::{self, ACTION_READ, ACTION_READ_MASKED};
use crate::masks::Mask;
use crate::plan::Plan;

/// What an identity may do with one column.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Access {
    /// Read in clear.
    Clear,
    /// Read through the mask.
    Masked(Mask),
    /// Never read. `policies` are the Cedar policy ids that forbade it
    /// (empty when no policy permitted it).
    Denied {
        /// Determining forbid policies.
        policies: Vec<String>,
        /// True when a mask would have been allowed but the column has none.
        no_mask: bool,
    },
}

/// The access table of one group set, parallel to the plan's schema.
#[derive(Debug)]
pub struct PrincipalAccess {
    /// Groups this table was computed for.
    pub groups: Vec<String>,
    /// Access per relation, per column.
    pub columns: Vec<Vec<Access>>,
    /// Cedar policy ids that decided each column (for the audit trail).
    pub policies: Vec<Vec<Vec<String>>>,
    /// True when every column is `Clear`: nothing in the schema is withheld.
    pub full_clear: bool,
}

impl PrincipalAccess {
    /// True when some column of relation `ri` is not readable in clear.
    pub fn relation_restricted(&self, ri: usize) -> bool {
        self.columns[ri].iter().any(|a| *a != Access::Clear)
    }
}

/// Asks Cedar about every column for an identity in `groups`.
pub fn compute(
    plan: &Plan,
    policies: &PolicySet,
    entities: &Entities,
    authorizer: &Authorizer,
    groups: &[String],
) -> PrincipalAccess {
    // The identity entity is synthetic: its parents are its groups, which is
    // all the generated policies look at.
    let principal = cedar::uid("Identity", "session");
    let parents: HashSet<_> = groups.iter().map(|g| cedar::uid("Group", g)).collect();
    let identity = Entity::new_no_attrs(principal.clone(), parents);
    let entities = entities
        .clone()
        .add_entities([identity], None)
        .expect("the synthetic identity entity is unique");
    let read = cedar::uid("Action", ACTION_READ);
    let read_masked = cedar::uid("Action", ACTION_READ_MASKED);

    let ask = |action: &cedar_policy::EntityUid, resource: &cedar_policy::EntityUid| {
        let request = Request::new(
            principal.clone(),
            action.clone(),
            resource.clone(),
            Context::empty(),
            None,
        )
        .expect("requests without a schema always build");
        authorizer.is_authorized(&request, policies, &entities)
    };

    let mut columns = Vec::with_capacity(plan.schema.relations.len());
    let mut all_policies = Vec::with_capacity(plan.schema.relations.len());
    let mut full_clear = true;
    for (ri, rel) in plan.schema.relations.iter().enumerate() {
        let qualified = rel.qualified();
        let mut rel_access = Vec::with_capacity(rel.columns.len());
        let mut rel_policies = Vec::with_capacity(rel.columns.len());
        for (ci, col) in rel.columns.iter().enumerate() {
            let resource = cedar::column_uid(&qualified, &col.name);
            let clear = ask(&read, &resource);
            let reasons = |r: &cedar_policy::Response| -> Vec<String> {
                let mut ids: Vec<String> =
                    r.diagnostics().reason().map(ToString::to_string).collect();
                ids.sort();
                ids
            };
            let (access, ids) = if clear.decision() == CedarDecision::Allow {
                (Access::Clear, reasons(&clear))
            } else {
                let masked = ask(&read_masked, &resource);
                match (masked.decision(), &plan.classes[ri][ci].mask) {
                    (CedarDecision::Allow, Some(mask)) => {
                        (Access::Masked(mask.clone()), reasons(&masked))
                    }
                    (CedarDecision::Allow, None) => (
                        Access::Denied {
                            policies: Vec::new(),
                            no_mask: true,
                        },
                        reasons(&masked),
                    ),
                    (CedarDecision::Deny, _) => {
                        let ids = reasons(&masked);
                        (
                            Access::Denied {
                                policies: ids.clone(),
                                no_mask: false,
                            },
                            ids,
                        )
                    }
                }
            };
            full_clear &= access == Access::Clear;
            rel_access.push(access);
            rel_policies.push(ids);
        }
        columns.push(rel_access);
        all_policies.push(rel_policies);
    }
    PrincipalAccess {
        groups: groups.to_vec(),
        columns,
        policies: all_policies,
        full_clear,
    }
}
