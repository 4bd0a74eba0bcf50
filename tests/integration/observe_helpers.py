"""HTTP helpers for the metrics / health / status-page tests: plain GETs of each node's metrics.port."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

HTTP_TIMEOUT_S = 5.0


def get(url: str) -> tuple[int, str]:
    """(status, body) of a GET; an HTTP error status is returned, not raised; 0 when nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=HTTP_TIMEOUT_S) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
    except (urllib.error.URLError, ConnectionError, TimeoutError) as e:
        return 0, str(e)


def scrape(node: Any) -> dict[str, list[tuple[dict[str, str], float]]]:
    """The node's /metrics as {sample name: [(labels, value), ...]} (parsed by hand: name{labels} value)."""
    status, body = get(f"{node.metrics_url}/metrics")
    assert status == 200, body
    samples: dict[str, list[tuple[dict[str, str], float]]] = {}
    for line in body.splitlines():
        if not line or line.startswith("#"):
            continue
        head, _, value = line.rpartition(" ")
        name, _, rest = head.partition("{")
        labels = {}
        for item in filter(None, rest.rstrip("}").split('",')):
            key, _, raw = item.partition("=")
            labels[key.strip(",")] = raw.strip('"')
        samples.setdefault(name, []).append((labels, float(value)))
    return samples


def value(samples: dict[str, list[tuple[dict[str, str], float]]], name: str, **labels: str) -> float:
    """The sum of the samples of `name` whose labels include `labels` (0 when there are none)."""
    return sum(v for sample_labels, v in samples.get(name, []) if labels.items() <= sample_labels.items())


def total(cluster: Any, node_ids: list[int], name: str, **labels: str) -> float:
    """`name` summed over the nodes (as a Prometheus `sum()` across instances)."""
    return sum(value(scrape(cluster.node(i)), name, **labels) for i in node_ids)


def status(node: Any) -> dict[str, Any]:
    code, body = get(f"{node.metrics_url}/api/status")
    assert code == 200, body
    return json.loads(body)
