"""`brook groups` and `brook perf`: argument parsing, the pure helpers and the output, without a network.

Goal: every new command parses to its handler with the documented options, usage mistakes exit 2 on
one line, and the logic that decides what is printed (Kafka bootstrap from DescribeCluster, LAG
rows, reset plans, percentiles, summaries, the batch template) is right.
"""

from __future__ import annotations

import json

import pytest

from brookpb import admin_pb2 as apb
from cluster.cli import groups, perf
from cluster.cli.main import EXIT_USAGE, build_parser, main
from cluster.errors import BrookError


def parse(*argv: str):
    return build_parser().parse_args(list(argv))


# -- parsing ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("argv, handler", [
    (["groups", "list"], "groups_list"),
    (["groups", "describe", "g1", "-o", "json"], "groups_describe"),
    (["groups", "reset-offsets", "g1", "--topic", "t", "--to-earliest"], "groups_reset_offsets"),
    (["groups", "reset-offsets", "g1", "--topic", "t:0,1", "--to-offset", "5", "--execute"], "groups_reset_offsets"),
    (["groups", "delete", "g1", "g2"], "groups_delete"),
    (["perf", "produce", "--topic", "t", "--num-records", "10", "--record-size", "100"], "perf_produce"),
    (["perf", "produce", "--topic", "t", "--num-records", "10", "--record-size", "100", "--throughput", "-1",
      "--acks", "1", "--batch-records", "5", "--senders", "2"], "perf_produce"),
    (["perf", "consume", "--topic", "t", "--messages", "10", "--decode"], "perf_consume"),
])
def test_commands_parse_to_their_handler(argv, handler):
    assert parse(*argv).handler.__name__ == handler


def test_reset_offsets_options():
    args = parse("groups", "reset-offsets", "g", "--topic", "a", "--topic", "b:1", "--to-latest",
                 "--bootstrap-controller", "h:1")
    assert args.topic == ["a", "b:1"] and args.to_latest and not args.execute
    assert args.bootstrap_controller == "h:1" and args.bootstrap_server is None


def test_perf_produce_defaults():
    args = parse("perf", "produce", "--topic", "t", "--num-records", "10", "--record-size", "100")
    assert (args.throughput, args.acks, args.batch_records, args.senders) == (-1, "all", None, 4)


@pytest.mark.parametrize("argv, fragment", [
    (["groups", "reset-offsets", "g", "--topic", "t"], "one of the arguments --to-earliest"),
    (["groups", "reset-offsets", "g", "--topic", "t", "--to-earliest", "--to-latest"], "not allowed with"),
    (["groups", "reset-offsets", "g", "--to-earliest"], "--topic"),
    (["groups", "reset-offsets", "g", "--topic", "t", "--to-offset", "-1"], "integer >= 0"),
    (["groups", "describe"], "group"),
    (["groups", "delete"], "group"),
    (["perf", "produce", "--topic", "t", "--num-records", "0", "--record-size", "1"], "positive integer"),
    (["perf", "produce", "--topic", "t", "--record-size", "1"], "--num-records"),
    (["perf", "produce", "--topic", "t", "--num-records", "1", "--record-size", "1", "--acks", "2"], "invalid choice"),
    (["perf", "consume", "--topic", "t"], "--messages"),
])
def test_usage_errors_are_one_line_exit_2(argv, fragment, capsys):
    assert main(argv) == EXIT_USAGE
    err = capsys.readouterr().err
    assert err.startswith("brook: error:") and fragment in err and err.count("\n") == 1


def test_perf_rejects_zero_throughput_without_network(capsys, monkeypatch):
    monkeypatch.setenv("BROOK_BOOTSTRAP_CONTROLLER", "127.0.0.1:1")
    assert main(["perf", "produce", "--topic", "t", "--num-records", "1", "--record-size", "1",
                 "--throughput", "0"]) == 1
    assert "--throughput must be positive or -1" in capsys.readouterr().err


def test_groups_without_controller_is_a_usage_error(capsys, monkeypatch):
    monkeypatch.delenv("BROOK_BOOTSTRAP_CONTROLLER", raising=False)
    assert main(["groups", "list"]) == EXIT_USAGE
    assert "no controller address" in capsys.readouterr().err


