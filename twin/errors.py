"""The one error type that reaches the user: bad input, reported as file + field."""
from __future__ import annotations


class TwinInputError(Exception):
    """Invalid user input. The CLI prints ``error: FILE: FIELD: MESSAGE`` and exits 2."""

    def __init__(self, file: str, field: str, message: str):
        self.file = str(file)
        self.field = field
        self.message = message
        super().__init__(self.line())

    def line(self) -> str:
        where = f"{self.file}: {self.field}" if self.field else self.file
        return f"{where}: {self.message}"
