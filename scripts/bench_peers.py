"""nmt under the peer benchmark's protocol (../shared/peers/README.md), side by side with JoeyNMT, OpenNMT-py, fairseq.

    python scripts/benchmark.py peers                           # 400 updates, transformer and lstm_attn, fp32
    python scripts/benchmark.py peers --steps 3000              # decoding is compared on models trained this long
    python scripts/benchmark.py peers --precision bf16-mixed    # training under bf16 autocast
    python scripts/benchmark.py peers --profile                 # the top operators of 10 training steps
    python scripts/benchmark.py peers --steps 3000 --decode-only --stop top_eos   # decode again, another stop rule
    python scripts/benchmark.py peers --run-peers opennmt-py --run-peers fairseq   # their bench.sh first

The data are the protocol's prepared files (the seeded 20k/500/1000 split of Tatoeba en->fr and its joint
SentencePiece model), made by the peers' common/prepare.sh when DATA has none. nmt trains on them with
`experiment=peer_protocol` (data.train/dev/test = the files, data.tokenizer.model = their spm.model) in a child
process, and the figures use the peers' units:

- train tgt tok/s: the median over 50-update windows (the first dropped) of updates/s x 64 x the mean target
  SentencePiece tokens (+EOS) of a training sentence, from the time stamps of train.log's step lines; nmt's own
  counter (real target tokens/s of each window) beside it. Peak RSS: the training process's (wait4), evaluation
  of the final model included.
- decoding: the 1,000 test sentences, batches of 64, at most 100 output tokens, greedy and beam 5; the model is
  loaded first and each of --reps passes is timed alone. Output tok/s = SentencePiece tokens (+EOS) of the
  detokenized hypotheses re-encoded, per second of generation; BLEU: sacreBLEU (13a) against test.trg.

Results go to OUT/results.json in the peers' schema (LSTM-attention under "rnn"), so the peers' make_table.py reads
it too. Peer rows come from their results.json files (--peer-results, or PEERS_ROOT/runs<steps>/*/results.json
when there); without any, from the figures published in the peers' README (at 400 or 3,000 updates).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import re
import statistics
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import torch

from nmt.decoding.search import STOP_RULES
from nmt.training.device import emulated_bf16

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
PEER_NAMES = {"transformer": "transformer", "lstm_attn": "rnn"}  # nmt model -> the peers' model key

# ../shared/peers/README.md's tables at 400 and at 3,000 updates (2-core CPU of this machine kind, torch 2.13.0,
# fp32): train tok/s, train RSS, greedy and beam-5 output tok/s, greedy and beam-5 BLEU.
PUBLISHED = {
    400: {
        ("joeynmt 2.3.0", "transformer"): (1119, 1942, 312, 180, 7.01, 7.45),
        ("joeynmt 2.3.0", "rnn"): (1756, 1526, 1684, 958, 0.11, 0.37),
        ("opennmt-py 3.5.1", "transformer"): (3454, 1881, 5611, 2083, 6.05, 5.52),
        ("opennmt-py 3.5.1", "rnn"): (3992, 1798, 7808, 2603, 0.1, 0.1),
        ("fairseq 0.12.3.1", "transformer"): (2750, 996, 2958, 1237, 9.97, 12.35),
        ("fairseq 0.12.3.1", "rnn"): (3786, 905, 6953, 1386, 0.17, 0.29),
    },
    3000: {
        ("opennmt-py 3.5.1", "transformer"): (3602, 2431, 4540, 1864, 26.51, 28.53),
        ("opennmt-py 3.5.1", "rnn"): (3836, 1923, 5850, 2810, 3.67, 2.49),
        ("fairseq 0.12.3.1", "transformer"): (3293, 1005, 4374, 1556, 26.64, 30.0),
        ("fairseq 0.12.3.1", "rnn"): (3822, 934, 6290, 2341, 7.83, 8.05),
    },
}

LOG_LINE = re.compile(
    r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+)\]\[nmt\.train\]\[INFO\] - step (\d+)/\d+ \|.* (\d+) tok/s"
)

# One decoding measurement in a fresh process; argv: checkpoint, beam, reps, test source file, hypotheses file,
# threads, beam search's stopping rule, batches decoded at once (search.parallel_batches).
DECODE = r"""
import json, sys, time
import torch
from nmt.config import SearchConfig
from nmt.data import make_normalizer, read_lines
from nmt.decoding import translate_texts
from nmt.decoding.translate import parallel_batches
from nmt.training.checkpoint import load_for_inference

