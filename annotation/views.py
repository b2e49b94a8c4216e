"""The annotator's workspace: queue, step view with autosave, trajectory verdict, submit and skip.

Every view loads the assignment through `assignment_get_for_user_by_slug`: an assignment exists only for
its own annotator (anyone else gets 404), and a non-member gets 404 for the project.
"""

from __future__ import annotations

from typing import Any

import orjson
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.http import reswap, retarget, trigger_client_event

from annotation.forms import STEP_GROUPS, VERDICT_GROUPS, GoldForm, SkipForm, parse_step_save, parse_verdict_save
from annotation.models import Assignment, StepLabel, TrajectoryLabel
from annotation.selectors import (
    assignment_get_for_user_by_slug,
    assignment_is_open,
    assignment_trajectory_label,
    failure_taxonomy,
    finding_for_step,
    first_incomplete_index,
    queue_for_annotator,
    queue_progress,
    queue_progress_rows,
    skipped_assignments,
    step_choices,
    step_for_assignment,
    step_label_for,
    step_status,
    step_workspace,
    suggestion_for,
    suggestion_values,
    verdict_label_for,
)
from annotation.services import (
    Incomplete,
    LabelConflict,
    LeaseLost,
    NoWork,
    assignment_claim_next,
    assignment_skip,
    assignment_submit,
    gold_item_create,
    missing_labels,
    step_label_save,
    trajectory_label_save,
)
from core.http import AuthenticatedHttpRequest, render_page
from core.models import Project, Role
from core.selectors import MANAGE_ROLES, REVIEW_ROLES, check_role, project_get_for_user
from trajectories.models import Step, Tool, Trajectory
from trajectories.selectors.runs import trajectory_get_for_user

PAGE_SIZE = 50
YES_NO = [("goal_completed", "Goal completed"), ("overall_success", "Overall success")]
SCORES = [
    ("efficiency", "Efficiency", "1 many needless steps · 3 some waste · 5 no wasted step"),
    ("error_handling", "Error handling", "1 ignored or worsened errors · 3 partly recovered · 5 recovered cleanly"),
]


def _load(
    request: AuthenticatedHttpRequest, project_slug: str, assignment_id: int, *, registry: bool = False
) -> tuple[Project, str, Assignment]:
    """`registry`: for the views that show the step view (its tools then come from the cache)."""
    return assignment_get_for_user_by_slug(
        user=request.user, slug=project_slug, assignment_id=assignment_id, registry=registry
    )


def _step_url(project: Project, assignment: Assignment, index: int) -> str:
    return reverse(
        "annotation:step", kwargs={"project_slug": project.slug, "assignment_id": assignment.pk, "index": index}
    )


def _verdict_url(project: Project, assignment: Assignment) -> str:
    return reverse("annotation:verdict", kwargs={"project_slug": project.slug, "assignment_id": assignment.pk})


# --- the queue ---------------------------------------------------------------------------------------


@require_GET
def queue(request: AuthenticatedHttpRequest, project_slug: str) -> HttpResponse:
    project, role = project_get_for_user(user=request.user, slug=project_slug)
    context: dict[str, Any] = {"project": project, "role": role, "now": timezone.now(), "can_review": False}
    if role == Role.ANNOTATOR:
        context["mine"] = queue_for_annotator(user=request.user, project=project)
    if role in REVIEW_ROLES:
        page = Paginator(queue_progress_rows(project=project), PAGE_SIZE).get_page(request.GET.get("page"))
        context.update(
            can_review=True,
            page=page,
            progress=queue_progress(trajectories=list(page.object_list)),
            skipped=skipped_assignments(project=project),
            show_gold=role in MANAGE_ROLES,
        )
    return render_page(request, "annotation/queue.html", context, partial="progress" if context["can_review"] else None)


@require_POST
def start_next(request: AuthenticatedHttpRequest, project_slug: str) -> HttpResponse:
    project, _role = project_get_for_user(user=request.user, slug=project_slug)
    try:
        assignment = assignment_claim_next(annotator=request.user, project=project)
    except NoWork as exc:
        messages.info(request, str(exc))
        return redirect("annotation:queue", project_slug=project.slug)
    return redirect("annotation:assignment", project_slug=project.slug, assignment_id=assignment.pk)


@require_GET
def assignment_open(request: AuthenticatedHttpRequest, project_slug: str, assignment_id: int) -> HttpResponse:
    """The first step that still needs a label, else the trajectory verdict."""
    project, _role, assignment = _load(request, project_slug, assignment_id)
    index = first_incomplete_index(missing=missing_labels(assignment=assignment))
    if index is None:
        return redirect(_verdict_url(project, assignment))
    return redirect(_step_url(project, assignment, index))


