"""Short-lived signed URLs for what browsers fetch without an Authorization header (<img>, downloads,
EventSource): an HMAC-SHA256 over (user, resource path, expiry) with the service's secret, checked like a key.

A signature is valid only for the one path it was made for, for the user it was made for, until it expires.
The secret is made once (256 random bits) and kept in the service root, readable by its owner only.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import time
from pathlib import Path
from urllib.parse import urlencode


def load_secret(root: Path) -> bytes:
    path = root / "signing.key"
    if not path.is_file():
        root.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_hex(32))
        os.replace(tmp, path)
    return bytes.fromhex(path.read_text().strip())


class Signer:
    def __init__(self, secret: bytes, lifetime: int, clock=time.time):
        self.secret, self.lifetime, self.clock = secret, lifetime, clock

    def _mac(self, user_id: int, path: str, expires: int) -> str:
        message = f"{user_id}\n{path}\n{expires}".encode()
        return hmac.new(self.secret, message, hashlib.sha256).hexdigest()

    def sign(self, user_id: int, path: str) -> str:
        """`path?u=..&exp=..&sig=..`: usable without a key until it expires."""
        expires = int(self.clock()) + self.lifetime
        return f"{path}?{urlencode({'u': user_id, 'exp': expires, 'sig': self._mac(user_id, path, expires)})}"

    def verify(self, path: str, user: str | None, expires: str | None, signature: str | None) -> int | None:
        """The user id a signed request was made for, or None (missing, malformed, expired or forged)."""
        if not (user and expires and signature) or not user.isdigit() or not expires.isdigit():
            return None
        if int(expires) < self.clock():
            return None
        if not hmac.compare_digest(self._mac(int(user), path, int(expires)), signature):
            return None
        return int(user)
