//! The statement engine: analyse → decide → rewrite, on a compiled plan,
//! with no I/O. One engine serves `clsfc` and the proxy, so what CI checks is
//! what production enforces.
//!
//! This crate holds what a decision needs and nothing else: the plan and the
//! schema model it carries, the masks, the Cedar policies generated from the
//! plan, and the engine. It depends on sqlparser and cedar-policy only — no
//! async runtime, no database client, no file system — so the proxy, the
//! compiler and the fuzz targets share it without pulling each other in.

pub mod access;
pub mod analyze;
mod barrier;
pub mod cache;
pub mod cedar;
pub mod column_access;
mod ddl;
pub mod decide;
mod denials;
pub mod drift;
pub mod functions;
pub mod glob;
pub mod hold;
pub mod identity;
pub mod masks;
mod model;
pub mod placeholders;
pub mod plan;
pub mod plan_file;
pub mod rewrite;
pub mod schema;
pub mod scope;
pub mod shape;
pub mod sql_lists;
mod system_columns;
pub mod verdict;
mod view;

// The engine's surface for the proxy: an engine built from a plan, the
// identities it decides for, their decisions and the views of what they
// may see. The proxy names nothing else of this crate (tests/tests/layout.rs
// checks it); the modules above are the compiler's.
pub use access::{Access, PrincipalAccess};
pub use cedar::GenerateError;
pub use decide::{
    ColumnUse, Decision, Denial, Findings, INSUFFICIENT_PRIVILEGE, SessionObject, StartupSetting,
    StatementReport, Verdict, startup_setting,
};
pub use drift::Drift;
pub use hold::{Hold, Need};
pub use identity::{Credentials, Identity, groups_for_credentials};
pub use plan::{ApprovalScope, ClauseId, Plan};
pub use sql_lists::{PROXY_SETTING_PREFIX, keeps_pinned};
pub use view::{ColumnAccess, ColumnView, RelationView, only_reads};

use crate::schema::RelId;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use cedar_policy::{Authorizer, Entities, PolicySet};

/// A compiled plan ready to decide statements.
pub struct Engine {
    /// Shared with the engines [`Engine::with_drift`] makes of this one.
    plan: Arc<Plan>,
    generated: Arc<cedar::Generated>,
    authorizer: Authorizer,
    /// Access tables per group set: decisions depend only on the groups, so
    /// identities with the same groups share one table.
    by_groups: Mutex<HashMap<Vec<String>, Arc<PrincipalAccess>>>,
    /// The HMAC pads of the `hash` mask's key, as hex, made once per key
    /// rather than per session. Never in statement text: sessions get them
    /// as settings ([`Engine::hash_settings`]).
    hash_pads: Arc<(String, String)>,
    /// The live relations' columns against the lock.
    drift: Drift,
}

/// Never the `hash` mask's pads: a debug print of the proxy's state is no
/// way to the key.
impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("drift", &self.drift)
            .finish_non_exhaustive()
    }
}

/// The key of the `hash` mask when none is given: random, drawn once per
/// process, so hashes stay stable (and joins on them work) across policy
/// reloads for the life of the process. A deployment that needs hashes
/// stable across restarts gives its own key ([`Engine::with_hash_key`]).
fn process_key() -> String {
    static KEY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    KEY.get_or_init(|| {
        let mut key = [0u8; 32];
        // Without the operating system's randomness there is no safe key;
        // a guessable one would let anyone reverse hashes of small domains.
        getrandom::fill(&mut key).expect("the operating system's random source is unavailable");
        hex::encode(key)
    })
    .clone()
}

impl Engine {
    /// Builds the engine: generates and validates the Cedar policies.
    pub fn new(plan: Plan) -> Result<Engine, GenerateError> {
        let generated = cedar::generate(&plan)?;
        Ok(Engine {
            plan: Arc::new(plan),
            generated: Arc::new(generated),
            authorizer: Authorizer::new(),
            by_groups: Mutex::new(HashMap::new()),
            hash_pads: Arc::new(crate::masks::hash_pads(&process_key())),
            drift: Drift::None,
        })
    }

