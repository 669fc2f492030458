"""The protocol's pure parts: redaction, reading a program's lines into a Result, exit codes defined once."""
import json
import re
from pathlib import Path

import pytest

from tasks.core import errors
from tasks.core.errors import ToolError
from tasks.core.grammar import Redactor
from tasks.core.programs import library
from tasks.core.programs.protocol import TOOL_CODE, Code, Reader, Result
from tasks.core.ui import StepDisplay


def test_redactor_masks_known_values_and_token_shapes():
    r = Redactor("s3cret-value")
    text = "login with s3cret-value and ghp_" + "A1b2" * 9 + " or github_pat_" + "x" * 30
    out = r(text)
    assert "s3cret-value" not in out and "ghp_" not in out and "github_pat_" not in out
    assert out.count("***") == 3
    assert r("nothing to hide") == "nothing to hide"


@pytest.mark.parametrize("shape", ["ghp_" + "A1b2" * 9, "gho_" + "Z" * 20, "ghs_" + "9" * 16, "github_pat_" + "x_1" * 10])
@pytest.mark.parametrize("before, after", [("", ""), ("x", ""), ("_", ""), ("\x1b[31m", "\x1b[0m"), ("9", "z"),
                                           ("token=", ";"), ("'", "'"), ("é", "_")])
def test_a_token_shape_is_masked_glued_to_anything(shape, before, after):
    """Issue 20 item 5: a \\b before the shape let 49 of 133 shape x context pairs print whole."""
    out = Redactor()(f"{before}{shape}{after}")
    assert shape not in out and shape[4:12] not in out and "***" in out


def read(*lines: str) -> Result:
    result = Result()
    reader = Reader(result, StepDisplay("h/s", quiet=True))
    for line in lines:
        reader.line(line)
    return result


def test_reader_collects_data_text_errors_and_log():
    res = read("@@step lock taking the lock", '@@data pin {"app":"ems","pin":"v1@sha256:ab"}', "Pulling fs layer",
               "@@text history {\"a\": 1}", '@@data pin {"app":"sms","pin":"v2@sha256:cd"}',
               "@@error locked by ana")
    assert res.all("pin") == [{"app": "ems", "pin": "v1@sha256:ab"}, {"app": "sms", "pin": "v2@sha256:cd"}]
    assert res.one("pin")["app"] == "sms" and res.one("missing") is None
    assert res.text == {"history": ['{"a": 1}']}
    assert res.log == ["Pulling fs layer"] and res.errors == ["locked by ana"]


@pytest.mark.parametrize("line", ["@@data pin not-json", "@@data pin [1, 2]", "@@data pin"])
def test_malformed_data_is_an_error_not_a_guess(line):
    with pytest.raises(ToolError, match="malformed @@data pin"):
        read(line)


def test_every_remote_code_maps_to_a_tool_code_and_the_shell_uses_only_those():
    assert set(TOOL_CODE) == set(Code)
    assert TOOL_CODE[Code.LOCKED] == errors.BUSY and TOOL_CODE[Code.ROLLED_BACK] == errors.ROLLED_BACK
    used = set().union(*(f.codes for f in library.load().functions.values()))
    assert used <= {c.shell_name for c in Code}, used - {c.shell_name for c in Code}
    assert {c.shell_name for c in Code} <= used, "a remote code no shell function uses"


@pytest.mark.parametrize("data", [{"old": [{"project": "p"}]}, {"space": [{"need": "lots"}]},
                                  {"old": [{"project": "p", "workdir": 1, "files": "f", "service": "s", "ref": [],
                                            "pin": ""}]}])
def test_an_odd_survey_is_a_clear_error_not_a_crash(data):
    from tasks.core.programs.migrate import Survey
    with pytest.raises(ToolError, match="the host sent a report the tool cannot read") as e:
        Survey.parse(Result(data=data))
    assert e.value.code == errors.BAD_INPUT


@pytest.mark.parametrize("created, size", [("yesterday", "10"), ("2026-13-45T00:00:00Z", "10"),
                                           ("2026-12-03T10:00:00Z", "²"), ("2026-12-03T10:00:00Z", "1e3"),
                                           ("2026-12-03T10:00:00Z", "٣")])
def test_a_backup_listing_with_a_malformed_time_or_size_is_exit_2_not_a_crash(created, size):
    """Issue 20 item 12: a manifest's `created` or a size that is not a count ended in an unexpected
    ValueError (exit 1) when `fab backups` showed its age or size."""
    from tasks.core.programs.backup import listed, taken
    manifest = {"name": "postgres-20261203T100000Z", "stack": "postgres", "created": created, "taken": "ana",
                "release": "r1", "verified": "yes", "databases": ["db"]}
    with pytest.raises(ToolError, match="the host sent a report the tool cannot read") as e:
        listed(Result(data={"manifest": [manifest], "size": [{"name": manifest["name"], "bytes": size}]}))
    assert e.value.code == errors.BAD_INPUT
    made = {"name": "n", "stack": "s", "bytes": size, "holds": "db", "seconds": "0.7"}
    assert size != "10" or taken(Result(data={"backup": [made]}))[0]["bytes"] == 10
    if size != "10":
        with pytest.raises(ToolError, match="cannot read") as e:
            taken(Result(data={"backup": [made]}))
        assert e.value.code == errors.BAD_INPUT


