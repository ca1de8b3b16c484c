"""The audit's configuration: typed dataclasses, read from TOML and validated once, at the edge.

Relative paths in a config file are resolved against the file's folder. docs/CONFIG.md documents every key.
"""

from __future__ import annotations

import dataclasses
import math
import tomllib
import typing
from dataclasses import dataclass, field
from pathlib import Path

import tomli_w

from .errors import InputError
from .matching.metrics import NL2_BANDS, SSCD_BANDS, Bands
from .vocabulary import BANDS_LOW_FIRST, Direction, Guide


@dataclass
class ModelConfig:
    path: str = ""  # a diffusers pipeline folder, or a UNet2DModel folder
    scheduler: str = ""  # a scheduler folder, when path is a bare UNet folder without one


@dataclass
class DataConfig:
    train: str = ""  # image folder; one subfolder per class gives labels


@dataclass
class LabelsConfig:
    source: str = "classifier"  # classifier | clusters
    classifier: str = ""  # a user's time-independent classifier (safetensors); empty: train one


@dataclass
class ClassifierConfig:
    """Architecture and training of the time-independent classifier f_TI (appendix-C ResNet, no time module)."""

    width: int = 32
    blocks: list[int] = field(default_factory=lambda: [1, 1, 1])
    steps: int = 400
    batch: int = 64
    lr: float = 1e-3
    weight_decay: float = 0.01
    seed: int = 0


@dataclass
class TDKDConfig:
    n_syn: int = 2048  # unconditional samples from the target model (D_syn)
    sample_steps: int = 50  # DDIM steps used to draw D_syn
    sample_batch: int = 64
    steps: int = 1500
    batch: int = 64
    lr: float = 1e-3
    weight_decay: float = 0.01
    soft: bool = False  # soft pseudo labels with KL instead of hard argmax with CE
    time_embed_dim: int = 128
    health_buckets: int = 10
    seed: int = 0


@dataclass
class ClustersConfig:
    """k-means on descriptors of the model's own samples (D_syn); no training images, no human labels."""

    k: int = 100
    cohesion: float = 0.5  # keep clusters whose members' mean cosine to their centre is at least this
    min_size: int = 2  # and that have at least this many members (a one-sample cluster is trivially cohesive)
    relabel_dropped: bool = False  # true: samples of dropped clusters get the nearest kept centre and stay in TDKD
    temperature: float = 0.05  # softmax temperature of the nearest-centre classifier used as f_TI
    seed: int = 0


@dataclass
class ExtractionConfig:
    gammas: list[float] = field(default_factory=lambda: [0.0, 5.0, 10.0, 20.0])
    n_per_gamma: int = 64
    steps: int = 50  # DDIM steps
    eta: float = 0.0
    batch: int = 32
    seed: int = 0
    labels: str = "cycle"  # cycle | uniform
    ol_ti: bool = False  # also run the OL-TI baseline (guidance by f_TI) at every gamma > 0


@dataclass
class MatchingConfig:
    descriptor: str = "pixels"  # pixels | sscd | torchscript
    path: str = ""  # TorchScript file for sscd / torchscript
    resize: int = 288  # short side before a TorchScript descriptor (SSCD: 288)
    k: int = 10  # neighbours stored per generated image
    n_neighbours: int = 0  # nL2's n; 0 = auto: clamp(N_train / 1000, 2, 50), which is 50 on CIFAR-10
    alpha: float = 0.5
    chunk: int = 4096  # rows per block of the exact search; bounds its memory
    index: str = "auto"  # auto | faiss | exact: the search backend (matching/neighbours.py index_backend)


@dataclass
class BandsConfig:
    low: list[float] = field(default_factory=list)
    mid: list[float] = field(default_factory=list)
    high: list[float] = field(default_factory=list)


@dataclass
class RuntimeConfig:
    device: str = "cpu"  # cpu | cuda | cuda:N | auto
    dtype: str = "float32"  # float32 | bfloat16 (bf16 is far slower on CPUs without AVX512-BF16)
    threads: int = 0  # torch CPU threads; 0 = torch's default


def _edge(edge: list[float], default: tuple[float, float]) -> tuple[float, float]:
    """A configured band as [lo, hi] (_check has refused any other length), or the default where none is given."""
    if not edge:
        return default
    lo, hi = edge
    return lo, hi


