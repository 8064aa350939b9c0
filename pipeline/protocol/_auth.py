"""httpx integration: sign every request's exact bytes, verify every response's signature."""

from __future__ import annotations

from collections.abc import Generator, Iterable

import httpx
from cryptography.hazmat.primitives.asymmetric import rsa

from ._keyring import Keyring
from ._signing import ALGORITHMS, Algorithm, AuthorizationHeader
from ._verification import Verification, verify_body

__all__ = ["RAW_BODY", "CWSAuth", "verification_of"]

_EXTENSION = "cws_verification"
# A response extension holding the body exactly as it came off the wire, before httpx decodes any
# Content-Encoding; a transport that keeps it (pipeline's CWSTransport) lets the signature be checked
# over the bytes CorEMR sent.
RAW_BODY = "cws_raw_body"


class CWSAuth(httpx.Auth):
    """Sign requests as ACCESS with a private key; verify responses against a keyring.

    The verification outcome is attached to the response, never raised: read it with
    `verification_of(response)`. The auth flow does no I/O of its own.

    Use it with a client built with `follow_redirects=False` (httpx's default): a followed redirect
    would re-send a signed request somewhere else (httpx drops Authorization across origins, and a
    POST re-sent is a second create). Send bodies as `content=` bytes serialised once, so the bytes
    signed are the bytes sent. With `transport=CWSTransport(...)` the answer is verified over its
    bytes as received (never a decompressed copy), TLS and proxies are set once, and every request
    has an overall deadline.
    """

    requires_request_body = True
    requires_response_body = True

    def __init__(
        self,
        key: rsa.RSAPrivateKey,
        access: str,
        keyring: Keyring,
        algorithm: Algorithm = "CWS-SHA256",
        accept_algorithms: Iterable[str] = ALGORITHMS,
    ) -> None:
        self._key = key
        self.access = access
        self.keyring = keyring
        self.algorithm: Algorithm = algorithm
        self.accept_algorithms = tuple(accept_algorithms)

    def __repr__(self) -> str:  # never show the key
        return f"CWSAuth(access={self.access!r}, algorithm={self.algorithm!r})"

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        """Sign the request body as sent (empty for GET), send it, and verify what comes back."""
        request.headers["Authorization"] = self.authorization_for(request.content)
        # CorEMR signs the body it sends; a transparently decompressed body would not be those bytes.
        request.headers["Accept-Encoding"] = "identity"
        response = yield request
        received = response.extensions.get(RAW_BODY)
        body = received if isinstance(received, bytes) else response.content
        response.extensions[_EXTENSION] = self.verify(body, response.headers.get("Authorization"))

    def authorization_for(self, body: bytes) -> str:
        """The `Authorization` value for these exact request bytes (what auth_flow sets)."""
        return str(AuthorizationHeader.for_body(body, self._key, self.access, self.algorithm))

    def verify(self, body: bytes, authorization: str | None) -> Verification:
        """Check a response's `Authorization` value against its exact bytes (what auth_flow records)."""
        return verify_body(body, authorization, self.keyring, self.accept_algorithms)


def verification_of(response: httpx.Response) -> Verification:
    """The verification CWSAuth recorded on a response (missing_header if it never ran)."""
    found = response.extensions.get(_EXTENSION)
    return found if isinstance(found, Verification) else Verification("missing_header")
