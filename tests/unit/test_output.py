"""What reaches the operator's terminal: no markup or escape sequences from data, a valid FAB_OPERATOR, honest
words for warnings and for GitHub's answers (no SSH)."""
import pytest
from invoke.exceptions import Exit
from rich.console import Console

from tasks.core import cli, history
from tasks.core.errors import BAD_INPUT, WARNING, ToolError
from tasks.core.programs.protocol import Result
from tasks.core.programs.token import describe
from tasks.core.ui import printable, safe


@pytest.mark.parametrize("value", ["[/x]", "[bold red]boom[/]", "\x1b[2J\x1b[31mgotcha", "a\x9bb"])
def test_data_is_shown_as_text_never_as_markup_or_escape_sequences(value):
    console = Console(record=True, width=200, color_system=None)
    console.print(f"release {safe(value)}")
    shown = console.export_text()
    assert "\x1b" not in shown and "\x9b" not in shown
    assert printable(value) in shown


@pytest.mark.parametrize("who", ["ana\nbob since 2026 (deploy, pid 1)", "x" * 65, "\x1b[31mred", ""])
def test_fab_operator_must_be_one_short_printable_line(monkeypatch, who):
    monkeypatch.setenv("FAB_OPERATOR", who)
    if not who:
        assert cli.operator()[0]  # empty means unset: user@machine
        return
    with pytest.raises(ToolError) as e:
        cli.operator()
    assert e.value.code == BAD_INPUT


def test_fab_operator_accepts_names_with_brackets(monkeypatch):
    monkeypatch.setenv("FAB_OPERATOR", "ci/nightly [main]")
    assert cli.operator()[0] == "ci/nightly [main]"


def test_a_warning_is_called_a_warning(capsys):
    with pytest.raises(Exit) as e:
        cli._fail("1 of 1 warned", WARNING)
    assert e.value.code == WARNING
    assert "warning: 1 of 1 warned" in capsys.readouterr().err


def test_githubs_refusal_is_not_reported_as_missing_scopes():
    result = Result(data={"file": [{"mode": "600", "mtime": "0", "dir_mode": "700"}], "login": [{"result": "ok"}],
                          "api": [{"status": "401", "expiry": "", "scopes": "", "has_scopes": "0"}]})
    with pytest.raises(ToolError) as e:
        describe(result, 14)
    assert e.value.code == WARNING and "answered 401" in str(e.value) and "lack read:packages" not in str(e.value)


def test_a_release_recorded_once_as_good_has_finished():
    line = ('{"release":"m1","tag":"migrated","action":"migrate-layout","by":"a","from":"b","state":"good",'
            '"at":"2026-11-26T00:00:00Z","images":{}}')
    assert history.parse(line)[0].finished == "2026-11-26T00:00:00Z"


def test_replicas_count_healthy_containers_against_hosts_yml():
    from tasks.core.programs.state import StackStatus
    ctrs = [{"Service": "backend", "State": "running", "Health": "healthy"},
            {"Service": "backend", "State": "running", "Health": "starting"},
            {"Service": "backend", "State": "exited", "Health": ""},
            {"Service": "nginx", "State": "running", "Health": ""},
            {"Service": "worker", "State": "running", "Health": ""}, {"Service": "worker", "State": "running"}]
    st = StackStatus("app", ctrs)
    assert st.replicas({"backend": 3}) == [("backend", 1, 3), ("worker", 2, 2)]
    assert st.replicas({"beat": 1}) == [("backend", 1, 3), ("beat", 0, 1), ("worker", 2, 2)]


def test_the_dry_run_prints_the_program_byte_for_byte(capsys):
    """Issue 20 item 8: rich rendered the program: tabs became spaces and :smile: an emoji, so what was shown
    was not what would run (`fab deploy --dry-run | bash` ran something else)."""
    from tasks.core.ui import show_program
    text = "{\nprintf '%s\\t%s' a b  # :smile: [bold]x[/]\nexit 0\n}\n"
    show_program("vps1/ems_system", "root@203.0.113.10:22", text)
    out = capsys.readouterr().out
    assert out.split("\n", 1)[1] == text


@pytest.mark.parametrize("char", ["\x1b", "\u202e", "\x07", "\u200b"])
def test_a_character_a_terminal_must_not_be_shown_is_never_printed_nor_taken_as_an_operator(char, capsys,
                                                                                             monkeypatch):
    from tasks.core.ui import show_program
    with pytest.raises(ToolError, match="characters a terminal must not be shown"):
        show_program("vps1/s", "root@h:22", f"echo x{char}y\n")
    assert char not in capsys.readouterr().out and char not in printable(f"a{char}b")
    monkeypatch.setenv("FAB_OPERATOR", f"ana{char}@laptop")
    with pytest.raises(ToolError, match="FAB_OPERATOR must be"):
        cli.operator()
