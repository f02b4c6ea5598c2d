"""Run the CLI with ``python -m atlas``."""

from .cli import main

main()
