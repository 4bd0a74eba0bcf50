"""`brook server`: run one node — controller, broker, or both — in one asyncio process.

    brook server --config server.properties [--override key=value ...]
    brook server --check-config server.properties

The process stops cleanly on SIGTERM or SIGINT: a broker first runs a controlled shutdown (its
leaderships move away before it exits), then every server closes.
"""

from __future__ import annotations

import argparse
import asyncio
import faulthandler
import gc
import importlib.util
import logging
import os
import signal
import sys
import threading
from typing import Any

import grpc
from grpc_health.v1 import health_pb2_grpc

from cluster.config import Config, load_config
from cluster.errors import BrookError
from cluster.grpcutil import (
    GrpcTls,
    acl_authorizer,
    add_port,
    configure_authorizer,
    configure_tls,
    server_interceptors,
    server_options,
)
from cluster.observe.node import NodeObserver

log = logging.getLogger("brook.server")

# Bound of a clean stop after the controlled shutdown (see OPERATIONS.md).
GRPC_STOP_GRACE_S = 1.0
# A stop still running this long after the controlled shutdown logs where it is: every thread's stack
# and every pending asyncio task's (a stop normally takes well under a second).
STOP_REPORT_S = 5.0


# Young-generation threshold (CPython's default is 700 allocations): a server allocates per request, and
# at 700 the collector runs thousands of times a second, each pass promoting survivors towards the old
# generation whose full collections stalled the event loop 25-60 ms (docs/PERFORMANCE.md).
GC_GEN0_THRESHOLD = 20_000


def _settle_gc() -> None:
    """Move everything built at start-up (modules, schemas, protobuf descriptors, the metadata image)
    out of the collector's sight, and collect the young generation less often. Reference cycles made
    later are still found; only the long-lived start-up heap is no longer rescanned on every full pass."""
    gc.collect()
    gc.freeze()
    _, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(GC_GEN0_THRESHOLD, gen1, gen2)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="brook server", description="Run a Brook controller and/or broker.")
    parser.add_argument("--config", help="a .properties file with Kafka property names")
    parser.add_argument("--override", action="append", default=[], metavar="KEY=VALUE",
                        help="override one property (repeatable; wins over the file and BROOK_CFG_* variables)")
    parser.add_argument("--check-config", metavar="FILE", help="validate FILE and exit (0 valid, 1 invalid)")
    return parser


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    path = args.check_config or args.config
    try:
        config = load_config(path, args.override, os.environ)
    except BrookError as e:
        print(f"brook server: error: {e.message}", file=sys.stderr)
        return 1
    except OSError as e:
        print(f"brook server: error: cannot read config {path}: {e.strerror}", file=sys.stderr)
        return 1
    for warning in config.warnings:  # every Kafka key that does not apply, all at once
        print(f"brook server: warning: {warning}", file=sys.stderr)
    inter_broker = config.getstr("inter.broker.listener.name")
    if config.is_broker and inter_broker != "GRPC":
        print(f"brook server: warning: inter.broker.listener.name={inter_broker}: Brook brokers replicate over the "
              f"GRPC listener; {inter_broker} serves clients like any other Kafka listener", file=sys.stderr)
    if args.check_config:
        roles = ",".join(sorted(config.process_roles))
        print(f"{path}: valid ({roles}, node.id={config.node_id})")
        return 0
    os.umask(0o077)  # data, journals, snapshots and any file a node writes: this user only
    logging.basicConfig(
        level=os.environ.get("BROOK_LOG_LEVEL", "INFO").upper(),
        format=f"%(asctime)s node-{config.node_id} %(levelname)s %(name)s: %(message)s",
    )
    try:
        return asyncio.run(_serve(config))
    except BrookError as e:
        log.error("%s", e.message)
        print(f"brook server: error: {e.message}", file=sys.stderr)
        return 1


async def _start_grpc(address: str, servicers: list[tuple[Any, Any]]) -> grpc.aio.Server:
    server = grpc.aio.server(options=server_options(), interceptors=server_interceptors())
    for add, servicer in servicers:
        add(servicer, server)
    if add_port(server, address) == 0:
        raise BrookError(f"cannot listen on {address} (in use?)")
    await server.start()
    return server


def _configure_grpc_tls(config: Config) -> None:
    """grpc.ssl.enabled: this node's certificate for its gRPC ports and calls (mutual TLS)."""
    if not config["grpc.ssl.enabled"]:
        return
    keystore = config["ssl.keystore.location"]
    tls = GrpcTls.from_files(config["ssl.truststore.location"], config["ssl.keystore.certificate.location"] or keystore,
                             keystore, config.super_users)
    if config.is_broker and tls.common_name() != f"broker-{config.node_id}":
        raise BrookError(f"grpc.ssl.enabled: this broker's certificate has CN={tls.common_name()!r}, but a broker's "
                         f"certificate must be CN=broker-{config.node_id} (its node.id)")
    configure_tls(tls)


