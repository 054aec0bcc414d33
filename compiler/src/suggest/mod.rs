//! Classification suggestions: from a column's name and type (the standard
//! library's patterns) and from what a bounded sample of its values looks
//! like (the validators in [`detect`]), a reviewable `.clsf` file of
//! proposals, each with its evidence as a comment.
//!
//! A suggestion is never enforced: the output is a file a person reads,
//! edits and moves into the policy. Sampled values are counted, never kept:
//! [`ColumnCounts`] holds numbers only, so nothing this module returns or
//! renders can contain one.

pub mod detect;

use crate::schema::ColId;
use std::collections::BTreeSet;
use std::fmt::Write as _;

use detect::Kind;

use crate::plan::{Origin, Plan};
use crate::policy::{self, Parsed};
use crate::schema::{Relation, RelationKind, Schema, TypeFamily};

/// The share of a column's sampled values a validator must accept before
/// the content counts as evidence.
pub const MIN_SHARE: f64 = 0.8;

/// Fewer sampled values than this are not evidence either way.
pub const MIN_VALUES: u32 = 3;

/// What the validators said about one column's sampled values.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ColumnCounts {
    /// Non-null values sampled.
    pub values: u32,
    /// How many of them each kind accepted, in [`Kind::ALL`] order.
    pub hits: [u32; Kind::ALL.len()],
}

impl ColumnCounts {
    /// Counts one value.
    pub fn add(&mut self, value: &str) {
        self.values += 1;
        for (i, kind) in Kind::ALL.iter().enumerate() {
            if kind.matches(value) {
                self.hits[i] += 1;
            }
        }
    }

    /// The kind most values pass, when at least [`MIN_SHARE`] of at least
    /// [`MIN_VALUES`] do; ties go to the earlier (more specific) kind.
    pub fn dominant(&self) -> Option<(Kind, u32)> {
        if self.values < MIN_VALUES {
            return None;
        }
        let (i, &hits) = self
            .hits
            .iter()
            .enumerate()
            .rev()
            .max_by_key(|(_, h)| **h)?;
        (f64::from(hits) >= MIN_SHARE * f64::from(self.values)).then_some((Kind::ALL[i], hits))
    }
}

/// The sample of one relation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TableSample {
    /// `schema.name` of the relation.
    pub schema: String,
    /// Relation name.
    pub name: String,
    /// What sampling found or why it did not run.
    pub outcome: Outcome,
}

/// What sampling a relation gave.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Rows were read; counts per sampled column, by column name.
    Sampled {
        /// Rows read.
        rows: u32,
        /// Counts of the columns whose type can hold the kinds detected.
        columns: Vec<(String, ColumnCounts)>,
    },
    /// Not sampled: the time budget ran out before or during it, or the
    /// database refused (no privilege). Names and types still count.
    Skipped(String),
}

/// One proposed classification.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Proposal {
    /// Relation schema.
    pub schema: String,
    /// Relation name.
    pub table: String,
    /// Column name.
    pub column: String,
    /// Proposed label.
    pub label: &'static str,
    /// Proposed categories.
    pub categories: BTreeSet<&'static str>,
    /// Proposed mask, as written in a policy.
    pub mask: Option<String>,
    /// Why, one line per piece of evidence; never a sampled value.
    pub evidence: Vec<String>,
    /// When an existing policy already classifies the column: how it does.
    /// The proposal is then a disagreement to report, not a declaration.
    pub existing: Option<String>,
}

/// What [`propose`] found.
#[derive(Clone, Debug, Default)]
pub struct Suggestions {
    /// Proposals for columns nothing classifies yet.
    pub proposals: Vec<Proposal>,
    /// Columns an existing policy classifies less strictly than the evidence.
    pub disagreements: Vec<Proposal>,
    /// Relations whose values were not sampled, with the reason.
    pub skipped: Vec<(String, String)>,
    /// Relations sampled.
    pub sampled: usize,
}

/// The standard labels a content kind proposes: (label, category, mask for
/// text columns).
fn class_of(kind: Kind) -> (&'static str, &'static str, Option<&'static str>) {
    match kind {
        Kind::PaymentCard => ("restricted", "pci", Some("last(4)")),
        Kind::Iban => ("restricted", "pci", None),
        Kind::UsSsn | Kind::NationalId => ("restricted", "pii", None),
        Kind::Email => ("confidential", "pii", Some("email")),
        Kind::Phone => ("confidential", "pii", Some("last(4)")),
        Kind::IpAddress => ("confidential", "pii", None),
        Kind::Jwt | Kind::PasswordHash | Kind::HexDigest | Kind::Token => {
            ("restricted", "secrets", None)
        }
    }
}

