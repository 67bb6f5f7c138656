"""Every OCR clean-up rule on snippets shaped like ../shared/corpus (en_ia_djvu/, ru_ocr/)."""

from __future__ import annotations

import re

import pytest
from conftest import SHARED

from archive_encoders.corpus import clean
from archive_encoders.corpus.clean import (
    RULES,
    clean_text,
    decode_bytes,
    drop_boilerplate,
    drop_noise_lines,
    drop_page_numbers,
    drop_running_heads,
    is_unwrapped,
    join_hyphenated,
    keep_hyphen,
    looks_prereform,
    modernize_spelling,
    normalize_unicode,
    rejoin_paragraphs,
)

# --- decoding -------------------------------------------------------------------------------------


def test_decode_utf8_strips_bom():
    decoded = decode_bytes("\ufeffВолга".encode())
    assert (decoded.text, decoded.encoding) == ("Волга", "utf-8")


def test_decode_cp1251_russian():
    text = "Соль добывают в Прикамье с давних времён, и варницы стоят по берегам Камы."
    decoded = decode_bytes(text.encode("cp1251"))
    assert (decoded.text, decoded.encoding) == (text, "cp1251")


def test_decode_utf16_with_bom():
    assert decode_bytes("Thames tides".encode("utf-16")).text == "Thames tides"


def test_decode_rejects_non_utf8_that_is_not_russian():
    decoded = decode_bytes("Die Straße am Rhein, größer und schöner als früher.".encode("latin-1"))
    assert decoded.text is None
    assert "not UTF-8" in decoded.reason and "Cyrillic" in decoded.reason


@pytest.mark.parametrize("data", [b"", b"  \n\n \r\n"])
def test_decode_rejects_empty_file(data):
    assert decode_bytes(data).reason == "empty file"


# --- 1. unicode -----------------------------------------------------------------------------------


def test_normalize_unicode_fixes_invisible_and_exotic_characters():
    raw = (
        "The science of physio\u00ad\nlogy teaches us\r\n"  # soft hyphen at a line end: a word break
        "that\u00a0the human\u200b body is con\u00adstructed\t upon\r\n"
        "the most exact mechanical \ufb01gures.  \n"  # ligature, trailing spaces
        "Cafe\u0301 owners\fnext page"  # combining accent -> NFC; form feed -> page break
    )
    text, changed = normalize_unicode(raw)
    assert text == (
        "The science of physiology teaches us\nthat the human body is constructed upon\n"
        "the most exact mechanical figures.\nCafé owners\n\n\nnext page"
    )
    assert changed >= 8


def test_normalize_unicode_leaves_clean_text_alone():
    text = "Правый берег Волги высок и обрывист,\nлевый низмен и луговой."
    assert normalize_unicode(text) == (text, 0)


# --- 2. boilerplate -------------------------------------------------------------------------------

IA_FRONT = (
    "22900254071\n\n\n\n\ns\n\n\n\n\nDigitized by the Internet Archive\nin 2016\n\n\n"
    "https://archive.org/details/b28114759\n\n\n\n\nI\n\n\nSHORT ACCOUNT\n\n%\n"
)
IA_FUNDED = (
    "Digitized by the Internet Archive\nin 2010 with funding from\nUniversity of Toronto\n\n"
    "http://www.archive.org/details/historyofrussia01rambuoft\n\n\n\nHISTORY OF RUSSIA\n"
)
GOOGLE = (
    "Google\n\n\n\nThis is a digital copy of a book that was preserved for generations on library "
    "shelves before it was carefully scanned by Google as part of a project\n\nto make the world's "
    "books discoverable online.\n\nIt has survived long enough for the copyright to expire.\n\n"
    "Usage guidelines\n\nGoogle is proud to partner with libraries to digitize public domain materials.\n\n"
    "About Google Book Search\n\nGoogle's mission is to organize the world's information.\n\n"
    "at |http: //books .google .com/I\n\n\n\nI\n\n\n\nTHE\n\nSILENT FEIEND;\n"
)


def test_drop_boilerplate_internet_archive_front_page():
    text, removed = drop_boilerplate(IA_FRONT)
    assert "Digitized" not in text and "archive.org" not in text
    assert "SHORT ACCOUNT" in text and removed == 3


def test_drop_boilerplate_with_funding_lines():
    text, removed = drop_boilerplate(IA_FUNDED)
    assert text.strip() == "HISTORY OF RUSSIA"
    assert removed == 4


def test_drop_boilerplate_google_notice_up_to_its_ocr_mangled_url():
    text, removed = drop_boilerplate(GOOGLE)
    assert "Google" not in text and "digital copy" not in text
    assert "SILENT FEIEND;" in text and removed > 10


