"""Refuse text no database column can hold before any view sees it."""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest, QueryDict

JSON_NUL = (b"\\u0000", b"\x00")


class RefuseNulBytesMiddleware:
    """A NUL character in a query parameter, a form field or a JSON body is a 400 that says where.

    PostgreSQL text cannot contain NUL, so such a value would otherwise fail deep inside a query as a
    server error. Uploaded files are not affected: their bytes are never text in a column.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        for where, params in (("query parameter", request.GET), ("form field", _form(request))):
            for key, values in params.lists():
                if "\x00" in key or any("\x00" in value for value in values):
                    return _refuse(f"The {where} {key.replace(chr(0), '\\0')!r} contains a NUL character.")
        if request.META.get("CONTENT_TYPE", "").startswith("application/json") and any(
            nul in request.body for nul in JSON_NUL
        ):
            return _refuse("The JSON body contains a NUL character (\\u0000).")
        return self.get_response(request)


def _refuse(message: str) -> HttpResponse:
    return HttpResponseBadRequest(f"{message} No text can hold it.", content_type="text/plain; charset=utf-8")


def _form(request: HttpRequest) -> QueryDict:
    content_type = request.META.get("CONTENT_TYPE", "")
    if request.method == "POST" and content_type.startswith(
        ("application/x-www-form-urlencoded", "multipart/form-data")
    ):
        return request.POST
    return QueryDict()
