"""The parts of geventhttpclient eslhook's sender leans on beyond its public API.

``eslhook/delivery/http.py`` overrides two private methods of
``geventhttpclient.connectionpool.ConnectionPool`` and reads two private
attributes (why: the module docstring).  setup.cfg pins the minor version
this was checked on; raising the pin means running this file first.  If one
of these moves, the sender would silently lose the network policy check at
connect (``_resolve``) or the one-peek idle check (``_is_socket_alive``):
these tests fail first, saying what moved.
"""

from __future__ import annotations

import inspect

import geventhttpclient
from geventhttpclient.connectionpool import ConnectionPool, SSLConnectionPool

from eslhook.delivery import http

PINNED = "2.6"   # setup.cfg: geventhttpclient>=2.6,<2.7


def test_the_installed_geventhttpclient_is_the_pinned_minor():
    assert geventhttpclient.__version__.startswith(PINNED + "."), (
        "geventhttpclient %s is not the %s.x the sender's private overrides were checked on"
        % (geventhttpclient.__version__, PINNED))


def test_resolve_is_still_how_a_pool_finds_where_to_connect():
    # eslhook's _resolve returns only addresses the hook's policy allows
    params = list(inspect.signature(ConnectionPool._resolve).parameters)
    assert params == ["self"], "ConnectionPool._resolve moved: %s" % params
    source = inspect.getsource(ConnectionPool._create_socket)
    assert "self._resolve()" in source, (
        "ConnectionPool._create_socket no longer connects to what _resolve returns: the "
        "network policy check at connect would be bypassed")


def test_is_socket_alive_is_still_how_a_pool_checks_an_idle_connection():
    params = list(inspect.signature(ConnectionPool._is_socket_alive).parameters)
    assert params == ["self", "sock"], "ConnectionPool._is_socket_alive moved: %s" % params
    assert "self._is_socket_alive(" in inspect.getsource(ConnectionPool.get_socket), (
        "ConnectionPool.get_socket no longer checks idle sockets with _is_socket_alive")


def test_the_pools_keep_the_connect_address_where_the_overrides_read_it():
    for pool_class in (http._PlainPool, http._TlsPool):
        assert issubclass(pool_class, ConnectionPool)
        pool = pool_class("127.0.0.2", 8443, "127.0.0.2", 8443, size=1)
        try:
            assert (pool._connection_host, pool._connection_port) == ("127.0.0.2", 8443)
        finally:
            pool.close()
    assert issubclass(http._TlsPool, SSLConnectionPool)
