"""Demo data the project generates itself: airline-desk goals and scripted agent runs, and a
small SWE-style coding task with its runs. Deterministic for a given seed; no Django models.

Tool-use runs are OpenAI chat records ({messages, tools, metadata}). Every call is executed
against the airline environment, so observations are real, and each run's reward is computed
τ-bench-style: the final state after replaying the run's calls on a fresh `reset(seed)` must
equal the state after the gold actions, and the expected outputs must appear in the replies.
"""

from demo.rollouts.agents import agent_calls, reward_of, tool_specs, tool_use_runs
from demo.rollouts.airline_goals import goals
from demo.rollouts.coding import coding_runs, coding_task, coding_tool_specs
from demo.rollouts.setting import BEHAVIOURS, ENV, MODELS, WRITE_TOOLS

ENVIRONMENT = ENV.name

__all__ = [
    "BEHAVIOURS",
    "ENVIRONMENT",
    "MODELS",
    "WRITE_TOOLS",
    "agent_calls",
    "coding_runs",
    "coding_task",
    "coding_tool_specs",
    "goals",
    "reward_of",
    "tool_specs",
    "tool_use_runs",
]
