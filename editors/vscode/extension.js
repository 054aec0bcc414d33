// The VS Code client of the clsf language server: starts `clsfc lsp` (the
// executable named by the `clsf.server.path` setting) over stdio for every
// .clsf file, so diagnostics, hover, completion, definitions, references,
// formatting and quick fixes come from the same compiler as `clsfc check`.
"use strict";

const vscode = require("vscode");
const { LanguageClient, TransportKind } = require("vscode-languageclient/node");

let client;

function activate(context) {
  const config = vscode.workspace.getConfiguration("clsf");
  const command = config.get("server.path", "clsfc");
  const server = { command, args: ["lsp"], transport: TransportKind.stdio };
  client = new LanguageClient(
    "clsf",
    "clsf language server",
    { run: server, debug: server },
    {
      documentSelector: [{ scheme: "file", language: "clsf" }],
      synchronize: {
        // The lock file decides table and column diagnostics: re-check on change.
        fileEvents: vscode.workspace.createFileSystemWatcher("**/schema.lock.json"),
      },
    },
  );
  context.subscriptions.push(client);
  return client.start();
}

function deactivate() {
  return client ? client.stop() : undefined;
}

module.exports = { activate, deactivate };
