//! The lexical class of every token of a policy file, as the parser sees
//! it: the ground truth editor grammars are tested against (a keyword is a
//! keyword only where the grammar reads it as one).

use std::ops::Range;

use pest::Parser as _;

use crate::parser::generated::{Grammar, Rule};

/// Every keyword of the language (those that start or continue a
/// construct, the verbs, actions, report levels and `statement`), for
/// completion; a test keeps it equal to the grammar's.
pub const KEYWORDS: &[&str] = &[
    "use",
    "labels",
    "categories",
    "unclassified",
    "group",
    "schema",
    "table",
    "column",
    "columns",
    "function",
    "classify",
    "named",
    "like",
    "of",
    "type",
    "in",
    "as",
    "priority",
    "rule",
    "for",
    "observe",
    "mask",
    "with",
    "override",
    "because",
    "require",
    "approval",
    "by",
    "ttl",
    "scope",
    "quorum",
    "filter",
    "where",
    "limit",
    "rows",
    "issuer",
    "audience",
    "subject",
    "claim",
    "certificate",
    "san",
    "account",
    "contains",
    "and",
    "or",
    "not",
    "session",
    "executions",
    "report",
    "allow",
    "deny",
    "read",
    "write",
    "ddl",
    "export",
    "admin",
    "join",
    "order",
    "aggregate",
    "error",
    "warning",
    "none",
    "statement",
];

/// What a token is, for highlighting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenClass {
    /// A keyword where it starts or continues a construct (`table`,
    /// `allow`, `read`, `and`, `statement`, `error`…).
    Keyword,
    /// A double-quoted string, or a quoted name (`"order"`).
    String,
    /// A column-name pattern (`/^e-?mail$/i`).
    Regex,
    /// An integer, a signed mask argument or a duration (`30m`).
    Number,
    /// `true` or `false`.
    Boolean,
    /// A `//` or `/* */` comment.
    Comment,
    /// A name (label, group, mask, rule, schema, table, column, type).
    Name,
}

/// One token of a file: its byte range and class.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    /// Byte offsets in the file's text.
    pub range: Range<usize>,
    /// What it is.
    pub class: TokenClass,
}

/// Every keyword, string, regex, number, boolean, comment and name of
/// `text` in order, or `None` when the file does not parse (then there is
/// no ground truth to give).
pub fn tokens(text: &str) -> Option<Vec<Token>> {
    let pairs = Grammar::parse(Rule::file, text).ok()?;
    let mut out: Vec<Token> = pairs
        .flatten()
        .filter_map(|p| {
            let class = match p.as_rule() {
                Rule::verb | Rule::action | Rule::report_level | Rule::scope_statement => {
                    TokenClass::Keyword
                }
                r if format!("{r:?}").starts_with("kw_") => TokenClass::Keyword,
                Rule::string | Rule::quoted_ident => TokenClass::String,
                Rule::type_name if p.as_str().starts_with('"') => TokenClass::String,
                Rule::regex => TokenClass::Regex,
                Rule::integer | Rule::signed | Rule::duration => TokenClass::Number,
                Rule::boolean => TokenClass::Boolean,
                Rule::ident | Rule::type_name => TokenClass::Name,
                _ => return None,
            };
            let span = p.as_span();
            Some(Token {
                range: span.start()..span.end(),
                class,
            })
        })
        .collect();
    // Comments are silent in the grammar: they lie in the gaps between
    // the tokens above (never inside a string or a regex, which are
    // tokens), so a plain scan of each gap finds them exactly.
    let mut comments = Vec::new();
    let mut gap_start = 0;
    for t in out.iter().chain(std::iter::once(&Token {
        range: text.len()..text.len(),
        class: TokenClass::Name,
    })) {
        scan_comments(text, gap_start..t.range.start, &mut comments);
        gap_start = gap_start.max(t.range.end);
    }
    out.extend(comments);
    out.sort_by_key(|t| t.range.start);
    Some(out)
}

fn scan_comments(text: &str, gap: Range<usize>, out: &mut Vec<Token>) {
    let bytes = text.as_bytes();
    let mut i = gap.start;
    while i + 1 < gap.end {
        if bytes[i] == b'/' && bytes[i + 1] == b'/' {
            let end = text[i..gap.end].find('\n').map_or(gap.end, |n| i + n);
            out.push(Token {
                range: i..end,
                class: TokenClass::Comment,
            });
            i = end;
        } else if bytes[i] == b'/' && bytes[i + 1] == b'*' {
            let end = text[i + 2..gap.end]
                .find("*/")
                .map_or(gap.end, |n| i + 2 + n + 2);
            out.push(Token {
                range: i..end,
                class: TokenClass::Comment,
            });
            i = end;
        } else {
            i += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn classes(text: &str) -> Vec<(&str, TokenClass)> {
        tokens(text)
            .unwrap()
            .into_iter()
            .map(|t| (&text[t.range], t.class))
            .collect()
    }

    #[test]
    fn the_keyword_list_is_the_grammars() {
        let grammar = include_str!("grammar.pest");
        let mut words = Vec::new();
        for line in grammar.lines() {
            let Some((name, body)) = line.split_once('=') else {
                continue;
            };
            let name = name.trim();
            if name.starts_with("kw_")
                || ["verb", "action", "report_level", "scope_statement"].contains(&name)
            {
                words.extend(body.split('"').skip(1).step_by(2));
            }
        }
        words.sort_unstable();
        words.dedup();
        let mut listed = KEYWORDS.to_vec();
        listed.sort_unstable();
        assert_eq!(listed, words);
    }

    #[test]
    fn a_keyword_is_a_keyword_only_where_the_grammar_reads_one() {
        use TokenClass::*;
        let text = "// c\ntable t { mask: secret mask last(4) /* m */ }\nclassify columns named /^x$/i as secret\n";
        assert_eq!(
            classes(text),
            [
                ("// c", Comment),
                ("table", Keyword),
                ("t", Name),
                ("mask", Name),
                ("secret", Name),
                ("mask", Keyword),
                ("last", Name),
                ("4", Number),
                ("/* m */", Comment),
                ("classify", Keyword),
                ("columns", Keyword),
                ("named", Keyword),
                ("/^x$/i", Regex),
                ("as", Keyword),
                ("secret", Name),
            ]
        );
        assert!(tokens("table {").is_none());
    }
}
