"""Tool registries: builders per spec format, meta-schema checks, edit/freeze/new version, drift, pages, CLI."""

from __future__ import annotations

import json
from pathlib import Path

import orjson
import pytest
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.urls import reverse
from jsonschema import Draft202012Validator

from core.models import AuditEvent
from tests.conftest import login
from trajectories.formats.base import RecordError
from trajectories.formats.tools import TOOL_FORMATS, load_document, parse_tools, tool_format_detect
from trajectories.models import Tool, ToolRegistry
from trajectories.selectors.registries import project_can_hand_out_work, registry_diff
from trajectories.services.registries import (
    RegistryImportError,
    registry_create,
    registry_freeze,
    registry_import,
    registry_new_version,
    registry_sha256,
    tool_update,
)

pytestmark = pytest.mark.smoke

FIXTURES = Path(__file__).parent / "fixtures" / "registries"


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def tools_of(name: str, format_name: str = ""):
    fmt, specs = parse_tools(fixture(name), format_name)
    return fmt.name, {spec.name: spec for spec in specs}


def valid(schema, instance) -> bool:
    return Draft202012Validator(schema).is_valid(instance)


def openai_tool(name: str, properties: dict, required: list[str] | None = None, description: str = "") -> dict:
    parameters: dict = {"type": "object", "properties": properties}
    if required is not None:
        parameters["required"] = required
    return {"type": "function", "function": {"name": name, "description": description, "parameters": parameters}}


def import_tools(project, pm, tools: list[dict], name: str = "tools.json") -> ToolRegistry:
    return registry_import(actor=pm, project=project, name=name, data=orjson.dumps(tools))


# --- builders ------------------------------------------------------------------------------------


def test_every_fixture_is_detected_as_its_format() -> None:
    expected = {
        "openai_tools.json": "openai_tools",
        "openapi30_petstore.json": "openapi",
        "openapi31_calendar.yaml": "openapi",
        "mcp_tools_list.json": "mcp",
        "tau_bench_retail.json": "tau_bench",
    }
    assert {name: tool_format_detect(load_document(fixture(name))).name for name in expected} == expected
    assert set(TOOL_FORMATS) == {"openai_tools", "openapi", "mcp", "tau_bench"}
    with pytest.raises(RecordError, match="could not tell the tool format"):
        tool_format_detect({"hello": "world"})


def test_openai_tools_nested_and_flat_with_registry_metadata() -> None:
    fmt, tools = tools_of("openai_tools.json")
    assert fmt == "openai_tools" and list(tools) == ["get_weather", "book_table", "legacy_lookup"]
    weather = tools["get_weather"]
    assert (weather.side_effects, weather.latency_p99_ms) == ("none", 300)
    assert weather.parameters["required"] == ["city"] and weather.parameters_pointer == "/0/function/parameters"
    assert tools["book_table"].returns == {"type": "object", "properties": {"confirmation": {"type": "string"}}}
    assert tools["book_table"].side_effects == "write"
    assert (
        tools["legacy_lookup"].side_effects == "read" and tools["legacy_lookup"].parameters_pointer == "/2/parameters"
    )
    with pytest.raises(RecordError, match="only function tools") as exc:
        parse_tools(
            b'{"tools": [{"type": "function", "function": {"name": "a"}}, {"type": "web_search"}]}', "openai_tools"
        )
    assert exc.value.pointer == "/tools/1/type"


def test_openapi30_operations_become_tools_with_merged_parameters() -> None:
    fmt, tools = tools_of("openapi30_petstore.json")
    assert fmt == "openapi"
    assert list(tools) == ["listPets", "createPet", "get_pets_petId", "deletePet", "getFamilyTree"]

    listing = tools["listPets"].parameters
    assert listing["properties"]["limit"] == {"type": "integer", "minimum": 1, "exclusiveMaximum": 100}
    assert listing["properties"]["tag"] == {"type": ["string", "null"]}  # 3.0 nullable → type union
    assert "required" not in listing and tools["listPets"].side_effects == "read"
    assert tools["listPets"].returns["type"] == "array"

    create = tools["createPet"]
    assert create.description == "Create a pet\n\nAdds a pet to the store."
    assert create.side_effects == "write" and create.parameters["required"] == ["name"]
    owner = create.parameters["properties"]["owner"]  # $ref → $ref → $ref, all resolved
    assert owner["properties"]["address"]["properties"]["city"] == {"type": "string"}
    assert "$ref" not in json.dumps(create.parameters)
    assert valid(create.parameters, {"name": "Rex", "tag": None, "owner": {"address": {"city": "Oslo"}}})
    assert not valid(create.parameters, {"tag": "dog"})
    assert valid(create.returns, {"name": "Rex", "id": 1}) and not valid(create.returns, {"name": "Rex"})

    shown = tools["get_pets_petId"]  # no operationId: method_path; path-level parameter inherited
    assert shown.parameters["required"] == ["petId"]
    assert shown.parameters["properties"]["petId"] == {
        "type": "integer",
        "format": "int64",
        "description": "The pet's id",
    }

    delete = tools["deletePet"]
    assert delete.side_effects == "destructive" and delete.returns is None
    assert set(delete.parameters["properties"]) == {"petId", "X-Request-Id"}  # no cookie, no Authorization


