//! `clsfc lsp`: the Language Server Protocol over stdin and stdout.
//!
//! What it serves (spec/language.md, *`clsfc lsp`*):
//! - diagnostics as you type: the codes, messages, labels and help of
//!   `clsfc check` for every `.clsf` file of the edited file's folder, with
//!   unsaved buffers, against the nearest `schema.lock.json` (or
//!   `initializationOptions.lock`); without a lock, syntax and imports only;
//! - formatting (`clsfc fmt`) and document symbols;
//! - hover: a table's or column's effective label, categories and mask
//!   from the compiled plan and what decided it; a group's or mask's
//!   declaration; the explanation of the diagnostic under the cursor;
//! - completion: keywords, the policy's names, built-in masks, and the
//!   lock's schemas, tables and columns after a `.`;
//! - definitions and references of labels, categories, groups, masks and
//!   rules; tables and columns go to their entries in the lock, `use "…"`
//!   to the files it imports;
//! - quick fixes: "did you mean", and `override because` where allowed.
//!
//! `lsp-server` (rust-analyzer's) does the framing and the
//! initialize/shutdown handshake; messages are handled as JSON values,
//! which keeps this to the few fields it reads.

use clsf_compiler::schema::ColId;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use clsf_compiler::plan::{Origin, Plan};
use clsf_compiler::{load, policy, resolve};
use clsf_lang::ast::Item;
use clsf_lang::{Diagnostic, FileId, Severity, SourceSet, Span};
use lsp_server::{Connection, Message, Notification, Response};
use serde_json::{Value, json};

use super::Exit;

/// The lock file looked for next to a policy, and in the folders above it.
const LOCK_NAME: &str = "schema.lock.json";

/// Serves until the client asks to shut down and exits.
pub fn run() -> Result<Exit, String> {
    let (connection, io_threads) = Connection::stdio();
    let capabilities = json!({
        "textDocumentSync": 1,
        "documentFormattingProvider": true,
        "documentSymbolProvider": true,
        "hoverProvider": true,
        "completionProvider": { "triggerCharacters": ["."] },
        "definitionProvider": true,
        "referencesProvider": true,
        "codeActionProvider": true,
    });
    let init = connection
        .initialize(capabilities)
        .map_err(|e| format!("lsp: {e}"))?;
    let mut server = Server {
        open: HashMap::new(),
        plans: HashMap::new(),
        names: HashMap::new(),
        published: HashMap::new(),
        lock: init["initializationOptions"]["lock"]
            .as_str()
            .map(PathBuf::from),
    };
    for message in &connection.receiver {
        match message {
            Message::Request(request) => {
                if connection
                    .handle_shutdown(&request)
                    .map_err(|e| format!("lsp: {e}"))?
                {
                    break;
                }
                let response = match server.request(&request.method, &request.params) {
                    Ok(result) => Response::new_ok(request.id, result),
                    Err((code, message)) => Response::new_err(request.id, code, message),
                };
                send(&connection, response.into())?;
            }
            Message::Notification(n) => {
                for (uri, diagnostics) in server.notification(&n.method, &n.params) {
                    let params = json!({ "uri": uri, "diagnostics": diagnostics });
                    let note = Notification::new("textDocument/publishDiagnostics".into(), params);
                    send(&connection, note.into())?;
                }
            }
            Message::Response(_) => {}
        }
    }
    drop(connection);
    io_threads.join().map_err(|e| format!("lsp: {e}"))?;
    Ok(Exit::Ok)
}

fn send(connection: &Connection, message: Message) -> Result<(), String> {
    connection
        .sender
        .send(message)
        .map_err(|e| format!("lsp: the client went away: {e}"))
}

