"""The container health probe (`python -m cluster.observe.probe`): its URL and exit codes."""

from __future__ import annotations

import asyncio
import threading

import pytest

from cluster.observe.http import HttpServer, Request, Response, text
from cluster.observe.probe import main, probe_url


@pytest.mark.parametrize("check, url, env, expected", [
    ("ready", None, {"BROOK_CFG_METRICS_PORT": "9644"}, "http://127.0.0.1:9644/healthz/ready"),
    ("live", "http://n:1/", {}, "http://n:1/healthz/live"),
])
def test_probe_url(check, url, env, expected):
    assert probe_url(check, url, env) == expected


@pytest.mark.parametrize("env", [{}, {"BROOK_CFG_METRICS_PORT": "0"}, {"BROOK_CFG_METRICS_PORT": "x"}])
def test_no_metrics_port_is_a_one_line_failure(env, capsys):
    assert main(["ready"], env) == 1
    assert capsys.readouterr().err.startswith("probe: no metrics port")


@pytest.mark.timeout(30)
def test_exit_code_follows_the_status(capsys):
    ready = {"value": False}

    async def handler(request: Request) -> Response:
        return text(200, "ready\n") if ready["value"] else text(503, "not ready\nbroker: fenced\n")

    loop = asyncio.new_event_loop()
    server = HttpServer({"/healthz/ready": handler})
    loop.run_until_complete(server.start("127.0.0.1", 0))
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.port}"
        assert main(["ready", "--url", url], {}) == 1
        assert "503 not ready; broker: fenced" in capsys.readouterr().err
        ready["value"] = True
        assert main(["ready", "--url", url], {}) == 0
        assert main(["--url", "http://127.0.0.1:1"], {}) == 1  # nothing listens: refused, one line
    finally:
        asyncio.run_coroutine_threadsafe(server.close(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()
