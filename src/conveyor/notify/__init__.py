"""Notifications: channels (SMTP, HTTP email APIs, Web Push, FCM, APNs, webhooks,
Apprise), templates, the delivery ledger that keeps a redelivered message from sending
twice, and the delivery worker. See `conveyor.notify.notifier` for the entry point; the
million-message run (`conveyor demo`) lives apart, in `conveyor.demo`."""

from conveyor.notify.apns import ApnsChannel
from conveyor.notify.apprise_channel import AppriseChannel
from conveyor.notify.channel import Channel, PayloadTooLarge
from conveyor.notify.delivery import Deliverer, DeliveryStats
from conveyor.notify.delivery_options import DeliveryOptions
from conveyor.notify.emailapi import HttpEmailChannel
from conveyor.notify.fcm import FcmChannel
from conveyor.notify.models import (
    Apns,
    Apprise,
    Email,
    Envelope,
    Fcm,
    Item,
    Notification,
    Webhook,
    WebPush,
)
from conveyor.notify.notifier import Notifier
from conveyor.notify.outcomes import Result
from conveyor.notify.smtp import SmtpChannel
from conveyor.notify.smtp_render import DkimKey
from conveyor.notify.templates import Rendered, Templates
from conveyor.notify.webhook import WebhookChannel
from conveyor.notify.webpush import WebPushChannel

__all__ = [
    "Apns",
    "ApnsChannel",
    "Apprise",
    "AppriseChannel",
    "Channel",
    "Deliverer",
    "DeliveryOptions",
    "DeliveryStats",
    "DkimKey",
    "Email",
    "Envelope",
    "Fcm",
    "FcmChannel",
    "HttpEmailChannel",
    "Item",
    "Notification",
    "Notifier",
    "PayloadTooLarge",
    "Rendered",
    "Result",
    "SmtpChannel",
    "Templates",
    "WebPush",
    "WebPushChannel",
    "Webhook",
    "WebhookChannel",
]
