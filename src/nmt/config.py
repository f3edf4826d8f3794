"""Structured configs: the schema every Hydra config group is validated against."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any, Optional

from hydra.core.config_store import ConfigStore
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException
from omegaconf import MISSING, OmegaConf


class Choice(str, Enum):
    """A setting with a fixed set of values. OmegaConf checks a value against the members' names when the config
    is composed, so a misspelt one fails before any data is read, naming the valid values; in code a member is
    its value (a str: it compares, hashes and formats as one)."""

    def __str__(self) -> str:
        return self.value

    def __format__(self, spec: str) -> str:
        return format(self.value, spec)

    @classmethod
    def _missing_(cls, value):
        return cls.__members__.get(str(value))  # `precision: 32` reaches OmegaConf as the int 32


def choices(name: str, values: str) -> type[Choice]:
    """A Choice named `name` whose members are the space-separated `values`."""
    return Choice(name, [(value, value) for value in values.split()])


TokenizerType = choices("TokenizerType", "unigram bpe")
DataFormat = choices("DataFormat", "pairs dialogue")
Attention = choices("Attention", "dot general bahdanau")
BatchOrder = choices("BatchOrder", "bucketed sorted random")
Cell = choices("Cell", "rnn gru lstm")
Context = choices("Context", "every_step initial")
Norm = choices("Norm", "pre post")
Positions = choices("Positions", "sinusoidal learned")
Activation = choices("Activation", "relu gelu")
MemoryMode = choices("MemoryMode", "sequence utterance")
Backbone = choices("Backbone", "transformer lstm_attn")
Stop = choices("Stop", "bound full_beam top_eos")
Optimizer = choices("Optimizer", "adam adamw sgd")
Schedule = choices("Schedule", "constant inverse_sqrt linear cosine noam")
TeacherForcingSchedule = choices("TeacherForcingSchedule", "constant linear exponential inverse_sigmoid")
Unit = choices("Unit", "step epoch")
Coin = choices("Coin", "token step")
Feed = choices("Feed", "argmax sample")
Device = choices("Device", "auto cpu cuda")
Precision = choices("Precision", "32 bf16-mixed 16-mixed")
Matmul = choices("Matmul", "auto onednn blas")
DropoutKernel = choices("DropoutKernel", "fast torch")
Bf16Lstm = choices("Bf16Lstm", "auto onednn fp32")
Split = choices("Split", "dev test")


def project_root() -> Path:
    """The repository root for an editable install (where data/ and outputs/ live), else the cwd."""
    if "NMT_ROOT" in os.environ:
        return Path(os.environ["NMT_ROOT"]).resolve()
    root = Path(__file__).resolve().parents[2]
    return root if (root / "pyproject.toml").exists() else Path.cwd().resolve()


@dataclass
class PathsConfig:
    root_dir: str = MISSING
    data_dir: str = MISSING
    corpora_dir: str = MISSING
    cache_dir: str = MISSING
    log_dir: str = MISSING


@dataclass
class TokenizerConfig:
    type: TokenizerType = "unigram"
    vocab_size: int = 8000
    joint: bool = True
    model: Any = None  # an existing SentencePiece model: a path, or [src_path, tgt_path]
    character_coverage: float = 1.0
    byte_fallback: bool = True
    # SentencePiece trains on a seeded sample of this many sentences (per model) of a larger corpus; null: all.
    train_sentences: Optional[int] = 1_000_000
    # Target vocabulary of only the pieces the training targets use (as toolkits with per-side dictionaries build
    # it): a smaller output layer, faster training and decoding; no embedding sharing with the source then.
    trim_target: bool = False


@dataclass
class DataConfig:
    name: str = MISSING
    src_lang: str = MISSING
    tgt_lang: str = MISSING
    format: DataFormat = "pairs"  # pairs | dialogue (one session per line, each turn ending with turn_separator)
    train: Any = MISSING  # pairs: a TSV file, or [src_file, tgt_file]; dialogue: one file; plain or .gz
    dev: Any = None  # None: split dev off train (seeded)
    test: Any = None  # None: split test off train (seeded)
    src_column: int = 0  # TSV columns: swap them to reverse the direction
    tgt_column: int = 1
    split_seed: int = 1
    dev_size: int = 1000
    test_size: int = 1000
    max_train_pairs: Optional[int] = None  # keep a seeded subset of train (quick runs)
    max_len: int = 64  # training pairs longer than this (tokens, either side) are dropped; dialogue turns cut
    # The training batches (each within trainer.max_tokens, padding counted): bucketed (similar lengths together,
    # batches shuffled every epoch) | sorted (by length, shortest first, the same every epoch) | random (pairs
    # shuffled every epoch, no length grouping: much more padding)
    batch_order: BatchOrder = "bucketed"
    turn_separator: str = "__eou__"  # dialogue format: the mark that ends every turn (DailyDialog's)
    lowercase: bool = False
    space_punctuation: bool = False  # "Go now." -> "Go now ." (d2l's Tatoeba preprocessing)
    bleu_tokenize: str = "13a"  # sacreBLEU's tokenizer for BLEU: 13a (its default), zh for Chinese targets, intl, char
    # Sentences, as a user would type them, that the end of training translates with the best checkpoint (pairs only)
    examples: list[str] = field(default_factory=list)
    cache_dir: str = "${paths.cache_dir}"
    tokenizer: TokenizerConfig = field(default_factory=TokenizerConfig)


@dataclass
class LSTMAttnConfig:
    name: str = "lstm_attn"
    embed_dim: int = 256
    hidden_size: int = 256  # decoder size; a bidirectional encoder uses hidden_size // 2 per direction
    encoder_layers: int = 2
    decoder_layers: int = 2
    bidirectional: bool = True
    attention: Attention = "general"  # dot | general | bahdanau
    dropout: float = 0.2
    forget_bias: float = 1.0
    tie_target_embeddings: bool = False


@dataclass
class RNNConfig:
    name: str = "rnn"
    cell: Cell = "gru"  # rnn (Elman, tanh) | gru | lstm
    embed_dim: int = 256
    hidden_size: int = 256  # decoder size; a bidirectional encoder uses hidden_size // 2 per direction
    encoder_layers: int = 1
    decoder_layers: int = 1
    bidirectional: bool = True
    context: Context = "every_step"  # every_step (Cho et al., 2014) | initial (Sutskever et al., 2014)
    dropout: float = 0.2


@dataclass
class TransformerConfig:
    name: str = "transformer"
    d_model: int = 256
    ffn_dim: int = 1024
    heads: int = 4
    encoder_layers: int = 3
    decoder_layers: int = 3
    norm: Norm = "pre"  # pre | post (a final LayerNorm exactly when pre)
    positions: Positions = "sinusoidal"  # sinusoidal | learned
    max_positions: int = 1024  # learned positions only
    activation: Activation = "relu"  # relu | gelu
    dropout: float = 0.1
    attention_dropout: float = 0.0
    share_embeddings: bool = True  # one matrix for source, target and output when the vocabulary is joint


@dataclass
class MemoryConfig:
    enabled: bool = True  # false: no memory at all, exactly the backbone encoder-decoder
    # sequence: gated residual over every encoder position | utterance: HRED, one step a turn
    mode: MemoryMode = "sequence"
    hidden_size: int = 256
    bptt_turns: int = 0  # detach the carried memory every K turns (truncated BPTT); 0: through the whole session


@dataclass
class MemoryLSTMConfig:
    name: str = "memory_lstm"
    backbone: Backbone = "transformer"  # transformer | lstm_attn: the settings below of that name apply
    memory: MemoryConfig = field(default_factory=MemoryConfig)
    transformer: TransformerConfig = field(default_factory=TransformerConfig)
    lstm_attn: LSTMAttnConfig = field(default_factory=LSTMAttnConfig)


@dataclass
class SearchConfig:
    beam_size: int = 1
    length_penalty: float = 1.0  # GNMT alpha; 0 = raw log-probability
    max_len_a: float = 1.5  # output length <= a * source length + b tokens
    max_len_b: int = 10
    repetition_penalty: float = 1.0  # > 1 discourages tokens already emitted (log-probabilities scaled by it)
    no_repeat_ngram_size: int = 0  # > 0 blocks repeating any n-gram of this size
    nbest: int = 1  # hypotheses returned per sentence (beam search; at most beam_size)
    # When beam search is done with a sentence: bound (no unfinished hypothesis can beat the beam_size-th
    # finished), full_beam (beam_size finished, as fairseq) or top_eos (a step's best candidate ends, as OpenNMT-py)
    stop: Stop = "bound"
    batch_size: int = 64  # sentences per decoding batch
    # Batches decoded at the same time on a CPU, each on its share of torch's threads: a decoding step's small
    # products use one core well and two poorly. 0 = one per torch thread, at most 4; 1 = one at a time.
    parallel_batches: int = 0


@dataclass
class KernelsConfig:
    """CPU speed paths (nmt/cpu_kernels.py), swapped into the model from outside; each can be forced."""

    matmul: Matmul = "auto"  # fp32 Linear products: auto (time both on the model's shapes at start-up) | onednn | blas
    dropout: DropoutKernel = "fast"  # fast: a cheaper CPU mask (the same distribution) | torch: nn.Dropout's own
    bf16_lstm: Bf16Lstm = "auto"  # LSTMs under CPU bf16 autocast: auto (try one at start-up) | onednn | fp32


@dataclass
class OptimConfig:
    name: Optimizer = "adam"  # adam | adamw | sgd
    lr: float = 1e-3
    betas: list[float] = field(default_factory=lambda: [0.9, 0.98])
    eps: float = 1e-9
    momentum: float = 0.0
    weight_decay: float = 0.0
    scheduler: Schedule = "inverse_sqrt"  # constant | inverse_sqrt | linear | cosine (each after warm-up) | noam
    warmup_steps: int = 200
    min_lr: float = 0.0
    # Module-name patterns -> an lr multiplier (a number) or "frozen", first match wins; e.g.
    # {"backbone.*": frozen, "memory.*": 2.0}. Unmatched parameters train at optim.lr.
    param_groups: dict[str, Any] = field(default_factory=dict)


@dataclass
class TeacherForcingConfig:
    schedule: TeacherForcingSchedule = "constant"  # constant | linear | exponential | inverse_sigmoid
    ratio: float = 1.0  # constant: the probability of feeding the gold token
    k: float = 1.0  # linear: start value; exponential: base (< 1); inverse_sigmoid: k (>= 1)
    c: float = 0.0  # linear: decrease per unit
    min_ratio: float = 0.0  # linear: floor (eps_min)
    unit: Unit = "step"  # step | epoch: what i counts
    coin: Coin = "token"  # token: one coin per target token (Bengio et al.) | step: one per time step for the batch
    feed: Feed = "argmax"  # argmax | sample: the model's token fed back when the coin says so


@dataclass
class TrainerConfig:
    max_epochs: int = 10
    max_steps: Optional[int] = None  # stop after this many optimizer steps (wins over max_epochs)
    # A time budget: stop after this many minutes of training (its dev evaluations included), whichever of it and
    # the length above comes first; the run still ends with a dev and a test evaluation. Resumed runs continue it.
    max_minutes: Optional[float] = None
    max_tokens: int = 4096  # token budget of one batch, padding included
    max_sentences: Optional[int] = None
    eval_every: Optional[int] = 1000  # steps; None: no evaluation within an epoch
    eval_each_epoch: bool = True  # also evaluate at each epoch end (always after the last step)
    log_every: int = 100
    clip_grad_norm: Optional[float] = 1.0
    label_smoothing: float = 0.1
    early_stopping_patience: Optional[int] = None  # evaluations without a better dev BLEU
    dev_max_sentences: Optional[int] = 500  # dev sentences decoded per evaluation (None: all)
    num_samples: int = 3  # dev translations shown per evaluation
    device: Device = "auto"  # auto | cpu | cuda
    resume: Optional[str] = None  # a run directory or checkpoint, or auto (the newest of this model and data)
    init_from: Optional[str] = None  # start from these model weights (a run directory or checkpoint), fresh optimizer
    keep_checkpoints: int = 0  # keep the weights of the last k evaluations as checkpoints/step-<N>.pt (nmt-average)
    deterministic: bool = False
    progress_bar: bool = True
    accumulate_grad_batches: int = 1  # batches per optimizer step and process (the same effective batch, fewer GPUs)
    precision: Precision = "32"  # 32 | bf16-mixed | 16-mixed: autocast in training (fp16 with a gradient scaler)
    compile: bool = False  # torch.compile the teacher-forced forward (sentence pairs at teacher forcing 1)
    max_nonfinite_steps: int = 5  # steps in a row with a non-finite loss or gradient (skipped) before stopping
    attention_samples: int = 2  # dev sentences whose attention heatmaps go to TensorBoard at each evaluation
    profile: bool = False  # record a torch.profiler trace of a few steps into tb/profile
    profile_steps: int = 5
    # Greedy decoding of dev sentences; batches twice an inference batch (one hypothesis a sentence, not a beam).
    search: SearchConfig = field(default_factory=lambda: SearchConfig(batch_size=128))


@dataclass
class TrainConfig:
    model: Any = MISSING
    data: DataConfig = MISSING
    trainer: TrainerConfig = MISSING
    optim: OptimConfig = MISSING
    teacher_forcing: TeacherForcingConfig = MISSING
    paths: PathsConfig = MISSING
    kernels: KernelsConfig = field(default_factory=KernelsConfig)
    seed: int = 1234


@dataclass
class PreprocessConfig(TrainConfig):
    """nmt-train's config (the same overrides name the same data) plus the preprocessing knobs."""

    workers: Optional[int] = None  # tokenizing processes (None: min(4, CPU count))
    verify: bool = False  # also check the sha256 of every file of an existing binarized corpus


