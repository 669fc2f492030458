"""The execution layer's pure parts: redaction and the parsing of a program's progress lines."""
from tasks.remote import Progress, Redactor, Result


def test_redactor_masks_known_values_and_token_shapes():
    r = Redactor("s3cret-value")
    text = "login with s3cret-value and ghp_" + "A1b2" * 9 + " or github_pat_" + "x" * 30
    out = r(text)
    assert "s3cret-value" not in out and "ghp_" not in out and "github_pat_" not in out
    assert out.count("***") == 3
    assert r("nothing to hide") == "nothing to hide"


def test_progress_collects_data_errors_history_and_log():
    res = Result()
    p = Progress("h/s", res, quiet=True)
    p.write("@@step lock taking the lock\n@@data pin ems v1@sha256:ab\nPulling fs layer\n@@history-")
    p.write("begin\n{\"a\": 1}\n@@history-end\n@@current tag v1\n@@error locked by ana ghp_" + "Z" * 36 + "\n")
    assert res.data == {"pin": ["ems v1@sha256:ab"]}
    assert res.history == ['{"a": 1}'] and res.current == ["tag v1"]
    assert res.log == ["Pulling fs layer"]
    assert res.errors == ["locked by ana ***"]
    assert res.first("pin") == "ems v1@sha256:ab" and res.first("missing", "d") == "d"