# --- the step view -----------------------------------------------------------------------------------


def _step_context(
    project: Project, role: str, assignment: Assignment, index: int, *, fragment: bool, **extra: Any
) -> dict[str, Any]:
    """A full page carries the whole outline; a fragment (HTMX) only this step's line, swapped out of band."""
    ws = step_workspace(assignment=assignment, index=index, outline=not fragment)
    return {
        "project": project,
        "role": role,
        "assignment": assignment,
        "ws": ws,
        "fragment": fragment,
        "open": assignment_is_open(assignment),
        "groups": STEP_GROUPS,
        "version": ws.label.version if ws.label else 0,
        "trajectory_label": assignment_trajectory_label(assignment),
        "taxonomy": ws.taxonomy,
        "current": str(ws.step.index),
        **extra,
    }


@require_GET
def step_view(request: AuthenticatedHttpRequest, project_slug: str, assignment_id: int, index: int) -> HttpResponse:
    project, role, assignment = _load(request, project_slug, assignment_id, registry=True)
    context = _step_context(project, role, assignment, index, fragment=bool(request.htmx))
    return render_page(request, "annotation/step.html", context, partial="workspace")


def _slot_id(key: str, names: list[str]) -> str:
    if key.startswith("corrected_arguments."):
        name = key.split(".", 1)[1]
        return f"err-corrected-{names.index(name)}" if name in names else "err-corrected_arguments"
    return f"err-{key}"


def _error_slots(exc: ValidationError, names: list[str]) -> tuple[list[tuple[str, str]], str]:
    """(error slot id, message) for each field error, and the message for the save state."""
    if not hasattr(exc, "error_dict"):
        return [], " ".join(exc.messages)
    slots = [(_slot_id(key, names), " ".join(errors)) for key, errors in exc.message_dict.items()]
    return slots, "fix the field marked below"


def _cleared_slots(groups: list[str], names: list[str]) -> list[tuple[str, str]]:
    slots: list[tuple[str, str]] = []
    for group in groups:
        if group == "corrected_arguments":
            slots.extend((f"err-corrected-{i}", "") for i in range(len(names)))
        slots.append((f"err-{group}", ""))
    return slots


def _save_refused(
    request: AuthenticatedHttpRequest,
    context: dict[str, Any],
    state: str,
    message: str,
    status: int,
    slots: list[tuple[str, str]] | None = None,
    back: str = "",
) -> HttpResponse:
    """A refused save: the save state (and field errors) only — the annotator's inputs stay as they are."""
    if request.POST.get("beacon"):
        return HttpResponse(status=status)
    if not request.htmx:
        messages.error(request, message)
        return redirect(back)
    context.update(save_state=state, save_message=message, slots=slots or [], oob=False)
    response = render(request, "annotation/_save_response.html", context, status=status)
    if request.headers.get("HX-Target") != "save-state":
        retarget(response, "#save-state")
        reswap(response, "outerHTML")
    return response


def _argument_names(step: Step) -> list[str]:
    return list(step.arguments) if isinstance(step.arguments, dict) else []


@require_POST
def step_save(request: AuthenticatedHttpRequest, project_slug: str, assignment_id: int, index: int) -> HttpResponse:
    """Autosave of the fields named in `field`, based on `base_version`; 409 on a conflict, 422 if invalid."""
    project, _role, assignment = _load(request, project_slug, assignment_id)
    step = step_for_assignment(assignment=assignment, index=index)
    tool = None
    if step.tool_id is not None and "corrected_arguments" in request.POST.getlist("field"):
        tool = Tool.objects.filter(pk=step.tool_id).only("id", "parameters").first()
    context: dict[str, Any] = {"project": project, "assignment": assignment, "ws": {"step": step}}
    back = _step_url(project, assignment, index)
    names = _argument_names(step)
    try:
        save = parse_step_save(request.POST, step=step, tool=tool)
        label = step_label_save(
            annotator=request.user,
            assignment=assignment,
            step=step,
            values=save.values,
            base_version=save.base_version,
            elapsed_ms=save.elapsed_ms,
        )
    except LabelConflict as exc:
        return _save_refused(request, context, "conflict", str(exc), 409, back=back)
    except LeaseLost as exc:
        return _save_refused(request, context, "lease", str(exc), 409, back=back)
    except ValidationError as exc:
        slots, message = _error_slots(exc, names)
        return _save_refused(request, context, "invalid", message, 422, slots, back=back)
    if request.POST.get("beacon"):
        return HttpResponse(status=204)
    if not request.htmx:
        return redirect(back)
    status = step_status(assignment=assignment, step=step, label=label)
    context.update(
        save_state="saved", saved=True, version=label.version, slots=_cleared_slots(save.groups, names), item=status
    )
    response = render(request, "annotation/_save_response.html", context)
    # The outline line's new status: workspace.js sets its class (the line itself is not sent again).
    event = {"index": step.index, "status": status.letter, "missing": "; ".join(status.missing)}
    return trigger_client_event(response, "stepwise:status", event)


