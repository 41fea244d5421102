"""A site that hangs: it accepts connections, reads the request, and never answers
(packets dropped past the handshake). Every call there waits for its timeout."""

from __future__ import annotations

import socket
import threading


class HungServer:
    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.held: list[socket.socket] = []
        self.accepted = 0
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._accept, daemon=True)

    def __enter__(self) -> HungServer:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stopping.set()
        self.listener.close()
        for conn in self.held:
            conn.close()

    def _accept(self) -> None:
        while not self.stopping.is_set():
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            self.accepted += 1
            self.held.append(conn)  # never read from, never answered, kept open

    def clouds_yaml(self, path, *, name: str) -> str:
        path.write_text(
            f"clouds:\n  {name}:\n    auth:\n      auth_url: http://127.0.0.1:{self.port}/identity\n"
            "      username: a\n      password: b\n      project_name: c\n"
            "      user_domain_name: Default\n      project_domain_name: Default\n"
            "    identity_api_version: 3\n"
        )
        return str(path)
