"""Comparing training runs: find run directories, read their configs, results and scalars, write a table and plots."""

from __future__ import annotations

import csv
import json
import os
import re
import statistics
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from google.protobuf.message import DecodeError
from omegaconf import OmegaConf
from tensorboard.compat.proto import event_pb2

from nmt.config import flatten
from nmt.errors import UserError

CONFIG = Path(".hydra") / "config.yaml"
EXPECTED = "give a run directory (holding .hydra/config.yaml) or a directory of runs such as multirun/<date>/<time>"

# Where a run was written or resumed from, and display-only switches, say nothing about what was trained.
IGNORED_PREFIXES = ("paths.", "hydra.")
IGNORED_KEYS = {"trainer.resume", "trainer.progress_bar", "data.cache_dir"}
DATA_KEYS = ("data.name", "data.train", "data.dev", "data.test")

TAGS = ("dev/bleu", "dev/chrf", "dev/loss", "train/loss", "train/nll", "train/tokens_per_sec")
# An events file is a TFRecord file: per record an 8-byte length and a 4-byte checksum of it, the record, and a
# 4-byte checksum of the record.
RECORD_HEADER, RECORD_FOOTER = 12, 4

SCORES = ("dev_bleu", "dev_chrf", "best_dev_bleu", "best_step", "test_bleu", "test_chrf")
METRICS = (*SCORES, "steps", "train_seconds", "train_tok_per_s", "parameters")  # the table's columns after the settings
TABLE_NOTE = (
    "dev_bleu, dev_chrf: the last dev evaluation; best_dev_bleu: the highest dev/bleu, at best_step; test_*: the best "
    "checkpoint on test (results.json); train_seconds: training time (runs from before results.json held it: the "
    "span of their train/loss events); train_tok_per_s: median of train/tokens_per_sec."
)

# (tags drawn, x axis) of each plot; a second tag is drawn dashed.
PLOTS = {
    "dev_bleu_vs_step.png": (("dev/bleu",), "step"),
    "dev_bleu_vs_time.png": (("dev/bleu",), "time"),
    "loss_vs_step.png": (("train/nll", "dev/loss"), "step"),
    "loss_vs_time.png": (("train/nll", "dev/loss"), "time"),
}
TITLES = {("dev/bleu",): "dev BLEU", ("train/nll", "dev/loss"): "loss: NLL per token (train solid, dev dashed)"}
# Runs from before train/nll was logged: their label-smoothed train/loss stands in.
FALLBACK = {"train/nll": "train/loss"}
MAX_LABEL = 60  # characters of a legend entry


@dataclass(frozen=True)
class Point:
    """One scalar event: optimizer step, seconds since the run's first event, value."""

    step: int
    seconds: float
    value: float


@dataclass
class Run:
    """What one run directory holds: its flattened config, results.json and the scalar curves of TensorBoard."""

    path: Path
    name: str  # unique within the study: the path below the runs' common directory
    settings: dict[str, object]  # dotted key -> value, interpolations left as written
    results: dict | None
    curves: dict[str, list[Point]] = field(default_factory=dict)  # tag -> points by step
    problems: list[str] = field(default_factory=list)

    @property
    def status(self) -> str:
        return f"incomplete: {', '.join(self.problems)}" if self.problems else "ok"


@dataclass
class Study:
    """The table (one dict per run, keyed by `columns`) and the lines to warn of."""

    runs: list[Run]
    setting_keys: list[str]
    columns: list[str]
    extra_tags: list[str]  # scalars asked for beside TAGS: a column and a plot each
    rows: list[dict[str, object]]
    warnings: list[str]


def _natural(path: Path) -> list:
    # Hydra numbers sweep jobs 0, 1, ..., 10: sort them as numbers, not as text.
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", str(path))]


def find_runs(path: Path) -> list[Path]:
    """`path` itself if it is a run directory, else every run directory below it at any depth."""
    if not path.is_dir():
        raise UserError(f"{path}: {'not a directory' if path.exists() else 'no such directory'} — {EXPECTED}")
    if (path / CONFIG).is_file():
        return [path]
    runs = sorted((config.parent.parent for config in path.rglob(str(CONFIG))), key=_natural)
    if not runs:
        raise UserError(f"{path}: no runs in it (no .hydra/config.yaml at any depth) — {EXPECTED}")
    return runs


