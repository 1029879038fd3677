"""What the API's resources share: the hook repository (hooks/repository.py),
accounts, tokens, limits, and the running bridge's two ports (eslhook/ports.py):
its status snapshot, for ``/healthz`` and ``/metrics``, and delivery control, for
the attempt log, replay and re-enabling; and its live tail of channel events.  All
are None when the API runs on its own (tests, tools)."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field

import falcon

from ..accounts import AccountDirectory
from ..config import ApiConfig, ConfigError, DeliveryConfig
from ..hooks.model import Hook
from ..hooks.repository import HookRepository
from . import auth
from .auth import Principal, TokenBook
from ..live import EventTap
from ..netpolicy import Policies
from ..ports import DeliveryControl, StatusSource
from .limits import FailureThrottle, SummaryLog

log = logging.getLogger(__name__)


@dataclass
class ApiContext:
    store: HookRepository
    accounts: AccountDirectory
    config: ApiConfig = ApiConfig()
    # where hooks may connect (delivery.blocked_networks, .tenant_allowed_networks)
    network: DeliveryConfig = DeliveryConfig()
    status: StatusSource | None = None        # the bridge's status, read per request
    delivery: DeliveryControl | None = None   # the bridge's delivery queue
    tap: EventTap | None = None               # the bridge's live tail (eslhook/live.py)
    tokens: TokenBook = field(init=False)
    throttle: FailureThrottle = field(init=False)
    policies: Policies = field(init=False)

    def __post_init__(self) -> None:
        self.tokens = TokenBook(self.accounts, self.config.admin_tokens)
        config = self.config
        self.throttle = FailureThrottle(
            config.auth_failure_burst, config.auth_failures_per_minute,
            SummaryLog("API authentications failed or throttled (429), by client",
                       config.abuse_log_interval_seconds, log))
        self.policies = Policies.from_config(self.network)

    @property
    def max_body_bytes(self) -> int:
        return self.config.max_body_bytes

    def authenticate(self, req: falcon.Request) -> Principal:
        return auth.authenticate(req, self.tokens, self.max_body_bytes, self.throttle)

    def authorize(self, req: falcon.Request, account_id: str) -> Principal:
        return auth.authorize(req, self.tokens, self.accounts, account_id,
                              self.max_body_bytes, self.throttle)

    def resume_delivery(self, hook_ids: Iterable[str]) -> None:
        """Hooks enabled again: what delivery holds for them goes out now, not at
        its next look at hooks.yaml."""
        delivery = self.delivery
        if delivery is None:
            return
        for hook_id in hook_ids:
            lanes = delivery.resume_hook(hook_id)
            if lanes:
                log.info("hook %s enabled through the API: %d held calls resumed",
                         hook_id, lanes)

    def current_hooks(self) -> list[Hook]:
        """The hooks in the file now (a hand edit shows at once); the hooks in
        force if the file has a bad edit (the log says what is wrong)."""
        try:
            return self.store.update(lambda hooks: (None, hooks))
        except ConfigError:
            return self.store.hooks