@pytest.mark.parametrize("part", [{"part": "system/data", "files": "3", "bytes": 10},
                                  {"part": "system/data", "files": True, "bytes": 10},
                                  {"part": "system/data", "files": 3, "bytes": -1},
                                  {"part": "system/data", "files": 1.5, "bytes": 10},
                                  {"part": ["system/data"], "files": 3, "bytes": 10}, "system/data"])
def test_a_files_manifest_with_odd_parts_is_exit_2_not_a_crash(part):
    """A files backup's manifest is data on the VPS: its parts' counts are whole numbers, its names strings."""
    from tasks.core.programs.backup import listed
    manifest = {"name": "files-20261203T100000Z", "stack": "files", "created": "2026-12-03T10:00:00Z",
                "taken": "backup", "release": "r1", "verified": "yes", "databases": [], "parts": [part]}
    with pytest.raises(ToolError, match="the host sent a report the tool cannot read") as e:
        listed(Result(data={"manifest": [manifest]}))
    assert e.value.code == errors.BAD_INPUT
    manifest["parts"] = [{"part": "system/data", "files": 3, "bytes": 10}]
    assert listed(Result(data={"manifest": [manifest]}))[0].holds == "system/data"


def test_an_odd_status_is_a_clear_error_not_a_crash():
    from tasks.core.programs.state import parse_status
    with pytest.raises(ToolError, match="cannot read"):
        parse_status(Result(data={"stack": [{"name": "ems", "containers": "{not json"}]}))
    with pytest.raises(ToolError, match="cannot read"):
        parse_status(Result(data={"current": [{"release": "r", "tag": "v"}], "current_pin": [{"app": "x"}]}))


def test_compose_ps_json_in_every_shape_compose_prints():
    """One object per line (compose v2.21+, captured from the sandbox), one array (older), objects back to back,
    nothing; anything else is a report the tool cannot read."""
    from tasks.core.programs.state import containers
    captured = (Path(__file__).resolve().parents[1] / "shell/captured/compose-ps.json").read_text()
    lines = containers(captured)
    assert lines and all("Service" in c for c in lines)
    assert containers(json.dumps(lines)) == lines
    assert containers("".join(json.dumps(c) for c in lines)) == lines
    assert containers("  \n") == []
    with pytest.raises(ToolError, match="cannot read"):
        containers('{"Name": "a"} }{')


def test_every_kind_the_library_reports_is_declared_once():
    """programs/reports.py declares each @@data kind; every `data KIND` (and `data_json KIND`) in sh/ is one."""
    from tasks.core.programs import reports
    text = "\n".join(p.read_text() for p in sorted(library.SH_DIR.glob("*.sh")))
    sent = set(re.findall(r"(?:^|[;&|{()]|then|do|else)\s*data(?:_json)? ([a-z_]+)\b", text, re.M)) - {"KEY"}
    assert sent and sent <= set(reports.FIELDS) | reports.JSON_KINDS, sent - set(reports.FIELDS)
    assert {k for k in reports.FIELDS if k not in sent} == set(), "a kind no program sends"


@pytest.mark.parametrize("line, error", [
    ('@@data thing {"a":"1"}', "no kind 'thing' is declared"),
    ('@@data pin {"app":"ems"}', "pin: missing pin"),
    ('@@data pin {"app":"ems","pin":"v1@sha256:1","extra":"x"}', "pin: unknown extra"),
    ('@@data pin {"app":"ems","pin":1}', "pin: pin must be strings"),
    ('@@data secrets {"mode":"600","mtime":"1","colour":"red"}', "secrets: unknown colour"),
])
def test_a_report_that_does_not_fit_its_kind_is_a_clear_error(line, error):
    from tasks.core.programs.protocol import Reader
    from tasks.core.ui import StepDisplay
    with pytest.raises(ToolError, match=re.escape(error)) as e:
        Reader(Result(), StepDisplay("t", quiet=True)).line(line)
    assert e.value.code == errors.BAD_INPUT


@pytest.mark.parametrize("pin", ["v1\npin sms evil@sha256:" + "1" * 64, "v1@sha256:short", "v1 x@sha256:" + "1" * 64])
def test_a_damaged_pin_read_back_from_the_host_is_refused_not_carried(pin):
    """Issue 20 item 9: a kept pin `v1\\npin sms evil@...` reached the next release's label and the lock."""
    from tasks.core.programs.state import Current
    with pytest.raises(ToolError, match="state/current is damaged"):
        Current.parse(Result(data={"current": [{"release": "r1", "tag": "v1"}],
                                   "current_pin": [{"app": "ems", "pin": pin}]}))
    good = Current.parse(Result(data={"current": [{"release": "r1", "tag": "ems=v1,sms=v2"}],
                                      "current_pin": [{"app": "ems", "pin": "v1@sha256:" + "1" * 64}]}))
    assert good.pins == {"ems": "v1@sha256:" + "1" * 64}