ckpt, beam, reps, src, hyp_file = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5]
torch.set_num_threads(int(sys.argv[6]))
model, tokenizer, run_cfg = load_for_inference(ckpt, torch.device("cpu"))
normalize = make_normalizer(run_cfg["data"])
texts = [normalize(line) for line in read_lines(src)]
cfg = SearchConfig(
    beam_size=beam, max_len_a=0.0, max_len_b=100, batch_size=64, stop=sys.argv[7], parallel_batches=int(sys.argv[8])
)
seconds = []
for _ in range(reps):
    start = time.perf_counter()
    outputs = translate_texts(model, tokenizer, texts, cfg, torch.device("cpu"))
    seconds.append(time.perf_counter() - start)
with open(hyp_file, "w", encoding="utf-8") as f:
    f.writelines(hyps[0][0] + "\n" for hyps in outputs)
at_once = parallel_batches(cfg, torch.device("cpu"), -(-len(texts) // cfg.batch_size))
print(json.dumps({"gen_s_runs": seconds, "parallel_batches": at_once}))
"""


def cpu_ticks() -> tuple[int, int]:
    """(ticks stolen by the hypervisor, all ticks) of the machine so far, from /proc/stat; (0, 0) where unreadable."""
    try:
        fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    except (OSError, ValueError):
        return 0, 0
    return fields[7], sum(fields)


def run_measured(cmd: list[str], log_path: Path, threads: int) -> tuple[float, int, float | None]:
    """Run cmd with its output in log_path; (peak RSS MiB of the process, exit status, % of the CPU's time that
    the hypervisor took meanwhile: on a shared virtual machine that share slows every figure, so it is recorded)."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    stolen, total = cpu_ticks()
    with open(log_path, "w") as log:
        child = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
        _, status, usage = os.wait4(child.pid, 0)
    stolen_after, total_after = cpu_ticks()
    steal = round(100 * (stolen_after - stolen) / (total_after - total), 1) if total_after > total else None
    return usage.ru_maxrss / 1024, os.waitstatus_to_exitcode(status), steal


def window_rates(log_text: str) -> tuple[list[float], list[float]]:
    """(updates/s, nmt's own tok/s) of each logging window after the first, from train.log's step lines."""
    points = [
        (datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S,%f").timestamp(), int(step), float(tok))
        for stamp, step, tok in (m.groups() for m in map(LOG_LINE.match, log_text.splitlines()) if m)
    ]
    ups = [(s1 - s0) / (t1 - t0) for (t0, s0, _), (t1, s1, _) in itertools.pairwise(points)]
    return ups, [tok for _, _, tok in points[1:]]


def prepare(data: Path, peers: Path, corpus: Path) -> dict:
    """The protocol's prepared files in `data` (made by the peers' prepare.sh when missing) -> their stats.json."""
    if not (data / "stats.json").is_file():
        subprocess.run(["bash", str(peers / "common" / "prepare.sh"), str(data), "--tsv", str(corpus)], check=True)
    return json.loads((data / "stats.json").read_text())


def protocol(model: str, args, out: Path) -> list[str]:
    """nmt-train's overrides for the protocol on the prepared files."""
    d = args.data
    return [
        "experiment=peer_protocol",
        f"model={model}",
        *(["model.share_embeddings=false"] if model == "transformer" else []),
        f"data.train=[{d}/train.src,{d}/train.trg]",
        f"data.dev=[{d}/dev.src,{d}/dev.trg]",
        f"data.test=[{d}/test.src,{d}/test.trg]",
        f"data.tokenizer.model={d}/spm.model",
        f"trainer.max_steps={args.steps}",
        f"trainer.precision={args.precision}",
        "trainer.progress_bar=false",
        f"paths.cache_dir={out / 'cache'}",
        *args.overrides,
    ]


def train(model: str, args, stats: dict, out: Path) -> dict:
    """Train nmt under the protocol; the training figures of the peers' schema, and the run's best checkpoint."""
    run = out / model
    overrides = [*protocol(model, args, out), f"hydra.run.dir={run}"]
    if run.exists():
        raise SystemExit(f"{run} exists: give another --out, or remove it")
    rss, code, steal = run_measured(
        [sys.executable, "-m", "nmt.cli.train", *overrides], out / f"{model}.train.out", args.threads
    )
    if code:
        raise SystemExit(f"benchmark: training {model} failed (exit {code}); see {out / f'{model}.train.out'}")
    ups, own = window_rates((run / "train.log").read_text())
    if not ups:
        raise SystemExit(f"{run}/train.log: fewer than two step lines — train for more than 2 x trainer.log_every")
    per_sentence = stats["train.trg.sp_tokens_plus_eos"] / stats["train.trg.sentences"]
    median = statistics.median(ups)
    results = json.loads((run / "results.json").read_text())
    return {
        "params": results["parameters"],
        "train_peak_rss_mb": round(rss),
        "train_steal_pct": steal,
        "train_tok_s_median": round(statistics.median(own)),
        "train_norm": {
            "windows_ups": [round(u, 3) for u in ups],
            "median_ups": round(median, 3),
            "sent_s": round(median * 64, 1),
            "tgt_tok_s": round(median * 64 * per_sentence, 1),
        },
        "checkpoint": str(run / "checkpoints" / "best.pt"),
        "dev": {name: round(results["dev"][name], 2) for name in ("bleu", "chrf", "ppl")},
    }


def decode(model: str, beam: int, args, trained: dict, out: Path) -> dict:
    """Decode the test set with the trained model: the decoding figures of the peers' schema."""
    import sacrebleu
    import sentencepiece as spm

    hyp_file = out / model / f"hyp.b{beam}.txt"
    cmd = [sys.executable, "-c", DECODE, trained["checkpoint"], str(beam), str(args.reps)]
    cmd += [str(args.data / "test.src"), str(hyp_file), str(args.threads), args.stop, str(args.parallel_batches)]
    rss, code, steal = run_measured(cmd, out / f"{model}.b{beam}.out", args.threads)
    if code:
        raise SystemExit(f"benchmark: decoding {model} (beam {beam}) failed; see {out / f'{model}.b{beam}.out'}")
    measured = json.loads((out / f"{model}.b{beam}.out").read_text().splitlines()[-1])
    runs = measured["gen_s_runs"]
    seconds = statistics.median(runs)
    hyps = hyp_file.read_text(encoding="utf-8").splitlines()
    refs = (args.data / "test.trg").read_text(encoding="utf-8").splitlines()
    sp = spm.SentencePieceProcessor(model_file=str(args.data / "spm.model"))
    tokens = sum(len(sp.encode(h, out_type=str)) + 1 for h in hyps)
    return {
        "gen_s_runs": ",".join(f"{s:.2f}" for s in runs),
        "sent_s": round(len(hyps) / seconds, 1),
        "tgt_tok_s": round(tokens / seconds, 1),
        "hyp_tokens": tokens,
        "hyp_words_per_sent": round(sum(len(h.split()) for h in hyps) / len(hyps), 2),
        "peak_rss_mb": round(rss),
        "steal_pct": steal,
        "bleu": round(sacrebleu.corpus_bleu(hyps, [refs]).score, 2),
        "stop": args.stop,
        "parallel_batches": measured["parallel_batches"],
    }


def profile(model: str, args, out: Path, steps: int = 10, rows: int = 15) -> None:
    """The top operators (self CPU time) of `steps` training steps after 30 warm-up steps, in this process."""
    import tempfile

    from hydra import compose, initialize_config_module
    from torch.profiler import profile as torch_profile

    from nmt.config import register_configs
    from nmt.training.monitor import Meter
    from nmt.training.trainer import Trainer

    torch.set_num_threads(args.threads)
    register_configs()
    with initialize_config_module("nmt.configs", version_base="1.3"):
        cfg = compose("train", protocol(model, args, out))
    with tempfile.TemporaryDirectory() as run_dir:
        trainer = Trainer(cfg, run_dir)
        batches, meter = trainer.sampler.batches(0), Meter(trainer.device, trainer.gradient_groups)
        for indices in batches[:30]:
            trainer.train_step([indices], meter)
        with torch_profile() as prof:
            for indices in batches[30 : 30 + steps]:
                trainer.train_step([indices], meter)
    print(f"{model}, {args.precision}: {steps} training steps of 64 sentences")
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=rows))


def figures(x: dict) -> list:
    """[train tok/s, train RSS, greedy tok/s, beam-5 tok/s, greedy BLEU, beam-5 BLEU] of one model's results."""
    b1, b5 = x.get("beam1", {}), x.get("beam5", {})
    return [
        x.get("train_norm", {}).get("tgt_tok_s"),
        x.get("train_peak_rss_mb"),
        b1.get("tgt_tok_s"),
        b5.get("tgt_tok_s"),
        b1.get("bleu"),
        b5.get("bleu"),
    ]


def peer_rows(args) -> list[tuple[str, str, list]]:
    """(toolkit, model, figures) of each peer model."""
    paths = args.peer_results or sorted((args.peers_root / f"runs{args.steps}").glob("*/results.json"))
    rows = []
    for path in paths:
        result = json.loads(Path(path).read_text())
        for model, x in result.items():
            if model == "env":
                continue
            rows.append((result["env"]["toolkit"], model, figures(x)))
    if not rows:  # the published figures at these updates, else at 3,000
        published = PUBLISHED.get(args.steps, PUBLISHED[3000])
        steps = args.steps if args.steps in PUBLISHED else 3000
        rows = [(f"{tk} (published, {steps} updates)", m, list(v)) for (tk, m), v in published.items()]
    return rows


def table(ours: dict, label: str, peers: list) -> None:
    """The side-by-side table: every row, then nmt's ratios to the fastest (smallest RSS) peer of each column."""
    print(
        "| toolkit | model | train tgt tok/s | train peak RSS MiB | greedy output tok/s | beam-5 output tok/s"
        " | greedy / beam-5 BLEU |"
    )
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: |")
    fmt = lambda v, spec: "—" if v is None else format(v, spec)  # noqa: E731
    for toolkit, model, f in peers + [(label, m, v) for m, v in ours.items()]:
        cells = [fmt(f[0], ".0f"), fmt(f[1], ".0f"), fmt(f[2], ".0f"), fmt(f[3], ".0f")]
        print(f"| {toolkit} | {model} | {' | '.join(cells)} | {fmt(f[4], '.1f')} / {fmt(f[5], '.1f')} |")
    print()
    print("| nmt model | train tok/s vs fastest peer | RSS vs smallest peer | greedy vs fastest | beam-5 vs fastest |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for model, f in ours.items():
        others = [p for _, m, p in peers if m == model]
        cells = []
        for i in range(4):
            values = [p[i] for p in others if p[i] is not None]
            best = (min if i == 1 else max)(values) if values and f[i] is not None else None
            cells.append("—" if best is None else f"{f[i] / best:.2f}x")
        print(f"| {model} | {' | '.join(cells)} |")


def dev_scores(results: dict) -> None:
    """Print each model's dev figures at its best checkpoint: what a precision or a change is judged on."""
    scored = {model: x["dev"] for model, x in results.items() if model != "env" and "dev" in x}
    if scored:
        print("\nDev set (greedy BLEU and chrF, teacher-forced ppl; one seed's BLEU moves by ~1 from seed to seed):")
    for model, dev in scored.items():
        print(f"- {model}: BLEU {dev['bleu']:.2f} | chrF {dev['chrf']:.2f} | ppl {dev['ppl']:.2f}")


def conditions(results: dict, peers: list, threads: int) -> None:
    """Print what the figures depend on besides the toolkits: the CPU, and how much time the hypervisor took."""
    cpu, bf16 = results["env"]["cpu"], results["env"].get("bf16", "?")
    print(f"\nCPU: {cpu} (bf16 products: {bf16}), {threads} threads; the hypervisor's share of the time (steal):")
    for model, x in results.items():
        if model == "env":
            continue
        runs = [("training", x.get("train_steal_pct"))]
        runs += [(f"beam {b}", x.get(f"beam{b}", {}).get("steal_pct")) for b in (1, 5)]
        print(f"- {model}: " + ", ".join(f"{name} {'?' if v is None else v}%" for name, v in runs))
    if any("(published" in toolkit for toolkit, _, _ in peers):
        print(
            "The peer rows are the figures published in ../shared/peers/README.md, measured on another machine of this"
            " kind (its CPU not recorded): on another CPU the ratios compare machines as much as toolkits"
            " (--run-peers measures the peers here)."
        )


def cpu_name() -> str:
    """The CPU's model name from Linux's /proc/cpuinfo, else what platform knows."""
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                key, _, value = line.partition(":")
                if key.strip() == "model name":
                    return value.strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="benchmark.py peers", description=__doc__.splitlines()[0])
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    parser.add_argument("--steps", type=int, default=400, help="training updates (decoding compares at 3000)")
    parser.add_argument("--models", nargs="+", default=list(PEER_NAMES), choices=list(PEER_NAMES))
    parser.add_argument("--precision", default="32", choices=["32", "bf16-mixed"])
    parser.add_argument("--reps", type=int, default=3, help="timed decoding passes (the median is reported)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--stop", default="bound", choices=STOP_RULES, help="beam search's stopping rule (search.stop)")
    parser.add_argument(
        "--parallel-batches", type=int, default=0, help="batches decoded at once (search.parallel_batches; 0 = auto)"
    )
    parser.add_argument("--peers-root", type=Path, default=Path(os.environ.get("PEERS_ROOT", cache / "nmt-peers")))
    parser.add_argument("--peers-dir", type=Path, default=SHARED / "peers", help="the peers' scripts")
    parser.add_argument("--corpus", type=Path, default=SHARED / "data" / "tatoeba-fra-eng" / "fra.txt.gz")
    parser.add_argument("--data", type=Path, help="prepared files (default PEERS_ROOT/data/tatoeba)")
    parser.add_argument("--out", type=Path, help="nmt's runs and results.json (default ~/.cache/nmt-bench/...)")
    parser.add_argument("--peer-results", action="append", type=Path, help="a peer's results.json (repeatable)")
    parser.add_argument("--run-peers", action="append", metavar="TOOLKIT", help="run this peer's bench.sh first")
    parser.add_argument("--decode-only", action="store_true", help="decode again with the models trained in OUT")
    parser.add_argument("--profile", action="store_true", help="print the top operators of training steps instead")
    parser.add_argument("overrides", nargs="*", help="extra nmt-train overrides")
    args = parser.parse_args(argv)
    args.data = (args.data or args.peers_root / "data" / "tatoeba").resolve()
    precision = "fp32" if args.precision == "32" else args.precision
    args.out = (args.out or cache / "nmt-bench" / f"steps{args.steps}-{precision}").resolve()
    args.out.mkdir(parents=True, exist_ok=True)
    stats = prepare(args.data, args.peers_dir, args.corpus)
    if args.profile:
        for model in args.models:
            profile(model, args, args.out)
        return
    for toolkit in args.run_peers or []:
        env = {
            **os.environ,
            "STEPS": str(args.steps),
            "REPS": str(args.reps),
            "DATA_DIR": str(args.data),
            "PEERS_ROOT": str(args.peers_root),
            "OUT": str(args.peers_root / f"runs{args.steps}" / toolkit),
        }
        subprocess.run(
            ["bash", str(args.peers_dir / toolkit / "bench.sh"), "--tsv", str(args.corpus)], env=env, check=True
        )
    previous = json.loads((args.out / "results.json").read_text()) if args.decode_only else {}
    cpu = cpu_name()
    bf16 = "emulated" if emulated_bf16(torch.device("cpu")) else "native"
    env = {"toolkit": f"nmt ({precision})", "steps": args.steps, "threads": args.threads, "cpu": cpu, "bf16": bf16}
    results = {**previous, "env": env}
    for model in args.models:
        trained = previous[PEER_NAMES[model]] if args.decode_only else train(model, args, stats, args.out)
        trained["beam1"] = decode(model, 1, args, trained, args.out)
        trained["beam5"] = decode(model, 5, args, trained, args.out)
        results[PEER_NAMES[model]] = trained
        (args.out / "results.json").write_text(json.dumps(results, indent=1, sort_keys=True))
        print(f"{model}: {json.dumps(trained)}", flush=True)
    ours = {model: figures(x) for model, x in results.items() if model != "env"}
    print(f"\n{args.steps} updates; nmt results: {args.out / 'results.json'}\n")
    peers = peer_rows(args)
    table(ours, results["env"]["toolkit"], peers)
    dev_scores(results)
    conditions(results, peers, args.threads)
