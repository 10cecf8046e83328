"""A loopback HTTP server for download tests: serves files with Range support and injected faults."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


class FileServer:
    """Serves ``files`` ({url path: bytes}) on 127.0.0.1; ``cut_after`` drops a response mid-way.

    ``redirects`` ({url path: (location, headers)}) answers GET and HEAD with a 302 carrying those
    headers, as Hugging Face's ``/resolve/`` does for LFS files; ``headers`` ({url path: headers})
    adds headers to a file's own answer (a git file's ``ETag``)."""

    def __init__(self, files: dict[str, bytes]) -> None:
        self.files = dict(files)
        self.cut_after: int | None = None
        self.honour_range = True
        self.requests: list[tuple[str, str | None]] = []
        self.redirects: dict[str, tuple[str, dict[str, str]]] = {}
        self.headers: dict[str, dict[str, str]] = {}
        self.heads: list[str] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # keep test output clean
                pass

            def _redirect(self) -> bool:
                if self.path not in server.redirects:
                    return False
                location, headers = server.redirects[self.path]
                self.send_response(302)
                self.send_header("Location", location)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return True

            def _file_headers(self, length: int) -> None:
                for key, value in server.headers.get(self.path, {}).items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(length))
                self.end_headers()

            def _body_or_answered(self) -> bytes | None:
                """The served file's bytes, or None once a redirect or a 404 has been sent."""
                if self._redirect():
                    return None
                body = server.files.get(self.path)
                if body is None:
                    self.send_error(404)
                return body

            def do_HEAD(self) -> None:
                server.heads.append(self.path)
                body = self._body_or_answered()
                if body is None:
                    return
                self.send_response(200)
                self._file_headers(len(body))

            def do_GET(self) -> None:
                header = self.headers.get("Range")
                server.requests.append((self.path, header))
                body = self._body_or_answered()
                if body is None:
                    return
                start = 0
                if header and server.honour_range:
                    start = int(header.split("=")[1].split("-")[0])
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
                else:
                    self.send_response(200)
                payload = body[start:]
                self._file_headers(len(payload))
                if server.cut_after is not None:
                    self.wfile.write(payload[: server.cut_after])
                    self.wfile.flush()
                    self.connection.shutdown(2)
                    return
                self.wfile.write(payload)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> "FileServer":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


def serve_folder(folder: Path) -> FileServer:
    return FileServer({f"/{p.name}": p.read_bytes() for p in folder.iterdir() if p.is_file()})