def test_drop_boilerplate_localized_google_notice_and_page_footers():
    raw = (
        "Ceci est une copie numérique d’un ouvrage conservé depuis des générations dans les rayonnages "
        "d’une bibliothèque.\n\nÀ propos du service Google Recherche de Livres\n\n"
        "à l'adresse http://books.google.com\n\n\nPREMIÈRE PARTIE\n\ntext of the page\n\n"
        "Digitized by VjOOQlC\n\n\nmore text\n\nDigitized by Google\n"
    )
    text, _ = drop_boilerplate(raw)
    assert "Google" not in text and "copie" not in text and "Digitized" not in text
    assert "PREMIÈRE PARTIE" in text and "more text" in text


def test_drop_boilerplate_keeps_ordinary_text():
    text = "The Lord Mayor, called from his bed, is said to have thought lightly of the danger."
    assert drop_boilerplate(text) == (text, 0)


# --- 3-5. page furniture --------------------------------------------------------------------------


def test_drop_page_numbers_between_blank_lines():
    raw = (
        "the general practitioner neglects to give.\n\n\n8\n\n\nthe absence of those\n\n\n- 14 -\n\n\n"
        "in 1812 the army\n\n\n[15]\n\n\nxiv\n\n\nIX.\n\n\nof manhood sinking"
    )
    text, removed = drop_page_numbers(raw)
    assert removed == 5
    assert "in 1812 the army" in text
    assert [line for line in text.split("\n") if line] == [
        "the general practitioner neglects to give.",
        "the absence of those",
        "in 1812 the army",
        "of manhood sinking",
    ]


def test_drop_running_heads_repeated_at_page_breaks_with_varying_numbers():
    raw = (
        "did not admit the existence of this muscle.\n\n\n\n14 THB SILENT FRIEND.\n\n"
        "The testicles, or organs which secrete the semen.\n\n\n\nTHB SILENT FRIEND. 15\n\n"
        "latter are rendered more effeminate.\n\n\n\n16 THB SILENT FRIEND.\n\n"
        "CHAPTER II.\n\nIt occasionally happens that the testicles"
    )
    text, removed = drop_running_heads(raw)
    assert removed == 3 and "SILENT FRIEND" not in text
    assert "CHAPTER II." in text  # a heading seen once, not at a page break, stays


def test_drop_running_heads_that_interrupt_a_sentence_over_a_page_break():
    raw = (
        "arising from perversion of the nervous and mus-\n\n\nIMPCJtTANOE OP THIS WORK.\n\n\n"
        "cular systems, for, of all the ailments"
    )
    text, removed = drop_running_heads(raw)
    assert removed == 1 and "IMPCJtTANOE" not in text


def test_drop_running_heads_in_one_paragraph_per_line_text():
    # ru_ocr shape (docx converted): no blank lines, the head and page number are lines of their own
    lines = [
        "Высочайше повелено: пенсии и единовременныя пособия президентам всех трех академий.",
        "Современная Хроника",
        "Разрешено чиновникам таможеннаго ведомства, прослужившим тридцать лет.",
        "Современная Хроника",
        "— Да.",
        "Предоставлено главноуправляющему Грузиею дозволять женщинам выход в замужство.",
        "Современная Хроника",
        "— Да.",
        "— Да.",
    ]
    text, removed = drop_running_heads("\n\n".join(lines))
    assert removed == 3 and "Хроника" not in text
    assert text.count("— Да.") == 3  # dialogue is not a running head


def test_drop_noise_lines():
    raw = "SHORT ACCOUNT\n\n%\n\n* /\n\n'/■\n\nWELLCOME INSTITUTE\n\n— Я?\n\nThe science of physiology"
    text, removed = drop_noise_lines(raw)
    assert removed == 3
    assert [b for b in text.split("\n") if b] == [
        "SHORT ACCOUNT",
        "WELLCOME INSTITUTE",
        "— Я?",
        "The science of physiology",
    ]


# --- 6. hyphenation -------------------------------------------------------------------------------


def test_join_hyphenated_words_at_line_ends():
    raw = "upon the most exact mechanical princi-\nples, and the more perfectly it is under-\nstood"
    text, joined = join_hyphenated(raw)
    assert text == "upon the most exact mechanical principles, and the more perfectly it is understood"
    assert joined == 2