async def _serve(config: Config) -> int:
    _configure_grpc_tls(config)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    servers: list[grpc.aio.Server] = []
    closers: list[Any] = []
    broker = None
    node = NodeObserver(config.node_id, sorted(config.process_roles))
    try:
        await node.start(config.getstr("metrics.host"), config.getint("metrics.port"))
        closers.append(node.close)
        if config.is_controller:
            servers.append(await _start_controller(config, loop, closers, node))
        if config.is_broker:
            broker, broker_servers = await _start_broker(config, closers, node)
            servers += broker_servers
        log.info("node %d is up (%s)", config.node_id, ",".join(sorted(config.process_roles)))
        _settle_gc()
        await stop.wait()
        log.info("stopping")
        if broker is not None and config["controlled.shutdown.enable"]:
            await broker.controlled_shutdown(config.getint("controlled.shutdown.timeout.ms") / 1000.0)
        _report_slow_stop(loop, STOP_REPORT_S)
    finally:
        for server in servers:
            await server.stop(GRPC_STOP_GRACE_S)
        for close in reversed(closers):
            try:
                result = close()
                if asyncio.iscoroutine(result):
                    await result
            except Exception:
                log.exception("error while stopping")
    return 0


def _report_slow_stop(loop: asyncio.AbstractEventLoop, after_s: float) -> None:
    """If the process is still alive `after_s` from now, log every thread's stack (faulthandler, which
    needs neither the event loop nor the GIL) and, when the loop still runs, every pending task's."""
    faulthandler.dump_traceback_later(after_s, exit=False)

    def tasks() -> None:
        pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
        log.error("still stopping %.0fs after the controlled shutdown; %d tasks pending:", after_s, len(pending))
        for task in pending:  # (Task.print_stack fails on a frame without a line number)
            frames = [f"{f.f_code.co_filename}:{f.f_lineno} in {f.f_code.co_name}" for f in task.get_stack(limit=12)]
            log.error("%r\n  %s", task, "\n  ".join(frames))

    def later() -> None:
        try:
            loop.call_soon_threadsafe(tasks)
        except RuntimeError:  # the loop has closed: the threads' stacks say the rest
            pass

    timer = threading.Timer(after_s, later)
    timer.daemon = True
    timer.start()


def _own_directory(path: str) -> None:
    """Create a data directory 0700, or refuse one that another user owns (its files could be swapped)."""
    os.makedirs(path, mode=0o700, exist_ok=True)
    owner = os.stat(path).st_uid
    if owner != os.getuid():
        raise BrookError(f"log directory {path} is owned by uid {owner}, not by this user ({os.getuid()})")


async def _start_controller(config: Config, loop: asyncio.AbstractEventLoop, closers: list[Any],
                            node: NodeObserver) -> grpc.aio.Server:
    from brookpb import admin_pb2_grpc, controller_pb2_grpc
    from controller.admin import AdminServicer
    from controller.metrics import ControllerObserver
    from controller.quorum import Quorum, QuorumError, QuorumSettings
    from controller.service import ControllerRuntime, ControllerServicer

    secret = config.quorum_secret
    if secret is None:
        log.warning("controller.quorum.insecure.dev=true: the Raft port accepts unauthenticated pickle frames; "
                    "never use this outside a private test machine")
    settings = QuorumSettings(
        node_id=config.node_id,
        voters=[(v.node_id, v.hostport) for v in config.controller_voters],
        secret=secret,
        data_dir=os.path.join(config.metadata_log_dir, "raft"),
        election_timeout_ms=config.getint("controller.quorum.election.timeout.ms"),
        connection_retry_ms=config.getint("controller.quorum.connection.retry.ms"),
        leader_fallback_ms=config.getint("controller.quorum.leader.fallback.ms"),
    )
    try:
        quorum = Quorum(settings, loop)
    except QuorumError as e:
        raise BrookError(str(e)) from None
    closers.append(quorum.close)
    endpoint = config.listener("CONTROLLER")
    advertised = config.advertised_listener("CONTROLLER")
    assert endpoint is not None and advertised is not None, "a controller has a CONTROLLER listener (load_config)"
    runtime = ControllerRuntime(config, quorum, advertised.hostport)
    closers.append(runtime.stop)
    runtime.start()
    if config["authorizer.class.name"]:
        # AdminService calls of principals other than nodes and super users: the ACLs of this controller's
        # image decide (cluster/security/grpc_identity.py maps each call to its Kafka operation).
        configure_authorizer(acl_authorizer(lambda: runtime.image.acls.values(), config.super_users,
                                            bool(config["allow.everyone.if.no.acl.found"])))
    observer = ControllerObserver(runtime)
    node.add(observer)
    return await _start_grpc(endpoint.hostport, [
        (controller_pb2_grpc.add_ControllerServiceServicer_to_server, ControllerServicer(runtime)),
        (admin_pb2_grpc.add_AdminServiceServicer_to_server, AdminServicer(runtime)),
        (health_pb2_grpc.add_HealthServicer_to_server, node.grpc_health_servicer(observer)),
    ])


