"""OCR clean-up of archive.org text files: small rules, each counting what it changed.

`clean_text` runs the rules in order on one decoded document and returns the clean text (paragraphs
separated by one blank line, each paragraph on one line) and a count per rule, so a user can see what
cleaning did (documents.parquet keeps them as `removed_<rule>`). Units of the counts:

  unicode       characters replaced or removed (soft hyphens, zero-width and control characters,
                exotic spaces, ligatures, spaces around line ends) plus NFC changes
  boilerplate   lines of "Digitized by the Internet Archive" / Google-scan boilerplate dropped
  page_numbers  bare page-number lines dropped (arabic or roman, standing alone between blank lines)
  running_heads running-head lines dropped (short lines repeated at page breaks, page numbers aside)
  noise_lines   short stand-alone lines that are mostly not letters ("%", "* /", stamps)
  hyphenation   words re-joined across a line end ("exam-" + "ple")
  line_breaks   line breaks turned into spaces (lines re-joined into paragraphs, also across pages)
  prereform     characters changed by the pre-1918 -> modern Russian spelling map

Page layout in `_djvu.txt`: paragraphs are separated by one blank line, page breaks by two or more
(or a form feed). Files with one paragraph per (long) line, e.g. converted from .docx, are detected
("unwrapped") and every line is then a paragraph.

The rules work on the whole text with regular expressions anchored on rare characters, and touch
Python per block or per hyphen, never per character: this stage is meant to run at tens of MB/s.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from dataclasses import dataclass, field

RULES = (
    "unicode",
    "boilerplate",
    "page_numbers",
    "running_heads",
    "noise_lines",
    "hyphenation",
    "line_breaks",
    "prereform",
)

PAGE_BREAK = "\n\n\n"  # what a form feed becomes: two blank lines, like a djvu page break
MAX_HEAD_CHARS = 80  # running heads and page numbers are short lines
MIN_HEAD_REPEATS = 2  # a short line seen this often next to page breaks is a running head
MIN_LINE_REPEATS = 3  # ... or this often as a line of its own in a text without page breaks
HEAD_MIN_LETTERS = 4  # "Да." repeated is dialogue, not a running head
NOISE_MAX_CHARS = 40
NOISE_MAX_LETTER_RATIO = 0.5
UNWRAPPED_LINE_CHARS = 250  # djvu lines are < 120 chars; docx-converted paragraphs are much longer
UNWRAPPED_SHARE = 0.5


@dataclass
class CleanResult:
    text: str  # clean text in modern spelling (== text_original when nothing was converted)
    text_original: str  # clean text in the document's own spelling
    counts: dict[str, int] = field(default_factory=dict)


# --- decoding -----------------------------------------------------------------------------------

_CYRILLIC = re.compile(r"[\u0400-\u04ff]")
_LATIN = re.compile(r"[A-Za-z]")
MIN_CYRILLIC_SHARE = 0.5  # of letters, for a non-UTF-8 file to be taken as cp1251 Russian


@dataclass
class Decoded:
    text: str | None  # None: the document is skipped, `reason` says why
    encoding: str
    reason: str = ""


def decode_bytes(data: bytes) -> Decoded:
    """Decode a text file: UTF-8 (BOM stripped), UTF-16 with a BOM, else cp1251 if it reads as Russian.

    cp1251 decodes almost any byte string, so it is accepted only when most letters come out
    Cyrillic; anything else is skipped with a reason rather than decoded into mojibake.
    """
    if not data.strip():
        return Decoded(None, "", "empty file")
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return Decoded(data.decode("utf-16"), "utf-16")
        except UnicodeDecodeError as err:
            return Decoded(None, "", f"invalid UTF-16 ({err.reason} at byte {err.start})")
    try:
        return Decoded(data.decode("utf-8-sig"), "utf-8")
    except UnicodeDecodeError as err:
        utf8_error = f"not UTF-8 ({err.reason} at byte {err.start})"
    try:
        text = data.decode("cp1251")
    except UnicodeDecodeError:
        return Decoded(None, "", f"{utf8_error}; not cp1251 either")
    sample = text[:200_000]
    cyrillic = len(_CYRILLIC.findall(sample))
    latin = len(_LATIN.findall(sample))
    share = cyrillic / (cyrillic + latin) if cyrillic + latin else 0.0
    if share >= MIN_CYRILLIC_SHARE:
        return Decoded(text, "cp1251")
    return Decoded(None, "", f"{utf8_error}; as cp1251 only {share:.0%} of letters are Cyrillic")


# --- 1. unicode and whitespace --------------------------------------------------------------------

_REPLACE: dict[str, str] = {c: "" for c in "\u00ad\u200b\u200c\u200d\u2060\ufeff"}
_REPLACE |= {c: " " for c in "\u00a0\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a"}
_REPLACE |= {c: " " for c in "\u202f\u205f\u3000\t"}
_REPLACE |= {chr(c): "" for c in (*range(0x00, 0x09), *range(0x0E, 0x1C), 0x1F, *range(0x7F, 0xA0))}
_REPLACE |= {"\x0b": "\n", "\x0c": PAGE_BREAK, "\x1c": "\n", "\x1d": "\n", "\x1e": "\n"}
_REPLACE |= {"\u2028": "\n", "\u2029": "\n\n", "\u2010": "-", "\u2011": "-"}
_LIGATURES = ("ff", "fi", "fl", "ffi", "ffl", "st", "st")  # U+FB00..U+FB06
_REPLACE |= {chr(0xFB00 + i): letters for i, letters in enumerate(_LIGATURES)}
_SPECIAL = re.compile("[" + re.escape("".join(sorted(_REPLACE))) + "]")
_SOFT_HYPHEN_BREAK = re.compile("\u00ad[ \t]*\r?\n[ \t]*")
_SPACE_RUNS = re.compile(r"  +")
# Blocks whose characters, apart from the few filtered out below, are unchanged by NFC and never combine
# with a neighbour (no combining class, not the second half of a composition): Latin, Greek, Cyrillic,
# punctuation, symbols. A text made of them only is NFC without the check that reads it whole (6x slower).
_NFC_STABLE_BLOCKS = (
    (0x0000, 0x02FF),
    (0x0370, 0x0482),
    (0x048A, 0x052F),
    (0x1E00, 0x1FFF),
    (0x2000, 0x2BFF),
)


def _nfc_stable_class() -> str:
    ranges: list[list[int]] = []
    for lo, hi in _NFC_STABLE_BLOCKS:
        for code in range(lo, hi + 1):
            char = chr(code)
            if unicodedata.combining(char) or unicodedata.normalize("NFC", char) != char:
                continue
            if ranges and ranges[-1][1] == code - 1:
                ranges[-1][1] = code
            else:
                ranges.append([code, code])
    return "".join(re.escape(chr(a)) + ("-" + re.escape(chr(b)) if b > a else "") for a, b in ranges)


_NFC_UNSURE = re.compile(f"[^{_nfc_stable_class()}]+")
MAX_NFC_RUNS = 10_000  # past this many runs of other characters, check the whole text at once


def is_nfc(text: str) -> bool:
    """`unicodedata.is_normalized("NFC", text)`, from one regex scan: characters of the stable blocks
    never change under NFC nor combine with what comes before them, so only each run of other characters
    (stress accents, combining marks), with the character before it that it may combine with, needs the
    full check."""
    for runs, run in enumerate(_NFC_UNSURE.finditer(text), 1):
        if runs > MAX_NFC_RUNS:
            return unicodedata.is_normalized("NFC", text)
        if not unicodedata.is_normalized("NFC", text[max(0, run.start() - 1) : run.end() + 1]):
            return False
    return True


def normalize_unicode(text: str) -> tuple[str, int]:
    """NFC; soft hyphens, zero-width and control characters out; exotic spaces, tabs -> space;
    form feed -> page break; CR/CRLF -> LF; ligatures spelled out; no spaces around line ends."""
    changed = 0
    if "\r" in text:
        changed += text.count("\r")
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    if "\u00ad" in text:  # a soft hyphen at a line end marks a word break: join without a hyphen
        text, n = _SOFT_HYPHEN_BREAK.subn("", text)
        changed += n
    found = _SPECIAL.findall(text)
    if found:  # str.replace per character present: str.translate is per-character slow on non-ASCII
        changed += len(found)
        for char in set(found):
            text = text.replace(char, _REPLACE[char])
    if not text.isascii() and not is_nfc(text):
        before = len(text)
        text = unicodedata.normalize("NFC", text)
        changed += max(1, before - len(text))
    if " \n" in text or "\n " in text:  # per-line strip: a regex on " " tries every space in the text
        before = len(text)
        text = "\n".join(line.strip(" ") for line in text.split("\n"))
        changed += before - len(text)
    if "  " in text:
        text, n = _SPACE_RUNS.subn(" ", text)
        changed += n
    return text.strip(), changed


# --- 2. boilerplate --------------------------------------------------------------------------------

_IA_FRONT = re.compile(
    r"^[ \t]*Digitized[ \t]+by[ \t]+the[ \t]+Internet[ \t]+Archive\s+in[ \t]+(?:the[ \t]+year[ \t]+)?\d{4}"
    r"(?:[ \t]+with[ \t]+funding[ \t]+from[^\n]*(?:\n[^\n]{1,100}){0,3}(?=\n\n|\n?\Z))?[^\n]*",
    re.MULTILINE | re.IGNORECASE,
)
_IA_URL = re.compile(r"^[ \t]*https?://(?:www\.)?archive\.org/details/\S*[ \t]*$", re.MULTILINE)
_DIGITIZED_BY = re.compile(r"^[ \t]*Digitized[ \t]+by[ \t]+(?!the[ \t]+Internet)\S[^\n]{0,24}$", re.MULTILINE)
_GOOGLE_STARTS = (
    "This is a digital copy of a book that was preserved for generations",  # en
    "Ceci est une copie numérique d'un ouvrage conservé depuis des générations",  # fr
    "Dies ist ein digitales Exemplar eines Buches, das seit Generationen",  # de
    "Questo è una copia digitale di un libro che per generazioni",  # it
    "Este es un ejemplar digital de un libro que, durante generaciones",  # es
    "Esta é uma cópia digital de um livro que foi preservado por gerações",  # pt
    "Dit is een digitale kopie van een boek dat al generaties lang",  # nl
)
_GOOGLE_START = re.compile(
    r"(?:^[ \t]*Google[ \t]*\n\s*)?^[ \t]*(?:"
    + "|".join(r"\s+".join(re.escape(w).replace("'", "['’]") for w in s.split()) for s in _GOOGLE_STARTS)
    + ")",
    re.MULTILINE,
)
_GOOGLE_END = re.compile(r"books\s*\.\s*google\s*\.\s*[a-z]{2,3}[^\n]*", re.IGNORECASE)
GOOGLE_MAX_CHARS = 8000  # the boilerplate page is ~3 KB; never cut more than this
FRONT_MATTER_CHARS = 30_000  # boilerplate pages sit at the start of a scan


def _sub_lines(pattern: re.Pattern, text: str) -> tuple[str, int]:
    """Remove every match; return the text and the number of lines the matches covered."""
    lines = 0

    def drop(match: re.Match) -> str:
        nonlocal lines
        lines += match.group().count("\n") + 1
        return ""

    return pattern.sub(drop, text), lines


def drop_boilerplate(text: str) -> tuple[str, int]:
    """Drop archive.org's "Digitized by the Internet Archive in YEAR [with funding from ...]" page and
    its archive.org/details URL, "Digitized by <scanner>" page footers, and Google's "This is a digital
    copy of a book..." page (and its translations) up to its books.google URL."""
    removed = 0
    start = _GOOGLE_START.search(text, 0, FRONT_MATTER_CHARS)
    if start:
        end = _GOOGLE_END.search(text, start.end(), start.start() + GOOGLE_MAX_CHARS)
        if end:
            stop = end.end()
        else:  # no closing URL (OCR lost it): drop up to the next page break
            brk = text.find(PAGE_BREAK, start.end(), start.start() + GOOGLE_MAX_CHARS)
            stop = brk if brk >= 0 else start.end()
        removed += text.count("\n", start.start(), stop) + 1
        text = text[: start.start()] + text[stop:]
    head, tail = text[:FRONT_MATTER_CHARS], text[FRONT_MATTER_CHARS:]
    for pattern in (_IA_FRONT, _IA_URL):
        head, n = _sub_lines(pattern, head)
        removed += n
    text = head + tail
    if "Digitized by" in text:
        text, n = _sub_lines(_DIGITIZED_BY, text)
        removed += n
    return text, removed


