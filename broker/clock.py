"""The system clocks the broker's shells hand to its cores (the simulator hands in its own).

Two clocks because they answer different questions: `monotonic_ms` measures intervals (lag times,
deadlines) and never jumps; `wall_ms` stamps records (LogAppendTime, segment times) and is what a
user reads. Cores take them as callables and never read the system clock themselves.
"""

from __future__ import annotations

import time
from collections.abc import Callable

__all__ = ["Clock", "system_monotonic_ms", "system_wall_ms"]

Clock = Callable[[], int]


def system_monotonic_ms() -> int:
    return int(time.monotonic() * 1000)


def system_wall_ms() -> int:
    return int(time.time() * 1000)
