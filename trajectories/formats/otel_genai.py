"""OpenTelemetry traces of GenAI agents: OTLP JSON exports, following the GenAI semantic conventions.

The file is one OTLP document `{"resourceSpans": [{"resource", "scopeSpans": [{"scope", "spans"}]}]}`,
one such document per line (JSONL, as the OTLP file exporter writes), or a JSON array of them.
Attributes are OTLP `{key, value: {stringValue | intValue | doubleValue | boolValue | arrayValue |
kvlistValue | bytesValue}}` lists. One trace (traceId) is one trajectory, wherever its spans are in
the file; its record is an OTLP document holding just that trace's spans.

Spans, by `gen_ai.operation.name`:
- `execute_tool`: a tool-call step — `gen_ai.tool.name`, `gen_ai.tool.call.id`,
  `gen_ai.tool.call.arguments`, `gen_ai.tool.call.result` (or the span's events), timing from the
  span, success_flag false when the span's status is ERROR (or `error.type` is set);
- `chat` (and the other inference operations): the model's turns — its output message gives the
  plan beside tool calls and `respond` steps for text without calls; its input messages give the
  context (state) and tool results; its token usage goes onto the step it led to;
- `invoke_agent`: the agent's name and, when no chat span says so, the goal and the final answer.
Steps follow the spans' start times. A tool call requested in a chat span's output is paired with
its execute_tool span by `gen_ai.tool.call.id`, else by tool name; calls never executed as a span
keep their place and take their result from a later chat span's input (a trace of plain model
calls), and execute_tool spans no chat output announced are steps of their own.

Message content comes in three dialects, all read:
- current: `gen_ai.input.messages` / `gen_ai.output.messages` / `gen_ai.system_instructions`, JSON
  strings (or structured values) of `{role, parts: [{type: text | tool_call | tool_call_response |
  reasoning | …}]}`;
- old flat attributes (≤ 1.36, OpenLLMetry): `gen_ai.prompt.{i}.role|content|tool_call_id|tool_calls.{j}.*`
  and `gen_ai.completion.{i}.role|content|finish_reason|tool_calls.{j}.id|name|arguments`;
- old span events: `gen_ai.system.message`, `gen_ai.user.message`, `gen_ai.assistant.message`,
  `gen_ai.tool.message`, `gen_ai.choice` (body fields as event attributes or as the JSON string
  `gen_ai.event.content`), and the older `gen_ai.content.prompt` / `gen_ai.content.completion`.
Usage: `gen_ai.usage.input_tokens` / `output_tokens` (or the old `prompt_tokens` / `completion_tokens`).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import IO, Any

import orjson

from trajectories.formats.base import ParsedRun, RawRecord, RecordError, RunStep
from trajectories.formats.chat import content_text, observation_success, parse_arguments
from trajectories.formats.reading import (
    MAX_RECORD_BYTES,
    iter_document,
    iter_json_array,
    iter_jsonl,
    loads_located,
)

# Traces are kept until the end of the file (their spans may be in any line) unless this much is
# waiting: then the traces whose root span has arrived are imported first.
BUFFER_BYTES = 32 << 20
_INFERENCE = frozenset({"chat", "text_completion", "generate_content"})
_ERROR_CODES = (2, "2", "STATUS_CODE_ERROR", "ERROR")
_EVENT_ROLES = {
    "gen_ai.system.message": "system",
    "gen_ai.user.message": "user",
    "gen_ai.assistant.message": "assistant",
    "gen_ai.tool.message": "tool",
}
_EXCEPTION_EVENTS = ("exception", "gen_ai.execute_tool.exception")


class OtelGenAIImporter:
    name = "otel_genai"
    label = "OpenTelemetry GenAI traces (OTLP JSON)"
    version = "1.0"

    def detect(self, head: bytes) -> int:
        start = head.lstrip(b"\xef\xbb\xbf \t\r\n")[:1]
        if start in (b"{", b"[") and b'"resourceSpans"' in head[:65536]:
            return 90
        return 0

    def records(self, stream: IO[bytes]) -> Iterator[RawRecord | RecordError]:
        return _traces(_documents(stream))

    def parse(self, record: RawRecord) -> ParsedRun:
        value = record.value if record.value is not None else loads_located(record.raw, record.where, record.line)
        spans = [span for span in _spans_of(value) if span.operation]
        if not spans:
            raise RecordError(
                "no GenAI span (gen_ai.operation.name chat, execute_tool or invoke_agent) in this trace: nothing to import",
                pointer="/resourceSpans",
            )
        spans.sort(key=lambda s: (s.start_ns or 0, s.order))
        return _Assembly(spans).run()


# --- reading the file: documents, then traces ---------------------------------------------------------


def _documents(stream: IO[bytes]) -> Iterator[RawRecord | RecordError]:
    head = stream.read(65536)
    stream.seek(0)
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    if text.startswith(b"["):
        return iter_json_array(stream)
    first = stream.readline(MAX_RECORD_BYTES + 1).strip().removeprefix(b"\xef\xbb\xbf")
    stream.seek(0)
    try:
        orjson.loads(first)
    except orjson.JSONDecodeError:
        return iter_document(stream)  # a pretty-printed document
    return iter_jsonl(stream)


@dataclass(slots=True)
class _Trace:
    trace_id: str
    wheres: list[str] = field(default_factory=list)
    line: int = 0
    groups: dict[tuple[int, int], dict[str, Any]] = field(default_factory=dict)
    rooted: bool = False
    size: float = 0.0


def _traces(documents: Iterator[RawRecord | RecordError]) -> Iterator[RawRecord | RecordError]:
    """One record per trace, in the order the traces first appear (see BUFFER_BYTES)."""
    waiting: dict[str, _Trace] = {}
    done: set[str] = set()
    index = 0
    waiting_bytes = 0.0
    for item in documents:
        if isinstance(item, RecordError):
            yield item
            continue
        try:
            document = item.value if item.value is not None else loads_located(item.raw, item.where, item.line)
            found, errors = _split_document(document)
        except RecordError as exc:
            exc.where, exc.line = exc.where or item.where, exc.line or item.line
            yield exc
            continue
        for error in errors:
            error.where, error.line = item.where, item.line
            yield error
        per_span = len(item.raw) / max(len(found), 1)
        late: set[str] = set()
        for trace_id, (rs_i, resource_spans), (ss_i, scope_spans), span in found:
            if trace_id in done:
                late.add(trace_id)
                continue
            trace = waiting.get(trace_id)
            if trace is None:
                trace = waiting[trace_id] = _Trace(trace_id=trace_id, line=item.line)
            if not trace.wheres or trace.wheres[-1] != item.where:
                trace.wheres.append(item.where)
            group = trace.groups.get((item.index, rs_i))
            if group is None:
                group = trace.groups[(item.index, rs_i)] = {
                    "resource": resource_spans.get("resource") or {},
                    "scopes": {},
                }
            scope = group["scopes"].get(ss_i)
            if scope is None:
                scope = group["scopes"][ss_i] = {"scope": scope_spans.get("scope") or {}, "spans": []}
            scope["spans"].append(span)
            trace.rooted = trace.rooted or not span.get("parentSpanId")
            trace.size += per_span
            waiting_bytes += per_span
        for trace_id in sorted(late):
            yield RecordError(
                f"spans of trace {trace_id} come after that trace was imported (the file is far out of order); "
                "they were skipped",
                where=item.where,
                line=item.line,
            )
        if waiting_bytes > BUFFER_BYTES:
            for trace in list(waiting.values()):
                if waiting_bytes <= BUFFER_BYTES / 2:
                    break
                if trace.rooted or waiting_bytes > 2 * BUFFER_BYTES:
                    del waiting[trace.trace_id]
                    done.add(trace.trace_id)
                    waiting_bytes -= trace.size
                    yield _trace_record(trace, index)
                    index += 1
    for trace in waiting.values():
        yield _trace_record(trace, index)
        index += 1


def _trace_record(trace: _Trace, index: int) -> RawRecord | RecordError:
    shown = ", ".join(trace.wheres[:3]) + (", …" if len(trace.wheres) > 3 else "")
    where = f"trace {trace.trace_id[:64]} ({shown})"
    document = {
        "resourceSpans": [
            {"resource": group["resource"], "scopeSpans": list(group["scopes"].values())}
            for group in trace.groups.values()
        ]
    }
    try:
        raw = orjson.dumps(document)
    except TypeError:
        return RecordError(
            "the trace holds a value that cannot be stored (a lone surrogate escape or an integer beyond 64 bits)",
            where=where,
            line=trace.line,
        )
    return RawRecord(raw=raw, where=where, line=trace.line, index=index, value=document)


def _split_document(document: Any) -> tuple[list[tuple[str, Any, Any, dict[str, Any]]], list[RecordError]]:
    """(trace id, (i, resourceSpans), (j, scopeSpans), span) for each span; located errors for bad spans."""
    if not isinstance(document, dict):
        raise RecordError(f"an OTLP document must be a JSON object, not {type(document).__name__}", pointer="")
    resource_spans = document.get("resourceSpans")
    if not isinstance(resource_spans, list):
        raise RecordError("missing 'resourceSpans' (a list): not an OTLP trace export", pointer="/resourceSpans")
    found = []
    errors = []
    for i, rs in enumerate(resource_spans):
        rp = f"/resourceSpans/{i}"
        if not isinstance(rs, dict):
            errors.append(RecordError("must be an object", pointer=rp))
            continue
        key = "scopeSpans" if "scopeSpans" in rs else "instrumentationLibrarySpans"
        scope_spans = rs.get(key) or []
        if not isinstance(scope_spans, list):
            errors.append(RecordError(f"{key} must be a list", pointer=f"{rp}/{key}"))
            continue
        for j, ss in enumerate(scope_spans):
            sp = f"{rp}/{key}/{j}"
            spans = ss.get("spans") if isinstance(ss, dict) else None
            if not isinstance(spans, list):
                errors.append(RecordError("needs a 'spans' list", pointer=sp))
                continue
            if key != "scopeSpans":
                ss = {"scope": ss.get("instrumentationLibrary") or {}, "spans": spans}
            for k, span in enumerate(spans):
                trace_id = span.get("traceId") if isinstance(span, dict) else None
                if not isinstance(trace_id, str) or not trace_id:
                    errors.append(RecordError("a span needs a 'traceId' string", pointer=f"{sp}/spans/{k}/traceId"))
                    continue
                found.append((trace_id, (i, rs), (j, ss), span))
    return found, errors


# --- spans ---------------------------------------------------------------------------------------------


@dataclass(slots=True)
class _Span:
    raw: dict[str, Any]
    pointer: str
    order: int
    resource: dict[str, Any]
    attrs: dict[str, Any]
    operation: str
    span_id: str
    start_ns: int | None
    end_ns: int | None
    error: bool
    status_message: str

    def label(self) -> str:
        return f"span {self.span_id or self.order} ({self.raw.get('name') or self.operation})"

    def attr_pointer(self, key: str) -> str:
        for a, attribute in enumerate(self.raw.get("attributes") or []):
            if isinstance(attribute, dict) and attribute.get("key") == key:
                return f"{self.pointer}/attributes/{a}/value"
        return f"{self.pointer}/attributes"


def _spans_of(document: Any) -> Iterator[_Span]:
    _, errors = _split_document(document)
    if errors:
        raise errors[0]
    order = 0
    for i, rs in enumerate(document["resourceSpans"]):
        if not isinstance(rs, dict):
            continue
        resource = rs.get("resource") or {}
        resource_attrs = _attributes(
            resource.get("attributes") if isinstance(resource, dict) else None, f"/resourceSpans/{i}/resource"
        )
        for j, ss in enumerate(rs.get("scopeSpans") or rs.get("instrumentationLibrarySpans") or []):
            for k, span in enumerate(ss["spans"]):
                pointer = f"/resourceSpans/{i}/scopeSpans/{j}/spans/{k}"
                yield _span(span, pointer, order, resource_attrs)
                order += 1


def _span(span: dict[str, Any], pointer: str, order: int, resource: dict[str, Any]) -> _Span:
    attrs = _attributes(span.get("attributes"), pointer)
    status = span.get("status") or {}
    if not isinstance(status, dict):
        raise RecordError("status must be an object", pointer=f"{pointer}/status")
    span_id = span.get("spanId")
    message = status.get("message")
    return _Span(
        raw=span,
        pointer=pointer,
        order=order,
        resource=resource,
        attrs=attrs,
        operation=_operation(attrs, span),
        span_id=span_id if isinstance(span_id, str) else "",
        start_ns=_nanos(span.get("startTimeUnixNano"), f"{pointer}/startTimeUnixNano"),
        end_ns=_nanos(span.get("endTimeUnixNano"), f"{pointer}/endTimeUnixNano"),
        error=status.get("code") in _ERROR_CODES or bool(attrs.get("error.type")),
        status_message=message if isinstance(message, str) else "",
    )


def _operation(attrs: dict[str, Any], span: dict[str, Any]) -> str:
    """ "chat", "execute_tool", "invoke_agent", or "" for a span that is none of them."""
    name = attrs.get("gen_ai.operation.name")
    if isinstance(name, str) and name:
        if name in _INFERENCE:
            return "chat"
        return name if name in ("execute_tool", "invoke_agent") else ""
    if "gen_ai.tool.name" in attrs:
        return "execute_tool"
    if attrs.get("llm.request.type") in ("chat", "completion") or "gen_ai.input.messages" in attrs:
        return "chat"
    if any(k.startswith(("gen_ai.prompt.", "gen_ai.completion.")) for k in attrs):
        return "chat"
    events = span.get("events")
    if isinstance(events, list) and any(
        isinstance(e, dict) and (e.get("name") in _EVENT_ROLES or e.get("name") == "gen_ai.choice") for e in events
    ):
        return "chat"
    return ""


def _nanos(value: Any, pointer: str) -> int | None:
    if value is None or value == "" or value == 0 or value == "0":
        return None
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        number = value
    elif isinstance(value, str) and value.isdigit():
        number = int(value)
    else:
        raise RecordError("must be a whole number of nanoseconds since 1970 (a string or an integer)", pointer=pointer)
    if number > 253402300799_000_000_000:  # after 9999-12-31
        raise RecordError(f"{number} nanoseconds is beyond the year 9999", pointer=pointer)
    return number


def _iso(nanos: int | None) -> str | None:
    if nanos is None:
        return None
    seconds, rest = divmod(nanos, 1_000_000_000)
    return datetime.fromtimestamp(seconds, UTC).replace(microsecond=rest // 1000).isoformat()


def _attributes(attributes: Any, pointer: str) -> dict[str, Any]:
    if attributes is None:
        return {}
    if not isinstance(attributes, list):
        raise RecordError("attributes must be a list of {key, value}", pointer=f"{pointer}/attributes")
    out = {}
    for a, attribute in enumerate(attributes):
        ap = f"{pointer}/attributes/{a}"
        if not isinstance(attribute, dict) or not isinstance(attribute.get("key"), str):
            raise RecordError("an attribute must be an object {key, value}", pointer=ap)
        out[attribute["key"]] = _any_value(attribute.get("value"), f"{ap}/value")
    return out


def _any_value(value: Any, pointer: str) -> Any:
    """An OTLP AnyValue as a plain JSON value (None when empty)."""
    if value is None or value == {}:
        return None
    if not isinstance(value, dict):
        raise RecordError('a value must be an object such as {"stringValue": …}', pointer=pointer)
    if "stringValue" in value:
        text = value["stringValue"]
        if not isinstance(text, str):
            raise RecordError("stringValue must be a string", pointer=f"{pointer}/stringValue")
        return text
    if "intValue" in value:
        number = value["intValue"]
        if isinstance(number, int) and not isinstance(number, bool):
            return number
        if isinstance(number, str) and number.lstrip("-").isdigit():
            return int(number)
        raise RecordError("intValue must be a whole number", pointer=f"{pointer}/intValue")
    if "doubleValue" in value:
        number = value["doubleValue"]
        try:
            result = float(number)
        except (TypeError, ValueError):
            raise RecordError("doubleValue must be a number", pointer=f"{pointer}/doubleValue") from None
        if isinstance(number, bool):
            raise RecordError("doubleValue must be a number", pointer=f"{pointer}/doubleValue")
        return result if math.isfinite(result) else str(number)
    if "boolValue" in value:
        return value["boolValue"] is True
    if "arrayValue" in value:
        array = value["arrayValue"] or {}
        values = array.get("values") if isinstance(array, dict) else None
        if values is None:
            return []
        if not isinstance(values, list):
            raise RecordError("arrayValue.values must be a list", pointer=f"{pointer}/arrayValue/values")
        return [_any_value(v, f"{pointer}/arrayValue/values/{n}") for n, v in enumerate(values)]
    if "kvlistValue" in value:
        kvlist = value["kvlistValue"] or {}
        return _attributes(kvlist.get("values") if isinstance(kvlist, dict) else None, f"{pointer}/kvlistValue")
    if "bytesValue" in value:
        return value["bytesValue"] if isinstance(value["bytesValue"], str) else None
    return None


# --- messages, in every dialect, as {role, text, reasoning, calls, results} ----------------------------


@dataclass(slots=True)
class _Message:
    role: str
    text: str = ""
    reasoning: str = ""
    calls: list[tuple[str, str, Any]] = field(default_factory=list)  # (id, name, arguments)
    results: list[tuple[str, str]] = field(default_factory=list)  # (call id, result text)


def _as_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    try:
        return orjson.dumps(value).decode()
    except TypeError:
        return str(value)


def _json_value(span: _Span, key: str) -> Any:
    """An attribute recorded as a JSON string or in structured form; parsed."""
    value = span.attrs.get(key)
    if isinstance(value, str):
        try:
            return orjson.loads(value)
        except orjson.JSONDecodeError as exc:
            raise RecordError(
                f"{span.label()}: {key} is not valid JSON ({exc.msg.split(':')[0]} at character {exc.pos})",
                pointer=span.attr_pointer(key),
            ) from None
    return value


def _parts_messages(value: Any, span: _Span, key: str) -> list[_Message]:
    """Messages of the current dialect: [{role, parts: [{type, …}]}]."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise RecordError(f"{span.label()}: {key} must be a list of messages", pointer=span.attr_pointer(key))
    out = []
    for n, message in enumerate(value):
        if not isinstance(message, dict) or not isinstance(message.get("role"), str):
            raise RecordError(
                f"{span.label()}: message {n} of {key} needs a 'role' string", pointer=span.attr_pointer(key)
            )
        out.append(_parts_message(message["role"], message.get("parts"), span, key))
    return out