    /// The same policy deciding on what is now known of the live
    /// relations' columns ([`Drift`]): a new engine, with caches of its
    /// own, since every cached decision may depend on it.
    pub fn with_drift(&self, drift: Drift) -> Engine {
        Engine {
            plan: Arc::clone(&self.plan),
            generated: Arc::clone(&self.generated),
            authorizer: Authorizer::new(),
            by_groups: Mutex::new(HashMap::new()),
            hash_pads: Arc::clone(&self.hash_pads),
            drift,
        }
    }

    /// What the engine knows of the live relations' columns.
    pub fn drift(&self) -> &Drift {
        &self.drift
    }

    /// Sets the key of the `hash` mask.
    pub fn with_hash_key(mut self, key: String) -> Engine {
        self.hash_pads = Arc::new(crate::masks::hash_pads(&key));
        self
    }

    /// The upstream session settings the `hash` mask reads (name, value):
    /// the proxy passes them as startup parameters of every session that
    /// may see a hashed column, so the key never travels in a statement.
    pub fn hash_settings(&self) -> [(&'static str, String); 2] {
        let (ipad, opad) = &*self.hash_pads;
        [
            (crate::masks::HASH_IPAD_SETTING, ipad.clone()),
            (crate::masks::HASH_OPAD_SETTING, opad.clone()),
        ]
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
            self.generated.observe_set.as_ref(),
            &self.generated.entities,
            &self.authorizer,
            &identity.groups,
        ));
        cache.insert(identity.groups.clone(), Arc::clone(&table));
        table
    }

    /// Decides one simple-query string (one or more statements) for an
    /// identity without token claims (row filters that need claims refuse).
    pub fn decide(&self, access: &PrincipalAccess, sql: &str) -> Decision {
        self.decide_with_claims(access, None, sql)
    }

    /// Decides one simple-query string for an identity with verified claims.
    pub fn decide_with_claims(
        &self,
        access: &PrincipalAccess,
        claims: Option<&serde_json::Value>,
        sql: &str,
    ) -> Decision {
        Arc::unwrap_or_clone(self.decide_shared(access, claims, sql))
    }

    /// Decides one simple-query string for an identity with verified
    /// claims; a repeated text gets the decision made before, shared.
    pub fn decide_shared(
        &self,
        access: &PrincipalAccess,
        claims: Option<&serde_json::Value>,
        sql: &str,
    ) -> Arc<Decision> {
        self.decide_cached(access, claims, sql)
    }

    fn decide_cached(
        &self,
        access: &PrincipalAccess,
        claims: Option<&serde_json::Value>,
        sql: &str,
    ) -> Arc<Decision> {
        // A decision depends on the plan, the group set's access table (both
        // fixed for this table's life) and, through row filters only, on the
        // claims: without filters the same text is decided the same way.
        let cacheable = access.filters.is_empty();
        let mut shape = None;
        if cacheable {
            if let Some(hit) = access.decisions.get(sql) {
                return hit;
            }
            // The same statement with other literals: reuse its decision.
            shape = shape::shape(sql);
            // Not copied into the exact-text cache: texts that differ only
            // in literals rarely repeat, and the copy would cost more than
            // the next shape lookup.
            if let Some(s) = &shape
                && let Some(decision) = access.decisions.by_shape(sql, s)
            {
                return Arc::new(decision);
            }
        }
        let env = decide::Env {
            claims,
            drift: &self.drift,
        };
        let (decision, edits) = decide::decide_with_edits(&self.plan, access, &env, sql);
        let decision = Arc::new(decision);
        if cacheable {
            access.decisions.insert(sql, &decision);
            if let Some(s) = &shape
                && let Some(edits) = &edits
                && let Some(entry) = s.entry(&decision, edits)
            {
                access.decisions.insert_shape(&s.key, entry);
            }
        }
        decision
    }

    /// The smallest row limit on relation `ri` for this access table, and
    /// the rule that sets it.
    pub fn row_limit(&self, access: &PrincipalAccess, ri: RelId) -> Option<(u64, String)> {
        decide::reads_row_limit(&self.plan, access, ri)
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
