"""A stand-in for the GitHub API, run by the tests inside a sandbox host's network namespace (on its own
127.0.0.1), over HTTPS with the certificate STEM.crt (signed by the sandbox's CA, which the sandbox hosts trust;
"-" for plain HTTP): /user answers with the two headers token-status and the deploy's token gate read; POST
/credentials/revoke (rotate-token --revoke-old) answers 202 and appends each body it got to REVOKED (a file the
test reads). Usage: PORT STEM EXPIRY SCOPES [REVOKED]"""
import ssl
import sys
from http.server import BaseHTTPRequestHandler, HTTPServer

port, stem, expiry, scopes = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
revoked = sys.argv[5] if len(sys.argv) > 5 else None


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

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        if self.path != "/credentials/revoke" or revoked is None:
            self.send_response(404)
        else:
            with open(revoked, "ab") as f:
                f.write(body + b"\n")
            self.send_response(202)
        self.end_headers()

    def log_message(self, *args):
        pass


server = HTTPServer(("127.0.0.1", port), Handler)
if stem != "-":
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(f"{stem}.crt", f"{stem}.key")
    server.socket = context.wrap_socket(server.socket, server_side=True)
server.serve_forever()