def _parts_message(role: str, parts: Any, span: _Span, key: str) -> _Message:
    message = _Message(role=role)
    if parts is None:
        return message
    if not isinstance(parts, list):
        raise RecordError(
            f"{span.label()}: the parts of a message in {key} must be a list", pointer=span.attr_pointer(key)
        )
    texts = []
    for part in parts:
        if isinstance(part, str):
            texts.append(part)
            continue
        if not isinstance(part, dict):
            raise RecordError(
                f"{span.label()}: a message part in {key} must be an object", pointer=span.attr_pointer(key)
            )
        kind = part.get("type")
        if kind == "text":
            texts.append(_as_text(part.get("content")))
        elif kind in ("reasoning", "thinking"):
            message.reasoning = "\n".join(t for t in (message.reasoning, _as_text(part.get("content"))) if t)
        elif kind == "tool_call":
            name = part.get("name")
            if not isinstance(name, str) or not name:
                raise RecordError(
                    f"{span.label()}: a tool_call part in {key} needs a 'name'", pointer=span.attr_pointer(key)
                )
            call_id = part.get("id")
            message.calls.append((call_id if isinstance(call_id, str) else "", name, part.get("arguments")))
        elif kind == "tool_call_response":
            call_id = part.get("id")
            message.results.append((call_id.strip() if isinstance(call_id, str) else "", _as_text(part.get("result"))))
        else:
            texts.append(f"[{kind}]" if isinstance(kind, str) and kind else "[part]")
    message.text = "\n".join(texts)
    return message