@dataclass
class AuditConfig:
    name: str = ""
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    labels: LabelsConfig = field(default_factory=LabelsConfig)
    classifier: ClassifierConfig = field(default_factory=ClassifierConfig)
    tdkd: TDKDConfig = field(default_factory=TDKDConfig)
    clusters: ClustersConfig = field(default_factory=ClustersConfig)
    extraction: ExtractionConfig = field(default_factory=ExtractionConfig)
    matching: MatchingConfig = field(default_factory=MatchingConfig)
    bands: BandsConfig = field(default_factory=BandsConfig)
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)

    def band_set(self) -> Bands:
        """The configured bands, or the method's defaults for the descriptor."""
        default = NL2_BANDS if Direction.of_descriptor(self.matching.descriptor) == Direction.DISTANCE else SSCD_BANDS
        b = self.bands
        return Bands(
            low=_edge(b.low, default.low),
            mid=_edge(b.mid, default.mid),
            high=_edge(b.high, default.high),
            direction=default.direction,
        )

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def to_toml(self) -> str:
        return tomli_w.dumps(self.to_dict())


def _coerce(value, hint, where: str, src: Path):
    origin = typing.get_origin(hint)
    if origin is list:
        (item,) = typing.get_args(hint)
        if not isinstance(value, list):
            raise InputError(src, f"{where} must be a list")
        return [_coerce(v, item, f"{where}[{i}]", src) for i, v in enumerate(value)]
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise InputError(src, f"{where} must be a number, not {value!r}")
        return float(value)
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise InputError(src, f"{where} must be a whole number, not {value!r}")
        return value
    if hint is bool:
        if not isinstance(value, bool):
            raise InputError(src, f"{where} must be true or false, not {value!r}")
        return value
    if hint is str:
        if not isinstance(value, str):
            raise InputError(src, f"{where} must be a string, not {value!r}")
        return value
    if dataclasses.is_dataclass(hint):
        if not isinstance(value, dict):
            raise InputError(src, f"[{where}] must be a table")
        return _build(hint, value, where, src)
    raise TypeError(hint)


def _build(cls, data: dict, where: str, src: Path):
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for key, value in data.items():
        if key not in hints:
            known = ", ".join(hints)
            # repr: a key may hold a line break, and an InputError is one line
            raise InputError(src, f"unknown key {key!r} in [{where or 'top level'}] (known: {known})")
        kwargs[key] = _coerce(value, hints[key], f"{where}.{key}" if where else key, src)
    return cls(**kwargs)


PATH_KEYS = (("model", "path"), ("model", "scheduler"), ("data", "train"), ("labels", "classifier"),
             ("matching", "path"))


