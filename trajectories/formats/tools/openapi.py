"""OpenAPI 3.0 and 3.1 documents: each operation becomes a tool.

* Name: the `operationId`, else `<method>_<path>` with every run of other characters turned
  into `_` (`GET /pets/{petId}` → `get_pets_petId`).
* Parameters: path-level and operation-level parameters (the operation's win on the same name
  and place) plus the JSON request body, merged into one object schema. Path parameters are
  always required, others when they say `required: true`. Cookie parameters and the Accept,
  Content-Type and Authorization headers are left out (OpenAPI ignores those three too). An
  object body's properties join the parameters at the top level (its `required` list too,
  unless the request body says `required: false`); a body that is not a plain object, or whose
  property names clash with a parameter, becomes one argument named `body`.
* Returns: the schema of the first 2xx response (lowest code, then `2XX`) with JSON content.
* Side effects: `x-side-effects` on the operation, else by method: GET, HEAD, OPTIONS, TRACE →
  read; POST, PUT, PATCH → write; DELETE → destructive. `x-latency-p99-ms` sets the latency.
* `$ref`s (local, `#/…` JSON pointers) are resolved, nested ones too. A ref that leads back into
  itself is kept as a ref into the tool schema's own `$defs`, so recursive types stay exact and
  finite. Expansion is bounded (depth and total size), so a hostile document cannot blow up.
* OpenAPI 3.0 schemas are turned into JSON Schema 2020-12: `nullable: true` becomes a type union
  with "null" (or an `anyOf` with `{"type": "null"}` where there is no `type`), boolean
  `exclusiveMinimum` / `exclusiveMaximum` become numbers. 3.1 schemas are JSON Schema already.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import unquote

from trajectories.formats.tools.base import ToolSpec, located, metadata_of, pointer_join, text_of

METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
SIDE_EFFECTS_BY_METHOD = {
    "get": "read",
    "head": "read",
    "options": "read",
    "trace": "read",
    "post": "write",
    "put": "write",
    "patch": "write",
    "delete": "destructive",
}
IGNORED_HEADERS = frozenset({"accept", "content-type", "authorization"})
MAX_DEPTH = 100
MAX_NODES = 100_000
# Keywords whose values are data, not schemas: never walked for $refs.
DATA_KEYS = frozenset({"example", "examples", "default", "enum", "const", "discriminator", "xml", "externalDocs"})
# Keywords whose values map names to schemas.
MAP_KEYS = frozenset({"properties", "patternProperties", "$defs", "definitions", "dependentSchemas"})
# Keywords a $ref may sit beside and simply annotate (overlaid on the resolved schema).
ANNOTATION_KEYS = frozenset(
    {
        "description",
        "title",
        "summary",
        "default",
        "examples",
        "example",
        "deprecated",
        "readOnly",
        "writeOnly",
        "nullable",
    }
)
# What an object body may hold and still be merged into the parameters at the top level.
MERGEABLE_BODY_KEYS = frozenset({"type", "properties", "required", "description", "title", "additionalProperties"})
_NOT_NAME = re.compile(r"[^A-Za-z0-9]+")


class _Budget:
    def __init__(self) -> None:
        self.nodes = 0


class _Inliner:
    """Resolves $refs into one self-contained schema; recursive refs go to the schema's `$defs`."""

    def __init__(self, document: dict[str, Any], *, openapi30: bool, budget: _Budget) -> None:
        self.document = document
        self.openapi30 = openapi30
        self.budget = budget
        self.defs: dict[str, Any] = {}
        self.def_names: dict[str, str] = {}
        self.pending: list[str] = []

    def lookup(self, ref: str, at: str) -> Any:
        if not ref.startswith("#"):
            raise located(f"$ref {ref!r} points outside the document; bundle the document first", at)
        fragment = unquote(ref[1:])
        if fragment and not fragment.startswith("/"):
            raise located(f"$ref {ref!r}: only JSON-pointer refs ('#/…') are supported", at)
        node: Any = self.document
        for raw in fragment.split("/")[1:]:
            part = raw.replace("~1", "/").replace("~0", "~")
            if isinstance(node, dict) and part in node:
                node = node[part]
            elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
                node = node[int(part)]
            else:
                raise located(f"$ref {ref!r} points at nothing in the document", at)
        return node

    def deref(self, node: Any, at: str) -> tuple[Any, str]:
        """Follow $refs of a non-schema object (parameter, request body, response, path item)."""
        seen: set[str] = set()
        while isinstance(node, dict) and isinstance(node.get("$ref"), str):
            ref = node["$ref"]
            if ref in seen:
                raise located(f"$ref cycle through {ref!r}", at)
            seen.add(ref)
            node = self.lookup(ref, pointer_join(at, "$ref"))
            at = unquote(ref[1:])
        return node, at

    def def_name(self, ref: str) -> str:
        name = self.def_names.get(ref)
        if name is None:
            base = unquote(ref).rsplit("/", 1)[-1].replace("~1", "/").replace("~0", "~") or "def"
            name, n = base, 1
            taken = set(self.def_names.values())
            while name in taken:
                n += 1
                name = f"{base}_{n}"
            self.def_names[ref] = name
            self.pending.append(ref)
        return name

    def schema(self, node: Any, at: str, stack: tuple[str, ...] = (), depth: int = 0) -> Any:
        self.budget.nodes += 1
        if self.budget.nodes > MAX_NODES:
            raise located(f"the schemas grow past {MAX_NODES:,} nodes when $refs are resolved", at)
        if depth > MAX_DEPTH:
            raise located(f"schemas nest deeper than {MAX_DEPTH} levels (with $refs resolved)", at)
        if not isinstance(node, dict):
            return node
        out: dict[str, Any]
        ref = node.get("$ref")
        if isinstance(ref, str):
            if ref in stack:
                target: Any = {"$ref": "#/$defs/" + self.def_name(ref)}
            else:
                resolved = self.lookup(ref, pointer_join(at, "$ref"))
                target = self.schema(resolved, unquote(ref[1:]), (*stack, ref), depth + 1)
            siblings = self._walk({k: v for k, v in node.items() if k != "$ref"}, at, stack, depth)
            if not siblings:
                return target
            if isinstance(target, dict) and "$ref" not in target and set(siblings) <= ANNOTATION_KEYS:
                out = {**target, **siblings}
            else:
                out = {"allOf": [target], **siblings}
        else:
            out = self._walk(node, at, stack, depth)
        return self._from_openapi30(out) if self.openapi30 else out

    def _walk(self, node: dict[str, Any], at: str, stack: tuple[str, ...], depth: int) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in node.items():
            here = pointer_join(at, key)
            if key in DATA_KEYS:
                out[key] = value
            elif key in MAP_KEYS and isinstance(value, dict):
                out[key] = {
                    name: self.schema(sub, pointer_join(here, name), stack, depth + 1) for name, sub in value.items()
                }
            elif isinstance(value, dict):
                out[key] = self.schema(value, here, stack, depth + 1)
            elif isinstance(value, list) and key in ("allOf", "anyOf", "oneOf", "prefixItems", "items"):
                out[key] = [self.schema(sub, pointer_join(here, i), stack, depth + 1) for i, sub in enumerate(value)]
            else:
                out[key] = value
        return out

    @staticmethod
    def _from_openapi30(out: dict[str, Any]) -> dict[str, Any]:
        for flag_key, bound_key in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
            flag = out.get(flag_key)
            if isinstance(flag, bool):
                if flag and bound_key in out:
                    out[flag_key] = out.pop(bound_key)
                else:
                    del out[flag_key]
        if "nullable" not in out:
            return out
        if out.pop("nullable") is not True:
            return out
        kind = out.get("type")
        if isinstance(kind, str):
            out["type"] = [kind, "null"]
        elif isinstance(kind, list):
            if "null" not in kind:
                out["type"] = [*kind, "null"]
        else:
            return {"anyOf": [out, {"type": "null"}]}
        enum = out.get("enum")
        if isinstance(enum, list) and None not in enum:
            out["enum"] = [*enum, None]
        return out

    def finish(self, root: dict[str, Any]) -> dict[str, Any]:
        """`root` with the `$defs` recursive refs point into."""
        while self.pending:
            ref = self.pending.pop(0)
            at = unquote(ref[1:])
            self.defs[self.def_names[ref]] = self.schema(self.lookup(ref, at), at, (ref,), 1)
        if self.defs:
            root["$defs"] = self.defs
        return root


