"""``python -m s3dlio.bench WORKLOAD TARGET [options]``: ``s3dlio bench`` on its own (handy under torchrun)."""

from ..cli.bench import main

main()
