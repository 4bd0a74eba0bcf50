"""What a node serves: readiness over every role, the combined node's status, the routes' answers."""

from __future__ import annotations

import asyncio
import json

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from cluster.observe.http import Request
from cluster.observe.node import NodeObserver


class _Collector(Collector):
    def __init__(self, name: str) -> None:
        self.name = name

    def collect(self):  # type: ignore[no-untyped-def]
        yield GaugeMetricFamily(self.name, "test", value=7)


class _Role:
    def __init__(self, role: str, ready: bool, offset: int) -> None:
        self.role, self.ready, self.offset = role, ready, offset

    def collector(self) -> Collector:
        return _Collector(f"test_{self.role}_value")

    def readiness(self) -> tuple[bool, str]:
        return self.ready, "why " + self.role

    def status(self) -> dict:
        return {"cluster": {"metadata_offset": self.offset, "from": self.role}, self.role: {"id": 1}}


def _call(node: NodeObserver, path: str):
    return asyncio.run(node.routes()[path](Request("GET", path)))


def test_ready_only_when_every_role_is_ready_and_the_newer_view_wins():
    node = NodeObserver(1, ["broker", "controller"])
    assert not node.readiness()[0]  # no role yet: not ready
    node.add(_Role("controller", True, 40))
    node.add(_Role("broker", False, 38))
    response = _call(node, "/healthz/ready")
    assert response.status == 503
    assert b"broker: not ready: why broker" in response.body and b"controller: ready" in response.body
    assert _call(node, "/healthz/live").status == 200
    status = json.loads(_call(node, "/api/status").body)
    assert status["cluster"]["from"] == "controller" and status["broker"] == {"id": 1} and not status["ready"]
    node.observers[1].ready = True
    assert _call(node, "/healthz/ready").status == 200
    metrics = _call(node, "/metrics").body.decode()
    assert "test_controller_value 7.0" in metrics and "test_broker_value 7.0" in metrics
    assert 'brook_node_info{node_id="1",roles="broker,controller"} 1.0' in metrics
    ui = _call(node, "/ui")
    assert ui.status == 200 and ui.content_type.startswith("text/html") and b"/api/status" in ui.body
