"""Every service process keeps its start-up heap out of Python's full collections (portal_common.heap)."""

from __future__ import annotations

import subprocess
import sys

from gateway.service import GatewayService
from portal_common.health import HealthRpc
from portal_common.heap import StartupHeapFrozen
from services.catalog.service import CatalogService
from services.dossier.service import DossierService
from services.identity.service import IdentityService
from services.payment.service import PaymentService
from services.router.service import RouterService

PROBE = """
import gc
from portal_common.heap import freeze_startup_heap
first = freeze_startup_heap()
later = [[i] for i in range(5000)]  # allocated after start: must stay collectable
second = freeze_startup_heap()
print(first, second, gc.get_freeze_count(), len(gc.get_objects(2)))
"""


def test_the_first_call_freezes_the_heap_and_a_later_one_freezes_nothing_more():
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, check=True).stdout
    first, second, count, in_gen2 = (int(x) for x in out.split())
    assert first > 1000  # the imports of nameko and the rest
    assert second == first == count  # the 5,000 later lists were not frozen
    assert in_gen2 < first  # a full collection no longer walks the frozen objects


def test_every_service_and_the_gateway_freeze_their_start_up_heap():
    assert isinstance(HealthRpc.startup_heap, StartupHeapFrozen)
    for service in (CatalogService, DossierService, IdentityService, PaymentService, RouterService):
        assert issubclass(service, HealthRpc), service.name
    assert isinstance(GatewayService.startup_heap, StartupHeapFrozen)