# --- 3-5. page furniture: page numbers, running heads, noise lines ---------------------------------
# These rules see the text as blocks between blank lines: `_split_blocks` gives [block, break, block,
# ..., block]; a break of 3+ newlines is a page break. Dropping a block leaves its breaks, which then
# merge into one longer break.

_BLOCK_SEP = re.compile(r"(\n\n+)")  # not \n{2,}: re scans for a literal prefix 8x faster
_PAGE_NUMBER = re.compile(r"[\[(\-–—•*.,' ]*(?:\d{1,4}|[ivxlcdm]{1,8}|[IVXLCDM]{1,8})[\])\-–—•*.,' ]*")
_EDGE_NUMBER = re.compile(r"[\[(]?(?:\d+|[ivxlc]+)[\]).,:;]*")  # "14", "vii." around a running head
_NOT_LETTER = re.compile(r"[\W\d_]+")
_DIALOGUE = ("—", "–", "- ")


def _split_blocks(text: str) -> list[str]:
    return _BLOCK_SEP.split(text)


def _is_page_break(sep: str) -> bool:
    return len(sep) >= len(PAGE_BREAK)


def _drop_page_numbers(parts: list[str]) -> int:
    removed = 0
    for i in range(0, len(parts), 2):
        block = parts[i]
        if block and len(block) <= 16 and "\n" not in block and _PAGE_NUMBER.fullmatch(block):
            parts[i] = ""
            removed += 1
    return removed


