"""archive.org's description field cleaned into one plain string (archive.metadata.clean_description)."""

from __future__ import annotations

import pytest

from archive_encoders.archive.metadata import TAG_RE, clean_description

hypothesis = pytest.importorskip("hypothesis")  # the property tests need it (pyproject: dev extras)
st = hypothesis.strategies

# text made of the pieces HTML descriptions are made of, so tags and entities really occur
PIECES = st.sampled_from(
    ["<p>", "</p>", "<br/>", "<b>", "</b>", "<a href='x'>", "</a>", "<!-- c -->", "&lt;", "&gt;", "&amp;",
     "&nbsp;", "&#60;", "&lt;p&gt;", "&amp;lt;i&amp;gt;", "<", ">", "&", ";", "p", "a b", " ", "\n", "Том"]
)  # fmt: skip
HTMLISH = st.one_of(st.text(), st.lists(st.one_of(PIECES, st.text(max_size=3))).map("".join))


@hypothesis.given(st.one_of(HTMLISH, st.lists(HTMLISH, max_size=4), st.none()))
@hypothesis.settings(max_examples=300, deadline=None)
def test_any_text_comes_out_without_a_tag_and_cleaning_twice_changes_nothing(value):
    cleaned = clean_description(value)
    if cleaned is None:
        return
    assert not TAG_RE.search(cleaned), cleaned
    assert cleaned == cleaned.strip() and "  " not in cleaned and "\n" not in cleaned
    assert clean_description(cleaned) == cleaned


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("<p>A &amp; B</p><p>C</p>", "A & B C"),
        ("&lt;p&gt;Escaped &lt;i&gt;twice&lt;/i&gt;&lt;/p&gt;", "Escaped twice"),
        (["Part one.", "<br>Part two."], "Part one. Part two."),
        ("a < b and c > d", "a < b and c > d"),  # not a tag
        ("  <p> </p> &nbsp; ", None),
        (None, None),
    ],
)
def test_descriptions_as_archive_org_writes_them(raw, clean):
    assert clean_description(raw) == clean
