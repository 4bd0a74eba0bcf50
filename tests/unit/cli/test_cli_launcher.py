"""The launcher's layout: properties files, ports, secret reuse and topology checks (no processes).

Goal: `brook dev` writes valid Kafka-style configs and a restart on the same data dir reuses ports
and the secret. Method: `LocalCluster.prepare()` in a temp dir, then `load_config` on every file.
"""

from __future__ import annotations

import pytest

from cluster.cli.launcher import LaunchError, LocalCluster, free_ports
from cluster.config import load_config, parse_properties


def props(cluster: LocalCluster, node_id: int) -> dict[str, str]:
    path = cluster.node(node_id).config_path
    return parse_properties(path.read_text(), str(path))


def test_three_plus_three_layout(tmp_path):
    cluster = LocalCluster(tmp_path, 3, 3)
    cluster.prepare()
    assert cluster.controller_ids == [1, 2, 3] and cluster.broker_ids == [101, 102, 103]
    p1, p101 = props(cluster, 1), props(cluster, 101)
    assert p1["process.roles"] == "controller" and p101["process.roles"] == "broker"
    assert p1["listeners"] == f"CONTROLLER://{cluster.node(1).controller_address}"
    assert p101["listeners"].startswith("PLAINTEXT://127.0.0.1:") and ",GRPC://127.0.0.1:" in p101["listeners"]
    voters = p1["controller.quorum.voters"].split(",")
    assert [v.split("@")[0] for v in voters] == ["1", "2", "3"]
    assert p101["controller.quorum.bootstrap.servers"] == cluster.controller_bootstrap
    assert len(p1["controller.quorum.secret"]) == 64 and p1["controller.quorum.secret"] == p101["controller.quorum.secret"]
    assert p101["log.dirs"].endswith("node-101/data") and p1["metadata.log.dir"].endswith("node-1/metadata")
    ports = [port for n in cluster.iter_nodes() for port in n.ports()]
    assert len(ports) == len(set(ports)) == 3 * 2 + 3 * 2
    for node in cluster.iter_nodes():
        load_config(str(node.config_path), [], {})  # every file passes the server's own validation


def test_restart_reuses_ports_and_secret_and_applies_new_overrides(tmp_path):
    first = LocalCluster(tmp_path, 3, 3)
    first.prepare()
    second = LocalCluster(tmp_path, 3, 3, overrides=["num.partitions=5"])
    second.prepare()
    for node_id in first.nodes:
        assert first.node(node_id).ports() == second.node(node_id).ports()
    assert first.secret == second.secret
    assert props(second, 102)["num.partitions"] == "5"


def test_combined_insecure_and_base_port(tmp_path):
    base = free_ports(1)[0]
    if base > 60000:
        base = 40000
    try:
        cluster = LocalCluster(tmp_path, 3, 0, combined=True, insecure=True, base_port=base)
        cluster.prepare()
    except LaunchError as e:  # a port in the range happens to be taken on this machine
        pytest.skip(str(e))
    assert cluster.controller_ids == cluster.broker_ids == [1, 2, 3]
    p = props(cluster, 2)
    assert p["process.roles"] == "broker,controller"
    assert "controller.quorum.secret" not in p and p["controller.quorum.insecure.dev"] == "true"
    assert sorted(port for n in cluster.iter_nodes() for port in n.ports()) == list(range(base, base + 12))
    for node in cluster.iter_nodes():
        load_config(str(node.config_path), [], {})


def test_other_topology_on_the_same_data_dir_is_refused(tmp_path):
    LocalCluster(tmp_path, 3, 3).prepare()
    with pytest.raises(LaunchError, match="another topology"):
        LocalCluster(tmp_path, 3, 0, combined=True).prepare()
    with pytest.raises(LaunchError, match="other --controllers"):
        LocalCluster(tmp_path, 3, 2).prepare()


@pytest.mark.parametrize("kwargs, message", [
    ({"controllers": 0}, "--controllers"),
    ({"brokers": 0}, "--brokers"),
    ({"base_port": 80}, "--base-port"),
    ({"overrides": ["novalue"]}, "expected key=value"),
])
def test_bad_arguments(tmp_path, kwargs, message):
    with pytest.raises(Exception, match=message):
        LocalCluster(tmp_path, **{"controllers": 3, "brokers": 3, **kwargs})


def test_stop_without_start_is_a_no_op(tmp_path):
    cluster = LocalCluster(tmp_path, 1, 1)
    assert cluster.stop() == {} and cluster.pids == {}
