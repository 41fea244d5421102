"""gunicorn's settings for the portal: `gunicorn -c config/gunicorn.conf.py config.wsgi`
(README's production notes). Measured with bench/load_bench.py (50 users, one page
every 2 s each, while 200 snapshot jobs run) on a 2-core machine that also runs the
Celery worker and PostgreSQL.

Two processes per core, two threads each (4 x 2 on 2 cores). A page's ~9 queries
each hand back to a thread that must take the GIL again, and while another thread of
the same process renders a page it waits a switch interval (5 ms), often several.
Under the load below a page waited 26-29 ms in its queries with 8 threads a process
and 14-17 ms with 2 (PostgreSQL answers each in ~0.5 ms), at the same ~27-28 ms of
CPU; when requests came in bursts, ~140 ms against ~50 ms. One thread a process
(8 x 1) queues requests behind a busy process instead (a kept-alive connection stays
with its process). Two threads let a process take a second request while the first
waits, at little GIL cost.

Measured on a quiet 2-core machine in one sitting (2026-12-06) with
bench/load_bench.py (50 users, one page every 2 s each, 200 snapshot jobs at the
start, 120 s; the worker, PostgreSQL, devcloud and locust on the same cores),
alternating; p50 / p95 / p99 in ms:
- 2 x 8: 53/215/583, 46/222/517 (pages while the jobs ran: p99 858, 975)
- 4 x 2: 47/175/404, 43/143/339 (p99 649, 530)
4 x 2 holds up to 8 PostgreSQL connections (CONN_MAX_AGE keeps them) and ~530 MiB
of RSS against ~300 MiB for 2 x 8.

The same sitting, before the bench's users were spread over the 2 s (they asked in
two bursts of ~24 every 2 s; see bench/locust/portal_pages.py), so these compare
only among themselves:
- no jobs, 60 s: 2 x 8 250/490/590, 211/390/521, 229/406/465; 4 x 4 190/325/404,
  223/375/432, 231/404/490; 4 x 2 176/321/387, 197/361/442; 8 x 1 165/302/354,
  178/333/385; 6 x 2 206/362/416; 8 x 2 216/372/432; gunicorn's sync workers (no
  keep-alive, a free process accepts; 6, 8, 10 processes) 212/378/423,
  216/368/463, 235/399/496.
- 200 jobs, 120 s: 2 x 8 301/598/778, 254/630/1,221; 4 x 2 231/420/549,
  256/450/631, 188/439/581; 8 x 1 238/447/556, 320/667/1,117.
Every set-up finished all 200 jobs 22-26 s after they were submitted. An earlier
sitting chose 2 x 8 on a machine shared with other benches (load 4-16), where 4 x 4
let 44 of 200 jobs finish in a minute and 4 x 1 queued requests for seconds;
neither held on a quiet machine. Earlier still, 4 sync workers against 2 x 4 (no
jobs, 45 s): p50/p95/p99 400/1,100/1,700 ms against 250/690/870 ms.

Where a request's time goes under load (the load bench's breakdown, from timing
hooks in these processes; the runs above, means): with 2 x 8, 67-71 ms inside
gunicorn, 26-29 ms of it waiting in its ~9 queries; with 4 x 2, 50-55 ms inside,
14-17 ms in queries; 6-9 ms before a thread took it in both. Python's GIL switch
interval was tried at 0.5 ms (default 5 ms; `bench/load_bench.py --switch-interval`)
in alternating runs on a busy machine: p95 940 / 1,700 ms at 5 ms against 1,300 /
1,200 ms at 0.5 ms, with ~10 % more CPU per request; and at 1 ms on a quiet one (2 x
8, no jobs, users in bursts): 333/627/755 ms against 250/490/590 and 211/390/521 at
5 ms. Not kept: the default stands, and fewer threads a process do what it was meant
to.

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
workers = int(os.environ.get("WEB_CONCURRENCY", 2 * multiprocessing.cpu_count()))
worker_class = "gthread"
threads = int(os.environ.get("GUNICORN_THREADS", "2"))
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