def _pick_media(content: Any, at: str) -> tuple[Any, str]:
    """The schema of the JSON media type (else a form type, else the first one with a schema)."""
    if not isinstance(content, dict):
        return None, at
    ranked = sorted(
        content,
        key=lambda mt: (
            0
            if mt.split(";")[0].strip() == "application/json"
            else 1
            if mt.split(";")[0].strip().endswith("+json")
            else 2
            if mt.split(";")[0].strip() in ("application/x-www-form-urlencoded", "multipart/form-data")
            else 3
        ),
    )
    for media_type in ranked:
        media = content[media_type]
        if isinstance(media, dict) and "schema" in media:
            return media["schema"], pointer_join(at, "content", media_type, "schema")
    return None, at


def _fallback_name(method: str, path: str) -> str:
    return f"{method}_{_NOT_NAME.sub('_', path).strip('_')}".rstrip("_")


class OpenAPIFormat:
    name = "openapi"
    label = "OpenAPI 3.0 / 3.1 document"

    def detect(self, document: Any) -> int:
        if isinstance(document, dict):
            version = document.get("openapi")
            if isinstance(version, str) and version.startswith("3."):
                return 100
            if "swagger" in document and "paths" in document:
                return 60  # recognised, then refused with a clear message
        return 0

    def parse(self, document: Any) -> list[ToolSpec]:
        if not isinstance(document, dict):
            raise located("an OpenAPI document is a JSON object", "")
        version = document.get("openapi")
        if not isinstance(version, str) or not version.startswith(("3.0", "3.1")):
            found = f"swagger {document['swagger']!r}" if "swagger" in document else f"openapi {version!r}"
            raise located(f"only OpenAPI 3.0 and 3.1 are supported, this is {found}; convert it first", "/openapi")
        paths = document.get("paths") or {}
        if not isinstance(paths, dict):
            raise located("`paths` must be an object", "/paths")
        budget = _Budget()
        openapi30 = version.startswith("3.0")
        specs = []
        for path, raw_item in paths.items():
            item_at = pointer_join("/paths", path)
            item, _ = _Inliner(document, openapi30=openapi30, budget=budget).deref(raw_item, item_at)
            if not isinstance(item, dict):
                raise located("a path item must be an object", item_at)
            for method in METHODS:
                if method not in item:
                    continue
                operation = item[method]
                op_at = pointer_join(item_at, method)
                if not isinstance(operation, dict):
                    raise located("an operation must be an object", op_at)
                specs.append(
                    self._operation(document, openapi30, budget, path, method, item, operation, item_at, op_at)
                )
        if not specs:
            raise located("the document has no operations under `paths`", "/paths")
        return specs

    def _operation(
        self,
        document: dict[str, Any],
        openapi30: bool,
        budget: _Budget,
        path: str,
        method: str,
        item: dict[str, Any],
        operation: dict[str, Any],
        item_at: str,
        op_at: str,
    ) -> ToolSpec:
        inliner = _Inliner(document, openapi30=openapi30, budget=budget)
        properties, required = self._parameters(inliner, item, operation, item_at, op_at)
        self._body(inliner, operation, op_at, properties, required)
        parameters: dict[str, Any] = {"type": "object", "properties": properties}
        if required:
            parameters["required"] = required
        operation_id = operation.get("operationId")
        name = operation_id.strip() if isinstance(operation_id, str) and operation_id.strip() else ""
        summary, description = text_of(operation.get("summary")), text_of(operation.get("description"))
        meta = metadata_of(operation)
        return ToolSpec(
            name=name or _fallback_name(method, path),
            description="\n\n".join(t for t in dict.fromkeys((summary.strip(), description.strip())) if t),
            parameters=inliner.finish(parameters),
            returns=self._returns(document, openapi30, budget, operation, op_at),
            side_effects=meta.get("side_effects", SIDE_EFFECTS_BY_METHOD[method]),
            latency_p99_ms=meta.get("latency_p99_ms"),
            pointer=op_at,
        )

    def _parameters(
        self, inliner: _Inliner, item: dict[str, Any], operation: dict[str, Any], item_at: str, op_at: str
    ) -> tuple[dict[str, Any], list[str]]:
        merged: dict[tuple[str, str], tuple[dict[str, Any], str]] = {}
        for list_at, listed in (
            (pointer_join(item_at, "parameters"), item.get("parameters")),
            (pointer_join(op_at, "parameters"), operation.get("parameters")),
        ):
            if listed is None:
                continue
            if not isinstance(listed, list):
                raise located("`parameters` must be a list", list_at)
            for index, raw in enumerate(listed):
                param, at = inliner.deref(raw, pointer_join(list_at, index))
                if (
                    not isinstance(param, dict)
                    or not isinstance(param.get("name"), str)
                    or param.get("in") not in ("path", "query", "header", "cookie")
                ):
                    raise located("a parameter needs a `name` and `in` (path, query, header or cookie)", at)
                merged[(param["name"], param["in"])] = (param, at)
        properties: dict[str, Any] = {}
        required: list[str] = []
        for (name, place), (param, at) in merged.items():
            if place == "cookie" or (place == "header" and name.lower() in IGNORED_HEADERS):
                continue
            if name in properties:
                raise located(f"two parameters are named {name!r}; a tool's arguments need distinct names", at)
            source, source_at = param.get("schema"), pointer_join(at, "schema")
            if source is None:
                source, source_at = _pick_media(param.get("content"), at)
            schema = inliner.schema(source, source_at) if source is not None else {}
            note = param.get("description")
            if isinstance(schema, dict) and isinstance(note, str) and note and "description" not in schema:
                schema = {**schema, "description": note}
            properties[name] = schema
            if place == "path" or param.get("required") is True:
                required.append(name)
        return properties, required

    def _body(
        self, inliner: _Inliner, operation: dict[str, Any], op_at: str, properties: dict[str, Any], required: list[str]
    ) -> None:
        if "requestBody" not in operation:
            return
        body_object, body_at = inliner.deref(operation["requestBody"], pointer_join(op_at, "requestBody"))
        if not isinstance(body_object, dict):
            raise located("a request body must be an object", body_at)
        source, source_at = _pick_media(body_object.get("content"), body_at)
        if source is None:
            return
        body = inliner.schema(source, source_at)
        body_required = body_object.get("required") is not False
        body_properties = body.get("properties") if isinstance(body, dict) else None
        mergeable = (
            isinstance(body, dict)
            and isinstance(body_properties, dict)
            and body.get("type", "object") == "object"
            and set(body) <= MERGEABLE_BODY_KEYS
            and not set(body_properties) & set(properties)
        )
        if mergeable:
            assert isinstance(body, dict) and isinstance(body_properties, dict)
            properties.update(body_properties)
            if body_required:
                required.extend(r for r in body.get("required", []) if isinstance(r, str) and r not in required)
            return
        key = "body" if "body" not in properties else "request_body"
        note = body_object.get("description")
        if isinstance(body, dict) and isinstance(note, str) and note and "description" not in body:
            body = {**body, "description": note}
        properties[key] = body
        if body_object.get("required") is True:
            required.append(key)

    def _returns(
        self, document: dict[str, Any], openapi30: bool, budget: _Budget, operation: dict[str, Any], op_at: str
    ) -> Any:
        responses = operation.get("responses")
        if not isinstance(responses, dict):
            return None
        codes = sorted((c for c in responses if re.fullmatch(r"2\d\d", str(c))), key=str)
        codes += [c for c in responses if str(c).upper() == "2XX"]
        inliner = _Inliner(document, openapi30=openapi30, budget=budget)
        for code in codes:
            response, at = inliner.deref(responses[code], pointer_join(op_at, "responses", code))
            if not isinstance(response, dict):
                raise located("a response must be an object", at)
            source, source_at = _pick_media(response.get("content"), at)
            if source is not None:
                schema = inliner.schema(source, source_at)
                return inliner.finish(schema) if isinstance(schema, dict) else schema
        return None
