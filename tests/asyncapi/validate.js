// Validates an AsyncAPI document with the real parser (@asyncapi/parser) and prints one JSON
// object: the diagnostics, and the channels and operations as the parser understood them (so
// tests/asyncapi.rs can compare them with the model). Exit 0 when there is no error
// diagnostic, 1 when there is, 2 when the file cannot be read.
//
//   node validate.js FILE
'use strict';

const fs = require('node:fs');
const { Parser } = require('@asyncapi/parser');

// @stoplight/types DiagnosticSeverity: Error = 0, Warning = 1, Information = 2, Hint = 3.
const SEVERITY = ['error', 'warning', 'information', 'hint'];

async function main() {
  const file = process.argv[2];
  if (!file) {
    console.error('usage: node validate.js FILE');
    return 2;
  }
  let text;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    console.error(`${file}: ${e.message}`);
    return 2;
  }
  const parser = new Parser();
  const { document, diagnostics } = await parser.parse(text, { source: file });
  const report = {
    file,
    errors: 0,
    warnings: 0,
    diagnostics: diagnostics.map((d) => ({
      severity: SEVERITY[d.severity] || String(d.severity),
      code: d.code,
      message: d.message,
      path: d.path.join('/'),
      line: d.range ? d.range.start.line + 1 : null,
    })),
    channels: [],
    operations: [],
  };
  for (const d of report.diagnostics) {
    if (d.severity === 'error') report.errors += 1;
    if (d.severity === 'warning') report.warnings += 1;
  }
  if (document) {
    for (const ch of document.channels()) {
      report.channels.push({
        id: ch.id(),
        address: ch.address(),
        messages: ch.messages().all().map((m) => m.id()),
      });
    }
    for (const op of document.operations()) {
      const reply = op.reply();
      report.operations.push({
        id: op.id(),
        action: op.action(),
        channels: op.channels().all().map((c) => c.address()),
        reply: reply && reply.channel() ? reply.channel().address() : null,
      });
    }
  }
  console.log(JSON.stringify(report, null, 2));
  return report.errors === 0 && document ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  (e) => {
    console.error(e && e.stack ? e.stack : String(e));
    process.exit(2);
  },
);
