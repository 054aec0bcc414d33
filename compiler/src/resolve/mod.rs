//! Name resolution and type checking: a parsed policy plus a schema become a
//! [`Plan`], with a diagnostic for every name that does not resolve, every
//! mask that does not fit its column, and every rule that is ambiguous.
//!
//! Resolution runs in passes over all files' declarations (one namespace):
//! labels and categories, masks, groups, classification (explicit, table,
//! schema, pattern), rules, then whole-policy checks and warnings. A broken
//! declaration (syntax error) is left out; names it declared are not
//! reported missing again.

/// The declarations of one kind (an `Item` variant) among `items`, in
/// order: `declarations!(items, Group)`.
macro_rules! declarations {
    ($items:expr, $kind:ident) => {
        $items
            .iter()
            .filter_map(|i| match i {
                Item::$kind(d) => Some(d),
                _ => None,
            })
            .collect()
    };
}

mod classify;
mod filter_types;
mod groups;
mod labels;
mod lineage;
mod lint;
mod rules;
mod templates;

use std::collections::{HashMap, HashSet};

use clsf_lang::ast::{self, Item};
use clsf_lang::{Diagnostic, SourceSet, Span};

use crate::diagnostics as diag;
use crate::masks::CustomMask;
use crate::plan::Plan;
use crate::policy::Parsed;
use crate::schema::{ColId, RelId, Schema};

pub use clsf_engine::placeholders::{claim_placeholders, substitute};

pub use clsf_engine::schema::DEFAULT_SCHEMA;

/// Compiles a parsed policy against a schema. Returns the plan when there
/// are no errors (warnings allowed), and every diagnostic found, sorted by
/// file and position.
pub fn compile(parsed: &Parsed, lock: &Schema) -> (Option<Plan>, Vec<Diagnostic>) {
    let items: Vec<&Item> = parsed.files.iter().flat_map(|f| f.items.iter()).collect();
    let schema = &with_catalog(lock);
    let mut cx = Cx {
        sources: &parsed.sources,
        schema,
        schema_hash: crate::schema::lock::content_hash(lock),
        declared_tables: HashSet::new(),
        diags: Vec::new(),
        broken: parsed.broken.iter().cloned().collect(),
        labels: Vec::new(),
        categories: Vec::new(),
        user_masks: HashMap::new(),
        used_groups: HashSet::new(),
        used_levels: HashSet::new(),
        explicit_columns: HashMap::new(),
        unclassified_report: (clsf_lang::ast::Report::Warning, None),
        library: parsed
            .sources
            .iter()
            .map(|(id, _)| id)
            .filter(|id| parsed.is_library(*id))
            .collect(),
        import_errors: parsed.diagnostics.iter().any(Diagnostic::is_error),
        partial: !parsed.broken.is_empty()
            || parsed.diagnostics.iter().any(|d| d.code == "CLSF0001"),
    };
    let plan = cx.compile(&items);
    let mut diags = parsed.diagnostics.clone();
    diags.append(&mut cx.diags);
    diags.sort_by_key(|d| d.primary.as_ref().map(|(s, _)| (s.file, s.start)));
    let has_errors = diags.iter().any(Diagnostic::is_error);
    (if has_errors { None } else { plan }, diags)
}

/// The lock's relations plus the catalog relations the language can
/// classify (a lock never holds `pg_catalog` relations; if one did, the
/// lock's would be kept).
fn with_catalog(lock: &Schema) -> Schema {
    let mut relations = lock.relations.clone();
    for r in crate::schema::catalog::relations() {
        if lock.find(&r.schema, &r.name).is_none() {
            relations.push(r);
        }
    }
    Schema::new(lock.server_version.clone(), relations)
        .with_objects(lock.types.clone(), lock.functions.clone())
}

pub(crate) struct Cx<'a> {
    pub(crate) sources: &'a SourceSet,
    pub(crate) schema: &'a Schema,
    pub(crate) schema_hash: String,
    /// Relations some `table` declaration classifies.
    pub(crate) declared_tables: HashSet<RelId>,
    pub(crate) diags: Vec<Diagnostic>,
    /// (keyword, name) of declarations that did not parse.
    pub(crate) broken: HashSet<(String, String)>,
    pub(crate) labels: Vec<String>,
    pub(crate) categories: Vec<String>,
    pub(crate) user_masks: HashMap<String, std::sync::Arc<CustomMask>>,
    pub(crate) used_groups: HashSet<String>,
    pub(crate) used_levels: HashSet<usize>,
    /// Some declaration did not parse: warnings about what is unused would
    /// be about what the broken declarations used, so they are skipped.
    pub(crate) partial: bool,
    /// The parser or the import resolution reported an error.
    pub(crate) import_errors: bool,
    /// Standard-library files.
    pub(crate) library: HashSet<clsf_lang::FileId>,
    /// Columns classified by name: where, and whether with `override because`.
    pub(crate) explicit_columns: HashMap<(RelId, ColId), (Span, bool)>,
    /// How uncovered columns are reported, and the `unclassified` declaration.
    pub(crate) unclassified_report: (clsf_lang::ast::Report, Option<Span>),
}