def _check(cfg: AuditConfig, src: Path) -> None:
    def bad(problem: str):
        raise InputError(src, problem)

    if not cfg.model.path:
        bad("model.path is required")
    if not cfg.data.train:
        bad("data.train is required")
    if cfg.labels.source not in ("classifier", "clusters"):
        bad(f"labels.source must be 'classifier' or 'clusters', not {cfg.labels.source!r}")
    if cfg.matching.descriptor not in ("pixels", "sscd", "torchscript"):
        bad(f"matching.descriptor must be 'pixels', 'sscd' or 'torchscript', not {cfg.matching.descriptor!r}")
    if cfg.matching.index not in ("auto", "faiss", "exact"):
        bad(f"matching.index must be 'auto', 'faiss' or 'exact', not {cfg.matching.index!r}")
    if cfg.matching.descriptor != "pixels" and not cfg.matching.path:
        bad(f"matching.path (the TorchScript file) is required for descriptor '{cfg.matching.descriptor}'")
    if cfg.extraction.labels not in ("cycle", "uniform"):
        bad(f"extraction.labels must be 'cycle' or 'uniform', not {cfg.extraction.labels!r}")
    if not cfg.extraction.gammas or any(g < 0 for g in cfg.extraction.gammas):
        bad("extraction.gammas must be a non-empty list of numbers >= 0")
    if len(set(cfg.extraction.gammas)) != len(cfg.extraction.gammas):
        bad("extraction.gammas has a repeated value")
    for name, value in [
        ("extraction.n_per_gamma", cfg.extraction.n_per_gamma), ("extraction.steps", cfg.extraction.steps),
        ("extraction.batch", cfg.extraction.batch), ("tdkd.n_syn", cfg.tdkd.n_syn),
        ("tdkd.steps", cfg.tdkd.steps), ("tdkd.batch", cfg.tdkd.batch), ("tdkd.sample_steps", cfg.tdkd.sample_steps),
        ("tdkd.sample_batch", cfg.tdkd.sample_batch), ("tdkd.health_buckets", cfg.tdkd.health_buckets),
        ("classifier.width", cfg.classifier.width), ("classifier.batch", cfg.classifier.batch),
        ("clusters.k", cfg.clusters.k), ("matching.k", cfg.matching.k), ("matching.chunk", cfg.matching.chunk),
        ("tdkd.time_embed_dim", cfg.tdkd.time_embed_dim),
    ]:
        if value < 1:
            bad(f"{name} must be at least 1")
    if cfg.classifier.steps < 0:
        bad("classifier.steps must be >= 0")
    if not -1 <= cfg.clusters.cohesion <= 1:
        bad("clusters.cohesion must lie in [-1, 1] (a mean cosine)")
    if cfg.clusters.min_size < 1:
        bad("clusters.min_size must be at least 1")
    if not cfg.clusters.temperature > 0:
        bad("clusters.temperature must be > 0")
    if cfg.tdkd.time_embed_dim % 2:
        bad("tdkd.time_embed_dim must be even")
    if not cfg.classifier.blocks or any(b < 1 for b in cfg.classifier.blocks):
        bad("classifier.blocks must list at least one stage, each with >= 1 block")
    if cfg.matching.n_neighbours < 0:
        bad("matching.n_neighbours must be >= 0 (0 = auto)")
    if not cfg.matching.alpha > 0:
        bad("matching.alpha must be > 0")
    if not 0 <= cfg.extraction.eta <= 1:
        bad("extraction.eta must lie in [0, 1]")
    if cfg.runtime.dtype not in ("float32", "bfloat16"):
        bad("runtime.dtype must be 'float32' or 'bfloat16'")
    if cfg.runtime.device != "auto" and not (cfg.runtime.device == "cpu" or cfg.runtime.device.startswith("cuda")):
        bad("runtime.device must be cpu, cuda, cuda:N or auto")
    for name in BANDS_LOW_FIRST:
        edge = getattr(cfg.bands, name)
        if edge and len(edge) != 2:
            bad(f"bands.{name} must be [lo, hi]")
    for section, key in PATH_KEYS:
        value = getattr(getattr(cfg, section), key)
        if "\x00" in value:
            bad(f"{section}.{key} holds a NUL character: not a path")
        if value.startswith("~"):
            try:
                Path(value).expanduser()
            except RuntimeError:
                bad(f"{section}.{key}: cannot expand {value.split('/')[0]!r} (no such user's home folder)")
    problem = cfg.band_set().validate()
    if problem:
        bad(problem)


def config_from_dict(data: dict, src: str | Path = "<config>", base: Path | None = None) -> AuditConfig:
    """Build and validate a config; relative paths are resolved against base."""
    src = Path(src)
    cfg = _build(AuditConfig, data, "", src)
    _check(cfg, src)
    if base is not None:
        for section, key in PATH_KEYS:
            obj = getattr(cfg, section)
            value = getattr(obj, key)
            if value and not Path(value).expanduser().is_absolute():
                setattr(obj, key, str((base / value).resolve()))
            elif value:
                setattr(obj, key, str(Path(value).expanduser()))
    return cfg


def load_config(path: str | Path) -> AuditConfig:
    path = Path(path)
    if not path.exists():
        raise InputError(path, "config file does not exist")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as e:
        raise InputError(path, f"not valid TOML ({e})") from None
    except UnicodeDecodeError:
        raise InputError(path, "not a text file") from None
    except RecursionError:  # tomllib parses nested arrays and inline tables recursively
        raise InputError(path, "not valid TOML (nested too deeply)") from None
    except OSError as e:  # a folder, or a file this user may not read
        raise InputError(path, f"config file is not readable ({type(e).__name__})") from None
    return config_from_dict(data, path, base=path.resolve().parent)


@dataclass(frozen=True)
class Run:
    """One leg of the extraction sweep."""

    guide: Guide
    gamma: float

    @property
    def part(self) -> str:
        return "random (γ=0)" if self.guide == Guide.NONE else f"{self.guide} γ={self.gamma:g}"


def sweep(cfg: AuditConfig) -> list[Run]:
    """The extraction legs in order: Random at gamma 0, then SIDE (and OL-TI) per gamma. Lives here, not in the
    pipeline, so that the GUI can show an audit's plan without importing torch."""
    runs = []
    for g in sorted(cfg.extraction.gammas):
        if g == 0:
            runs.append(Run(Guide.NONE, 0.0))
        else:
            runs.append(Run(Guide.TD, float(g)))
            if cfg.extraction.ol_ti:
                runs.append(Run(Guide.TI, float(g)))
    return runs
