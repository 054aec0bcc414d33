//! `clsfc lsp` spoken to as an editor does: JSON-RPC with Content-Length
//! framing over the process's stdin and stdout, on a copy of the
//! quickstart policy with its schema lock beside it. Diagnostics as you
//! type carry the codes and positions `clsfc check` reports; formatting
//! gives what `clsfc fmt` writes; symbols list the declarations; hover
//! shows what the compiled plan decided for a column; completion offers
//! keywords, the policy's names and the lock's tables and columns;
//! definitions, references and quick fixes work on the policy's names.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use clsf_compiler::schema::lock;
use clsf_compiler::schema::{Column, Relation, RelationKind, Schema};
use clsf_tests::bins::{bin, repo_root};
use serde_json::{Value, json};

struct Lsp {
    child: Child,
    stdin: ChildStdin,
    messages: mpsc::Receiver<Value>,
    next_id: i64,
}

impl Lsp {
    fn start() -> Lsp {
        let mut child = Command::new(bin("clsfc"))
            .arg("lsp")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("clsfc lsp");
        let stdin = child.stdin.take().unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let (tx, messages) = mpsc::channel();
        std::thread::spawn(move || {
            loop {
                let mut length = None;
                loop {
                    let mut line = String::new();
                    if stdout.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    let line = line.trim_end();
                    if line.is_empty() {
                        break;
                    }
                    if let Some(n) = line.strip_prefix("Content-Length: ") {
                        length = n.parse::<usize>().ok();
                    }
                }
                let mut body = vec![0; length.expect("a Content-Length header")];
                stdout.read_exact(&mut body).unwrap();
                if tx.send(serde_json::from_slice(&body).unwrap()).is_err() {
                    return;
                }
            }
        });
        Lsp {
            child,
            stdin,
            messages,
            next_id: 1,
        }
    }

    fn send(&mut self, message: &Value) {
        let body = message.to_string();
        write!(self.stdin, "Content-Length: {}\r\n\r\n{body}", body.len()).unwrap();
        self.stdin.flush().unwrap();
    }

    fn notify(&mut self, method: &str, params: Value) {
        self.send(&json!({ "jsonrpc": "2.0", "method": method, "params": params }));
    }

    fn next(&self) -> Value {
        self.messages
            .recv_timeout(Duration::from_secs(20))
            .expect("an answer from clsfc lsp within 20 s")
    }

    fn request(&mut self, method: &str, params: Value) -> Value {
        let id = self.next_id;
        self.next_id += 1;
        self.send(&json!({ "jsonrpc": "2.0", "id": id, "method": method, "params": params }));
        loop {
            let m = self.next();
            if m["id"] == id {
                assert!(m["error"].is_null(), "{m}");
                return m["result"].clone();
            }
        }
    }

    /// The diagnostics published for `uri` next.
    fn diagnostics_for(&self, uri: &str) -> Vec<Value> {
        loop {
            let m = self.next();
            if m["method"] == "textDocument/publishDiagnostics" && m["params"]["uri"] == uri {
                return m["params"]["diagnostics"].as_array().unwrap().clone();
            }
        }
    }
}

fn uri(path: &Path) -> String {
    format!("file://{}", path.display())
}

/// (code, line, column), 0-based as LSP counts, from `clsfc check`.
fn check_codes(policy: &Path, lock: &Path) -> Vec<(String, u64, u64)> {
    let out = Command::new(bin("clsfc"))
        .arg("check")
        .arg(policy)
        .arg("--schema")
        .arg(lock)
        .args(["--format", "json"])
        .output()
        .unwrap();
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    report["diagnostics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["code"].as_str().unwrap().to_owned(),
                d["primary"]["line"].as_u64().unwrap() - 1,
                d["primary"]["column"].as_u64().unwrap() - 1,
            )
        })
        .collect()
}