/// The standard labels (`std::labels`), least protected first: what
/// proposals are written in, and the order they are compared in.
const STD_LABELS: [&str; 4] = ["public", "internal", "confidential", "restricted"];

/// The standard categories.
const STD_CATEGORIES: [&str; 4] = ["pii", "pci", "phi", "secrets"];

/// A standard label's level, for taking the higher of two proposals; an
/// unknown label counts as the highest.
fn std_level(label: &str) -> usize {
    STD_LABELS.iter().position(|l| *l == label).unwrap_or(3)
}

/// Whether suggestions concern a relation: tables, partitioned tables and
/// foreign tables that inherit from nothing. Views, materialized views,
/// partitions and inheritance children get their labels by lineage.
pub fn is_suggested(relation: &Relation) -> bool {
    matches!(
        relation.kind,
        RelationKind::Table | RelationKind::PartitionedTable | RelationKind::ForeignTable
    ) && relation.parents.is_empty()
}

/// The plan of `use std::pii` and `use std::secrets` on `schema`: what the
/// standard library's name and type patterns decide for each column.
fn name_plan(schema: &Schema) -> Option<Plan> {
    let mut parsed = Parsed::default();
    policy::add_source(
        &mut parsed,
        "suggest-patterns.clsf",
        "use std::pii\nuse std::secrets\nunclassified public\n",
    );
    policy::resolve_imports(&mut parsed);
    crate::resolve::compile(&parsed, schema).0
}

/// Proposes classifications for the columns of `schema` from the standard
/// library's patterns and the `samples`. With `existing`, a column the
/// policy already classifies is reported only when the evidence asks for a
/// higher label or a category the policy does not give it.
pub fn propose(schema: &Schema, samples: &[TableSample], existing: Option<&Plan>) -> Suggestions {
    let names = name_plan(schema);
    let mut out = Suggestions::default();
    for sample in samples {
        match &sample.outcome {
            Outcome::Sampled { .. } => out.sampled += 1,
            Outcome::Skipped(why) => out
                .skipped
                .push((format!("{}.{}", sample.schema, sample.name), why.clone())),
        }
    }
    for relation in schema.relations.iter().filter(|r| is_suggested(r)) {
        let counts = samples
            .iter()
            .find(|s| s.schema == relation.schema && s.name == relation.name)
            .and_then(|s| match &s.outcome {
                Outcome::Sampled { columns, .. } => Some(columns),
                Outcome::Skipped(_) => None,
            });
        for (ci, column) in relation.columns_with_ids() {
            let by_name = names.as_ref().and_then(|plan| {
                let ri = plan.schema.find(&relation.schema, &relation.name)?;
                let class = &plan.classes[ri][ci];
                (class.origin == Origin::Pattern).then(|| {
                    let cats: Vec<&str> = plan.category_names(class.categories);
                    (
                        plan.label(class.level).to_owned(),
                        cats.iter().map(|c| (*c).to_owned()).collect::<Vec<_>>(),
                        class.mask.as_ref().map(|m| m.display()),
                    )
                })
            });
            let column_counts = counts
                .and_then(|c| c.iter().find(|(n, _)| *n == column.name))
                .map(|(_, c)| c);
            let Some(mut proposal) = decide(relation, column, by_name, column_counts) else {
                continue;
            };
            match existing.and_then(|plan| existing_class(plan, relation, ci)) {
                None => out.proposals.push(proposal),
                Some((level, categories, described)) => {
                    let higher = level.is_some_and(|l| std_level(proposal.label) > l);
                    let missing = proposal
                        .categories
                        .iter()
                        .any(|c| !categories.iter().any(|have| have == c));
                    if higher || missing {
                        proposal.existing = Some(described);
                        out.disagreements.push(proposal);
                    }
                }
            }
        }
    }
    out
}

/// How an existing policy classifies a column, unless nothing does: (its
/// level mapped onto the standard labels, its categories, a description).
fn existing_class(
    plan: &Plan,
    relation: &Relation,
    ci: ColId,
) -> Option<(Option<usize>, Vec<String>, String)> {
    let ri = plan.schema.find(&relation.schema, &relation.name)?;
    let class = plan.classes.get(ri.index())?.get(ci.index())?;
    if class.origin == Origin::Unclassified {
        return None;
    }
    let label = plan.label(class.level);
    let level = STD_LABELS.iter().position(|l| *l == label);
    let categories = plan
        .category_names(class.categories)
        .into_iter()
        .map(str::to_owned)
        .collect();
    Some((
        level,
        categories,
        format!("{} ({})", plan.describe_class(class), class.origin.as_str()),
    ))
}

