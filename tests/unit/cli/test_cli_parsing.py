"""The CLI's argument parsing and usage errors, without a network.

Goal: every command of the tree parses, global options work before and after the subcommand, and a
usage mistake is one stderr line with exit code 2. Method: call `build_parser()` / `main()` in-process.
"""

from __future__ import annotations

import pytest

from cluster.cli.main import EXIT_USAGE, Context, UsageError, build_parser, main


def parse(*argv: str):
    return build_parser().parse_args(list(argv))


@pytest.mark.parametrize("argv, handler", [
    (["cluster", "describe"], "cluster_describe"),
    (["cluster", "health", "--exit-when-healthy", "--timeout", "30"], "cluster_health"),
    (["quorum", "status"], "quorum_status"),
    (["quorum", "replication"], "quorum_replication"),
    (["brokers", "list"], "brokers_list"),
    (["topics", "create", "demo", "--partitions", "3", "--replication-factor", "3", "--config", "a=b"],
     "topics_create"),
    (["topics", "list"], "topics_list"),
    (["topics", "describe"], "topics_describe"),
    (["topics", "describe", "demo", "--under-min-isr-partitions"], "topics_describe"),
    (["topics", "delete", "demo"], "topics_delete"),
    (["topics", "alter", "demo", "--config", "retention.ms=1", "--delete-config", "cleanup.policy"], "topics_alter"),
    (["configs", "describe", "--topic", "demo"], "configs_describe"),
    (["configs", "describe", "--broker", "101"], "configs_describe"),
    (["configs", "alter", "--cluster", "--set", "unclean.leader.election.enable=true"], "configs_alter"),
    (["leaders", "elect", "--type", "preferred", "--all"], "leaders_elect"),
    (["leaders", "elect", "--type", "unclean", "--topic", "t", "--partition", "0"], "leaders_elect"),
    (["produce", "demo", "--key-separator", ":", "--acks", "1"], "produce"),
    (["consume", "demo", "--from-beginning", "--max-messages", "3", "--print-key"], "consume"),
    (["dev", "--controllers", "3", "--brokers", "3", "--combined"], "dev"),
])
def test_every_command_parses_to_its_handler(argv, handler):
    args = parse(*argv)
    assert args.handler.__name__ == handler


def test_global_options_before_and_after_the_subcommand():
    before = parse("--output", "json", "--bootstrap-controller", "h:1", "--timeout", "3", "topics", "list")
    after = parse("topics", "list", "-o", "json", "--bootstrap-controller", "h:1", "--timeout", "3")
    for args in (before, after):
        ctx = Context(args)
        assert ctx.output == "json" and ctx.timeout_s == 3.0 and ctx.bootstrap() == ["h:1"]


def test_defaults_and_env_bootstrap(monkeypatch):
    monkeypatch.setenv("BROOK_BOOTSTRAP_CONTROLLER", "127.0.0.1:9093, 127.0.0.1:9094")
    ctx = Context(parse("cluster", "describe"))
    assert ctx.output == "table" and ctx.timeout_s == 10.0
    assert ctx.bootstrap() == ["127.0.0.1:9093", "127.0.0.1:9094"]


def test_missing_bootstrap_is_a_usage_error(monkeypatch, capsys):
    monkeypatch.delenv("BROOK_BOOTSTRAP_CONTROLLER", raising=False)
    with pytest.raises(UsageError):
        Context(parse("cluster", "describe")).bootstrap()
    assert main(["cluster", "describe"]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("brook: error: no controller address")


def test_health_has_its_own_timeout_and_keeps_the_global_one():
    args = parse("--timeout", "4", "cluster", "health", "--timeout", "30")
    assert args.wait_timeout_s == 30.0 and Context(args).timeout_s == 4.0


@pytest.mark.parametrize("argv, fragment", [
    ([], "required"),
    (["topics"], "required"),
    (["topics", "create"], "required"),
    (["topics", "create", "t", "--partitions", "0"], "positive integer"),
    (["topics", "create", "t", "--partitions", "x"], "positive integer"),
    (["topics", "create", "t", "--config", "novalue"], "key=value"),
    (["configs", "describe"], "one of the arguments"),
    (["configs", "describe", "--topic", "t", "--broker", "1"], "not allowed with"),
    (["leaders", "elect", "--all"], "--type"),
    (["leaders", "elect", "--type", "sideways", "--all"], "invalid choice"),
    (["produce", "t", "--acks", "2"], "invalid choice"),
    (["consume", "t", "--from-beginning", "--offset", "3"], "not allowed with"),
    (["cluster", "describe", "--output", "yaml"], "invalid choice"),
    (["nosuchcommand"], "invalid choice"),
])
def test_usage_errors_are_one_line_and_exit_2(argv, fragment, capsys):
    assert main(argv) == EXIT_USAGE
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert err.startswith("brook: error: ") and fragment in err
    assert "Traceback" not in err


def test_bad_bootstrap_address_is_one_line(capsys):
    assert main(["--bootstrap-controller", "nohostport", "cluster", "describe"]) == 1
    err = capsys.readouterr().err
    assert err == "brook: error: bad address 'nohostport': expected host:port\n"


def test_non_positive_timeout_is_a_usage_error(capsys):
    assert main(["--timeout", "0", "--bootstrap-controller", "h:1", "topics", "list"]) == EXIT_USAGE
    assert "--timeout must be positive" in capsys.readouterr().err


def test_help_exits_0(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for command in ("cluster", "quorum", "brokers", "topics", "configs", "leaders", "produce", "consume", "dev",
                    "server"):
        assert command in out
