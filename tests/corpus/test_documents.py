"""The clean stage: decode, clean, quality, language, duplicates and clusters -> documents/rejected."""

from __future__ import annotations

import polars as pl
import pytest
from conftest import DEMO_ARCHIVE

from archive_encoders.corpus.clean import RULES
from archive_encoders.corpus.documents import build_documents, is_garbage_token, quality_problem, sample_text

LIGHTHOUSES = (
    "The first lighthouses were simply fires of wood or coal burning in an iron basket on the top of a\n"
    "tower. Such a fire could be seen a few miles in clear weather, but it consumed great quantities of\n"
    "fuel, it was hidden by its own smoke when the wind blew towards the sea, and in a gale it either\n"
    "died down or roared away in a moment.\n\n"
    "The oil lamp with a circular wick, in which air is supplied both to the inside and to the out-\n"
    "side of the flame, gave a much brighter and steadier light. Several such wicks placed one within\n"
    "another made a single large flame, and this was the source used in most lighthouses for fifty years.\n"
)
CANAL = [
    "The young Duke of Bridgewater owned coal mines at Worsley, a few miles from Manchester, but the coal "
    "could reach the town only on the backs of horses or by a river navigation whose owners charged "
    "heavy tolls. He resolved to make a canal of his own, and in James Brindley he found an engineer.",
    "Brindley's plan was bold. Instead of following the valleys and descending to the river by locks, the "
    "canal was to be carried on one level all the way, crossing the River Irwell on an aqueduct at Barton.",
    "The aqueduct was built of stone on three arches, and the bed of the canal was made watertight by "
    "puddling, that is, by laying clay mixed with water and working it until it formed a dense paste.",
]
CANAL_MORE = [
    "At Worsley the canal was carried into the hillside itself, where underground channels led directly "
    "to the coal faces, so that coal could be loaded into boats in the mine and floated out to the town.",
    "The success of the Bridgewater Canal began the age of canal building. Within thirty years a network "
    "of navigations joined the Mersey to the Trent, the Severn and the Thames, carrying heavy goods cheaply.",
]
VOLGA = (
    "Волга берет начало на Валдайской возвышенности, из небольшого ключа близ деревни Волговерховье, и "
    "течет сначала узким ручьем через болота и озера. Только после впадения Тверцы она становится "
    "судоходной, а ниже Ярославля превращается в широкую реку, по которой идут пароходы и баржи.\n\n"
    "Правый берег Волги высок и обрывист, левый низмен и луговой. На правом берегу стоят почти все "
    "большие города: Нижний Новгород, Казань, Самара, Саратов."
)
KIZHI = (
    "Северные плотники строили без гвоздей и почти без пилы. Главным их орудием был топор, которым они "
    "рубили брёвна, тесали доски и вырезали украшения. Дерево, рубленное топором, лучше сопротивляется "
    "гниению, потому что волокна его не разорваны, как при распиловке, а как бы запечатаны лезвием."
)
SALT_PREREFORM = (
    "Соль добываютъ въ Прикамьѣ съ давнихъ временъ. Еще въ пятнадцатомъ вѣкѣ здѣсь, по берегамъ Камы, "
    "возникли первыя варницы, а впослѣдствіи на соляномъ промыслѣ разбогатѣли купцы Строгановы. Разсолъ "
    "выпариваютъ въ варницахъ надъ сильнымъ огнемъ цѣлыя сутки, и соль осѣдаетъ на днѣ црена."
)
RHINE = (
    "Der Rhein ist seit den Tagen der Römer die wichtigste Wasserstraße Mitteleuropas. Auf ihm wurden "
    "Wein, Holz, Getreide und Steine stromabwärts nach Holland gebracht, während die Schiffe stromaufwärts "
    "Salz, Fisch und Kolonialwaren in das Innere des Landes führten."
)
DEBRIS = " ".join(["lUo?<f3SC ^T^d^ 8«eondai7 '/■ vv£ M-bM-^@ j|T0^ ,;:.<> 1869. WELLCOME"] * 8)


