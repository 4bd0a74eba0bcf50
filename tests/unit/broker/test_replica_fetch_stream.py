"""The follower's ReplicaFetch over one long-lived gRPC stream (broker.fetcher.StreamingStub, issue 12).

A real grpc.aio server on loopback answers each stream message with its session epoch echoed in
`session_id`; a message with max_wait_ms > 0 is answered only when the test releases it. The rules:
answers come back in order on one stream; a call cancelled mid-flight (a pre-emption) or timed out
drops its stream, so a later call can never read the answer meant for it.
"""

from __future__ import annotations

import asyncio

import grpc
import pytest

from broker.fetcher import StreamingStub
from brookpb import broker_pb2 as bpb
from brookpb import broker_pb2_grpc

pytestmark = pytest.mark.timeout(60)


class EchoServicer(broker_pb2_grpc.BrokerServiceServicer):
    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.streams = 0

    async def ReplicaFetchStream(self, request_iterator, context):
        self.streams += 1
        async for request in request_iterator:
            if request.max_wait_ms > 0:
                await self.release.wait()
            yield bpb.ReplicaFetchResponse(session_id=request.session_epoch)


async def _serve():
    servicer = EchoServicer()
    server = grpc.aio.server()
    broker_pb2_grpc.add_BrokerServiceServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    return servicer, server, channel


def test_answers_in_order_on_one_stream_and_a_cancelled_call_never_hands_its_answer_to_the_next():
    async def body() -> None:
        servicer, server, channel = await _serve()
        stub = StreamingStub(channel)
        try:
            for epoch in (1, 2, 3):
                reply = await stub.ReplicaFetch(bpb.ReplicaFetchRequest(session_epoch=epoch), timeout=10)
                assert reply.session_id == epoch
            assert servicer.streams == 1, "one stream for every round"
            parked = asyncio.ensure_future(
                stub.ReplicaFetch(bpb.ReplicaFetchRequest(session_epoch=4, max_wait_ms=1), timeout=10))
            await asyncio.sleep(0.2)  # the request reaches the server, which holds its answer
            assert not parked.done()
            parked.cancel()  # a pre-emption
            with pytest.raises(asyncio.CancelledError):
                await parked
            servicer.release.set()  # the old stream's answer to 4 would come now
            reply = await stub.ReplicaFetch(bpb.ReplicaFetchRequest(session_epoch=5), timeout=10)
            assert reply.session_id == 5
            assert servicer.streams == 2
        finally:
            stub.close()
            await channel.close(grace=None)
            await server.stop(None)
    asyncio.run(body())


def test_a_round_without_an_answer_in_time_is_deadline_exceeded_and_drops_the_stream():
    async def body() -> None:
        servicer, server, channel = await _serve()
        stub = StreamingStub(channel)
        try:
            with pytest.raises(grpc.aio.AioRpcError) as failed:
                await stub.ReplicaFetch(bpb.ReplicaFetchRequest(session_epoch=1, max_wait_ms=1), timeout=0.2)
            assert failed.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
            servicer.release.set()
            reply = await stub.ReplicaFetch(bpb.ReplicaFetchRequest(session_epoch=2), timeout=10)
            assert reply.session_id == 2 and servicer.streams == 2
        finally:
            stub.close()
            await channel.close(grace=None)
            await server.stop(None)
    asyncio.run(body())
