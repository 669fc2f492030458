"""A webhook receiver for the tests of hosts.yml's notify: (unit and end to end): an HTTP server on 127.0.0.1 that
keeps every JSON body posted to it and answers with the codes it is given, or never (a receiver that hangs)."""
from __future__ import annotations

import http.server
import json
import threading
import time


class Receiver:
    """A webhook receiver on 127.0.0.1: answers each POST with the next of ``codes`` (200 after them), or
    never (``hang``); keeps what it got."""

    def __init__(self, codes=(), hang=False):
        self.got, self.codes, self.hang = [], list(codes), hang
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):   # noqa: N802 (http.server's name)
                receiver.got.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
                if receiver.hang:
                    time.sleep(5)
                    return
                self.send_response(receiver.codes.pop(0) if receiver.codes else 200)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook/T0K3N"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
