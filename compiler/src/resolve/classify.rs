//! Classification: explicit column labels, table and schema defaults, and
//! patterns. Precedence: explicit > table > schema > pattern > unclassified;
//! among patterns the highest priority wins, and two patterns of the same
//! priority that disagree are an error.

use crate::schema::{ColId, RelId};
use std::collections::{HashMap, HashSet};

use clsf_lang::Span;
use clsf_lang::ast::{self, Item};

use super::Cx;
use crate::diagnostics as diag;
use crate::glob;
use crate::masks::{self, Arg, Mask, MaskError};
use crate::plan::{Categories, ColumnClass, Origin};
use crate::schema::{Column, TypeFamily};

struct Pattern<'a> {
    decl: &'a ast::ClassifyDecl,
    regexes: Vec<regex::Regex>,
    likes: Vec<(String, usize)>,
    types: Vec<String>,
    ins: Vec<(String, usize)>,
    level: usize,
    categories: Categories,
    priority: u64,
}

/// A classification source other than a pattern, for shadowing warnings.
#[derive(Clone, Copy)]
struct Source {
    span: Span,
    origin: Origin,
}

impl Pattern<'_> {
    fn matches(&self, schema: &str, table: &str, column: &Column) -> bool {
        let qualified_in = |glob_text: &str, dots: usize| match dots {
            0 => glob::matches(glob_text, table),
            _ => glob::matches(glob_text, &format!("{schema}.{table}")),
        };
        // Within one `of type` list, any type matches.
        (self.types.is_empty() || {
            let ty = normalise_type(&column.type_name);
            self.types.contains(&ty)
        }) && self.regexes.iter().all(|r| r.is_match(&column.name))
            && self.ins.iter().all(|(g, dots)| qualified_in(g, *dots))
            && self.likes.iter().all(|(g, dots)| match dots {
                0 => glob::matches(g, &column.name),
                1 => glob::matches(g, &format!("{table}.{}", column.name)),
                _ => glob::matches(g, &format!("{schema}.{table}.{}", column.name)),
            })
    }
}

/// A type name without its modifiers, with common aliases spelled out, so
/// that `of type varchar` matches `character varying(64)`.
pub(crate) fn normalise_type(t: &str) -> String {
    let lower = t.trim().to_ascii_lowercase();
    let (base, array) = match lower.strip_suffix("[]") {
        Some(b) => (b.to_owned(), "[]"),
        None => (lower, ""),
    };
    let base = match base.find('(') {
        Some(i) => {
            // `timestamp(3) with time zone`: drop only the modifier.
            let close = base[i..].find(')').map_or(base.len(), |j| i + j + 1);
            format!("{}{}", &base[..i], &base[close..])
        }
        None => base,
    };
    let base = base.split_whitespace().collect::<Vec<_>>().join(" ");
    let canonical = match base.as_str() {
        "varchar" => "character varying",
        "char" | "bpchar" => "character",
        "int" | "int4" => "integer",
        "int2" => "smallint",
        "int8" => "bigint",
        "float8" => "double precision",
        "float4" => "real",
        "bool" => "boolean",
        "decimal" => "numeric",
        "timestamptz" => "timestamp with time zone",
        "timestamp" => "timestamp without time zone",
        "timetz" => "time with time zone",
        "time" => "time without time zone",
        other => other,
    };
    format!("{canonical}{array}")
}

fn mask_args(m: &ast::MaskExpr) -> Vec<Arg> {
    m.args
        .iter()
        .map(|a| match &a.value {
            ast::ArgValue::Int(n) => Arg::Int(*n),
            ast::ArgValue::Str(s) => Arg::Str(s.clone()),
            ast::ArgValue::Bool(b) => Arg::Bool(*b),
        })
        .collect()
}

/// Why a mask cannot apply to a column: the diagnostic, unless the only
/// problem is the column's type (reported differently for broad targets).
pub(crate) enum MaskProblem {
    Fatal,
    Type,
}

