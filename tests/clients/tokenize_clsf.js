// Tokenises .clsf texts with the editor grammar, as VS Code does
// (vscode-textmate with the Oniguruma regex engine). Arguments: GRAMMAR.
// Reads a JSON array of texts on stdin; prints, per text, each line's
// tokens as [start, end, scopes] (UTF-16 offsets within the line).
const fs = require("fs");
const path = require("path");
const vsctm = require("vscode-textmate");
const oniguruma = require("vscode-oniguruma");

async function main() {
  const grammarPath = process.argv[2];
  const wasm = fs.readFileSync(
    path.join(path.dirname(require.resolve("vscode-oniguruma")), "onig.wasm"),
  );
  await oniguruma.loadWASM(wasm.buffer);
  const registry = new vsctm.Registry({
    onigLib: Promise.resolve({
      createOnigScanner: (patterns) => new oniguruma.OnigScanner(patterns),
      createOnigString: (s) => new oniguruma.OnigString(s),
    }),
    loadGrammar: async () =>
      vsctm.parseRawGrammar(fs.readFileSync(grammarPath, "utf8"), grammarPath),
  });
  const grammar = await registry.loadGrammar("source.clsf");
  let input = "";
  for await (const chunk of process.stdin) input += chunk;
  const out = JSON.parse(input).map((text) => {
    let state = vsctm.INITIAL;
    return text.split("\n").map((line) => {
      const r = grammar.tokenizeLine(line, state);
      state = r.ruleStack;
      return r.tokens.map((t) => [t.startIndex, t.endIndex, t.scopes]);
    });
  });
  console.log(JSON.stringify(out));
}

main().catch((e) => {
  console.error(String(e && e.stack ? e.stack : e));
  process.exit(1);
});
