//! The canonical formatter: AST + source text → text.
//!
//! Canonical form: two-space indentation, one declaration per line, no `;`,
//! column labels aligned within a table, clause verbs aligned within a rule,
//! at most one blank line kept wherever the source had one. Comments are
//! kept: a comment on its own line stays before the next declaration or
//! member; a comment that ends a line stays at the end of that line; a
//! comment written between the tokens of one member moves to the end of that
//! member's line. Formatting is idempotent (tested).

use crate::ast::*;

/// Formats a parsed file. `text` must be the text `file` was parsed from,
/// without syntax errors (the formatter would drop broken declarations).
pub fn format(file: &File, text: &str) -> String {
    let mut f = Formatter {
        src: text,
        comments: comments(text),
        next: 0,
        cursor: 0,
        out: String::new(),
    };
    for item in &file.items {
        let span = item.span();
        let end = f.content_end(span.start, span.end);
        f.leading(span.start, 0);
        if f.blank_before(span.start) {
            f.blank_line();
        }
        f.item(item);
        f.trailing(end);
        f.cursor = f.cursor.max(end);
    }
    f.leading(text.len(), 0);
    let mut out = f.out;
    while out.ends_with("\n\n") {
        out.pop();
    }
    if !out.is_empty() && !out.ends_with('\n') {
        out.push('\n');
    }
    out
}

/// Byte ranges of the comments of `text`, outside strings and regexes.
pub fn comments(text: &str) -> Vec<(usize, usize)> {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    let mut prev_significant = b' ';
    while i < bytes.len() {
        match bytes[i] {
            b'"' => {
                i += 1;
                while i < bytes.len() && bytes[i] != b'"' {
                    i += if bytes[i] == b'\\' { 2 } else { 1 };
                }
            }
            b'/' if bytes.get(i + 1) == Some(&b'/') => {
                let start = i;
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
                out.push((start, i));
                continue;
            }
            // An unterminated `/*` right after `named` is no comment to the
            // grammar (its block comment needs `*/`): it starts a regex.
            b'/' if bytes.get(i + 1) == Some(&b'*')
                && !(prev_significant == b'd'
                    && text[..i].trim_end().ends_with("named")
                    && !text[i + 2..].contains("*/")) =>
            {
                let start = i;
                i += 2;
                while i < bytes.len() && !bytes[i..].starts_with(b"*/") {
                    i += 1;
                }
                i = (i + 2).min(bytes.len());
                out.push((start, i));
                continue;
            }
            // A regex literal follows `named`; skip it so that `//` or `/*`
            // inside it is not taken for a comment.
            b'/' if prev_significant == b'd' && text[..i].trim_end().ends_with("named") => {
                i += 1;
                while i < bytes.len() && bytes[i] != b'/' && bytes[i] != b'\n' {
                    i += if bytes[i] == b'\\' { 2 } else { 1 };
                }
            }
            _ => {}
        }
        if i < bytes.len() && !bytes[i].is_ascii_whitespace() {
            prev_significant = bytes[i];
        }
        i += 1;
    }
    out
}

/// Line width past which a `classify` declaration is broken before `as`.
const MAX_WIDTH: usize = 100;

struct Formatter<'a> {
    src: &'a str,
    comments: Vec<(usize, usize)>,
    /// Index of the first comment not yet emitted.
    next: usize,
    /// Source position up to which everything has been emitted.
    cursor: usize,
    out: String,
}

