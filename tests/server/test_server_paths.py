"""Files named by clients stay inside --root, whatever the symlinks say."""

import pytest

from lipstream.server.paths import resolve_under
from lipstream.server.protocol import ProtocolError


@pytest.fixture
def root(tmp_path):
    root = tmp_path / "root"
    (root / "clips").mkdir(parents=True)
    (root / "clips" / "a.mp4").write_bytes(b"x")
    (tmp_path / "secret.wav").write_bytes(b"s")
    (root / "clips" / "inside").symlink_to(root / "clips" / "a.mp4")
    (root / "escape").symlink_to(tmp_path / "secret.wav")
    (root / "escape_dir").symlink_to(tmp_path)
    (root / "loop").symlink_to(root / "loop")
    return root


def code(root, name):
    with pytest.raises(ProtocolError) as info:
        resolve_under(root, name)
    return info.value.code


def test_files_inside_the_root_resolve_to_their_real_path(root):
    assert resolve_under(root, "clips/a.mp4") == (root / "clips" / "a.mp4").resolve()
    assert resolve_under(root, "clips/inside") == (root / "clips" / "a.mp4").resolve()
    assert resolve_under(root, "./clips//a.mp4") == (root / "clips" / "a.mp4").resolve()


@pytest.mark.parametrize(
    "name, expected",
    [
        ("../secret.wav", "forbidden_path"),
        ("clips/../../secret.wav", "forbidden_path"),
        ("/etc/passwd", "forbidden_path"),
        ("escape", "forbidden_path"),
        ("escape_dir/secret.wav", "forbidden_path"),
        ("clips", "forbidden_path"),
        ("loop", "forbidden_path"),
        ("clips\\..\\..\\secret.wav", "forbidden_path"),
        ("missing.mp4", "not_found"),
        ("clips/a.mp4/x", "not_found"),
    ],
)
def test_paths_leading_out_or_nowhere_are_refused(root, name, expected):
    assert code(root, name) == expected


def test_a_root_reached_through_a_symlink_still_confines(root, tmp_path):
    alias = tmp_path / "alias"
    alias.symlink_to(root)
    assert resolve_under(alias, "clips/a.mp4") == (root / "clips" / "a.mp4").resolve()
    assert code(alias, "escape") == "forbidden_path"
