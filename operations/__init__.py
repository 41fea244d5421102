"""What keeps the portal running, on top of every app: the worker's tasks and ticker,
the per-site sync and status watcher, the job pages and the demo seed."""
