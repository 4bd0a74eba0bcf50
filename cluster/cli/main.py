# PYTHON_ARGCOMPLETE_OK
"""`brook`: the admin CLI, the console producer/consumer, `brook server` and `brook dev`.

Exit codes (docs/CLI.md): 0 success (or healthy), 1 an error (or unhealthy), 2 a usage error,
130 interrupted by Ctrl-C. Every expected failure is one line on stderr, `brook: error: ...`;
a traceback means a bug in Brook. Shell completion: argcomplete (`eval "$(register-python-argcomplete
brook)"`, docs/CLI.md); the marker on the first line lets argcomplete's global completion find it.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

ENV_BOOTSTRAP = "BROOK_BOOTSTRAP_CONTROLLER"
ENV_COMMAND_CONFIG = "BROOK_COMMAND_CONFIG"
DEFAULT_TIMEOUT_S = 10.0  # above the controllers' 5 s admin-write deadline, so their error reaches us

# Subcommands implemented elsewhere and handed the rest of argv (imported only when used).
EXTERNAL_COMMANDS = {
    "server": ("cluster.cli.server", "run one Brook node (controller, broker, or both)"),
    "chaos": ("cluster.chaos", "run the chaos tester against a local or compose cluster"),
}


class UsageError(Exception):
    """Bad command-line input found after parsing (exit code 2)."""


class BrookArgumentParser(argparse.ArgumentParser):
    """argparse that reports a usage error on one line and exits 2 (no usage block)."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"brook: error: {message} (see '{self.prog} --help')\n")


def _common_options(timeout: bool = True) -> argparse.ArgumentParser:
    """Global options, accepted before or after the subcommand (defaults applied in `Context`).

    `brook cluster health` has its own --timeout (how long to wait), so it takes them without it.
    """
    common = BrookArgumentParser(add_help=False)
    common.add_argument("--bootstrap-controller", metavar="HOST:PORT,...", default=argparse.SUPPRESS,
                        help=f"controller gRPC addresses (default: ${ENV_BOOTSTRAP})")
    common.add_argument("--output", "-o", choices=("table", "json"), default=argparse.SUPPRESS,
                        help="output format (default: table)")
    common.add_argument("--tls-ca", metavar="FILE", default=argparse.SUPPRESS,
                        help="with grpc.ssl.enabled clusters: the CA (PEM); also $BROOK_TLS_CA")
    common.add_argument("--tls-cert", metavar="FILE", default=argparse.SUPPRESS,
                        help="your certificate (PEM; its principal must be in super.users); also $BROOK_TLS_CERT")
    common.add_argument("--tls-key", metavar="FILE", default=argparse.SUPPRESS,
                        help="your private key (PEM); also $BROOK_TLS_KEY")
    if timeout:
        common.add_argument("--timeout", type=float, metavar="SECONDS", default=argparse.SUPPRESS,
                            help=f"deadline of each request (default: {DEFAULT_TIMEOUT_S:g})")
    return common


def add_command_config(p: argparse.ArgumentParser) -> None:
    p.add_argument("--command-config", metavar="FILE", default=None,
                   help="Kafka client properties for the Kafka protocol (security.protocol, sasl.mechanism, "
                        f"sasl.jaas.config, ssl.truststore.location, ...), as Kafka's tools; also ${ENV_COMMAND_CONFIG}")


def _kv(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"expected key=value, got {text!r}")
    return key.strip(), value.strip()


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}")
    return value


