"""The broker's connection to the controller quorum: find the active controller and follow it."""

from __future__ import annotations

import logging
from typing import Any

import grpc

from brookpb import admin_pb2_grpc, controller_pb2_grpc
from cluster.errors import ErrorCode
from cluster.grpcutil import aio_channel

log = logging.getLogger("brook.broker.controller")


class ControllerUnavailable(Exception):
    pass


class ControllerChannel:
    """Calls go to the active controller; NOT_CONTROLLER replies move us to the hinted one."""

    def __init__(self, bootstrap: list[str]) -> None:
        self.bootstrap = list(bootstrap)
        self.current = self.bootstrap[0]
        self._channels: dict[str, grpc.aio.Channel] = {}
        self.active_controller_id = -1

    def _channel(self, address: str) -> grpc.aio.Channel:
        channel = self._channels.get(address)
        if channel is None:
            channel = aio_channel(address)
            self._channels[address] = channel
        return channel

    def controller_stub(self, address: str) -> controller_pb2_grpc.ControllerServiceStub:
        return controller_pb2_grpc.ControllerServiceStub(self._channel(address))

    def admin_stub(self, address: str) -> admin_pb2_grpc.AdminServiceStub:
        return admin_pb2_grpc.AdminServiceStub(self._channel(address))

    async def call(self, service: str, method: str, request: Any, timeout_s: float) -> Any:
        """Call the active controller, following hints and trying each bootstrap address once."""
        tried: list[str] = []
        candidates = [self.current] + [a for a in self.bootstrap if a != self.current]
        last_error = "no controller answered"
        while candidates:
            address = candidates.pop(0)
            if address in tried:
                continue
            tried.append(address)
            stub = self.controller_stub(address) if service == "controller" else self.admin_stub(address)
            try:
                reply = await getattr(stub, method)(request, timeout=timeout_s)
            except grpc.aio.AioRpcError as e:
                last_error = f"{address}: {e.code().name}"
                continue
            code, hint = _error_and_hint(reply)
            if code == ErrorCode.not_controller:
                last_error = f"{address}: not the active controller"
                if hint and hint not in tried:
                    candidates.insert(0, hint)
                continue
            self.current = address
            return reply
        raise ControllerUnavailable(f"no active controller reachable ({last_error})")

    async def close(self) -> None:
        for channel in self._channels.values():
            await channel.close(grace=None)
        self._channels.clear()


def _error_and_hint(reply: Any) -> tuple[int, str]:
    if hasattr(reply, "error_code"):
        return reply.error_code, getattr(reply, "leader_hint", "")
    error = getattr(reply, "error", None)
    if error is not None:
        return error.code, error.leader_hint
    return 0, ""