struct Server {
    /// Open documents' current text, by path.
    open: HashMap<PathBuf, String>,
    /// The last plan that compiled, by policy folder (for hover).
    plans: HashMap<PathBuf, Plan>,
    /// What completion offers, by policy folder, from the last check.
    names: HashMap<PathBuf, Names>,
    /// The diagnostics last published, by file: (range, code).
    published: HashMap<PathBuf, Vec<(Value, &'static str)>>,
    /// The lock file from `initializationOptions`, if given.
    lock: Option<PathBuf>,
}

type RpcResult = Result<Value, (i32, String)>;

impl Server {
    fn request(&self, method: &str, params: &Value) -> RpcResult {
        let path = || {
            params["textDocument"]["uri"]
                .as_str()
                .and_then(uri_to_path)
                .ok_or((-32602, "textDocument.uri must be a file: URI".to_owned()))
        };
        match method {
            "textDocument/formatting" => {
                let path = path()?;
                let text = self.text(&path).map_err(|e| (-32603, e))?;
                let parsed = clsf_lang::parse(FileId(0), &text);
                // As `clsfc fmt`: a file with syntax errors is left alone.
                if !parsed.diagnostics.is_empty() {
                    return Ok(Value::Null);
                }
                let formatted = clsf_lang::format(&parsed.file, &text);
                if formatted == text {
                    return Ok(json!([]));
                }
                Ok(json!([{
                    "range": { "start": position(&text, 0), "end": position(&text, text.len()) },
                    "newText": formatted,
                }]))
            }
            "textDocument/hover" => {
                let path = path()?;
                let text = self.text(&path).map_err(|e| (-32603, e))?;
                let Some(offset) = offset(&text, &params["position"]) else {
                    return Ok(Value::Null);
                };
                let mut parts = Vec::new();
                // A diagnostic under the cursor: its code's explanation.
                for code in
                    self.published
                        .get(&path)
                        .into_iter()
                        .flatten()
                        .filter_map(|(range, code)| {
                            contains(range, &params["position"]).then_some(*code)
                        })
                {
                    if let Some(c) = clsf_compiler::codes::find(code) {
                        parts.push(format!(
                            "**{}** ({}): {}\n\n{}",
                            c.code, c.severity, c.summary, c.explanation
                        ));
                    }
                }
                let dir = path.parent();
                if let Some(plan) = dir.and_then(|d| self.plans.get(d))
                    && let Some(md) = hover(plan, &text, offset)
                {
                    parts.push(md);
                }
                // A group's conditions, a mask's signature.
                if let Some(word) = name_at(&text, offset) {
                    if let Some(decl) = dir
                        .and_then(|d| self.names.get(d))
                        .and_then(|n| n.sources.get(&word))
                    {
                        parts.push(format!("```clsf\n{decl}\n```"));
                    } else if let Some(m) = clsf_compiler::masks::spec(&word) {
                        parts.push(format!("built-in mask `{}`: {}", m.form, m.summary));
                    }
                }
                Ok(if parts.is_empty() {
                    Value::Null
                } else {
                    json!({ "contents": { "kind": "markdown", "value": parts.join("\n\n---\n\n") } })
                })
            }
            "textDocument/completion" => {
                let path = path()?;
                let text = self.text(&path).map_err(|e| (-32603, e))?;
                let names = path.parent().and_then(|d| self.names.get(d));
                let offset = offset(&text, &params["position"]).unwrap_or(text.len());
                Ok(json!({
                    "isIncomplete": false,
                    "items": names.map_or_else(Vec::new, |n| n.complete(&text[..offset])),
                }))
            }
            "textDocument/definition" | "textDocument/references" => {
                let path = path()?;
                let text = self.text(&path).map_err(|e| (-32603, e))?;
                let Some(names) = path.parent().and_then(|d| self.names.get(d)) else {
                    return Ok(Value::Null);
                };
                let Some(at) = offset(&text, &params["position"]) else {
                    return Ok(Value::Null);
                };
                // `use "path"`: the file, or every `.clsf` file of the folder.
                if method == "textDocument/definition"
                    && let Some(files) = use_target(&path, &text, at)
                {
                    let start = json!({ "line": 0, "character": 0 });
                    return Ok(files
                        .iter()
                        .map(|f| location(f, &json!({ "start": start, "end": start })))
                        .collect());
                }
                // A table or column: its entry in the schema lock.
                if method == "textDocument/definition"
                    && let Some(found) = names.lock.as_ref().and_then(|(lock, lock_text)| {
                        let (schema, table, column) = relation_at(&text, at)?;
                        let byte = lock_entry(lock_text, &schema, &table, column.as_deref())?;
                        Some(json!([{ "uri": path_to_uri(lock), "range": {
                            "start": position(lock_text, byte), "end": position(lock_text, byte) } }]))
                    })
                {
                    return Ok(found);
                }
                let Some(word) = name_at(&text, at) else {
                    return Ok(Value::Null);
                };
                let declared = names.declarations.iter().filter(|d| d.0 == word);
                let found: Vec<Value> = if method == "textDocument/definition" {
                    declared.map(|(_, p, r)| location(p, r)).collect()
                } else {
                    let with_declarations = params["context"]["includeDeclaration"] != false;
                    let declarations: Vec<&(String, PathBuf, Value)> = declared.collect();
                    names
                        .uses
                        .iter()
                        .filter(|u| u.0 == word)
                        .filter(|u| {
                            with_declarations
                                || !declarations.iter().any(|d| d.1 == u.1 && d.2 == u.2)
                        })
                        .map(|(_, p, r)| location(p, r))
                        .collect()
                };
                Ok(Value::Array(found))
            }
            "textDocument/codeAction" => {
                let text = path().and_then(|p| self.text(&p).map_err(|e| (-32603, e)))?;
                Ok(quick_fixes(params, &text))
            }
            "textDocument/documentSymbol" => {
                let path = path()?;
                let text = self.text(&path).map_err(|e| (-32603, e))?;
                Ok(symbols(&text))
            }
            _ => Err((-32601, format!("{method} is not supported"))),
        }
    }

