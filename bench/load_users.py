"""Locust users for ``python -m bench load`` (run by it in a ``locust`` process, not on its own).

``PortalUser`` is a visitor of the portal's API in the mix the issue gives: catalog search
70 %, public lookup 15 %, sign-in 5 % (password, the one-time code from the local SMS
stand-in, confirmation; timed as one ``FLOW sign-in``), filing 10 %. ``HealthUser`` asks only
``/health``: the gateway answering without a service behind it, the run's baseline.
The accounts, filing and lookup code come from the JSON file named by ``BENCH_LOAD_DATA``.
"""

from __future__ import annotations

import itertools
import json
import os
import random
import re
import time
import uuid

from locust import HttpUser, between, events, task

DATA = json.loads(open(os.environ["BENCH_LOAD_DATA"], encoding="utf-8").read())  # noqa: SIM115 - read once
QUERIES = ("khai sinh", "đăng ký", "giấy phép", "hộ tịch", "đất đai", "kết hôn", "thường trú", "xây dựng")
_accounts = itertools.cycle(DATA["accounts"])


class PortalUser(HttpUser):
    wait_time = between(0.05, 0.25)

    def on_start(self) -> None:
        self.account = next(_accounts)

    @task(70)
    def search(self) -> None:
        self.client.get(f"/api/v1/procedures?q={random.choice(QUERIES)}&page_size=20", name="search")

    @task(15)
    def lookup(self) -> None:
        self.client.get(f"/api/v1/lookup/{DATA['lookup_code']}", name="lookup")

    @task(10)
    def filing(self) -> None:
        headers = {"Authorization": f"Bearer {self.account['access_token']}",
                   "Idempotency-Key": f"load-{uuid.uuid4().hex}"}
        with self.client.post("/api/v1/dossiers", json=DATA["filing"], headers=headers, name="filing",
                              catch_response=True) as resp:
            if resp.status_code != 201:
                resp.failure(f"{resp.status_code}: {resp.text[:120]}")

    @task(5)
    def sign_in(self) -> None:
        started = time.perf_counter()
        error = None
        try:
            account = self.account
            step = self.client.post("/api/v1/auth/login", json={"method": "password", "cccd": account["cccd"],
                                                                  "password": account["password"]},
                                    name="sign-in step: password")
            step.raise_for_status()
            outbox = self.client.get(f"/api/v1/dev/sms-outbox?phone={account['phone']}",
                                     name="sign-in step: read the code (local SMS stand-in)")
            outbox.raise_for_status()
            code = next(m.group(1) for item in outbox.json()["items"]
                        if (m := re.search(r"\b(\d{6})\b", item["body"])))
            done = self.client.post("/api/v1/auth/login/confirm", json={"login_id": step.json()["login_id"],
                                                                        "otp": code},
                                    name="sign-in step: confirm")
            done.raise_for_status()
        except Exception as exc:  # the flow failed: counted as one failed sign-in
            error = exc
        events.request.fire(request_type="FLOW", name="sign-in", response_time=(time.perf_counter() - started) * 1000,
                            response_length=0, exception=error, context={})


class HealthUser(HttpUser):
    wait_time = between(0.05, 0.25)

    @task
    def health(self) -> None:
        self.client.get("/health", name="health")