def test_openapi_recursive_refs_stay_finite_and_exact() -> None:
    _, tools = tools_of("openapi30_petstore.json")
    tree = tools["getFamilyTree"]
    assert tree.latency_p99_ms == 850 and tree.parameters["required"] == ["petId"]
    returns = tree.returns
    assert returns["properties"]["children"]["items"] == {"$ref": "#/$defs/TreeNode"}
    assert set(returns["$defs"]) == {"TreeNode"}
    Draft202012Validator.check_schema(returns)
    leaf = {"pet": {"name": "a", "id": 1}}
    assert valid(returns, {"pet": {"name": "b", "id": 2}, "children": [{**leaf, "children": [leaf]}]})
    assert not valid(returns, {"children": [{"children": [{"pet": {"name": "no id"}}]}]})


def test_openapi31_yaml_with_refs_body_and_recursion() -> None:
    fmt, tools = tools_of("openapi31_calendar.yaml")
    assert fmt == "openapi" and list(tools) == ["create_event", "update_event"]
    create = tools["create_event"].parameters
    assert create["required"] == ["title", "start"]
    assert create["properties"]["location"] == {"type": ["string", "null"]}
    organizer = create["properties"]["organizer"]
    assert organizer["description"] == "Who organises the event"  # sibling of $ref overlays it (3.1)
    assert organizer["properties"]["manager"] == {"$ref": "#/$defs/Person"}
    assert create["$defs"]["Person"]["properties"]["manager"] == {"$ref": "#/$defs/Person"}
    assert valid(create, {"title": "t", "start": "x", "organizer": {"manager": {"manager": {"name": "ceo"}}}})
    assert not valid(create, {"title": "t", "start": "x", "organizer": {"manager": {"name": 5}}})
    assert tools["create_event"].side_effects == "write"

    update = tools["update_event"]
    assert update.parameters["required"] == ["event_id"]  # the body is optional here
    assert update.parameters["properties"]["event_id"] == {"type": "string", "pattern": "^[a-z0-9]+$"}
    body = update.parameters["properties"]["body"]  # an array body stays one argument
    assert body["type"] == "array" and body["items"]["required"] == ["op", "path"]
    assert update.side_effects == "write" and update.returns is None


def test_openapi_refuses_what_it_cannot_resolve_with_the_pointer() -> None:
    def doc(schema: dict) -> bytes:
        operation = {"operationId": "op", "parameters": [{"name": "q", "in": "query", "schema": schema}]}
        return orjson.dumps({"openapi": "3.1.0", "paths": {"/x": {"get": operation}}, "components": {"schemas": {}}})

    with pytest.raises(RecordError, match="points at nothing") as exc:
        parse_tools(doc({"$ref": "#/components/schemas/Missing"}))
    assert exc.value.pointer == "/paths/~1x/get/parameters/0/schema/$ref"
    with pytest.raises(RecordError, match="outside the document"):
        parse_tools(doc({"$ref": "other.yaml#/Thing"}))
    with pytest.raises(RecordError, match=r"only OpenAPI 3\.0 and 3\.1"):
        parse_tools(b'{"swagger": "2.0", "paths": {}}')
    with pytest.raises(RecordError, match="no operations"):
        parse_tools(b'{"openapi": "3.0.0", "paths": {}}')


