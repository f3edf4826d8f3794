"""Download, verify and lay out the corpora nmt does not bundle: Multi30k task 1 and Tatoeba cmn-eng here,
DailyDialog in fetch_dailydialog.py, IWSLT'14 de-en and WMT'14 en-de/en-fr in corpus_recipes.py."""

from __future__ import annotations

import argparse
import shutil
import sys
import zipfile
import zlib
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import NoReturn, Optional

import corpus_recipes
import fetch_dailydialog
import fetch_files
import recipe_build
from fetch_files import CHUNK, FetchError, check_sha256, copy_local, keep_existing, sha256_of, staged, temp_beside

DEFAULT_OUT = Path(__file__).resolve().parents[1] / "data" / "external"

MULTI30K_DIR = "multi30k-task1"
MULTI30K_URL = "https://raw.githubusercontent.com/multi30k/dataset/master/data/task1/raw/"
MULTI30K_SHA256 = {
    "train.en.gz": "d79cfa999dd4c51d2cb42499b6796d5a882c3a8a961923c25a898c90f8bbd56f",
    "train.de.gz": "726e39b2fa9eb9ffb6dc763fb35a179f80fae06ffc5d28b6ace5faa883de28a6",
    "val.en.gz": "14f7d25ddd868909a9213e361768460edcacdd6ab9d1e77b92560dc10c10dc28",
    "val.de.gz": "f0cba2f995189cf5770f29a8a9a537a3ad3f51657ad873405082ff6863a5e75a",
    "test_2016_flickr.en.gz": "611d361c6334bc7246101d48097c13cf5c4413c5befc793cc629934359d532d9",
    "test_2016_flickr.de.gz": "9204244e408ccb38d2a55cfcd344df15005fc42a07a6e55ca6c52b6ababb8cc8",
    "test_2017_flickr.en.gz": "76a444ee25172e72695cddb13ae4a3bda59430617be88e0bb46b60504f054074",
    "test_2017_flickr.de.gz": "a2c89666db00c495cd8513b9d708d5a3acc205d7de312ef2bf5fb7ebc1540aee",
}
MULTI30K_LICENSE = (
    "non-commercial research and/or educational purposes only (Multi30K README); cite Elliott et al. 2016 (W16-3210)"
)

TATOEBA_DIR = "tatoeba-cmn-eng"
TATOEBA_URL = "https://www.manythings.org/anki/cmn-eng.zip"
TATOEBA_ZIP = "cmn-eng.zip"
TATOEBA_MEMBER = "cmn.txt"
TATOEBA_LICENSE = "CC-BY 2.0 (France); attribution: www.manythings.org/anki and tatoeba.org"

# The data config (src/nmt/configs/data/<name>.yaml) that reads each corpus from paths.corpora_dir.
DATA_CONFIG = {
    "multi30k": "multi30k_de_en",
    "tatoeba_cmn": "tatoeba_eng_cmn",
    "dailydialog": "dailydialog",
    "iwslt14_de_en": "iwslt14_de_en",
    "wmt14_en_de": "wmt14_en_de",
    "wmt14_en_fr": "wmt14_en_fr",
}


# --- multi30k ---------------------------------------------------------------------------------------------------


def fetch_multi30k_file(dest: Path, name: str, local_dir: Optional[Path], force: bool) -> None:
    target, url, expected = dest / name, MULTI30K_URL + name, MULTI30K_SHA256[name]
    if not force and keep_existing(target, lambda p: check_sha256(p, expected, str(p), url)):
        return
    with staged(target) as tmp:
        if local_dir is None:
            fetch_files.download(url, tmp)
        else:
            copy_local(local_dir / name, tmp)
        check_sha256(tmp, expected, url if local_dir is None else str(local_dir / name), url)
    print(f"fetched {target}")


def multi30k_readme() -> str:
    rows = "".join(f"| {name} | {MULTI30K_URL}{name} | `{sha}` |\n" for name, sha in MULTI30K_SHA256.items())
    return (
        "# Multi30k task 1 (EN-DE), raw\n\n"
        f"Fetched by scripts/fetch_corpus.py from {MULTI30K_URL} (each file's sha256 verified).\n\n"
        f"| file | source | sha256 |\n|---|---|---|\n{rows}\n"
        f"License: {MULTI30K_LICENSE}.\n"
    )


def fetch_multi30k(out: Path, local_dir: Optional[Path], force: bool) -> None:
    dest = out / MULTI30K_DIR
    dest.mkdir(parents=True, exist_ok=True)
    for name in MULTI30K_SHA256:
        fetch_multi30k_file(dest, name, local_dir, force)
    (dest / "README.md").write_text(multi30k_readme(), encoding="utf-8")


# --- tatoeba cmn-eng --------------------------------------------------------------------------------------------


def extract_member(zip_path: Path, member: str, dest: Path) -> None:
    try:
        with zipfile.ZipFile(zip_path) as archive, archive.open(member) as src, open(dest, "wb") as f:
            shutil.copyfileobj(src, f, CHUNK)
    except KeyError:
        raise FetchError(f"{zip_path}: has no member {member} — download it again from {TATOEBA_URL}") from None
    except (zipfile.BadZipFile, zlib.error, EOFError) as e:
        raise FetchError(f"{zip_path}: not a valid zip file ({e}) — download it again from {TATOEBA_URL}") from None


