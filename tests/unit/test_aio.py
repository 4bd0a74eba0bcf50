"""cluster.aio.wait_for keeps a cancellation that arrives together with the result.

Python 3.11's asyncio.wait_for returns the result instead (cpython gh-86296). A broker's replica
fetcher lost its cancellation that way at shutdown, kept fetching, and its process hung until SIGKILL
(the compose-network test's `{'broker-1': -9}`). These tests build exactly that moment: the awaited
future gets its result and the task is cancelled before the task runs again.
"""

from __future__ import annotations

import ast
import asyncio
import sys
from pathlib import Path

import grpc
import pytest

from broker.fetcher import StreamingStub
from brookpb import broker_pb2 as bpb
from cluster.aio import wait_for

pytestmark = pytest.mark.timeout(30)
ROOT = Path(__file__).resolve().parents[2]
PRODUCT = ("broker", "cluster", "controller", "storage")


async def _cancel_as_the_result_arrives(wait) -> str:  # noqa: ANN001
    """'cancelled' when the task saw its cancellation, else what the wait returned."""
    answer: asyncio.Future[str] = asyncio.get_running_loop().create_future()

    async def waiter() -> str:
        try:
            return await wait(answer, 10.0)
        except asyncio.CancelledError:
            return "cancelled"

    task = asyncio.ensure_future(waiter())
    for _ in range(3):
        await asyncio.sleep(0)  # the task now waits for `answer`
    answer.set_result("result")
    task.cancel()  # same loop iteration: the task has not run since
    return await task


def test_cluster_wait_for_keeps_the_cancellation():
    assert asyncio.run(_cancel_as_the_result_arrives(wait_for)) == "cancelled"


@pytest.mark.skipif(sys.version_info >= (3, 12), reason="3.12's asyncio.wait_for no longer loses it")
def test_python_311_asyncio_wait_for_loses_it():
    """Why cluster.aio exists: if this starts failing on 3.11, the stdlib was fixed."""
    assert asyncio.run(_cancel_as_the_result_arrives(asyncio.wait_for)) == "result"


def test_wait_for_times_out_and_passes_results_and_errors_through():
    async def body() -> None:
        never: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        with pytest.raises(TimeoutError):
            await wait_for(never, 0.01)
        assert await wait_for(asyncio.sleep(0, result=7), 1.0) == 7
        assert await wait_for(asyncio.sleep(0, result=8), None) == 8
        with pytest.raises(KeyError):
            await wait_for(_raise(KeyError("x")), 1.0)
    asyncio.run(body())


async def _raise(error: Exception) -> None:
    raise error


class _Stream:
    """A ReplicaFetchStream whose next answer the test hands over."""

    def __init__(self) -> None:
        self.answer: asyncio.Future[bpb.ReplicaFetchResponse] = asyncio.get_running_loop().create_future()
        self.cancelled = False

    def done(self) -> bool:
        return self.cancelled

    async def write(self, request: bpb.ReplicaFetchRequest) -> None:
        pass

    def read(self) -> asyncio.Future[bpb.ReplicaFetchResponse]:
        return self.answer

    def cancel(self) -> None:
        self.cancelled = True


def test_a_fetch_cancelled_as_its_answer_arrives_is_cancelled():
    """The fetcher's own call: stopping a fetcher loop cancels its task; the round must end."""
    async def body() -> None:
        channel = grpc.aio.insecure_channel("127.0.0.1:1")  # never used: the stream is the test's
        stub = StreamingStub(channel)
        stream = _Stream()
        stub.stream = stream
        try:
            call = asyncio.ensure_future(stub.ReplicaFetch(bpb.ReplicaFetchRequest(session_epoch=1), timeout=10))
            for _ in range(3):
                await asyncio.sleep(0)
            stream.answer.set_result(bpb.ReplicaFetchResponse(session_id=1))
            call.cancel()
            with pytest.raises(asyncio.CancelledError):
                await call
            assert stream.cancelled and stub.stream is None, "the cancelled call dropped its stream"
        finally:
            await channel.close(grace=None)
    asyncio.run(body())


def test_no_product_module_calls_asyncio_wait_for():
    calls = []
    for package in PRODUCT:
        for path in sorted((ROOT / package).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if (isinstance(node, ast.Attribute) and node.attr == "wait_for" and isinstance(node.value, ast.Name)
                        and node.value.id == "asyncio"):
                    calls.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert calls == [], "use cluster.aio.wait_for (see its docstring)"
