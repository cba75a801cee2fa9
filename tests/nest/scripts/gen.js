#!/usr/bin/env node
// Generates the payload types of the contract with ts-proto into src/gen/ (gitignored).
// Runs protoc (Debian package `protobuf-compiler`) on the SAME .proto files that axion-gen reads.
"use strict";
const { spawnSync } = require("node:child_process");
const fs = require("node:fs");
const path = require("node:path");

const root = path.resolve(__dirname, "..");
const protoRoot = path.resolve(root, "../../proto");
const outDir = path.join(root, "src/gen");
const plugin = path.join(root, "node_modules/.bin/protoc-gen-ts_proto");
// Every contract under proto/ (the generated contracts in src/contracts import them all).
function protoFiles(dir) {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) return protoFiles(p);
    return e.name.endsWith(".proto") ? [path.relative(protoRoot, p)] : [];
  });
}
const protos = protoFiles(protoRoot).sort();

// ts-proto options. nestJs=true switches to NestJS-friendly defaults (interfaces + controller
// interfaces, no encode/JSON methods, useDate=false i.e. Timestamp stays {seconds, nanos}).
// outputPartialMethods=true adds Message.create()/fromPartial() so fixtures are built the way a
// real peer builds them. Everything that shapes JSON.stringify output is left at ts-proto's
// default: forceLong=number, useDate=false (nestJs), env=both (bytes are Uint8Array),
// oneof=properties, snakeToCamel (camelCase keys), numeric enums, useOptionals=none.
const tsProtoOpts = ["nestJs=true", "outputPartialMethods=true"];

fs.rmSync(outDir, { recursive: true, force: true });
fs.mkdirSync(outDir, { recursive: true });

const args = [
  `--plugin=protoc-gen-ts_proto=${plugin}`,
  `--ts_proto_out=${outDir}`,
  `--ts_proto_opt=${tsProtoOpts.join(",")}`,
  `-I${protoRoot}`,
  ...protos,
];
const res = spawnSync("protoc", args, { stdio: "inherit", cwd: root });
if (res.error) {
  console.error(`gen: cannot run protoc (${res.error.message}); install it: apt-get install -y protobuf-compiler`);
  process.exit(1);
}
if (res.status !== 0) process.exit(res.status ?? 1);
console.error(`gen: ts-proto (${tsProtoOpts.join(",")}) -> ${path.relative(root, outDir)}/`);