/// One column's proposal from its name class and its sampled content.
fn decide(
    relation: &Relation,
    column: &crate::schema::Column,
    by_name: Option<(String, Vec<String>, Option<String>)>,
    counts: Option<&ColumnCounts>,
) -> Option<Proposal> {
    let content = counts.and_then(ColumnCounts::dominant);
    // A credential is a string or bytes: a number, date, boolean or uuid
    // whose name mentions a token (`token_expires_at`, `deploy_token_id`)
    // is about one, not one.
    let by_name = by_name.filter(|(_, cats, _)| {
        !(cats.iter().all(|c| c == "secrets")
            && matches!(
                column.family(),
                TypeFamily::Number
                    | TypeFamily::Bool
                    | TypeFamily::Date
                    | TypeFamily::Timestamp
                    | TypeFamily::Uuid
            ))
    });
    let mut evidence = Vec::new();
    let mut label: Option<&'static str> = None;
    let mut categories = BTreeSet::new();
    let mut mask = None;
    if let Some((name_label, cats, name_mask)) = &by_name {
        let module = if cats.iter().any(|c| c == "secrets") {
            "std::secrets"
        } else {
            "std::pii"
        };
        evidence.push(format!(
            "its name or type matches a {module} pattern ({name_label})"
        ));
        label = STD_LABELS.into_iter().find(|l| *l == name_label.as_str());
        for c in cats {
            if let Some(c) = STD_CATEGORIES.into_iter().find(|k| *k == c.as_str()) {
                categories.insert(c);
            }
        }
        mask.clone_from(name_mask);
    }
    if let (Some((kind, hits)), Some(counts)) = (content, counts) {
        let (kind_label, category, kind_mask) = class_of(kind);
        let percent = f64::from(hits) * 100.0 / f64::from(counts.values);
        evidence.push(format!(
            "{percent:.0} % of {} sampled values {}",
            counts.values,
            kind.evidence()
        ));
        if label.is_none_or(|l| std_level(kind_label) >= std_level(l)) {
            let text = column.family() == TypeFamily::Text;
            if label.is_none_or(|l| std_level(kind_label) > std_level(l)) || mask.is_none() {
                mask = kind_mask.filter(|_| text).map(str::to_owned);
            }
            label = Some(kind_label);
        }
        categories.insert(category);
    } else if by_name.is_some()
        && let Some(counts) = counts.filter(|c| c.values >= MIN_VALUES)
    {
        evidence.push(format!(
            "no validator recognises the {} sampled values",
            counts.values
        ));
    }
    let label = label?;
    Some(Proposal {
        schema: relation.schema.clone(),
        table: relation.name.clone(),
        column: column.name.clone(),
        label,
        categories,
        mask,
        evidence,
        existing: None,
    })
}

/// A name as the policy language writes it: bare when it is a lower-case
/// identifier, else quoted with `""` for a quote.
fn clsf_name(name: &str) -> String {
    let bare = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if bare {
        name.to_owned()
    } else {
        format!("\"{}\"", name.replace('"', "\"\""))
    }
}

/// What a rendered file says about where its suggestions came from.
#[derive(Clone, Debug)]
pub struct Header {
    /// Values sampled per column at most.
    pub per_column: u32,
    /// Whether the file imports `std::labels` (no existing policy given).
    pub import_labels: bool,
}

/// Renders the suggestions as a `.clsf` file: proposals as `table` blocks
/// with their evidence as comments, disagreements and skipped relations as
/// comments only.
pub fn render(s: &Suggestions, header: &Header) -> String {
    let mut out = String::new();
    out.push_str(
        "// Classifications suggested by `clsfc suggest`. They are evidence, not\n\
         // decisions: review each one, then keep, change or delete it.\n",
    );
    let _ = writeln!(
        out,
        "// {} relations sampled (at most {} values per column), {} proposals.",
        s.sampled,
        header.per_column,
        s.proposals.len()
    );
    out.push_str("// No sampled value appears in this file.\n");
    if header.import_labels {
        out.push_str("\nuse std::labels\n");
    }
    let mut current: Option<(&str, &str)> = None;
    for p in &s.proposals {
        if current != Some((p.schema.as_str(), p.table.as_str())) {
            if current.is_some() {
                out.push_str("}\n");
            }
            let _ = writeln!(
                out,
                "\ntable {}.{} {{",
                clsf_name(&p.schema),
                clsf_name(&p.table)
            );
            current = Some((&p.schema, &p.table));
        }
        let _ = writeln!(out, "  // {}", p.evidence.join("; "));
        let _ = writeln!(out, "  {}: {}", clsf_name(&p.column), class_text(p));
    }
    if current.is_some() {
        out.push_str("}\n");
    }
    if !s.disagreements.is_empty() {
        out.push_str(
            "\n// Columns the policy classifies less strictly than the evidence suggests:\n",
        );
        for p in &s.disagreements {
            let _ = writeln!(
                out,
                "//   {}.{}.{} is {}; the evidence suggests {}: {}",
                clsf_name(&p.schema),
                clsf_name(&p.table),
                clsf_name(&p.column),
                p.existing.as_deref().unwrap_or(""),
                class_text(p),
                p.evidence.join("; ")
            );
        }
    }
    if !s.skipped.is_empty() {
        out.push_str(
            "\n// Relations whose values were not sampled (names and types still count):\n",
        );
        for (relation, why) in &s.skipped {
            let _ = writeln!(out, "//   {relation}: {why}");
        }
    }
    out
}

