#!/usr/bin/env python3
"""kueue_webhooks.py CA_FILE URL < JSON: Kueue's webhook configurations for a host process.

Reads upstream's config/components/webhook/manifests.yaml as JSON objects (`kubectl create
--dry-run=client -o json -f` prints them one after another) and prints the two configurations
with only the webhooks the test cluster's Kueue serves (its own kinds and batch/v1 Jobs, the one
integration it runs), each pointed at URL (the manager on loopback, which the host's apiserver
reaches) and trusting CA_FILE. The Job webhooks see only Jobs labelled for a queue: with
failurePolicy Fail, a stopped Kueue must not block every other Job on the shared cluster.
Standard library only (the host's python3 runs it, as root, from up.sh).
"""

import base64
import json
import sys
from collections.abc import Iterator
from typing import Any

QUEUE_LABEL = "kueue.x-k8s.io/queue-name"
SERVED_GROUPS = {"kueue.x-k8s.io", "batch"}
NAMES = {
    "MutatingWebhookConfiguration": "crucible-kueue-mutating",
    "ValidatingWebhookConfiguration": "crucible-kueue-validating",
}


def served(webhook: dict[str, Any]) -> bool:
    groups = {g for rule in webhook.get("rules") or [] for g in rule.get("apiGroups") or []}
    return bool(groups) and groups <= SERVED_GROUPS


def adapt(webhook: dict[str, Any], url: str, ca_bundle: str) -> dict[str, Any]:
    path = webhook["clientConfig"]["service"]["path"]
    webhook["clientConfig"] = {"url": url.rstrip("/") + path, "caBundle": ca_bundle}
    webhook["timeoutSeconds"] = 10
    if any("batch" in (rule.get("apiGroups") or []) for rule in webhook["rules"]):
        webhook["objectSelector"] = {
            "matchExpressions": [{"key": QUEUE_LABEL, "operator": "Exists"}]
        }
    return webhook


def objects(text: str) -> Iterator[dict[str, Any]]:
    """The JSON objects of ``text``, one after another with white space between."""
    decoder, at, text = json.JSONDecoder(), 0, text.strip()
    while at < len(text):
        obj, at = decoder.raw_decode(text, at)
        yield obj
        while at < len(text) and text[at].isspace():
            at += 1


def main(ca_file: str, url: str) -> None:
    with open(ca_file, "rb") as f:
        ca_bundle = base64.b64encode(f.read()).decode()
    out = []
    for doc in objects(sys.stdin.read()):
        if doc.get("kind") not in NAMES:
            continue
        hooks = [adapt(w, url, ca_bundle) for w in doc.get("webhooks") or [] if served(w)]
        doc["metadata"] = {"name": NAMES[doc["kind"]]}
        doc["webhooks"] = hooks
        out.append(doc)
    if len(out) != len(NAMES) or not all(d["webhooks"] for d in out):
        sys.exit("kueue_webhooks: the input does not hold the expected configurations")
    json.dump({"apiVersion": "v1", "kind": "List", "items": out}, sys.stdout, indent=1)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(*sys.argv[1:])