def build_parser() -> BrookArgumentParser:
    from cluster.cli import admin, data, dev, groups, perf, security

    common = _common_options()
    parser = BrookArgumentParser(
        prog="brook", parents=[common],
        description="Administer a Brook cluster, produce and consume, run a node or a local cluster.",
        epilog="Exit codes: 0 ok/healthy, 1 error/unhealthy, 2 usage error, 130 interrupted. See docs/CLI.md.")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=BrookArgumentParser)
    commands.required = True

    common_without_timeout = _common_options(timeout=False)

    def sub(group: Any, name: str, help: str, handler: Callable[..., int] | None,
            parents: list[argparse.ArgumentParser] | None = None) -> BrookArgumentParser:
        p = group.add_parser(name, help=help, description=help, parents=[common] if parents is None else parents)
        if handler is not None:
            p.set_defaults(handler=handler)
        return p

    def group_of(name: str, help: str) -> Any:
        p = commands.add_parser(name, help=help, description=help)
        g = p.add_subparsers(dest="action", metavar="ACTION", parser_class=BrookArgumentParser)
        g.required = True
        return g

    # cluster
    g = group_of("cluster", "cluster id, active controller, brokers, health")
    sub(g, "describe", "cluster id, active controller, brokers with state and epoch", admin.cluster_describe)
    p = sub(g, "health", "exit 0 if healthy: quorum leader, all brokers unfenced, all partitions fully replicated",
            admin.cluster_health, parents=[common_without_timeout])
    p.add_argument("--watch", action="store_true", help="print the health every --interval seconds until Ctrl-C")
    p.add_argument("--exit-when-healthy", action="store_true", help="wait until healthy (exit 0) or --timeout (exit 1)")
    p.add_argument("--timeout", type=float, dest="wait_timeout_s", metavar="SECONDS", default=None,
                   help="with --watch/--exit-when-healthy: give up after this long (exit 1); "
                        "also caps each request's deadline")
    p.add_argument("--interval", type=float, default=2.0, metavar="SECONDS", help="poll interval (default 2)")

    # quorum
    g = group_of("quorum", "the controller Raft quorum (like kafka-metadata-quorum describe)")
    sub(g, "status", "leader, term, commit index, voters", admin.quorum_status)
    sub(g, "replication", "each voter's match index, lag and connection", admin.quorum_replication)

    # brokers
    g = group_of("brokers", "registered brokers")
    sub(g, "list", "brokers with address, state and epoch", admin.brokers_list)
    from cluster.cli import reassign
    reassign.add_parsers(sub, group_of, _positive_int, _non_negative_int, g)

    # topics
    g = group_of("topics", "create, list, describe, alter and delete topics")

    def kafka_protocol(p: argparse.ArgumentParser) -> None:
        p.add_argument("--bootstrap-server", dest="kafka_bootstrap_server", metavar="HOST:PORT,...", default=None,
                       help="speak the Kafka protocol to these brokers instead of gRPC to the controllers")
        add_command_config(p)

    p = sub(g, "create", "create a topic", admin.topics_create)
    kafka_protocol(p)
    p.add_argument("name")
    p.add_argument("--partitions", type=_positive_int, default=-1, help="default: the cluster's num.partitions")
    p.add_argument("--replication-factor", type=_positive_int, default=-1,
                   help="default: the cluster's default.replication.factor")
    p.add_argument("--config", type=_kv, action="append", default=[], metavar="KEY=VALUE", help="repeatable")
    p.add_argument("--if-not-exists", action="store_true", help="succeed if the topic already exists")
    p.add_argument("--validate-only", action="store_true", help="check the request, create nothing")
    kafka_protocol(sub(g, "list", "topic names with partition count and replication factor", admin.topics_list))
    p = sub(g, "describe", "partitions with leader, leader epoch, replicas, ISR (like kafka-topics.sh)",
            admin.topics_describe)
    kafka_protocol(p)
    p.add_argument("name", nargs="*", help="topics to describe (default: all)")
    p.add_argument("--under-replicated-partitions", action="store_true", help="only partitions with ISR < replicas")
    p.add_argument("--under-min-isr-partitions", action="store_true", help="only partitions with ISR < min ISR")
    p.add_argument("--unavailable-partitions", action="store_true", help="only partitions without a live leader")
    p.add_argument("--include-internal", action="store_true", help="also internal topics (__consumer_offsets...)")
    p = sub(g, "delete", "delete topics", admin.topics_delete)
    kafka_protocol(p)
    p.add_argument("name", nargs="+")
    p.add_argument("--if-exists", action="store_true", help="succeed if a topic does not exist")
    p = sub(g, "alter", "add partitions, set or delete topic configs", admin.topics_alter)
    kafka_protocol(p)
    p.add_argument("name")
    p.add_argument("--partitions", type=_positive_int, default=None, metavar="N",
                   help="grow the topic to N partitions (as kafka-topics.sh --alter --partitions)")
    p.add_argument("--config", type=_kv, action="append", default=[], metavar="KEY=VALUE", help="set (repeatable)")
    p.add_argument("--delete-config", action="append", default=[], metavar="KEY", help="delete (repeatable)")

    # configs
    g = group_of("configs", "describe and alter topic and broker configs")
    for action, handler, help in (("describe", admin.configs_describe, "show every config of a resource"),
                                  ("alter", admin.configs_alter, "set or delete dynamic configs")):
        p = sub(g, action, help, handler)
        kafka_protocol(p)
        target = p.add_mutually_exclusive_group(required=True)
        target.add_argument("--topic", metavar="NAME")
        target.add_argument("--broker", metavar="ID", type=_non_negative_int)
        target.add_argument("--cluster", action="store_true", help="the cluster-wide broker defaults")
        if action == "alter":
            p.add_argument("--set", type=_kv, action="append", default=[], metavar="KEY=VALUE", help="repeatable")
            p.add_argument("--delete", action="append", default=[], metavar="KEY", help="repeatable")
            p.add_argument("--validate-only", action="store_true")

    # leaders
    g = group_of("leaders", "leader elections")
    p = sub(g, "elect", "run a preferred or unclean leader election", admin.leaders_elect)
    p.add_argument("--type", required=True, choices=("preferred", "unclean"), dest="election_type")
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--topic", metavar="NAME")
    which.add_argument("--all", action="store_true", help="every partition of every topic")
    p.add_argument("--partition", type=_non_negative_int, help="with --topic: one partition (default: all)")

    # produce / consume
    data.add_parsers(commands, common, _positive_int, _non_negative_int)

    # groups / perf
    groups.add_parsers(commands, common, _positive_int, _non_negative_int)
    perf.add_parsers(commands, common, _positive_int, _non_negative_int)

    # log-dirs / records delete (Kafka protocol)
    from cluster.cli import kafka_ops
    kafka_ops.add_parsers(commands, common, _non_negative_int)

    # users / acls
    security.add_parsers(commands, common)

    # dev
    dev.add_parser(commands, _positive_int)

    for name, (_, help) in EXTERNAL_COMMANDS.items():
        commands.add_parser(name, help=help, add_help=False)
    return parser


