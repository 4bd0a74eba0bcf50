"""The chaos workload: idempotent producers and a consumer group, recording every event in a History.

    writers   `writers` threads, each its own confluent-kafka Producer with acks=all and
              enable.idempotence=True, sending unique values `<run>-w<writer>-<seq>` keyed by the
              value (so they spread over partitions), plus `weak_writers` acks=1 producers (no
              idempotence; values `<run>-a<writer>-<seq>`) whose losses are allowed but whose records
              make a diverged copy visible; all paced together to `rate_per_s`, in ticks of TICK_S.
              Every delivery report is recorded: ok(partition, offset), failed (certainly never sent:
              purged from the local queue or refused by produce()) or unknown (anything else).
    readers   `readers` threads in one consumer group, recording every message with its partition,
              offset and the reader's assignment number (bumped on every assign/revoke/lost).
    watchdog  a reader that has read nothing for READER_STALL_S while writes were acknowledged (and
              it holds partitions, or the whole group reads nothing) is closed and recreated: a new
              group member, its assignment number bumped (reason "recreated"); each event is kept
              in `Workload.stalls` (the run's report lists them as liveness warnings) with the last
              librdkafka consumer-group debug lines (`debug=cgrp`) of the stalled consumer, written
              next to the run's logs when a directory is given (`WorkloadConfig.debug_dir`).
    drain     after the heal, a group-less consumer reads every partition from offset 0 to its
              high watermark.

Everything is bounded: the rate, the producer's local queue, every flush/poll/drain deadline.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition

from cluster.chaos.history import (
    DRAIN,
    Assignment,
    History,
    Outcome,
    OutcomeKind,
    Read,
    Send,
    is_group_reader,
)

__all__ = ["ReaderStall", "Workload", "WorkloadConfig", "drain", "reader_stalled"]

# Bounds (seconds unless named otherwise).
PRODUCER_QUEUE_MESSAGES_MAX = 20_000
POLL_S = 0.2
FLUSH_S = 20.0           # > message.timeout.ms, so every in-flight send gets its delivery report
MESSAGE_TIMEOUT_MS = 15_000
CATCH_UP_POLL_S = 0.5
READER_CATCH_UP_S_MAX = 20.0
DRAIN_S_MAX = 60.0
READER_STALL_S = 30.0    # a reader that read nothing this long while writes were acknowledged is recreated
WATCHDOG_S = 1.0         # how often the watchdog looks
READER_CLOSE_S = 10.0    # a stalled consumer's close() is abandoned after this long (it may hang)
CGRP_DEBUG_LINES = 300   # librdkafka consumer-group debug lines kept per reader (the last ones)
# librdkafka's own log lines are noise during chaos: only critical ones reach stderr; errors are counted.
CLIENT_LOG_LEVEL = 2
# Writers send in ticks (a burst of rate * TICK_S values) so thousands of values/s cost few wake-ups.
TICK_S = 0.01

# Delivery errors after which the write certainly did not happen: the message never left the client.
# Not _PURGE_QUEUE / _MSG_TIMED_OUT_QUEUE: a message that was sent, failed with a retriable error and
# went back to the queue for a retry is reported so too (seen after fatal idempotence errors).
_NEVER_SENT = frozenset({KafkaError.MSG_SIZE_TOO_LARGE})


@dataclass
class WorkloadConfig:
    bootstrap: str
    topic: str
    run_id: str
    rate_per_s: float = 2000.0
    writers: int = 4
    weak_writers: int = 1
    readers: int = 2
    group: str = ""
    client_errors: dict[str, int] = field(default_factory=dict)
    debug_dir: str | None = None     # where a stalled reader's cgrp debug lines are written (None: kept in memory)
    stall_s: float = READER_STALL_S


@dataclass
class ReaderStall:
    """The watchdog recreated `reader` at `time_s`: it had read nothing since `since_s` (its last
    read or start) while writes were acknowledged up to `last_ack_s`; `assigned` its partitions then."""

    reader: str
    time_s: float
    since_s: float
    last_ack_s: float
    assigned: tuple[int, ...]
    group_last_read_s: float
    debug_path: str = ""
    debug_tail: list[str] = field(default_factory=list)

    def describe(self) -> str:
        where = f"; librdkafka cgrp debug: {self.debug_path}" if self.debug_path else ""
        return (f"liveness: reader {self.reader} read nothing from {self.since_s:.2f}s to {self.time_s:.2f}s "
                f"while writes were acknowledged (last at {self.last_ack_s:.2f}s; it held partitions "
                f"{list(self.assigned)}, the group's last read was at {self.group_last_read_s:.2f}s): "
                f"recreated{where}")


def reader_stalled(now_s: float, since_s: float, last_ack_s: float, assigned: bool, group_last_read_s: float,
                   stall_s: float) -> bool:
    """The watchdog's rule. A reader is stalled when it has read nothing for `stall_s` since `since_s`
    (its last read, or its (re)start) although writes were acknowledged after that, and either it
    holds partitions (each gets writes: the keys spread over all of them) or no reader of the group
    has read anything for `stall_s` (a group that stopped assigning)."""
    if now_s - since_s < stall_s or last_ack_s <= since_s:
        return False
    return assigned or now_s - group_last_read_s >= stall_s


class _Lines(logging.Handler):
    """Keeps the last `maxlen` formatted records (a consumer's librdkafka debug log); a record that
    repeats the previous one (librdkafka retries a coordinator query many times a second) only
    counts, so the lines cover the stall's history rather than its last second."""

    def __init__(self, maxlen: int) -> None:
        super().__init__(logging.DEBUG)
        self.lines: deque[str] = deque(maxlen=maxlen)
        self._last = ""
        self._repeats = 0

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        if text == self._last and self.lines:
            self._repeats += 1
            first = self.lines[-1].split(" (repeated", 1)[0]
            self.lines[-1] = f"{first} (repeated {self._repeats}x, last {record.created:.3f})"
            return
        self._last, self._repeats = text, 0
        self.lines.append(f"{record.created:.3f} {text}")


def producer_config(bootstrap: str, acks: int = -1) -> dict[str, object]:
    """Every option the writers rely on, spelled out (no reliance on client defaults). acks=-1: the
    idempotent acks=all writer; acks=1: the weak writer (no idempotence, retries may duplicate)."""
    return {
        "bootstrap.servers": bootstrap,
        "acks": "all" if acks == -1 else str(acks),
        "enable.idempotence": acks == -1,
        "max.in.flight.requests.per.connection": 5,
        "linger.ms": 5,
        "message.timeout.ms": MESSAGE_TIMEOUT_MS,
        "request.timeout.ms": 5000,
        "retry.backoff.ms": 100,
        "reconnect.backoff.ms": 100,
        "reconnect.backoff.max.ms": 1000,
        "topic.metadata.refresh.interval.ms": 2000,
        "queue.buffering.max.messages": PRODUCER_QUEUE_MESSAGES_MAX,
        "log_level": CLIENT_LOG_LEVEL,
    }


def consumer_config(bootstrap: str, group: str, auto_commit: bool = True) -> dict[str, object]:
    return {
        "bootstrap.servers": bootstrap,
        "group.id": group,
        "auto.offset.reset": "earliest",
        "enable.auto.commit": auto_commit,
        "auto.commit.interval.ms": 1000,
        "session.timeout.ms": 6000,
        "heartbeat.interval.ms": 1000,
        "max.poll.interval.ms": 60000,
        "enable.partition.eof": False,
        "isolation.level": "read_committed",
        "reconnect.backoff.ms": 100,
        "reconnect.backoff.max.ms": 1000,
        "topic.metadata.refresh.interval.ms": 2000,
        "log_level": CLIENT_LOG_LEVEL,
    }


class Workload:
    """Writers and readers on threads; `start`, then `stop_writers`, `stop_readers`, then `drain`."""

    def __init__(self, config: WorkloadConfig, history: History, clock: Callable[[], float]) -> None:
        if config.rate_per_s <= 0 or config.writers < 1 or config.readers < 0 or config.weak_writers < 0:
            raise ValueError("rate_per_s must be positive, writers >= 1, weak_writers >= 0, readers >= 0")
        self.config = config
        self.history = history
        self.clock = clock
        self.group = config.group or f"{config.run_id}-readers"
        self._writers_stop = threading.Event()
        self._readers_stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._last_read_s = 0.0
        self._last_ack_s = 0.0
        self._lock = threading.Lock()
        # The watchdog (see the module doc): per reader its last read or (re)start time, its partitions,
        # and an event asking it to recreate its consumer.
        self._reader_since: dict[str, float] = {}
        self._reader_assigned: dict[str, tuple[int, ...]] = {}
        self._recreate: dict[str, threading.Event] = {}
        self._reader_debug: dict[str, _Lines] = {}
        self.stalls: list[ReaderStall] = []

    def _count_error(self, err: KafkaError) -> None:
        name = ("fatal:" if err.fatal() else "") + err.name()
        with self._lock:
            self.config.client_errors[name] = self.config.client_errors.get(name, 0) + 1

    def start(self) -> None:
        for writer in range(self.config.writers + self.config.weak_writers):
            self._spawn(f"chaos-writer-{writer}", self._write_loop, writer)
        for reader in range(self.config.readers):
            name = f"reader-{reader}"
            self._reader_since[name] = self.clock()
            self._reader_assigned[name] = ()
            self._recreate[name] = threading.Event()
            self._spawn(f"chaos-reader-{reader}", self._read_loop, name)
        if self.config.readers:
            self._spawn("chaos-reader-watchdog", self._watchdog, None)

    def _spawn(self, name: str, target: Callable[..., None], arg: object) -> None:
        thread = threading.Thread(target=target, args=(arg,), name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    # -- writers -----------------------------------------------------------------------------------

    def _write_loop(self, writer: int) -> None:
        per_writer_s = self.config.rate_per_s / (self.config.writers + self.config.weak_writers)
        acks = -1 if writer < self.config.writers else 1
        seq = 0
        while not self._writers_stop.is_set():
            producer = Producer({**producer_config(self.config.bootstrap, acks), "error_cb": self._count_error})
            fatal = self._write_until_fatal(producer, writer, per_writer_s, seq, acks)
            seq = fatal if fatal >= 0 else -fatal - 1
            self._finish(producer)
            if fatal < 0:  # stopped normally
                return

    def _write_until_fatal(self, producer: Producer, writer: int, rate_per_s: float, seq: int, acks: int) -> int:
        """Send until stopped (returns -(seq+1)) or until the producer hits a fatal error (returns seq)."""
        next_s = time.monotonic()
        owed = 0.0
        tag = "w" if acks == -1 else "a"
        while not self._writers_stop.is_set():
            owed = min(owed + rate_per_s * TICK_S, max(1.0, rate_per_s * TICK_S) * 2)
            while owed >= 1.0:
                owed -= 1.0
                value = f"{self.config.run_id}-{tag}{writer}-{seq}"
                seq += 1
                self.history.send(Send(value, writer, self.clock(), acks))
                try:
                    producer.produce(self.config.topic, key=value.encode(), value=value.encode(),
                                     on_delivery=self._on_delivery)
                except (BufferError, KafkaException) as e:
                    self.history.outcome(Outcome(value, OutcomeKind.failed, self.clock(), error=f"produce: {e}"))
                    if isinstance(e, KafkaException) and e.args and e.args[0].fatal():
                        return seq
            try:
                producer.poll(0)
            except KafkaException as e:  # a fatal error (e.g. OUT_OF_ORDER_SEQUENCE after a loss)
                if e.args and e.args[0].fatal():
                    return seq
            next_s += TICK_S
            delay_s = next_s - time.monotonic()
            if delay_s > 0:
                self._writers_stop.wait(delay_s)
            else:
                next_s = time.monotonic()  # behind (a stall): do not burst to catch up
        return -(seq + 1)

    def _finish(self, producer: Producer) -> None:
        """Flush (bounded), then purge what is left so every send gets a delivery report."""
        remaining = producer.flush(FLUSH_S)
        if remaining:
            producer.purge(in_queue=True, in_flight=True, blocking=False)
            producer.flush(5.0)

    def _on_delivery(self, err: KafkaError | None, msg) -> None:  # noqa: ANN001 (confluent Message)
        value = msg.value().decode()
        now = self.clock()
        if err is None:
            # The offset is unknown (-1) for a retry the leader recognised as a duplicate of a batch it
            # no longer has the position of: acknowledged all the same.
            offset = msg.offset()
            self._last_ack_s = now
            self.history.outcome(Outcome(value, OutcomeKind.ok, now, msg.partition(), -1 if offset is None else offset))
        elif err.code() in _NEVER_SENT:
            self.history.outcome(Outcome(value, OutcomeKind.failed, now, error=err.name()))
        else:
            self.history.outcome(Outcome(value, OutcomeKind.unknown, now, error=err.name()))

    def stop_writers(self) -> None:
        self._writers_stop.set()
        for thread in self._threads:
            if thread.name.startswith("chaos-writer"):
                thread.join(FLUSH_S + 10.0)

    # -- readers -----------------------------------------------------------------------------------

    def _read_loop(self, reader: str) -> None:
        state = {"assignment": 0}
        while not self._readers_stop.is_set():
            self._reader_since[reader] = self.clock()
            self._read_until_recreated(reader, state)

    def _consumer(self, reader: str) -> Consumer:
        """A group member with librdkafka's consumer-group debug log kept in memory (the last lines)."""
        lines = _Lines(CGRP_DEBUG_LINES)
        self._reader_debug[reader] = lines
        logger = logging.getLogger(f"brook.chaos.{self.config.run_id}.{reader}.{id(lines)}")
        logger.propagate = False
        logger.setLevel(logging.DEBUG)
        logger.handlers[:] = [lines]
        return Consumer({**consumer_config(self.config.bootstrap, self.group), "error_cb": self._count_error,
                         "debug": "cgrp", "log_level": 7}, logger=logger)

    def _read_until_recreated(self, reader: str, state: dict[str, int]) -> None:
        consumer = self._consumer(reader)
        recreate = self._recreate[reader]

        def changed(reason: str) -> Callable[[Consumer, list[TopicPartition]], None]:
            def callback(_: Consumer, partitions: list[TopicPartition]) -> None:
                state["assignment"] += 1
                kept = tuple(sorted(p.partition for p in partitions)) if reason == "assign" else ()
                self._reader_assigned[reader] = kept
                self.history.assign(Assignment(reader, state["assignment"], kept, self.clock(), reason))
            return callback

        consumer.subscribe([self.config.topic], on_assign=changed("assign"), on_revoke=changed("revoke"),
                           on_lost=changed("lost"))
        try:
            while not self._readers_stop.is_set() and not recreate.is_set():
                msg = consumer.poll(POLL_S)
                if msg is None:
                    continue
                error = msg.error()
                if error is not None:
                    self._count_error(error)
                    continue
                now = self.clock()
                self._last_read_s = now
                self._reader_since[reader] = now
                partition, offset, value = _fields(msg)
                self.history.read(Read(reader, state["assignment"], partition, offset, value, now))
        finally:
            if recreate.is_set():
                # A new member: its reads are a new assignment (the checker's order checks restart).
                state["assignment"] += 1
                self._reader_assigned[reader] = ()
                self.history.assign(Assignment(reader, state["assignment"], (), self.clock(), "recreated"))
                recreate.clear()
                _close_bounded(consumer, READER_CLOSE_S)
            else:
                consumer.close()

    def _watchdog(self, _: object) -> None:
        """Recreate a stalled reader (see reader_stalled), at most once per stall_s each."""
        while not self._readers_stop.wait(WATCHDOG_S):
            self._watch_once(self.clock())

    def _watch_once(self, now: float) -> None:
        for reader, since_s in list(self._reader_since.items()):
            assigned = self._reader_assigned.get(reader, ())
            if self._recreate[reader].is_set() or not reader_stalled(
                    now, since_s, self._last_ack_s, bool(assigned), self._last_read_s, self.config.stall_s):
                continue
            self.stalls.append(self._stall(reader, now, since_s, assigned))
            self._recreate[reader].set()

    def _stall(self, reader: str, now: float, since_s: float, assigned: tuple[int, ...]) -> ReaderStall:
        lines = list(self._reader_debug[reader].lines) if reader in self._reader_debug else []
        stall = ReaderStall(reader, round(now, 3), round(since_s, 3), round(self._last_ack_s, 3), assigned,
                            round(self._last_read_s, 3), debug_tail=lines[-20:])
        if self.config.debug_dir:
            path = Path(self.config.debug_dir) / f"{self.config.run_id}-{reader}-{now:.0f}s-cgrp.log"
            try:
                path.write_text("\n".join(lines) + "\n", encoding="utf-8")
                stall.debug_path = str(path)
            except OSError:
                pass
        return stall

    def stop_readers(self, catch_up_s: float = READER_CATCH_UP_S_MAX) -> None:
        """Let the readers catch up (until they have read every acknowledged value, for
        READER_CATCH_UP_S_MAX at most), then stop them."""
        deadline_s = time.monotonic() + catch_up_s
        while time.monotonic() < deadline_s and self.group_missing() > 0:
            time.sleep(CATCH_UP_POLL_S)
        self._readers_stop.set()
        for thread in self._threads:
            if thread.name.startswith("chaos-reader"):
                thread.join(15.0)

    def group_missing(self) -> int:
        """Acknowledged acks=all values the consumer group has not read (yet)."""
        with self.history._lock:
            weak = {s.value for s in self.history.sends if s.acks != -1}
            acked = {o.value for o in self.history.outcomes if o.kind is OutcomeKind.ok} - weak
            read = {r.value for r in self.history.reads if is_group_reader(r.reader)}
        return len(acked - read)

    @property
    def last_read_s(self) -> float:
        return self._last_read_s

    def reads_started(self) -> bool:
        return self._last_read_s > 0


def _close_bounded(consumer: Consumer, timeout_s: float) -> None:
    """close() a consumer on a helper thread, abandoned after `timeout_s` (a stalled member's leave may hang)."""
    closer = threading.Thread(target=consumer.close, name="chaos-reader-close", daemon=True)
    closer.start()
    closer.join(timeout_s)


def _fields(msg: Message) -> tuple[int, int, str]:
    """(partition, offset, value) of a consumed message (always set on a message without error)."""
    partition, offset, value = msg.partition(), msg.offset(), msg.value()
    assert partition is not None and offset is not None and isinstance(value, bytes), "a consumed message"
    return partition, offset, value.decode()


def drain(bootstrap: str, topic: str, partitions: Sequence[int], history: History, clock: Callable[[], float],
          run_id: str, timeout_s: float = DRAIN_S_MAX, reader: str = DRAIN) -> list[int]:
    """Read every partition from offset 0 to its high watermark; returns the partitions not finished.
    `reader`: DRAIN (the final drain) or a sweep reader ("sweep-<broker>")."""
    consumer = Consumer(consumer_config(bootstrap, f"{run_id}-{reader}", auto_commit=False))
    try:
        deadline_s = time.monotonic() + timeout_s
        highs: dict[int, int] = {}
        for p in partitions:
            while p not in highs and time.monotonic() < deadline_s:
                try:
                    _, highs[p] = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=5.0)
                except KafkaException:
                    time.sleep(0.5)
        next_offset = {p: 0 for p in highs}
        consumer.assign([TopicPartition(topic, p, 0) for p in highs])
        while time.monotonic() < deadline_s and any(next_offset[p] < highs[p] for p in highs):
            msg = consumer.poll(POLL_S)
            if msg is None or msg.error():
                continue
            partition, offset, value = _fields(msg)
            history.read(Read(reader, 0, partition, offset, value, clock()))
            next_offset[partition] = max(next_offset[partition], offset + 1)
        for p, high in highs.items():
            if next_offset[p] >= high:
                history.drained(p, high, reader)
        done = history.drained_to if reader == DRAIN else history.swept_to.get(reader, {})
        return [p for p in partitions if p not in done]
    finally:
        consumer.close()