def _head_key(line: str) -> str | None:
    """What repeats across pages: the line without page numbers at its edges, letters only, lowercase."""
    if line.startswith(_DIALOGUE):
        return None
    words = line.split()
    while words and _EDGE_NUMBER.fullmatch(words[0]):
        words.pop(0)
    while words and _EDGE_NUMBER.fullmatch(words[-1]):
        words.pop()
    key = _NOT_LETTER.sub("", "".join(words)).lower()
    return key if len(key) >= HEAD_MIN_LETTERS else None


def _drop_running_heads(parts: list[str]) -> int:
    has_breaks = any(_is_page_break(parts[i]) for i in range(1, len(parts), 2))
    candidates: list[tuple[int, str]] = []
    last = len(parts) - 1
    for i in range(0, len(parts), 2):
        block = parts[i]
        if not block or len(block) > MAX_HEAD_CHARS or "\n" in block:
            continue
        if has_breaks:  # the text's start and end count as page breaks
            before = parts[i - 1] if i > 0 else PAGE_BREAK
            after = parts[i + 1] if i < last else PAGE_BREAK
            if not (_is_page_break(before) or _is_page_break(after)):
                continue
        key = _head_key(block)
        if key:
            candidates.append((i, key))
    repeats = Counter(key for _, key in candidates)
    needed = MIN_HEAD_REPEATS if has_breaks else MIN_LINE_REPEATS
    removed = 0
    for i, key in candidates:
        if repeats[key] >= needed:
            parts[i] = ""
            removed += 1
    return removed + (_drop_interrupting_heads(parts) if has_breaks else 0)


