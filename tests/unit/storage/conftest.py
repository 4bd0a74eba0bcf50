"""Fixtures shared by the storage unit tests: both log implementations behind one factory."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from storage.log import LogConfig
from storage.memory_log import MemoryLog
from storage.rocksdb_log import LogManager

TOPIC_ID = bytes(range(16))


@pytest.fixture
def log_dir(tmp_path) -> str:
    return str(tmp_path / "logs")


@pytest.fixture(params=["memory", "rocksdb"])
def make_log(request, log_dir) -> Iterator[Callable[..., object]]:
    """make_log(config) -> a fresh PartitionLog of the parametrised kind."""
    managers: list[LogManager] = []

    def factory(config: LogConfig | None = None):
        config = config or LogConfig()
        if request.param == "memory":
            return MemoryLog(config)
        manager = LogManager(log_dir)
        managers.append(manager)
        return manager.get_or_create(TOPIC_ID, "topic", 0, config)

    yield factory
    for manager in managers:
        manager.close()
