"""Render demo/source/*.txt into demo/archive/ as scanned books look after OCR, in `ia download` layout.

    python demo/make_demo_archive.py            # rewrites demo/archive/ (deterministic: same bytes)

Each source file is a header (`key: value` lines, then `---`) and paragraphs separated by blank lines,
all written for this project. The renderer gives every item the faults of a real archive.org
`_djvu.txt`: lines wrapped at 58-68 characters, words hyphenated at line ends (compounds such as
"well-known" / "кто-нибудь" broken at their own hyphen), pages with running heads and page numbers,
page breaks as runs of blank lines, a few OCR misreadings, a title page, and on some items the
"Digitized by the Internet Archive" page or Google's scan notice. `layout:` in a header switches these:

  prereform     add word-final ъ and і before vowels (the source already writes ѣ where it belongs)
  digitized     an Internet Archive front page
  google        Google's notice page at the start
  formfeed      page breaks as form feeds instead of blank lines
  cp1251        write the text in Windows-1251 instead of UTF-8
  heads=STYLE   numhead (number and title in one line), headnum (title on top, number below), num
  verbatim      the body is a real archive.org OCR text (a public-domain scan): written byte for byte

`subject:` (comma-separated) becomes archive.org's repeated <subject> field; `description:` its
<description>, a cataloguer's summary written by hand for the item (it describes the book in other
words than the text's own); `source:` says where a text
that was not written for the project comes from (public-domain works; see demo/README.md).

The bad cases the clean stage must handle are derived at the bottom (DERIVED): an exact duplicate, a
near-duplicate rescan, an empty file, an item without a text file, an OCR fragment of debris.
"""

from __future__ import annotations

import random
import re
import shutil
import zlib
from pathlib import Path
from xml.sax.saxutils import escape

HERE = Path(__file__).resolve().parent
SOURCES = HERE / "source"
ARCHIVE = HERE / "archive"
VOWELS = set("aeiouyаеёиоуыэюяѣі")
LICENSE = "https://creativecommons.org/publicdomain/mark/1.0/"
# Misreadings OCR makes on old type: each applies to a few characters per thousand.
CONFUSIONS = {
    "e": "c", "c": "e", "l": "1", "i": "l", "n": "u", "u": "n", "h": "b", "m": "rn",
    "е": "с", "и": "н", "н": "и", "ш": "щ", "о": "o", "а": "a", "р": "p",
}  # fmt: skip
GOOGLE_NOTICE = """\
Google

This is a digital copy of a book that was preserved for generations on library shelves before it was
carefully scanned by Google as part of a project to make the world's books discoverable online.

[The notice goes on with usage guidelines: non-commercial use, no automated querying, keep the attribution,
keep it legal.]

About Google Book Search

You can search through the full text of this book on the web
at |http: //books .google .com/I"""


def parse_source(path: Path) -> tuple[dict[str, str], list[str]]:
    header, _, body = path.read_text(encoding="utf-8").partition("\n---\n")
    meta = {}
    for line in header.splitlines():
        key, _, value = line.partition(":")
        meta[key.strip()] = value.strip()
    if "verbatim" in meta.get("layout", "").split():
        return meta, [body]
    paragraphs = [" ".join(p.split()) for p in body.split("\n\n") if p.strip()]
    return meta, paragraphs


def to_prereform(text: str) -> str:
    """Modern spelling (with ѣ already in place) -> pre-1918: і before vowels, ъ after a final consonant."""
    text = re.sub(r"и(?=[аеёиоуыэюяѣй])", "і", text)
    text = re.sub(r"И(?=[аеёиоуыэюяѣйАЕЁИОУЫЭЮЯѢЙ])", "І", text)
    text = text.replace("ё", "е")
    text = re.sub(r"(?<=[бвгджзклмнпрстфхцчшщ])(?![а-яёѣі])", "ъ", text)
    return re.sub(r"(?<=[БВГДЖЗКЛМНПРСТФХЦЧШЩ])(?![А-ЯЁѢІа-яёѣі])", "Ъ", text)


def misread(text: str, rng: random.Random, rate: float) -> str:
    out = []
    for char in text:
        if char in CONFUSIONS and rng.random() < rate:
            out.append(CONFUSIONS[char])
        else:
            out.append(char)
    return "".join(out)


