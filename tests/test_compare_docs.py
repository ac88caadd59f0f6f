"""The Python examples of docs/compare.md run (the Dask one where the dask extra is installed)."""

import importlib.util
import subprocess
import sys
from pathlib import Path

PAGE = Path(__file__).resolve().parents[1] / "docs" / "compare.md"


def test_compare_page_examples_run(tmp_path):
    blocks = [b.split("```", 1)[0] for b in PAGE.read_text().split("```python\n")[1:]]
    assert len(blocks) >= 5
    if importlib.util.find_spec("distributed") is None:
        blocks = [b for b in blocks if "dask" not in b]
    done = subprocess.run(
        [sys.executable, "-c", "\n".join(blocks)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "Test accuracy (%)" in done.stdout and "AUROC" in done.stdout
    assert (tmp_path / "accuracy.tex").read_text().startswith("% Test accuracy")
    assert (tmp_path / "comparison.pdf").read_bytes().startswith(b"%PDF")