def _openai_message(body: dict[str, Any], role: str, pointer: str) -> _Message:
    """An OpenAI-shaped message (old dialects): {role?, content, tool_calls?, id | tool_call_id?}."""
    message = _Message(role=role)
    content = body.get("content")
    message.text = content if isinstance(content, str) else content_text(content, pointer) if content else ""
    tool_calls = body.get("tool_calls")
    if isinstance(tool_calls, dict):  # flat attributes: {"0": {…}, "1": {…}}
        tool_calls = [tool_calls[k] for k in sorted(tool_calls, key=_index_key)]
    if isinstance(tool_calls, list):
        for call in tool_calls:
            if not isinstance(call, dict):
                raise RecordError("a tool call must be an object", pointer=pointer)
            function = call["function"] if isinstance(call.get("function"), dict) else call
            name = function.get("name")
            if not isinstance(name, str) or not name:
                raise RecordError("a tool call needs a non-empty 'name'", pointer=pointer)
            call_id = call.get("id")
            message.calls.append((call_id if isinstance(call_id, str) else "", name, function.get("arguments")))
    if role == "tool":
        call_id = body.get("tool_call_id") or body.get("id") or ""
        message.results.append((call_id if isinstance(call_id, str) else "", message.text))
    return message


def _index_key(key: str) -> tuple[int, str]:
    return (int(key), "") if key.isdigit() else (1 << 30, key)


