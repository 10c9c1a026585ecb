"""Progress bars (tqdm.auto: widgets in JupyterLab, text in a terminal) that the environment can silence:
`TQDM_DISABLE=1` (set by the runner for headless kernels) switches off every bar, also those a caller
enables explicitly."""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

from tqdm.auto import tqdm


def silenced() -> bool:
    """True when TQDM_DISABLE is set to a true value."""
    return os.environ.get("TQDM_DISABLE", "").lower() not in ("", "0", "false", "no")


def bar(iterable: Iterable, desc: str = "", enabled: bool = True, **kwargs: Any) -> tqdm:
    """tqdm over `iterable`, off when not `enabled` or when silenced."""
    return tqdm(iterable, desc=desc, disable=not enabled or silenced(), **kwargs)
