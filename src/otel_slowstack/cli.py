"""The ``otel-slowstack`` command."""

from __future__ import annotations

import sys
from typing import Optional, Sequence


def main(argv: Optional[Sequence[str]] = None) -> int:
    print("otel-slowstack: no commands yet", file=sys.stderr)
    return 2
