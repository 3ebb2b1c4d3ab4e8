"""sideq.errors: an output folder is checked by writing into it, and a folder that
cannot be used is refused in one line that names it and the fix.

The checks run on real folders in ``tmp_path``; a folder that refuses writes is
simulated by a ``tempfile.TemporaryFile`` that raises PermissionError.
"""

import os

from sideq import errors


def test_folder_that_exists_or_can_be_made_is_fine(tmp_path, monkeypatch):
    assert errors.unwritable_folder(str(tmp_path)) is None
    new = tmp_path / "a" / "b"
    assert errors.unwritable_folder(str(new)) is None and new.is_dir()
    assert list(new.iterdir()) == []  # the probe file is gone
    monkeypatch.chdir(tmp_path)
    before = sorted(os.listdir(tmp_path))
    assert errors.unwritable_folder("") is None  # the current folder
    assert errors.unwritable_folder(None) is None
    assert sorted(os.listdir(tmp_path)) == before


def test_a_file_is_refused_in_one_line_with_the_fix(tmp_path):
    afile = tmp_path / "afile"
    afile.write_text("keep")
    msg = errors.unwritable_folder(str(afile))
    assert msg is not None and len(msg.splitlines()) == 1
    assert repr(str(afile)) in msg and "is a file, not a folder" in msg and "choose a folder" in msg
    below = str(afile / "figs")
    msg = errors.unwritable_folder(below)
    assert msg is not None and len(msg.splitlines()) == 1
    assert repr(below) in msg and "choose a writable folder" in msg
    assert afile.read_text() == "keep"


def test_a_folder_that_cannot_be_written_is_found_by_writing(tmp_path, monkeypatch):
    import tempfile

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(tempfile, "TemporaryFile", refuse)
    msg = errors.unwritable_folder(str(tmp_path))
    assert msg is not None and len(msg.splitlines()) == 1
    assert repr(str(tmp_path)) in msg and "Permission denied" in msg and "choose a writable folder" in msg


def test_error_classes_are_value_errors():
    assert issubclass(errors.SingularModelError, errors.SideqInputError)
    assert issubclass(errors.SideqInputError, ValueError)
