"""A deterministic single-threaded scheduler that runs Brook's real asyncio code on simulated time.

FoundationDB-style: production coroutines (the broker's heartbeat/metadata/ISR loops, the follower
`FetcherLoop._run`, `ReplicaManager.produce`, `LeaderSide.replica_fetch`, the controller's
`ControllerRuntime`/`ControllerServicer`) are driven by `Task.step` instead of an asyncio event loop.
Every await in them ends in one of three primitives — a sleep, a wait on `asyncio.Event`s (with a
timeout), or an RPC — which the shims below turn into `Wait` objects the scheduler understands. The
modules' `asyncio`, `time` and `uuid` globals are swapped for shims while a simulation runs
(`patched`), so the clock, timers and ids come from the seed.
"""

from __future__ import annotations

import asyncio
import heapq
import math
import random
import uuid as _uuid
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from typing import Any

import grpc

EPOCH_MS = 1_800_000_000_000  # wall clock at simulated time 0


class SimRpcError(grpc.aio.AioRpcError):
    """What a lost request or reply looks like to the caller: a gRPC deadline."""

    def __init__(self, details: str) -> None:
        super().__init__(grpc.StatusCode.DEADLINE_EXCEEDED, grpc.aio.Metadata(), grpc.aio.Metadata(), details)


class Node:
    """A process: tasks run only while it is up and not paused; a crash bumps `gen` and kills them."""

    def __init__(self, sim: Sim, name: str) -> None:
        self.sim = sim
        self.name = name
        self.gen = 0
        self.up = True
        self.paused_until = 0
        self.tasks: dict[Task, None] = {}  # insertion order: deterministic

    def spawn(self, coro: Coroutine[Any, Any, Any], name: str = "",
              on_done: Callable[[Task], None] | None = None) -> Task:
        task = Task(self, coro, name or getattr(coro, "__qualname__", "task"), on_done)
        self.tasks[task] = None
        self.sim.at(self.sim.now, task.step, task.token, None, None)
        return task

    def kill_tasks(self) -> None:
        for task in list(self.tasks):
            task.kill()
        self.tasks.clear()

    def crash(self) -> None:
        self.gen += 1
        self.up = False
        self.kill_tasks()

    def available(self) -> bool:
        return self.up and self.paused_until <= self.sim.now


class Task:
    def __init__(self, node: Node, coro: Coroutine[Any, Any, Any], name: str,
                 on_done: Callable[[Task], None] | None) -> None:
        self.node = node
        self.coro = coro
        self.name = name
        self.gen = node.gen
        self.token = 0
        self.finished = False
        self.result: Any = None
        self.error: BaseException | None = None
        self.on_done = on_done
        self.waiting: Wait | None = None
        self.cancel_requested = False

    def wake(self, token: int, value: Any = None, exc: BaseException | None = None) -> None:
        """Resume the task if it still waits on the wait identified by `token`."""
        if token != self.token or self.finished:
            return
        self.token += 1
        self.waiting = None
        self.node.sim.at(self.node.sim.now, self.step, self.token, value, exc)

    def step(self, token: int, value: Any, exc: BaseException | None) -> None:
        node, sim = self.node, self.node.sim
        if self.gen != node.gen and not self.finished:
            self.kill()
        if self.finished or token != self.token:
            return
        if node.paused_until > sim.now:
            sim.at(node.paused_until, self.step, token, value, exc)
            return
        if self.cancel_requested and exc is None:
            exc = asyncio.CancelledError()
        previous, sim.current_node = sim.current_node, node
        try:
            waited = self.coro.throw(exc) if exc is not None else self.coro.send(value)
        except StopIteration as stop:
            self._finish(stop.value, None)
            return
        except BaseException as e:  # noqa: BLE001 - a task's exception is its result
            self._finish(None, e)
            return
        finally:
            sim.current_node = previous
            sim.dirty = True
            sim.after_step(node)
        if not isinstance(waited, Wait):
            raise RuntimeError(f"task {self.name} awaited {waited!r}, which the simulator cannot schedule")
        self.token += 1
        self.waiting = waited
        waited.arm(self, self.token)

    def _finish(self, result: Any, error: BaseException | None) -> None:
        self.finished = True
        self.result, self.error = result, error
        self.node.tasks.pop(self, None)
        if error is not None and not isinstance(error, asyncio.CancelledError):
            self.node.sim.note(f"{self.node.name}: task {self.name} raised {type(error).__name__}: {error}")
            self.node.sim.task_errors.append((self.node.name, self.name, error))
        if self.on_done is not None:
            self.on_done(self)

    def done(self) -> bool:
        return self.finished

    def cancel(self) -> None:
        """asyncio's cancel(): CancelledError at the task's next await."""
        if self.finished:
            return
        self.cancel_requested = True
        if self.waiting is not None:
            self.wake(self.token, exc=asyncio.CancelledError())

    def kill(self) -> None:
        """The process died: the coroutine is dropped without running its handlers."""
        self.finished = True
        self.token += 1
        self.waiting = None
        try:
            self.coro.close()
        except BaseException:  # noqa: BLE001 - a dying process does not report
            pass

    def __await__(self) -> Iterator[Any]:
        raise RuntimeError("awaiting a simulated task is not supported")


