//! Text → [`ast::File`] with diagnostics. pest stops at a file's first syntax
//! error, so each file is parsed on its own and reports at most one.

use pest::Parser as _;
use pest::iterators::Pair;

use crate::ast;
use crate::diagnostic::Diagnostic;
use crate::diagnostics;
use crate::span::{FileId, Span};

#[derive(pest_derive::Parser)]
#[grammar = "grammar.pest"]
struct Grammar;

/// The result of parsing one file: the tree (empty on a syntax error) and
/// what went wrong.
#[derive(Debug)]
pub struct ParseResult {
    /// The parsed file.
    pub file: ast::File,
    /// Syntax errors.
    pub diagnostics: Vec<Diagnostic>,
}

/// Parses one policy file.
pub fn parse(file: FileId, text: &str) -> ParseResult {
    // Detailed attempts name the literal tokens expected at the farthest
    // position (`:`, `{`…), which rule names alone cannot. Policies are
    // small, so the extra tracking costs nothing noticeable.
    pest::set_error_detail(true);
    let pairs = match Grammar::parse(Rule::file, text) {
        Ok(pairs) => pairs,
        Err(err) => {
            return ParseResult {
                file: ast::File::default(),
                diagnostics: vec![syntax_error(file, text, err)],
            };
        }
    };
    let cx = Cx { file };
    let mut items = Vec::new();
    let mut diagnostics = Vec::new();
    for pair in pairs.flatten().filter(|p| p.as_rule() == Rule::file) {
        for item in pair.into_inner().filter(not_keyword) {
            match item.as_rule() {
                Rule::labels_decl => items.push(ast::Item::Labels(cx.labels(item))),
                Rule::unclassified_decl => {
                    items.push(ast::Item::Unclassified(cx.unclassified(item)))
                }
                Rule::group_decl => items.push(ast::Item::Group(cx.group(item))),
                Rule::table_decl => items.push(ast::Item::Table(cx.table(item, &mut diagnostics))),
                Rule::rule_decl => items.push(ast::Item::Rule(cx.rule(item))),
                _ => {}
            }
        }
    }
    ParseResult {
        file: ast::File { items },
        diagnostics,
    }
}

fn syntax_error(file: FileId, text: &str, err: pest::error::Error<Rule>) -> Diagnostic {
    let (mut start, mut end) = match err.location {
        pest::error::InputLocation::Pos(p) => (p, p),
        pest::error::InputLocation::Span((s, e)) => (s, e),
    };
    let mut expected: Vec<String> = match &err.variant {
        pest::error::ErrorVariant::ParsingError { positives, .. } => positives
            .iter()
            .filter_map(|r| describe(*r))
            .map(str::to_owned)
            .collect(),
        pest::error::ErrorVariant::CustomError { .. } => Vec::new(),
    };
    if let Some(attempts) = err.parse_attempts() {
        let tokens: Vec<String> = attempts
            .expected_tokens()
            .iter()
            .map(ToString::to_string)
            // Name continuations, character ranges, built-in rules and
            // comment starts are always possible; listing them is noise.
            .filter(|t| {
                !matches!(
                    t.as_str(),
                    "_" | "-" | "//" | "/*" | " " | "\t" | "\r" | "\n" | "BUILTIN_RULE"
                ) && !t.contains("..")
            })
            .map(|t| format!("`{t}`"))
            .collect();
        if !tokens.is_empty() && attempts.max_position >= start {
            start = attempts.max_position;
            end = start;
            expected = tokens;
        }
    }
    // Skip whitespace to the offending token, then point at all of it.
    while start < text.len() && text[start..].starts_with(char::is_whitespace) {
        start += text[start..].chars().next().map_or(1, char::len_utf8);
    }
    if end <= start {
        end = text[start..]
            .char_indices()
            .find(|(_, c)| c.is_whitespace())
            .map_or(text.len(), |(i, _)| start + i);
    }
    expected.sort();
    expected.dedup();
    let found = if start >= text.len() {
        "end of file".to_owned()
    } else {
        format!("`{}`", &text[start..end])
    };
    diagnostics::syntax_error(Span::new(file, start, end), &found, &expected)
}