    /// The diagnostics to publish after a change: (uri, diagnostics) for
    /// every file of the changed file's folder.
    fn notification(&mut self, method: &str, params: &Value) -> Vec<(String, Value)> {
        let Some(path) = params["textDocument"]["uri"].as_str().and_then(uri_to_path) else {
            return Vec::new();
        };
        match method {
            "textDocument/didOpen" => {
                let text = params["textDocument"]["text"].as_str().unwrap_or("");
                self.open.insert(path.clone(), text.to_owned());
            }
            "textDocument/didChange" => {
                // Full synchronisation: the last change is the whole text.
                if let Some(text) = params["contentChanges"]
                    .as_array()
                    .and_then(|c| c.last())
                    .and_then(|c| c["text"].as_str())
                {
                    self.open.insert(path.clone(), text.to_owned());
                }
            }
            "textDocument/didClose" => {
                self.open.remove(&path);
            }
            "textDocument/didSave" => {}
            _ => return Vec::new(),
        }
        self.check(&path)
    }

    fn text(&self, path: &Path) -> Result<String, String> {
        match self.open.get(path) {
            Some(t) => Ok(t.clone()),
            None => std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display())),
        }
    }

    /// Checks the folder of `path` as `clsfc check` would, with open
    /// documents' unsaved text.
    fn check(&mut self, path: &Path) -> Vec<(String, Value)> {
        let Some(dir) = path.parent() else {
            return Vec::new();
        };
        let open_docs = &self.open;
        let open = |p: &Path| open_docs.get(p).cloned();
        let parsed = match policy::load_dir_with(dir, &open) {
            Ok(p) => p,
            Err(e) => return vec![(path_to_uri(path), json!([unlocated(&e.to_string())]))],
        };
        let lock = self.lock.clone().or_else(|| find_lock(dir));
        let mut extra = Vec::new();
        let mut names = Names::declared(&parsed, dir);
        let diagnostics = match lock.as_deref().map(load::read_lock) {
            Some(Ok(schema)) => {
                let (plan, diagnostics) = resolve::compile(&parsed, &schema);
                if let Some(plan) = plan {
                    self.plans.insert(dir.to_owned(), plan);
                }
                names.lock = lock
                    .as_deref()
                    .and_then(|l| Some((l.to_owned(), std::fs::read_to_string(l).ok()?)));
                names.relations = schema
                    .relations
                    .iter()
                    .map(|r| {
                        let columns = r
                            .columns
                            .iter()
                            .map(|c| (c.name.clone(), c.type_name.clone()))
                            .collect();
                        (r.schema.clone(), r.name.clone(), columns)
                    })
                    .collect();
                diagnostics
            }
            Some(Err(e)) => {
                extra.push(unlocated(&format!(
                    "the schema lock could not be read: {e}"
                )));
                parsed.diagnostics.clone()
            }
            None => {
                extra.push(json!({
                    "range": { "start": { "line": 0, "character": 0 }, "end": { "line": 0, "character": 0 } },
                    "severity": 3,
                    "source": "clsfc",
                    "message": format!("no {LOCK_NAME} in this folder or above: only syntax and imports are checked"),
                }));
                parsed.diagnostics.clone()
            }
        };
        self.names.insert(dir.to_owned(), names);
        // Every file of the folder gets its list (empty clears old ones).
        self.published.retain(|p, _| p.parent() != Some(dir));
        let mut by_file: BTreeMap<PathBuf, Vec<Value>> = BTreeMap::new();
        for (_, file) in parsed.sources.iter() {
            let p = dir.join(&file.name);
            if p.parent() == Some(dir) && p.extension().is_some_and(|e| e == "clsf") {
                by_file.entry(p).or_default();
            }
        }
        by_file.entry(path.to_owned()).or_default().extend(extra);
        for d in &diagnostics {
            let (target, value) = match &d.primary {
                Some((span, _)) => match file_of(&parsed.sources, dir, *span) {
                    Some(p) => (p, lsp_diagnostic(d, &parsed.sources, dir)),
                    // In a library module: shown on the edited file.
                    None => (
                        path.to_owned(),
                        with_range(d, json!(null), &parsed.sources, dir),
                    ),
                },
                None => (
                    path.to_owned(),
                    with_range(d, json!(null), &parsed.sources, dir),
                ),
            };
            if let Some(code) = clsf_compiler::codes::find(d.code) {
                self.published
                    .entry(target.clone())
                    .or_default()
                    .push((value["range"].clone(), code.code));
            }
            by_file.entry(target).or_default().push(value);
        }
        by_file
            .into_iter()
            .map(|(p, list)| (path_to_uri(&p), Value::Array(list)))
            .collect()
    }
}