def _flat_messages(span: _Span, prefix: str) -> list[_Message]:
    """`gen_ai.prompt.{i}.*` / `gen_ai.completion.{i}.*` flat attributes as messages, in index order."""
    by_index: dict[str, dict[str, Any]] = {}
    for key, value in span.attrs.items():
        if not key.startswith(prefix):
            continue
        path = key[len(prefix) :].split(".")
        if len(path) < 2:
            continue
        node = by_index.setdefault(path[0], {})
        for part in path[1:-1]:
            child = node.get(part)
            if not isinstance(child, dict):
                child = node[part] = {}
            node = child
        node[path[-1]] = value
    out = []
    for index in sorted(by_index, key=_index_key):
        body = by_index[index]
        role = body.get("role")
        out.append(
            _openai_message(
                body, role if isinstance(role, str) else "assistant", span.attr_pointer(f"{prefix}{index}.content")
            )
        )
    return out


def _event_messages(span: _Span) -> tuple[list[_Message], list[_Message]]:
    """(input, output) messages from the old span events."""
    events = span.raw.get("events")
    if not isinstance(events, list):
        return [], []
    inputs: list[_Message] = []
    outputs: list[_Message] = []
    for e, event in enumerate(events):
        if not isinstance(event, dict):
            continue
        name = event.get("name")
        pointer = f"{span.pointer}/events/{e}"
        if name not in _EVENT_ROLES and name not in (
            "gen_ai.choice",
            "gen_ai.content.prompt",
            "gen_ai.content.completion",
        ):
            continue
        body = _attributes(event.get("attributes"), pointer)
        content = body.pop("gen_ai.event.content", None)
        if isinstance(content, str):
            try:
                content = orjson.loads(content)
            except orjson.JSONDecodeError:
                content = {"content": content}
        if isinstance(content, dict):
            body.update(content)
        if name in _EVENT_ROLES:
            inputs.append(_openai_message(body, _EVENT_ROLES[name], f"{pointer}/attributes"))
        elif name == "gen_ai.choice":
            if body.get("index") not in (None, 0, "0"):
                continue  # one choice: the first
            message = body.get("message")
            outputs.append(
                _openai_message(message if isinstance(message, dict) else body, "assistant", f"{pointer}/attributes")
            )
        else:
            key = "gen_ai.prompt" if name == "gen_ai.content.prompt" else "gen_ai.completion"
            listed = body.get(key)
            if isinstance(listed, str):
                try:
                    listed = orjson.loads(listed)
                except orjson.JSONDecodeError:
                    raise RecordError(
                        f"{span.label()}: {key} is not valid JSON", pointer=f"{pointer}/attributes"
                    ) from None
            for m in listed if isinstance(listed, list) else []:
                if isinstance(m, dict):
                    role = m["role"] if isinstance(m.get("role"), str) else "assistant"
                    (inputs if key == "gen_ai.prompt" else outputs).append(
                        _openai_message(m, role, f"{pointer}/attributes")
                    )
    return inputs, outputs


