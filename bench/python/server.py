#!/usr/bin/env python3
"""Benchmark server: a threaded HTTP/1.0 server (http.server, a thread per
connection, every connection closed after its reply) whose handler runs a few
Python frames deep, like an application's. usage: server.py PORT"""
import http.server
import json
import sys


def price_of(sku):
    return {"sku": sku, "price": 100 + len(sku)}


def render(path):
    return json.dumps([price_of(p) for p in path.strip("/").split("/") if p]).encode()


class Quotes(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"

    def do_GET(self):
        body = render(self.path)
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


class Server(http.server.ThreadingHTTPServer):
    request_queue_size = 256

    def handle_error(self, request, client_address):
        pass  # wrk closes its connections mid-reply when a run ends


server = Server(("127.0.0.1", int(sys.argv[1])), Quotes)
print("PORT", server.server_address[1], flush=True)
server.serve_forever()