def _drop_interrupting_heads(parts: list[str]) -> int:
    """A sentence that runs on over a page break ("...the mus-" | head | "cular systems") proves that the
    one or two short lines between the pages are page furniture, even a head seen only once."""
    texts = [i for i in range(0, len(parts), 2) if parts[i]]
    removed = 0
    k = 0
    while k < len(texts):
        before = parts[texts[k]]
        if before[-1].isalpha() or before[-1] in ",-¬":  # the page ends mid-sentence
            for n in (1, 2):
                if k + n + 1 >= len(texts):
                    break
                heads = [parts[i] for i in texts[k + 1 : k + n + 1]]
                if any(len(h) > MAX_HEAD_CHARS or "\n" in h for h in heads):
                    break
                after = parts[texts[k + n + 1]]
                gaps = parts[texts[k] + 1 : texts[k + n + 1]]
                if after[0].islower() and any(_is_page_break(g) for g in gaps[::2]):
                    for i in texts[k + 1 : k + n + 1]:
                        parts[i] = ""
                    removed += n
                    k += n
                    break
        k += 1
    return removed


def _drop_noise_lines(parts: list[str]) -> int:
    removed = 0
    for i in range(0, len(parts), 2):
        block = parts[i]
        if not block or len(block) > NOISE_MAX_CHARS or "\n" in block or block.startswith(_DIALOGUE):
            continue
        visible = len(block) - block.count(" ")
        letters = sum(c.isalpha() for c in block)
        if letters < NOISE_MAX_LETTER_RATIO * visible:
            parts[i] = ""
            removed += 1
    return removed