class Context:
    """What a command handler needs: options, output and a lazily created ControllerClient."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.output: str = getattr(args, "output", "table")
        self.timeout_s: float = getattr(args, "timeout", DEFAULT_TIMEOUT_S)
        if self.timeout_s <= 0:
            raise UsageError(f"--timeout must be positive, got {self.timeout_s:g}")
        self._controller: Any = None
        self._kafka_security: dict[str, str] | None = None

    @property
    def json(self) -> bool:
        return self.output == "json"

    def bootstrap(self) -> list[str]:
        from cluster.client import parse_addresses

        text = getattr(self.args, "bootstrap_controller", None) or os.environ.get(ENV_BOOTSTRAP, "")
        if not text.strip():
            raise UsageError(f"no controller address: pass --bootstrap-controller HOST:PORT,... or set {ENV_BOOTSTRAP}"
                             " (`brook dev` prints it)")
        return parse_addresses(text)

    def configure_tls(self) -> None:
        """Mutual TLS to the cluster's gRPC ports when --tls-* (or $BROOK_TLS_*) are given."""
        from cluster.grpcutil import GrpcTls, configure_tls

        files = [getattr(self.args, f"tls_{k}", None) or os.environ.get(f"BROOK_TLS_{k.upper()}", "")
                 for k in ("ca", "cert", "key")]
        if not any(files):
            return
        if not all(files):
            raise UsageError("mutual TLS needs all of --tls-ca, --tls-cert and --tls-key (or $BROOK_TLS_*)")
        configure_tls(GrpcTls.from_files(files[0], files[1], files[2]))

    def kafka_security(self) -> dict[str, str]:
        """The librdkafka security settings from --command-config (or $BROOK_COMMAND_CONFIG); {} without."""
        if self._kafka_security is None:
            from cluster.cli.kafka_client import load_command_config

            path = getattr(self.args, "command_config", None) or os.environ.get(ENV_COMMAND_CONFIG, "")
            conf: dict[str, str] = {}
            if path:
                conf, warnings = load_command_config(path)
                for warning in warnings:
                    print(f"brook: warning: {warning}", file=sys.stderr)
            self._kafka_security = conf
        return self._kafka_security

    def controller(self) -> Any:
        if self._controller is None and getattr(self.args, "kafka_bootstrap_server", None):
            from cluster.cli.kafka_admin import KafkaAdmin

            self._controller = KafkaAdmin(self.args.kafka_bootstrap_server, self.timeout_s, self.kafka_security())
        if self._controller is None:
            from cluster.client import ControllerClient

            self.configure_tls()

            self._controller = ControllerClient(self.bootstrap(), timeout_s=self.timeout_s)
        return self._controller

    def emit(self, value: Any, text: str | Callable[[], str]) -> None:
        """Print `value` as JSON with --output json, else the table text."""
        from cluster.cli._output import render_json

        if self.json:
            print(render_json(value))
            return
        rendered = text() if callable(text) else text
        if rendered:
            print(rendered)

    def close(self) -> None:
        if self._controller is not None:
            self._controller.close()