def syllable_break(word: str, p: int) -> bool:
    """A plausible place for a typesetter's hyphen: vowel-consonant-vowel (ri-ver) or between two
    consonants after a vowel (win-ter); never before ь, ъ, й."""
    if not (word[: p + 2].isalpha() and len(word) > p + 1) or word[p] in "ьъйЬЪЙ":
        return False
    a, b, c = (ch.lower() in VOWELS for ch in word[p - 1 : p + 2])
    before = word[p - 2].lower() in VOWELS if p >= 2 else False
    return (a and not b and c) or (before and not a and not b and c)


def wrap(paragraph: str, width: int, rng: random.Random) -> list[str]:
    """Greedy wrap; a word that does not fit is often hyphenated, a compound at its own hyphen."""
    lines: list[str] = []
    line = ""
    for word in paragraph.split():
        candidate = f"{line} {word}" if line else word
        if len(candidate) <= width:
            line = candidate
            continue
        room = width - len(line) - (1 if line else 0) - 1
        head = rest = None
        inner = word.find("-", 1)
        if 0 < inner < len(word) - 2 and inner + 1 <= room + 1:
            head, rest = word[: inner + 1], word[inner + 1 :]
        elif len(word) >= 7 and room >= 3 and rng.random() < 0.7:
            cuts = [p for p in range(2, min(room, len(word) - 3) + 1) if syllable_break(word, p)]
            if cuts:
                head, rest = word[: cuts[-1]] + "-", word[cuts[-1] :]
        if head:
            lines.append(f"{line} {head}" if line else head)
            line = rest
        else:
            if line:
                lines.append(line)
            line = word
    if line:
        lines.append(line)
    return lines


def paginate(body: list[str], meta: dict[str, str], rng: random.Random, first_page: int) -> list[str]:
    """Pages of body lines ("" = paragraph break) with running heads and page numbers."""
    per_page = rng.randint(16, 22)  # short pages: a short demo book still repeats its running head
    style = next((v.split("=")[1] for v in meta["layout"].split() if v.startswith("heads=")), "numhead")
    head = meta.get("head") or " ".join(meta["title"].split()[:3]).rstrip(",.;:")
    head = head.upper() + "."
    pages = []
    for i in range(0, len(body), per_page):
        number = first_page + i // per_page
        lines = body[i : i + per_page]
        while lines and not lines[0]:
            lines = lines[1:]
        text = "\n".join(lines).strip("\n")
        if i == 0:
            pages.append(text)
        elif style == "numhead":
            top = f"{number} {head}" if number % 2 == 0 else f"{head} {number}"
            pages.append(f"{top}\n\n{text}")
        elif style == "headnum":
            pages.append(f"{head}\n\n{text}\n\n— {number} —")
        else:
            pages.append(f"{number}\n\n{text}")
    return pages


def render(meta: dict[str, str], paragraphs: list[str], seed: int) -> str:
    layout = meta.get("layout", "").split()
    rng = random.Random(seed)
    if "prereform" in layout:
        paragraphs = [to_prereform(p) for p in paragraphs]
    rate = float(meta.get("noise", "0.002"))
    paragraphs = [misread(p, rng, rate) for p in paragraphs]
    width = rng.randint(58, 68)
    body: list[str] = []
    for paragraph in paragraphs:
        body.extend(wrap(paragraph, width, rng))
        body.append("")
    page_break = "\n\f\n" if "formfeed" in layout else "\n" * rng.choice((3, 4))
    title = meta["title"]
    if "prereform" in layout:
        title = to_prereform(title)
    front = [f"{title.upper()}\n\n{meta['creator']}\n\n\n{meta.get('place', '')}\n{meta['date']}".rstrip()]
    if "digitized" in layout:
        funder = meta.get("funder", "University of Toronto")
        year = 2000 + zlib.crc32(meta["identifier"].encode()) % 20
        front.insert(
            0,
            f"Digitized by the Internet Archive\nin {year} with funding from\n{funder}\n\n"
            f"https://archive.org/details/{meta['identifier']}",
        )
    if "google" in layout:
        front.insert(0, GOOGLE_NOTICE)
    pages = front + paginate(body, meta, rng, first_page=rng.randint(3, 9))
    return page_break.join(pages) + "\n"


