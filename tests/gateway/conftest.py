"""Fixtures of the gateway's tests besides the session's own (tests/conftest.py)."""

from tests.support.browser import browser  # noqa: F401 - the headless Chromium of the docs pages' tests
