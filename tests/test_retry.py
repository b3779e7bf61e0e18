"""The one retry policy of network reads: transient failures are retried up to ``MAX_RETRIES``
times, anything else goes through at once."""

from __future__ import annotations

import pytest

from bigearthnet_txt.conversion import retry
from bigearthnet_txt.conversion.imagery.checksums import ChecksumError


@pytest.fixture(autouse=True)
def no_waiting(monkeypatch):
    monkeypatch.setattr(retry, "RETRY_WAIT_S", 0.0)


class GaveUp(Exception):
    pass


def failing(errors: list[BaseException]):
    """A callable raising ``errors`` in turn, then returning how many calls it took."""
    calls = []

    def attempt():
        calls.append(1)
        if len(calls) <= len(errors):
            raise errors[len(calls) - 1]
        return len(calls)

    return attempt


def test_transient_failures_are_retried_until_success():
    errors = [ConnectionResetError("reset"), TimeoutError("slow")]
    assert retry.retry_transient(failing(errors), give_up=lambda e, n: GaveUp()) == 3


def test_retries_run_out_into_the_give_up_error(monkeypatch):
    monkeypatch.setattr(retry, "MAX_RETRIES", 2)
    errors = [ConnectionError(f"drop {i}") for i in range(5)]
    with pytest.raises(GaveUp, match="drop 2 after 2") as raised:
        retry.retry_transient(failing(errors), give_up=lambda e, n: GaveUp(f"{e} after {n}"))
    assert isinstance(raised.value.__cause__, ConnectionError)


@pytest.mark.parametrize(
    "error",
    [FileNotFoundError("gone"), PermissionError("no"), ChecksumError("f", "a", "b"), KeyError("x")],
)
def test_other_errors_are_not_retried(error):
    attempt = failing([error])
    with pytest.raises(type(error)):
        retry.retry_transient(attempt, give_up=lambda e, n: GaveUp())
    assert attempt() == 2  # the policy made one call only


def test_http_stack_errors_count_as_transient():
    import requests
    import urllib3

    assert retry.is_transient(requests.ConnectionError("x"))
    assert retry.is_transient(urllib3.exceptions.ProtocolError("x"))
    assert not retry.is_transient(ValueError("x"))