def canal(paragraphs, noise=False):
    if not noise:
        return "\n\n".join(paragraphs)
    # the same book scanned again: other misreadings and pages (with running heads) -> the same clean text
    first, second, third = (p.replace("the town", "tbe town") for p in paragraphs)
    return f"{first}\n\n\n\n12 THE CANAL.\n\n\n\n{second}\n\n\n\nTHE CANAL. 13\n\n\n\n{third}"


FILES = {  # identifier -> bytes (None: the download said ok but the file is gone)
    "a_lighthouses": LIGHTHOUSES.encode(),
    "a_lighthouses_copy": LIGHTHOUSES.encode(),
    "b_canal": canal(CANAL).encode(),
    "b_canal_rescan": canal(CANAL, noise=True).encode(),
    "b_canal_second_edition": canal(CANAL + CANAL_MORE).encode(),
    "c_volga": VOLGA.encode(),
    "d_kizhi_cp1251": KIZHI.encode("cp1251"),
    "e_salt_prereform": SALT_PREREFORM.encode(),
    "f_rhine": RHINE.encode(),
    "g_debris": DEBRIS.encode(),
    "h_short": b"Too short to be a book.",
    "i_empty": b"",
    "j_latin1": RHINE.encode("latin-1"),
    "k_missing": None,
}
SETTINGS = {"min_chars": 200, "languages": ["ru", "en"], "dedupe_threshold": 0.8, "cluster_threshold": 0.5}


def make_inputs(root):
    """items.parquet + downloads.parquet, paths relative to `root` (the working directory)."""
    rows, downloads = [], []
    for identifier, data in FILES.items():
        path = f"resources/archive/{identifier}/{identifier}_djvu.txt"
        if data is not None:
            (root / path).parent.mkdir(parents=True, exist_ok=True)
            (root / path).write_bytes(data)
        rows.append({"identifier": identifier, "title": f"Title of {identifier}", "creator": ["A.", "B."]})
        downloads.append({"identifier": identifier, "path": path, "status": "ok", "reason": None})
    downloads.append({"identifier": "z_skipped", "path": None, "status": "skipped", "reason": "md5 mismatch"})
    pl.DataFrame(rows).with_columns(date=pl.lit("1890")).write_parquet(root / "items.parquet")
    pl.DataFrame(downloads).write_parquet(root / "downloads.parquet")


@pytest.fixture(scope="module")
def stage(tmp_path_factory):
    root = tmp_path_factory.mktemp("clean")
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(root)
        make_inputs(root)
        outputs = ("documents.parquet", "rejected.parquet")
        build_documents("items.parquet", "downloads.parquet", *outputs, SETTINGS)
    return root, pl.read_parquet(root / "documents.parquet"), pl.read_parquet(root / "rejected.parquet")


def test_kept_documents(stage):
    _, docs, _ = stage
    assert docs["doc_id"].to_list() == [
        "a_lighthouses", "b_canal", "b_canal_second_edition", "c_volga", "d_kizhi_cp1251", "e_salt_prereform",
    ]  # fmt: skip
    languages = dict(docs.select("doc_id", "language").iter_rows())
    assert languages["a_lighthouses"] == "en" and languages["c_volga"] == "ru"
    assert docs["language_score"].min() > 0.5
    assert docs.filter(pl.col("doc_id") == "a_lighthouses")["creator"].item() == "A.; B."


def test_rejections_say_which_stage_and_why(stage):
    _, _, rejected = stage
    rows = {r["doc_id"]: r for r in rejected.iter_rows(named=True)}
    assert rejected["doc_id"].to_list() == sorted(rows)
    assert {k: v["stage"] for k, v in rows.items()} == {
        "a_lighthouses_copy": "duplicate",
        "b_canal_rescan": "duplicate",
        "f_rhine": "language",
        "g_debris": "quality",
        "h_short": "quality",
        "i_empty": "decode",
        "j_latin1": "decode",
        "k_missing": "decode",
    }
    assert rows["a_lighthouses_copy"]["duplicate_of"] == "a_lighthouses"
    assert rows["a_lighthouses_copy"]["reason"] == "exact duplicate"
    assert rows["b_canal_rescan"]["duplicate_of"] == "b_canal"
    assert rows["b_canal_rescan"]["reason"].startswith("near duplicate")
    assert "detected de" in rows["f_rhine"]["reason"]
    assert "too short" in rows["h_short"]["reason"]
    assert "garbage" in rows["g_debris"]["reason"] or "letter ratio" in rows["g_debris"]["reason"]
    assert rows["i_empty"]["reason"] == "empty file"
    assert "not UTF-8" in rows["j_latin1"]["reason"]
    assert "cannot read" in rows["k_missing"]["reason"]
    assert rows["f_rhine"]["duplicate_of"] is None