def _records(path: Path) -> Iterator[bytes]:
    """The records of a TFRecord file, checksums unchecked; a record cut short (a killed run) ends the file.

    tensorboard's own readers (EventAccumulator) check every checksum in pure Python when TensorFlow is not installed,
    which took 90% of their time: 0.25 s for a 5-minute run's 0.8 MB of attention images and histograms, against
    1.3 ms here; a study of 50 long runs would take minutes."""
    data = path.read_bytes()
    pos = 0
    while pos + RECORD_HEADER <= len(data):
        (length,) = struct.unpack_from("<Q", data, pos)
        end = pos + RECORD_HEADER + length
        if end + RECORD_FOOTER > len(data):
            return
        yield data[pos + RECORD_HEADER : end]
        pos = end + RECORD_FOOTER


def _events(tb_dir: Path) -> Iterator[event_pb2.Event]:
    """The events of every events file in a TensorBoard directory, in order (a resumed run writes one per session;
    the names start with the creation time); a damaged record ends its file, what came before it still counts."""
    for path in sorted(tb_dir.glob("events.out.tfevents.*")):
        for record in _records(path):
            try:
                yield event_pb2.Event.FromString(record)
            except DecodeError:
                break


def read_curves(tb_dir: Path, tags=TAGS) -> dict[str, list[Point]]:
    """The scalars of `tags` in a TensorBoard directory; {} if it has none. Seconds count from the first event, so
    a resumed run's pause is included."""
    curves: dict[str, list[Point]] = {}
    start = None
    for event in _events(tb_dir):
        start = event.wall_time if start is None else start
        for value in event.summary.value:
            if value.tag in tags and value.HasField("simple_value"):
                points = curves.setdefault(value.tag, [])
                # A resumed run logs again from its last checkpoint: the later session's points replace those.
                while points and points[-1].step >= event.step:
                    points.pop()
                points.append(Point(event.step, event.wall_time - start, value.simple_value))
    return curves


def last_image(tb_dir: Path, tag: str) -> bytes | None:
    """The encoded image (PNG) of the last image event of `tag` in a TensorBoard directory, if any."""
    image = None
    for event in _events(tb_dir):
        for value in event.summary.value:
            if value.tag == tag and value.HasField("image"):
                image = value.image.encoded_image_string
    return image


def load_run(path: Path, name: str, tags=TAGS) -> Run:
    """Read one run directory and its scalars of `tags`; what is missing or unreadable goes to Run.problems instead
    of raising."""
    problems = []
    try:
        settings = flatten(OmegaConf.to_container(OmegaConf.load(path / CONFIG), resolve=False))
    except Exception as e:  # a damaged config leaves the run's scores still worth showing
        settings, problems = {}, [f"unreadable .hydra/config.yaml ({type(e).__name__})"]
    results = None
    if not (path / "results.json").is_file():
        problems.append("no results.json")
    else:
        try:
            results = json.loads((path / "results.json").read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError):
            problems.append("unreadable results.json")
    curves = read_curves(path / "tb", tags)
    if not curves:
        problems.append("no TensorBoard scalars")
    return Run(path, name, settings, results, curves, problems)


def differing_keys(runs: list[Run]) -> list[str]:
    """The settings whose values differ between the runs that have them, in config order. A key that only some
    runs have (another model's settings) is shown only where those runs differ in it: model.name already says
    that the models differ, and their other settings would fill the table with columns of dashes."""
    configured = [run.settings for run in runs if run.settings]
    keys = list(dict.fromkeys(key for settings in configured for key in settings))
    return [
        key
        for key in keys
        if not key.startswith(IGNORED_PREFIXES)
        and key not in IGNORED_KEYS
        and key != "data.name"  # the table's data column, always shown
        and len({show(s[key]) for s in configured if key in s}) > 1
    ]


