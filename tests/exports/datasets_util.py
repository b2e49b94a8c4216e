"""Loading export files with Hugging Face `datasets`, offline, in a child process of its own."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any


def load_with_datasets(script: str, jsonl: Path, parquet: Path, tmp_path: Path) -> dict[str, Any]:
    """Run `script` (which reads jsonl, parquet and a cache folder from argv and prints one JSON line last)."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")}
    done = subprocess.run(
        [sys.executable, "-c", script, str(jsonl), str(parquet), str(tmp_path / "cache")],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])