#[test]
fn an_editor_gets_check_diagnostics_formatting_and_symbols_from_clsfc_lsp() {
    let dir = tempfile::tempdir().unwrap();
    let quickstart = repo_root().join("examples/quickstart");
    let policy = dir.path().join("policy");
    std::fs::create_dir(&policy).unwrap();
    let file = policy.join("quickstart.clsf");
    let original = std::fs::read_to_string(quickstart.join("policy/quickstart.clsf")).unwrap();
    std::fs::write(&file, &original).unwrap();
    // The quickstart's lock plus a view over customers, so that a view
    // column classified below its source can be shown and fixed.
    let lock = dir.path().join("schema.lock.json");
    let schema =
        lock::from_str(&std::fs::read_to_string(quickstart.join("schema.lock.json")).unwrap())
            .unwrap();
    let mut relations = schema.relations.clone();
    let column = |name: &str, ty: &str| Column {
        name: name.into(),
        type_name: ty.into(),
        nullable: false,
        base_type: None,
    };
    relations.push(Relation {
        schema: "public".into(),
        name: "customer_emails".into(),
        kind: RelationKind::View,
        columns: vec![column("id", "integer"), column("email", "text")],
        definition: Some(" SELECT c.id, c.email FROM public.customers c;".into()),
        ..Relation::default()
    });
    let schema = Schema::new(schema.server_version.clone(), relations);
    std::fs::write(&lock, lock::to_string(&schema)).unwrap();
    let file_uri = uri(&file);

    let mut lsp = Lsp::start();
    let init = lsp.request(
        "initialize",
        json!({ "processId": null, "rootUri": uri(dir.path()), "capabilities": {} }),
    );
    let caps = &init["capabilities"];
    assert_eq!(caps["documentFormattingProvider"], true, "{init}");
    assert_eq!(caps["documentSymbolProvider"], true, "{init}");
    assert_eq!(caps["hoverProvider"], true, "{init}");
    assert!(caps["completionProvider"].is_object(), "{init}");
    lsp.notify("initialized", json!({}));

    // The saved policy is clean.
    lsp.notify(
        "textDocument/didOpen",
        json!({ "textDocument": { "uri": file_uri, "languageId": "clsf", "version": 1, "text": original } }),
    );
    assert_eq!(lsp.diagnostics_for(&file_uri), Vec::<Value>::new());

    // As the user types a typo (unsaved), the check's errors appear, with
    // the same codes and positions `clsfc check` gives for the saved text.
    let typed = format!("{original}\ntable public.custmers: internal {{ }}\n");
    lsp.notify(
        "textDocument/didChange",
        json!({ "textDocument": { "uri": file_uri, "version": 2 }, "contentChanges": [{ "text": typed }] }),
    );
    let live = lsp.diagnostics_for(&file_uri);
    std::fs::write(&file, &typed).unwrap();
    let expected = check_codes(&policy, &lock);
    assert!(!expected.is_empty());
    let got: Vec<(String, u64, u64)> = live
        .iter()
        .map(|d| {
            (
                d["code"].as_str().unwrap().to_owned(),
                d["range"]["start"]["line"].as_u64().unwrap(),
                d["range"]["start"]["character"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(got, expected, "{live:#?}");
    assert_eq!(live[0]["severity"], 1);
    let message = live[0]["message"].as_str().unwrap();
    assert!(
        message.contains("public.custmers") && message.contains("did you mean `public.customers`"),
        "{message}"
    );

    // Hovering the error explains its code.
    let explained = lsp.request(
        "textDocument/hover",
        json!({ "textDocument": { "uri": file_uri }, "position": live[0]["range"]["start"] }),
    );
    let text = explained["contents"]["value"].as_str().unwrap_or_default();
    assert!(text.contains("**CLSF0101** (error)"), "{explained}");

    // A syntax error is reported too, and fixing it clears everything.
    lsp.notify(
        "textDocument/didChange",
        json!({ "textDocument": { "uri": file_uri, "version": 3 }, "contentChanges": [{ "text": format!("{original}\ntable {{") }] }),
    );
    let broken = lsp.diagnostics_for(&file_uri);
    assert!(
        broken.iter().any(|d| d["code"] == "CLSF0001"),
        "{broken:#?}"
    );
    lsp.notify(
        "textDocument/didChange",
        json!({ "textDocument": { "uri": file_uri, "version": 4 }, "contentChanges": [{ "text": original }] }),
    );
    assert_eq!(lsp.diagnostics_for(&file_uri), Vec::<Value>::new());

    // A view column classified below its source: the fix adds an override
    // with a reason to write, and the error is gone.
    let weaker =
        format!("{original}\ntable public.customer_emails: internal {{\n  email: internal\n}}\n");
    lsp.notify(
        "textDocument/didChange",
        json!({ "textDocument": { "uri": file_uri, "version": 41 }, "contentChanges": [{ "text": weaker }] }),
    );
    let reported = lsp.diagnostics_for(&file_uri);
    let d = reported
        .iter()
        .find(|d| d["code"] == "CLSF0128")
        .unwrap_or_else(|| panic!("{reported:#?}"))
        .clone();
    let actions = lsp.request(
        "textDocument/codeAction",
        json!({ "textDocument": { "uri": file_uri }, "range": d["range"], "context": { "diagnostics": [d] } }),
    );
    let fix = actions
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["title"].as_str().unwrap().contains("override because"))
        .unwrap_or_else(|| panic!("{actions}"));
    let edit = &fix["edit"]["changes"][file_uri.as_str()][0];
    let (line, character) = (
        edit["range"]["start"]["line"].as_u64().unwrap() as usize,
        edit["range"]["start"]["character"].as_u64().unwrap() as usize,
    );
    // ASCII text: a UTF-16 column is a byte column.
    let at: usize = weaker
        .split_inclusive('\n')
        .take(line)
        .map(str::len)
        .sum::<usize>()
        + character;
    let fixed = format!(
        "{}{}{}",
        &weaker[..at],
        edit["newText"].as_str().unwrap(),
        &weaker[at..]
    );
    assert!(
        fixed.contains("  email: internal override because \""),
        "{fixed}"
    );
    lsp.notify(
        "textDocument/didChange",
        json!({ "textDocument": { "uri": file_uri, "version": 42 }, "contentChanges": [{ "text": fixed }] }),
    );
    let after = lsp.diagnostics_for(&file_uri);
    assert!(after.iter().all(|d| d["code"] != "CLSF0128"), "{after:#?}");

    // Formatting gives exactly what `clsfc fmt` writes.
    let messy = original.replace("  email:       confidential", "email:confidential");
    assert_ne!(messy, original);
    lsp.notify(
        "textDocument/didChange",
        json!({ "textDocument": { "uri": file_uri, "version": 5 }, "contentChanges": [{ "text": messy }] }),
    );
    lsp.diagnostics_for(&file_uri);
    let edits = lsp.request(
        "textDocument/formatting",
        json!({ "textDocument": { "uri": file_uri }, "options": { "tabSize": 2, "insertSpaces": true } }),
    );
    std::fs::write(&file, &messy).unwrap();
    let fmt = Command::new(bin("clsfc"))
        .arg("fmt")
        .arg(&file)
        .output()
        .unwrap();
    assert!(fmt.status.success(), "{fmt:?}");
    let formatted = std::fs::read_to_string(&file).unwrap();
    assert_eq!(edits.as_array().map(Vec::len), Some(1), "{edits}");
    assert_eq!(edits[0]["newText"], formatted);
    assert_eq!(
        edits[0]["range"]["start"],
        json!({ "line": 0, "character": 0 })
    );

    // Symbols: the groups, tables with their columns, rules.
    let symbols = lsp.request(
        "textDocument/documentSymbol",
        json!({ "textDocument": { "uri": file_uri } }),
    );
    let names: Vec<&str> = symbols
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    for name in [
        "ci",
        "dba-bot",
        "public.customers",
        "public.orders",
        "ci_reads",
    ] {
        assert!(names.contains(&name), "{name} missing from {names:?}");
    }
    let customers = symbols
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "public.customers")
        .unwrap();
    let columns: Vec<&str> = customers["children"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(columns, ["email", "card_number", "ssn"]);

    // Hover: what the compiled plan decided for a column.
    // Where `needle` starts a line, `skip` characters into it.
    let at = |needle: &str, skip: usize| {
        let line = messy
            .lines()
            .position(|l| l.trim_start().starts_with(needle))
            .unwrap();
        let character = messy.lines().nth(line).unwrap().find(needle).unwrap() + skip;
        json!({ "textDocument": { "uri": file_uri }, "position": { "line": line, "character": character } })
    };
    let email = lsp.request("textDocument/hover", at("email:", 1));
    let text = email["contents"]["value"].as_str().unwrap_or_default();
    assert!(
        text.contains("public.customers.`email` (text): **confidential**")
            && text.contains("masked with `email`")
            && text.contains("its own classification"),
        "{email}"
    );
    let ssn = lsp.request("textDocument/hover", at("ssn:", 1));
    let text = ssn["contents"]["value"].as_str().unwrap_or_default();
    assert!(
        text.contains("**restricted**") && !text.contains("masked"),
        "{ssn}"
    );
    // The table's name lists every column, classified or not.
    let table = lsp.request(
        "textDocument/hover",
        at("table public.orders", "table pub".len()),
    );
    let text = table["contents"]["value"].as_str().unwrap_or_default();
    assert!(text.contains("`status` (text): **public**"), "{table}");
    assert!(
        text.contains("decided by the table's default label"),
        "{table}"
    );

    // A group's conditions, a built-in mask's form.
    let group = lsp.request(
        "textDocument/hover",
        at("rule ci_reads for ci", "rule ci_reads for c".len()),
    );
    let text = group["contents"]["value"].as_str().unwrap_or_default();
    assert!(
        text.contains("group ci {") && text.contains("claim repository == \"acme/shop\""),
        "{group}"
    );
    let line = messy
        .lines()
        .position(|l| l.contains("mask last(4)"))
        .unwrap();
    let character = messy.lines().nth(line).unwrap().find("last(4)").unwrap() + 1;
    let mask = lsp.request(
        "textDocument/hover",
        json!({ "textDocument": { "uri": file_uri }, "position": { "line": line, "character": character } }),
    );
    let text = mask["contents"]["value"].as_str().unwrap_or_default();
    assert!(text.contains("built-in mask `last(N)`"), "{mask}");

    // Definition and references of a group, from where a rule names it.
    let rule = at("rule ci_reads for ci", "rule ci_reads for c".len());
    let definition = lsp.request("textDocument/definition", rule.clone());
    let group_line = messy
        .lines()
        .position(|l| l.starts_with("group ci {"))
        .unwrap();
    assert_eq!(
        definition,
        json!([{ "uri": file_uri, "range": { "start": { "line": group_line, "character": 6 }, "end": { "line": group_line, "character": 8 } } }])
    );
    let mut references = rule.clone();
    references["context"] = json!({ "includeDeclaration": true });
    let found = lsp.request("textDocument/references", references.clone());
    let lines: Vec<u64> = found
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["range"]["start"]["line"].as_u64().unwrap())
        .collect();
    let rule_line = messy
        .lines()
        .position(|l| l.starts_with("rule ci_reads"))
        .unwrap() as u64;
    assert!(
        lines.contains(&(group_line as u64)) && lines.contains(&rule_line),
        "{found}"
    );
    references["context"] = json!({ "includeDeclaration": false });
    let uses = lsp.request("textDocument/references", references);
    assert_eq!(uses.as_array().unwrap().len(), lines.len() - 1, "{uses}");

    // A table's and a column's definitions are their entries in the lock.
    let lock_text = std::fs::read_to_string(&lock).unwrap();
    let lock_line = |needle: &str, after: usize| {
        lock_text
            .lines()
            .enumerate()
            .skip(after)
            .find(|(_, l)| l.trim_start().starts_with(needle))
            .unwrap()
            .0
    };
    let customers = lock_line("\"name\": \"customers\"", 0);
    for (cursor, line) in [
        (
            at("table public.customers", "table public.cu".len()),
            customers,
        ),
        (at("email:", 1), lock_line("\"name\": \"email\"", customers)),
    ] {
        let found = lsp.request("textDocument/definition", cursor);
        assert_eq!(found[0]["uri"], uri(&lock), "{found}");
        assert_eq!(found[0]["range"]["start"]["line"], line, "{found}");
    }

    // The typo's diagnostic offers its suggestion as a quick fix.
    let actions = lsp.request(
        "textDocument/codeAction",
        json!({
            "textDocument": { "uri": file_uri },
            "range": live[0]["range"],
            "context": { "diagnostics": [live[0]] },
        }),
    );
    let edit = &actions[0]["edit"]["changes"][file_uri.as_str()][0];
    assert_eq!(edit["newText"], "public.customers", "{actions}");
    assert_eq!(edit["range"], live[0]["range"]);

    // Completion: everything the policy and the lock name, and after a
    // `.` the tables of a schema or the columns of a table.
    let typed = format!("{messy}\ntable public.");
    let last = typed.lines().count() - 1;
    lsp.notify(
        "textDocument/didChange",
        json!({ "textDocument": { "uri": file_uri, "version": 6 }, "contentChanges": [{ "text": typed }] }),
    );
    lsp.diagnostics_for(&file_uri);
    let complete = |lsp: &mut Lsp, line: usize, character: usize| -> Vec<(String, u64)> {
        let list = lsp.request(
            "textDocument/completion",
            json!({ "textDocument": { "uri": file_uri }, "position": { "line": line, "character": character } }),
        );
        list["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| {
                (
                    i["label"].as_str().unwrap().to_owned(),
                    i["kind"].as_u64().unwrap(),
                )
            })
            .collect()
    };
    let tables = complete(&mut lsp, last, "table public.".len());
    let tables: Vec<&str> = tables.iter().map(|(l, _)| l.as_str()).collect();
    assert!(
        tables.contains(&"customers") && tables.contains(&"orders"),
        "{tables:?}"
    );
    let typed = format!("{messy}\ntable public.customers.");
    lsp.notify(
        "textDocument/didChange",
        json!({ "textDocument": { "uri": file_uri, "version": 7 }, "contentChanges": [{ "text": typed }] }),
    );
    lsp.diagnostics_for(&file_uri);
    let columns = complete(&mut lsp, last, "table public.customers.".len());
    assert!(
        columns.iter().any(|(l, kind)| l == "email" && *kind == 5),
        "{columns:?}"
    );
    let all = complete(&mut lsp, 0, 0);
    for (label, kind) in [
        ("classify", 14),
        ("confidential", 21),
        ("dba-bot", 7),
        ("last", 3),
        ("public.customers", 22),
    ] {
        assert!(
            all.contains(&(label.to_owned(), kind)),
            "{label} ({kind}) missing: {all:?}"
        );
    }

    // `use "…"` goes to the files it imports.
    let common = dir.path().join("common");
    std::fs::create_dir_all(common.join("more")).unwrap();
    std::fs::write(
        common.join("common.clsf"),
        "group ops { claim sub == \"ops\" }\n",
    )
    .unwrap();
    std::fs::write(
        common.join("more/extra.clsf"),
        "group auditors { claim sub == \"audit\" }\n",
    )
    .unwrap();
    let with_use = format!("use \"../common\"\n{original}");
    lsp.notify(
        "textDocument/didChange",
        json!({ "textDocument": { "uri": file_uri, "version": 8 }, "contentChanges": [{ "text": with_use }] }),
    );
    lsp.diagnostics_for(&file_uri);
    let found = lsp.request(
        "textDocument/definition",
        json!({ "textDocument": { "uri": file_uri }, "position": { "line": 0, "character": 6 } }),
    );
    let files: Vec<&str> = found
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["uri"].as_str().unwrap())
        .collect();
    assert_eq!(
        files,
        [
            uri(&common.join("common.clsf")),
            uri(&common.join("more/extra.clsf"))
        ],
        "{found}"
    );

    lsp.request("shutdown", Value::Null);
    lsp.notify("exit", Value::Null);
    let status = lsp.child.wait().unwrap();
    assert!(status.success(), "{status:?}");
}