def show(value: object) -> str:
    """A setting as it would be written in a Hydra override."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (list, dict)):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


def metrics(run: Run) -> dict[str, object]:
    """The METRICS of one run; None where the run has no source for one."""
    results = run.results or {}
    curves = run.curves
    dev_bleu, dev_chrf = curves.get("dev/bleu", []), curves.get("dev/chrf", [])
    train_loss = curves.get("train/loss", [])
    best = max(dev_bleu, key=lambda p: p.value, default=None)  # the first maximum: the step best.pt was saved at
    best_dev = results.get("dev", {})
    test = results.get("test", {})
    train_seconds = results.get("train_seconds")
    if train_seconds is None and len(train_loss) > 1:
        # Runs from before results.json recorded it: the span of the logged training windows (a little short).
        train_seconds = train_loss[-1].seconds - train_loss[0].seconds
    speeds = [p.value for p in curves.get("train/tokens_per_sec", [])]
    return {
        "dev_bleu": dev_bleu[-1].value if dev_bleu else None,
        "dev_chrf": dev_chrf[-1].value if dev_chrf else None,
        "best_dev_bleu": best.value if best else best_dev.get("bleu"),
        "best_step": best.step if best else results.get("best_step"),
        "test_bleu": test.get("bleu"),
        "test_chrf": test.get("chrf"),
        "steps": results.get("steps", train_loss[-1].step if train_loss else None),
        "train_seconds": train_seconds,
        "train_tok_per_s": statistics.median(speeds) if speeds else None,
        "parameters": results.get("parameters"),
    }


def data_warning(runs: list[Run]) -> str | None:
    """A warning naming the data settings that differ between runs, or None when all trained on the same data."""
    differing = []
    for key in DATA_KEYS:
        values = list(dict.fromkeys(show(run.settings.get(key)) for run in runs if run.settings))
        if len(values) > 1:
            differing.append(f"{key}: {', '.join(values)}")
        if differing and key == "data.name":
            break  # other data sets: their files differ as a matter of course
    if not differing:
        return None
    return f"the runs are on different data ({'; '.join(differing)}): their scores do not compare"


def summary(tag: str, points: list[Point]) -> float | None:
    """An extra tag's column: the median of a train/* scalar (noisy from window to window), else the last value."""
    if not points:
        return None
    return statistics.median(p.value for p in points) if tag.startswith("train/") else points[-1].value


def collect(paths: list[Path], extra_tags: list[str] | tuple = ()) -> Study:
    """Find and read every run under `paths` (each a run directory or a directory of runs) and build the table,
    with a column for each of `extra_tags` (TensorBoard scalar tags) after the METRICS."""
    found = list(dict.fromkeys(run.resolve() for path in paths for run in find_runs(path)))
    root = found[0].parent if len(found) == 1 else Path(os.path.commonpath(found))
    extra = [tag for tag in dict.fromkeys(extra_tags) if tag not in TAGS]
    runs = [load_run(path, str(path.relative_to(root)), (*TAGS, *extra)) for path in found]
    keys = differing_keys(runs)
    columns = ["run", "status", "data", *keys, *METRICS, *extra]
    rows = [
        {
            "run": run.name,
            "status": run.status,
            "data": show(run.settings.get("data.name", "")),
            **{key: show(run.settings[key]) if key in run.settings else None for key in keys},
            **metrics(run),
            **{tag: summary(tag, run.curves.get(tag, [])) for tag in extra},
        }
        for run in runs
    ]
    warnings = [f"no run has the scalar {tag}" for tag in extra if not any(tag in run.curves for run in runs)]
    warning = data_warning(runs)
    return Study(runs, keys, columns, extra, rows, [*warnings, warning] if warning else warnings)


def _cell(column: str, value: object) -> str:
    if value is None:
        return "-"
    if column == "parameters":
        return f"{value:,}"
    if isinstance(value, float) and "/" in column:  # an extra tag: shares and seconds alike
        return f"{value:.4g}"
    if isinstance(value, float):
        return f"{value:.0f}" if column in ("train_seconds", "train_tok_per_s") else f"{value:.2f}"
    return str(value).replace("|", "\\|")


def markdown(study: Study, title: str | None = None) -> str:
    """The table as Markdown, metrics right-aligned, with a heading when `title` is given and a note on the columns."""
    lines = [f"# {title}", ""] if title else []
    lines.append("| " + " | ".join(study.columns) + " |")
    numeric = {*METRICS, *study.extra_tags}
    lines.append("| " + " | ".join("---:" if c in numeric else "---" for c in study.columns) + " |")
    lines += ["| " + " | ".join(_cell(c, row[c]) for c in study.columns) + " |" for row in study.rows]
    return "\n".join([*lines, "", TABLE_NOTE]) + "\n"


def write_csv(study: Study, path: Path) -> None:
    """The table as CSV: numbers unformatted (floats to 4 decimals), an empty cell where a run has no value."""
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=study.columns)
        writer.writeheader()
        for row in study.rows:
            writer.writerow(
                {c: "" if v is None else round(v, 4) if isinstance(v, float) else v for c, v in row.items()}
            )