def test_openapi_ref_expansion_is_bounded() -> None:
    # Each schema refers to the next one twice: 2**40 nodes if expanded naively.
    schemas = {
        f"S{i}": {
            "type": "object",
            "properties": {
                "a": {"$ref": f"#/components/schemas/S{i + 1}"},
                "b": {"$ref": f"#/components/schemas/S{i + 1}"},
            },
        }
        for i in range(40)
    }
    schemas["S40"] = {"type": "string"}
    document = {
        "openapi": "3.0.0",
        "paths": {
            "/x": {
                "post": {
                    "requestBody": {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/S0"}}}}
                }
            }
        },
        "components": {"schemas": schemas},
    }
    with pytest.raises(RecordError, match="grow past"):
        parse_tools(orjson.dumps(document))


def test_mcp_annotations_map_to_side_effects() -> None:
    fmt, tools = tools_of("mcp_tools_list.json")
    assert fmt == "mcp"
    assert {name: spec.side_effects for name, spec in tools.items()} == {
        "read_file": "read",
        "write_file": "write",
        "delete_file": "destructive",
        "run_query": "destructive",  # no annotations: the MCP defaults (destructiveHint true)
    }
    assert tools["read_file"].returns["required"] == ["content"]
    assert tools["write_file"].parameters["required"] == ["path", "content"]
    assert tools["read_file"].parameters_pointer == "/result/tools/0/inputSchema"


def test_tau_bench_specs_side_effects_from_tool_types_and_names() -> None:
    fmt, tools = tools_of("tau_bench_retail.json")
    assert fmt == "tau_bench"
    assert {name: spec.side_effects for name, spec in tools.items()} == {
        "find_user_id_by_email": "read",
        "get_order_details": "read",
        "cancel_pending_order": "write",
        "modify_pending_order_address": "write",
        "calculate": "none",
        "think": "none",
        "transfer_to_human_agents": "none",
    }
    address = tools["modify_pending_order_address"].parameters
    assert address["properties"]["address"] == {"$ref": "#/$defs/Address"}  # τ² pydantic $defs kept as they are
    assert tools["cancel_pending_order"].parameters["properties"]["reason"]["enum"] == [
        "no longer needed",
        "ordered by mistake",
    ]
    with pytest.raises(RecordError, match="unknown tool type") as exc:
        parse_tools(
            b'{"env": "x", "tools": [{"type": "function", "function": {"name": "a"}}], "tool_types": {"a": "MAGIC"}}'
        )
    assert exc.value.pointer == "/tool_types/a"


# --- import service --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "format_name", "count"),
    [
        ("openai_tools.json", "openai_tools", 3),
        ("openapi30_petstore.json", "openapi", 5),
        ("openapi31_calendar.yaml", "openapi", 2),
        ("mcp_tools_list.json", "mcp", 4),
        ("tau_bench_retail.json", "tau_bench", 7),
    ],
)
def test_registry_import_builds_a_draft_from_each_format(project, pm, name, format_name, count) -> None:
    registry = registry_import(actor=pm, project=project, name=name, data=fixture(name))
    assert (registry.version, registry.is_frozen, registry.source_format) == (1, False, format_name)
    assert registry.name == Path(name).stem and registry.tools.count() == count
    event = AuditEvent.objects.get(verb="registry.import", target_id=str(registry.pk))
    assert event.actor == pm and event.after["file"] == name and len(event.after["tools"]) == count


def test_bad_schema_is_refused_with_file_tool_and_pointer_and_nothing_is_written(project, pm) -> None:
    tools = [
        openai_tool("fine", {"a": {"type": "string"}}),
        openai_tool("broken", {"x": {"type": "strng"}}),
        openai_tool("also_broken", {"y": {"type": "string"}}, required="y"),  # type: ignore[arg-type]
        openai_tool("fine", {}),
    ]
    with pytest.raises(RegistryImportError) as exc:
        import_tools(project, pm, tools, name="bad.json")
    located = {(e.tool, e.pointer) for e in exc.value.located}
    assert ("broken", "/1/function/parameters/properties/x/type") in located
    assert ("also_broken", "/2/function/parameters/required") in located
    assert ("fine", "/3") in located  # the name is used twice
    first = next(e for e in exc.value.located if e.tool == "broken")
    assert first.file == "bad.json" and "invalid parameters schema at /properties/x/type" in first.message
    assert (
        "bad.json: tool 'broken' at /1/function/parameters/properties/x/type: invalid parameters schema"
        in exc.value.messages[0]
    )
    assert ToolRegistry.objects.count() == 0 and Tool.objects.count() == 0