def _on_blocks(rule, text: str) -> tuple[str, int]:
    parts = _split_blocks(text)
    removed = rule(parts)
    return ("".join(parts), removed) if removed else (text, 0)


def drop_page_numbers(text: str) -> tuple[str, int]:
    """Drop lines that hold only a page number ("12", "- 12 -", "[12]", "xiv", "XIV.") and stand alone
    between blank lines, as djvu puts them between pages."""
    return _on_blocks(_drop_page_numbers, text)


def drop_running_heads(text: str) -> tuple[str, int]:
    """Drop running heads: short stand-alone lines next to a page break whose text, page numbers at the
    edges aside ("14 THE SILENT FRIEND." / "THE SILENT FRIEND. 15"), repeats on MIN_HEAD_REPEATS pages;
    and one or two short lines that interrupt a sentence running on over a page break. In a text
    without page breaks (one paragraph per line) a short line repeated MIN_LINE_REPEATS times goes."""
    return _on_blocks(_drop_running_heads, text)


def drop_noise_lines(text: str) -> tuple[str, int]:
    """Drop short stand-alone lines that are mostly not letters: OCR of stamps, ornaments, specks.
    Dialogue lines ("— Я?") are kept."""
    return _on_blocks(_drop_noise_lines, text)


# --- 6. hyphenation --------------------------------------------------------------------------------

_HYPHEN_EOL = re.compile(r"[-¬][ \t]*\n\s*")
_WORD_AFTER = re.compile(r"[^\W\d_]+")
_INNER_HYPHEN = re.compile(r"-([^\W\d_]+)")


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


# Line-end hyphens that belong to the word. The document's own vocabulary decides first (a compound
# seen unbroken elsewhere stays hyphenated, a word seen whole is joined); these lists cover the rest.
_COMPOUND_FIRST = _words("self well ill half non кое кой вице экс обер унтер штаб лейб северо юго")
_ALWAYS_SECOND = _words("нибудь либо таки")
_TO_PRONOUNS = _words(
    "кто что где куда когда как какой какая какое какие каким какого чей чья чьё чье чьи почему "
    "зачем откуда сколько кого кому кем чем чего чему ком чём отчего"
)
_PO_ADVERB = re.compile(
    r"(?:ски|цки)$|^(?:моему|твоему|своему|нашему|вашему|другому|прежнему|старому|новому|всякому|иному)$"
)
_ORDINAL_ADVERB = re.compile(r"^(?:первых|вторых|третьих|четв[её]ртых|пятых|шестых|седьмых|восьмых|девятых)$")


