"""Names crucible gives Kubernetes objects, and the labels and annotations it puts on them.

Every name derived from an ``eval_id`` ends in a hash of the exact id, so two ids that sanitise
to the same text ("Run_1" and "run-1") still get different Jobs, and the same id always gets the
same Job (a retried submit hits AlreadyExists instead of creating a second Job).
"""

import hashlib
import re
from collections.abc import Mapping
from typing import Any

from dispatcher.backends.kube.config import UserLabelsAs
from wire import tenancy

PREFIX = "crucible.dev/"
USER_PREFIX = "user.crucible.dev/"

LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
MANAGED_BY = "crucible"
LABEL_INSTANCE = PREFIX + "instance"
LABEL_EVAL_ID = PREFIX + "eval-id"
LABEL_TENANT = PREFIX + "tenant"

ANNOTATION_EVAL_ID = PREFIX + "eval-id"
ANNOTATION_CREATED_AT = PREFIX + "created-at"
ANNOTATION_MAIN_CONTAINER = PREFIX + "main-container"
ANNOTATION_TIMEOUT = PREFIX + "timeout-seconds"
ANNOTATION_SIDECAR_MODE = PREFIX + "sidecar-mode"
ANNOTATION_DEFAULT_CONTAINER = "kubectl.kubernetes.io/default-container"

MAX_LABEL = 63
ANNOTATION_VALUE_MAX = 4096
_HASH_CHARS = 10
JOB_NAME_PREFIX = "crucible-"

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_LABEL_NAME = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")


def short_hash(text: str) -> str:
    # surrogatepass: an id may hold lone surrogates; it must still hash, and hash stably.
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:_HASH_CHARS]


def is_dns_label(text: str) -> bool:
    return len(text) <= MAX_LABEL and _DNS_LABEL.match(text) is not None


def is_label_value(text: str) -> bool:
    return len(text) <= MAX_LABEL and _LABEL_VALUE.match(text) is not None


def is_label_name(text: str) -> bool:
    """The name part of a label or annotation key (after an optional ``prefix/``)."""
    return 0 < len(text) <= MAX_LABEL and _LABEL_NAME.match(text) is not None


def job_name(eval_id: str) -> str:
    """A valid DNS-1123 label (<= 63 chars) for any ``eval_id``: ``crucible-<slug>-<hash>``."""
    slug = re.sub(r"[^a-z0-9]+", "-", eval_id.lower()).strip("-")
    room = MAX_LABEL - len(JOB_NAME_PREFIX) - 1 - _HASH_CHARS
    slug = slug[:room].rstrip("-")
    return (
        f"{JOB_NAME_PREFIX}{slug}-{short_hash(eval_id)}"
        if slug
        else (f"{JOB_NAME_PREFIX}{short_hash(eval_id)}")
    )


def tenant_label(eval_id: str) -> str:
    """The ``crucible.dev/tenant`` label value: the tenant ("" for an operator's own)."""
    tenant, _ = tenancy.split(eval_id)
    return tenant if is_label_value(tenant) else eval_label(tenant)


def eval_label(eval_id: str) -> str:
    """The ``crucible.dev/eval-id`` label value: the id itself when it is a valid label value,
    else a sanitised prefix plus a hash (the exact id is in the annotation)."""
    if is_label_value(eval_id) and not eval_id.startswith("h-"):
        return eval_id
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", eval_id)
    slug = slug[: MAX_LABEL - 3 - _HASH_CHARS].strip("-_.")
    return f"h-{slug}-{short_hash(eval_id)}" if slug else f"h-{short_hash(eval_id)}"


def crucible_labels(eval_id: str, instance: str) -> dict[str, str]:
    """The labels on each Job and Pod of crucible's; ``selector`` matches an instance's."""
    return {
        LABEL_MANAGED_BY: MANAGED_BY,
        LABEL_INSTANCE: instance,
        LABEL_EVAL_ID: eval_label(eval_id),
        # A DNS label or "" (an operator's own): selectable per tenant (quotas, cleanup).
        LABEL_TENANT: tenant_label(eval_id),
    }


def label_problems(labels: Mapping[str, str], user_labels_as: UserLabelsAs) -> dict[str, str]:
    """One message per user label that cannot be placed as ``user_labels_as`` says (labels or
    annotations): the API's 422 details."""
    found: dict[str, str] = {}
    for key, value in labels.items():
        field = f"labels.{key[:64]}"
        if not is_label_name(key):
            found[field] = "key must be 1-63 chars of [A-Za-z0-9-_.], alphanumeric at both ends"
        elif user_labels_as == "labels" and not is_label_value(value):
            found[field] = "value must be <= 63 chars of [A-Za-z0-9-_.], alphanumeric at both ends"
        elif len(value) > ANNOTATION_VALUE_MAX:
            found[field] = f"value must be <= {ANNOTATION_VALUE_MAX} chars"
    return found


def selector(instance: str) -> str:
    """Label selector of every object one crucible instance manages."""
    return f"{LABEL_MANAGED_BY}={MANAGED_BY},{LABEL_INSTANCE}={instance}"


def eval_id_of(obj: dict[str, Any]) -> str | None:
    """The evaluation a Job or Pod of crucible's belongs to (its annotation), or None."""
    annotations = (obj.get("metadata") or {}).get("annotations") or {}
    value = annotations.get(ANNOTATION_EVAL_ID)
    return value if isinstance(value, str) else None