/// User-facing names of grammar rules; `None` hides internal rules.
fn describe(rule: Rule) -> Option<&'static str> {
    Some(match rule {
        Rule::labels_decl => "`labels`",
        Rule::unclassified_decl => "`unclassified`",
        Rule::group_decl => "`group`",
        Rule::table_decl => "`table`",
        Rule::rule_decl => "`rule`",
        Rule::EOI => "end of file",
        Rule::ident | Rule::name | Rule::qualified_name => "a name",
        Rule::quoted_ident => "a quoted name",
        Rule::string | Rule::claim_name => "a string",
        Rule::integer => "an integer",
        Rule::issuer_cond => "`issuer`",
        Rule::audience_cond => "`audience`",
        Rule::claim_cond => "`claim`",
        Rule::claim_op => "`==` or `contains`",
        Rule::column_decl => "a column classification",
        Rule::table_body => "`{`",
        Rule::mask_expr => "a mask",
        Rule::rule_clause | Rule::rule_action => "`allow`, `mask` or `deny`",
        Rule::label_cmp => "a comparison",
        _ => return None,
    })
}

/// Keywords are atomic rules so that `labelsx` is not `labels x`; they
/// carry no information, so the tree walkers skip them.
fn not_keyword(pair: &Pair<'_, Rule>) -> bool {
    !matches!(
        pair.as_rule(),
        Rule::kw_labels
            | Rule::kw_unclassified
            | Rule::kw_group
            | Rule::kw_table
            | Rule::kw_rule
            | Rule::kw_for
            | Rule::kw_mask
            | Rule::kw_issuer
            | Rule::kw_audience
            | Rule::kw_claim
    )
}

struct Cx {
    file: FileId,
}

impl Cx {
    fn span(&self, pair: &Pair<'_, Rule>) -> Span {
        let s = pair.as_span();
        Span::new(self.file, s.start(), s.end())
    }

    fn name(&self, pair: Pair<'_, Rule>) -> ast::Name {
        let span = self.span(&pair);
        let raw = pair.as_str();
        let text = match pair.as_rule() {
            Rule::quoted_ident => raw[1..raw.len() - 1].replace("\"\"", "\""),
            _ => raw.to_ascii_lowercase(),
        };
        ast::Name { text, span }
    }

    fn string(&self, pair: Pair<'_, Rule>) -> ast::StringLit {
        let span = self.span(&pair);
        let raw = pair.as_str();
        let value = if pair.as_rule() == Rule::string {
            raw[1..raw.len() - 1]
                .replace("\\\"", "\"")
                .replace("\\\\", "\\")
        } else {
            raw.to_owned()
        };
        ast::StringLit { value, span }
    }

    fn labels(&self, pair: Pair<'_, Rule>) -> ast::LabelsDecl {
        let span = self.span(&pair);
        ast::LabelsDecl {
            labels: pair
                .into_inner()
                .filter(not_keyword)
                .map(|p| self.name(p))
                .collect(),
            span,
        }
    }

    fn unclassified(&self, pair: Pair<'_, Rule>) -> ast::UnclassifiedDecl {
        let span = self.span(&pair);
        let label = self.name(
            pair.into_inner()
                .find(not_keyword)
                .expect("grammar: unclassified has a label"),
        );
        ast::UnclassifiedDecl { label, span }
    }

    fn group(&self, pair: Pair<'_, Rule>) -> ast::GroupDecl {
        let span = self.span(&pair);
        let mut inner = pair.into_inner().filter(not_keyword);
        let name = self.name(inner.next().expect("grammar: group has a name"));
        let conditions = inner.map(|c| self.condition(c)).collect();
        ast::GroupDecl {
            name,
            conditions,
            span,
        }
    }

