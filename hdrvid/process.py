"""Process-wide tuning for conversions: the OpenMP spin count and malloc's reuse of freed memory.

Both settings hold for the whole process, for good, so a library must not make them unasked:
nothing here runs on import. The `hdrvid` command calls `tune_process` first thing (before
torch is imported), and so do the benchmarks that measure speed; a program that embeds hdrvid
may call it too. Imports no torch.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os

# OpenMP threads out of work spin this many rounds before they sleep (libgomp's default is
# 300,000): spinning takes the cores from a conversion's DIS, decode and EXR threads
# (docs/performance.md, "Speed")
SPINCOUNT = "10000"


def keep_freed_memory(largest: int = 1 << 30) -> bool:
    """Have glibc's malloc keep freed blocks of up to ``largest`` bytes for reuse rather than
    hand each back to the kernel. Every activation of a forward on the CPU is a fresh large
    block, which by default is a new mapping whose pages the kernel zeroes and faults in on
    first touch, on every window. Threads share the main heap (one arena): their own heaps are
    small, and larger blocks there were mapped afresh anyway, which made parallel windows
    slower than one at a time. merge gains too: its DIS threads return fresh warped frames.
    Measurements: docs/performance.md, "Freed memory kept for reuse". The process keeps its
    peak memory until it exits. False where the C library has no ``mallopt``."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    m_trim_threshold, m_mmap_threshold, m_arena_max = -1, -3, -8  # malloc.h
    return bool(mallopt(m_mmap_threshold, largest) and mallopt(m_trim_threshold, 2**31 - 1)
                and mallopt(m_arena_max, 1))


def tune_process() -> bool:
    """Tune this process for converting video on the CPU; call it before importing torch.

    Sets ``GOMP_SPINCOUNT`` (unless the environment already has it: a value there wins), which
    libgomp reads once, when torch loads it; then `keep_freed_memory`. Returns whether malloc
    took the settings (False where the C library has no ``mallopt``).
    """
    os.environ.setdefault("GOMP_SPINCOUNT", SPINCOUNT)
    return keep_freed_memory()
