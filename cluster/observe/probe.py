"""A per-node health probe for container health checks: `python -m cluster.observe.probe [ready|live]`.

GETs http://127.0.0.1:<port>/healthz/<check> on the node's own metrics port (`--url` to override; the
port defaults to BROOK_CFG_METRICS_PORT, as the container's environment sets it) and exits 0 when it
answers 200, else 1 with one line on stderr. Standard library only, so a check costs a few milliseconds.
"""

from __future__ import annotations

import argparse
import os
import sys
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence

DEFAULT_TIMEOUT_S = 3.0


def probe_url(check: str, url: str | None, env: Mapping[str, str]) -> str:
    if url:
        return f"{url.rstrip('/')}/healthz/{check}"
    port = env.get("BROOK_CFG_METRICS_PORT", "").strip()
    if not port.isdigit() or int(port) == 0:
        raise ValueError("no metrics port: set BROOK_CFG_METRICS_PORT (metrics.port) or pass --url")
    return f"http://127.0.0.1:{int(port)}/healthz/{check}"


def main(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cluster.observe.probe",
                                     description="Exit 0 when the node's /healthz/<check> answers 200.")
    parser.add_argument("check", nargs="?", choices=("ready", "live"), default="ready")
    parser.add_argument("--url", help="the node's metrics URL, e.g. http://127.0.0.1:9644")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_S, help="seconds (default 3)")
    args = parser.parse_args(argv)
    try:
        url = probe_url(args.check, args.url, os.environ if env is None else env)
    except ValueError as e:
        print(f"probe: {e}", file=sys.stderr)
        return 1
    try:
        with urllib.request.urlopen(url, timeout=args.timeout) as response:
            body = response.read().decode(errors="replace")
            print(body.strip().replace("\n", "; "))
            return 0 if response.status == 200 else 1
    except urllib.error.HTTPError as e:
        print(f"probe: {url}: {e.code} {e.read().decode(errors='replace').strip()}".replace("\n", "; "),
              file=sys.stderr)
    except (urllib.error.URLError, OSError) as e:
        print(f"probe: {url}: {getattr(e, 'reason', e)}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
