"""eslhook: FreeSWITCH event socket -> Kazoo-style webhooks."""

__version__ = "0.1.0"