@dataclass
class EvalConfig(SearchConfig):
    ckpt: str = MISSING
    split: Split = "test"  # dev | test: a split of the checkpoint's data config
    src: Optional[str] = None  # or explicit files (then `split` is ignored)
    ref: Optional[str] = None
    out: Optional[str] = None  # directory for hypotheses and scores (default: <run>/eval)
    beam_size: int = 5
    device: Device = "auto"
    paths: PathsConfig = MISSING
    kernels: KernelsConfig = field(default_factory=KernelsConfig)


@dataclass
class TranslateConfig(SearchConfig):
    ckpt: Optional[str] = None  # None: the newest best.pt under paths.log_dir
    beam_size: int = 5
    device: Device = "auto"
    paths: PathsConfig = MISSING
    kernels: KernelsConfig = field(default_factory=KernelsConfig)


@dataclass
class AverageConfig:
    inputs: list[str] = field(default_factory=list)  # the checkpoints to average: files, run dirs (best.pt), exports
    ckpt: Optional[str] = None  # instead of inputs: a run directory (its checkpoints/) or a directory of checkpoints
    last: Optional[int] = None  # with ckpt: its k newest files matching pattern (None: all of them)
    pattern: str = "step-*.pt"  # with ckpt: the files that count (trainer.keep_checkpoints writes step-*.pt)
    out: str = MISSING  # the averaged checkpoint (.pt, weights only)
    force: bool = False  # overwrite an existing out


