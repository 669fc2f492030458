"""The documentation (docs/, built with mkdocs) builds without a warning: every page in the nav, every link and
anchor resolving; and the task reference names every task the tool has. Unit tier (no network: mkdocs builds
from the checkout)."""
import os
import subprocess
import sys
from pathlib import Path

from tasks.main import namespace

REPO = Path(__file__).resolve().parents[2]


def test_the_docs_build_strictly(tmp_path):
    mkdocs = Path(sys.executable).parent / "mkdocs"
    out = subprocess.run([str(mkdocs), "build", "--strict", "-q", "-d", str(tmp_path / "site")], cwd=REPO,
                         capture_output=True, text=True, timeout=120, env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert out.returncode == 0, out.stdout + out.stderr
    assert (tmp_path / "site" / "hosts-yml" / "index.html").exists()


def test_the_task_reference_shows_every_task_with_an_example():
    text = (REPO / "docs" / "tasks.md").read_text()
    missing = [name for name in namespace.task_names if f"`fab {name} " not in text and f"`fab {name}`" not in text]
    assert not missing, f"docs/tasks.md has no example of: {missing}"


def test_the_readme_is_a_map_to_every_page():
    readme, pages = (REPO / "README.md").read_text(), sorted(p.name for p in (REPO / "docs").glob("*.md"))
    assert [p for p in pages if p != "index.md" and f"(docs/{p})" not in readme] == []
    assert "scripts/demo" in readme and "scripts/test" in readme, "the two commands"
