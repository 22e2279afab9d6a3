"""The set-up both s3torchconnector drop-in test modules share: the environment (and so the
process-wide config) names another region and a closed port, while each object under test is
given ``region=``/``endpoint=`` (moto's) itself, so a request that ignored them would fail."""

from __future__ import annotations

import s3dlio

REGION = "us-east-1"
WRONG_REGION = "ap-southeast-2"
CLOSED_PORT = "http://127.0.0.1:9"


def global_settings_unchanged() -> bool:
    """The process-wide settings still point elsewhere: nothing under test changed them."""
    config = s3dlio.config.default_config()
    return config.region == WRONG_REGION and config.endpoint_url == CLOSED_PORT
