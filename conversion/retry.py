"""One retry policy for network reads (the download and the streamed remote sources), on tenacity.

``retry_transient(attempt, give_up=...)`` calls ``attempt()`` again after a transient failure
(``is_transient``: a dropped or refused connection, a timeout, an HTTP 5xx/408/429 raised by
``requests``, a broken chunked/aiohttp payload), up to ``MAX_RETRIES`` times in a row, waiting
``RETRY_WAIT_S``, then twice that, and so on. Other errors (a missing local file, a checksum
mismatch, a refused HTTP 4xx, a bug) go through at once. When the retries run out,
``give_up(last_error, retries)`` makes the error that is raised.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import tenacity

MAX_RETRIES = 5
RETRY_WAIT_S = 2.0

T = TypeVar("T")


def _transient_types() -> tuple[type[BaseException], ...]:
    """Exception types of the network stacks in use that mean: reconnect and go on."""
    types: list[type[BaseException]] = [OSError, EOFError]  # ConnectionError, TimeoutError, ...
    try:
        import urllib3.exceptions

        types.append(urllib3.exceptions.HTTPError)  # ProtocolError, ReadTimeoutError
    except ImportError:  # pragma: no cover - requests depends on urllib3
        pass
    try:
        import aiohttp

        types.append(aiohttp.ClientError)  # fsspec's HTTP file system
    except ImportError:
        pass
    try:
        from fsspec.exceptions import FSTimeoutError

        types.append(FSTimeoutError)
    except ImportError:  # pragma: no cover - fsspec is a dependency
        pass
    return tuple(types)


TRANSIENT_TYPES = _transient_types()
#: OSErrors that a retry cannot mend.
PERMANENT_TYPES: tuple[type[BaseException], ...] = (
    FileNotFoundError,
    PermissionError,
    IsADirectoryError,
    NotADirectoryError,
)


def is_transient(err: BaseException) -> bool:
    """True for a failure worth a retry (see the module docstring)."""
    return isinstance(err, TRANSIENT_TYPES) and not isinstance(err, PERMANENT_TYPES)


def retry_transient(
    attempt: Callable[[], T], *, give_up: Callable[[BaseException, int], BaseException]
) -> T:
    """``attempt()``, called again after each transient failure (module docstring)."""
    retrying = tenacity.Retrying(
        retry=tenacity.retry_if_exception(is_transient),
        stop=tenacity.stop_after_attempt(MAX_RETRIES + 1),
        wait=tenacity.wait_incrementing(start=RETRY_WAIT_S, increment=RETRY_WAIT_S),
        reraise=True,
    )
    try:
        return retrying(attempt)
    except Exception as err:
        if is_transient(err):
            raise give_up(err, MAX_RETRIES) from err
        raise
