"""The layer rules of docs/architecture.md hold: no cycle, no upward import, inference loads no training code."""

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_the_import_graph_keeps_the_layer_rules():
    result = subprocess.run([sys.executable, str(REPO / "scripts" / "import_graph.py")],
                            capture_output=True, text=True, cwd=REPO)
    problems = [line for line in result.stdout.splitlines() if line.startswith(("CYCLE", "UPWARD", "INFERENCE"))]
    assert result.returncode == 0 and problems == [], result.stdout + result.stderr


def test_inference_loads_no_training_module():
    # At run time, not only in the static graph: a package's __init__ runs on any import below it.
    probe = ("import sys, talkface.pipelines.infer; "
             "print(' '.join(m for m in sys.modules if m.startswith('talkface.')))")
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=REPO,
                            check=True).stdout.split()
    training = [m for m in loaded if m.endswith(".train") and m != "talkface.train"
                or m in ("talkface.train.trainer", "talkface.train.task")]
    assert "talkface.pipelines.infer" in loaded
    assert training == []