def test_cp1251_and_prereform_documents(stage):
    _, docs, _ = stage
    kizhi = docs.filter(pl.col("doc_id") == "d_kizhi_cp1251").row(0, named=True)
    assert kizhi["text"].startswith("Северные плотники строили без гвоздей")
    salt = docs.filter(pl.col("doc_id") == "e_salt_prereform").row(0, named=True)
    assert salt["text"].startswith("Соль добывают в Прикамье с давних времен.")
    assert salt["text_original"].startswith("Соль добываютъ въ Прикамьѣ")
    assert salt["removed_prereform"] > 10


def test_stats_for_every_rule(stage):
    _, docs, _ = stage
    for column in ["chars_in", "chars_out", *(f"removed_{rule}" for rule in RULES)]:
        assert docs[column].dtype == pl.Int64 and docs[column].null_count() == 0, column
    lighthouses = docs.filter(pl.col("doc_id") == "a_lighthouses").row(0, named=True)
    assert lighthouses["removed_hyphenation"] == 1 and lighthouses["removed_line_breaks"] == 4
    assert lighthouses["chars_out"] == len(lighthouses["text"]) < lighthouses["chars_in"]


def test_related_editions_share_a_cluster(stage):
    _, docs, _ = stage
    clusters = dict(docs.select("doc_id", "cluster_id").iter_rows())
    assert clusters["b_canal_second_edition"] == clusters["b_canal"] == "b_canal"
    assert clusters["a_lighthouses"] == "a_lighthouses" != clusters["c_volga"]


def test_a_rerun_writes_the_same_tables(stage, monkeypatch):
    root, docs, rejected = stage
    monkeypatch.chdir(root)
    build_documents("items.parquet", "downloads.parquet", "again.parquet", "again_rejected.parquet", SETTINGS)
    assert pl.read_parquet(root / "again.parquet").equals(docs)
    assert pl.read_parquet(root / "again_rejected.parquet").equals(rejected)


def test_language_filter_follows_the_config(stage, monkeypatch):
    root, _, _ = stage
    monkeypatch.chdir(root)
    english_only = {**SETTINGS, "languages": ["en"]}
    build_documents("items.parquet", "downloads.parquet", "en.parquet", "en_rejected.parquet", english_only)
    rejected = pl.read_parquet(root / "en_rejected.parquet")
    by_language = rejected.filter(pl.col("stage") == "language")["doc_id"].to_list()
    assert {"c_volga", "d_kizhi_cp1251", "e_salt_prereform", "f_rhine"} <= set(by_language)


def test_quality_filter_thresholds():
    settings = {"min_chars": 100, "min_letter_ratio": 0.6, "max_garbage_ratio": 0.25}
    assert quality_problem(LIGHTHOUSES, settings) is None
    assert "too short" in quality_problem("A short line.", settings)
    assert "letter ratio" in quality_problem("1869 1870 1871 — 12, 13, 14; 15. " * 10, settings)
    lenient = {**settings, "min_letter_ratio": 0.1}
    assert "garbage" in quality_problem("word l<f3 ^T^d^ 8«eon " * 20, lenient)


@pytest.mark.parametrize(
    ("token", "garbage"),
    [
        ("lighthouse,", False), ("(1869).", False), ("19th", False), ("2-го", False), ("well-known", False),
        ("Mr.", False), ("—", False), ("...", False), ("l<f3SC", True), ("^T^d^", True), ("8«eondai7", True),
        ("Pocciя", True), ("^%$#@!", True), ("t1e", True),
    ],
)  # fmt: skip
def test_garbage_tokens(token, garbage):
    assert is_garbage_token(token) is garbage