@require_POST
def suggestion_accept(
    request: AuthenticatedHttpRequest, project_slug: str, assignment_id: int, index: int, finding_id: int
) -> HttpResponse:
    """Write a machine finding's suggestion as the annotator's own label (only on their request)."""
    project, role, assignment = _load(request, project_slug, assignment_id, registry=True)
    step = step_for_assignment(assignment=assignment, index=index)
    finding = finding_for_step(assignment=assignment, step=step, finding_id=finding_id)
    label: StepLabel | None = step_label_for(assignment=assignment, step=step)
    taxonomy = {str(t["key"]) for t in failure_taxonomy(project)}
    suggestion = suggestion_for(finding=finding, step=step, taxonomy=taxonomy)
    context: dict[str, Any] = {"project": project, "assignment": assignment, "ws": {"step": step}}
    back = _step_url(project, assignment, index)
    if suggestion.empty:
        return _save_refused(request, context, "invalid", "This finding suggests no label.", 422, back=back)
    try:
        step_label_save(
            annotator=request.user,
            assignment=assignment,
            step=step,
            values=suggestion_values(suggestion=suggestion, label=label),
            base_version=int(request.POST.get("base_version") or 0),
        )
    except LabelConflict as exc:
        return _save_refused(request, context, "conflict", str(exc), 409, back=back)
    except LeaseLost as exc:
        return _save_refused(request, context, "lease", str(exc), 409, back=back)
    except (ValidationError, ValueError) as exc:
        message = " ".join(exc.messages) if isinstance(exc, ValidationError) else "bad version"
        return _save_refused(request, context, "invalid", message, 422, back=back)
    if not request.htmx:
        return redirect(back)
    context = _step_context(project, role, assignment, index, fragment=True, save_state="saved")
    return render(request, "annotation/step.html#workspace", context)


# --- the trajectory verdict, submit, skip --------------------------------------------------------------


def _verdict_context(
    project: Project, role: str, assignment: Assignment, *, missing: list[Any] | None = None, **extra: Any
) -> dict[str, Any]:
    label: TrajectoryLabel | None = verdict_label_for(assignment=assignment)
    steps = step_choices(assignment=assignment)
    return {
        "project": project,
        "role": role,
        "assignment": assignment,
        "label": label,
        "version": label.version if label else 0,
        "values": {
            name: getattr(label, name, None)
            for name in ("goal_completed", "overall_success", "efficiency", "error_handling")
        },
        "first_failing": label.first_failing_step.index if label and label.first_failing_step else None,
        "steps": steps,
        "last_step": steps[-1].index if steps else None,
        "missing": missing if missing is not None else missing_labels(assignment=assignment),
        "yes_no": YES_NO,
        "scores": SCORES,
        "groups": VERDICT_GROUPS,
        "open": assignment_is_open(assignment),
        "trajectory_label": assignment_trajectory_label(assignment),
        "taxonomy": failure_taxonomy(project),
        **extra,
    }


@require_GET
def verdict_view(request: AuthenticatedHttpRequest, project_slug: str, assignment_id: int) -> HttpResponse:
    project, role, assignment = _load(request, project_slug, assignment_id)
    return render(request, "annotation/verdict.html", _verdict_context(project, role, assignment))


