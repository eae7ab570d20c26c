"""Run ``streamlit run ui/app.py`` on a free localhost port (for browser tests and screenshots)."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

APP = Path(__file__).resolve().parents[1] / "ui" / "app.py"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def listening_addresses(port: int) -> set[str]:
    """The IPv4 addresses a local TCP socket listens on for ``port`` (Linux /proc/net/tcp)."""
    out = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        local, state = line.split()[1], line.split()[3]
        host, _, port_hex = local.partition(":")
        if state == "0A" and int(port_hex, 16) == port:  # 0A = LISTEN
            out.add(".".join(str(b) for b in reversed(bytes.fromhex(host))))
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def running_app(
    app_args: list[str], env: dict | None = None, timeout: float = 120
) -> Iterator[str]:
    """Start the app with ``-- app_args``; yield its URL once healthy; stop it afterwards.

    Raises:
        TimeoutError: the server did not answer its health check in time.
    """
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "streamlit",
            "run",
            str(APP),
            "--server.headless",
            "true",
            "--server.port",
            str(port),
            "--",
            *app_args,
        ],
        # From the project root, so .streamlit/config.toml applies exactly as for a user
        # (loopback only, no usage statistics, no deploy button, no tracebacks in the page).
        cwd=APP.parent.parent,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + timeout
        while True:
            try:
                urllib.request.urlopen(url + "/_stcore/health", timeout=1)
                break
            except OSError:
                if time.time() > deadline or proc.poll() is not None:
                    raise TimeoutError(f"streamlit did not start on {url}") from None
                time.sleep(0.5)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)
