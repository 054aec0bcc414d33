//! Lineage rules on a schema built in code: how a view's or partition's
//! column combines its own classification with its sources'.

use clsf_compiler::plan::Plan;
use clsf_compiler::schema::{Column, QualifiedName, Relation, RelationKind, Schema};
use clsf_compiler::{policy, resolve};

fn col(name: &str, ty: &str) -> Column {
    Column {
        name: name.into(),
        type_name: ty.into(),
        nullable: true,
        base_type: None,
    }
}

fn view(name: &str, columns: Vec<Column>, definition: &str) -> Relation {
    Relation {
        schema: "public".into(),
        name: name.into(),
        kind: RelationKind::View,
        columns,
        definition: Some(definition.into()),
        ..Relation::default()
    }
}

fn schema() -> Schema {
    Schema::new(
        "15".into(),
        vec![
            Relation {
                schema: "public".into(),
                name: "people".into(),
                kind: RelationKind::PartitionedTable,
                columns: vec![
                    col("id", "integer"),
                    col("email", "text"),
                    col("ssn", "text"),
                ],
                ..Relation::default()
            },
            Relation {
                schema: "public".into(),
                name: "people_eu".into(),
                kind: RelationKind::Table,
                columns: vec![
                    col("id", "integer"),
                    col("email", "text"),
                    col("ssn", "text"),
                ],
                parents: vec![QualifiedName {
                    schema: "public".into(),
                    name: "people".into(),
                }],
                partition: true,
                ..Relation::default()
            },
            view(
                "emails",
                vec![
                    col("id", "integer"),
                    col("email", "text"),
                    col("n", "bigint"),
                ],
                " SELECT p.id, p.email, count(*) OVER () AS n FROM public.people p;",
            ),
            view(
                "mixed",
                vec![col("both", "text")],
                " SELECT (p.email || p.ssn) AS both FROM public.people p;",
            ),
            view(
                "weird",
                vec![col("x", "text")],
                // `*` over a function whose columns are unknown.
                " SELECT * FROM public.people p, some_srf(p.id);",
            ),
            view(
                "gone",
                vec![col("x", "text")],
                " SELECT x FROM public.missing;",
            ),
        ],
    )
}

const BASE: &str = "labels public < internal < confidential < restricted
categories pii, pci
unclassified public report none
table public.people: internal {
  email: confidential [pii] mask email
  ssn:   restricted [pii]
}
";

fn compile(extra: &str) -> (Option<Plan>, Vec<String>) {
    let mut parsed = policy::Parsed::default();
    policy::add_source(&mut parsed, "policy.clsf", &format!("{BASE}{extra}"));
    let (plan, diags) = resolve::compile(&parsed, &schema());
    (
        plan,
        diags
            .iter()
            .map(|d| format!("{}: {}", d.code, d.message))
            .collect(),
    )
}

fn class(plan: &Plan, table: &str, column: &str) -> String {
    let ri = plan.schema.find("public", table).unwrap();
    let ci = plan.schema.relation(ri).column_index(column).unwrap();
    let c = &plan.classes[ri][ci];
    let mut s = format!("{} {}", plan.describe_class(c), c.origin.as_str());
    if let Some(m) = &c.mask {
        s.push_str(&format!(" mask {}", m.display()));
    }
    s
}

#[test]
fn views_and_partitions_take_their_sources_classification() {
    let (plan, diags) = compile("");
    let plan = plan.unwrap_or_else(|| panic!("{diags:?}"));
    assert_eq!(
        class(&plan, "emails", "email"),
        "confidential [pii] lineage mask email"
    );
    assert_eq!(class(&plan, "emails", "id"), "internal lineage");
    // Computed from no column: its own (unclassified) label stands.
    assert_eq!(class(&plan, "emails", "n"), "public unclassified");
    // Computed from two: the most protective, no mask.
    assert_eq!(class(&plan, "mixed", "both"), "restricted [pii] lineage");
    assert_eq!(class(&plan, "people_eu", "ssn"), "restricted [pii] lineage");
    assert_eq!(
        class(&plan, "people_eu", "email"),
        "confidential [pii] lineage mask email"
    );
}

#[test]
fn a_weaker_default_yields_and_a_weaker_explicit_label_needs_a_reason() {
    // A table default below the lineage gives way to it.
    let (plan, _) = compile("table public.emails: public\n");
    assert_eq!(
        class(&plan.unwrap(), "emails", "email"),
        "confidential [pii] lineage mask email"
    );
    // A stronger explicit label stands.
    let (plan, _) = compile("table public.emails { email: restricted [pii] }\n");
    assert_eq!(
        class(&plan.unwrap(), "emails", "email"),
        "restricted [pii] explicit"
    );
    // A weaker one is an error …
    let (plan, diags) = compile("table public.emails { email: internal }\n");
    assert!(plan.is_none());
    assert!(diags.iter().any(|d| d.starts_with("CLSF0128")), "{diags:?}");
    // … unless a reason is given.
    let (plan, diags) = compile(
        "table public.emails { email: internal override because \"reviewed: test data only\" }\n",
    );
    let plan = plan.unwrap_or_else(|| panic!("{diags:?}"));
    assert_eq!(class(&plan, "emails", "email"), "internal explicit");
}

#[test]
fn an_untraceable_definition_falls_back_to_what_it_names() {
    let (plan, diags) = compile("");
    assert!(
        diags
            .iter()
            .any(|d| d.starts_with("CLSF0207") && d.contains("public.weird")),
        "{diags:?}"
    );
    // It names public.people: the most protective of its columns.
    let plan = plan.unwrap();
    assert_eq!(class(&plan, "weird", "x"), "restricted [pii] lineage");
    // A relation the schema lacks: the highest label and every category.
    assert!(diags.iter().any(|d| d.contains("public.gone")), "{diags:?}");
    assert_eq!(class(&plan, "gone", "x"), "restricted [pii, pci] lineage");
}
