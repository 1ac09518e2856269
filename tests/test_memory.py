"""Allocators bounded for flat memory (`memory.py`), each case in a fresh interpreter: the
settings are process-wide and must come before any thread allocates."""

from __future__ import annotations

import os
import re
import subprocess
import sys

# Eight threads allocating at once, then glibc's own report of its arenas (on stderr).
ARENAS = """
import ctypes, sys, threading
from braze_sends import memory
if sys.argv[1] == "bound":
    memory.bound_allocators()
barrier = threading.Barrier(8)
def churn():
    barrier.wait()
    blocks = [bytearray(4096) for _ in range(20_000)]
    barrier.wait()
threads = [threading.Thread(target=churn) for _ in range(8)]
for t in threads: t.start()
for t in threads: t.join()
ctypes.CDLL("libc.so.6").malloc_stats()
"""

POOL = """
from braze_sends import memory
memory.bound_allocators()
import pyarrow as pa
print(pa.default_memory_pool().backend_name)
"""


def _python(code: str, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if k not in ("MALLOC_ARENA_MAX",)}
    environ.pop("ARROW_DEFAULT_MEMORY_POOL", None)
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        check=True,
        env={**environ, **env},
    )


def _arenas(stderr: str) -> int:
    return len(re.findall(r"^Arena \d+:", stderr, flags=re.MULTILINE))


def test_threads_share_at_most_two_malloc_arenas() -> None:
    unbounded = _arenas(_python(ARENAS, "default").stderr)
    bounded = _arenas(_python(ARENAS, "bound").stderr)
    assert unbounded > 2, "eight busy threads should have made glibc open more arenas"
    assert bounded <= 2


def test_a_users_arena_setting_is_left_as_it_is() -> None:
    assert _arenas(_python(ARENAS, "bound", MALLOC_ARENA_MAX="4").stderr) > 2


def test_arrow_allocates_from_the_system_allocator_unless_the_user_chose() -> None:
    assert _python(POOL).stdout.strip() == "system"
    chosen = _python(POOL, ARROW_DEFAULT_MEMORY_POOL="mimalloc").stdout.strip()
    assert chosen == "mimalloc"
