"""``python run.py`` keeps working as the seed promised: the same as ``selfheal serve``."""

from __future__ import annotations

import sys

from selfheal.cli.main import cli

if __name__ == "__main__":
    cli(["serve", *sys.argv[1:]])