def legend_labels(study: Study) -> list[str]:
    """Each run named by the settings that differ (and its data where that differs); its name where none differ or
    two runs share the same settings."""
    keys = (["data"] if len({row["data"] for row in study.rows}) > 1 else []) + study.setting_keys
    # A key by its last part (model.cell -> cell) where no other shown key ends the same: legends stay short.
    ends = [key.rsplit(".", 1)[-1] for key in keys]
    short = {key: end if ends.count(end) == 1 else key for key, end in zip(keys, ends, strict=True)}
    labels = [", ".join(f"{short[k]}={row[k]}" for k in keys if row[k] is not None) or row["run"] for row in study.rows]
    labels = [
        f"{label} ({Path(row['run']).name})" if labels.count(label) > 1 else label
        for label, row in zip(labels, study.rows, strict=True)
    ]
    return [label if len(label) <= MAX_LABEL else label[: MAX_LABEL - 1] + "…" for label in labels]


def plot(study: Study, out: Path, title: str | None = None) -> list[Path]:
    """The PLOTS as PNG files in `out`, one colour per run, dev curves dashed where train curves share the axes."""
    from matplotlib import colormaps
    from matplotlib.figure import Figure  # rendered by Agg on save: no display, no pyplot state

    runs, labels = study.runs, legend_labels(study)
    if len(runs) <= 20:
        palette = colormaps["tab10" if len(runs) <= 10 else "tab20"]
        colors = [palette(i) for i in range(len(runs))]
    else:  # more runs than distinct colours: a gradient, in the table's order
        colors = [colormaps["viridis"](i / (len(runs) - 1)) for i in range(len(runs))]
    written = []
    extra = {f"{tag.replace('/', '_')}_vs_step.png": ((tag,), "step") for tag in study.extra_tags}
    for filename, (tags, axis) in {**PLOTS, **extra}.items():
        fig = Figure(figsize=(7, 4.5), dpi=100)
        ax = fig.subplots()
        for run, label, color in zip(runs, labels, colors, strict=True):
            for tag, style in zip(tags, ("-", "--"), strict=False):
                points = run.curves.get(tag) or run.curves.get(FALLBACK.get(tag, ""))
                if not points:
                    continue
                xs = [p.step if axis == "step" else p.seconds / 60 for p in points]
                marker = "." if tag.startswith("dev/") else None  # a single evaluation still shows
                ax.plot(xs, [p.value for p in points], style, marker=marker, color=color, label=label)
                label = None  # one legend entry per run
        what = TITLES.get(tags, tags[0])
        ax.set_ylabel(what.split(" (")[0])
        ax.set_xlabel("step" if axis == "step" else "minutes since the run started")
        ax.set_title(f"{title}: {what}" if title else what)
        ax.grid(alpha=0.3)
        fig.tight_layout()  # before the legend: one beside the axes widens the image instead of narrowing the axes
        if ax.get_legend_handles_labels()[0] and len(runs) <= 10:
            ax.legend(fontsize="small")
        elif ax.get_legend_handles_labels()[0]:  # inside the axes, this many entries would hide the curves
            ax.legend(fontsize="xx-small", ncol=1 if len(runs) <= 25 else 2, loc="upper left", bbox_to_anchor=(1.01, 1))
        fig.savefig(out / filename, bbox_inches="tight")
        written.append(out / filename)
    return written


def write_images(study: Study, out: Path, tag: str) -> list[Path]:
    """Each run's last image of `tag` (such as attention/0, a dev sentence's attention heatmap) as
    <tag>-<run>.png in `out`."""
    written = []
    for run in study.runs:
        image = last_image(run.path / "tb", tag)
        if image is not None:
            written.append(out / f"{tag}-{run.name}.png".replace("/", "_"))
            written[-1].write_bytes(image)
    return written


def write_study(
    study: Study, out: Path, title: str | None = None, image_tags: list[str] | tuple = ()
) -> tuple[list[Path], str]:
    """table.md, table.csv, the plots and the runs' last images of `image_tags` in `out` (created); returns the
    files written and the Markdown."""
    out.mkdir(parents=True, exist_ok=True)
    text = markdown(study, title)
    (out / "table.md").write_text(text, encoding="utf-8")
    write_csv(study, out / "table.csv")
    images = [path for tag in image_tags for path in write_images(study, out, tag)]
    return [out / "table.md", out / "table.csv", *plot(study, out, title), *images], text
