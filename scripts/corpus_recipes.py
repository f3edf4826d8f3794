"""IWSLT'14 de-en and WMT'14 en-de/en-fr for fetch_corpus.py: which archives, members and split rules make each
corpus (recipe_build.py reads the archives and writes the line-aligned .gz files).

    python scripts/fetch_corpus.py iwslt14_de_en                       # downloads de-en.tgz (WIT3, else a mirror)
    python scripts/fetch_corpus.py wmt14_en_de --from-local ~/wmt14    # the statmt.org archives, fetched by hand
    python scripts/fetch_corpus.py wmt14_en_fr --out /data/corpora --force

A recipe reads its archives either from --from-local DIR (by their published file names) or by downloading them into
<out>/<dir>/downloads/ (kept there until the corpus is complete, so an interrupted run does not fetch them again).
It streams the members it needs out of them, one archive at a time, and writes <out>/<dir>/{train,valid,test}.<lang>.gz:
line-aligned raw text (no tokenization, no lowercasing: nmt trains SentencePiece on raw text), with a README.md beside
them that records where every line came from, the split rules and the license. No checksum is published for these
archives, so they are checked by structure: every member there, the two sides of each part line-aligned (<seg> ids
matching), no split empty; the README records the sha256 of each archive read. Outputs are written to temporary files
and renamed into place only when the whole corpus is done; a corpus already there that verifies is kept (--force to
rebuild it).

Training pairs are cleaned only of what nmt cannot read or learn from: a pair with an empty side, invalid UTF-8 or a
line over 100,000 bytes is dropped (and counted in the README). Dev and test sets are kept whole, in order.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

SPLITS = ("train", "valid", "test")


@dataclass(frozen=True)
class Archive:
    """A published archive: its addresses, tried in order; --from-local looks for it by their file names."""

    urls: tuple[str, ...]

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(url.rsplit("/", 1)[-1] for url in self.urls))


@dataclass(frozen=True)
class Part:
    """Two line-aligned members of an archive, source language first, found by file name in whatever folder.

    kind: "lines" (one sentence per line; a .gz member is decompressed), "tags" (IWSLT train.tags: one sentence per
    line between talk metadata lines) or "seg" (the <seg id=...>text</seg> lines of an IWSLT .xml or WMT .sgm file).
    """

    archive: Archive
    src: str
    tgt: str
    kind: str = "lines"


@dataclass(frozen=True)
class Recipe:
    key: str  # the fetch_corpus.py command-line name
    directory: str  # under --out
    src: str
    tgt: str
    title: str
    train: tuple[Part, ...]
    valid: tuple[Part, ...]  # empty: valid is every valid_every-th training pair (after cleaning) instead
    test: tuple[Part, ...]
    rules: str  # README: how the splits are made, and how that differs from fairseq's recipe
    license: str
    valid_every: int = 0

    def parts(self, split: str) -> tuple[Part, ...]:
        return getattr(self, split)

    def archives(self) -> list[Archive]:
        """Each archive once, in the order the recipe first reads it (train parts first, in concatenation order)."""
        return list(dict.fromkeys(part.archive for split in SPLITS for part in self.parts(split)))

    def outputs(self, dest: Path) -> dict[str, tuple[Path, Path]]:
        return {split: (dest / f"{split}.{self.src}.gz", dest / f"{split}.{self.tgt}.gz") for split in SPLITS}


# --- the corpora ------------------------------------------------------------------------------------------------

IWSLT14_ARCHIVE = Archive(
    (
        "https://wit3.fbk.eu/archive/2014-01/texts/de/en/de-en.tgz",
        "http://dl.fbaipublicfiles.com/fairseq/data/iwslt14/de-en.tgz",  # fairseq's mirror of the same archive
    )
)
IWSLT14_TEST_SETS = ("TED.dev2010", "TEDX.dev2012", "TED.tst2010", "TED.tst2011", "TED.tst2012")
IWSLT14_VALID_EVERY = 23
IWSLT14_LICENSE = (
    "TED talks, CC BY-NC-ND 4.0 (attribution, non-commercial, no derivatives; ted.com's terms), which is why nmt"
    " does not bundle it; cite Cettolo, Girardi and Federico 2012, WIT3: Web Inventory of Transcribed and Translated"
    " Talks (EAMT 2012)"
)
IWSLT14_RULES = """\
- train and valid: `train.tags.de-en.{de,en}`, the TED talk transcripts and their translations, one sentence per
  line. The talk metadata lines (`<url>`, `<keywords>`, `<speaker>`, `<talkid>`, `<reviewer>`, `<translator>`,
  `<doc>`) are left out; `<title>` and `<description>` lines are kept without their tags, as fairseq's
  `prepare-iwslt14.sh` keeps them (any other line, even one starting with `<`, is a sentence). Pairs with an empty
  side (or invalid UTF-8, or a line over 100,000 bytes) are dropped. Of the pairs left, every 23rd (the 23rd, 46th,
  ...) goes to valid and the others to train: fairseq's rule (`awk 'NR%23 == 0'`).