impl Formatter<'_> {
    /// True when the source has an empty line between what was last
    /// emitted and `pos` (dropped `;` and `,` count as blank).
    fn blank_before(&self, pos: usize) -> bool {
        let gap: String = self.src[self.cursor.min(pos)..pos]
            .chars()
            .filter(|c| !matches!(c, ' ' | '\t' | '\r' | ';' | ','))
            .collect();
        gap.contains("\n\n")
    }

    /// The end of the last token of a node spanning `start..end`: pest
    /// spans run over the whitespace and comments after an optional `;`.
    fn content_end(&self, start: usize, end: usize) -> usize {
        let mut pos = end;
        loop {
            let trimmed = self.src[start..pos].trim_end().len() + start;
            match self
                .comments
                .iter()
                .find(|&&(s, e)| s >= start && s < trimmed && trimmed <= e)
            {
                Some(&(s, _)) => pos = s,
                None => return trimmed,
            }
        }
    }

    fn blank_line(&mut self) {
        if !self.out.is_empty() && !self.out.ends_with("\n\n") && !self.out.ends_with("{\n") {
            self.out.push('\n');
        }
    }

    fn indent(&mut self, level: usize) {
        for _ in 0..level {
            self.out.push_str("  ");
        }
    }

    /// Emits the comments that start before `pos`, each on its own line.
    fn leading(&mut self, pos: usize, level: usize) {
        while self.next < self.comments.len() && self.comments[self.next].0 < pos {
            let (s, e) = self.comments[self.next];
            if self.blank_before(s) {
                self.blank_line();
            }
            self.indent(level);
            self.out.push_str(self.src[s..e].trim_end());
            self.out.push('\n');
            self.cursor = e;
            self.next += 1;
        }
    }

    /// Ends the current line, first appending the comments that start inside
    /// the node just printed or on the same source line after it.
    fn trailing(&mut self, end: usize) {
        while self.next < self.comments.len() {
            let (s, e) = self.comments[self.next];
            // Measured from the last comment appended, not the node's end:
            // after a comment spanning lines, the next one on its closing
            // line still trails (else a second format would move it).
            let from = self.cursor.max(end);
            let same_line = s >= from && !self.src[from..s].contains('\n');
            // Nothing may follow a line comment on its line: the comments
            // after it are left for the next node, each on its own line.
            let after_line_comment = self.next > 0 && {
                let (ps, pe) = self.comments[self.next - 1];
                let previous = &self.src[ps..pe];
                previous.starts_with("//") && self.out.ends_with(previous.trim_end())
            };
            if after_line_comment {
                break;
            }
            if s < end || same_line {
                self.out.push(' ');
                self.out.push_str(self.src[s..e].trim_end());
                self.cursor = e;
                self.next += 1;
            } else {
                break;
            }
        }
        self.out.push('\n');
    }

    fn item(&mut self, item: &Item) {
        match item {
            Item::Use(u) => {
                self.out.push_str("use ");
                match &u.target {
                    UseTarget::Std(parts) => {
                        let p: Vec<_> = parts.iter().map(name).collect();
                        self.out.push_str(&p.join("::"));
                    }
                    UseTarget::Path(s) => self.out.push_str(&string(&s.value)),
                }
            }
            Item::Labels(l) => {
                let names: Vec<_> = l.labels.iter().map(name).collect();
                self.out.push_str(&format!("labels {}", names.join(" < ")));
            }
            Item::Categories(c) => {
                let names: Vec<_> = c.categories.iter().map(name).collect();
                self.out
                    .push_str(&format!("categories {}", names.join(", ")));
            }
            Item::Unclassified(u) => {
                self.out
                    .push_str(&format!("unclassified {}", label_ref(&u.label)));
                if let Some(r) = u.report {
                    self.out.push_str(&format!(" report {}", r.as_str()));
                }
            }
            Item::Group(g) => self.group(g),
            Item::Schema(s) => {
                self.out.push_str(&format!(
                    "schema {}: {}",
                    name(&s.name),
                    label_ref(&s.label)
                ));
            }
            Item::Table(t) => self.table(t),
            Item::Classify(c) => {
                let mut head = String::from("classify columns");
                for m in &c.matchers {
                    head.push(' ');
                    head.push_str(&matcher(m));
                }
                let mut tail = format!("as {}", label_ref(&c.label));
                if let Some(m) = &c.mask {
                    tail.push_str(&format!(" mask {}", mask(m)));
                }
                if let Some(p) = &c.priority {
                    tail.push_str(&format!(" priority {}", p.value));
                }
                // Long patterns put what they decide on a line of its own.
                let sep = if head.len() + tail.len() + 1 > MAX_WIDTH {
                    "\n  "
                } else {
                    " "
                };
                self.out.push_str(&format!("{head}{sep}{tail}"));
            }
            Item::Mask(m) => {
                let inputs: Vec<_> = m.inputs.iter().map(type_name).collect();
                self.out.push_str(&format!(
                    "mask {}({}: {}) -> {} = {}",
                    name(&m.name),
                    name(&m.param),
                    inputs.join(" | "),
                    type_name(&m.output),
                    string(&m.template.value)
                ));
            }
            Item::Rule(r) => self.rule(r),
        }
    }

    /// Prints `{`, the members (each through `print`), and `}`.
    fn body<T>(
        &mut self,
        members: &[T],
        span_of: impl Fn(&T) -> crate::span::Span,
        close: usize,
        mut print: impl FnMut(&mut Self, &T),
    ) {
        self.out.push_str(" {");
        if members.is_empty() && !self.has_comment_before(close) {
            self.out.push('}');
            return;
        }
        self.out.push('\n');
        for m in members {
            let span = span_of(m);
            let end = self.content_end(span.start, span.end);
            self.leading(span.start, 1);
            if self.blank_before(span.start) {
                self.blank_line();
            }
            self.indent(1);
            print(self, m);
            self.trailing(end);
            self.cursor = self.cursor.max(end);
        }
        self.leading(close, 1);
        self.out.push('}');
    }

    fn has_comment_before(&self, pos: usize) -> bool {
        self.comments.get(self.next).is_some_and(|&(s, _)| s < pos)
    }

    fn group(&mut self, g: &GroupDecl) {
        self.out.push_str(&format!("group {}", name(&g.name)));
        match &g.body {
            GroupBody::Expr(e) => {
                self.out.push_str(" = ");
                self.out.push_str(&group_expr(e, false));
            }
            GroupBody::Conditions(conds) => {
                let close = closing_brace(self.src, g.span.end);
                self.body(
                    conds,
                    |c| c.span,
                    close,
                    |f, c| f.out.push_str(&condition(c)),
                );
            }
        }
    }

    fn table(&mut self, t: &TableDecl) {
        self.out.push_str(&format!("table {}", qualified(&t.name)));
        if let Some(l) = &t.label {
            self.out.push_str(&format!(": {}", label_ref(l)));
        }
        if !t.has_body {
            return;
        }
        let width = t
            .columns
            .iter()
            .map(|c| name(&c.name).chars().count() + 1)
            .max()
            .unwrap_or(0);
        let close = closing_brace(self.src, t.span.end);
        self.body(
            &t.columns,
            |c| c.span,
            close,
            |f, c| {
                let head = format!("{}:", name(&c.name));
                let pad = width + 1 - head.chars().count();
                f.out.push_str(&head);
                f.out.push_str(&" ".repeat(pad));
                f.out.push_str(&label_ref(&c.label));
                if let Some(m) = &c.mask {
                    f.out.push_str(&format!(" mask {}", mask(m)));
                }
                if let Some(r) = &c.reason {
                    f.out
                        .push_str(&format!(" override because {}", string(&r.value)));
                }
            },
        );
    }

    fn rule(&mut self, r: &RuleDecl) {
        self.out
            .push_str(&format!("rule {} for {}", name(&r.name), name(&r.group)));
        if r.observe {
            self.out.push_str(" observe");
        }
        let verb_width = r
            .clauses
            .iter()
            .filter_map(|c| match &c.kind {
                ClauseKind::Access { effect, .. } => Some(effect.as_str().len()),
                _ => None,
            })
            .max()
            .unwrap_or(0);
        let close = closing_brace(self.src, r.span.end);
        self.body(
            &r.clauses,
            |c| c.span,
            close,
            |f, c| {
                f.out.push_str(&clause(c, verb_width));
            },
        );
    }
}