def meta_xml(meta: dict[str, str]) -> str:
    fields = [
        ("identifier", meta["identifier"]),
        ("title", meta["title"]),
        ("creator", meta["creator"]),
        ("date", meta["date"]),
        ("language", meta["language"]),
        *(("collection", c.strip()) for c in meta.get("collection", "opensource").split(",")),
        *(("subject", s.strip()) for s in meta.get("subject", "").split(",") if s.strip()),
        *((("description", meta["description"]),) if meta.get("description") else ()),
        ("licenseurl", LICENSE),
        ("mediatype", "texts"),
    ]
    body = "\n".join(f"  <{tag}>{escape(value)}</{tag}>" for tag, value in fields)
    return f'<?xml version="1.0" encoding="UTF-8"?>\n<metadata>\n{body}\n</metadata>\n'


def write_item(meta: dict[str, str], text: str | None, encoding: str = "utf-8") -> None:
    folder = ARCHIVE / meta["identifier"]
    folder.mkdir(parents=True)
    (folder / f"{meta['identifier']}_meta.xml").write_text(meta_xml(meta), encoding="utf-8")
    if text is not None:
        (folder / f"{meta['identifier']}_djvu.txt").write_bytes(text.encode(encoding))


# Items derived from a source (or from nothing) to exercise the clean stage's rejections.
DERIVED = [
    # the same scan uploaded twice: byte-identical text under another identifier
    {"identifier": "greatfirelondon00hart_0", "from": "greatfirelondon00hart", "kind": "exact"},
    # the same book scanned again: other page layout, other OCR misreadings, no Archive front page
    {"identifier": "lakebaikalnotes00vere_1", "from": "lakebaikalnotes00vere", "kind": "rescan", "seed": 7},
    {"identifier": "annualreport1905empty", "kind": "empty", "title": "Annual report for 1905"},
    {"identifier": "atlasplates00mapp", "kind": "no_text", "title": "Atlas of coastal charts (plates only)"},
    {"identifier": "fragmentleaf00unkn", "kind": "debris", "title": "Fragment of a printed leaf"},
]
DEBRIS = "lUo?<f3SC\n\n%\n\n* /\n\nWELLCOME\n\n'/■ ^T^d^ 8«eondai7\n\n1869.\n\nvv£ ,;:.\n"


def main() -> None:
    if ARCHIVE.exists():
        shutil.rmtree(ARCHIVE)
    sources = {}
    for path in sorted(SOURCES.glob("*.txt")):
        meta, paragraphs = parse_source(path)
        sources[meta["identifier"]] = (meta, paragraphs)
        seed = zlib.crc32(meta["identifier"].encode())
        layout = meta.get("layout", "").split()
        encoding = "cp1251" if "cp1251" in layout else "utf-8"
        text = paragraphs[0] if "verbatim" in layout else render(meta, paragraphs, seed)
        write_item(meta, text, encoding)
    for item in DERIVED:
        kind = item["kind"]
        if kind in ("exact", "rescan"):
            meta, paragraphs = sources[item["from"]]
            derived = {**meta, "identifier": item["identifier"]}
            if kind == "exact":
                text = (ARCHIVE / meta["identifier"] / f"{meta['identifier']}_djvu.txt").read_text("utf-8")
            else:
                kept = [v for v in meta["layout"].split() if v != "digitized" and not v.startswith("heads=")]
                derived["layout"] = " ".join([*kept, "heads=num"])
                text = render(derived, paragraphs, item["seed"])
            write_item(derived, text)
        else:
            meta = {
                "identifier": item["identifier"],
                "title": item["title"],
                "creator": "Unknown",
                "date": "1905",
                "language": "eng",
            }
            write_item(meta, {"empty": "", "no_text": None, "debris": DEBRIS}[kind])
    total = sum(p.stat().st_size for p in ARCHIVE.rglob("*") if p.is_file())
    print(f"{len(list(ARCHIVE.iterdir()))} items, {total / 1024:.0f} KiB in {ARCHIVE}")


if __name__ == "__main__":
    main()
