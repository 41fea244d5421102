"""gunicorn's settings for the portal: `gunicorn -c config/gunicorn.conf.py config.wsgi`
(README's production notes). Measured with bench/load_bench.py (50 users, one page
every 2 s each, while 200 snapshot jobs run) on a 2-core machine that also runs the
Celery worker and PostgreSQL.

A page spends part of its time waiting for PostgreSQL (8-14 queries, each a round
trip); threads fill that wait with another request, so a few processes with threads
keep the cores busy where sync workers would queue requests behind a worker that is
only waiting. More processes than one per core only add memory and take the cores
from the worker: 4 processes x 4 threads let 44 of 200 jobs finish in the minute
where 2 x 8 let 200 finish. One thread per process (4 x 1) queued requests behind
the waits: p95 16 s against 4.5 s for 2 x 4 in the same sitting. Between 2 x 4 and
2 x 8, run alternately in one sitting (a shared machine, load 4-16, so the latencies
are only comparable pairwise): p95 5.9 s / 5.9 s with 4 threads against 1.7 s /
3.0 s / 4.0 s with 8, at the same CPU per request one at a time (26-28 ms) and less
under load (31-34 ms against 37-39). Hence a process per core and 8 threads each:
the web then holds up to 2 x 8 PostgreSQL connections (CONN_MAX_AGE keeps them).
Earlier, 4 sync workers against 2 x 4 (no jobs, 45 s): p50/p95/p99 400/1,100/1,700
ms and 514 MiB against 250/690/870 ms and 277 MiB.

Where a request's time goes under load (the load bench's breakdown, from timing hooks
in these processes): inside gunicorn a request spends ~25 ms on the CPU but ~300 ms
in all, most of it waiting in its ~11 queries (each round trip ends with the thread
waiting for the GIL and a core again) and the rest waiting for the GIL between them;
then up to a few hundred ms before a thread takes it. Python's GIL switch interval
was tried at 0.5 ms (default 5 ms; `bench/load_bench.py --switch-interval 0.5`) in
alternating runs on a busy machine: p95 940 / 1,700 ms at 5 ms against 1,300 / 1,200
ms at 0.5 ms, with ~10 % more CPU per request and twice the wait between queries. Not
kept: the default stands.

A kept-alive connection stays with the process that accepted it, and the bench's 50
users often sat unevenly (1,053 / 289 requests per process in one run, 968 / 496 in
another), one process's threads all busy while the other idled. Closing every 10th
answer's connection alone did not even it out: the processes share one listening
socket, and whichever accepts first takes the reconnect (839 / 581; p95 2,400 / 2,700
ms against 1,200 / 2,600 without, busy machine). With `reuse_port` each process
listens on its own socket and the kernel spreads new connections over them by a hash
of the client's address and port, so every reconnect lands on a process at random.
Both together, in alternating 40 s runs without jobs (busy machine, load 4-8): p95 /
p99 540 / 610 and 500 / 610 ms against 660 / 880 and 600 / 840 ms with the reconnects
alone.
"""

import multiprocessing
import os

bind = os.environ.get("GUNICORN_BIND", "127.0.0.1:8000")
# WEB_CONCURRENCY (gunicorn's own variable, also read by platforms) overrides it.
workers = int(os.environ.get("WEB_CONCURRENCY", multiprocessing.cpu_count()))
worker_class = "gthread"
threads = int(os.environ.get("GUNICORN_THREADS", "8"))
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

# A kept-alive connection stays with the process that accepted it (see above): every
# REQUESTS_PER_CONNECTION-th answer on a connection says "Connection: close" (in the
# answer itself, so the client never sends on a connection the server is closing),
# and with reuse_port the kernel hands the client's next connection to a process
# chosen by its new port's hash. 0 keeps connections open. A process that is
# replaced (max_requests) drops the connections still queued on its own socket
# unless the kernel moves them: README's production notes set
# net.ipv4.tcp_migrate_req = 1 (Linux 5.14 and later).
reuse_port = True
REQUESTS_PER_CONNECTION = int(os.environ.get("GUNICORN_REQUESTS_PER_CONNECTION", "10"))


def pre_request(worker, req):
    if REQUESTS_PER_CONNECTION and req.req_number % REQUESTS_PER_CONNECTION == 0:
        req.must_close = True
