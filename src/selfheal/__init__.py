"""selfheal: an agent that keeps web services healthy on its own.

It probes services, notices trouble, classifies it, picks the fix most likely
to work, runs it, checks that it worked, and learns from the outcome.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
