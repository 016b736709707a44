"""A loopback OpenAI-compatible server for plumbing tests (answers from a function; can misbehave)."""
from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class FakeServer:
    """``raw(handler, path, body)``, when given, answers every POST itself (status, headers, bytes: the
    hostile-server tests); ``models`` is what ``GET /models`` lists (``None``: answer 404)."""

    def __init__(self, mode: str = "ok", fail_first: int = 0, raw=None, models=None):
        self.mode, self.fail_first, self.requests = mode, fail_first, []
        self.raw, self.models, self.gets = raw, models, []
        outer = self

        class H(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_GET(self):
                outer.gets.append(self.path)
                if outer.models is None or not self.path.endswith("/models"):
                    self.send_response(404)
                    self.end_headers()
                    return
                data = json.dumps({"object": "list", "data": outer.models}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                outer.requests.append((self.path, body))
                if outer.raw is not None:
                    try:
                        outer.raw(self, self.path, body)
                    except (BrokenPipeError, ConnectionResetError):  # the client gave up: fine
                        pass
                    return
                if outer.fail_first > 0:
                    outer.fail_first -= 1
                    self.send_response(503)
                    self.end_headers()
                    self.wfile.write(b"busy")
                    return
                if outer.mode == "malformed":
                    payload = {"foo": 1}
                elif outer.mode == "badrequest":
                    self.send_response(400)
                    self.end_headers()
                    self.wfile.write(b'{"error": "bad"}')
                    return
                else:
                    msgs = body.get("messages")
                    prompt = msgs[-1]["content"] if msgs else body["prompt"]
                    if isinstance(prompt, list):  # OpenAI content parts: echo the text, count the images
                        n_img = sum(p.get("type") == "image_url" for p in prompt)
                        prompt = " ".join(p["text"] for p in prompt if p.get("type") == "text") + f" images={n_img}"
                    text = f"echo {prompt} seed={body.get('seed')} t={body['temperature']}"
                    words = text.split()[: body["max_tokens"]]
                    text = " ".join(words)
                    for s in body.get("stop") or []:
                        if s in text:
                            text = text[: text.index(s)]
                    choice = ({"message": {"role": "assistant", "content": text}} if msgs else {"text": text})
                    choice["finish_reason"] = "length" if len(words) == body["max_tokens"] else "stop"
                    payload = {"choices": [choice], "usage": {"prompt_tokens": len(prompt.split()),
                                                               "completion_tokens": len(text.split())}}
                data = json.dumps(payload).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), H)
        if raw is not None:  # a hostile handler may still be dripping when the test ends: do not wait
            self.httpd.daemon_threads, self.httpd.block_on_close = True, False
        self.port = self.httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()