impl Cx<'_> {
    /// A column's type for messages, with what a user type resolves to:
    /// `app.mood (an enum: happy, sad)`, `app.email_address[] (an array of text)`.
    fn type_shown(&self, column: &Column) -> String {
        let t = &column.type_name;
        let array = t.ends_with("[]");
        let what = match self.schema.user_type(t).map(|u| &u.kind) {
            Some(crate::schema::TypeKind::Enum(labels)) => {
                format!("an enum: {}", labels.join(", "))
            }
            Some(crate::schema::TypeKind::Composite(_)) => "a composite type".to_owned(),
            Some(crate::schema::TypeKind::Domain { base, .. }) => format!("a domain over {base}"),
            None if array => format!("an array of {}", column.value_type().trim_end_matches("[]")),
            None => return t.clone(),
        };
        let what = if array && !what.starts_with("an array") {
            format!("an array of {what}")
        } else {
            what
        };
        format!("{t} ({what})")
    }

    /// Checks a mask application against a column. With `strict`, a type
    /// mismatch is an error; otherwise it is returned for the caller to
    /// summarise.
    pub(crate) fn mask_for(
        &mut self,
        m: &ast::MaskExpr,
        column: &Column,
        owner: &str,
        strict: bool,
    ) -> Result<Mask, MaskProblem> {
        let family = column.family();
        if let Some(custom) = self.user_masks.get(&m.name.text).cloned() {
            if !m.args.is_empty() {
                self.diags.push(diag::mask_arity(
                    m.span,
                    &m.name.text,
                    0,
                    m.args.len(),
                    &m.name.text,
                ));
                return Err(MaskProblem::Fatal);
            }
            if !custom.accepts.contains(&family) || custom.output != family {
                if strict {
                    let accepts: Vec<&str> = custom.accepts.iter().map(|f| f.as_str()).collect();
                    self.diags.push(diag::mask_type_mismatch(
                        m.span,
                        &m.name.text,
                        owner,
                        &self.type_shown(column),
                        &accepts,
                    ));
                }
                return Err(MaskProblem::Type);
            }
            return Ok(Mask::Custom(custom));
        }
        let Some(spec) = masks::spec(&m.name.text) else {
            let mut names: Vec<&str> = masks::CATALOGUE.iter().map(|s| s.name).collect();
            let user: Vec<String> = self.user_masks.keys().cloned().collect();
            names.extend(user.iter().map(String::as_str));
            let mut d = diag::unknown_mask(m.name.span, &m.name.text, &names);
            if let Some(s) = super::closest(&m.name.text, names.iter().copied()) {
                d = d.with_help(format!("did you mean `{s}`? masks: {}", names.join(", ")));
            }
            self.diags.push(d);
            return Err(MaskProblem::Fatal);
        };
        match masks::build(spec, &mask_args(m), family) {
            Ok(mask) => Ok(mask),
            Err(MaskError::Arity { expected, form }) => {
                self.diags.push(diag::mask_arity(
                    m.span,
                    spec.name,
                    expected,
                    m.args.len(),
                    &form,
                ));
                Err(MaskProblem::Fatal)
            }
            Err(MaskError::BadArg { index, expected }) => {
                let span = m.args.get(index).map_or(m.span, |a| a.span);
                self.diags
                    .push(diag::bad_mask_argument(span, spec.name, &expected));
                Err(MaskProblem::Fatal)
            }
            Err(MaskError::Type { accepts }) => {
                if strict {
                    self.diags.push(diag::mask_type_mismatch(
                        m.span,
                        spec.name,
                        owner,
                        &self.type_shown(column),
                        &accepts,
                    ));
                }
                Err(MaskProblem::Type)
            }
        }
    }

    pub(crate) fn classify(
        &mut self,
        items: &[&Item],
        unclassified_level: usize,
        unclassified_categories: Categories,
    ) -> Vec<Vec<ColumnClass>> {
        let schema = self.schema;
        let top = self.labels.len() - 1;
        let mut classes: Vec<Vec<ColumnClass>> = schema
            .relations
            .iter()
            .map(|r| {
                // Catalog columns nobody classified hold copies of any
                // value: the highest label, whatever `unclassified` says.
                let catalog = r.schema == crate::schema::catalog::SCHEMA;
                r.columns
                    .iter()
                    .map(|_| ColumnClass {
                        level: if catalog { top } else { unclassified_level },
                        categories: unclassified_categories,
                        mask: None,
                        origin: Origin::Unclassified,
                    })
                    .collect()
            })
            .collect();
        // Which declaration set each column, for shadowing warnings.
        let mut sources: HashMap<(RelId, ColId), Source> = HashMap::new();

        // Schema defaults.
        let mut seen_schemas: HashMap<String, Span> = HashMap::new();
        for item in items {
            let Item::Schema(s) = item else { continue };
            if !self.first_named(&mut seen_schemas, &s.name, "classification of schema") {
                continue;
            }
            let in_schema: Vec<RelId> = schema
                .relation_ids()
                .filter(|&i| schema.relations[i].schema == s.name.text)
                .collect();
            if in_schema.is_empty() {
                let names: HashSet<&str> =
                    schema.relations.iter().map(|r| r.schema.as_str()).collect();
                let suggestion = super::closest(&s.name.text, names.into_iter());
                self.diags.push(diag::unknown_schema(
                    s.name.span,
                    &s.name.text,
                    suggestion.as_deref(),
                ));
                continue;
            }
            let Some((level, categories)) = self.label_ref(&s.label) else {
                continue;
            };
            let source = Source {
                span: s.span,
                origin: Origin::Schema,
            };
            for ri in in_schema {
                set_default(
                    &mut classes[ri],
                    &mut sources,
                    ri,
                    level,
                    categories,
                    source,
                );
            }
        }

        // Tables and their columns.
        let mut seen_tables: HashMap<RelId, Span> = HashMap::new();
        for item in items {
            let Item::Table(t) = item else { continue };
            let Some(ri) = self.resolve_table(&t.name) else {
                continue;
            };
            self.declared_tables.insert(ri);
            let name = schema.relation(ri).qualified();
            if !self.first_declaration(
                &mut seen_tables,
                ri,
                t.name.span,
                "classification of table",
                &name,
            ) {
                continue;
            }
            let relation = schema.relation(ri);
            if let Some(label) = &t.label
                && let Some((level, categories)) = self.label_ref(label)
            {
                let source = Source {
                    span: t.name.span,
                    origin: Origin::Table,
                };
                set_default(
                    &mut classes[ri],
                    &mut sources,
                    ri,
                    level,
                    categories,
                    source,
                );
            }
            let mut seen_columns: HashMap<String, Span> = HashMap::new();
            for col in &t.columns {
                let Some(ci) = relation.column_index(&col.name.text) else {
                    let names = relation.columns.iter().map(|c| c.name.as_str());
                    let suggestion = super::closest(&col.name.text, names);
                    self.diags.push(diag::unknown_column(
                        col.name.span,
                        &relation.qualified(),
                        &col.name.text,
                        suggestion.as_deref(),
                    ));
                    continue;
                };
                if !self.first_named(&mut seen_columns, &col.name, "classification of column") {
                    continue;
                }
                let label = self.label_ref(&col.label);
                let column = &relation.columns[ci];
                let mask = col
                    .mask
                    .as_ref()
                    .and_then(|m| self.mask_for(m, column, &column.name, true).ok());
                if let Some((level, categories)) = label {
                    self.explicit_columns
                        .insert((ri, ci), (col.span, col.reason.is_some()));
                    classes[ri][ci] = ColumnClass {
                        level,
                        categories,
                        mask,
                        origin: Origin::Explicit,
                    };
                    sources.insert(
                        (ri, ci),
                        Source {
                            span: col.span,
                            origin: Origin::Explicit,
                        },
                    );
                }
            }
        }

        self.patterns(items, &mut classes, &sources);
        classes
    }

    fn compile_pattern<'a>(&mut self, decl: &'a ast::ClassifyDecl) -> Option<Pattern<'a>> {
        let mut regexes = Vec::new();
        let mut likes = Vec::new();
        let mut types = Vec::new();
        let mut ins = Vec::new();
        let mut ok = true;
        for m in &decl.matchers {
            match &m.kind {
                ast::MatcherKind::Named(re) => {
                    let built = regex::RegexBuilder::new(&re.pattern)
                        .case_insensitive(re.case_insensitive)
                        .size_limit(1 << 20)
                        .build();
                    match built {
                        Ok(r) => regexes.push(r),
                        Err(e) => {
                            ok = false;
                            self.diags.push(diag::bad_regex(re.span, &e.to_string()));
                        }
                    }
                }
                ast::MatcherKind::Like(s) => {
                    likes.push((s.value.clone(), s.value.matches('.').count()));
                }
                ast::MatcherKind::In(s) => {
                    ins.push((s.value.clone(), s.value.matches('.').count()))
                }
                ast::MatcherKind::Type(ts) => {
                    // Several `of type` lists would all have to hold; one list
                    // means any of its types.
                    types = ts.iter().map(|t| normalise_type(&t.text)).collect();
                }
            }
        }
        let (level, categories) = self.label_ref(&decl.label)?;
        ok.then_some(Pattern {
            decl,
            regexes,
            likes,
            types,
            ins,
            level,
            categories,
            priority: decl.priority.map_or(0, |p| p.value),
        })
    }

    fn patterns(
        &mut self,
        items: &[&Item],
        classes: &mut [Vec<ColumnClass>],
        sources: &HashMap<(RelId, ColId), Source>,
    ) {
        let decls: Vec<&ast::ClassifyDecl> = declarations!(items, Classify);
        let patterns: Vec<Pattern<'_>> = decls
            .iter()
            .filter_map(|d| self.compile_pattern(d))
            .collect();
        if patterns.is_empty() {
            return;
        }
        let schema = self.schema;
        let mut conflicts: HashSet<(usize, usize)> = HashSet::new();
        let mut shadows: HashSet<(Span, usize)> = HashSet::new();
        // Per pattern: columns its mask does not fit (count, example, type).
        let mut misfits: HashMap<usize, (usize, String, String)> = HashMap::new();
        let mut matched: Vec<usize> = Vec::new();
        for (ri, rel) in schema.relations_with_ids() {
            // A catalog relation no declaration classifies is refused whole:
            // patterns do not reach into it.
            if rel.schema == crate::schema::catalog::SCHEMA && !self.declared_tables.contains(&ri) {
                continue;
            }
            for (ci, column) in rel.columns_with_ids() {
                matched.clear();
                matched.extend(
                    patterns
                        .iter()
                        .enumerate()
                        .filter(|(_, p)| p.matches(&rel.schema, &rel.name, column))
                        .map(|(i, _)| i),
                );
                if matched.is_empty() {
                    continue;
                }
                let top = matched
                    .iter()
                    .map(|&i| patterns[i].priority)
                    .max()
                    .unwrap_or(0);
                let winners: Vec<usize> = matched
                    .iter()
                    .copied()
                    .filter(|&i| patterns[i].priority == top)
                    .collect();
                let first = winners[0];
                let describe = |p: &Pattern<'_>| {
                    let mut s = self.labels[p.level].clone();
                    let cats: Vec<&str> = p
                        .categories
                        .indices()
                        .map(|i| self.categories[i].as_str())
                        .collect();
                    if !cats.is_empty() {
                        s.push_str(&format!(" [{}]", cats.join(", ")));
                    }
                    if let Some(m) = &p.decl.mask {
                        s.push_str(&format!(" mask {}", clsf_lang::format::mask(m)));
                    }
                    s
                };
                let mut conflict = false;
                for &other in &winners[1..] {
                    let (a, b) = (describe(&patterns[first]), describe(&patterns[other]));
                    if a != b {
                        conflict = true;
                        if conflicts.insert((first, other)) {
                            let name = format!("{}.{}", rel.qualified(), column.name);
                            self.diags.push(diag::pattern_conflict(
                                patterns[other].decl.span,
                                patterns[first].decl.span,
                                &name,
                                &b,
                                &a,
                            ));
                        }
                    }
                }
                if conflict {
                    continue;
                }
                let p = &patterns[first];
                if let Some(src) = sources.get(&(ri, ci)) {
                    // A declaration took precedence; warn when the pattern
                    // would have protected the column more.
                    let class = &classes[ri][ci];
                    let more = p.level > class.level || (p.categories.0 & !class.categories.0) != 0;
                    if more && shadows.insert((src.span, first)) {
                        let name = format!("{}.{}", rel.qualified(), column.name);
                        let why = format!(
                            "the {} classification makes it {}, the pattern would make it {}",
                            src.origin.as_str(),
                            self.labels[class.level],
                            describe(p)
                        );
                        self.diags
                            .push(diag::shadowed(p.decl.span, src.span, &name, &why));
                    }
                    continue;
                }
                let mask = match &p.decl.mask {
                    None => None,
                    Some(m) => match self.mask_for(m, column, &column.name, false) {
                        Ok(mask) => Some(mask),
                        Err(MaskProblem::Type) => {
                            let e = misfits.entry(first).or_insert_with(|| {
                                (
                                    0,
                                    format!("{}.{}", rel.qualified(), column.name),
                                    column.type_name.clone(),
                                )
                            });
                            e.0 += 1;
                            None
                        }
                        // Argument errors are the same for every column:
                        // report them once, then stop trying this mask.
                        Err(MaskProblem::Fatal) => return,
                    },
                };
                classes[ri][ci] = ColumnClass {
                    level: p.level,
                    categories: p.categories,
                    mask,
                    origin: Origin::Pattern,
                };
            }
        }
        let mut misfits: Vec<_> = misfits.into_iter().collect();
        misfits.sort_by_key(|(i, _)| *i);
        for (i, (n, example, type_name)) in misfits {
            let m = patterns[i]
                .decl
                .mask
                .as_ref()
                .expect("misfit implies a mask");
            self.diags.push(diag::mask_partly_fits(
                m.span,
                &clsf_lang::format::mask(m),
                n,
                &example,
                &type_name,
            ));
        }
    }
}

/// Gives every column of relation `ri` a default label from `source`.
fn set_default(
    classes: &mut [ColumnClass],
    sources: &mut HashMap<(RelId, ColId), Source>,
    ri: RelId,
    level: usize,
    categories: Categories,
    source: Source,
) {
    for (ci, class) in classes.iter_mut().enumerate() {
        *class = ColumnClass {
            level,
            categories,
            mask: None,
            origin: source.origin,
        };
        sources.insert((ri, ColId(ci)), source);
    }
}

/// Whether `t` names a type family or a concrete type clsf knows.
pub(crate) fn family_of_declared(t: &str) -> Option<TypeFamily> {
    Some(match t {
        "text" => TypeFamily::Text,
        "number" => TypeFamily::Number,
        "boolean" | "bool" => TypeFamily::Bool,
        "date" => TypeFamily::Date,
        "timestamp" => TypeFamily::Timestamp,
        "uuid" => TypeFamily::Uuid,
        other => match TypeFamily::of(&normalise_type(other)) {
            TypeFamily::Other => return None,
            f => f,
        },
    })
}
