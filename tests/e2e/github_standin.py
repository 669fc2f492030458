"""A stand-in for the GitHub API's /user endpoint, run by the tests inside a sandbox host's network namespace
(on its own 127.0.0.1): answers with the two headers token-status reads. Usage: PORT EXPIRY SCOPES"""
import sys
from http.server import BaseHTTPRequestHandler, HTTPServer

port, expiry, scopes = int(sys.argv[1]), sys.argv[2], sys.argv[3]


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        if not self.headers.get("Authorization", "").startswith("token "):
            self.send_response(401)
            self.end_headers()
            return
        self.send_response(200)
        if expiry != "none":
            self.send_header("GitHub-Authentication-Token-Expiration", expiry)
        self.send_header("X-OAuth-Scopes", scopes)
        self.end_headers()

    def log_message(self, *args):
        pass


HTTPServer(("127.0.0.1", port), Handler).serve_forever()
