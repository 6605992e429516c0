"""Encrypting service secrets at rest with a key derived from SECRET_KEY.

Fernet (AES-128-CBC + HMAC-SHA256, from ``cryptography``) with its key derived
through HKDF, so the stored form is useless without SECRET_KEY and a changed
SECRET_KEY is detected instead of producing garbage.
"""

from __future__ import annotations

import base64

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from selfheal.errors import ConfigError


class SecretBox:
    """Encrypts and decrypts small secrets (webhook secrets)."""

    def __init__(self, secret_key: str) -> None:
        derived = HKDF(
            algorithm=hashes.SHA256(), length=32, salt=None, info=b"selfheal service secrets"
        ).derive(secret_key.encode())
        self._fernet = Fernet(base64.urlsafe_b64encode(derived))

    def encrypt(self, plain: str) -> str:
        """The stored form of a secret."""
        return self._fernet.encrypt(plain.encode()).decode()

    def decrypt(self, token: str, *, what: str) -> str:
        """The secret back; a clear error if SECRET_KEY is not the one that stored it."""
        try:
            return self._fernet.decrypt(token.encode()).decode()
        except InvalidToken:
            raise ConfigError(
                f"cannot decrypt the stored secret of {what}: SECRET_KEY differs from the one "
                f"it was stored with. Restore the old SECRET_KEY, or register the service "
                f"again with its secret."
            ) from None