fn class_text(p: &Proposal) -> String {
    let mut text = p.label.to_owned();
    if !p.categories.is_empty() {
        let cats: Vec<&str> = p.categories.iter().copied().collect();
        let _ = write!(text, " [{}]", cats.join(", "));
    }
    if let Some(mask) = &p.mask {
        let _ = write!(text, " mask {mask}");
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::Column;

    fn column(name: &str, type_name: &str) -> Column {
        Column {
            name: name.into(),
            type_name: type_name.into(),
            nullable: true,
            base_type: None,
        }
    }

    fn schema() -> Schema {
        Schema::new(
            "15".into(),
            vec![Relation {
                schema: "public".into(),
                name: "Customer".into(),
                kind: RelationKind::Table,
                columns: vec![
                    column("id", "integer"),
                    column("email", "text"),
                    column("contact", "text"),
                    column("order_no", "text"),
                    column("Phone", "character varying(24)"),
                ],
                ..Relation::default()
            }],
        )
    }

    fn counts(values: &[&str]) -> ColumnCounts {
        let mut c = ColumnCounts::default();
        for v in values {
            c.add(v);
        }
        c
    }

    fn sample() -> Vec<TableSample> {
        vec![TableSample {
            schema: "public".into(),
            name: "Customer".into(),
            outcome: Outcome::Sampled {
                rows: 5,
                columns: vec![
                    (
                        "email".into(),
                        counts(&["a@x.org", "b@x.org", "c@x.org", "d@x.org", "e@x.org"]),
                    ),
                    (
                        "contact".into(),
                        counts(&[
                            "4111111111111111",
                            "5555555555554444",
                            "378282246310005",
                            "4012888888881881",
                            "x",
                        ]),
                    ),
                    (
                        "order_no".into(),
                        counts(&["SO1", "SO2", "SO3", "SO4", "SO5"]),
                    ),
                    ("Phone".into(), counts(&["1", "2", "3"])),
                ],
            },
        }]
    }

    #[test]
    fn names_and_content_make_proposals_with_their_evidence() {
        let s = propose(&schema(), &sample(), None);
        let text = render(
            &s,
            &Header {
                per_column: 5,
                import_labels: true,
            },
        );
        insta::assert_snapshot!(text);
        // The file is a policy clsfc accepts.
        let mut parsed = Parsed::default();
        policy::add_source(&mut parsed, "suggested.clsf", &text);
        policy::resolve_imports(&mut parsed);
        let (plan, diags) = crate::resolve::compile(&parsed, &schema());
        let errors: Vec<_> = diags.iter().filter(|d| d.is_error()).collect();
        assert!(plan.is_some() && errors.is_empty(), "{errors:#?}");
    }

    #[test]
    fn a_classified_column_is_reported_only_when_the_evidence_disagrees() {
        let mut parsed = Parsed::default();
        policy::add_source(
            &mut parsed,
            "p.clsf",
            "use std::labels\nunclassified restricted\n\
             table public.\"Customer\" { email: confidential [pii] mask email\n contact: internal }\n",
        );
        policy::resolve_imports(&mut parsed);
        let plan = crate::resolve::compile(&parsed, &schema())
            .0
            .expect("policy compiles");
        let s = propose(&schema(), &sample(), Some(&plan));
        let columns = |ps: &[Proposal]| ps.iter().map(|p| p.column.clone()).collect::<Vec<_>>();
        // email agrees with the policy; contact holds card numbers the
        // policy calls internal; Phone is unclassified.
        assert_eq!(columns(&s.disagreements), ["contact"]);
        assert_eq!(columns(&s.proposals), ["Phone"]);
        assert_eq!(
            s.disagreements[0].existing.as_deref(),
            Some("internal (explicit)")
        );
    }
}
