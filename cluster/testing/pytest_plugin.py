"""A pytest plugin that gives a test suite a real, replicated Brook cluster: no Docker, no JVM.

Installed with `pip install brook[testing]` it loads itself (entry point `pytest11`, name `brook`;
`-p no:brook` turns it off); without the entry point, `-p cluster.testing.pytest_plugin` loads it.

Fixtures:
    brook_cluster           the running LocalCluster (controllers + brokers on 127.0.0.1, data in a
                            temporary directory); `kafka_bootstrap`, `controller_bootstrap`,
                            `broker_ids`, `kill(id)`, `restart(id)` are there for failure tests
    brook_bootstrap         its Kafka bootstrap servers, "127.0.0.1:port,..." for any Kafka client
    brook_controller_bootstrap  the controllers' gRPC addresses (for `brook --bootstrap-controller`)

Size and overrides come from the ini file (`brook_controllers`, `brook_brokers`, `brook_overrides`,
`brook_start_timeout`) or, per test / class / module, from the marker
`@pytest.mark.brook(controllers=3, brokers=3, overrides={"num.partitions": "3"})`, whose values
replace the ini ones. A cluster lives for the whole session and is shared by every test asking for
the same configuration; each one is stopped by the PIDs of its processes at the end of the session,
whether the tests passed or failed (LocalCluster.stop: SIGTERM, a bounded wait, then SIGKILL).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import pytest

from cluster.cli.launcher import LocalCluster

__all__ = ["ClusterSpec", "spec_from"]

DEFAULT_CONTROLLERS = 1
DEFAULT_BROKERS = 1
DEFAULT_START_TIMEOUT_S = 90.0   # a cold 3+3 start takes seconds; the bound is for a loaded CI machine
MARKER = "brook"


@dataclass(frozen=True)
class ClusterSpec:
    """What a test asks for; equal specs share one cluster."""

    controllers: int = DEFAULT_CONTROLLERS
    brokers: int = DEFAULT_BROKERS
    overrides: tuple[tuple[str, str], ...] = ()
    start_timeout_s: float = DEFAULT_START_TIMEOUT_S


def _overrides(value: object, where: str) -> tuple[tuple[str, str], ...]:
    """`{"k": "v"}`, `["k=v", ...]` or "k=v" lines as sorted (key, value) pairs."""
    if isinstance(value, Mapping):
        items = [(str(k), str(v)) for k, v in value.items()]
    elif isinstance(value, str | list | tuple):
        lines = value.splitlines() if isinstance(value, str) else [str(v) for v in value]
        items = []
        for line in (raw.strip() for raw in lines):
            if not line or line.startswith("#"):
                continue
            key, sep, val = line.partition("=")
            if not sep or not key.strip():
                raise pytest.UsageError(f"{where}: bad override {line!r}: expected key=value")
            items.append((key.strip(), val.strip()))
    else:
        raise pytest.UsageError(f"{where}: overrides must be a dict or key=value strings, got {value!r}")
    return tuple(sorted(dict(items).items()))


def _count(value: object, what: str, where: str) -> int:
    try:
        number = int(str(value))
    except ValueError:
        raise pytest.UsageError(f"{where}: {what} must be a whole number, got {value!r}") from None
    if number < 1:
        raise pytest.UsageError(f"{where}: {what} must be at least 1, got {number}")
    return number


def spec_from(ini: Mapping[str, object], marker_kwargs: Mapping[str, object] | None = None) -> ClusterSpec:
    """The ClusterSpec for a test: ini values, replaced by the marker's where it sets them."""
    where = "ini option"
    controllers = _count(ini.get("brook_controllers") or DEFAULT_CONTROLLERS, "brook_controllers", where)
    brokers = _count(ini.get("brook_brokers") or DEFAULT_BROKERS, "brook_brokers", where)
    overrides = _overrides(ini.get("brook_overrides") or [], where)
    timeout_raw = ini.get("brook_start_timeout") or DEFAULT_START_TIMEOUT_S
    try:
        timeout = float(str(timeout_raw))
    except ValueError:
        raise pytest.UsageError(f"{where}: brook_start_timeout must be seconds, got {timeout_raw!r}") from None
    if marker_kwargs:
        where = f"@pytest.mark.{MARKER}"
        unknown = sorted(set(marker_kwargs) - {"controllers", "brokers", "overrides"})
        if unknown:
            raise pytest.UsageError(f"{where}: unknown argument(s) {', '.join(unknown)} "
                                    "(expected controllers, brokers, overrides)")
        if "controllers" in marker_kwargs:
            controllers = _count(marker_kwargs["controllers"], "controllers", where)
        if "brokers" in marker_kwargs:
            brokers = _count(marker_kwargs["brokers"], "brokers", where)
        if "overrides" in marker_kwargs:
            overrides = tuple(sorted({**dict(overrides),
                                      **dict(_overrides(marker_kwargs["overrides"], where))}.items()))
    return ClusterSpec(controllers, brokers, overrides, timeout)