def test_schema_dialect_and_refs_are_checked(project, pm) -> None:
    draft7 = openai_tool("d7", {"n": {"type": "integer", "exclusiveMinimum": 0}})
    draft7["function"]["parameters"]["$schema"] = "http://json-schema.org/draft-07/schema#"
    unknown = openai_tool("u", {})
    unknown["function"]["parameters"]["$schema"] = "https://example.com/my-dialect"
    dangling = openai_tool("r", {"a": {"$ref": "#/$defs/Nope"}})
    with pytest.raises(RegistryImportError) as exc:
        import_tools(project, pm, [draft7, unknown, dangling])
    assert {(e.tool, e.pointer) for e in exc.value.located} == {
        ("u", "/1/function/parameters/$schema"),
        ("r", "/2/function/parameters/properties/a/$ref"),
    }
    assert import_tools(project, pm, [draft7]).tools.get().name == "d7"


def test_unreadable_files_are_refused_with_where(project, pm) -> None:
    with pytest.raises(RegistryImportError, match=r"broken.json: malformed JSON.*line 2, column"):
        registry_import(actor=pm, project=project, name="broken.json", data=b'[\n {"name": }]')
    with pytest.raises(RegistryImportError, match=r"empty\.json: the file is empty"):
        registry_import(actor=pm, project=project, name="empty.json", data=b"  ")
    with pytest.raises(RegistryImportError, match="could not tell the tool format"):
        registry_import(actor=pm, project=project, name="x.json", data=b'{"a": 1}')
    with pytest.raises(RegistryImportError, match="YAML aliases"):
        registry_import(actor=pm, project=project, name="x.yaml", data=b"a: &x [1, 2]\nb: *x\n")
    assert ToolRegistry.objects.count() == 0


# --- edit, freeze, new version ---------------------------------------------------------------------


def edit(pm, tool: Tool, **changes) -> Tool:
    fields = {
        "description": tool.description,
        "parameters": tool.parameters,
        "returns": tool.returns,
        "side_effects": tool.side_effects,
        "latency_p99_ms": tool.latency_p99_ms,
    }
    return tool_update(actor=pm, tool=tool, **{**fields, **changes})


def test_tools_are_editable_until_the_registry_is_frozen(project, pm) -> None:
    registry = registry_import(actor=pm, project=project, name="t.json", data=fixture("openai_tools.json"))
    tool = registry.tools.get(name="get_weather")
    edited = edit(pm, tool, description="Weather now.", side_effects="read", latency_p99_ms=450)
    assert (edited.description, edited.side_effects, edited.latency_p99_ms) == ("Weather now.", "read", 450)
    event = AuditEvent.objects.get(verb="tool.update", target_id=str(tool.pk))
    assert event.before["side_effects"] == "none" and event.after == {
        "description": "Weather now.",
        "side_effects": "read",
        "latency_p99_ms": 450,
    }

    with pytest.raises(ValidationError) as exc:
        edit(pm, tool, parameters={"type": "object", "properties": {"x": {"type": "strng"}}})
    assert "invalid parameters schema at /properties/x/type" in exc.value.message_dict["parameters"][0]
    with pytest.raises(ValidationError) as exc:
        edit(pm, tool, side_effects="sometimes", latency_p99_ms=10**12)
    assert set(exc.value.message_dict) == {"side_effects", "latency_p99_ms"}

    registry_freeze(actor=pm, registry=registry)
    with pytest.raises(ValidationError, match="frozen and cannot change"):
        edit(pm, tool, description="too late")
    assert Tool.objects.get(pk=tool.pk).description == "Weather now."


def test_freeze_hash_is_stable_across_tool_order(project, pm) -> None:
    tools = json.loads(fixture("openai_tools.json"))
    first = registry_freeze(actor=pm, registry=import_tools(project, pm, tools))
    second = registry_freeze(actor=pm, registry=import_tools(project, pm, list(reversed(tools))))
    assert first.sha256 == second.sha256 and len(first.sha256) == 64
    assert first.sha256 == registry_sha256(list(first.tools.values()))
    tools[0]["function"]["description"] = "changed"
    third = registry_freeze(actor=pm, registry=import_tools(project, pm, tools))
    assert third.sha256 != first.sha256
    with pytest.raises(ValidationError, match="already frozen"):
        registry_freeze(actor=pm, registry=first)