def test_sample_text_is_bounded_and_deterministic():
    text = " ".join(f"w{i}" for i in range(50_000))
    sample = sample_text(text, 6000)
    assert len(sample) <= 6000 + 8 and sample == sample_text(text, 6000)
    assert sample_text("short text", 6000) == "short text"


def test_the_demo_archive(tmp_path):
    """The embedded demo corpus through the real local-source download stage and this stage."""
    from archive_encoders import archive

    settings = {"source": "local", "local_dir": str(DEMO_ARCHIVE), "max_items": 100}
    archive.search(settings, tmp_path / "items.parquet")
    archive.download(tmp_path / "items.parquet", tmp_path / "downloads.parquet", tmp_path, 5, settings)
    build_documents(
        tmp_path / "items.parquet",
        tmp_path / "downloads.parquet",
        tmp_path / "documents.parquet",
        tmp_path / "rejected.parquet",
        {"min_chars": 300},
        archive_settings=settings,
    )
    docs = pl.read_parquet(tmp_path / "documents.parquet")
    rejected = {r["doc_id"]: r for r in pl.read_parquet(tmp_path / "rejected.parquet").iter_rows(named=True)}
    assert docs.height == 44 and set(docs["language"]) == {"ru", "en"}  # 50 items, 6 rejected below
    assert rejected["greatfirelondon00hart_0"]["duplicate_of"] == "greatfirelondon00hart"
    assert rejected["lakebaikalnotes00vere_1"]["duplicate_of"] == "lakebaikalnotes00vere"
    assert rejected["rheinschiffahrt00koch"]["stage"] == "language"
    assert rejected["fragmentleaf00unkn"]["stage"] == "quality"
    assert "kizhizodchestvo00opol" in docs["doc_id"].to_list()  # cp1251
    clusters = dict(docs.select("doc_id", "cluster_id").iter_rows())
    assert clusters["lakebaikalnotes1923vere"] == "lakebaikalnotes00vere"
    text = "\n".join(docs["text"])
    assert "Digitized by" not in text and "books.google" not in text and "ѣ" not in text


def test_documents_too_short_to_shingle_are_not_duplicates(tmp_path, monkeypatch):
    """One-word documents have no word pairs: their empty MinHashes must not make them duplicates."""
    from archive_encoders.corpus.documents import OTHER_LANGUAGES

    monkeypatch.chdir(tmp_path)
    ids = ["one", "two"]
    for identifier, word in zip(ids, ("Lighthouses", "Canals"), strict=True):
        (tmp_path / f"{identifier}.txt").write_text(word, encoding="utf-8")
    pl.DataFrame({"identifier": ids, "title": ids}).write_parquet("items.parquet")
    paths = [f"{i}.txt" for i in ids]
    pl.DataFrame({"identifier": ids, "path": paths, "status": ["ok"] * 2}).write_parquet("downloads.parquet")
    lenient = {
        "min_chars": 0,
        "min_letter_ratio": 0,
        "max_garbage_ratio": 1,
        "languages": list(OTHER_LANGUAGES),
    }
    build_documents("items.parquet", "downloads.parquet", "d.parquet", "r.parquet", lenient)
    docs = pl.read_parquet("d.parquet")
    assert docs["doc_id"].to_list() == ids and docs["cluster_id"].to_list() == ids


def test_shingles_do_not_depend_on_the_hashing_blocks():
    """shingle_hashes hashes long texts block by block (cut at spaces): the result is that of one pass."""
    import numpy as np

    from archive_encoders.corpus import dedupe

    rng = np.random.default_rng(0)
    words = [f"w{n}" for n in rng.integers(0, 50_000, size=200_000)]
    text = " ".join(words[:100_000]) + " " + "x" * 700_000 + "\n\n" + " ".join(words[100_000:])
    data = np.frombuffer(text.lower().encode(), np.uint8)
    assert len(data) > 3 * dedupe._HASH_BLOCK
    ids = dedupe._word_hashes(data)
    assert len(ids) == len(text.split())
    pairs = dedupe._mix(ids[:-1] * np.uint64(0x100000001B3) + ids[1:])
    one_pass = np.unique((pairs >> np.uint64(32)).astype(np.uint32))[: dedupe.MAX_SHINGLES]
    assert np.array_equal(dedupe.shingle_hashes(text), one_pass)