@pytest.mark.parametrize(
    ("first", "second", "keep"),
    [
        ("well", "known", True),  # English compound heads
        ("self", "acquired", True),
        ("Anglo", "Saxon", True),  # capital after the hyphen: a compound of names
        ("EXAM", "PLE", False),  # an all-caps heading broken like any word
        ("кто", "нибудь", True),  # particles
        ("что", "то", True),
        ("мес", "то", False),  # "то" after a syllable, not a pronoun
        ("по", "русски", True),
        ("по", "мощь", False),
        ("во", "первых", True),
        ("из", "за", True),
        ("Нижне", "Новгородский", True),
        ("отстав", "ку", False),
        ("princi", "ples", False),
    ],
)
def test_keep_hyphen_rules(first, second, keep):
    assert keep_hyphen(first, second) is keep


def test_join_hyphenated_trusts_the_documents_own_spelling():
    raw = (
        "every school-boy knows it, and self-\nish men do not. Every school-\nboy and everyone "
        "knows it to-\nday as today and selfish."
    )
    text, _ = join_hyphenated(raw)
    assert "school-boy and" in text  # "school-boy" is written so elsewhere in the text
    assert "knows it today" in text  # "today" is written whole elsewhere
    assert "and selfish men" in text  # "selfish" seen whole beats the "self-" rule


def test_join_hyphenated_across_a_page_break_only_when_the_text_goes_on():
    raw = "the nervous and mus-\n\n\n\ncular systems.\nThe Anglo-\n\nSaxon chronicle; 1840-\n1850"
    text, joined = join_hyphenated(raw)
    assert "nervous and muscular systems." in text
    assert "Anglo-\n\nSaxon" in text and "1840-\n1850" in text  # a new paragraph; digits
    assert joined == 1


def test_join_hyphenated_russian_ocr():
    raw = "Высочайше утверждено положеніе о взаимныхъ отноше-\nніяхъ; кто-\nнибудь изъ владѣль-\nцевъ"
    text, joined = join_hyphenated(raw)
    assert text == "Высочайше утверждено положеніе о взаимныхъ отношеніяхъ; кто-нибудь изъ владѣльцевъ"
    assert joined == 3


# --- 7. paragraphs --------------------------------------------------------------------------------


def test_rejoin_paragraphs_and_pages():
    raw = (
        "The multiplied evils, pains, and\nsorrows, detailed in the ensuing\npages.\n\n"
        "We are confident that the follow-\ning pages will be found useful. To\n\n\n\n"
        "the absence of those all-important\nwarnings.\n\n\n\nCHAPTER II.\n\nIt happens"
    )
    text, joined = rejoin_paragraphs(raw)
    assert text.split("\n\n") == [
        "The multiplied evils, pains, and sorrows, detailed in the ensuing pages.",
        "We are confident that the follow- ing pages will be found useful. To the absence of those "
        "all-important warnings.",
        "CHAPTER II.",
        "It happens",
    ]
    assert joined == 5  # four line breaks inside paragraphs, one page break inside a sentence


def test_is_unwrapped():
    wrapped = "\n".join(["The science of physiology teaches us that"] * 40)
    docx = "\n".join(["Высочайше повелено: пенсии и единовременныя пособия президентам " * 6] * 10)
    assert not is_unwrapped(wrapped)
    assert is_unwrapped(docx + "\nСовременная Хроника\n12\n" + docx)


# --- 8. pre-1918 spelling -------------------------------------------------------------------------


def test_modernize_spelling():
    text, changed = modernize_spelling(
        "Въ лѣсу стоялъ домъ. Исторія Россіи. Ѳеодоръ и мѵро. ВЪ СѢВЕРНОЙ РѢКѢ подъездъ"
    )
    assert text == "В лесу стоял дом. История России. Феодор и миро. В СЕВЕРНОЙ РЕКЕ подъезд"
    assert changed == 14  # 8 letters + 6 word-final ъ


def test_looks_prereform():
    assert looks_prereform("Въ лѣсу")
    assert looks_prereform("Соль добываютъ изъ земли подъ городомъ")  # three word-final ъ
    assert not looks_prereform("Київ і Львів — міста України, підʼїзд")  # Ukrainian і is not pre-reform
    assert not looks_prereform("Подъезд и объём: ъ только внутри слова")


# --- the pipeline ---------------------------------------------------------------------------------

