"""fab backup-key --save on the operator's machine: the key written whole with mode 600, a file holding another
key never overwritten, a folder or a missing folder refused before anything is asked of the VPS. Unit tier."""
import pytest

from tasks.core.errors import BAD_INPUT, ToolError
from tasks.offsite import _held, _save

KEY = "c2VjcmV0IGtleSBvZiAzMiBieXRlcyBleGFjdGx5IQ==\n"


def test_the_key_is_saved_600_and_a_second_save_of_the_same_key_changes_nothing(tmp_path):
    path = tmp_path / "ems_system.restic-key"
    _save(path, KEY, _held(path))
    assert path.read_text() == KEY and path.stat().st_mode & 0o777 == 0o600
    assert [p.name for p in tmp_path.iterdir()] == [path.name], "no temporary file left"
    _save(path, KEY, _held(path))
    assert path.read_text() == KEY


def test_a_file_holding_another_key_is_refused_and_kept(tmp_path):
    path = tmp_path / "k"
    path.write_text("another key\n")
    with pytest.raises(ToolError) as e:
        _save(path, KEY, _held(path))
    assert e.value.code == BAD_INPUT and "holds another key" in str(e.value) and KEY.strip() not in str(e.value)
    assert path.read_text() == "another key\n"


@pytest.mark.parametrize("where", ["folder", "missing/k"])
def test_a_folder_or_a_missing_folder_is_refused(tmp_path, where):
    (tmp_path / "folder").mkdir()
    with pytest.raises(ToolError) as e:
        _held(tmp_path / where)
    assert e.value.code == BAD_INPUT and "name a file in an existing folder" in str(e.value)


def test_a_write_that_fails_leaves_nothing(tmp_path, monkeypatch):
    def full(*_):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr("os.replace", full)   # (the rename fails, as on a full or read-only disk)
    with pytest.raises(ToolError) as e:
        _save(tmp_path / "k", KEY, None)
    assert "No space left on device" in str(e.value) and "nothing was saved" in str(e.value)
    assert list(tmp_path.iterdir()) == []