/// What completion offers: the language's keywords, the names the policy
/// (and what it imports) declares, the built-in masks, and the lock's
/// schemas, tables and columns.
#[derive(Default)]
struct Names {
    labels: Vec<String>,
    categories: Vec<String>,
    groups: Vec<String>,
    /// User masks: (name, signature).
    masks: Vec<(String, String)>,
    /// Where labels, categories, groups, masks and rules are declared:
    /// (name, file, range), in the folder's files.
    declarations: Vec<(String, PathBuf, Value)>,
    /// Every name token of the folder's files: (name, file, range).
    uses: Vec<(String, PathBuf, Value)>,
    /// The declaration text of each group and user mask, for hover.
    sources: HashMap<String, String>,
    /// The lock file and its text, for definitions of tables and columns.
    lock: Option<(PathBuf, String)>,
    /// (schema, table, columns) from the lock.
    relations: Vec<(String, String, Columns)>,
}

/// A table's (column, type) pairs.
type Columns = Vec<(String, String)>;

// LSP CompletionItemKind values.
const KIND_FUNCTION: u8 = 3;
const KIND_FIELD: u8 = 5;
const KIND_CLASS: u8 = 7;
const KIND_MODULE: u8 = 9;
const KIND_KEYWORD: u8 = 14;
const KIND_ENUM_MEMBER: u8 = 20;
const KIND_CONSTANT: u8 = 21;
const KIND_STRUCT: u8 = 22;

impl Names {
    fn declared(parsed: &policy::Parsed, dir: &Path) -> Names {
        let mut names = Names::default();
        for (id, source) in parsed.sources.iter() {
            let p = dir.join(&source.name);
            if p.parent() != Some(dir) {
                continue;
            }
            let text = &source.text;
            for token in clsf_lang::lexical::tokens(text).unwrap_or_default() {
                if token.class == clsf_lang::lexical::TokenClass::Name {
                    let span = Span::new(id, token.range.start, token.range.end);
                    names
                        .uses
                        .push((text[token.range].to_owned(), p.clone(), range(text, span)));
                }
            }
            let mut declare = |name: &clsf_lang::ast::Name| {
                names
                    .declarations
                    .push((name.text.clone(), p.clone(), range(text, name.span)));
            };
            for item in &parsed.files[id.0 as usize].items {
                match item {
                    Item::Labels(l) => l.labels.iter().for_each(&mut declare),
                    Item::Categories(c) => c.categories.iter().for_each(&mut declare),
                    Item::Group(g) => declare(&g.name),
                    Item::Mask(m) => declare(&m.name),
                    Item::Rule(r) => declare(&r.name),
                    _ => {}
                }
            }
        }
        for (id, source) in parsed.sources.iter() {
            for item in &parsed.files[id.0 as usize].items {
                if let Item::Group(clsf_lang::ast::GroupDecl { name, .. })
                | Item::Mask(clsf_lang::ast::MaskDecl { name, .. }) = item
                {
                    let span = item.span();
                    let decl = source.text.get(span.start..span.end).unwrap_or("");
                    names
                        .sources
                        .insert(name.text.clone(), decl.trim().to_owned());
                }
            }
        }
        for item in parsed.files.iter().flat_map(|f| &f.items) {
            match item {
                Item::Labels(l) => names.labels.extend(l.labels.iter().map(|n| n.text.clone())),
                Item::Categories(c) => names
                    .categories
                    .extend(c.categories.iter().map(|n| n.text.clone())),
                Item::Group(g) => names.groups.push(g.name.text.clone()),
                Item::Mask(m) => {
                    let inputs: Vec<&str> = m.inputs.iter().map(|t| t.text.as_str()).collect();
                    names.masks.push((
                        m.name.text.clone(),
                        format!(
                            "({}: {}) -> {}",
                            m.param.text,
                            inputs.join(" | "),
                            m.output.text
                        ),
                    ));
                }
                _ => {}
            }
        }
        names
    }

    /// Completions for the word ending at the cursor (`before` is the text
    /// up to it): after `schema.` its tables, after `schema.table.` its
    /// columns, else everything else; the client filters by what is typed.
    fn complete(&self, before: &str) -> Vec<Value> {
        let word_start = before
            .rfind(|c: char| !(c.is_alphanumeric() || "_-.\"".contains(c)))
            .map_or(0, |i| i + 1);
        let word = &before[word_start..];
        let item = |label: &str, kind: u8, detail: &str| json!({ "label": label, "kind": kind, "detail": detail });
        if let Some((qualifier, _)) = word.rsplit_once('.') {
            let qualifier = qualifier.replace('"', "");
            return match qualifier.split_once('.') {
                None => self
                    .relations
                    .iter()
                    .filter(|(s, _, _)| *s == qualifier)
                    .map(|(_, t, _)| item(t, KIND_STRUCT, "table"))
                    .collect(),
                Some((schema, table)) => self
                    .relations
                    .iter()
                    .filter(|(s, t, _)| s == schema && t == table)
                    .flat_map(|(_, _, columns)| columns)
                    .map(|(c, ty)| item(c, KIND_FIELD, ty))
                    .collect(),
            };
        }
        let mut out: Vec<Value> = clsf_lang::lexical::KEYWORDS
            .iter()
            .map(|k| item(k, KIND_KEYWORD, "keyword"))
            .collect();
        out.extend(self.labels.iter().map(|l| item(l, KIND_CONSTANT, "label")));
        out.extend(
            self.categories
                .iter()
                .map(|c| item(c, KIND_ENUM_MEMBER, "category")),
        );
        out.extend(self.groups.iter().map(|g| item(g, KIND_CLASS, "group")));
        out.extend(
            clsf_compiler::masks::CATALOGUE
                .iter()
                .map(|m| item(m.name, KIND_FUNCTION, &format!("{}: {}", m.form, m.summary))),
        );
        out.extend(
            self.masks
                .iter()
                .map(|(m, sig)| item(m, KIND_FUNCTION, sig)),
        );
        let mut schemas: Vec<&str> = self.relations.iter().map(|(s, _, _)| s.as_str()).collect();
        schemas.dedup();
        out.extend(schemas.iter().map(|s| item(s, KIND_MODULE, "schema")));
        out.extend(
            self.relations
                .iter()
                .map(|(s, t, _)| item(&format!("{s}.{t}"), KIND_STRUCT, "table")),
        );
        out
    }
}

