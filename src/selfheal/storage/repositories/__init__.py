"""Repository functions: keyword-only, ``session`` then ``tenant_id`` first.

A missing tenant is then a type error, not a data leak.
"""

from __future__ import annotations
