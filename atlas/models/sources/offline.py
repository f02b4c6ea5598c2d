"""Decide quickly whether a weight download can work, so offline never means a hang."""

from __future__ import annotations

import os
import socket
from urllib.parse import urlparse

OFFLINE_VARS = ("ATLAS_OFFLINE", "HF_HUB_OFFLINE")


def offline_requested() -> bool:
    """Return True when the environment asks for no downloads."""
    return any(os.environ.get(var, "").lower() in ("1", "true", "yes") for var in OFFLINE_VARS)


def reachable(url: str, timeout: float = 3.0) -> bool:
    """Return True if a TCP connection to the URL's host opens within timeout seconds."""
    if offline_requested():
        return False
    parsed = urlparse(url)
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        with socket.create_connection((parsed.hostname, port), timeout=timeout):
            return True
    except OSError:
        return False