def test_new_version_copies_a_frozen_registry_into_a_draft(project, pm) -> None:
    draft = registry_import(actor=pm, project=project, name="t.json", data=fixture("mcp_tools_list.json"))
    with pytest.raises(ValidationError, match="still a draft"):
        registry_new_version(actor=pm, registry=draft)
    frozen = registry_freeze(actor=pm, registry=draft)
    copy = registry_new_version(actor=pm, registry=frozen)
    assert (copy.version, copy.is_frozen, copy.source_format) == (2, False, "mcp")
    assert list(copy.tools.values_list("name", "side_effects")) == list(
        frozen.tools.values_list("name", "side_effects")
    )
    edit(pm, copy.tools.get(name="run_query"), side_effects="write")
    assert frozen.tools.get(name="run_query").side_effects == "destructive"
    assert AuditEvent.objects.get(verb="registry.new_version").after["from_version"] == 1
    assert registry_sha256(list(copy.tools.values())) != frozen.sha256


def test_work_is_handed_out_only_once_a_registry_is_frozen(project, pm) -> None:
    assert not project_can_hand_out_work(project)
    registry = import_tools(project, pm, [openai_tool("a", {})])
    assert not project_can_hand_out_work(project)
    registry_freeze(actor=pm, registry=registry)
    assert project_can_hand_out_work(project)


def test_registry_create_keeps_its_contract(project, pm) -> None:
    bad = {
        "type": "function",
        "function": {"name": "broken", "parameters": {"type": "object", "properties": {"x": {"type": "strng"}}}},
    }
    with pytest.raises(ValidationError, match=r"tool 'broken': invalid parameters schema at /properties/x/type"):
        registry_create(actor=pm, project=project, tools=[bad])
    registry = registry_create(actor=pm, project=project, tools=[openai_tool("a", {})], name="n")
    assert registry.version == 1 and registry.tools.get().side_effects == "read"


# --- drift -----------------------------------------------------------------------------------------


def drift_pair(project, pm):
    before = [
        openai_tool("search", {"q": {"type": "string"}, "limit": {"type": "integer"}}, ["q"], "Search."),
        openai_tool(
            "book",
            {
                "flight": {"type": "string"},
                "seats": {"type": "integer"},
                "passenger": {"type": "object", "properties": {"name": {"type": "string"}}},
            },
            ["flight"],
        ),
        openai_tool("legacy", {}),
    ]
    after = [
        openai_tool("search", {"q": {"type": "string"}, "limit": {"type": "integer"}}, ["q"], "Search better."),
        openai_tool(
            "book",
            {
                "flight": {"type": "string"},
                "seats": {"type": "string"},
                "cabin": {"type": "string"},
                "passenger": {
                    "type": "object",
                    "properties": {"name": {"type": "string"}, "dob": {"type": "string"}},
                    "required": ["dob"],
                },
            },
            ["flight", "cabin"],
        ),
        openai_tool("cancel", {"id": {"type": "string"}}, ["id"]),
    ]
    return import_tools(project, pm, before), import_tools(project, pm, after)


def test_registry_diff_reports_tools_parameters_types_and_required(project, pm) -> None:
    a, b = drift_pair(project, pm)
    drift = registry_diff(a, b)
    assert (drift.before, drift.after, drift.added, drift.removed) == (1, 2, ["cancel"], ["legacy"])
    by_name = {t.name: t for t in drift.changed}
    book = by_name["book"]
    assert book.params_added == ["cabin", "passenger.dob"] and book.params_removed == []
    assert [(r.path, r.before, r.after) for r in book.params_retyped] == [("seats", "integer", "string")]
    assert book.required_added == ["cabin", "passenger.dob"] and book.required_removed == []
    assert book.breaking and not book.description_changed
    assert by_name["search"].description_changed and not by_name["search"].breaking
    back = registry_diff(b, a)
    assert back.added == ["legacy"] and {t.name: t for t in back.changed}["book"].required_removed == [
        "cabin",
        "passenger.dob",
    ]
    assert registry_diff(a, a).is_empty and registry_diff(a, a).unchanged == 3
    text = drift.as_text()
    assert "+ tool cancel" in text and "- tool legacy" in text and "~ parameter seats: integer → string" in text
    assert drift.as_dict()["changed"][0]["breaking"] is True


# --- pages -----------------------------------------------------------------------------------------


def url(name: str, project, **kwargs) -> str:
    return reverse(f"trajectories:{name}", kwargs={"project_slug": project.slug, **kwargs})


