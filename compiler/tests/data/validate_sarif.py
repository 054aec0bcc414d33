"""Validates SARIF logs against the SARIF 2.1.0 JSON schema (draft 4).

Usage: validate_sarif.py SCHEMA < logs.json, where logs.json is a JSON
array of logs. Prints one line per log: "valid", or "invalid" followed by
its errors. Run by compiler/tests/report.rs with the `jsonschema` package
that tests/ensure-deps.sh installs.
"""

import json
import sys

import jsonschema

with open(sys.argv[1], encoding="utf-8") as f:
    text = f.read()
# The published schema's `run.language` pattern ends in a stray `]`; it
# constrains a field clsfc does not write. Spell it as meant.
text = text.replace("^[a-zA-Z]{2}|^[a-zA-Z]{2}-[a-zA-Z]{2}]?$", "^[a-zA-Z]{2}(-[a-zA-Z]{2})?$")
schema = json.loads(text)
jsonschema.Draft4Validator.check_schema(schema)
validator = jsonschema.Draft4Validator(schema)
for log in json.load(sys.stdin):
    errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(log)]
    print("valid" if not errors else "invalid " + "; ".join(errors))
