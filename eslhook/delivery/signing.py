"""Standard Webhooks signing (https://www.standardwebhooks.com), pure: no I/O, no clock.

Every request carries ``webhook-id`` (the same on every retry and replay, so a
receiver can drop duplicates) and ``webhook-timestamp`` (unix seconds of this
attempt).  A hook with a ``secret`` also gets ``webhook-signature``:
``v1,`` + base64 HMAC-SHA256 of ``"{id}.{timestamp}.{body}"`` keyed with the
secret's decoded bytes.  A GET signs the empty body: its payload travels in
the query string, i.e. in the URI the receiver routes on.  During a rotation the previous secret's signature is sent too,
space separated, until ``previous_secret_expires``.
"""

from __future__ import annotations

import base64
import functools
import secrets as _random
import uuid
from dataclasses import replace
from datetime import datetime, timedelta, timezone

from standardwebhooks import Webhook

from eslhook.hooks.model import MIN_SECRET_BYTES, SECRET_PREFIX, Hook, parse_utc, secret_problem

ROTATION_OVERLAP = timedelta(hours=24)
GENERATED_SECRET_BYTES = 32


def generate_secret() -> str:
    """A new random secret (for ``"secret": "generate"``)."""
    return SECRET_PREFIX + base64.b64encode(_random.token_bytes(GENERATED_SECRET_BYTES)).decode()


def secret_key(secret: str) -> bytes:
    """The HMAC key of a ``whsec_`` secret; ValueError (not quoting it) if malformed."""
    problem = secret_problem(secret)
    if problem:
        raise ValueError("secret: %s" % problem)
    text = secret[len(SECRET_PREFIX):].rstrip("=")
    key = base64.b64decode(text + "=" * (-len(text) % 4))
    assert len(key) >= MIN_SECRET_BYTES
    return key


def sign(secret: str, webhook_id: str, timestamp: int, body: bytes) -> str:
    """``v1,<base64 signature>`` for one request, by the standardwebhooks package
    (bodies are UTF-8: JSON from orjson, or percent-encoded form data)."""
    stamp = datetime.fromtimestamp(timestamp, timezone.utc)
    return _signer(secret).sign(webhook_id, stamp, body.decode("utf-8"))


@functools.lru_cache(maxsize=1024)
def _signer(secret: str) -> Webhook:
    """The package's signer of a validated secret: decoding the key once per
    secret, not per attempt, is what makes it cheaper than HMAC by hand."""
    secret_key(secret)          # ValueError for a malformed secret, not quoting it
    return Webhook(secret)


def active_secrets(hook: Hook, now: datetime) -> tuple[str, ...]:
    """The secrets to sign with at ``now``: the current one, then the previous one while
    its overlap lasts."""
    out = [hook.secret] if hook.secret else []
    if hook.previous_secret and hook.previous_secret_expires:
        expires = parse_utc(hook.previous_secret_expires)
        if expires is not None and now < expires:
            out.append(hook.previous_secret)
    return tuple(out)


def webhook_headers(hook: Hook, webhook_id: str, timestamp: int, body: bytes,
                    now: datetime | None = None) -> dict[str, str]:
    """The Standard Webhooks headers of one attempt."""
    headers = {"webhook-id": webhook_id, "webhook-timestamp": str(timestamp)}
    if not hook.secret and not hook.previous_secret:
        return headers
    if now is None:
        now = datetime.fromtimestamp(timestamp, timezone.utc)
    keys = active_secrets(hook, now)
    if keys:
        headers["webhook-signature"] = " ".join(
            sign(secret, webhook_id, timestamp, body) for secret in keys)
    return headers


def rotated(hook: Hook, new_secret: str, now: datetime) -> Hook:
    """``hook`` with ``new_secret`` in force and its old secret kept for 24 h."""
    if secret_problem(new_secret):
        raise ValueError("secret: %s" % secret_problem(new_secret))
    if not hook.secret:
        return replace(hook, secret=new_secret)
    expires = (now + ROTATION_OVERLAP).astimezone(timezone.utc)
    return replace(hook, secret=new_secret, previous_secret=hook.secret,
                   previous_secret_expires=expires.strftime("%Y-%m-%dT%H:%M:%SZ"))


def make_webhook_id(event_id: str | None, hook_id: str) -> str:
    """Stable per (event, hook): ``{event_id}_{hook_id}``; a random id (kept with the
    delivery) when the payload names no usable event."""
    base = event_id if event_id and event_id.isascii() and event_id.isprintable() \
        and " " not in event_id else uuid.uuid4().hex
    return "%s_%s" % (base, hook_id)
