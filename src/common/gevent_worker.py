"""Gunicorn's gevent worker, with an inactivity timeout on every request's body and response.

One greenlet serves each connection, so a client that stalls holds a few KiB, not a thread.
The headers of each request must arrive within gunicorn's ``keepalive`` seconds (its gevent
worker already bounds that). Then every read of the body and every write of a response block
must make progress within ``client_timeout`` seconds: a slow upload that keeps sending is never
cut, a silent one gets 408 and its connection is closed, as is one that stops reading.
"""

import contextlib

from gunicorn.workers import ggevent
from werkzeug.exceptions import RequestTimeout


class _Body:
    """A request body whose reads turn a client's silence into 408 and a closing connection."""

    def __init__(self, body, req, timeout):
        self._body, self._req, self._timeout = body, req, timeout

    def _call(self, method, *args):
        try:
            return method(*args)
        except TimeoutError:
            self._req.must_close = True
            raise RequestTimeout(f"nothing received for {self._timeout} s: "
                                 "the connection is closed") from None

    def read(self, size=None):
        return self._call(self._body.read, size)

    def readline(self, size=None):
        return self._call(self._body.readline, size)

    def readlines(self, size=None):
        return self._call(self._body.readlines, size)

    def __iter__(self):
        return self

    def __next__(self):
        line = self.readline()
        if not line:
            raise StopIteration
        return line


class GeventWorker(ggevent.GeventWorker):
    """gevent worker whose requests time out on ``client_timeout`` seconds of inactivity."""

    client_timeout: float | None = None  # set by common.gunicorn_conf.post_fork

    def handle_request(self, listener_name, req, sock, addr):
        """Serve one request with the socket's timeout set for its body and its response."""
        body = req.body
        req.body = _Body(body, req, self.client_timeout)
        sock.settimeout(self.client_timeout)
        try:
            super().handle_request(listener_name, req, sock, addr)
        except TimeoutError:  # a response write: the client stopped reading
            self.log.info("client read nothing for %s s: connection closed", self.client_timeout)
            raise StopIteration() from None
        finally:
            req.body = body
            with contextlib.suppress(OSError):
                sock.settimeout(None)  # the next request's headers: bounded by keepalive
