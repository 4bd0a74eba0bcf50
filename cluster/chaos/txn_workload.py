"""The transactional chaos workload (`brook chaos run --workload txn`), on two topics of its own.

    producers  `producers` threads, each a confluent-kafka transactional Producer (its own
               transactional.id), writing transactions of 2..2*PARTITIONS values spread over every
               partition of the input topic, flushed and held open a moment before the commit (or, for
               a seeded fraction of them, the abort) is requested. After a
               failed transaction (any error after begin_transaction) the producer is dropped and a
               new one with the same transactional.id calls init_transactions, which fences the old
               one and finishes or aborts its transaction (Kafka's recovery for fatal errors).
    ctp        a consume-transform-produce loop: a read_committed consumer of the input topic (group
               `<run>-ctp`, assigned every partition, resuming from the group's committed offsets)
               and a transactional producer writing, per batch, one output record per input record
               plus the consumed positions (send_offsets_to_transaction) in one transaction. On any
               error both are recreated, so processing resumes from the committed offsets.
    reader     a read_committed consumer reading both topics from offset 0 during the run.
    drain      after everything stopped: every partition of both topics read (read_committed) until
               the end of the log (the high watermark of a read_uncommitted query), which needs every
               transaction ended (markers written or timed out).

Everything is recorded in a `TxnHistory` and checked by `txn_check.check_txns`.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition

from cluster.chaos.txn_check import DRAIN, Txn, TxnHistory, TxnOutcome, TxnRead, ctp_output

__all__ = ["TxnWorkload", "TxnWorkloadConfig"]

POLL_S = 0.2
TXN_CALL_S = 30.0            # bound of init_transactions / commit / abort / send_offsets
TRANSACTION_TIMEOUT_MS = 15_000
RECREATE_BACKOFF_S = 0.5
CTP_BATCH_MAX = 100
CTP_CATCH_UP_S_MAX = 40.0
CTP_IDLE_S = 3.0
DRAIN_S_MAX = 90.0           # > transaction.timeout.ms + the coordinator's abort check interval
CLIENT_LOG_LEVEL = 2
HOLD_S_MAX = 0.2             # a transaction stays open (records written) up to this long before it ends


class TxnWorkloadConfig:
    def __init__(self, bootstrap: str, run_id: str, partitions: int, seed: int, txns_per_s: float = 8.0,
                 producers: int = 2, abort_ratio: float = 0.3) -> None:
        if txns_per_s <= 0 or producers < 1 or not 0 <= abort_ratio <= 1:
            raise ValueError("txns_per_s must be positive, producers >= 1, abort_ratio in [0, 1]")
        self.bootstrap = bootstrap
        self.run_id = run_id
        self.input_topic = f"{run_id}-txin"
        self.output_topic = f"{run_id}-txout"
        self.partitions = partitions
        self.seed = seed
        self.txns_per_s = txns_per_s
        self.producers = producers
        self.abort_ratio = abort_ratio
        self.client_errors: dict[str, int] = {}


def _common(bootstrap: str) -> dict[str, object]:
    return {"bootstrap.servers": bootstrap, "reconnect.backoff.ms": 100, "reconnect.backoff.max.ms": 1000,
            "topic.metadata.refresh.interval.ms": 2000, "log_level": CLIENT_LOG_LEVEL}


def txn_producer_config(bootstrap: str, transactional_id: str) -> dict[str, object]:
    return {**_common(bootstrap), "transactional.id": transactional_id, "acks": "all",
            "enable.idempotence": True, "linger.ms": 5, "transaction.timeout.ms": TRANSACTION_TIMEOUT_MS,
            "message.timeout.ms": TRANSACTION_TIMEOUT_MS, "request.timeout.ms": 5000, "retry.backoff.ms": 100}


def committed_consumer_config(bootstrap: str, group: str) -> dict[str, object]:
    return {**_common(bootstrap), "group.id": group, "isolation.level": "read_committed",
            "enable.auto.commit": False, "auto.offset.reset": "earliest", "enable.partition.eof": True}


class TxnWorkload:
    """`start`, then `stop` (producers, then the CTP after it caught up, then the reader), then `drain`."""

    def __init__(self, config: TxnWorkloadConfig, history: TxnHistory, clock: Callable[[], float],
                 log: Callable[[str], None] = lambda line: None) -> None:
        self.config = config
        self.history = history
        self.clock = clock
        self.log = log
        self.ctp_last_commit_s = -1.0
        history.input_topic, history.output_topic = config.input_topic, config.output_topic
        history.partitions = tuple(range(config.partitions))
        self.ctp_group = f"{config.run_id}-ctp"
        self._producers_stop = threading.Event()
        self._ctp_stop = threading.Event()
        self._reader_stop = threading.Event()
        self._threads: dict[str, threading.Thread] = {}
        self._lock = threading.Lock()
        self._ctp_last_input_s = 0.0

    def _count_error(self, err: KafkaError) -> None:
        name = "txn:" + ("fatal:" if err.fatal() else "") + err.name()
        with self._lock:
            self.config.client_errors[name] = self.config.client_errors.get(name, 0) + 1

    def _spawn(self, name: str, target: Callable[..., None], *args: object) -> None:
        thread = threading.Thread(target=target, args=args, name=name, daemon=True)
        thread.start()
        self._threads[name] = thread

    def start(self) -> None:
        for p in range(self.config.producers):
            self._spawn(f"txn-producer-{p}", self._produce_loop, p)
        self._spawn("txn-ctp", self._ctp_loop)
        self._spawn("txn-reader", self._read_loop)

    # -- producers ---------------------------------------------------------------------------------

    def _new_producer(self, transactional_id: str, stop: threading.Event) -> Producer | None:
        """A producer whose init_transactions succeeded (retried until `stop`), else None."""
        while not stop.is_set():
            producer = Producer({**txn_producer_config(self.config.bootstrap, transactional_id),
                                 "error_cb": self._count_error})
            try:
                producer.init_transactions(TXN_CALL_S)
                return producer
            except KafkaException as e:
                self._count_error(e.args[0])
                stop.wait(RECREATE_BACKOFF_S)
        return None

    def _produce_loop(self, index: int) -> None:
        rng = random.Random(f"{self.config.seed}-{index}")
        per_producer_s = self.config.producers / self.config.txns_per_s
        transactional_id = f"{self.config.run_id}-tx{index}"
        seq = 0
        while not self._producers_stop.is_set():
            producer = self._new_producer(transactional_id, self._producers_stop)
            if producer is None:
                return
            while not self._producers_stop.is_set():
                txn_id = f"{self.config.run_id}-x{index}-{seq}"
                seq += 1
                count = rng.randint(2, 2 * self.config.partitions)
                values = tuple(f"{txn_id}-{i}" for i in range(count))
                if not self._one_txn(producer, txn_id, values, abort=rng.random() < self.config.abort_ratio,
                                     hold_s=rng.uniform(0, HOLD_S_MAX)):
                    break  # recreate the producer
                self._producers_stop.wait(per_producer_s)
            producer.purge(in_queue=True, in_flight=False, blocking=False)
            self._producers_stop.wait(RECREATE_BACKOFF_S)

    def _one_txn(self, producer: Producer, txn_id: str, values: tuple[str, ...], abort: bool,
                 hold_s: float = 0.0) -> bool:
        """One transaction; False when the producer must be recreated. Its records are flushed (in
        the log, the transaction open) and held for `hold_s` before the commit or abort is
        requested, so aborted records are really in the log and a reader that does not respect the
        last stable offset reads records before their commit was requested."""
        commit_s = -1.0
        where = tuple(i % self.config.partitions for i in range(len(values)))
        try:
            producer.begin_transaction()
            for i, value in enumerate(values):
                producer.produce(self.config.input_topic, value=value.encode(), key=value.encode(),
                                 partition=where[i])
            if producer.flush(TXN_CALL_S):
                raise KafkaException(KafkaError(KafkaError._TIMED_OUT, "flush did not finish"))
            self._producers_stop.wait(hold_s)
            if abort or self._producers_stop.is_set():
                producer.abort_transaction(TXN_CALL_S)
                self.history.txn(Txn(txn_id, self.config.input_topic, values, TxnOutcome.aborted, partitions=where))
                return True
            commit_s = self.clock()
            producer.commit_transaction(TXN_CALL_S)
            self.history.txn(Txn(txn_id, self.config.input_topic, values, TxnOutcome.committed, commit_s,
                                 partitions=where))
            return True
        except (KafkaException, BufferError) as e:
            if isinstance(e, KafkaException):
                self._count_error(e.args[0])
            outcome = TxnOutcome.aborted if commit_s < 0 else TxnOutcome.unknown
            self.history.txn(Txn(txn_id, self.config.input_topic, values, outcome, commit_s, partitions=where))
            return False

    # -- consume-transform-produce -----------------------------------------------------------------

    def _ctp_loop(self) -> None:
        seq = 0
        while not self._ctp_stop.is_set():
            producer = self._new_producer(f"{self.config.run_id}-ctp", self._ctp_stop)
            if producer is None:
                return
            # After init_transactions: the previous attempt is committed or aborted, so the group's
            # committed offsets (read with require_stable) are the ones its outcome left.
            consumer = Consumer({**committed_consumer_config(self.config.bootstrap, self.ctp_group),
                                 "enable.partition.eof": False, "error_cb": self._count_error})
            try:
                consumer.assign([TopicPartition(self.config.input_topic, p) for p in range(self.config.partitions)])
                while not self._ctp_stop.is_set():
                    messages = [m for m in consumer.consume(CTP_BATCH_MAX, POLL_S) if m.error() is None]
                    if not messages:
                        continue
                    self._ctp_last_input_s = time.monotonic()
                    attempt = f"{self.config.run_id}-c{seq}"
                    seq += 1
                    if not self._ctp_txn(producer, consumer, attempt, messages):
                        break
            finally:
                consumer.close()
                producer.purge(in_queue=True, in_flight=False, blocking=False)
            self._ctp_stop.wait(RECREATE_BACKOFF_S)

    def _ctp_txn(self, producer: Producer, consumer: Consumer, attempt: str, messages: list) -> bool:  # noqa: ANN001
        outputs = tuple(ctp_output(m.value().decode(), attempt) for m in messages)
        where = tuple(m.partition() for m in messages)
        commit_s = -1.0
        try:
            producer.begin_transaction()
            for m, out in zip(messages, outputs, strict=True):
                producer.produce(self.config.output_topic, value=out.encode(), partition=m.partition())
            positions = consumer.position(consumer.assignment())
            producer.send_offsets_to_transaction(positions, consumer.consumer_group_metadata(), TXN_CALL_S)
            commit_s = self.clock()
            producer.commit_transaction(TXN_CALL_S)
            self.history.txn(Txn(attempt, self.config.output_topic, outputs, TxnOutcome.committed, commit_s, True,
                                 where))
            self.ctp_last_commit_s = self.clock()
            return True
        except (KafkaException, BufferError) as e:
            if isinstance(e, KafkaException):
                self._count_error(e.args[0])
            self.log(f"[chaos {self.clock():7.2f}s] consume-transform-produce {attempt} failed "
                     f"({'after' if commit_s >= 0 else 'before'} its commit was requested): {e}; starting again")
            outcome = TxnOutcome.aborted if commit_s < 0 else TxnOutcome.unknown
            self.history.txn(Txn(attempt, self.config.output_topic, outputs, outcome, commit_s, True, where))
            return False

    # -- the live reader ---------------------------------------------------------------------------

    def _read_loop(self) -> None:
        consumer = Consumer({**committed_consumer_config(self.config.bootstrap, f"{self.config.run_id}-txreader"),
                             "enable.partition.eof": False, "error_cb": self._count_error})
        try:
            consumer.assign([TopicPartition(t, p, 0) for t in (self.config.input_topic, self.config.output_topic)
                             for p in range(self.config.partitions)])
            while not self._reader_stop.is_set():
                msg = consumer.poll(POLL_S)
                if msg is None or msg.error() is not None:
                    continue
                read = _txn_read("txn-reader", msg, self.clock())
                if read is not None:
                    self.history.read(read)
        finally:
            consumer.close()

    # -- stopping and the drain --------------------------------------------------------------------

    def stop(self) -> None:
        """Stop the producers (an open transaction is aborted), let the CTP catch up (idle for
        CTP_IDLE_S, CTP_CATCH_UP_S_MAX at most), stop it and the reader."""
        self._producers_stop.set()
        self._join("txn-producer", TXN_CALL_S * 2 + 5)
        deadline_s = time.monotonic() + CTP_CATCH_UP_S_MAX
        while time.monotonic() < deadline_s and time.monotonic() - self._ctp_last_input_s < CTP_IDLE_S:
            time.sleep(POLL_S)
        self._ctp_stop.set()
        self._join("txn-ctp", TXN_CALL_S * 2 + 5)
        self._reader_stop.set()
        self._join("txn-reader", 15.0)

    def _join(self, prefix: str, timeout_s: float) -> None:
        for name, thread in self._threads.items():
            if name.startswith(prefix):
                thread.join(timeout_s)

    def drain(self, timeout_s: float = DRAIN_S_MAX) -> list[tuple[str, int]]:
        """The final read_committed drain of both topics, then the CTP group's committed offsets.
        Returns the (topic, partition)s whose drain did not reach the end."""
        topics = (self.config.input_topic, self.config.output_topic)
        tps = [(t, p) for t in topics for p in range(self.config.partitions)]
        deadline_s = time.monotonic() + timeout_s
        ends = self._log_ends(tps, deadline_s)
        consumer = Consumer({**committed_consumer_config(self.config.bootstrap, f"{self.config.run_id}-txdrain"),
                             "error_cb": self._count_error})
        try:
            consumer.assign([TopicPartition(t, p, 0) for t, p in tps])
            done = {tp for tp in tps if ends.get(tp) == 0}
            while time.monotonic() < deadline_s and len(done) < len(tps):
                msg = consumer.poll(POLL_S)
                if msg is None:
                    continue
                tp = (msg.topic(), msg.partition())
                error = msg.error()
                offset = msg.offset()
                if error is not None:
                    if (error.code() == KafkaError._PARTITION_EOF and tp in ends and offset is not None
                            and offset >= ends[tp]):
                        done.add(tp)
                    continue
                read = _txn_read(DRAIN, msg, self.clock())
                if read is None or offset is None:
                    continue
                self.history.read(read)
                if tp in ends and offset + 1 >= ends[tp]:
                    done.add(tp)
            for tp in done:
                self.history.finished_drain(*tp)
        finally:
            consumer.close()
        self.history.committed_offsets = self._committed_offsets()
        return [tp for tp in tps if tp not in self.history.drained]

    def _log_ends(self, tps: list[tuple[str, int]], deadline_s: float) -> dict[tuple[str, int], int]:
        """Each partition's high watermark (a read_uncommitted query: the end including open
        transactions, so the drain waits for them to end)."""
        consumer = Consumer({**_common(self.config.bootstrap), "group.id": f"{self.config.run_id}-txends",
                             "isolation.level": "read_uncommitted"})
        ends: dict[tuple[str, int], int] = {}
        try:
            for t, p in tps:
                while (t, p) not in ends and time.monotonic() < deadline_s:
                    try:
                        ends[(t, p)] = consumer.get_watermark_offsets(TopicPartition(t, p), timeout=5.0)[1]
                    except KafkaException:
                        time.sleep(0.5)
        finally:
            consumer.close()
        return ends

    def _committed_offsets(self) -> dict[int, int]:
        consumer = Consumer({**committed_consumer_config(self.config.bootstrap, self.ctp_group)})
        try:
            found = consumer.committed([TopicPartition(self.config.input_topic, p)
                                        for p in range(self.config.partitions)], timeout=15.0)
            return {tp.partition: tp.offset for tp in found if tp.offset >= 0}
        except KafkaException:
            return {}
        finally:
            consumer.close()


class TxnRun:
    """The transactional workload inside one `brook chaos run` (runner.py): its topics, start/stop,
    the drain, and its anomalies and totals added to the run's report."""

    def __init__(self, bootstrap: str, run_id: str, seed: int, partitions: int, clock: Callable[[], float],
                 log: Callable[[str], None], create_topic: Callable[[str], None],
                 wait_ready: Callable[[str], bool], client_errors: dict[str, int]) -> None:
        self.config = TxnWorkloadConfig(bootstrap, run_id, partitions, seed)
        self.config.client_errors = client_errors  # the run's (reported with the default workload's)
        self.history = TxnHistory()
        self.clock = clock
        self.log = log
        self.problems: list[str] = []
        self.undrained: list[tuple[str, int]] = []
        for topic in (self.config.input_topic, self.config.output_topic):
            create_topic(topic)
            if not wait_ready(topic):
                self.problems.append(f"topic {topic} was not fully replicated before the run")
        self.workload = TxnWorkload(self.config, self.history, clock, log)

    def start(self) -> None:
        self.workload.start()
        self.log(f"[chaos {self.clock():7.2f}s] transactional workload running on {self.config.input_topic} "
                 f"-> {self.config.output_topic}")

    def stop(self) -> None:
        self.workload.stop()

    def drain(self, healed: bool) -> None:
        self.log(f"[chaos {self.clock():7.2f}s] draining {self.config.input_topic} and {self.config.output_topic} "
                 f"(read_committed)")
        self.undrained = self.workload.drain(DRAIN_S_MAX if healed else 15.0)

    def add_to(self, report) -> None:  # noqa: ANN001 (cluster.chaos.report.Report)
        from cluster.chaos.txn_check import TXN_KINDS, check_txns

        result = check_txns(self.history)
        report.result.anomalies += result.anomalies
        report.result.info.update({f"txn_{k}" if not k.startswith("txn") else k: v for k, v in result.info.items()})
        report.extra_kinds = TXN_KINDS
        report.problems += self.problems
        if self.undrained:
            report.problems.append("the transactional drain did not finish for "
                                   + ", ".join(f"{t}/{p}" for t, p in self.undrained))
        reads = self.history.reads
        report.totals.update({
            "txn_reads_live": sum(1 for r in reads if r.reader != DRAIN),
            "txn_reads_drain": sum(1 for r in reads if r.reader == DRAIN),
            "txn_ctp_committed_offsets": sum(self.history.committed_offsets.values()),
            "txn_ctp_last_commit_s": round(self.workload.ctp_last_commit_s, 2),
        })


def _txn_read(reader: str, msg: Message, at: float) -> TxnRead | None:
    """A consumed record as the checker's read (None for a message without a position or value)."""
    topic, partition, offset, value = msg.topic(), msg.partition(), msg.offset(), msg.value()
    if topic is None or partition is None or offset is None or value is None:
        return None
    return TxnRead(reader, topic, partition, offset, value.decode(), at)