    fn condition(&self, pair: Pair<'_, Rule>) -> ast::Condition {
        let span = self.span(&pair);
        let rule = pair.as_rule();
        let mut inner = pair.into_inner().filter(not_keyword);
        match rule {
            Rule::issuer_cond => {
                ast::Condition::Issuer(self.string(inner.next().expect("grammar: issuer string")))
            }
            Rule::audience_cond => ast::Condition::Audience(
                self.string(inner.next().expect("grammar: audience string")),
            ),
            _ => {
                let claim_name = inner.next().expect("grammar: claim name");
                let claim = self.string(
                    claim_name
                        .into_inner()
                        .find(not_keyword)
                        .expect("grammar: claim name inner"),
                );
                let op = match inner.next().expect("grammar: claim op").as_str() {
                    "contains" => ast::ClaimOp::Contains,
                    _ => ast::ClaimOp::Equals,
                };
                let value = self.string(inner.next().expect("grammar: claim value"));
                ast::Condition::Claim(ast::ClaimCondition {
                    claim,
                    op,
                    value,
                    span,
                })
            }
        }
    }

    fn table(&self, pair: Pair<'_, Rule>, diagnostics: &mut Vec<Diagnostic>) -> ast::TableDecl {
        let span = self.span(&pair);
        let mut inner = pair.into_inner().filter(not_keyword);
        let qname = inner.next().expect("grammar: table name");
        let name_span = self.span(&qname);
        let name: Vec<ast::Name> = qname
            .into_inner()
            .filter(not_keyword)
            .map(|p| self.name(p))
            .collect();
        let mut default_label = None;
        let mut columns = Vec::new();
        for part in inner {
            match part.as_rule() {
                Rule::ident => default_label = Some(self.name(part)),
                Rule::table_body => {
                    for col in part.into_inner().filter(not_keyword) {
                        columns.push(self.column(col, diagnostics));
                    }
                }
                _ => {}
            }
        }
        ast::TableDecl {
            name,
            name_span,
            default_label,
            columns,
            span,
        }
    }

    fn column(&self, pair: Pair<'_, Rule>, diagnostics: &mut Vec<Diagnostic>) -> ast::ColumnDecl {
        let span = self.span(&pair);
        let mut inner = pair.into_inner().filter(not_keyword);
        let name = self.name(inner.next().expect("grammar: column name"));
        let label = self.name(inner.next().expect("grammar: column label"));
        let mask = inner.next().map(|m| {
            let mspan = self.span(&m);
            let mut parts = m.into_inner().filter(not_keyword);
            let mname = self.name(parts.next().expect("grammar: mask name"));
            let args = parts
                .map(|a| {
                    let aspan = self.span(&a);
                    let value = a.as_str().parse::<u64>().unwrap_or_else(|_| {
                        diagnostics.push(diagnostics::integer_too_large(aspan));
                        0
                    });
                    (value, aspan)
                })
                .collect();
            ast::MaskExpr {
                name: mname,
                args,
                span: mspan,
            }
        });
        ast::ColumnDecl {
            name,
            label,
            mask,
            span,
        }
    }

    fn rule(&self, pair: Pair<'_, Rule>) -> ast::RuleDecl {
        let span = self.span(&pair);
        let mut inner = pair.into_inner().filter(not_keyword);
        let name = self.name(inner.next().expect("grammar: rule name"));
        let group = self.name(inner.next().expect("grammar: rule group"));
        let clauses = inner.map(|c| self.clause(c)).collect();
        ast::RuleDecl {
            name,
            group,
            clauses,
            span,
        }
    }

    fn clause(&self, pair: Pair<'_, Rule>) -> ast::RuleClause {
        let span = self.span(&pair);
        let mut action = ast::RuleAction::Deny;
        let mut cmp = ast::LabelCmp::Eq;
        let mut label = None;
        for part in pair.into_inner().filter(not_keyword) {
            match part.as_rule() {
                Rule::rule_action => {
                    action = match part.as_str() {
                        "allow" => ast::RuleAction::Allow,
                        "mask" => ast::RuleAction::Mask,
                        _ => ast::RuleAction::Deny,
                    }
                }
                Rule::label_cmp => {
                    cmp = match part.as_str() {
                        "<=" => ast::LabelCmp::Le,
                        "<" => ast::LabelCmp::Lt,
                        ">=" => ast::LabelCmp::Ge,
                        ">" => ast::LabelCmp::Gt,
                        _ => ast::LabelCmp::Eq,
                    }
                }
                _ => label = Some(self.name(part)),
            }
        }
        ast::RuleClause {
            action,
            cmp,
            label: label.expect("grammar: clause has a label"),
            span,
        }
    }
}
