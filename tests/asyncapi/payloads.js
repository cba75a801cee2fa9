// Validates JSON payloads against the payload schemas of an AsyncAPI document (JSON form)
// with ajv, and prints one JSON object: per case, whether it is valid and why not.
//
//   node payloads.js DOC.json CASES.json
//
// CASES.json: [{"name": "...", "schema": "<proto full name>", "payload": <JSON>}, ...]
// Exit 0 when every payload is valid, 1 when one is not, 2 on unreadable input.
'use strict';

const fs = require('node:fs');
const Ajv = require('ajv');

function main() {
  const [docFile, casesFile] = process.argv.slice(2);
  if (!docFile || !casesFile) {
    console.error('usage: node payloads.js DOC.json CASES.json');
    return 2;
  }
  const doc = JSON.parse(fs.readFileSync(docFile, 'utf8'));
  const cases = JSON.parse(fs.readFileSync(casesFile, 'utf8'));
  // AsyncAPI schemas are JSON Schema draft 07 plus keywords ajv need not know; formats such
  // as int64 are documentation here.
  const ajv = new Ajv({ strict: false, allErrors: true, validateFormats: false });
  ajv.addSchema(doc, 'asyncapi.json');
  const results = cases.map((c) => {
    const validate = ajv.compile({ $ref: `asyncapi.json#/components/schemas/${c.schema}` });
    const valid = validate(c.payload);
    return {
      name: c.name,
      schema: c.schema,
      valid,
      errors: valid ? [] : validate.errors.map((e) => `${e.instancePath || '/'} ${e.message}`),
    };
  });
  console.log(JSON.stringify({ results }, null, 2));
  return results.every((r) => r.valid) ? 0 : 1;
}

try {
  process.exit(main());
} catch (e) {
  console.error(e && e.stack ? e.stack : String(e));
  process.exit(2);
}