def _chat_messages(span: _Span) -> tuple[list[_Message], _Message | None]:
    """(input messages, first output message) of an inference span, whichever dialect it uses."""
    inputs: list[_Message] = []
    outputs: list[_Message] = []
    if "gen_ai.input.messages" in span.attrs or "gen_ai.output.messages" in span.attrs:
        inputs = _parts_messages(_json_value(span, "gen_ai.input.messages"), span, "gen_ai.input.messages")
        outputs = _parts_messages(_json_value(span, "gen_ai.output.messages"), span, "gen_ai.output.messages")
    elif any(k.startswith(("gen_ai.prompt.", "gen_ai.completion.")) for k in span.attrs):
        inputs = _flat_messages(span, "gen_ai.prompt.")
        outputs = _flat_messages(span, "gen_ai.completion.")
    else:
        inputs, outputs = _event_messages(span)
    instructions = _json_value(span, "gen_ai.system_instructions")
    if instructions is not None:
        parts = instructions if isinstance(instructions, list) else [instructions]
        system = _parts_message("system", parts, span, "gen_ai.system_instructions")
        inputs = [system, *inputs]
    output = next((m for m in outputs if m.role == "assistant"), outputs[0] if outputs else None)
    return inputs, output


def _tokens(span: _Span, *keys: str) -> int | None:
    for key in keys:
        value = span.attrs.get(key)
        if isinstance(value, int) and not isinstance(value, bool):
            if value < 0:
                raise RecordError(f"{span.label()}: {key} must be ≥ 0, not {value}", pointer=span.attr_pointer(key))
            return value
    return None