class _ClusterPool:
    """The session's clusters, one per ClusterSpec, started on first use and all stopped at the end."""

    def __init__(self, factory: pytest.TempPathFactory) -> None:
        self._factory = factory
        self._clusters: dict[ClusterSpec, LocalCluster] = {}
        self._failed: dict[ClusterSpec, str] = {}

    def get(self, spec: ClusterSpec) -> LocalCluster:
        if spec in self._failed:
            pytest.fail(self._failed[spec], pytrace=False)
        cluster = self._clusters.get(spec)
        if cluster is None:
            data_dir = self._factory.mktemp(f"brook-{spec.controllers}c{spec.brokers}b")
            cluster = LocalCluster(data_dir, controllers=spec.controllers, brokers=spec.brokers,
                                   overrides=dict(spec.overrides))
            self._clusters[spec] = cluster  # registered before start: stop() covers a half-started one
            try:
                cluster.start(wait=True, timeout_s=spec.start_timeout_s)
            except Exception as e:  # LaunchError carries the nodes' log tails
                details = getattr(e, "details", "")
                self._failed[spec] = f"Brook cluster {spec} did not start: {e}\n{details}"
                cluster.stop()
                pytest.fail(self._failed[spec], pytrace=False)
        return cluster

    def stop_all(self) -> list[str]:
        """Stop every cluster; returns a line per process that is still running afterwards."""
        leftovers = []
        for spec, cluster in self._clusters.items():
            cluster.stop()
            leftovers += [f"{spec}: node {node} pid {pid}" for node, pid in cluster.pids.items()]
        self._clusters.clear()
        return leftovers


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addini("brook_controllers", f"Brook controllers per cluster (default {DEFAULT_CONTROLLERS})")
    parser.addini("brook_brokers", f"Brook brokers per cluster (default {DEFAULT_BROKERS})")
    parser.addini("brook_overrides", "Brook server properties for every node, one key=value a line",
                  type="linelist")
    parser.addini("brook_start_timeout", f"seconds to wait for a healthy cluster (default "
                  f"{DEFAULT_START_TIMEOUT_S:g})")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", f"{MARKER}(controllers=1, brokers=1, overrides={{}}): the Brook cluster the "
        "brook_cluster fixture gives this test (replaces the brook_* ini options)")


@pytest.fixture(scope="session")
def _brook_cluster_pool(tmp_path_factory: pytest.TempPathFactory) -> Iterator[_ClusterPool]:
    pool = _ClusterPool(tmp_path_factory)
    try:
        yield pool
    finally:
        leftovers = pool.stop_all()
        assert not leftovers, f"Brook processes still running after stop: {leftovers}"


@pytest.fixture
def brook_cluster(request: pytest.FixtureRequest, _brook_cluster_pool: _ClusterPool) -> LocalCluster:
    """A running, healthy Brook cluster (shared by the session's tests with the same configuration)."""
    ini = {name: request.config.getini(name)
           for name in ("brook_controllers", "brook_brokers", "brook_overrides", "brook_start_timeout")}
    marker = request.node.get_closest_marker(MARKER)
    if marker is not None and marker.args:
        raise pytest.UsageError(f"@pytest.mark.{MARKER} takes keyword arguments only, got {marker.args!r}")
    return _brook_cluster_pool.get(spec_from(ini, marker.kwargs if marker else None))


@pytest.fixture
def brook_bootstrap(brook_cluster: LocalCluster) -> str:
    """The cluster's Kafka bootstrap servers: `{"bootstrap.servers": brook_bootstrap}`."""
    return brook_cluster.kafka_bootstrap


@pytest.fixture
def brook_controller_bootstrap(brook_cluster: LocalCluster) -> str:
    """The controllers' gRPC addresses (`brook --bootstrap-controller ...`, BROOK_BOOTSTRAP_CONTROLLER)."""
    return brook_cluster.controller_bootstrap
