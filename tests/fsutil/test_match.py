"""llb.fsutil.match: Go's filepath.Match, as BuildKit's copy and rm use it."""

from __future__ import annotations

import fnmatch

import pytest

from llb.fsutil import contains_wildcards, match, split_wildcards


@pytest.mark.parametrize("pattern, name, want", [
    ("*.txt", "a.txt", True),
    ("*.txt", "d/a.txt", False),        # * never crosses "/"
    ("?", "/", False),
    ("[!a]*", "!x", True),              # "!" is a plain character in a Go class
    ("[!a]*", "a1", True),
    ("[!a]*", "b1", False),
    ("[^a]*", "b1", True),              # "^" negates
    ("[^a]*", "a1", False),
    ("[^a]*", "^x", True),
    ("\\*", "*", True),                 # a backslash escapes
    ("\\*", "x", False),
    ("[a-c]", "b", True),
    ("[c-a]", "b", False),              # malformed: matches nothing
    ("[", "[", False),
])
def test_go_filepath_match(pattern, name, want):
    assert match(pattern, name) is want


def test_fnmatch_disagrees_on_classes_which_is_why_it_is_not_used():
    assert fnmatch.fnmatchcase("b1", "[!a]*") != match("[!a]*", "b1")
    assert fnmatch.fnmatchcase("a1", "[^a]*") != match("[^a]*", "a1")


def test_wildcards_and_their_split():
    assert contains_wildcards("a/*.txt") and not contains_wildcards("a/\\*.txt")
    assert split_wildcards("/src/d*/x/*.py") == ("/src", "d*/x/*.py")
    assert split_wildcards("/plain/path") == ("/plain/path", "")
