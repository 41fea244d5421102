"""Django's PostgreSQL backend, but the health check before a kept connection is reused
(CONN_HEALTH_CHECKS) asks the socket before it asks the server.

Django checks a kept connection with a `SELECT 1` at the first query of every request
and every task: one round trip more per page, and under load each round trip ends with
the thread waiting for the GIL and a core again (~14 ms at the load bench's 25 pages/s,
0.2 ms alone). A healthy idle connection has nothing to read; a server that restarted
or ended the backend (pg_terminate_backend, an idle timeout) has sent its FATAL notice
and closed the socket, which makes it readable. So an idle socket with nothing to read
is taken as usable without asking, and anything else (data waiting, the end of the
stream, a connection in a transaction or broken) gets Django's own `SELECT 1`, which
drops the connection when it fails. A host that vanished without closing the socket
(no FIN, no RST) passes this check where `SELECT 1` would have hung until TCP gave up:
the query then fails once and Django drops the connection at the end of the request.
"""

from __future__ import annotations

import select

from django.db.backends.postgresql import base
from psycopg import pq


class DatabaseWrapper(base.DatabaseWrapper):
    def is_usable(self) -> bool:
        connection = self.connection
        if connection is None:
            return False
        if connection.closed or connection.broken:
            return False
        if connection.pgconn.transaction_status == pq.TransactionStatus.IDLE:
            # poll(), not select(): select() refuses descriptors past 1023, which a
            # process with many connections and files open reaches.
            socket_events = select.poll()
            try:
                socket_events.register(connection.fileno(), select.POLLIN)
                quiet = not socket_events.poll(0)
            except (OSError, ValueError):
                quiet = False  # ask the server, as Django does
            if quiet:
                return True
        return super().is_usable()