/// The files a `use "path"` at `offset` imports (relative to `file`): the
/// file, or the `.clsf` files of the folder, sorted. `use std::…` modules
/// are embedded in `clsfc` and have no file to go to.
fn use_target(file: &Path, text: &str, offset: usize) -> Option<Vec<PathBuf>> {
    let parsed = clsf_lang::parse(FileId(0), text);
    let target = parsed.file.items.iter().find_map(|item| match item {
        Item::Use(u) if u.span.start <= offset && offset <= u.span.end => match &u.target {
            clsf_lang::ast::UseTarget::Path(p) => Some(p.value.clone()),
            clsf_lang::ast::UseTarget::Std(_) => None,
        },
        _ => None,
    })?;
    let path = file.parent()?.join(target).canonicalize().ok()?;
    if path.is_file() {
        return Some(vec![path]);
    }
    // Every `.clsf` file below the folder, as `use` reads them.
    let mut files = Vec::new();
    let mut folders = vec![path];
    while let Some(folder) = folders.pop() {
        for entry in std::fs::read_dir(&folder).ok()?.filter_map(Result::ok) {
            let p = entry.path();
            if p.is_dir() {
                folders.push(p);
            } else if p.extension().is_some_and(|e| e == "clsf") {
                files.push(p);
            }
        }
    }
    files.sort();
    Some(files)
}

/// The table or column named at `offset`: a qualified name under the
/// cursor (`schema.table`, `schema.table.column`, or a bare table of
/// `public` in a `table` declaration), or a column declaration's name.
fn relation_at(text: &str, offset: usize) -> Option<(String, String, Option<String>)> {
    let parsed = clsf_lang::parse(FileId(0), text);
    let inside = |span: Span| span.start <= offset && offset <= span.end;
    for item in &parsed.file.items {
        let Item::Table(t) = item else { continue };
        if !inside(t.span) {
            continue;
        }
        let parts: Vec<String> = t.name.parts.iter().map(|p| p.text.clone()).collect();
        let (schema, table) = match parts.as_slice() {
            [s, n] => (s.clone(), n.clone()),
            [n] => ("public".to_owned(), n.clone()),
            _ => return None,
        };
        if inside(t.name.span) {
            return Some((schema, table, None));
        }
        let column = t.columns.iter().find(|c| inside(c.name.span))?;
        return Some((schema, table, Some(column.name.text.clone())));
    }
    // Elsewhere (rule targets, filters): the dotted name under the cursor.
    let is_part = |c: char| c.is_alphanumeric() || c == '_' || c == '-' || c == '.';
    let start = text[..offset]
        .rfind(|c: char| !is_part(c))
        .map_or(0, |i| i + 1);
    let end = text[offset..]
        .find(|c: char| !is_part(c))
        .map_or(text.len(), |i| offset + i);
    let parts: Vec<&str> = text.get(start..end)?.split('.').collect();
    match parts.as_slice() {
        [s, t] => Some((s.to_string(), t.to_string(), None)),
        [s, t, c] => Some((s.to_string(), t.to_string(), Some(c.to_string()))),
        _ => None,
    }
}