def _compounds(text: str) -> set[str]:
    """Lowercase "a-b" for every hyphen between two letters inside a line: the text's own compounds.
    Found from the (rare) hyphens outward, not by a word regex over the whole text (3x slower)."""
    found = set()
    for match in _INNER_HYPHEN.finditer(text):
        at = match.start()
        begin = at
        while begin > 0 and text[begin - 1].isalpha():
            begin -= 1
        if begin < at:
            found.add(f"{text[begin:at]}-{match.group(1)}".lower())
    return found


def _seen_whole(word: str, lowered: str) -> bool:
    """`word` (lowercase) stands as a whole word somewhere in `lowered`; str.find is far faster than a
    regex that starts with a look-behind."""
    at = lowered.find(word)
    while at >= 0:
        end = at + len(word)
        if (at == 0 or not lowered[at - 1].isalpha()) and (end == len(lowered) or not lowered[end].isalpha()):
            return True
        at = lowered.find(word, at + 1)
    return False


def keep_hyphen(first: str, second: str, lowered: str = "", compounds: set[str] | None = None) -> bool:
    """Whether "first-" at a line end + "second" is a hyphenated compound rather than one broken word.

    Evidence from the document comes first: the compound written elsewhere on one line (in
    `compounds`) keeps the hyphen; a word the lists would keep hyphenated but that the lowercased
    text `lowered` has whole is joined. Default: join (most line-end hyphens are typesetting)."""
    if second[0].isupper() and not (first.isupper() and second.isupper()):
        return True  # Anglo-Saxon, Нижне-Новгородский; an all-caps heading is judged like lowercase
    a, b = first.lower(), second.lower()
    if compounds and f"{a}-{b}" in compounds:
        return True
    by_rule = (
        b in _ALWAYS_SECOND
        or (b == "то" and a in _TO_PRONOUNS)
        or a in _COMPOUND_FIRST
        or (a == "по" and bool(_PO_ADVERB.search(b)))
        or (a in ("во", "в") and bool(_ORDINAL_ADVERB.match(b)))
        or (a == "из" and b in ("за", "под"))
    )
    return by_rule and not (lowered and _seen_whole(a + b, lowered))


def join_hyphenated(text: str) -> tuple[str, int]:
    """Join words hyphenated across a line end: "exam-\\nple" -> "example", "well-\\nknown" -> "well-known"
    (see `keep_hyphen`). Across a blank line or page break only when the text goes on in lowercase."""
    out: list[str] = []
    last = joined = 0
    compounds: set[str] | None = None
    lowered = ""
    for match in _HYPHEN_EOL.finditer(text):
        start, end = match.span()
        begin = start  # the word before the hyphen, scanned backwards (re cannot search backwards)
        while begin > 0 and text[begin - 1].isalpha():
            begin -= 1
        after = _WORD_AFTER.match(text, end)
        if begin == start or not after:
            continue
        first, second = text[begin:start], after.group()
        if match.group().count("\n") > 1 and not second[0].islower():
            continue  # a hyphen before a paragraph or page break: not a broken word
        if compounds is None:  # once per text, only for texts with line-end hyphens
            compounds = _compounds(text)
            lowered = text.lower()
        out.append(text[last:start])
        out.append("-" if keep_hyphen(first, second, lowered, compounds) else "")
        last = end
        joined += 1
    if not joined:
        return text, 0
    out.append(text[last:])
    return "".join(out), joined


# --- 7. paragraphs ---------------------------------------------------------------------------------


def is_unwrapped(text: str) -> bool:
    """A text with one paragraph per line (e.g. converted from .docx) rather than djvu's wrapped lines."""
    lines = text.split("\n")
    long_chars = sum(len(line) for line in lines if len(line) > UNWRAPPED_LINE_CHARS)
    total = len(text) - len(lines) + 1
    return total > 0 and long_chars >= UNWRAPPED_SHARE * total


