"""A synthetic archive of raw OCR, any size, made from ../shared/corpus: the benchmark's big corpus.

    .venv/bin/python benchmarks/synthetic_ocr.py OUT_DIR --mb 1024 [--corpus DIR] [--item-mb 1.0] [--seed 0]

Writes OUT_DIR/<identifier>/<identifier>_djvu.txt (+ _meta.xml), the `ia download` layout a local
archive.source reads. Each item takes the blocks (text between blank lines, as scanned: line breaks,
hyphens, page numbers and running heads kept) of one language of the real corpus, sampled at random, so
that two items share few blocks and the dedupe step keeps them apart; one word in WORD_NOISE gets one
letter misread (OCR-like confusions), so the vocabulary keeps growing with the corpus as a real one does
and the per-word token cache cannot hold everything. Sizes vary around --item-mb (log-normal).
Deterministic for a seed. OUT_DIR must lie outside the repository (use /tmp).
"""

from __future__ import annotations

import argparse
import random
import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_CORPUS = REPO.parent / "shared" / "corpus"
LANGUAGES = {"en_ia_djvu": "eng", "ru_ocr": "rus", "ru_lit": "rus"}
WORD_NOISE = 0.02  # share of words with one misread letter
# Letters OCR confuses (each maps to its look-alikes, Cyrillic and Latin mixed, as real scans do).
CONFUSIONS = {
    "о": "оo0", "е": "еeс", "а": "аa", "с": "сc", "р": "рp", "н": "нии", "и": "ин", "ш": "щш", "т": "тг",
    "e": "ec", "c": "ce", "o": "o0", "l": "l1I", "i": "il", "n": "nu", "m": "rn", "h": "hb", "u": "un",
}  # fmt: skip
_BLOCK = re.compile(r"\n\s*\n")


def blocks_by_language(corpus: Path) -> dict[str, list[str]]:
    pools: dict[str, list[str]] = {}
    for folder, language in LANGUAGES.items():
        for path in sorted((corpus / folder).glob("*.txt")):
            text = path.read_text(encoding="utf-8", errors="replace")
            pools.setdefault(language, []).extend(b for b in _BLOCK.split(text) if b.strip())
    if not pools:
        raise SystemExit(f"no .txt files under {corpus}/{{{','.join(LANGUAGES)}}}")
    return pools


def misread(block: str, rng: random.Random) -> str:
    """`block` with about WORD_NOISE of its words given one confused letter."""
    words = block.count(" ") + block.count("\n") + 1
    for _ in range(int(words * WORD_NOISE + rng.random())):
        at = rng.randrange(len(block))
        if block[at] in CONFUSIONS:
            block = block[:at] + rng.choice(CONFUSIONS[block[at]]) + block[at + 1 :]
    return block


def item_text(pool: list[str], size: int, rng: random.Random) -> str:
    parts, total = [], 0
    while total < size:
        block = misread(rng.choice(pool), rng)
        parts.append(block)
        total += len(block.encode("utf-8")) + 2
    return "\n\n".join(parts) + "\n"


META = """<?xml version="1.0" encoding="UTF-8"?>
<metadata>
  <identifier>{id}</identifier>
  <title>Synthetic OCR volume {n}</title>
  <language>{language}</language>
  <mediatype>texts</mediatype>
</metadata>
"""


def generate(out: Path, megabytes: float, corpus: Path = DEFAULT_CORPUS, item_mb: float = 1.0, seed: int = 0):
    """Write items until `megabytes` of text; returns [(identifier, bytes)]."""
    out = out.resolve()
    if out.is_relative_to(REPO):
        raise SystemExit(f"{out}: write the synthetic corpus outside the repository (e.g. under /tmp)")
    pools = blocks_by_language(corpus)
    languages = sorted(pools)
    weights = [len(pools[lang]) for lang in languages]
    rng = random.Random(seed)
    written, items = 0, []
    while written < megabytes * 1e6:
        n = len(items)
        identifier = f"synthetic{n:06d}ocr"
        language = rng.choices(languages, weights)[0]
        size = int(min(8.0, rng.lognormvariate(0, 0.8)) * item_mb * 1e6)
        text = item_text(pools[language], size, rng)
        folder = out / identifier
        folder.mkdir(parents=True, exist_ok=True)
        data = text.encode("utf-8")
        (folder / f"{identifier}_djvu.txt").write_bytes(data)
        (folder / f"{identifier}_meta.xml").write_text(META.format(id=identifier, n=n, language=language))
        written += len(data)
        items.append((identifier, len(data)))
    return items


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--mb", type=float, default=1024.0)
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--item-mb", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    items = generate(args.out, args.mb, args.corpus, args.item_mb, args.seed)
    print(f"{len(items)} items, {sum(n for _, n in items) / 1e6:.1f} MB in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
