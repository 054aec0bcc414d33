// An MCP agent for the tests: the official TypeScript SDK's client over
// streamable HTTP, or with a third argument (the clsf-proxy binary) over
// stdio through `clsf-proxy mcp-stdio`. Arguments: URL TOKEN [PROXY]; with
// CLSF_MCP_CERT and CLSF_MCP_KEY the bridge presents that client
// certificate. Reads a JSON array of tool calls ({"tool": NAME, "args":
// {...}}) on stdin; prints one JSON object with the
// tools it was offered, the policy resource's text and each call's result.
const { Client } = require("@modelcontextprotocol/sdk/client/index.js");
const { StreamableHTTPClientTransport } = require("@modelcontextprotocol/sdk/client/streamableHttp.js");
const { StdioClientTransport } = require("@modelcontextprotocol/sdk/client/stdio.js");

async function main() {
  const [url, token, proxy] = process.argv.slice(2);
  let input = "";
  for await (const chunk of process.stdin) input += chunk;
  const calls = JSON.parse(input || "[]");
  const transport = proxy
    ? new StdioClientTransport({
        command: proxy,
        args: ["mcp-stdio", "--url", url]
          .concat(process.env.CLSF_MCP_CA ? ["--ca-file", process.env.CLSF_MCP_CA] : [])
          .concat(
            process.env.CLSF_MCP_CERT
              ? ["--cert-file", process.env.CLSF_MCP_CERT, "--key-file", process.env.CLSF_MCP_KEY]
              : [],
          ),
        // An empty token: the bridge proves the agent with its certificate.
        env: token ? { ...process.env, CLSF_TOKEN: token } : process.env,
        stderr: "inherit",
      })
    : new StreamableHTTPClientTransport(new URL(url), {
        // A whole `Basic …` header for a service account, else a token.
        requestInit: {
          headers: { Authorization: token.startsWith("Basic ") ? token : `Bearer ${token}` },
        },
      });
  const client = new Client({ name: "clsf-test-agent", version: "1.0.0" });
  await client.connect(transport);
  const tools = (await client.listTools()).tools.map((t) => t.name);
  const resources = (await client.listResources()).resources.map((r) => r.uri);
  const policy = (await client.readResource({ uri: "clsf://policy" })).contents[0].text;
  const results = [];
  for (const c of calls) {
    const r = await client.callTool({ name: c.tool, arguments: c.args || {} });
    results.push({
      isError: !!r.isError,
      text: r.content.map((x) => x.text).join("\n"),
      data: r.structuredContent ?? null,
    });
  }
  console.log(JSON.stringify({ tools, resources, policy, results }));
  await client.close();
}

main().catch((e) => {
  console.error(String(e && e.stack ? e.stack : e));
  process.exit(1);
});
