"""Timing and memory helpers of `make bench`: medians over repeats, peak memory as a delta over the level at the
start of the measured call (CUDA: torch.cuda.max_memory_allocated; CPU: resident set size sampled every 0.5 ms
by a thread, after glibc's malloc_trim so freed memory does not hide a peak)."""

from __future__ import annotations

import ctypes
import os
import statistics
import threading
import time
from collections.abc import Callable

import torch

_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
try:
    _LIBC = ctypes.CDLL("libc.so.6")
except OSError:  # not glibc: no trim
    _LIBC = None


def rss() -> int:
    """Resident set size of this process in bytes (Linux /proc; 0 elsewhere)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * _PAGE
    except OSError:
        return 0


def trim() -> None:
    if _LIBC is not None:
        _LIBC.malloc_trim(0)


MEMORY_METHOD = ("CUDA max_memory_allocated" if torch.cuda.is_available() else
                 "CPU resident set size (RSS) sampled every 0.5 ms, peak minus the level before the call, "
                 "after malloc_trim")


class Peak:
    """`with Peak() as p: ...` then p.bytes = peak memory above the level at entry."""

    def __enter__(self) -> Peak:
        self.cuda = torch.cuda.is_available()
        if self.cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self.base = torch.cuda.memory_allocated()
            return self
        trim()
        self.base = self.peak = rss()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, rss())
            time.sleep(0.0005)

    def __exit__(self, *exc) -> None:
        if self.cuda:
            torch.cuda.synchronize()
            self.bytes = max(0, torch.cuda.max_memory_allocated() - self.base)
            return
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss())
        self.bytes = max(0, self.peak - self.base)


def sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def timed(fn: Callable[[], object], memory: bool = False) -> tuple[float, int]:
    """(seconds, peak bytes above the start or 0) of one call."""
    sync()
    if memory:
        with Peak() as p:
            t0 = time.perf_counter()
            fn()
            sync()
            dt = time.perf_counter() - t0
        return dt, p.bytes
    t0 = time.perf_counter()
    fn()
    sync()
    return time.perf_counter() - t0, 0


def median(xs) -> float:
    xs = list(xs)
    return statistics.median(xs) if xs else float("nan")
