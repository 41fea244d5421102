"""The portal's mirror of the clouds: what every app's sync and refresh share.

One concern per module (import from the module, not from the package):

- rows: the abstract MirrorRow every mirror table extends, and a row's fingerprint;
- authorship: who made a cloud object through the portal, and the metadata hint;
- projects: the site's project id map and the refresh of project names;
- listing: reading a cloud listing as it arrives (batches, the newest change seen);
- upsert: writing a listing or one object into a mirror table, race-free;
- writer_thread: the thread a sync's big batches are written from;
- bulk_load: one set-based statement per chunk of rows, for SQLite and PostgreSQL;
- sqlite: SQLite's settings while a writer writes many rows, and planner statistics;
- freshness: whether the status watcher keeps a site's mirror current.
"""
