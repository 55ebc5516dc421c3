"""The error class of the fake ``cmlapi``: ``cmlapi.rest.ApiException``."""

from __future__ import annotations


class ApiException(Exception):
    """A non-2xx response: ``status`` (0 for TLS failures), ``reason``, ``body``."""

    def __init__(
        self, status=None, reason=None, http_resp=None, body=None, headers=None
    ):
        self.status = status
        self.reason = reason
        self.body = body
        self.headers = headers or {}

    def __str__(self) -> str:
        text = f"({self.status})\nReason: {self.reason}\n"
        if self.headers:
            text += f"HTTP response headers: {self.headers}\n"
        if self.body:
            text += f"HTTP response body: {self.body}\n"
        return text