def check_pairs(path: Path, label: str) -> int:
    """The number of lines; FetchError naming file:line unless each has >= 2 non-empty tab-separated fields."""
    fix = f"the file is damaged or not a manythings.org export: download it again from {TATOEBA_URL}"
    count = 0
    with open(path, "rb") as f:
        for count, raw in enumerate(f, start=1):
            try:
                line = raw.decode("utf-8").rstrip("\r\n")
            except UnicodeDecodeError:
                raise FetchError(f"{label}:{count}: invalid UTF-8 — {fix}") from None
            fields = line.split("\t")
            if len(fields) < 2 or not fields[0].strip() or not fields[1].strip():
                raise FetchError(
                    f"{label}:{count}: expected at least 2 non-empty tab-separated fields"
                    f" (english<TAB>chinese), got {line[:60]!r} — {fix}"
                )
    if count == 0:
        raise FetchError(f"{label}: empty file — {fix}")
    return count


def tatoeba_from_local(local_dir: Path, dest: Path) -> str:
    """Fill dest from local_dir's cmn.txt or cmn-eng.zip; the label to name the source by in messages."""
    text, archive = local_dir / TATOEBA_MEMBER, local_dir / TATOEBA_ZIP
    if text.is_file():
        copy_local(text, dest)
        return str(text)
    if archive.is_file():
        extract_member(archive, TATOEBA_MEMBER, dest)
        return f"{archive}:{TATOEBA_MEMBER}"
    raise FetchError(
        f"{local_dir}: has neither {TATOEBA_MEMBER} nor {TATOEBA_ZIP} — put one there (from {TATOEBA_URL}),"
        " or drop --from-local to download it"
    )


def tatoeba_from_network(dest: Path) -> str:
    with temp_beside(dest.parent / TATOEBA_ZIP) as archive:
        fetch_files.download(TATOEBA_URL, archive)
        extract_member(archive, TATOEBA_MEMBER, dest)
    return f"{TATOEBA_URL}:{TATOEBA_MEMBER}"


def tatoeba_readme(target: Path, pairs: int) -> str:
    return (
        "# Tatoeba EN-ZH (cmn-eng), manythings.org Anki export\n\n"
        f"Fetched by scripts/fetch_corpus.py from {TATOEBA_URL} (member {TATOEBA_MEMBER}).\n"
        "The content changes between releases, so it is checked for format, not by hash.\n\n"
        f"- {TATOEBA_MEMBER}: {pairs} lines, sha256 `{sha256_of(target)}`\n\n"
        f"License: {TATOEBA_LICENSE}.\n"
    )


def fetch_tatoeba_cmn(out: Path, local_dir: Optional[Path], force: bool) -> None:
    dest = out / TATOEBA_DIR
    dest.mkdir(parents=True, exist_ok=True)
    target = dest / TATOEBA_MEMBER
    if force or not keep_existing(target, lambda p: check_pairs(p, str(p))):
        with staged(target) as tmp:
            label = tatoeba_from_network(tmp) if local_dir is None else tatoeba_from_local(local_dir, tmp)
            check_pairs(tmp, label)
        print(f"fetched {target}")
    pairs = check_pairs(target, str(target))
    (dest / "README.md").write_text(tatoeba_readme(target, pairs), encoding="utf-8")


FETCHERS: dict[str, Callable[[Path, Optional[Path], bool], None]] = {
    "multi30k": fetch_multi30k,
    "tatoeba_cmn": fetch_tatoeba_cmn,
    "dailydialog": fetch_dailydialog.fetch_dailydialog,
    **{recipe.key: partial(recipe_build.fetch, recipe) for recipe in corpus_recipes.RECIPES},
}


# --- command line -----------------------------------------------------------------------------------------------


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        print(f"fetch_corpus: {message} (see --help)", file=sys.stderr)
        sys.exit(1)


def parse_args(argv: Optional[list[str]]) -> argparse.Namespace:
    parser = _Parser(description=__doc__)
    parser.add_argument("corpus", choices=list(FETCHERS), help="which corpus to fetch")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="corpora directory (default: %(default)s)")
    parser.add_argument(
        "--from-local",
        type=Path,
        metavar="DIR",
        help="take the files from this already-downloaded directory instead of the network (same verification)",
    )
    parser.add_argument("--force", action="store_true", help="replace files that are already there and verified")
    return parser.parse_args(argv)


def main(argv: Optional[list[str]] = None) -> int:
    args = parse_args(argv)
    out = args.out.resolve()
    try:
        if args.from_local is not None and not args.from_local.is_dir():
            raise FetchError(f"{args.from_local}: not a directory — --from-local needs the folder holding the files")
        FETCHERS[args.corpus](out, args.from_local, args.force)
    except (FetchError, OSError) as e:
        message = " ".join(str(e).splitlines())
        print(f"fetch_corpus: {message}", file=sys.stderr)
        return 1
    print(f"use: nmt-train data={DATA_CONFIG[args.corpus]} paths.corpora_dir={out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