def _error(message: str) -> None:
    first = " ".join(str(message).split("\n")[0].split()) or "unknown error"
    print(f"brook: error: {first}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    """Console entry point; returns the exit code (also used by tests without a subprocess)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in EXTERNAL_COMMANDS:
        return _external(argv[0], argv[1:])
    ctx: Context | None = None
    try:
        parser = build_parser()
        if "_ARGCOMPLETE" in os.environ:  # the shell asks for completions: answer and exit
            _complete(parser)
        args = parser.parse_args(argv)
        ctx = Context(args)
        return int(args.handler(ctx))
    except SystemExit as e:  # argparse: --help (0) or a usage error (2, already printed)
        return e.code if isinstance(e.code, int) else EXIT_USAGE
    except KeyboardInterrupt:
        print("brook: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except UsageError as e:
        _error(str(e))
        return EXIT_USAGE
    except BrokenPipeError:
        # `brook consume ... | head`: the reader went away; exit quietly, as cat does.
        _silence_stdout()
        return EXIT_ERROR
    except Exception as e:  # expected failures only; anything else is re-raised below
        message = _expected_error_message(e)
        if message is None:
            raise
        _error(message)
        details = getattr(e, "details", "")
        if details:
            print(details, file=sys.stderr)
        return EXIT_ERROR
    finally:
        if ctx is not None:
            ctx.close()


def _complete(parser: argparse.ArgumentParser) -> None:
    try:
        import argcomplete
    except ImportError:
        return
    argcomplete.autocomplete(parser)


def _expected_error_message(e: Exception) -> str | None:
    import grpc

    from cluster.client import describe_rpc_error
    from cluster.errors import BrookError

    if isinstance(e, BrookError):
        return e.message
    if isinstance(e, grpc.RpcError):
        return f"request failed ({describe_rpc_error(e)})"
    if type(e).__name__ == "KafkaException":  # confluent-kafka (the CLI's Kafka-protocol verbs)
        from cluster.cli.groups import _kafka_error

        return _kafka_error(e, "Kafka request failed").message
    if isinstance(e, OSError):
        where = f" {e.filename}" if e.filename else ""
        return f"{e.strerror or e}{':' + where if where else ''}".rstrip(":")
    return None


def _silence_stdout() -> None:
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except OSError:
        pass


def _external(name: str, rest: list[str]) -> int:
    import importlib

    module_name = EXTERNAL_COMMANDS[name][0]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as e:
        if e.name != module_name:
            raise
        _error(f"'brook {name}' is not available in this build ({module_name} is missing)")
        return EXIT_ERROR
    try:
        return int(module.main(rest) or 0)
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED


def entry() -> None:
    sys.exit(main())


if __name__ == "__main__":
    entry()
