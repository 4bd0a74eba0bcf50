"""What every node serves over HTTP (`metrics.port`), and the gRPC health service on its gRPC ports.

    /metrics        Prometheus text: the roles' collectors (Kafka JMX exporter names), process metrics
    /healthz/live   200 while the node's event loop answers
    /healthz/ready  200 when every role of the node is ready, else 503 with the reasons
    /api/status     JSON for the status page (CORS open: the page polls every node of the cluster)
    /ui             the status page

A role (broker, controller) plugs in as a `RoleObserver`: a Prometheus collector read at scrape time,
a readiness check, and its part of /api/status. Collectors run on the node's event loop (the HTTP
server does), so they read the role's state without locks.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass, field
from importlib import resources
from typing import Any, Protocol

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

from cluster.observe.http import HttpServer, Request, Response, text

log = logging.getLogger("brook.observe")

HEALTH_UPDATE_INTERVAL_S = 1.0


class RoleObserver(Protocol):
    role: str

    def collector(self) -> Collector: ...

    def readiness(self) -> tuple[bool, str]: ...

    def status(self) -> dict[str, Any]: ...


class _NodeInfo(Collector):
    def __init__(self, node_id: int, roles: list[str]) -> None:
        self.node_id, self.roles = node_id, roles

    def collect(self):  # type: ignore[no-untyped-def]
        g = GaugeMetricFamily("brook_node_info", "This node's id and roles (always 1).", labels=["node_id", "roles"])
        g.add_metric([str(self.node_id), ",".join(self.roles)], 1)
        yield g


async def _set_health(servicer: Any, observer: RoleObserver) -> None:
    from grpc_health.v1 import health_pb2

    ok, _ = observer.readiness()
    status = health_pb2.HealthCheckResponse.SERVING if ok else health_pb2.HealthCheckResponse.NOT_SERVING
    await servicer.set("", status)
    await servicer.set(f"brook.{observer.role}", status)


def ui_html() -> bytes:
    return resources.files("cluster.observe").joinpath("ui.html").read_bytes()


@dataclass
class NodeObserver:
    node_id: int
    roles: list[str] = field(default_factory=list)
    observers: list[RoleObserver] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        for extra in (ProcessCollector, PlatformCollector, GCCollector):
            extra(registry=self.registry)
        self.registry.register(_NodeInfo(self.node_id, self.roles))
        self._server: HttpServer | None = None
        self._health_task: asyncio.Task[None] | None = None
        self._health: list[tuple[RoleObserver, Any]] = []

    def add(self, observer: RoleObserver) -> None:
        self.observers.append(observer)
        self.registry.register(observer.collector())

    # -- health ------------------------------------------------------------------------------------
    def readiness(self) -> tuple[bool, list[str]]:
        reasons = []
        ready = bool(self.observers)
        for o in self.observers:
            ok, why = o.readiness()
            ready = ready and ok
            reasons.append(f"{o.role}: {'ready' if ok else 'not ready'}: {why}")
        return ready, reasons

    def grpc_health_servicer(self, observer: RoleObserver) -> Any:
        """A gRPC Health servicer (grpc.health.v1) for services "" and "brook.<role>" that follows
        `observer`'s readiness: updated every second for Watch, and at once on every Check."""
        from grpc_health.v1.health import aio as health_aio

        async def refresh(servicer: Any) -> None:
            await _set_health(servicer, observer)

        class _Health(health_aio.HealthServicer):  # type: ignore[misc]
            async def Check(self, request: Any, context: Any) -> Any:  # noqa: N802 (gRPC method name)
                await refresh(self)
                return await super().Check(request, context)

        servicer = _Health()
        self._health.append((observer, servicer))
        return servicer

    async def _update_grpc_health(self) -> None:
        while True:
            for observer, servicer in self._health:
                try:
                    await _set_health(servicer, observer)
                except Exception:
                    log.exception("gRPC health update failed")
            await asyncio.sleep(HEALTH_UPDATE_INTERVAL_S)

    # -- status ------------------------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        ready, reasons = self.readiness()
        out: dict[str, Any] = {"node_id": self.node_id, "roles": self.roles, "time_ms": int(time.time() * 1000),
                               "ready": ready, "ready_reasons": reasons}
        for o in self.observers:
            part = o.status()
            cluster = part.pop("cluster", None)
            # A combined node: keep the newer of the two images' views.
            if cluster is not None and (out.get("cluster") is None
                                        or cluster["metadata_offset"] > out["cluster"]["metadata_offset"]):
                out["cluster"] = cluster
            out.update(part)
        return out

    # -- HTTP --------------------------------------------------------------------------------------
    async def _metrics(self, request: Request) -> Response:
        return Response(200, generate_latest(self.registry), CONTENT_TYPE_LATEST)

    async def _live(self, request: Request) -> Response:
        return text(200, "live\n")

    async def _ready(self, request: Request) -> Response:
        ready, reasons = self.readiness()
        return text(200 if ready else 503, ("ready" if ready else "not ready") + "\n" + "\n".join(reasons) + "\n")

    async def _status(self, request: Request) -> Response:
        body = json.dumps(self.status(), separators=(",", ":")).encode()
        return Response(200, body, "application/json", {"Access-Control-Allow-Origin": "*"})

    async def _ui(self, request: Request) -> Response:
        return Response(200, ui_html(), "text/html; charset=utf-8")

    def routes(self) -> dict[str, Any]:
        return {"/metrics": self._metrics, "/healthz/live": self._live, "/healthz/ready": self._ready,
                "/healthz": self._ready, "/api/status": self._status, "/ui": self._ui, "/": self._ui}

    async def start(self, host: str, port: int) -> None:
        """Serve HTTP on host:port when port > 0 (before the roles start, so liveness answers during a long
        start-up; readiness says why the node is not ready yet); keep the gRPC health services updated."""
        if port > 0:
            self._server = HttpServer(self.routes())
            await self._server.start(host, port)
        self._health_task = asyncio.get_running_loop().create_task(self._update_grpc_health())

    async def close(self) -> None:
        if self._health_task is not None:
            self._health_task.cancel()
        if self._server is not None:
            await self._server.close()