DJVU_PAGE = (
    "Digitized by the Internet Archive\nin 2011 with funding from\nUniversity of Toronto\n\n"
    "https://archive.org/details/volgarechnoi00soko\n\n\n\n"
    "Волга беретъ начало на Валдайской возвышенности, изъ неболь-\nшого ключа близъ деревни "
    "Волговерховье.\n\nПравый берегъ Волги высокъ и обрыв-\n\n\n\n12 ВОЛГА.\n\n\n\n"
    "истъ, лѣвый низменъ и луговой.\n\n\n\nВОЛГА. 13\n\n\n\nРѣка замерзаетъ въ ноябрѣ.\n\n\n\n"
    "14 ВОЛГА.\n\n\n\nНавигація продолжается около семи мѣсяцевъ.\n"
)


def test_clean_text_runs_every_rule():
    result = clean_text(DJVU_PAGE)
    assert set(result.counts) == set(RULES)
    assert result.text == (
        "Волга берет начало на Валдайской возвышенности, из небольшого ключа близ деревни Волговерховье."
        "\n\nПравый берег Волги высок и обрывист, левый низмен и луговой."
        "\n\nРека замерзает в ноябре.\n\nНавигация продолжается около семи месяцев."
    )
    assert result.text_original.startswith("Волга беретъ начало")
    assert result.counts["boilerplate"] == 4 and result.counts["running_heads"] == 3
    assert result.counts["hyphenation"] == 2 and result.counts["prereform"] > 0


def test_clean_text_can_keep_the_old_spelling():
    result = clean_text(DJVU_PAGE, prereform_spelling=False)
    assert result.text == result.text_original and result.counts["prereform"] == 0


# --- real OCR (optional) --------------------------------------------------------------------------

REAL = SHARED / "corpus"


@pytest.mark.skipif(not (REAL / "en_ia_djvu").is_dir(), reason="../shared/corpus (real OCR) is not present")
def test_real_djvu_scans():
    google = (REAL / "en_ia_djvu" / "silentfriendame00cogoog_djvu.txt").read_bytes()
    result = clean_text(decode_bytes(google).text)
    assert "digital copy of a book" not in result.text and "books .google" not in result.text
    assert not re.search(r"(?m)^(\d+ )?THB SILENT FRIEND\.?( \d+)?$", result.text)  # "14 THB SILENT FRIEND."
    assert result.counts["hyphenation"] > 500 and result.counts["running_heads"] > 50

    ia = (REAL / "en_ia_djvu" / "b28114759_djvu.txt").read_bytes()
    result = clean_text(decode_bytes(ia).text)
    assert "Digitized by" not in result.text and "archive.org" not in result.text
    assert "nervous and muscular systems" in result.text  # hyphen across a page with its head


@pytest.mark.skipif(not (REAL / "ru_ocr").is_dir(), reason="../shared/corpus (real OCR) is not present")
def test_real_prereform_docx_ocr():
    data = (REAL / "ru_ocr" / "otzap_vol09_1840.txt").read_bytes()[:300_000]
    result = clean_text(decode_bytes(data.decode("utf-8", "ignore").encode()).text)
    assert clean.is_unwrapped(decode_bytes(data.decode("utf-8", "ignore").encode()).text)
    assert "\n\nСовременная Хроника\n\n" not in result.text and "ѣ" not in result.text
    assert "ѣ" in result.text_original


def test_is_nfc_agrees_with_unicodedata():
    import random
    import unicodedata

    from archive_encoders.corpus.clean import is_nfc

    rng = random.Random(0)
    # letters of the stable blocks, combining marks, Hangul jamo, singletons (U+212B, U+2000)
    alphabet = "aeiouйиеёÅ \u0301\u0306\u0308\u0323\u0338\u1100\u1161\u11a8\u2000\u212b"
    texts = ["Волга", "и\u0306", "й", "a\u0301\u0323", "a\u0323\u0301", "\u0301start", "\u212b"]
    texts += ["".join(rng.choice(alphabet) for _ in range(rng.randint(1, 12))) for _ in range(5000)]
    assert [is_nfc(t) for t in texts] == [unicodedata.is_normalized("NFC", t) for t in texts]


def test_the_nfc_stable_blocks_hold_no_character_that_combines_with_the_one_before():
    """Second halves of canonical compositions (and Hangul vowels and finals) may change a text under
    NFC though each is stable alone: none of them may be in the class `is_nfc` skips."""
    import sys
    import unicodedata

    from archive_encoders.corpus.clean import _NFC_UNSURE

    seconds = {chr(c) for c in (*range(0x1161, 0x1176), *range(0x11A8, 0x11C3))}
    for code in range(sys.maxunicode + 1):
        parts = unicodedata.decomposition(chr(code)).split()
        if len(parts) == 2 and not parts[0].startswith("<"):
            seconds.add(chr(int(parts[1], 16)))
    assert all(_NFC_UNSURE.fullmatch(c) for c in seconds)