@pytest.fixture
def draft(project, pm) -> ToolRegistry:
    tools = json.loads(fixture("openai_tools.json"))
    tools[0]["function"]["description"] = "<script>alert(1)</script>"
    return import_tools(project, pm, tools)


def test_page_permissions(project, pm, reviewer, qa_lead, annotator, outsider, draft) -> None:
    tool = draft.tools.first()
    reads = [
        url("registry_list", project),
        url("registry_detail", project, version=1),
        url("registry_drift", project),
        url("registry_canonical", project, version=1),
    ]
    writes = [url("registry_freeze", project, version=1), url("tool_edit", project, version=1, tool_id=tool.pk)]
    for user in (pm, reviewer, qa_lead):
        client = login(user)
        assert [client.get(u).status_code for u in reads] == [200] * 4
    assert [login(pm).get(u).status_code for u in writes] == [200, 200]
    for u in writes:
        assert login(reviewer).get(u).status_code == 403
    assert login(reviewer).post(url("registry_upload", project)).status_code == 403
    assert login(reviewer).post(url("registry_new_version", project, version=1)).status_code == 403
    for u in reads + writes:
        assert login(annotator).get(u).status_code == 403
        assert login(outsider).get(u).status_code == 404
    assert login(pm).get(url("registry_detail", project, version=9)).status_code == 404


def test_registry_pages_show_versions_tools_and_escape(project, pm, pm_client, draft) -> None:
    page = pm_client.get(url("registry_list", project)).content.decode()
    assert "v1" in page and "Draft" in page and "openai_tools" in page and ">active<" not in page
    draft_page = pm_client.get(url("registry_detail", project, version=1)).content.decode()
    assert "Freeze…" in draft_page and ">Edit</a>" in draft_page and "New version" not in draft_page
    registry_freeze(actor=pm, registry=draft)
    assert ">active<" in pm_client.get(url("registry_list", project)).content.decode()
    detail = pm_client.get(url("registry_detail", project, version=1)).content.decode()
    assert "get_weather" in detail and "New version" in detail and ">Edit</a>" not in detail
    assert "<script>alert(1)" not in detail and "&lt;script&gt;alert(1)" in detail
    overview = pm_client.get(reverse("trajectories:project_overview", kwargs={"project_slug": project.slug}))
    assert url("registry_list", project) in overview.content.decode()


def test_htmx_tool_edit_partial(project, pm_client, draft) -> None:
    tool = draft.tools.get(name="get_weather")
    edit_url = url("tool_edit", project, version=1, tool_id=tool.pk)
    fragment = pm_client.get(edit_url, headers={"HX-Request": "true"})
    body = fragment.content.decode()
    assert fragment.status_code == 200 and "<html" not in body and f'id="tool-{tool.pk}"' in body
    assert "&quot;city&quot;" in body  # the schema, pretty-printed in the textarea

    form = {"description": "d", "side_effects": "read", "latency_p99_ms": "120", "returns": ""}
    bad = pm_client.post(
        edit_url,
        {**form, "parameters": '{"type": "object", "properties": {"x": {"type": "strng"}}}'},
        headers={"HX-Request": "true"},
    )
    assert bad.status_code == 422 and "<html" not in bad.content.decode()
    assert "invalid parameters schema at /properties/x/type" in bad.content.decode()
    not_json = pm_client.post(edit_url, {**form, "parameters": "{oops"}, headers={"HX-Request": "true"})
    assert not_json.status_code == 422 and "not valid JSON" in not_json.content.decode()
    assert Tool.objects.get(pk=tool.pk).description != "d"

    ok = pm_client.post(
        edit_url,
        {**form, "parameters": '{"type": "object", "properties": {"city": {"type": "string"}}}'},
        headers={"HX-Request": "true"},
    )
    assert ok.status_code == 200 and ok.content.decode().lstrip().startswith(f'<tr id="tool-{tool.pk}"')
    saved = Tool.objects.get(pk=tool.pk)
    assert (saved.description, saved.latency_p99_ms, saved.returns) == ("d", 120, None)

    full = pm_client.post(edit_url, {**form, "parameters": "{}", "description": "plain"})
    assert full.status_code == 302 and Tool.objects.get(pk=tool.pk).description == "plain"


