#!/usr/bin/env python3
"""Writes a .proto with about N custom options (field and message options) to stdout.

Usage: options_proto.py N. Messages of 10 fields, each field with two custom options and each
message with one: 21 options per message.
"""
import sys

n = int(sys.argv[1])
messages = max(1, (n + 20) // 21)
out = [
    'syntax = "proto3";',
    "package bench.options.v1;",
    'import "google/protobuf/descriptor.proto";',
    "extend google.protobuf.FieldOptions {",
    "  string label = 50001;",
    "  int32 weight = 50002;",
    "}",
    "extend google.protobuf.MessageOptions {",
    "  string note = 50003;",
    "}",
]
for m in range(messages):
    out.append(f"// Message {m}.")
    out.append(f"message M{m} {{")
    out.append(f'  option (note) = "message {m}";')
    for f in range(10):
        out.append(f'  string f{f} = {f + 1} [(label) = "m{m}f{f}", (weight) = {f}];')
    out.append("}")
print("\n".join(out))
