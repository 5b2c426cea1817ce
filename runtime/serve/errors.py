"""The one error a handler raises: answered as {"error": message} with its HTTP status."""

from __future__ import annotations


class ApiError(Exception):
    """An answer {"error": message} with an HTTP status."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message
