"""RPC proxies with a deadline: a gateway request never waits forever on a stopped service.

nameko's ``RpcProxy`` waits for a reply however long it takes; ``ServiceRpc`` gives every call
a timeout (``RPC_TIMEOUT`` seconds, default 10) after which the caller gets ``RpcTimeout``
and the client a 503.
"""

from __future__ import annotations

from typing import Any

import eventlet
from nameko.exceptions import RpcTimeout
from nameko.rpc import RpcProxy

from portal_common import config, jsoncodec, publishing
from portal_common.entrypoints import transient_rpc


class _TimedMethod:
    def __init__(self, method: Any, timeout: float):
        self._method = method
        self._timeout = timeout

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        reply = self._method.call_async(*args, **kwargs)
        with eventlet.Timeout(self._timeout, RpcTimeout(self._timeout)):
            return reply.result()


class _TimedService:
    def __init__(self, proxy: Any, timeout: float):
        self._proxy = proxy
        self._timeout = timeout

    def __getattr__(self, name: str) -> _TimedMethod:
        return _TimedMethod(getattr(self._proxy, name), self._timeout)


class ServiceRpc(RpcProxy):
    """``RpcProxy`` whose calls time out."""

    def __init__(self, target_service: str, timeout: float | None = None, **options: Any):
        super().__init__(target_service, **transient_rpc(options))
        self.timeout = timeout or config.env_float("RPC_TIMEOUT", 10.0, "gateway")

    def setup(self) -> None:
        publishing.install()
        jsoncodec.install()
        super().setup()

    def get_dependency(self, worker_ctx) -> Any:
        return _TimedService(super().get_dependency(worker_ctx), self.timeout)
