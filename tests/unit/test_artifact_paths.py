"""Artifact path safety: every escape form is refused by every entry point."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from dockyard.artifacts.paths import (
    MAX_PATH_LENGTH,
    iter_local_folder,
    safe_local_destination,
    safe_prefix,
    safe_relpath,
)
from dockyard.core.errors import DockyardWarning, InvalidInput, NotFound, UnsafePath

posix_only = pytest.mark.skipif(sys.platform == "win32", reason="needs POSIX file names")

# (path, rule) -- each must be refused by safe_relpath, safe_prefix and safe_local_destination.
ESCAPES: list[tuple[str, str]] = [
    ("/x", "absolute"),
    ("/etc/passwd", "absolute"),
    ("C:\\x", "backslash"),
    ("C:/x", "absolute"),
    ("c:x", "absolute"),
    ("..", "parent_segment"),
    ("../x", "parent_segment"),
    ("a/../b", "parent_segment"),
    ("a/..", "parent_segment"),
    ("a/../../etc/passwd", "parent_segment"),
    ("a\\b", "backslash"),
    ("..\\x", "backslash"),
    ("\\\\server\\share", "backslash"),
    ("a\x00b", "control_char"),
    ("a\nb", "control_char"),
    ("a\rb", "control_char"),
    ("a\tb", "control_char"),
    ("a\x1fb", "control_char"),
    ("a\x7fb", "control_char"),
    ("a\x85b", "control_char"),
    ("%2e%2e", "encoded_parent_segment"),
    ("%2e%2e/x", "encoded_parent_segment"),
    ("%2E%2E/x", "encoded_parent_segment"),
    ("a/%2e%2e/b", "encoded_parent_segment"),
    ("..%2fx", "encoded_separator"),
    ("%252e%252e/x", "encoded_parent_segment"),
    ("%25252e%25252e/x", "encoded_parent_segment"),
    ("%2525252e%2525252e/x", "encoded"),
    ("a%2fb", "encoded_separator"),
    ("a%2Fb", "encoded_separator"),
    ("%2fetc%2fpasswd", "encoded_separator"),
    ("a%252fb", "encoded_separator"),
    ("%5c", "encoded_backslash"),
    ("a%5cb", "encoded_backslash"),
    ("a%255cb", "encoded_backslash"),
    ("a%00b", "encoded_control_char"),
    ("a%2500b", "encoded_control_char"),
    ("a%0ab", "encoded_control_char"),
    ("a%3fb", "encoded_reserved_char"),
    ("a%23b", "encoded_reserved_char"),
    ("a%3bb", "encoded_reserved_char"),
    ("%7e/x", "encoded_home"),
    ("%2e/x", "encoded_dot_segment"),
    ("file:/etc/passwd", "scheme"),
    ("file:///etc/passwd", "scheme"),
    ("http://evil.example/x", "scheme"),
    ("https:x", "scheme"),
    ("s3://bucket/key", "scheme"),
    ("gs:bucket/key", "scheme"),
    ("file%3a/etc/passwd", "encoded_scheme"),
    ("a;b", "reserved_char"),
    ("a/b;x=..", "reserved_char"),
    ("a?b", "reserved_char"),
    ("a/b?../../x", "reserved_char"),
    ("a#b", "reserved_char"),
    ("a#/../../x", "reserved_char"),
    ("a//b", "double_slash"),
    ("a/b//", "double_slash"),
    ("~", "home"),
    ("~/x", "home"),
    ("~root/.ssh/id_rsa", "home"),
    (".", "dot_segment"),
    ("./x", "dot_segment"),
    ("a/./b", "dot_segment"),
    ("a/.", "dot_segment"),
    (".../x", "dot_segment"),
    ("a/. ./b", "dot_segment"),
    ("\uff0e\uff0e/x", "encoded_parent_segment"),  # fullwidth dots -> ".." under NFKC
    ("a\uff0fb", "encoded_separator"),  # fullwidth solidus -> "/" under NFKC
    ("a\ufe68b", "encoded_backslash"),  # small reverse solidus -> "\\" under NFKC
    ("x" * (MAX_PATH_LENGTH + 1), "too_long"),
    ("a/" * 600, "too_long"),
]

SAFE: list[tuple[str, str]] = [
    ("a", "a"),
    ("model.pkl", "model.pkl"),
    ("model/weights.bin", "model/weights.bin"),
    ("model/", "model"),
    ("a/b/c/d.txt", "a/b/c/d.txt"),
    ("a b/c d.txt", "a b/c d.txt"),
    ("a%20b", "a%20b"),  # decodes to something harmless: kept literally
    ("100%.txt", "100%.txt"),
    ("50%25off", "50%25off"),
    (".hidden", ".hidden"),
    ("a/.hidden", "a/.hidden"),
    ("a..b", "a..b"),
    ("..a", "..a"),
    ("v1.0/x", "v1.0/x"),
    ("a/~b", "a/~b"),
    ("a/b:c", "a/b:c"),
    ("donn\u00e9es/\u00e9t\u00e9.csv", "donn\u00e9es/\u00e9t\u00e9.csv"),
    ("x" * MAX_PATH_LENGTH, "x" * MAX_PATH_LENGTH),
]


def _ids(cases: list[tuple[str, str]]) -> list[str]:
    return [repr(p)[:40] for p, _ in cases]


# ---------------------------------------------------------------- safe_relpath / safe_prefix


@pytest.mark.parametrize(("path", "rule"), ESCAPES, ids=_ids(ESCAPES))
def test_safe_relpath_refuses(path: str, rule: str) -> None:
    with pytest.raises(UnsafePath) as exc:
        safe_relpath(path)
    assert exc.value.details["rule"] == rule
    # The message names the path (or its start, for huge ones) so a user sees what was wrong.
    assert repr(path[:20])[1:-1] in exc.value.message or path[:20] in exc.value.message


@pytest.mark.parametrize(("path", "rule"), ESCAPES, ids=_ids(ESCAPES))
def test_safe_prefix_refuses(path: str, rule: str) -> None:
    with pytest.raises(UnsafePath) as exc:
        safe_prefix(path)
    assert exc.value.details["rule"] == rule


@pytest.mark.parametrize(("path", "expected"), SAFE, ids=_ids(SAFE))
def test_safe_relpath_accepts_and_normalises(path: str, expected: str) -> None:
    assert safe_relpath(path) == expected
    assert safe_relpath(expected) == expected  # idempotent
    assert safe_prefix(path) == expected


@pytest.mark.parametrize("path", ["", "/", "//", "///"])
def test_safe_relpath_refuses_empty(path: str) -> None:
    with pytest.raises(UnsafePath) as exc:
        safe_relpath(path)
    assert exc.value.details["rule"] == "empty"


def test_safe_prefix_accepts_root_only_as_empty_string() -> None:
    assert safe_prefix("") == ""
    assert safe_prefix("models/") == "models"
    for path in ["/", "//"]:
        with pytest.raises(UnsafePath):
            safe_prefix(path)


def test_unsafe_path_is_a_4xx_invalid_input() -> None:
    with pytest.raises(InvalidInput) as exc:
        safe_relpath("../x")
    assert exc.value.http_status == 422
    assert exc.value.code == "unsafe_path"
    assert "'../x'" in exc.value.message and ".." in exc.value.message


@pytest.mark.parametrize("value", [None, b"a/b", 3, Path("a")])
def test_non_string_paths_are_refused(value: object) -> None:
    with pytest.raises(InvalidInput):
        safe_relpath(value)  # type: ignore[arg-type]


def test_long_path_message_is_truncated() -> None:
    with pytest.raises(UnsafePath) as exc:
        safe_relpath("y" * 100_000)
    assert len(exc.value.message) < 400


# ---------------------------------------------------------------- safe_local_destination


@pytest.mark.parametrize(("path", "rule"), ESCAPES, ids=_ids(ESCAPES))
def test_safe_local_destination_refuses(tmp_path: Path, path: str, rule: str) -> None:
    with pytest.raises(UnsafePath) as exc:
        safe_local_destination(tmp_path, path)
    assert exc.value.details["rule"] == rule


@pytest.mark.parametrize("path", ["", "/"])
def test_safe_local_destination_needs_a_file(tmp_path: Path, path: str) -> None:
    with pytest.raises(UnsafePath):
        safe_local_destination(tmp_path, path)


def test_safe_local_destination_joins_inside(tmp_path: Path) -> None:
    dest = tmp_path / "dl"  # need not exist yet
    out = safe_local_destination(dest, "model/weights.bin")
    assert out == dest.resolve() / "model" / "weights.bin"
    assert not dest.exists()  # a pure check: creates nothing


@posix_only
def test_safe_local_destination_refuses_symlinked_folder_escape(tmp_path: Path) -> None:
    dest = tmp_path / "dl"
    outside = tmp_path / "outside"
    dest.mkdir()
    outside.mkdir()
    (dest / "link").symlink_to(outside, target_is_directory=True)
    with pytest.raises(UnsafePath) as exc:
        safe_local_destination(dest, "link/x.txt")
    assert exc.value.details["rule"] == "symlink_escape"
    # A relative link climbing out is caught the same way.
    (dest / "up").symlink_to("..", target_is_directory=True)
    with pytest.raises(UnsafePath):
        safe_local_destination(dest, "up/outside/x.txt")


@posix_only
def test_safe_local_destination_refuses_symlinked_file_escape(tmp_path: Path) -> None:
    dest = tmp_path / "dl"
    dest.mkdir()
    secret = tmp_path / "secret.txt"
    secret.write_text("x")
    (dest / "evil").symlink_to(secret)
    with pytest.raises(UnsafePath):
        safe_local_destination(dest, "evil")


@posix_only
def test_safe_local_destination_allows_symlinks_that_stay_inside(tmp_path: Path) -> None:
    dest = tmp_path / "dl"
    (dest / "real").mkdir(parents=True)
    (dest / "alias").symlink_to(dest / "real", target_is_directory=True)
    assert safe_local_destination(dest, "alias/x") == (dest / "real" / "x").resolve()
    # A symlinked dest_root itself is fine: containment is judged after resolving it.
    link_root = tmp_path / "root-link"
    link_root.symlink_to(dest, target_is_directory=True)
    assert safe_local_destination(link_root, "a/b") == dest.resolve() / "a" / "b"


@posix_only
def test_safe_local_destination_refuses_a_path_resolving_to_the_root(tmp_path: Path) -> None:
    dest = tmp_path / "dl"
    dest.mkdir()
    (dest / "self").symlink_to(dest, target_is_directory=True)
    with pytest.raises(UnsafePath):
        safe_local_destination(dest, "self")


# ---------------------------------------------------------------- iter_local_folder


def _tree(root: Path, files: dict[str, bytes]) -> None:
    for rel, data in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)


def test_iter_local_folder_walks_recursively_in_order(tmp_path: Path) -> None:
    root = tmp_path / "model"
    _tree(root, {"b.txt": b"b", "a/z.bin": b"z", "a/c/d.txt": b"d", ".hidden": b"h"})
    (root / "empty").mkdir()
    got = list(iter_local_folder(root))
    assert [rel for rel, _ in got] == [".hidden", "a/c/d.txt", "a/z.bin", "b.txt"]
    for rel, path in got:
        assert path.is_absolute()
        assert path == (root / rel).resolve()


def test_iter_local_folder_missing_or_not_a_folder(tmp_path: Path) -> None:
    with pytest.raises(NotFound):
        list(iter_local_folder(tmp_path / "nope"))
    (tmp_path / "f").write_text("x")
    with pytest.raises(InvalidInput):
        list(iter_local_folder(tmp_path / "f"))


@posix_only
def test_iter_local_folder_refuses_file_symlink_escape(tmp_path: Path) -> None:
    root = tmp_path / "model"
    _tree(root, {"ok.txt": b"ok"})
    secret = tmp_path / "secret"
    secret.write_text("s3cr3t")
    (root / "leak").symlink_to(secret)
    with pytest.raises(UnsafePath) as exc:
        list(iter_local_folder(root))
    assert exc.value.details["rule"] == "symlink_escape"
    assert "leak" in exc.value.message


@posix_only
@pytest.mark.parametrize("target", ["abs", "relative", "chained"])
def test_iter_local_folder_refuses_folder_symlink_escape(tmp_path: Path, target: str) -> None:
    root = tmp_path / "model"
    _tree(root, {"sub/ok.txt": b"ok"})
    outside = tmp_path / "outside"
    _tree(outside, {"id_rsa": b"key"})
    if target == "abs":
        (root / "sub" / "link").symlink_to(outside, target_is_directory=True)
    elif target == "relative":
        (root / "sub" / "link").symlink_to("../../outside", target_is_directory=True)
    else:  # an inside link pointing at a link that leaves
        (root / "hop").symlink_to(outside, target_is_directory=True)
        (root / "sub" / "link").symlink_to(root / "hop", target_is_directory=True)
    with pytest.raises(UnsafePath):
        list(iter_local_folder(root))


@posix_only
def test_iter_local_folder_refuses_dangling_symlink_outside(tmp_path: Path) -> None:
    root = tmp_path / "model"
    root.mkdir()
    (root / "dangling").symlink_to(tmp_path / "does-not-exist")
    with pytest.raises(UnsafePath):
        list(iter_local_folder(root))


@posix_only
def test_iter_local_folder_follows_inside_symlinks(tmp_path: Path) -> None:
    root = tmp_path / "model"
    _tree(root, {"v3/w.bin": b"w", "v3/cfg.json": b"{}"})
    (root / "latest").symlink_to("v3", target_is_directory=True)
    (root / "cfg-link.json").symlink_to(root / "v3" / "cfg.json")
    got = dict(iter_local_folder(root))
    assert sorted(got) == [
        "cfg-link.json",
        "latest/cfg.json",
        "latest/w.bin",
        "v3/cfg.json",
        "v3/w.bin",
    ]
    assert got["latest/w.bin"] == (root / "v3" / "w.bin").resolve()
    assert got["cfg-link.json"] == (root / "v3" / "cfg.json").resolve()


@posix_only
def test_iter_local_folder_survives_symlink_loops(tmp_path: Path) -> None:
    root = tmp_path / "model"
    _tree(root, {"a/f.txt": b"f"})
    (root / "a" / "back").symlink_to("..", target_is_directory=True)  # to the root
    (root / "a" / "me").symlink_to(".", target_is_directory=True)  # to itself
    (root / "self-loop").symlink_to("self-loop")  # ELOOP
    with pytest.warns(DockyardWarning):
        got = [rel for rel, _ in iter_local_folder(root)]
    assert got == ["a/f.txt"]


@posix_only
def test_iter_local_folder_skips_dangling_inside_and_special_files(tmp_path: Path) -> None:
    root = tmp_path / "model"
    _tree(root, {"f.txt": b"f"})
    (root / "gone").symlink_to(root / "missing")
    os.mkfifo(root / "pipe")
    with pytest.warns(DockyardWarning) as record:
        got = [rel for rel, _ in iter_local_folder(root)]
    assert got == ["f.txt"]
    messages = " ".join(str(w.message) for w in record)
    assert "gone" in messages and "pipe" in messages


# File names a POSIX folder can hold but the store must refuse (no '/' or NUL possible here).
BAD_NAMES = [
    "a\\b",
    "..\\x",
    "a\nb",
    "a\x1fb",
    "%2e%2e",
    "a%2fb",
    "%5c",
    "a%00b",
    "%252e%252e",
    "a;b",
    "a?b",
    "a#b",
    "~x",
    "C:x",
    "file:x",
    "s3:bucket",
    "...",
    "\uff0e\uff0e",
    "x" * 255,  # legal name, but nested below it pushes the path over the limit
]


@posix_only
@pytest.mark.parametrize("name", BAD_NAMES, ids=[repr(n)[:30] for n in BAD_NAMES])
def test_iter_local_folder_refuses_unsafe_file_names(tmp_path: Path, name: str) -> None:
    root = tmp_path / "model"
    if name == "x" * 255:
        deep = root / "/".join(["y" * 200] * 4)
        deep.mkdir(parents=True)
        (deep / name).write_bytes(b"x")
    else:
        root.mkdir()
        (root / name).write_bytes(b"x")
    with pytest.raises(UnsafePath):
        list(iter_local_folder(root))