@dataclass
class ExportConfig:
    ckpt: str = MISSING  # a checkpoint file, a run directory (its checkpoints/best.pt) or an export directory
    out: str = MISSING  # the export directory (new or empty; force=true replaces an earlier export)
    max_shard_mb: float = 1000.0  # each shard file at most this many MB (10^6 bytes)
    force: bool = False


@dataclass
class DataStatsConfig:
    """nmt-data-stats: word frequencies, length-limit losses and a SentencePiece vocabulary sweep of a data config."""

    data: DataConfig = MISSING
    paths: PathsConfig = MISSING
    min_freqs: list[int] = field(default_factory=lambda: [1, 2, 5])  # word types seen at least this often
    max_lens: list[int] = field(default_factory=lambda: [16, 32, 48, 64])  # data.max_len is always added
    vocab_sizes: list[int] = field(default_factory=lambda: [1000, 4000, 8000, 16000])
    out: Optional[str] = None  # also write the tables to this Markdown file


MODEL_SCHEMAS = {
    "rnn": RNNConfig,
    "lstm_attn": LSTMAttnConfig,
    "transformer": TransformerConfig,
    "memory_lstm": MemoryLSTMConfig,
}


# Overrides that say where a run lives or how it shows progress, not what it trains: never in sweep job names.
_NOT_NAMED = ("hydra.", "paths.", "trainer.progress_bar", "trainer.resume")


