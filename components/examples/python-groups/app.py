"""A waedge plugin in Python, built with componentize-py from PyPI against wit/gateway.wit.

GET /py/{device}/groups with a tenant API token answers
{"language": "python", "device": ..., "user": ..., "groups": [subject, ...]} — the same
host interfaces (auth, whatsapp) a Rust plugin uses, through the standard
wasi:http/incoming-handler export.
"""

import json

from componentize_py_types import Err, Ok
from wit_world import exports
from wit_world.imports import auth, whatsapp
from wit_world.imports.wasi_http_types import (
    Fields,
    IncomingRequest,
    OutgoingBody,
    OutgoingResponse,
    ResponseOutparam,
)


def respond(response_out: ResponseOutparam, status: int, value: object) -> None:
    body = json.dumps(value, separators=(",", ":")).encode()
    response = OutgoingResponse(Fields.from_list([("content-type", b"application/json")]))
    response.set_status_code(status)
    outgoing = response.body()
    ResponseOutparam.set(response_out, Ok(response))
    with outgoing.write() as stream:
        stream.blocking_write_and_flush(body)
    OutgoingBody.finish(outgoing, None)


def error(response_out: ResponseOutparam, status: int, code: str, message: str) -> None:
    respond(response_out, status, {"error": {"code": code, "message": message}})


class IncomingHandler(exports.IncomingHandler):
    def handle(self, request: IncomingRequest, response_out: ResponseOutparam) -> None:
        path = (request.path_with_query() or "/").split("?")[0]
        segments = [s for s in path.split("/") if s]
        if len(segments) != 3 or segments[2] != "groups":
            return error(response_out, 404, "NOT_FOUND", f"no endpoint at `{path}`")
        device = segments[1]
        header = b"".join(request.headers().get("authorization")).decode(errors="replace")
        scheme, _, token = header.partition(" ")
        principal = auth.verify_token(token.strip()) if scheme.lower() == "bearer" else None
        if principal is None:
            return error(response_out, 401, "UNAUTHORIZED", "send a live API token: `Authorization: Bearer <token>`")
        if device not in principal.devices:
            return error(response_out, 403, "FORBIDDEN", f"this token may not use device `{device}`")
        try:
            with whatsapp.open_device(device) as opened:
                groups = opened.list_joined_groups()
        except Err as failure:
            return error(response_out, 502, "WHATSAPP_ERROR", repr(failure.value))
        respond(response_out, 200, {
            "language": "python",
            "device": device,
            "user": principal.user,
            "groups": [group.subject for group in groups],
        })