impl Cx<'_> {
    /// Records the declaration of `key` at `span`; when it was declared
    /// before, reports the repeat as a duplicate `what` named `name` and
    /// returns false (the caller skips it).
    pub(crate) fn first_declaration<K: std::hash::Hash + Eq>(
        &mut self,
        seen: &mut HashMap<K, Span>,
        key: K,
        span: Span,
        what: &str,
        name: &str,
    ) -> bool {
        match seen.insert(key, span) {
            Some(prev) => {
                self.diags.push(diag::duplicate(span, what, name, prev));
                false
            }
            None => true,
        }
    }

    /// [`Cx::first_declaration`] of a declaration known by its name alone.
    pub(crate) fn first_named(
        &mut self,
        seen: &mut HashMap<String, Span>,
        name: &clsf_lang::ast::Name,
        what: &str,
    ) -> bool {
        self.first_declaration(seen, name.text.clone(), name.span, what, &name.text)
    }

    fn compile(&mut self, items: &[&Item]) -> Option<Plan> {
        let labels_ok = self.labels(items);
        self.categories(items);
        self.user_masks(items);
        let groups = self.groups(items);
        if !labels_ok {
            // Without labels nothing else can be checked meaningfully.
            return None;
        }
        let (unclassified_level, unclassified_categories) = self.unclassified(items);
        let mut classes = self.classify(items, unclassified_level, unclassified_categories);
        self.lineage(&mut classes);
        let mut plan = Plan {
            labels: self.labels.clone(),
            categories: self.categories.clone(),
            unclassified_level,
            unclassified_categories,
            groups,
            rules: Vec::new(),
            schema: self.schema.clone(),
            schema_hash: self.schema_hash.clone(),
            classified_catalog: self
                .schema
                .relations_with_ids()
                .filter(|(i, r)| {
                    r.schema == crate::schema::catalog::SCHEMA && self.declared_tables.contains(i)
                })
                .map(|(i, _)| i)
                .collect(),
            classes,
        };
        plan.rules = self.rules(items, &plan);
        // After an error, "unused" warnings mostly report what the broken
        // declaration would have used.
        self.partial |= self.diags.iter().any(Diagnostic::is_error) || self.import_errors;
        self.lint(items, &plan);
        if !self.partial {
            // With errors, the broken declarations may be what covers them.
            self.report_unclassified(&plan.classes);
        }
        Some(plan)
    }

    pub(crate) fn is_broken(&self, keyword: &str, name: &str) -> bool {
        self.broken.contains(&(keyword.to_owned(), name.to_owned()))
    }

    /// The source text of a span, whitespace-normalised.
    pub(crate) fn text_of(&self, span: Span) -> String {
        self.sources.file(span.file).text[span.start..span.end]
            .trim_end_matches([';', ','])
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// Resolves a table name to a relation index, with a diagnostic when it
    /// does not exist.
    pub(crate) fn resolve_table(&mut self, name: &ast::QualifiedName) -> Option<RelId> {
        let parts: Vec<&str> = name.parts.iter().map(|n| n.text.as_str()).collect();
        let (schema, table) = match parts.as_slice() {
            [table] => (DEFAULT_SCHEMA, *table),
            [schema, table] => (*schema, *table),
            // `database.schema.table`: the database is the one the proxy serves.
            [_, schema, table] => (*schema, *table),
            _ => {
                self.diags
                    .push(diag::bad_table_name(name.span, &parts.join(".")));
                return None;
            }
        };
        if let Some(i) = self.schema.find(schema, table) {
            return Some(i);
        }
        let qualified = format!("{schema}.{table}");
        let candidates: Vec<String> = self
            .schema
            .relations
            .iter()
            .map(|r| r.qualified())
            .collect();
        let suggestion = closest(&qualified, candidates.iter().map(String::as_str));
        self.diags.push(diag::unknown_table(
            name.span,
            &qualified,
            suggestion.as_deref(),
        ));
        None
    }

    /// Resolves `table.column`, `schema.table.column` or
    /// `database.schema.table.column`.
    pub(crate) fn resolve_column(&mut self, name: &ast::QualifiedName) -> Option<(RelId, ColId)> {
        let (column, table_parts) = name.parts.split_last()?;
        if table_parts.is_empty() {
            self.diags
                .push(diag::bad_table_name(name.span, &column.text));
            return None;
        }
        let table = ast::QualifiedName {
            parts: table_parts.to_vec(),
            span: Span::new(
                name.span.file,
                name.span.start,
                table_parts.last().map_or(name.span.end, |p| p.span.end),
            ),
        };
        let ri = self.resolve_table(&table)?;
        let rel = self.schema.relation(ri);
        match rel.column_index(&column.text) {
            Some(ci) => Some((ri, ci)),
            None => {
                let suggestion = closest(&column.text, rel.columns.iter().map(|c| c.name.as_str()));
                self.diags.push(diag::unknown_column(
                    column.span,
                    &rel.qualified(),
                    &column.text,
                    suggestion.as_deref(),
                ));
                None
            }
        }
    }
}

/// The candidate closest to `name` by edit distance, if it is close enough
/// to be a likely typo.
pub(crate) fn closest<'a>(name: &str, candidates: impl Iterator<Item = &'a str>) -> Option<String> {
    let limit = (name.len() / 3).max(1);
    candidates
        .map(|c| (edit_distance(name, c), c))
        .filter(|(d, _)| *d <= limit)
        .min()
        .map(|(_, c)| c.to_owned())
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            cur[j + 1] = (prev[j] + usize::from(ca != *cb))
                .min(prev[j + 1] + 1)
                .min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}