def swept_keys(argv: list[str]) -> set[str]:
    """The keys that a command line's overrides sweep (`optim.lr=1e-3,5e-4`, `seed=range(3)`)."""
    try:
        parsed = OverridesParser.create().parse_overrides([a for a in argv if "=" in a and not a.startswith("-")])
    except HydraException:
        return set()
    return {o.key_or_group for o in parsed if o.is_sweep_override()}


def sweep_job_name(num: int, overrides: list[str], model: str, data: str, width: int = 120) -> str:
    """A sweep job's directory name: its number and the values it sweeps (`2-optim.lr=5e-4,teacher_forcing.ratio=0.9`)
    so that `ls` tells the runs apart. The swept keys are read off this process's command line; where the job runs
    elsewhere (another launcher), all its overrides name it; `2-<model>-<data>` with none. Path separators become
    '_' and the name is cut to `width` characters (file systems allow 255)."""
    keyed = [(o.lstrip("+~").partition("=")[0], o.lstrip("+~")) for o in overrides]
    keyed = [(key, o) for key, o in keyed if not key.startswith(_NOT_NAMED)]
    swept = swept_keys(sys.argv[1:])
    named = [o for key, o in keyed if key in swept] or [o for _, o in keyed]
    if not named:
        return f"{num}-{model}-{data}"
    return f"{num}-{','.join(named)}".replace(os.sep, "_").replace("/", "_")[:width]