- test: the `<seg>` text of `IWSLT14.TED.dev2010`, `IWSLT14.TEDX.dev2012`, `IWSLT14.TED.tst2010`, `tst2011` and
  `tst2012` (`.de-en.{de,en}.xml`), concatenated in that order: fairseq's test set. Any other test set in the
  archive (such as a tst2013) is not used.
- Unlike fairseq's setup, the text is raw: fairseq Moses-tokenizes and lowercases everything, drops training pairs
  over 175 tokens or with a length ratio above 1.5 (`clean-corpus-n.perl`) before taking every 23rd pair, and
  replaces U+2019 (right single quote) by `'` in the test sets. None of that is done here (nmt trains SentencePiece
  on raw text and scores detokenized output against raw references), so train/valid hold close to, not exactly,
  fairseq's pairs, and scores are not comparable with tokenized, lowercased BLEU.
- `<seg>` text is taken verbatim (stripped, no XML-entity decoding), as fairseq and sacrebleu take it.
"""

WMT14_LICENSE = (
    "various, for research use: Europarl, News Commentary, Common Crawl, the UN corpus and the 10^9 French-English"
    " (Giga) corpus each under the terms statmt.org publishes with it (https://www.statmt.org/wmt14/"
    "translation-task.html); cite Bojar et al. 2014, Findings of the 2014 Workshop on Statistical Machine"
    " Translation (WMT 2014)"
)
STATMT = "http://statmt.org/"  # fairseq's prepare-wmt14en2{de,fr}.sh addresses
WMT14_DEV = Archive((STATMT + "wmt14/dev.tgz",))
WMT14_TEST = Archive((STATMT + "wmt14/test-full.tgz",))
COMMONCRAWL = Archive((STATMT + "wmt13/training-parallel-commoncrawl.tgz",))
NEWS_COMMENTARY_V9 = Archive((STATMT + "wmt14/training-parallel-nc-v9.tgz",))
UN = Archive((STATMT + "wmt13/training-parallel-un.tgz",))
GIGA_FREN = Archive((STATMT + "wmt10/training-giga-fren.tar",))


def europarl(pair: str) -> Archive:
    """WMT13's Europarl v7 bundle (all pairs), else Europarl's own archive of this pair (same member names)."""
    return Archive(
        (STATMT + "wmt13/training-parallel-europarl-v7.tgz", f"http://www.statmt.org/europarl/v7/{pair}.tgz")
    )


def wmt14_rules(other: str, corpora: str, fairseq: str, fairseq_valid: str) -> str:
    pair = f"{other}en"
    return f"""\
- train: the concatenation, in this order, of {corpora}: the WMT'14 training data as {fairseq} lists it. Pairs
  with an empty side, invalid UTF-8 or a line over 100,000 bytes are dropped.
- valid: newstest2013 (`dev/newstest2013.{{en,{other}}}` of dev.tgz), whole.
- test: newstest2014, full version (the `<seg>` text of `test-full/newstest2014-{pair}-src.en.sgm` and
  `newstest2014-{pair}-ref.{other}.sgm`, verbatim: what sacrebleu calls wmt14/full), whole.
