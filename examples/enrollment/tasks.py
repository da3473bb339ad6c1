"""The slow part of enrolling: the welcome email, sent by a worker over SMTP.

    conveyor worker tasks:app          # in this folder

At most 50 emails per 10 s across every worker process (the provider's limit), retried with
backoff when the SMTP server fails. Configuration: ENROLLMENT_QUEUE_URL (the conveyor
database or server; default a SQLite file here), SMTP_HOST, SMTP_PORT.
"""

from __future__ import annotations

import os
from email.message import EmailMessage

import aiosmtplib

from conveyor import App

app = App(os.environ.get("ENROLLMENT_QUEUE_URL", "sqlite:///enrollment-queue.db"))


@app.task(queue="emails", rate_limit="50/10s", concurrency=20, max_retries=5, timeout=30,
          track=True)
async def send_welcome(enrollment_id: int, email: str, name: str, course: str) -> None:
    """Email one new student."""
    message = EmailMessage()
    message["From"] = "courses@example.com"
    message["To"] = email
    message["Subject"] = f"Welcome to {course}"
    message["X-Enrollment-Id"] = str(enrollment_id)
    message.set_content(f"Hello {name},\n\nyou are enrolled in {course}. See you there!\n")
    await aiosmtplib.send(message, hostname=os.environ.get("SMTP_HOST", "127.0.0.1"),
                          port=int(os.environ.get("SMTP_PORT", "8025")))