/// Where a relation (or one of its columns) is in a lock file's text: the
/// byte offset of its `"name"` entry. The lock is JSON written by `clsfc
/// schema pull`; it is scanned as JSON text, not re-serialised.
fn lock_entry(lock: &str, schema: &str, table: &str, column: Option<&str>) -> Option<usize> {
    let quoted = |s: &str| regex::escape(&Value::from(s).to_string());
    // A relation object, not a reference to one (`parents` entries have no
    // `kind` after their name).
    let relation = regex::Regex::new(&format!(
        r#""schema":\s*{},\s*"name":\s*{},\s*"kind":"#,
        quoted(schema),
        quoted(table)
    ))
    .ok()?
    .find(lock)?;
    let name_at = relation.start() + lock[relation.start()..].find("\"name\":")?;
    let Some(column) = column else {
        return Some(name_at);
    };
    let columns = relation.end() + lock[relation.end()..].find("\"columns\":")?;
    // The column list ends where the next relation begins.
    let end = regex::Regex::new(r#""schema":\s*"[^"]*",\s*"name":\s*"[^"]*",\s*"kind":"#)
        .ok()?
        .find_at(lock, columns)
        .map_or(lock.len(), |m| m.start());
    let needle = format!("\"name\": {}", Value::from(column));
    let found = columns + lock[columns..end].find(&needle)?;
    Some(found)
}

/// Whether an LSP range holds a position.
fn contains(range: &Value, position: &Value) -> bool {
    let key = |p: &Value| (p["line"].as_u64(), p["character"].as_u64());
    let (start, end, at) = (key(&range["start"]), key(&range["end"]), key(position));
    start <= at && at <= end
}

fn location(path: &Path, range: &Value) -> Value {
    json!({ "uri": path_to_uri(path), "range": range })
}

/// The name (label, group, mask, rule…) under the cursor, as the parser
/// reads the file (a keyword or a string is not one).
fn name_at(text: &str, offset: usize) -> Option<String> {
    clsf_lang::lexical::tokens(text)?
        .into_iter()
        .find(|t| {
            t.class == clsf_lang::lexical::TokenClass::Name
                && t.range.start <= offset
                && offset <= t.range.end
        })
        .map(|t| text[t.range].to_owned())
}

/// Quick fixes for the diagnostics the client sends back: a "did you mean
/// `X`?" replaces the diagnostic's range with `X`; one whose help offers
/// `override because` adds it, with a reason to write, to the column or
/// rule clause the diagnostic is on.
fn quick_fixes(params: &Value, text: &str) -> Value {
    let uri = &params["textDocument"]["uri"];
    let mut actions = Vec::new();
    for d in params["context"]["diagnostics"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let message = d["message"].as_str().unwrap_or("");
        if message.contains("override because")
            && let Some(at) =
                offset(text, &d["range"]["start"]).and_then(|o| override_point(text, o))
        {
            let position = position(text, at);
            actions.push(json!({
                "title": "Add `override because \"…\"`",
                "kind": "quickfix",
                "diagnostics": [d],
                "edit": { "changes": { uri.as_str().unwrap_or(""): [{
                    "range": { "start": position, "end": position },
                    "newText": " override because \"TODO: say why this is safe\"",
                }] } },
            }));
        }
        let Some(rest) = message.split("did you mean `").nth(1) else {
            continue;
        };
        let Some((suggestion, _)) = rest.split_once('`') else {
            continue;
        };
        actions.push(json!({
            "title": format!("Replace with `{suggestion}`"),
            "kind": "quickfix",
            "diagnostics": [d],
            "isPreferred": true,
            "edit": { "changes": { uri.as_str().unwrap_or(""): [{ "range": d["range"], "newText": suggestion }] } },
        }));
    }
    Value::Array(actions)
}

/// Where `override because` goes for the column declaration or `allow`
/// clause at `offset` that has no reason yet (the only places it is
/// allowed): at its end, before a `;` or `,` that closes it.
fn override_point(text: &str, offset: usize) -> Option<usize> {
    use clsf_lang::ast::{ClauseKind, Effect};
    let parsed = clsf_lang::parse(FileId(0), text);
    let inside = |span: Span| span.start <= offset && offset < span.end;
    let span = parsed.file.items.iter().find_map(|item| match item {
        Item::Table(t) => t
            .columns
            .iter()
            .find(|c| inside(c.span) && c.reason.is_none())
            .map(|c| c.span),
        Item::Rule(r) => r
            .clauses
            .iter()
            .find(|c| {
                inside(c.span)
                    && matches!(
                        c.kind,
                        ClauseKind::Access {
                            effect: Effect::Allow,
                            reason: None,
                            ..
                        }
                    )
            })
            .map(|c| c.span),
        _ => None,
    })?;
    let clause = text.get(span.start..span.end)?;
    Some(
        span.start
            + clause
                .trim_end_matches(|c: char| c.is_whitespace() || c == ';' || c == ',')
                .len(),
    )
}

/// The `schema.lock.json` in `dir` or the nearest folder above it.
fn find_lock(dir: &Path) -> Option<PathBuf> {
    dir.ancestors()
        .map(|d| d.join(LOCK_NAME))
        .find(|p| p.is_file())
}

/// The file on disk a span is in, if it is one of the folder's (or an
/// imported file with a path).
fn file_of(sources: &SourceSet, dir: &Path, span: Span) -> Option<PathBuf> {
    let name = &sources.file(span.file).name;
    let p = dir.join(name);
    p.is_file().then_some(p)
}

fn lsp_diagnostic(d: &Diagnostic, sources: &SourceSet, dir: &Path) -> Value {
    let range = d
        .primary
        .as_ref()
        .map(|(span, _)| range(&sources.file(span.file).text, *span))
        .unwrap_or(Value::Null);
    with_range(d, range, sources, dir)
}

fn with_range(d: &Diagnostic, range: Value, sources: &SourceSet, dir: &Path) -> Value {
    let range = if range.is_null() {
        json!({ "start": { "line": 0, "character": 0 }, "end": { "line": 0, "character": 0 } })
    } else {
        range
    };
    let mut message = d.message.clone();
    if let Some((_, label)) = &d.primary
        && !label.is_empty()
    {
        message.push_str(&format!(" ({label})"));
    }
    if let Some(help) = &d.help {
        message.push_str(&format!("\nhelp: {help}"));
    }
    let related: Vec<Value> = d
        .labels
        .iter()
        .filter_map(|(span, label)| {
            let p = file_of(sources, dir, *span)?;
            Some(json!({
                "location": { "uri": path_to_uri(&p), "range": self::range(&sources.file(span.file).text, *span) },
                "message": label,
            }))
        })
        .collect();
    json!({
        "range": range,
        "severity": match d.severity { Severity::Error => 1, Severity::Warning => 2 },
        "code": d.code,
        "source": "clsfc",
        "message": message,
        "relatedInformation": related,
    })
}

fn unlocated(message: &str) -> Value {
    json!({
        "range": { "start": { "line": 0, "character": 0 }, "end": { "line": 0, "character": 0 } },
        "severity": 1,
        "source": "clsfc",
        "message": message,
    })
}

fn range(text: &str, span: Span) -> Value {
    json!({ "start": position(text, span.start), "end": position(text, span.end) })
}

/// A byte offset as an LSP position: a line and a UTF-16 column.
fn position(text: &str, byte: usize) -> Value {
    let byte = floor_char_boundary(text, byte.min(text.len()));
    let line_start = text[..byte].rfind('\n').map_or(0, |i| i + 1);
    let line = text[..line_start].matches('\n').count();
    let character = text[line_start..byte].encode_utf16().count();
    json!({ "line": line, "character": character })
}

fn floor_char_boundary(text: &str, mut i: usize) -> usize {
    while !text.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// An LSP position (line, UTF-16 column) as a byte offset in `text`.
fn offset(text: &str, position: &Value) -> Option<usize> {
    let line = usize::try_from(position["line"].as_u64()?).ok()?;
    let character = usize::try_from(position["character"].as_u64()?).ok()?;
    let start = if line == 0 {
        0
    } else {
        text.match_indices('\n').nth(line - 1)?.0 + 1
    };
    let mut units = 0;
    for (i, c) in text[start..].char_indices() {
        if units >= character || c == '\n' {
            return Some(start + i);
        }
        units += c.len_utf16();
    }
    Some(text.len())
}

/// What the compiled plan says of the table or column under the cursor:
/// its effective label and categories, its mask, and what decided it.
fn hover(plan: &Plan, text: &str, offset: usize) -> Option<String> {
    let parsed = clsf_lang::parse(FileId(0), text);
    let inside = |span: Span| span.start <= offset && offset <= span.end;
    let table = parsed.file.items.iter().find_map(|item| match item {
        Item::Table(t) if inside(t.span) => Some(t),
        _ => None,
    })?;
    let parts: Vec<&str> = table.name.parts.iter().map(|p| p.text.as_str()).collect();
    let (schema, name) = match parts.as_slice() {
        [schema, name] => (*schema, *name),
        [name] => ("public", *name),
        _ => return None,
    };
    let ri = plan
        .schema
        .relations
        .iter()
        .position(|r| r.schema == schema && r.name == name)?;
    let relation = &plan.schema.relations[ri];
    let describe = |ci: ColId| {
        let column = &relation.columns[ci];
        let class = &plan.classes[ri][ci];
        let mask = class.mask.as_ref().map_or(String::new(), |m| {
            format!(", masked with `{}`", m.display())
        });
        let origin = match class.origin {
            Origin::Explicit => "its own classification",
            Origin::Table => "the table's default label",
            Origin::Schema => "the schema's default label",
            Origin::Pattern => "a `classify` pattern",
            Origin::Unclassified => "nothing (the `unclassified` label)",
            Origin::Lineage => "the columns it is computed or inherited from",
        };
        format!(
            "`{}` ({}): **{}**{mask}; decided by {origin}",
            column.name,
            column.type_name,
            plan.describe_class(class)
        )
    };
    if let Some(column) = table.columns.iter().find(|c| inside(c.name.span)) {
        let ci = relation.column_index(&column.name.text)?;
        return Some(format!("{schema}.{name}.{}", describe(ci)));
    }
    if inside(table.name.span) {
        let lines: Vec<String> = relation
            .column_ids()
            .map(|ci| format!("- {}", describe(ci)))
            .collect();
        return Some(format!("`{schema}.{name}`\n\n{}", lines.join("\n")));
    }
    None
}

/// Document symbols: each declaration, tables with their columns.
fn symbols(text: &str) -> Value {
    // LSP SymbolKind values (not the CompletionItemKind ones above).
    const NAMESPACE: u8 = 3;
    const CLASS: u8 = 5;
    const FIELD: u8 = 8;
    const FUNCTION: u8 = 12;
    const CONSTANT: u8 = 14;
    const EVENT: u8 = 24;
    const STRUCT: u8 = 23;
    let parsed = clsf_lang::parse(FileId(0), text);
    let symbol = |name: &str, kind: u8, whole: Span, selection: Span, children: Vec<Value>| {
        json!({
            "name": name,
            "kind": kind,
            "range": range(text, whole),
            "selectionRange": range(text, selection),
            "children": children,
        })
    };
    let mut out = Vec::new();
    for item in &parsed.file.items {
        let whole = item.span();
        match item {
            Item::Labels(l) => {
                for label in &l.labels {
                    out.push(symbol(&label.text, CONSTANT, whole, label.span, Vec::new()));
                }
            }
            Item::Group(g) => out.push(symbol(&g.name.text, CLASS, whole, g.name.span, Vec::new())),
            Item::Schema(s) => out.push(symbol(
                &s.name.text,
                NAMESPACE,
                whole,
                s.name.span,
                Vec::new(),
            )),
            Item::Table(t) => {
                let columns = t
                    .columns
                    .iter()
                    .map(|c| symbol(&c.name.text, FIELD, c.span, c.name.span, Vec::new()))
                    .collect();
                let name: Vec<&str> = t.name.parts.iter().map(|p| p.text.as_str()).collect();
                out.push(symbol(&name.join("."), STRUCT, whole, t.name.span, columns));
            }
            Item::Mask(m) => out.push(symbol(
                &m.name.text,
                FUNCTION,
                whole,
                m.name.span,
                Vec::new(),
            )),
            Item::Rule(r) => out.push(symbol(&r.name.text, EVENT, whole, r.name.span, Vec::new())),
            Item::Use(_) | Item::Categories(_) | Item::Unclassified(_) | Item::Classify(_) => {}
        }
    }
    Value::Array(out)
}

/// A `file:` URI's path, percent-decoded.
fn uri_to_path(uri: &str) -> Option<PathBuf> {
    let rest = uri.strip_prefix("file://")?;
    let bytes = rest.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    let path = PathBuf::from(String::from_utf8(out).ok()?);
    path.is_absolute().then_some(path)
}

/// A path as a `file:` URI, percent-encoding what a URI path may not hold.
fn path_to_uri(path: &Path) -> String {
    let mut uri = String::from("file://");
    for b in path.to_string_lossy().bytes() {
        if b.is_ascii_alphanumeric() || b"/-._~".contains(&b) {
            uri.push(b as char);
        } else {
            uri.push_str(&format!("%{b:02X}"));
        }
    }
    uri
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_and_columns_are_found_in_the_lock() {
        let lock = include_str!("../../../../examples/quickstart/schema.lock.json");
        let line = |byte: usize| lock[byte..].lines().next().unwrap().trim().to_owned();
        let table = lock_entry(lock, "public", "orders", None).unwrap();
        assert_eq!(line(table), r#""name": "orders","#);
        let column = lock_entry(lock, "public", "orders", Some("status")).unwrap();
        assert!(column > table);
        assert_eq!(line(column), r#""name": "status","#);
        // `email` is a column of customers, not of orders.
        assert_eq!(lock_entry(lock, "public", "orders", Some("email")), None);
        assert_eq!(lock_entry(lock, "public", "nothing", None), None);
        let policy = include_str!("../../../../examples/quickstart/policy/quickstart.clsf");
        let at = policy.find("public.customers").unwrap() + 3;
        assert_eq!(
            relation_at(policy, at),
            Some(("public".into(), "customers".into(), None))
        );
        let at = policy.find("ssn:").unwrap() + 1;
        assert_eq!(
            relation_at(policy, at),
            Some(("public".into(), "customers".into(), Some("ssn".into())))
        );
    }

    #[test]
    fn uris_and_positions_round_trip() {
        let p = Path::new("/tmp/a b/ü.clsf");
        assert_eq!(uri_to_path(&path_to_uri(p)).as_deref(), Some(p));
        assert_eq!(uri_to_path("file:///x/%2"), None);
        assert_eq!(uri_to_path("http://x/y"), None);
        let text = "ab\n€x";
        assert_eq!(position(text, 4), json!({ "line": 1, "character": 0 }));
        assert_eq!(position(text, 6), json!({ "line": 1, "character": 1 }));
        assert_eq!(position(text, 5), json!({ "line": 1, "character": 0 }));
        // And back: the column counts UTF-16 units (`€` is one, `𝄞` two).
        let text = "ab\n€x\n𝄞y";
        let at = |line: u64, character: u64| {
            offset(text, &json!({ "line": line, "character": character }))
        };
        assert_eq!(at(1, 1), Some(6));
        assert_eq!(at(2, 2), Some(12));
        assert_eq!(at(0, 99), Some(2));
        assert_eq!(at(9, 0), None);
    }
}