def test_groups_unreachable_controller_is_one_line_exit_1(capsys):
    assert main(["groups", "list", "--bootstrap-controller", "127.0.0.1:1", "--timeout", "1"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("brook: error: no controller reachable") and err.count("\n") == 1


# -- groups helpers --------------------------------------------------------------------------------

def broker(i: int, port: int, fenced: bool = False) -> apb.BrokerInfo:
    return apb.BrokerInfo(broker_id=i, host="127.0.0.1", kafka_port=port, grpc_port=port + 1, fenced=fenced)


def test_kafka_bootstrap_uses_unfenced_brokers_kafka_ports():
    reply = apb.DescribeClusterResponse(brokers=[broker(102, 9200), broker(101, 9100), broker(103, 9300, True)])
    assert groups.kafka_bootstrap(reply) == "127.0.0.1:9100,127.0.0.1:9200"
    all_fenced = apb.DescribeClusterResponse(brokers=[broker(101, 9100, True)])
    assert groups.kafka_bootstrap(all_fenced) == "127.0.0.1:9100"
    with pytest.raises(BrookError, match="no broker is registered"):
        groups.kafka_bootstrap(apb.DescribeClusterResponse())


@pytest.mark.parametrize("text, expected", [
    ("t", ("t", None)), ("t:0", ("t", [0])), ("t:2,0,2", ("t", [0, 2])),
])
def test_parse_topic_spec(text, expected):
    assert groups.parse_topic_spec(text) == expected


@pytest.mark.parametrize("text", [":0", "t:", "t:x", "t:-1"])
def test_parse_topic_spec_rejects(text):
    with pytest.raises(BrookError, match="bad --topic"):
        groups.parse_topic_spec(text)


def test_lag_rows_committed_assigned_and_unknown():
    m = groups.Member("m-1", "cli", "/10.0.0.1", None, (("t", 0), ("t", 2)))
    committed = {("t", 0): 40, ("t", 1): 10, ("u", 0): 7}
    log_end = {("t", 0): 100, ("t", 1): 10, ("t", 2): 5, ("t", 3): 9, ("u", 0): None}
    rows = groups.lag_rows("g", committed, log_end, [m])
    got = [(r["topic"], r["partition"], r["current_offset"], r["log_end_offset"], r["lag"], r["consumer_id"])
           for r in rows]
    assert got == [("t", 0, 40, 100, 60, "m-1"), ("t", 1, 10, 10, 0, None), ("t", 2, None, 5, None, "m-1"),
                   ("t", 3, None, 9, None, None), ("u", 0, 7, None, None, None)]
    view = groups.describe_view("g", "Stable", "101 (h:1)", "range", [m], rows)
    assert view["total_lag"] == 60
    text = groups.describe_text(view)
    assert "CURRENT-OFFSET  LOG-END-OFFSET  LAG" in text and "t(0,2)" in text
    line = next(x for x in text.splitlines() if x.startswith("g      t      0"))
    assert line.split()[3:6] == ["40", "100", "60"]
    json.dumps(view)  # JSON-ready


def test_lag_is_never_negative():
    rows = groups.lag_rows("g", {("t", 0): 12}, {("t", 0): 10}, [])
    assert rows[0]["lag"] == 0


def test_describe_text_of_an_empty_group():
    view = groups.describe_view("g", "Empty", None, None, [], [])
    assert "has no committed offsets" in groups.describe_text(view) and view["total_lag"] is None


def test_plan_reset_modes_and_clamping():
    ranges = {("t", 0): (0, 100), ("t", 1): (20, 30)}
    assert groups.plan_reset("earliest", None, ranges) == {("t", 0): 0, ("t", 1): 20}
    assert groups.plan_reset("latest", None, ranges) == {("t", 0): 100, ("t", 1): 30}
    assert groups.plan_reset("offset", 25, ranges) == {("t", 0): 25, ("t", 1): 25}
    assert groups.plan_reset("offset", 5, ranges) == {("t", 0): 5, ("t", 1): 20}
    assert groups.plan_reset("offset", 500, ranges) == {("t", 0): 100, ("t", 1): 30}


def test_reset_requires_an_inactive_group():
    groups.check_inactive("g", "Empty")
    groups.check_inactive("g", "Dead")
    with pytest.raises(BrookError, match="is inactive, but the current state is Stable"):
        groups.check_inactive("g", "Stable")


def test_state_names_are_kafkas():
    from confluent_kafka import ConsumerGroupState

    assert groups.state_name(ConsumerGroupState.STABLE) == "Stable"
    assert groups.state_name(ConsumerGroupState.PREPARING_REBALANCING) == "PreparingRebalance"
    assert groups.state_name(ConsumerGroupState.COMPLETING_REBALANCING) == "CompletingRebalance"
    assert groups.state_name(ConsumerGroupState.EMPTY) == "Empty"


def test_kafka_errors_become_one_line_brook_errors():
    from confluent_kafka import KafkaError, KafkaException

    e = groups._kafka_error(KafkaException(KafkaError(KafkaError.GROUP_ID_NOT_FOUND)), "cannot delete group 'g'")
    assert e.message.startswith("cannot delete group 'g':") and "\n" not in e.message
    assert e.code.name == "group_id_not_found"
    e = groups._kafka_error(KafkaException(KafkaError(KafkaError._TRANSPORT, "down\nhere")), "x")
    assert e.code.name == "network_exception" and "\n" not in e.message


# -- perf helpers ----------------------------------------------------------------------------------

def test_weighted_percentiles():
    samples = [(1.0, 98), (50.0, 1), (100.0, 1)]
    p = perf.weighted_percentiles(samples, (50.0, 98.0, 99.0, 99.9))
    assert p == {50.0: 1.0, 98.0: 1.0, 99.0: 50.0, 99.9: 100.0}
    assert perf.weighted_percentiles([], (50.0,)) == {50.0: 0.0}
    p = perf.weighted_percentiles([(float(v), 1) for v in range(1, 1001)])
    assert (p[50.0], p[95.0], p[99.0], p[99.9]) == (500.0, 950.0, 990.0, 999.0)


def test_throttle_delay():
    assert perf.throttle_delay(10, 100, -1, 0.0) == 0.0
    assert perf.throttle_delay(10, 100, 1000, 0.5) == pytest.approx(0.5)
    assert perf.throttle_delay(10, 100, 1000, 2.0) == 0.0


def test_default_batch_records():
    assert perf.default_batch_records(100) == 1000
    assert perf.default_batch_records(1024) == 256
    assert perf.default_batch_records(4096) == 64
    assert perf.default_batch_records(1) == 1000
    assert perf.default_batch_records(10 * 1024 * 1024) == 1


def test_produce_summary_and_line():
    r = perf.ProduceResult("t", 100, "all", 10, records=1000, failed=10, elapsed_s=2.0,
                           samples=[(4.0, 500), (6.0, 490), (100.0, 10)], errors={"NOT_ENOUGH_REPLICAS": 10})
    s = r.summary()
    assert s["records_per_s"] == 500.0 and s["mb_per_s"] == 0.05
    assert s["latency_p50_ms"] == 4.0 and s["latency_p99_ms"] == 6.0 and s["latency_p999_ms"] == 100.0
    assert s["latency_max_ms"] == 100.0 and s["latency_avg_ms"] == pytest.approx(5.94)
    line = perf.produce_summary_line(s)
    assert line.startswith("1000 records sent, 500.0 records/sec (0.05 MB/sec), 5.94 ms avg latency")
    assert "4.0 ms 50th, 6.0 ms 95th, 6.0 ms 99th, 100.0 ms 99.9th." in line and "10 records failed" in line
    json.dumps(s)


def test_window_and_consume_lines():
    assert perf.window_line(500, 50_000, 2.0, [(3.0, 250), (5.0, 250)]) == \
        "500 records sent, 250.0 records/sec (0.03 MB/sec), 4.0 ms avg latency, 5.0 ms max latency."
    s = perf.ConsumeResult("t", records=1000, bytes=2_000_000, elapsed_s=0.5).summary()
    assert perf.consume_summary_line(s) == \
        "1000 records consumed in 0.50 s, 2000.0 records/sec (4.00 MB/sec of record batches)."


def test_stamped_template_is_a_valid_batch_with_fresh_timestamps():
    from storage.batch import decode_batch, iter_batches

    template = perf.make_template(5, 100, 1_000)
    batch = perf.stamp(template, 1_700_000_000_123)
    [(header, _)] = list(iter_batches(batch))  # CRC checked
    _, records = decode_batch(batch)
    assert header.records_count == 5 and header.max_timestamp == 1_700_000_000_123
    assert [r.timestamp_ms for r in records] == [1_700_000_000_123] * 5
    assert all(len(r.value) == 100 and r.key is None for r in records)


def test_count_fetched_by_header_and_decoded_respects_offsets_and_hw():
    from storage.batch import Record, build_batch

    a = build_batch([Record(None, b"x" * 10, 1) for _ in range(5)], base_offset=0)
    b = build_batch([Record(b"k", b"y" * 10, 1) for _ in range(5)], base_offset=5)
    buf = a + b
    assert perf.count_fetched(buf, 0, 10, decode=False) == (10, len(buf), 10)
    assert perf.count_fetched(buf, 2, 10, decode=False)[0] == 8
    records, _, next_offset = perf.count_fetched(buf, 0, 7, decode=False)
    assert (records, next_offset) == (7, 7)
    assert perf.count_fetched(buf, 3, 10, decode=True) == (7, 2 * 10 + 5 * 11, 10)
