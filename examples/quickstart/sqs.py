"""The README's SQS example: boto3, unchanged but for the endpoint URL.

    pip install -e '.[sqs-clients]'                  # boto3 and the AWS CLI
    conveyor serve                                   # SQS endpoint on 127.0.0.1:9324
    python examples/quickstart/sqs.py [ENDPOINT_URL]
"""

from __future__ import annotations

import sys

import boto3


def main(endpoint_url: str = "http://127.0.0.1:9324") -> str:
    """Create a queue, send, receive and delete one message; returns the body received."""
    sqs = boto3.client("sqs", endpoint_url=endpoint_url, region_name="us-east-1",
                       aws_access_key_id="x", aws_secret_access_key="x")
    url = sqs.create_queue(QueueName="sqs-hello")["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody="hi")
    [message] = sqs.receive_message(QueueUrl=url, WaitTimeSeconds=5)["Messages"]
    sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    sqs.close()
    return str(message["Body"])


if __name__ == "__main__":
    print(main(*sys.argv[1:]))