def test_upload_freeze_new_version_and_edit_refusal_in_the_browser(project, pm_client) -> None:
    upload = SimpleUploadedFile("petstore.json", fixture("openapi30_petstore.json"))
    response = pm_client.post(url("registry_upload", project), {"upload": upload, "format": "", "name": "Pets"})
    assert response.status_code == 302 and response["Location"] == url("registry_detail", project, version=1)
    registry = ToolRegistry.objects.get(project=project)
    assert registry.name == "Pets" and registry.tools.count() == 5

    bad = SimpleUploadedFile("bad.json", orjson.dumps([openai_tool("b", {"x": {"type": "strng"}})]))
    refused = pm_client.post(url("registry_upload", project), {"upload": bad})
    page = refused.content.decode()
    assert (
        refused.status_code == 422
        and "/0/function/parameters/properties/x/type" in page
        and "Nothing was saved" in page
    )

    confirm = pm_client.get(url("registry_freeze", project, version=1)).content.decode()
    from trajectories.services.registries import CANONICAL_KEYS

    assert registry_sha256(list(registry.tools.values(*CANONICAL_KEYS))) in confirm
    assert pm_client.post(url("registry_freeze", project, version=1)).status_code == 302
    registry.refresh_from_db()
    assert registry.is_frozen
    tool = registry.tools.first()
    edit_url = url("tool_edit", project, version=1, tool_id=tool.pk)
    assert pm_client.get(edit_url)["Location"] == url("registry_detail", project, version=1)
    assert pm_client.get(edit_url, headers={"HX-Request": "true"})["HX-Redirect"] == url(
        "registry_detail", project, version=1
    )
    refused_edit = pm_client.post(edit_url, {"parameters": "{}", "side_effects": "read"})
    assert refused_edit.status_code == 422 and "frozen and cannot change" in refused_edit.content.decode()

    created = pm_client.post(url("registry_new_version", project, version=1))
    assert created["Location"] == url("registry_detail", project, version=2)
    assert ToolRegistry.objects.get(project=project, version=2).tools.count() == 5
    canonical = pm_client.get(url("registry_canonical", project, version=1))
    assert canonical["Content-Type"] == "application/json"
    assert registry.sha256 == __import__("hashlib").sha256(canonical.content).hexdigest()


def test_drift_page_html_text_and_json(project, pm, pm_client) -> None:
    drift_pair(project, pm)
    page = pm_client.get(url("registry_drift", project))  # defaults: previous → latest
    html = page.content.decode()
    assert page.status_code == 200 and "v1 → v2" in html and 'class="diff-add"' in html and "cancel" in html
    text = pm_client.get(url("registry_drift", project) + "?a=1&b=2&format=text")
    assert text["Content-Type"].startswith("text/plain") and "- tool legacy" in text.content.decode()
    data = pm_client.get(url("registry_drift", project) + "?a=2&b=1&format=json").json()
    assert data["added"] == ["legacy"] and data["removed"] == ["cancel"]
    assert pm_client.get(url("registry_drift", project) + "?a=1&b=7").status_code == 404


# --- CLI -------------------------------------------------------------------------------------------


def test_cli_imports_and_freezes(project, pm, capsys) -> None:
    call_command("import_registry", project.slug, str(FIXTURES / "tau_bench_retail.json"), "--freeze", "--as", "pm")
    out = capsys.readouterr().out
    registry = ToolRegistry.objects.get(project=project)
    assert registry.is_frozen and f"registry v1 with 7 tools (frozen, sha256 {registry.sha256})" in out
    assert AuditEvent.objects.get(verb="registry.freeze").actor == pm
    call_command("import_registry", project.slug, str(FIXTURES / "openai_tools.json"), "--format", "openai_tools")
    assert "registry v2 with 3 tools (draft)" in capsys.readouterr().out


def test_cli_reports_faults_and_writes_nothing(project, tmp_path, capsys) -> None:
    bad = tmp_path / "bad.json"
    bad.write_bytes(orjson.dumps([openai_tool("b", {"x": {"type": "strng"}})]))
    with pytest.raises(SystemExit) as exc:
        call_command("import_registry", project.slug, str(bad), "--freeze")
    assert exc.value.code == 2
    assert "bad.json: tool 'b' at /0/function/parameters/properties/x/type" in capsys.readouterr().err
    assert not ToolRegistry.objects.exists()
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="no such file"):
        call_command("import_registry", project.slug, str(tmp_path / "missing.json"))