/// The position of the `}` that closes a declaration ending at `end`.
fn closing_brace(src: &str, end: usize) -> usize {
    src[..end].rfind('}').unwrap_or(end)
}

fn name(n: &Name) -> String {
    if n.quoted {
        format!("\"{}\"", n.text.replace('"', "\"\""))
    } else {
        n.text.clone()
    }
}

fn qualified(q: &QualifiedName) -> String {
    q.parts.iter().map(name).collect::<Vec<_>>().join(".")
}

/// A string literal, escaped.
pub fn string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn label_ref(l: &LabelRef) -> String {
    if l.categories.is_empty() {
        name(&l.level)
    } else {
        let cats: Vec<_> = l.categories.iter().map(name).collect();
        format!("{} [{}]", name(&l.level), cats.join(", "))
    }
}

fn group_expr(e: &GroupExpr, nested: bool) -> String {
    match e {
        GroupExpr::Ref(n) => name(n),
        GroupExpr::Not(inner) => format!("not {}", group_expr(inner, true)),
        GroupExpr::And(terms) | GroupExpr::Or(terms) => {
            let op = if matches!(e, GroupExpr::And(_)) {
                " and "
            } else {
                " or "
            };
            let inner: Vec<_> = terms
                .iter()
                .map(|t| group_expr(t, matches!(t, GroupExpr::And(_) | GroupExpr::Or(_))))
                .collect();
            let joined = inner.join(op);
            if nested {
                format!("({joined})")
            } else {
                joined
            }
        }
    }
}

