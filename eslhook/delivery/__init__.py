"""Webhook delivery: request building, retry policy, HTTP attempts, the delivery queue."""

from eslhook.delivery.policy import Outcome, RetryPolicy, is_success, retry_delay, should_retry
from eslhook.delivery.queue import DeliveryQueue, DeliveryStats
from eslhook.delivery.request import HttpRequest, build_request

__all__ = ["DeliveryQueue", "DeliveryStats", "HttpRequest", "Outcome", "RetryPolicy",
           "build_request", "is_success", "retry_delay", "should_retry"]
