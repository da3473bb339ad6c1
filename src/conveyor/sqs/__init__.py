"""The Amazon-SQS-compatible endpoint: AWS JSON 1.0 and query/XML over the broker."""

from conveyor.sqs.app import create_sqs_app

__all__ = ["create_sqs_app"]
