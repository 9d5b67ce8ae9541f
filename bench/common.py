"""What the benchmark scripts share: loopback ports and the API's request signature."""

import base64
import hashlib
import hmac
import socket
import time


def free_port(kind=socket.SOCK_STREAM):
    """A port free on 127.0.0.1 now (TCP by default)."""
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def signed(key, secret):
    """An Authorization header for the API, valid for an hour."""
    exp = int(time.time()) + 3600
    sig = base64.urlsafe_b64encode(hmac.new(secret.encode(), f"{key}{exp}".encode(), hashlib.sha256).digest())
    return f"Sipx api_key={key}, expire_at={exp}, signature={sig.rstrip(b'=').decode()}"
