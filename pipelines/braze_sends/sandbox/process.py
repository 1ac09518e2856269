"""The sandbox in a process of its own, as `braze-sends sandbox` runs it: what the benchmark and
the scale test pull from, so the server's work doesn't share an interpreter with the pipeline's.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def sandbox_process(
    folder: Path,
    *,
    sends: int,
    campaigns: int,
    days: int = 13,
    args: Sequence[str] = (),
    timeout: float = 120,
) -> Iterator[tuple[str, Path]]:
    """Start `braze-sends sandbox` on a free port; yield its URL and the sends file it wrote.

    Its output goes to `folder/sandbox.log` (a pipe nobody reads would block it once full).

    Raises:
        RuntimeError: the sandbox exited or did not answer within `timeout` seconds.
    """
    folder.mkdir(parents=True, exist_ok=True)
    port, sends_file = free_port(), folder / "sends.csv"
    command = [
        *(sys.executable, "-m", "braze_sends.cli", "sandbox", "--port", str(port)),
        *("--sends", str(sends), "--campaigns", str(campaigns), "--days", str(days)),
        *("--write-sends", str(sends_file), *args),
    ]
    with open(folder / "sandbox.log", "w+") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + timeout
            while not (sends_file.exists() and _listening(port)):
                if process.poll() is not None or time.monotonic() > deadline:
                    log.seek(0)
                    raise RuntimeError(f"the sandbox did not start: {log.read()[-2000:]}")
                time.sleep(0.1)
            yield f"http://127.0.0.1:{port}", sends_file
        finally:
            process.terminate()
            process.wait(timeout=30)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0