def _ms(seconds: float) -> int:
    """Whole simulated milliseconds, rounded up: a positive wait never takes zero time."""
    return max(1, math.ceil(seconds * 1000 - 1e-6)) if seconds > 0 else 0


class Wait:
    """Something a task waits for. `arm` registers the wake-up; `__await__` makes it awaitable."""

    def arm(self, task: Task, token: int) -> None:
        raise NotImplementedError

    def __await__(self) -> Iterator[Any]:
        return (yield self)


class Sleep(Wait):
    def __init__(self, seconds: float) -> None:
        self.ms = _ms(seconds)

    def arm(self, task: Task, token: int) -> None:
        sim = task.node.sim
        sim.at(sim.now + self.ms, task.wake, token)


class WaitEvents(Wait):
    """wait_for(event.wait(), timeout) (raises TimeoutError) or _wait_any (returns)."""

    def __init__(self, events: list[asyncio.Event], timeout_s: float | None, raise_timeout: bool) -> None:
        self.events = events
        self.timeout_ms = None if timeout_s is None else _ms(timeout_s)
        self.raise_timeout = raise_timeout

    def arm(self, task: Task, token: int) -> None:
        sim = task.node.sim
        if any(e.is_set() for e in self.events):
            task.wake(token)
            return
        sim.event_waiters.append((task, token, self.events))
        if self.timeout_ms is not None:
            exc = TimeoutError() if self.raise_timeout else None
            sim.at(sim.now + self.timeout_ms, task.wake, token, None, exc)


class Rpc(Wait):
    """One unary RPC over the simulated network; `handler(request)` is a coroutine on the server."""

    def __init__(self, src: Node, dst: Node | None, method: str, request: Any, timeout_s: float,
                 handler: Callable[[Any, Any], Coroutine[Any, Any, Any]] | None) -> None:
        self.src, self.dst, self.method, self.request = src, dst, method, request
        self.timeout_ms = max(1, _ms(timeout_s))
        self.handler = handler

    def arm(self, task: Task, token: int) -> None:
        sim = task.node.sim
        sim.at(sim.now + self.timeout_ms, task.wake, token, None,
               SimRpcError(f"{self.method} to {self.dst.name if self.dst else '?'} timed out"))
        if self.dst is None or self.handler is None:
            return
        sim.net.call(self.src, self.dst, self.method, self.request, self.handler,
                     lambda reply: task.wake(token, reply), self.timeout_ms)


class Sim:
    """The event heap, the clock, the seeded random source and the event waiters."""

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self.rng = random.Random(seed)
        self.now = 0
        self._heap: list[tuple[int, int, Callable[..., None], tuple[Any, ...]]] = []
        self._seq = 0
        self.current_node: Node | None = None
        self.event_waiters: list[tuple[Task, int, list[asyncio.Event]]] = []
        self.trace: list[str] = []
        self.task_errors: list[tuple[str, str, BaseException]] = []
        self.net: Any = None
        self.steps = 0
        self.step_hooks: list[Callable[[], None]] = []
        self.verbose = False
        self.dirty = False  # a task ran since the last check: state may have changed
        # An asyncio.Event went from clear to set since the waiters were last scanned (`patched` wraps
        # Event.set). Until one does, no waiter can have become ready: a waiter whose event is set
        # already when it arms is woken at once, so the scan is skipped.
        self.event_set = False

    def at(self, when: int, fn: Callable[..., None], *args: Any) -> None:
        self._seq += 1
        heapq.heappush(self._heap, (max(when, self.now), self._seq, fn, args))

    def note(self, line: str) -> None:
        entry = f"{self.now:>6} {line}"
        self.trace.append(entry)
        if self.verbose:
            print(entry, flush=True)

    def after_step(self, node: Node) -> None:
        """Wake tasks whose events were set by the step that just ran."""
        if not self.event_set or not self.event_waiters:
            return
        self.event_set = False
        keep = []
        for task, token, events in self.event_waiters:
            if task.finished or task.token != token:
                continue
            if any(e.is_set() for e in events):
                task.wake(token)
            else:
                keep.append((task, token, events))
        self.event_waiters = keep

    def run_until(self, end_ms: int, stop: Callable[[], bool] | None = None) -> None:
        while self._heap and self._heap[0][0] <= end_ms:
            when, _, fn, args = heapq.heappop(self._heap)
            self.now = when
            fn(*args)
            self.steps += 1
            if self.dirty:
                self.dirty = False
                for hook in self.step_hooks:
                    hook()
            if stop is not None and stop():
                return
        self.now = max(self.now, end_ms)

    # -- shims ------------------------------------------------------------------------------------
    def uuid4(self) -> _uuid.UUID:
        return _uuid.UUID(int=self.rng.getrandbits(128), version=4)


