// Parse an AsyncAPI document with the official parser; print its diagnostics as JSON.
//
//   node asyncapi_parse.cjs NODE_DIR FILE
//
// NODE_DIR holds node_modules/@asyncapi/parser (the Makefile installs it in
// tests/js). Exit 0 when the document parsed with no error, 1 when it did
// not, 2 when the parser could not be loaded or the file read.
"use strict";

const fs = require("fs");

async function main() {
  const [nodeDir, file] = process.argv.slice(2);
  let Parser;
  try {
    ({ Parser } = require(require.resolve("@asyncapi/parser", { paths: [nodeDir] })));
  } catch (error) {
    process.stderr.write(`cannot load @asyncapi/parser from ${nodeDir}: ${error.message}\n`);
    return 2;
  }
  const text = fs.readFileSync(file, "utf8");
  const { document, diagnostics } = await new Parser().parse(text);
  const shown = diagnostics.map((d) => ({
    severity: d.severity, // 0 error, 1 warning, 2 information, 3 hint
    code: d.code,
    message: d.message,
    path: d.path,
  }));
  const errors = shown.filter((d) => d.severity === 0);
  process.stdout.write(JSON.stringify({ parsed: document !== undefined, diagnostics: shown }) + "\n");
  return document !== undefined && errors.length === 0 ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  (error) => {
    process.stderr.write(`${error.stack || error}\n`);
    process.exit(2);
  },
);
