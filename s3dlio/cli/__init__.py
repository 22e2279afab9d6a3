"""The ``s3dlio`` command line: ``s3dlio --help`` lists the commands, ``docs/cli.md`` shows them."""

from .app import cli, main

__all__ = ["cli", "main"]