# --- assembling the trajectory -------------------------------------------------------------------------


class _Assembly:
    def __init__(self, spans: list[_Span]) -> None:
        self.spans = spans
        self.steps: list[RunStep] = []
        self.state: list[dict[str, Any]] = []
        self.goal: str | None = None
        self.final_answer = ""
        self.turn_id = ""  # the latest chat span: the model turn that the next tool spans belong to
        self.turn_steps: list[RunStep] = []  # steps of that turn
        self.open_calls: list[RunStep] = []  # calls of chat outputs not yet matched to an execute_tool span
        self.span_errors: set[int] = set()  # id() of steps whose span ended in error
        self.usage: tuple[int | None, int | None] | None = None  # of chat spans that made no step yet
        self.systems_seen: set[str] = set()
        self.agent_users: set[str] = set()  # user messages taken from the agent span's input

    def run(self) -> ParsedRun:
        agents = [s for s in self.spans if s.operation == "invoke_agent"]
        # The outermost agent span: its input opens the run, its output closes it, when the chat
        # spans do not carry the messages themselves (content capture is off by default).
        agent_inputs, agent_output = _chat_messages(agents[0]) if agents else ([], None)
        self.context(agent_inputs, from_agent=True)
        for span in self.spans:
            if span.operation == "chat":
                self.chat(span)
            elif span.operation == "execute_tool":
                self.tool(span)
        if agent_output is not None and agent_output.text.strip():
            self.agent_reply(agents[0], agent_output.text)
        if not self.steps:
            raise RecordError(
                "no execute_tool span and no chat output in this trace: nothing to segment into steps",
                pointer="/resourceSpans",
            )
        return ParsedRun(
            goal_text=self.goal or "",
            steps=self.steps,
            model=self.model(),
            rollout_id=self.trace_id(),
            final_answer=self.final_answer,
            metadata=self.metadata(agents),
        )

    # chat spans

    def context(self, inputs: list[_Message], *, from_agent: bool = False) -> None:
        """What an input adds since the model's latest turn: context (state), goal, tool results."""
        last_assistant = max((n for n, m in enumerate(inputs) if m.role == "assistant"), default=-1)
        for message in inputs[last_assistant + 1 :]:
            if message.results:
                for call_id, text in message.results:
                    self.result(call_id, text)
            elif message.role in ("system", "developer"):
                if message.text not in self.systems_seen:  # each chat span repeats the system prompt
                    self.systems_seen.add(message.text)
                    self.state = [*self.state, {"role": message.role, "content": message.text}]
            elif message.role == "user":
                if message.text in self.agent_users:  # already taken from the agent span
                    self.agent_users.discard(message.text)
                    continue
                if from_agent:
                    self.agent_users.add(message.text)
                self.goal = message.text if self.goal is None else self.goal
                self.state = [*self.state, {"role": "user", "content": message.text}]
        if self.goal is None:
            self.goal = next((m.text for m in inputs if m.role == "user"), None)

    def agent_reply(self, span: _Span, text: str) -> None:
        """The agent's answer, as a respond step unless a chat span's output already gave it."""
        last = self.steps[-1] if self.steps else None
        if last is not None and last.kind == "respond" and (last.arguments or {}).get("content") == text:
            return
        usage = self.usage or (None, None)
        self.usage = None
        self.steps.append(
            RunStep(
                kind="respond",
                turn_id=self.turn_id or span.span_id or f"span-{span.order}",
                state=self.state,
                tool_name="respond",
                arguments={"content": text},
                prompt_tokens=usage[0],
                completion_tokens=usage[1],
            )
        )
        self.state = []
        self.final_answer = text

    def chat(self, span: _Span) -> None:
        inputs, output = _chat_messages(span)
        self.context(inputs)
        usage = (
            _tokens(span, "gen_ai.usage.input_tokens", "gen_ai.usage.prompt_tokens"),
            _tokens(span, "gen_ai.usage.output_tokens", "gen_ai.usage.completion_tokens"),
        )
        if self.usage is not None:  # an earlier chat span made no step: its tokens go with this one's
            usage = (_add(self.usage[0], usage[0]), _add(self.usage[1], usage[1]))
            self.usage = None
        self.turn_id = span.span_id or f"span-{span.order}"
        self.turn_steps = []
        self.open_calls = []  # a new model turn: calls of earlier turns are no longer waiting for their span
        plan = "\n\n".join(t for t in (output.reasoning, output.text) if t.strip()) if output else ""
        timing = {"started_at": _iso(span.start_ns), "ended_at": _iso(span.end_ns)}
        if output is not None and output.calls:
            output_pointer = span.attr_pointer("gen_ai.output.messages")
            for j, (call_id, name, args_value) in enumerate(output.calls):
                step = self.new_step(name, call_id, args_value, output_pointer, span, plan=plan if j == 0 else "")
                if j == 0:
                    step.prompt_tokens, step.completion_tokens = usage
                self.open_calls.append(step)
        elif output is not None and output.text.strip():
            step = RunStep(
                kind="respond",
                turn_id=self.turn_id,
                state=self.state,
                plan=output.reasoning,
                tool_name="respond",
                arguments={"content": output.text},
                prompt_tokens=usage[0],
                completion_tokens=usage[1],
                started_at=timing["started_at"],
                ended_at=timing["ended_at"],
                latency_ms=_latency(span),
            )
            self.steps.append(step)
            self.state = []
            self.final_answer = output.text
        elif usage != (None, None):
            self.usage = usage

    def result(self, call_id: str, text: str) -> None:
        """A tool result seen in a chat span's input: the observation of a call that has none yet."""
        target = None
        if call_id:
            target = next((s for s in reversed(self.steps) if s.tool_call_id == call_id), None)
        if target is None:
            target = next((s for s in self.turn_steps if s.observation is None), None)
            if target is None and not call_id and self.turn_steps:
                return  # the latest turn's calls all have their result already (from their spans)
        if target is None:
            self.state = [*self.state, {"role": "tool", "content": text}]
            return
        if target.observation is None:
            target.observation = text
            target.success_flag = False if id(target) in self.span_errors else observation_success(text)

    # execute_tool spans

    def tool(self, span: _Span) -> None:
        attrs = span.attrs
        name = attrs.get("gen_ai.tool.name")
        if not isinstance(name, str) or not name:
            span_name = span.raw.get("name")
            name = span_name.removeprefix("execute_tool ").strip() if isinstance(span_name, str) else ""
            name = name or "unknown_tool"
        call_id = attrs.get("gen_ai.tool.call.id")
        call_id = str(call_id) if isinstance(call_id, str | int) and not isinstance(call_id, bool) else ""
        args_value = attrs.get("gen_ai.tool.call.arguments")  # a JSON string, or in structured form
        args_pointer = span.attr_pointer("gen_ai.tool.call.arguments")
        step = self.match(call_id, name)
        if step is None:
            step = self.new_step(name, call_id, args_value, args_pointer, span, plan="")
            if self.usage is not None:
                step.prompt_tokens, step.completion_tokens = self.usage
                self.usage = None
        else:
            self.open_calls.remove(step)
            if args_value is not None and step.arguments in ({}, None) and not step.arguments_raw:
                step.arguments, step.arguments_raw, step.arguments_error = parse_arguments(args_value, args_pointer)
            step.tool_call_id = step.tool_call_id or call_id
        step.started_at, step.ended_at, step.latency_ms = _iso(span.start_ns), _iso(span.end_ns), _latency(span)
        observation = self.tool_observation(span)
        if span.error:
            self.span_errors.add(id(step))
        if observation is not None:
            step.observation = observation
        if span.error:
            step.success_flag = False
        elif step.observation is not None:
            step.success_flag = observation_success(step.observation)
        else:
            step.success_flag = True  # ended without an error status; its result was not recorded

    def match(self, call_id: str, name: str) -> RunStep | None:
        if call_id:
            found = next((s for s in self.open_calls if s.tool_call_id == call_id), None)
            if found is not None:
                return found
        return next(
            (s for s in self.open_calls if s.tool_name == name and (not call_id or not s.tool_call_id)),
            None,
        )

    def tool_observation(self, span: _Span) -> str | None:
        if "gen_ai.tool.call.result" in span.attrs:
            return _as_text(span.attrs["gen_ai.tool.call.result"])
        events = span.raw.get("events")
        errors = []
        for e, event in enumerate(events if isinstance(events, list) else []):
            if not isinstance(event, dict):
                continue
            name = event.get("name")
            if name == "gen_ai.tool.message" or name in _EXCEPTION_EVENTS:
                body = _attributes(event.get("attributes"), f"{span.pointer}/events/{e}")
                if name == "gen_ai.tool.message":
                    content = body.get("gen_ai.event.content", body.get("content"))
                    if isinstance(content, str) and content.lstrip().startswith("{"):
                        try:
                            parsed = orjson.loads(content)
                        except orjson.JSONDecodeError:
                            parsed = None
                        if isinstance(parsed, dict) and "content" in parsed:
                            content = parsed["content"]
                    return _as_text(content)
                kind, text = body.get("exception.type"), body.get("exception.message")
                errors.append(": ".join(_as_text(t) for t in (kind, text) if t))
        if span.error:
            text = "\n".join(e for e in errors if e) or span.status_message or _as_text(span.attrs.get("error.type"))
            return f"Error: {text}" if text and not text.lower().startswith("error") else text or "Error"
        return None

    def new_step(self, name: str, call_id: str, args_value: Any, pointer: str, span: _Span, *, plan: str) -> RunStep:
        arguments, raw, error = parse_arguments(args_value, pointer)
        step = RunStep(
            kind="tool_call",
            turn_id=self.turn_id or span.span_id or f"span-{span.order}",
            state=self.state,
            plan=plan,
            tool_name=name,
            tool_call_id=call_id,
            arguments=arguments,
            arguments_raw=raw,
            arguments_error=error,
        )
        self.state = []
        self.steps.append(step)
        self.turn_steps.append(step)
        return step

    # the trace as a whole

    def model(self) -> str:
        for key in ("gen_ai.request.model", "gen_ai.response.model"):
            for span in self.spans:
                value = span.attrs.get(key)
                if isinstance(value, str) and value:
                    return value
        return ""

    def trace_id(self) -> str:
        trace_id = self.spans[0].raw.get("traceId")
        return trace_id if isinstance(trace_id, str) else ""

    def metadata(self, agents: list[_Span]) -> dict[str, Any]:
        metadata: dict[str, Any] = {}
        resource = self.spans[0].resource
        if isinstance(resource.get("service.name"), str):
            metadata["service_name"] = resource["service.name"]
        for key, label in (
            ("gen_ai.agent.name", "agent_name"),
            ("gen_ai.agent.id", "agent_id"),
            ("gen_ai.conversation.id", "conversation_id"),
            ("gen_ai.provider.name", "provider"),
            ("gen_ai.system", "provider"),
        ):
            for span in [*agents, *self.spans]:
                value = span.attrs.get(key)
                if isinstance(value, str) and value and label not in metadata:
                    metadata[label] = value
        models = sorted({v for s in self.spans if isinstance(v := s.attrs.get("gen_ai.response.model"), str) and v})
        if models:
            metadata["response_models"] = models
        chats = [s for s in self.spans if s.operation == "chat"]
        totals = {
            "input_tokens": _sum(_tokens(s, "gen_ai.usage.input_tokens", "gen_ai.usage.prompt_tokens") for s in chats),
            "output_tokens": _sum(
                _tokens(s, "gen_ai.usage.output_tokens", "gen_ai.usage.completion_tokens") for s in chats
            ),
        }
        if any(v is not None for v in totals.values()):
            metadata["usage"] = totals
        metadata["spans"] = {
            "chat": len(chats),
            "execute_tool": sum(1 for s in self.spans if s.operation == "execute_tool"),
            "invoke_agent": len(agents),
        }
        return metadata


def _add(a: int | None, b: int | None) -> int | None:
    return None if a is None and b is None else (a or 0) + (b or 0)


def _sum(values: Iterator[int | None]) -> int | None:
    total = None
    for value in values:
        total = _add(total, value)
    return total


def _latency(span: _Span) -> float | None:
    if span.start_ns is None or span.end_ns is None or span.end_ns < span.start_ns:
        return None
    return (span.end_ns - span.start_ns) / 1_000_000