class _TimeShim:
    def __init__(self, sim: Sim) -> None:
        self.sim = sim

    def monotonic(self) -> float:
        return self.sim.now / 1000.0

    def time(self) -> float:
        return (EPOCH_MS + self.sim.now) / 1000.0

    perf_counter = monotonic


class _LoopShim:
    def __init__(self, sim: Sim) -> None:
        self.sim = sim

    def create_task(self, coro: Coroutine[Any, Any, Any]) -> Task:
        node = self.sim.current_node
        if node is None:
            raise RuntimeError("create_task outside a simulated node")
        return node.spawn(coro)

    def create_future(self) -> Any:
        raise RuntimeError("futures are not simulated")


def _event_of(awaitable: Any) -> asyncio.Event:
    frame = getattr(awaitable, "cr_frame", None)
    event = frame.f_locals.get("self") if frame is not None else None
    if not isinstance(event, asyncio.Event):
        raise RuntimeError(f"the simulator only waits for asyncio.Event.wait(), not {awaitable!r}")
    awaitable.close()
    return event


class SimLock:
    """asyncio.Lock on the simulated scheduler (a contended asyncio.Lock needs a running loop)."""

    def __init__(self) -> None:
        self._locked = False
        self._released = asyncio.Event()

    def locked(self) -> bool:
        return self._locked

    async def acquire(self) -> bool:
        while self._locked:
            await WaitEvents([self._released], None, raise_timeout=False)
        self._locked = True
        return True

    def release(self) -> None:
        self._locked = False
        released, self._released = self._released, asyncio.Event()
        released.set()

    async def __aenter__(self) -> None:
        await self.acquire()

    async def __aexit__(self, *exc: Any) -> None:
        self.release()


class _AsyncioShim:
    Lock = SimLock

    def __init__(self, sim: Sim) -> None:
        self._loop = _LoopShim(sim)

    def __getattr__(self, name: str) -> Any:
        return getattr(asyncio, name)

    def sleep(self, seconds: float) -> Sleep:
        return Sleep(seconds)

    def wait_for(self, awaitable: Any, timeout: float | None) -> Any:
        if isinstance(awaitable, Wait):
            return awaitable
        return WaitEvents([_event_of(awaitable)], timeout, raise_timeout=True)

    def get_running_loop(self) -> _LoopShim:
        return self._loop

    def get_event_loop(self) -> _LoopShim:
        return self._loop


class _UuidShim:
    def __init__(self, sim: Sim) -> None:
        self.sim = sim

    def __getattr__(self, name: str) -> Any:
        return getattr(_uuid, name)

    def uuid4(self) -> _uuid.UUID:
        return self.sim.uuid4()


@contextmanager
def patched(sim: Sim, extra: dict[tuple[Any, str], Any] | None = None) -> Iterator[None]:
    """Swap the production modules' asyncio/time/uuid for the simulation's, restore on exit."""
    import broker.controller_session
    import broker.core
    import broker.fetcher
    import broker.replica_manager
    import controller.service

    time_shim, asyncio_shim, uuid_shim = _TimeShim(sim), _AsyncioShim(sim), _UuidShim(sim)

    async def wait_any(events: list[asyncio.Event], timeout_s: float) -> None:
        await WaitEvents(events, timeout_s, raise_timeout=False)

    swaps: dict[tuple[Any, str], Any] = {
        (broker.replica_manager, "time"): time_shim,
        (broker.replica_manager, "asyncio"): asyncio_shim,
        (broker.replica_manager, "_wait_any"): wait_any,
        (broker.fetcher, "asyncio"): asyncio_shim,
        (broker.core, "asyncio"): asyncio_shim,
        (broker.core, "time"): time_shim,
        (broker.controller_session, "asyncio"): asyncio_shim,
        (broker.controller_session, "uuid"): uuid_shim,
        (controller.service, "asyncio"): asyncio_shim,
        (controller.service, "time"): time_shim,
        (controller.service, "uuid"): uuid_shim,
    }
    for module in (broker.replica_manager, broker.fetcher, broker.core, broker.controller_session, controller.service):
        swaps[(module, "wait_for")] = asyncio_shim.wait_for  # cluster.aio.wait_for, imported by name
    original_set = asyncio.Event.set

    def event_set(event: asyncio.Event) -> None:
        if not event.is_set():
            sim.event_set = True
        original_set(event)

    swaps[(asyncio.Event, "set")] = event_set
    swaps.update(extra or {})
    # A module that no longer has the global (its clock was injected instead) needs no swap.
    swaps = {key: value for key, value in swaps.items() if hasattr(key[0], key[1])}
    saved = {key: getattr(key[0], key[1]) for key in swaps}
    try:
        for (module, name), value in swaps.items():
            setattr(module, name, value)
        yield
    finally:
        for (module, name), value in saved.items():
            setattr(module, name, value)
