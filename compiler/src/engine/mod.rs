//! The statement engine: analyse → decide → rewrite, on a compiled plan,
//! with no I/O. One engine serves `clsfc` and the proxy, so what CI checks is
//! what production enforces.

pub mod access;
pub mod analyze;
pub mod decide;
pub mod identity;
pub mod rewrite;
pub mod sql_lists;

pub use access::{Access, PrincipalAccess};
pub use decide::{Decision, Denial, StatementReport, Verdict};
pub use identity::Identity;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use cedar_policy::{Authorizer, Entities, PolicySet};

use crate::cedar::{self, GenerateError};
use crate::plan::Plan;

/// A compiled plan ready to decide statements.
#[derive(Debug)]
pub struct Engine {
    plan: Plan,
    generated: cedar::Generated,
    authorizer: Authorizer,
    /// Access tables per group set: decisions depend only on the groups, so
    /// identities with the same groups share one table.
    by_groups: Mutex<HashMap<Vec<String>, Arc<PrincipalAccess>>>,
}

impl Engine {
    /// Builds the engine: generates and validates the Cedar policies.
    pub fn new(plan: Plan) -> Result<Engine, GenerateError> {
        let generated = cedar::generate(&plan)?;
        Ok(Engine {
            plan,
            generated,
            authorizer: Authorizer::new(),
            by_groups: Mutex::new(HashMap::new()),
        })
    }

    /// The plan.
    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    /// The generated Cedar artifacts.
    pub fn generated(&self) -> &cedar::Generated {
        &self.generated
    }

    /// What an identity may do with every column, decided by Cedar.
    pub fn access_for(&self, identity: &Identity) -> Arc<PrincipalAccess> {
        let mut cache = self.by_groups.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(found) = cache.get(&identity.groups) {
            return Arc::clone(found);
        }
        let table = Arc::new(access::compute(
            &self.plan,
            &self.generated.policy_set,
            &self.generated.entities,
            &self.authorizer,
            &identity.groups,
        ));
        cache.insert(identity.groups.clone(), Arc::clone(&table));
        table
    }

    /// Decides one simple-query string (one or more statements).
    pub fn decide(&self, access: &PrincipalAccess, sql: &str) -> Decision {
        decide::decide(&self.plan, access, sql)
    }

    /// The Cedar policy set (for tests and tools).
    pub fn policy_set(&self) -> &PolicySet {
        &self.generated.policy_set
    }

    /// The Cedar entities (for tests and tools).
    pub fn entities(&self) -> &Entities {
        &self.generated.entities
    }
}
