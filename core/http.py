"""Typed request and small HTMX helpers shared by every app's views."""

import csv
import io
from collections.abc import Iterable, Sequence
from typing import Any

from django import forms
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django_htmx.middleware import HtmxDetails
from drf_spectacular.utils import inline_serializer
from rest_framework.exceptions import ValidationError as ApiValidationError
from rest_framework.fields import IntegerField, URLField
from rest_framework.pagination import PageNumberPagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.serializers import Serializer


class AuthenticatedHttpRequest(HttpRequest):
    user: User
    htmx: HtmxDetails


def render_page(
    request: HttpRequest,
    template: str,
    context: dict[str, Any],
    *,
    partial: str | None = None,
    status: int = 200,
) -> HttpResponse:
    """Render the whole page, or only `template#partial` when HTMX asked for a fragment."""
    if partial and getattr(request, "htmx", False):
        return render(request, f"{template}#{partial}", context, status=status)
    return render(request, template, context, status=status)


def download_response(content: bytes | str, filename: str, content_type: str) -> HttpResponse:
    """A download: the browser saves it under `filename` and never shows it in a page."""
    response = HttpResponse(content, content_type=content_type)
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


def csv_response(filename: str, header: Sequence[Any], rows: Iterable[Sequence[Any]]) -> HttpResponse:
    """A table as a CSV download."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(header)
    writer.writerows(rows)
    return download_response(buffer.getvalue(), filename, "text/csv; charset=utf-8")


def api_validation_error(exc: ValidationError) -> ApiValidationError:
    """A service's ValidationError as the API's 400: per field where it names fields, else under "detail"."""
    return ApiValidationError(exc.message_dict if hasattr(exc, "error_dict") else {"detail": exc.messages})


def paginated(serializer: type[Serializer[Any]]) -> Serializer[Any]:
    """The OpenAPI shape of a page of `serializer` as PageNumberPagination answers it (function views have no
    paginator for the schema generator to find)."""
    name = serializer.__name__.removesuffix("Serializer")
    return inline_serializer(
        f"Paginated{name}List",
        {
            "count": IntegerField(),
            "next": URLField(allow_null=True),
            "previous": URLField(allow_null=True),
            "results": serializer(many=True),
        },
    )


def paginated_response(request: Request, items: Any, serializer: type[Serializer[Any]]) -> Response:
    """One page of `items` (a queryset or a list) as PageNumberPagination answers it: the shape `paginated`
    describes."""
    paginator = PageNumberPagination()
    page = paginator.paginate_queryset(items, request)
    return paginator.get_paginated_response(serializer(page, many=True).data)


def form_add_service_errors(form: forms.Form, exc: ValidationError) -> None:
    """A service's ValidationError on the form: each error on the field it names (a key `field/0/name`, a JSON
    pointer within it, goes on `field` with the pointer in front), the others above the form."""
    if not hasattr(exc, "error_dict"):
        form.add_error(None, exc)
        return
    for key, errors in exc.message_dict.items():
        name = key.split("/")[0]
        prefix = f"{key}: " if key != name else ""
        form.add_error(name if name in form.fields else None, [prefix + e for e in errors])
