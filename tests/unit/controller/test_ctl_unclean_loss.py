"""Issue 10 item 7: what an unclean election lost is reported, not only logged.

Goal: the loss range the controller computes when it elects ([new leader's log end, the longest log
another replica reported)) travels in the PartitionChange record, survives replay, snapshots and the
protobuf codec, and is shown by `brook topics describe` and the controller's metrics (a counter of
offsets lost, the last range per partition).
"""

from __future__ import annotations

import sys
from pathlib import Path

from ctl_helpers import make_image, tid

from brookpb import admin_pb2 as apb
from cluster import codec
from cluster.cli import _views as views
from cluster.image import image_from_records, image_to_records, replay_all
from cluster.records import PartitionChange
from controller import replication
from controller.admin import partition_info
from controller.replication import LogEnd

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "observe"))


def _elected():
    image = make_image(fenced=(1,), topics={"t": [((1, 2, 3), (1,), -1)]})
    change = replication.build_partition_change(
        tid("t"), 0, image.partition(tid("t"), 0), is_acceptable=lambda b: b in (2, 3),
        election=replication.Election.UNCLEAN, log_end_offsets={2: LogEnd(3, 50), 3: LogEnd(4, 20)})
    return image, change


def test_the_change_carries_the_known_loss():
    _, change = _elected()
    assert change is not None and change.leader == 3 and change.unclean_loss == (20, 50)
    clean = replication.build_partition_change(
        tid("t"), 0, make_image(topics={"t": [((1, 2, 3), (1, 2), 1)]}).partition(tid("t"), 0),
        is_acceptable=lambda b: b != 1, election=replication.Election.UNCLEAN,
        log_end_offsets={2: LogEnd(3, 50), 3: LogEnd(4, 20)})
    assert clean is not None and not clean.unclean and clean.unclean_loss is None  # an ISR member took over


def test_loss_survives_replay_snapshot_and_codec():
    image, change = _elected()
    after = replay_all(image, [change, PartitionChange(tid("t"), 0, isr=(3, 2))])
    p = after.partition(tid("t"), 0)
    assert (p.unclean_elections, p.unclean_lost_offsets, p.last_unclean_loss) == (1, 30, (20, 50))
    again = replay_all(after, [PartitionChange(tid("t"), 0, leader=2, isr=(2,), unclean=True)])  # loss unknown
    q = again.partition(tid("t"), 0)
    assert (q.unclean_elections, q.unclean_lost_offsets, q.last_unclean_loss) == (2, 30, (20, 50))
    records = [codec.record_from_pb(codec.record_to_pb(r)) for r in image_to_records(again)]
    rebuilt = image_from_records(records, again.offset).partition(tid("t"), 0)
    assert (rebuilt.unclean_lost_offsets, rebuilt.last_unclean_loss) == (30, (20, 50))
    assert codec.record_from_pb(codec.record_to_pb(change)) == change


def test_topics_describe_shows_the_loss():
    image, change = _elected()
    p = replay_all(image, [change]).partition(tid("t"), 0)
    info = partition_info(replay_all(image, [change]), 0, p)
    info = apb.PartitionInfo.FromString(info.SerializeToString())
    view = views.partition_view("t", info, 1)
    assert view["last_unclean_loss"] == [20, 50] and view["unclean_lost_offsets"] == 30
    assert views.partition_line(view).endswith("\tUncleanElections: 1\tUncleanLoss: [20, 50)")
    untouched = views.partition_view("t", apb.PartitionInfo(partition=1, leader=2, replicas=[2], isr=[2]), 1)
    assert "Unclean" not in views.partition_line(untouched) and untouched["last_unclean_loss"] is None


def test_metrics_count_the_lost_offsets_and_show_the_last_range():
    from test_observe_metrics import _fake_runtime, scrape

    from controller.metrics import ControllerObserver

    image, change = _elected()
    runtime = _fake_runtime(active=True)
    runtime.image = replay_all(image, [change])
    m = scrape(ControllerObserver(runtime))
    assert m["brook_controller_unclean_lost_offsets_total"] == 30
    assert m['brook_partition_unclean_loss_from{partition="0",topic="t"}'] == 20
    assert m['brook_partition_unclean_loss_to{partition="0",topic="t"}'] == 50
    assert m["kafka_controller_controllerstats_uncleanleaderelections_total"] == 1
    runtime_follower = _fake_runtime(active=False)
    runtime_follower.image = runtime.image
    follower = scrape(ControllerObserver(runtime_follower))
    assert follower["brook_controller_unclean_lost_offsets_total"] == 0
    assert not any(k.startswith("brook_partition_unclean_loss_from{") for k in follower)
