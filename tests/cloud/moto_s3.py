"""`moto_server` for the cloud tests: moto's S3 on 127.0.0.1, with one response fixed for pyarrow.

Run as `python moto_s3.py PORT`. moto 5.2.x (up to at least 5.2.5) names the root element of its
CompleteMultipartUpload answer `CompleteMultipartUploadResponse` instead of S3's `CompleteMultipartUploadResult`
(getmoto/moto#10055). pyarrow's S3 client takes any other root for an error embedded in a 200 answer, retries
and fails every upload. Real S3, MinIO and the fixed moto answer correctly; this wrapper renames the element
and serves everything else as moto_server does.
"""

from __future__ import annotations

import sys

from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from werkzeug.serving import run_simple

WRONG = b"CompleteMultipartUploadResponse"
RIGHT = b"CompleteMultipartUploadResult"


def fixed(app):
    """WSGI middleware: rename the root element of CompleteMultipartUpload answers, pass the rest through."""

    def wrapped(environ, start_response):
        if environ.get("REQUEST_METHOD") != "POST" or "uploadId" not in environ.get("QUERY_STRING", ""):
            return app(environ, start_response)
        answer = {}

        def capture(status, headers, exc_info=None):
            answer["status"], answer["headers"] = status, headers
            return lambda data: None

        chunks = app(environ, capture)
        try:
            body = b"".join(chunks).replace(WRONG, RIGHT)
        finally:
            getattr(chunks, "close", lambda: None)()
        headers = [(k, str(len(body)) if k.lower() == "content-length" else v) for k, v in answer["headers"]]
        start_response(answer["status"], headers)
        return [body]

    return wrapped


def main(port: int) -> None:
    run_simple(
        "127.0.0.1",
        port,
        fixed(DomainDispatcherApplication(create_backend_app)),
        threaded=True,
        request_handler=MotoRequestHandler,
    )


if __name__ == "__main__":
    main(int(sys.argv[1]))