def register_configs() -> None:
    """Store the schemas so that config files can name them in their defaults lists."""
    OmegaConf.register_new_resolver("nmt_root", lambda: str(project_root()), replace=True)
    OmegaConf.register_new_resolver("nmt_sweep_job", sweep_job_name, replace=True)
    cs = ConfigStore.instance()
    cs.store(name="train_schema", node=TrainConfig)
    cs.store(name="preprocess_schema", node=PreprocessConfig)
    cs.store(name="eval_schema", node=EvalConfig)
    cs.store(name="translate_schema", node=TranslateConfig)
    cs.store(name="average_schema", node=AverageConfig)
    cs.store(name="export_schema", node=ExportConfig)
    cs.store(name="data_stats_schema", node=DataStatsConfig)
    cs.store(group="paths", name="paths_schema", node=PathsConfig)
    cs.store(group="data", name="data_schema", node=DataConfig)
    cs.store(group="trainer", name="trainer_schema", node=TrainerConfig)
    cs.store(group="optim", name="optim_schema", node=OptimConfig)
    cs.store(group="teacher_forcing", name="teacher_forcing_schema", node=TeacherForcingConfig)
    for name, schema in MODEL_SCHEMAS.items():
        cs.store(group="model", name=f"{name}_schema", node=schema)


def flatten(tree: dict, prefix: str = "") -> dict[str, object]:
    """Nested dicts (a config as a container) as {"a.b.c": leaf}; lists and empty dicts are leaves."""
    flat = {}
    for key, value in tree.items():
        if isinstance(value, dict) and value:
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def model_config(cfg: Any) -> Any:
    """Re-validate a model config (e.g. one read from a checkpoint) against its schema."""
    name = cfg["name"]
    if name not in MODEL_SCHEMAS:
        raise ValueError(f"unknown model '{name}'; known: {', '.join(MODEL_SCHEMAS)}")
    return OmegaConf.merge(OmegaConf.structured(MODEL_SCHEMAS[name]), cfg)


def _at_least(low):
    return (lambda v: v >= low), f">= {low}"


_POSITIVE = (lambda v: v > 0), "> 0"
_RATE = (lambda v: 0 <= v < 1), "in [0, 1)"
_SEARCH = {"beam_size": _at_least(1), "nbest": _at_least(1), "batch_size": _at_least(1)}
# Numeric settings outside of which a run would fail later with a traceback (or train nonsense), by dotted key of
# any composed config that has them: (test, what the value must be). None (unset) always passes.
RANGES = {
    "optim.lr": _POSITIVE,
    "optim.warmup_steps": _at_least(0),
    "optim.weight_decay": _at_least(0),
    **{f"model.{sub}dropout": _RATE for sub in ("", "transformer.", "lstm_attn.")},
    "data.max_len": _at_least(1),
    "trainer.label_smoothing": _RATE,
    "trainer.max_epochs": _at_least(1),
    "trainer.max_steps": _at_least(1),
    "trainer.max_minutes": _POSITIVE,
    "trainer.max_tokens": _at_least(1),
    "trainer.eval_every": _at_least(0),  # 0 (or null): no evaluation within an epoch
    "trainer.log_every": _at_least(1),
    "trainer.accumulate_grad_batches": _at_least(1),
    **{f"trainer.search.{key}": rule for key, rule in _SEARCH.items()},
    **_SEARCH,  # nmt-eval and nmt-translate
}


def range_errors(cfg) -> list[str]:
    """'key=value: must be ...' for each setting of RANGES that `cfg` holds out of its range."""
    errors = []
    for key, (valid, rule) in RANGES.items():
        value = OmegaConf.select(cfg, key, default=None, throw_on_missing=False)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and not valid(value):
            errors.append(f"{key}={value}: must be {rule}")
    return errors
