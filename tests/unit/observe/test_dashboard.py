"""deploy/grafana/brook-dashboard.json queries only metric names that Brook's nodes serve."""

from __future__ import annotations

import json
import re
from pathlib import Path

from broker import metrics as bm
from controller.metrics import ControllerObserver
from tests.unit.observe.test_observe_metrics import _fake_broker, _fake_runtime, fake_coordinator, scrape

DASHBOARD = Path(__file__).resolve().parents[3] / "deploy" / "grafana" / "brook-dashboard.json"
PROCESS_METRICS = {"process_resident_memory_bytes", "process_cpu_seconds_total"}


def _served_names() -> set[str]:
    stats = bm.BrokerStats()
    stats.produced("t", b"")
    stats.fetched("t", 1)
    stats.isr_changed((1, 2), (1,))
    stats.request("Produce", 9, 1.0)
    coordinator = fake_coordinator("g", {("t", 0): 1})
    samples = {**scrape(bm.BrokerObserver(_fake_broker(), coordinator, stats=stats)),
               **scrape(ControllerObserver(_fake_runtime(active=True)))}
    return {name.split("{", 1)[0] for name in samples} | PROCESS_METRICS


def test_every_dashboard_query_uses_served_names():
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    assert len(exprs) >= 15
    used = {m for e in exprs for m in re.findall(r"\b((?:kafka|brook|process)_[a-z_]+)\b", e)}
    missing = used - _served_names()
    assert not missing, f"the dashboard queries names no node serves: {sorted(missing)}"
    assert {"kafka_server_replicamanager_underreplicatedpartitions",
            "kafka_controller_kafkacontroller_activecontrollercount",
            "kafka_controller_kafkacontroller_offlinepartitionscount"} <= used
