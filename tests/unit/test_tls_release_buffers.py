"""The sidecar's TLS contexts free OpenSSL's read/write buffers while a connection idles (SSL_MODE_RELEASE_BUFFERS)."""
# Sizing (docs/architecture.md) counts on it: without the mode each idle TLS connection would
# keep ~34 KiB of buffers. CPython's _ssl.c sets it on every SSLContext it creates (except with
# the old OpenSSL releases whose release-buffers code was broken, bpo-25672) but has no getter,
# so this reads the mode through libssl: the SSL_CTX pointer follows PyObject_HEAD in the
# context object, confirmed by SSL_CTX_get_options == context.options before it is used.
import ctypes
import ssl

import pytest

from sidecar import connection

SSL_CTRL_MODE = 33
SSL_MODE_RELEASE_BUFFERS = 0x10


def _mode(context: ssl.SSLContext) -> int | None:
    import _ssl
    lib = ctypes.CDLL(_ssl.__file__)   # resolves to the very libssl the ssl module uses
    lib.SSL_CTX_get_options.argtypes = [ctypes.c_void_p]
    lib.SSL_CTX_get_options.restype = ctypes.c_uint64
    lib.SSL_CTX_ctrl.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_long, ctypes.c_void_p]
    lib.SSL_CTX_ctrl.restype = ctypes.c_long
    ptr = ctypes.c_void_p.from_address(id(context) + object.__basicsize__).value
    if not ptr or lib.SSL_CTX_get_options(ptr) != int(context.options):
        return None
    return lib.SSL_CTX_ctrl(ptr, SSL_CTRL_MODE, 0, None)


@pytest.mark.parametrize("tls", [None, {"rejectUnauthorized": False}, {"minVersion": "TLSv1.2"}])
def test_sidecar_contexts_release_idle_buffers(tls):
    mode = _mode(connection.ssl_context(tls))
    if mode is None:
        pytest.skip("SSLContext layout not the one this check knows")
    assert mode & SSL_MODE_RELEASE_BUFFERS
