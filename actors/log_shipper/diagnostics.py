"""The log shipper's own voice: plain lines on stderr, never through `logging`.

Whatever the shipper says about itself must not pass through the handler it drains (a
failing sink would then feed itself more records to fail on), nor depend on how the
application configured logging; stderr is what remains when the log pipeline is broken.
"""

from __future__ import annotations

import sys

__all__ = ["report"]


def report(message: str) -> None:
    """Write one line about the log shipper to stderr (rare events only: failures, drops)."""
    print(f"log shipper: {message}", file=sys.stderr, flush=True)
