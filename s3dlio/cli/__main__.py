"""``python -m s3dlio.cli``: the same as the ``s3dlio`` command."""

from . import main

main()
