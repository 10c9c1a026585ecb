"""Hugging Face hub datasets without network: fail at once, in one line, instead of retrying.

`datasets.load_dataset(<hub id>)` on a machine without network retries the hub for ~23 s (huggingface_hub's
backoff: 1 + 2 + 4 + 8 + 8 s) and ends in a `ConnectionError` traceback. `load_dataset` here asks first whether
the hub can be reached (`HF_HUB_OFFLINE` / `HF_DATASETS_OFFLINE` set, or one TCP connection to the hub's host in
`PROBE_S` seconds); if not, it loads in offline mode (a copy in the local datasets cache is still served, with no
hub request and no retries) and otherwise raises one `PaperlibError` naming the hub id and asking for a local copy.
"""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlparse

from paperlib.engine.errors import PaperlibError

PROBE_S = 3.0  # seconds one connection attempt to the hub may take
OFFLINE_VARS = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE")
PROXY_VARS = ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")
_REACHABLE: set[str] = set()  # hosts that answered once in this process (a failed probe is retried next time)


def _true(value: str | None) -> bool:
    return (value or "").strip().upper() in {"1", "ON", "YES", "TRUE"}


def unreachable() -> str | None:
    """Why the hub cannot be reached (offline mode set, or no connection to its host), or None when it can (or
    when a proxy is configured: then only the request itself can tell)."""
    import datasets
    import huggingface_hub.constants as hub

    if any(_true(os.environ.get(v)) for v in OFFLINE_VARS) or hub.HF_HUB_OFFLINE or datasets.config.HF_HUB_OFFLINE:
        return "HF_HUB_OFFLINE is set"
    if any(os.environ.get(v) for v in PROXY_VARS):
        return None
    url = urlparse(hub.ENDPOINT)
    host, port = url.hostname or "huggingface.co", url.port or (80 if url.scheme == "http" else 443)
    if host in _REACHABLE:
        return None
    try:
        socket.create_connection((host, port), timeout=PROBE_S).close()
    except OSError as err:
        return f"there is no network ({host}:{port} unreachable: {' '.join(str(err).split()) or type(err).__name__})"
    _REACHABLE.add(host)
    return None


@contextlib.contextmanager
def offline() -> Iterator[None]:
    """datasets and huggingface_hub in offline mode for the duration (both read their flag at call time)."""
    import datasets
    import huggingface_hub.constants as hub

    before = hub.HF_HUB_OFFLINE, datasets.config.HF_HUB_OFFLINE
    hub.HF_HUB_OFFLINE = datasets.config.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        hub.HF_HUB_OFFLINE, datasets.config.HF_HUB_OFFLINE = before


def load_dataset(hub_id: str, *args: Any, what: str = "dataset", local: str = "a local copy", **kwargs: Any):
    """`datasets.load_dataset(hub_id, *args, **kwargs)`, or, when the hub cannot be reached, the copy in the local
    datasets cache or one `PaperlibError`: "<what> '<hub_id>' is a hub dataset and <why>; allowed: <local>"."""
    import datasets

    why = unreachable()
    if why is None:
        return datasets.load_dataset(hub_id, *args, **kwargs)
    try:
        with offline():
            return datasets.load_dataset(hub_id, *args, **kwargs)
    except ConnectionError:  # not in the local cache (OfflineModeIsEnabled is a ConnectionError)
        raise PaperlibError(f"{what} {hub_id!r} is a hub dataset and {why}, and the local datasets cache has no "
                            f"copy; allowed: {local}") from None