async def _start_broker(config: Config, closers: list[Any], node: NodeObserver) -> tuple[Any, list[grpc.aio.Server]]:
    from broker.core import Broker
    from broker.grpc_service import BrokerServicer
    from broker.metrics import BrokerObserver
    from brookpb import broker_pb2_grpc
    from storage.rocksdb_log import LogManager

    log_dir = config.log_dirs[0]
    _own_directory(log_dir)
    logs = LogManager(log_dir)  # raises a clear error when another process holds the directory
    broker = Broker(config, logs)
    closers.append(broker.stop)
    observer = BrokerObserver(broker)
    node.add(observer)
    grpc_endpoint = config.listener("GRPC")
    assert grpc_endpoint is not None, "a broker has a GRPC listener (load_config)"
    grpc_server = await _start_grpc(grpc_endpoint.hostport, [
        (broker_pb2_grpc.add_BrokerServiceServicer_to_server, BrokerServicer(broker)),
        (health_pb2_grpc.add_HealthServicer_to_server, node.grpc_health_servicer(observer)),
    ])
    kafka = await _start_kafka(config, broker, observer)
    if kafka is not None:
        closers.append(kafka)
    await broker.start()
    return broker, [grpc_server]


async def _start_kafka(config: Config, broker: Any, observer: Any = None) -> Any:
    """The Kafka wire-protocol listeners (and the group coordinator), when this build has them."""
    if not config.kafka_listeners() or importlib.util.find_spec("broker.kafka.server") is None:
        return None
    from broker.kafka.listeners import authorizer_from_config, kafka_listeners
    from broker.kafka.server import fetch_session_cache, start_kafka_listener

    listeners = kafka_listeners(config)  # TLS files are read before anything starts
    authorizer = authorizer_from_config(config, broker.image)

    group_handlers = group_versions = None
    coordinator = None
    txn_coordinator = marker_client = None
    if importlib.util.find_spec("broker.groups.coordinator") is not None:
        from broker.groups.coordinator import GroupCoordinator
        from broker.kafka.group_handlers import GroupHandlers

        coordinator = GroupCoordinator(broker)
        await coordinator.start()
        adapter = GroupHandlers(coordinator)
        group_handlers, group_versions = adapter.handlers(), adapter.versions()
        if importlib.util.find_spec("broker.txn.coordinator") is not None:
            from broker.kafka.txn_handlers import TxnHandlers
            from broker.txn.coordinator import TransactionCoordinator
            from broker.txn.markers import MarkerClient

            marker_client = MarkerClient(broker)
            txn_coordinator = TransactionCoordinator(broker, marker_client.send)
            await txn_coordinator.start()
            coordinator.find_txn_coordinator = txn_coordinator.find_coordinator
            txn_adapter = TxnHandlers(txn_coordinator, coordinator, broker)
            group_handlers.update(txn_adapter.handlers())
            group_versions.update(txn_adapter.versions())
    servers = []
    fetch_sessions = fetch_session_cache(broker)  # one per broker, as Kafka's: every listener shares it
    for _name, host, port, security in listeners:
        servers.append(await start_kafka_listener(broker, host, port, group_handlers=group_handlers,
                                                  group_versions=group_versions, security=security,
                                                  authorizer=authorizer, fetch_sessions=fetch_sessions))
    if observer is not None:
        from broker.metrics import instrument_kafka_handlers

        for server in servers:
            instrument_kafka_handlers(server.handlers)
        observer.coordinator = coordinator

    async def close() -> None:
        for server in servers:
            await server.close()
        if txn_coordinator is not None:
            await txn_coordinator.stop()
        if marker_client is not None:
            await marker_client.close()
        if coordinator is not None:
            await coordinator.stop()
    return close