- Unlike fairseq's setup, the text is raw: fairseq normalizes punctuation, removes non-printing characters,
  Moses-tokenizes (`-a`), takes every {fairseq_valid} training line as valid instead of newstest2013, and after BPE
  drops pairs over 250 tokens or with a length ratio above 1.5. None of that is done here (nmt trains SentencePiece
  on raw text and scores detokenized output against raw references).
"""


def wmt14_parts(other: str, corpora: tuple[tuple[Archive, str, str], ...]) -> dict[str, tuple[Part, ...]]:
    """Train from (archive, member stem, suffix) triples, plus newstest2013 and newstest2014 (full), English-<other>."""
    pair = f"{other}en"
    return {
        "train": tuple(Part(archive, f"{stem}.en{ext}", f"{stem}.{other}{ext}") for archive, stem, ext in corpora),
        "valid": (Part(WMT14_DEV, "newstest2013.en", f"newstest2013.{other}"),),
        "test": (Part(WMT14_TEST, f"newstest2014-{pair}-src.en.sgm", f"newstest2014-{pair}-ref.{other}.sgm", "seg"),),
    }


RECIPES = (
    Recipe(
        key="iwslt14_de_en",
        directory="iwslt14-de-en",
        src="de",
        tgt="en",
        title="IWSLT'14 German-English (TED talks), fairseq's train/valid/test split, raw text",
        train=(Part(IWSLT14_ARCHIVE, "train.tags.de-en.de", "train.tags.de-en.en", "tags"),),
        valid=(),
        test=tuple(
            Part(IWSLT14_ARCHIVE, f"IWSLT14.{name}.de-en.de.xml", f"IWSLT14.{name}.de-en.en.xml", "seg")
            for name in IWSLT14_TEST_SETS
        ),
        rules=IWSLT14_RULES,
        license=IWSLT14_LICENSE,
        valid_every=IWSLT14_VALID_EVERY,
    ),
    Recipe(
        key="wmt14_en_de",
        directory="wmt14-en-de",
        src="en",
        tgt="de",
        title="WMT'14 English-German: WMT'14 training data, newstest2013 (valid), newstest2014 full (test), raw text",
        **wmt14_parts(
            "de",
            (
                (europarl("de-en"), "europarl-v7.de-en", ""),
                (COMMONCRAWL, "commoncrawl.de-en", ""),
                (NEWS_COMMENTARY_V9, "news-commentary-v9.de-en", ""),
            ),
        ),
        rules=wmt14_rules(
            "de",
            "Europarl v7, Common Crawl and News Commentary v9",
            "fairseq's `prepare-wmt14en2de.sh --icml17` (without --icml17 it takes WMT'17's News Commentary v12)",
            "100th",
        ),
        license=WMT14_LICENSE,
    ),
    Recipe(
        key="wmt14_en_fr",
        directory="wmt14-en-fr",
        src="en",
        tgt="fr",
        title="WMT'14 English-French: WMT'14 training data, newstest2013 (valid), newstest2014 full (test), raw text",
        **wmt14_parts(
            "fr",
            (
                (europarl("fr-en"), "europarl-v7.fr-en", ""),
                (COMMONCRAWL, "commoncrawl.fr-en", ""),
                (UN, "undoc.2000.fr-en", ""),
                (NEWS_COMMENTARY_V9, "news-commentary-v9.fr-en", ""),
                (GIGA_FREN, "giga-fren.release2.fixed", ".gz"),  # gzipped members in a plain tar
            ),
        ),
        rules=wmt14_rules(
            "fr",
            "Europarl v7, Common Crawl, UN (undoc.2000), News Commentary v9 and Giga-FrEn (10^9 French-English)",
            "fairseq's `prepare-wmt14en2fr.sh`",
            "1,333rd",
        ),
        license=WMT14_LICENSE,
    ),
)
