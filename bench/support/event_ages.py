"""The dispatchers' own view of an event's delay: ``crucible_dispatcher_event_age_seconds``
(now minus the event's ``ts``, stamped by the sidecar that built it) when a sidecar delivers the
event (``ingest``) and when it goes out on a live event stream (``sse``). Read from every
dispatcher pod of a release before and after a batch, the difference tells where, between the
sidecar and the client, the time goes: the POST, the dispatcher's ingest and script, Redis's
wake-up of the stream's reader, or the last hop to the client.
"""

import json
import urllib.request
from dataclasses import dataclass

from dispatcher.metrics import AGE_AT_INGEST, AGE_AT_SSE, EVENT_AGE, EVENT_AGE_BUCKETS
from tests.e2e import kube

NAME = EVENT_AGE + "_bucket"
PLACES = (AGE_AT_INGEST, AGE_AT_SSE)


@dataclass
class Snapshot:
    """Cumulative bucket counts (EVENT_AGE_BUCKETS, then +Inf) per place, summed over pods."""

    counts: dict[str, list[int]]

    def since(self, earlier: "Snapshot") -> "Snapshot":
        """What was observed between ``earlier`` and this one (a restarted pod's counts start
        again from 0: never below 0)."""
        return Snapshot(
            {
                at: [
                    max(0, now - then) for now, then in zip(counts, earlier.counts[at], strict=True)
                ]
                for at, counts in self.counts.items()
            }
        )

    def quantile(self, at: str, q: float) -> float | None:
        """As Prometheus's histogram_quantile: linear within the bucket that holds the rank."""
        counts = self.counts[at]
        total = counts[-1]
        if total == 0:
            return None
        rank = q * total
        lower_bound, lower_count = 0.0, 0
        for bound, count in zip(EVENT_AGE_BUCKETS, counts, strict=False):
            if count >= rank:
                share = (rank - lower_count) / (count - lower_count) if count > lower_count else 1
                return lower_bound + (bound - lower_bound) * share
            lower_bound, lower_count = bound, count
        return EVENT_AGE_BUCKETS[-1]  # in the +Inf bucket: at least the last bound


def scrape(namespace: str, token: str, port: int = 8080) -> Snapshot:
    """Every dispatcher pod's histogram, summed (``token``: one the API takes)."""
    pods = kube.kubectl_json(
        "get", "pods", "-n", namespace, "-l", "app.kubernetes.io/component=dispatcher", "-o", "json"
    )["items"]
    counts = {at: [0] * (len(EVENT_AGE_BUCKETS) + 1) for at in PLACES}
    for pod in pods:
        address = pod["status"].get("podIP")
        if not address:
            continue
        asked = urllib.request.Request(
            f"http://{address}:{port}/metrics", headers={"Authorization": f"Bearer {token}"}
        )
        with urllib.request.urlopen(asked, timeout=10) as answer:
            text = answer.read().decode()
        for line in text.splitlines():
            if not line.startswith(NAME + "{"):
                continue
            labels, value = line[len(NAME) + 1 :].rsplit("} ", 1)
            fields = dict(part.split("=", 1) for part in labels.split(","))
            at, le = json.loads(fields["at"]), json.loads(fields["le"])
            if at in counts:
                index = (
                    len(EVENT_AGE_BUCKETS) if le == "+Inf" else EVENT_AGE_BUCKETS.index(float(le))
                )
                counts[at][index] += int(float(value))
    return Snapshot(counts)