@require_POST
def verdict_save(request: AuthenticatedHttpRequest, project_slug: str, assignment_id: int) -> HttpResponse:
    project, _role, assignment = _load(request, project_slug, assignment_id)
    context: dict[str, Any] = {"project": project, "assignment": assignment}
    back = _verdict_url(project, assignment)
    try:
        save = parse_verdict_save(request.POST)
        label = trajectory_label_save(
            annotator=request.user,
            assignment=assignment,
            values=save.values,
            base_version=save.base_version,
            elapsed_ms=save.elapsed_ms,
        )
    except LabelConflict as exc:
        return _save_refused(request, context, "conflict", str(exc), 409, back=back)
    except LeaseLost as exc:
        return _save_refused(request, context, "lease", str(exc), 409, back=back)
    except ValidationError as exc:
        slots, message = _error_slots(exc, [])
        return _save_refused(request, context, "invalid", message, 422, slots, back=back)
    if request.POST.get("beacon"):
        return HttpResponse(status=204)
    if not request.htmx:
        return redirect(back)
    context.update(
        save_state="saved",
        saved=True,
        version=label.version,
        slots=_cleared_slots(save.groups, []),
        missing_block=True,
        missing=missing_labels(assignment=assignment),
    )
    return render(request, "annotation/_save_response.html", context)


@require_POST
def submit(request: AuthenticatedHttpRequest, project_slug: str, assignment_id: int) -> HttpResponse:
    project, role, assignment = _load(request, project_slug, assignment_id)
    try:
        assignment_submit(annotator=request.user, assignment=assignment)
    except Incomplete as exc:
        context = _verdict_context(project, role, assignment, missing=exc.missing, submit_failed=True)
        return render(request, "annotation/verdict.html", context, status=422)
    except LeaseLost as exc:
        messages.error(request, str(exc))
        return redirect(_verdict_url(project, assignment))
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
        return redirect(_verdict_url(project, assignment))
    messages.success(request, f"Trajectory #{assignment.trajectory_id} submitted — thank you.")
    return redirect("annotation:queue", project_slug=project.slug)


@require_http_methods(["GET", "POST"])
def skip(request: AuthenticatedHttpRequest, project_slug: str, assignment_id: int) -> HttpResponse:
    project, role, assignment = _load(request, project_slug, assignment_id)
    form = SkipForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            assignment_skip(annotator=request.user, assignment=assignment, reason=form.cleaned_data["reason"])
        except ValidationError as exc:
            form.add_error(None, exc)
        else:
            messages.success(request, f"Trajectory #{assignment.trajectory_id} skipped.")
            return redirect("annotation:queue", project_slug=project.slug)
    context = {"project": project, "role": role, "assignment": assignment, "form": form}
    status = 422 if request.method == "POST" else 200
    return render_page(request, "annotation/skip.html", context, partial="skip-form", status=status)


# --- gold items (project managers) --------------------------------------------------------------------


def _reference_template(trajectory: Trajectory) -> str:
    """A starting point for the reference labels: every step, every field, to be corrected by hand."""
    reference: dict[str, Any] = {}
    for step in trajectory.steps.order_by("index").only("index", "kind", "arguments"):
        labels: dict[str, Any] = {"failure_modes": ["none"], "process_reward": 1}
        if step.kind == "tool_call":
            arguments = step.arguments if isinstance(step.arguments, dict) else {}
            labels |= {
                "argument_verdicts": {name: "valid" for name in arguments},
                "tool_verdict": "right",
                "env_feedback": "success",
            }
        reference[str(step.index)] = labels
    return orjson.dumps(reference, option=orjson.OPT_INDENT_2).decode()


@require_http_methods(["GET", "POST"])
def gold_create(request: AuthenticatedHttpRequest, project_slug: str, trajectory_id: int) -> HttpResponse:
    """A project manager makes a trajectory a gold item by hand, with reference labels for every step."""
    project, role = project_get_for_user(user=request.user, slug=project_slug)
    check_role(role=role, allowed=MANAGE_ROLES)
    trajectory = trajectory_get_for_user(user=request.user, project=project, role=role, trajectory_id=trajectory_id)
    form = GoldForm(request.POST or None, initial={"reference": _reference_template(trajectory)})
    if request.method == "POST" and form.is_valid():
        try:
            gold_item_create(
                actor=request.user,
                trajectory=trajectory,
                reference=form.cleaned_data["reference"],
                explanation=form.cleaned_data["explanation"],
            )
        except ValidationError as exc:
            for message in exc.messages:
                form.add_error("reference" if hasattr(exc, "error_dict") else None, message)
        else:
            messages.success(request, f"Trajectory #{trajectory.pk} is now a gold item.")
            return redirect("annotation:queue", project_slug=project.slug)
    context = {"project": project, "role": role, "trajectory": trajectory, "form": form}
    status = 422 if request.method == "POST" else 200
    return render_page(request, "annotation/gold.html", context, partial="gold-form", status=status)
