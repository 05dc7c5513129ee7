"""A fake GitHub Actions OIDC token endpoint on loopback, for actions/tests/test-actions.sh.

Serves GET /token?audience=A with `Authorization: bearer <request token>` and answers {"value": "<jwt>"}.
Prints the port on stdout, logs each request's audience to the file given as argv[2].
"""
import http.server
import json
import signal
import sys
import urllib.parse

REQUEST_TOKEN = sys.argv[1]
LOG = sys.argv[2]


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        url = urllib.parse.urlparse(self.path)
        audience = urllib.parse.parse_qs(url.query).get("audience", [""])[0]
        with open(LOG, "a") as log:
            log.write(f"{url.path} audience={audience} auth={self.headers.get('Authorization')}\n")
        if self.headers.get("Authorization") != f"bearer {REQUEST_TOKEN}":
            self.send_response(401)
            self.end_headers()
            return
        body = json.dumps({"count": 1, "value": f"eyJhbGciOiJSUzI1NiJ9.fake-{audience}.sig"}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


# A parent that ignores SIGTERM (some test runners do) must not make this server unkillable.
signal.signal(signal.SIGTERM, signal.SIG_DFL)
signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})
server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
print(server.server_address[1], flush=True)
server.serve_forever()
