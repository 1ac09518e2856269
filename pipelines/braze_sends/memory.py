"""Keep a long run's resident memory flat: allocators that give memory back.

A run pulls on dozens of threads and loads chunk after chunk. With default allocators its peak
memory crept up with the number of chunks although the Python heap did not grow (measured with
tracemalloc: ~62 MB at every chunk of a 9,300-pair run): glibc spreads threads over up to 8
malloc arenas per core and keeps what is freed in each, and Arrow's jemalloc pool keeps freed
pages too. So:

- `bound_allocators` (once, at the start of a process, before threads start): at most two glibc
  arenas, and Arrow on the system allocator. Process-wide, so the CLI calls it; code embedding the
  pipeline in its own process may call it too. Measured (the bench's CLI runs, 1,000 and 9,300
  pairs): peak RSS 402 / 447 MB with the defaults, 335 / 405 MB bounded.
- `release` (after each chunk's load): what a chunk freed goes back to the OS.

Settings the user made through the environment (`MALLOC_ARENA_MAX`, `ARROW_DEFAULT_MEMORY_POOL`)
are left as they are. On other C libraries (musl, macOS) there is nothing to bound or trim.
"""

from __future__ import annotations

import ctypes
import functools
import gc
import logging
import os

import pyarrow as pa

logger = logging.getLogger(__name__)

M_ARENA_MAX = -8  # glibc's mallopt parameter
ARENAS = 2


def bound_allocators() -> None:
    """Two glibc malloc arenas at most, and Arrow on the system allocator (see the module)."""
    if "MALLOC_ARENA_MAX" not in os.environ:
        libc = _glibc()
        if libc is not None and libc.mallopt(M_ARENA_MAX, ARENAS) != 1:
            logger.debug("mallopt(M_ARENA_MAX) refused; arenas stay unbounded")
    if "ARROW_DEFAULT_MEMORY_POOL" not in os.environ:
        pa.set_memory_pool(pa.system_memory_pool())
        # Arrow's C++ parts (the parquet writer...) keep using the pool chosen at import: make
        # it return freed pages at once instead of after a delay.
        try:
            pa.jemalloc_set_decay_ms(0)
        except NotImplementedError:  # a pyarrow built without jemalloc
            pass


def release() -> None:
    """Hand memory freed by a chunk back to the OS, so chunks don't pile up high-water marks."""
    gc.collect()
    pa.default_memory_pool().release_unused()
    libc = _glibc()
    if libc is not None:
        libc.malloc_trim(0)


@functools.cache
def _glibc() -> ctypes.CDLL | None:
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt  # noqa: B018 - glibc has both; musl's libc.so.6 alias may not
        libc.malloc_trim  # noqa: B018
    except (OSError, AttributeError):
        return None
    return libc
