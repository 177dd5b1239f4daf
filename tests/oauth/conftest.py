"""Fixtures for the Python OAuth interoperability tests.

The tests run against a live `bridle demo` whose address and admin key come
from the environment (scripts/interop.sh starts the server and sets them):

    BRIDLE_URL=http://127.0.0.1:PORT BRIDLE_ADMIN_KEY=bk_... pytest tests/oauth
"""

import os

import httpx
import pytest


def _required_env(name):
    value = os.environ.get(name)
    if not value:
        raise RuntimeError(f"{name} is not set: run these tests through scripts/interop.sh")
    return value


@pytest.fixture(scope="session")
def issuer():
    return _required_env("BRIDLE_URL").rstrip("/")


@pytest.fixture(scope="session")
def admin(issuer):
    """An httpx client authenticated as the demo's admin."""
    key = _required_env("BRIDLE_ADMIN_KEY")
    with httpx.Client(
        base_url=issuer, headers={"Authorization": f"Bearer {key}"}, timeout=10
    ) as client:
        yield client


@pytest.fixture(scope="session")
def metadata(issuer):
    """The RFC 8414 metadata, the way a client discovers the endpoints."""
    r = httpx.get(f"{issuer}/.well-known/oauth-authorization-server", timeout=10)
    r.raise_for_status()
    doc = r.json()
    assert doc["issuer"] == issuer
    return doc


@pytest.fixture(scope="session")
def token_endpoint(metadata):
    return metadata["token_endpoint"]
