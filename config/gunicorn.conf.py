"""gunicorn's settings for the portal: `gunicorn -c config/gunicorn.conf.py config.wsgi`
(README's production notes). Measured with bench/load_bench.py (50 users, one page
every 2 s each, while 200 snapshot jobs run) on a 2-core machine that also runs the
Celery worker and PostgreSQL.

A page spends part of its time waiting for PostgreSQL; threads fill that wait with
another request, so a few processes with threads keep the cores busy where sync
workers would queue requests behind a worker that is only waiting. More processes
than that only add memory and contend for the same two cores. Measured back to
back (50 users, no jobs, 45 s, on a shared machine): 4 sync workers p50/p95/p99
400/1,100/1,700 ms and 514 MiB; 2 processes x 4 threads 250/690/870 ms and 277 MiB,
at the same 25 requests/s and CPU per request (27 / 26 ms).
"""

import multiprocessing
import os

bind = os.environ.get("GUNICORN_BIND", "127.0.0.1:8000")
# WEB_CONCURRENCY (gunicorn's own variable, also read by platforms) overrides it.
workers = int(os.environ.get("WEB_CONCURRENCY", multiprocessing.cpu_count()))
worker_class = "gthread"
threads = int(os.environ.get("GUNICORN_THREADS", "4"))
# A worker is replaced after this many requests (jittered, so not all at once): a
# slow leak in any library cannot grow a process for the life of a release.
max_requests = 5000
max_requests_jitter = 500
# Longer than the TLS proxy keeps an idle upstream connection (nginx: 60 s), so the
# proxy closes it first: closed by gunicorn while the proxy sends the next request
# on it, the request fails (gunicorn's 2 s default did this to one request in a
# hundred of the load bench's users, who ask every 2 s).
keepalive = 75
# Behind the TLS proxy, which holds slow clients; a page never waits on OpenStack,
# so a request busy for this long is stuck and its worker is better restarted.
timeout = 30
graceful_timeout = 30