def rejoin_paragraphs(text: str) -> tuple[str, int]:
    """Lines -> paragraphs: blank lines separate paragraphs, other line breaks become spaces. A paragraph
    cut by a page break (the next page goes on in lowercase) is joined across it. Output: one
    paragraph per line, paragraphs separated by one blank line."""
    parts = _split_blocks(text)
    paragraphs: list[str] = []
    joined = 0
    for i in range(0, len(parts), 2):
        block = parts[i].strip()
        if not block:
            continue
        breaks = block.count("\n")
        if breaks:
            block = block.replace("\n", " ")
            joined += breaks
        if paragraphs and block[0].islower():
            paragraphs[-1] = f"{paragraphs[-1]} {block}"
            joined += 1
        else:
            paragraphs.append(block)
    out = "\n\n".join(paragraphs)
    return (_SPACE_RUNS.sub(" ", out) if "  " in out else out), joined


# --- 8. pre-1918 spelling --------------------------------------------------------------------------

_PREREFORM = {"ѣ": "е", "Ѣ": "Е", "і": "и", "І": "И", "ѳ": "ф", "Ѳ": "Ф", "ѵ": "и", "Ѵ": "И"}
_FINAL_HARD_SIGN = re.compile(r"[ъЪ](?![^\W\d_])")
MIN_FINAL_HARD_SIGNS = 3  # one stray "ъ" (OCR noise) does not make a text pre-reform


def looks_prereform(text: str) -> bool:
    """ѣ/ѳ/ѵ, or several words ending in ъ: letters modern Russian (and Ukrainian) never uses."""
    if any(c in text for c in "ѣѢѳѲѵѴ"):
        return True
    return len(_FINAL_HARD_SIGN.findall(text, 0, 200_000)) >= MIN_FINAL_HARD_SIGNS


def modernize_spelling(text: str) -> tuple[str, int]:
    """Pre-1918 Russian spelling -> modern: ѣ->е, і->и, ѳ->ф, ѵ->и (both cases), word-final ъ dropped."""
    changed = 0
    for old, new in _PREREFORM.items():
        n = text.count(old)
        if n:
            text = text.replace(old, new)
            changed += n
    if "ъ" in text or "Ъ" in text:
        text, dropped = _FINAL_HARD_SIGN.subn("", text)
        changed += dropped
    return text, changed


def original_offsets(original: str, modern: str):
    """For `modern` == modernize_spelling(original): an int array mapping every offset of `modern`
    (0..len) to the offset of the same character in `original`, or None when they do not align.

    Letters are replaced one for one and only word-final ъ is dropped, so the dropped signs are all
    the difference; offset len(modern) maps to len(original)."""
    import numpy as np

    dropped = np.array([m.start() for m in _FINAL_HARD_SIGN.finditer(original)], dtype=np.int64)
    kept = np.setdiff1d(np.arange(len(original), dtype=np.int64), dropped, assume_unique=True)
    if kept.size != len(modern):
        return None
    letters = np.frombuffer(original.encode("utf-32-le"), dtype=np.uint32)[kept].tobytes().decode("utf-32-le")
    if modernize_spelling(letters)[0] != modern:
        return None
    return np.append(kept, len(original))


# --- the pipeline ----------------------------------------------------------------------------------


def clean_text(raw: str, prereform_spelling: bool = True) -> CleanResult:
    """Run every rule in order; `text` is in modern spelling when `prereform_spelling` is on and the text
    looks pre-reform, `text_original` keeps the document's own spelling."""
    counts = dict.fromkeys(RULES, 0)
    text, counts["unicode"] = normalize_unicode(raw)
    text, counts["boilerplate"] = drop_boilerplate(text)
    if is_unwrapped(text):  # every line a paragraph; blank lines there do not mark pages
        text = "\n\n".join(line for line in text.split("\n") if line)
    parts = _split_blocks(text)  # one split for the three block rules
    counts["page_numbers"] = _drop_page_numbers(parts)
    counts["running_heads"] = _drop_running_heads(parts)
    counts["noise_lines"] = _drop_noise_lines(parts)
    text = "".join(parts)
    text, counts["hyphenation"] = join_hyphenated(text)
    text, counts["line_breaks"] = rejoin_paragraphs(text)
    original = text
    if prereform_spelling and looks_prereform(text):
        text, counts["prereform"] = modernize_spelling(text)
    return CleanResult(text=text, text_original=original, counts=counts)