fn str_test(t: &StrTest, bare_equals: bool) -> String {
    match t {
        StrTest::Equals(s) if bare_equals => string(&s.value),
        StrTest::Equals(s) => format!("== {}", string(&s.value)),
        StrTest::NotEquals(s) => format!("!= {}", string(&s.value)),
        StrTest::Like(s) => format!("like {}", string(&s.value)),
        StrTest::In(list) => {
            let items: Vec<_> = list.iter().map(|s| string(&s.value)).collect();
            format!("in [{}]", items.join(", "))
        }
    }
}

fn is_plain_ident(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

fn condition(c: &Condition) -> String {
    match &c.kind {
        ConditionKind::Issuer(t) => format!("issuer {}", str_test(t, true)),
        ConditionKind::Audience(s) => format!("audience {}", string(&s.value)),
        ConditionKind::Subject(t) => format!("subject {}", str_test(t, true)),
        ConditionKind::Account(s) => format!("account {}", string(&s.value)),
        ConditionKind::Certificate { field, test } => {
            let f = match field {
                CertField::Subject => "subject",
                CertField::San => "san",
            };
            format!("certificate {f} {}", str_test(test, false))
        }
        ConditionKind::Claim { path, test } => {
            let p: Vec<_> = path
                .iter()
                .map(|s| {
                    if is_plain_ident(&s.value) {
                        s.value.clone()
                    } else {
                        string(&s.value)
                    }
                })
                .collect();
            let t = match test {
                ClaimTest::Contains(s) => format!("contains {}", string(&s.value)),
                ClaimTest::Str(t) => str_test(t, false),
            };
            format!("claim {} {t}", p.join("."))
        }
    }
}

fn type_name(t: &TypeName) -> String {
    let (base, array) = match t.text.strip_suffix("[]") {
        Some(b) => (b, "[]"),
        None => (t.text.as_str(), ""),
    };
    let plain = base.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && base.chars().next().is_some_and(|c| !c.is_ascii_digit());
    if plain {
        format!("{base}{array}")
    } else {
        format!("{}{array}", string(base))
    }
}

fn matcher(m: &Matcher) -> String {
    match &m.kind {
        MatcherKind::Named(re) => format!(
            "named /{}/{}",
            re.pattern.replace('/', "\\/"),
            if re.case_insensitive { "i" } else { "" }
        ),
        MatcherKind::Like(s) => format!("like {}", string(&s.value)),
        MatcherKind::In(s) => format!("in {}", string(&s.value)),
        MatcherKind::Type(types) => {
            let t: Vec<_> = types.iter().map(type_name).collect();
            format!("of type {}", t.join(", "))
        }
    }
}

/// A mask application as written canonically.
pub fn mask(m: &MaskExpr) -> String {
    if !m.parens {
        return name(&m.name);
    }
    let args: Vec<_> = m
        .args
        .iter()
        .map(|a| match &a.value {
            ArgValue::Int(i) => i.to_string(),
            ArgValue::Str(s) => string(s),
            ArgValue::Bool(b) => b.to_string(),
        })
        .collect();
    format!("{}({})", name(&m.name), args.join(", "))
}

fn actions(a: &[ActionRef]) -> String {
    a.iter()
        .map(|a| a.action.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

fn target(t: &Target) -> String {
    match &t.kind {
        TargetKind::Label { cmp, label } => match cmp {
            LabelCmp::Eq => name(label),
            other => format!("{} {}", other.as_str(), name(label)),
        },
        TargetKind::Categories(c) => {
            let names: Vec<_> = c.iter().map(name).collect();
            format!("[{}]", names.join(", "))
        }
        TargetKind::Table(q) => format!("table {}", qualified(q)),
        TargetKind::Column(q) => format!("column {}", qualified(q)),
        TargetKind::Functions(fs) => {
            let names: Vec<_> = fs.iter().map(qualified).collect();
            format!("function {}", names.join(", "))
        }
    }
}

fn duration(d: &Duration) -> String {
    let factor = match d.unit {
        'm' => 60,
        'h' => 3600,
        'd' => 86_400,
        _ => 1,
    };
    format!("{}{}", d.seconds / factor, d.unit)
}

fn clause(c: &RuleClause, verb_width: usize) -> String {
    let mut parts: Vec<String> = Vec::new();
    match &c.kind {
        ClauseKind::Access {
            effect,
            actions: acts,
            target: tgt,
            mask: m,
            reason,
        } => {
            let verb = effect.as_str();
            let mut head = verb.to_owned();
            let has_more = !acts.is_empty() || tgt.is_some() || m.is_some() || reason.is_some();
            if has_more {
                head.push_str(&" ".repeat(verb_width.saturating_sub(verb.len())));
            }
            parts.push(head);
            if !acts.is_empty() {
                parts.push(actions(acts));
            }
            if let Some(t) = tgt {
                parts.push(target(t));
            }
            if let Some(m) = m {
                parts.push(format!("with {}", mask(m)));
            }
            if let Some(r) = reason {
                parts.push(format!("override because {}", string(&r.value)));
            }
        }
        ClauseKind::Approval {
            actions: acts,
            target: tgt,
            approvers,
            ttl,
            scope,
            quorum,
        } => {
            parts.push("require approval".to_owned());
            if !acts.is_empty() {
                parts.push(actions(acts));
            }
            if let Some(t) = tgt {
                parts.push(target(t));
            }
            parts.push(format!("by {}", name(approvers)));
            if let Some(t) = ttl {
                parts.push(format!("ttl {}", duration(t)));
            }
            if let Some(s) = scope {
                parts.push(match s {
                    ApprovalScope::Statement => "scope statement".to_owned(),
                    ApprovalScope::Session(None) => "scope session".to_owned(),
                    ApprovalScope::Session(Some(d)) => format!("scope session {}", duration(d)),
                    ApprovalScope::Executions(n) => format!("scope {} executions", n.value),
                });
            }
            if let Some(q) = quorum {
                parts.push(format!("quorum {}", q.value));
            }
        }
        ClauseKind::Filter { table, predicate } => {
            parts.push(format!(
                "filter table {} where {}",
                qualified(table),
                string(&predicate.value)
            ));
        }
        ClauseKind::Limit { rows, target: tgt } => {
            parts.push(format!("limit {} rows", rows.value));
            if let Some(t) = tgt {
                parts.push(target(t));
            }
        }
    }
    parts.join(" ")
}
