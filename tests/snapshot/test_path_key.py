"""The order of a layer's changes (path_key): component by component, a parent before its
children and a subtree contiguous, whatever characters the names hold."""

from __future__ import annotations

import os

from hypothesis import given, settings
from hypothesis import strategies as st

from llb.snapshot.layers import Change, change_key, path_key

# names with the characters that sort below "/" (space, "!", "-", ".", control characters),
# above it, and non-UTF-8 bytes as os.listdir gives them (surrogate escapes)
_NAME = st.text(st.characters(blacklist_characters="/\x00", blacklist_categories=("Cs",)) |
                st.sampled_from([" ", "-", ".", "!", "\x01", "\x7f", "é", os.fsdecode(b"\xff")]),
                min_size=1, max_size=4)
_PATH = st.lists(_NAME, min_size=1, max_size=4).map("/".join)


@settings(max_examples=300, deadline=None)
@given(st.lists(_PATH, max_size=30))
def test_path_key_orders_as_the_tuple_of_components(paths: list[str]) -> None:
    by_parts = sorted(paths, key=lambda p: tuple(p.split("/")))
    assert sorted(paths, key=path_key) == by_parts
    changes = [Change(p, "add") for p in paths]
    assert [c.path for c in sorted(changes, key=change_key)] == by_parts


def test_a_parent_comes_before_its_children_and_a_subtree_stays_together() -> None:
    paths = ["a-b", "a/b", "a", "a.b", "a/b/c", "a!", "a/ b", "ab", "a\x01"]
    assert sorted(paths, key=path_key) == [
        "a", "a/ b", "a/b", "a/b/c", "a\x01", "a!", "a-b", "a.b", "ab"]
