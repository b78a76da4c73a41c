"""The gateway accepts a burst of connections: its listening socket's backlog is the
configured one (1024), not eventlet's default of 50 that resets clients under load."""

from __future__ import annotations

import shutil
import subprocess
from urllib.parse import urlparse

import pytest

from gateway.http.server import LISTEN_BACKLOG


@pytest.mark.integration
def test_gateway_listens_with_the_configured_backlog(gateway_url):
    if not shutil.which("ss"):
        pytest.skip("ss (iproute2) is not installed: cannot read a listening socket's backlog")
    port = urlparse(gateway_url).port
    out = subprocess.run(["ss", "-Hltn", f"sport = :{port}"], capture_output=True, text=True, check=True).stdout
    rows = [line.split() for line in out.splitlines() if line.strip()]
    assert rows, f"nothing listens on port {port}"
    # For a listening socket, ss shows the backlog in the Send-Q column (capped by somaxconn).
    with open("/proc/sys/net/core/somaxconn") as f:
        cap = int(f.read())
    assert int(rows[0][2]) == min(LISTEN_BACKLOG, cap) > 50
