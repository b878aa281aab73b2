"""Every setting's one home: fields, defaults, allowed values and checks, free of torch.

Each settings class is the constructor of what it configures, as diffusers' ``@register_to_config``
makes a model's constructor its config: the dataclass's defaults are the default run's values
(``config.yaml``), its ``__post_init__`` refuses what cannot work, and the CLI's options take their
defaults and choices from it. ``configs/schema.yaml`` states the same defaults and choices for
Snakemake; ``tests/test_settings.py`` checks that the three agree, key by key, through each
field's ``config`` metadata (the config key it is read from).

Importing this module costs no torch, so the workflow checks a config before any job.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field


# --- allowed values -----------------------------------------------------------------------------

# Every ball that can be drawn. Append only: a ball's index here keys its images' seeds (gradcheck.data).
BALLS: tuple[str, ...] = ("basketball", "soccer", "tennis", "baseball", "volleyball")
CLASSES: tuple[str, ...] = BALLS[:4]  # the default class set, label i = CLASSES[i]
SCALE_RANGE: tuple[float, float] = (0.40, 0.75)  # ball diameter as a fraction of the image side
DATA_SOURCES = ("sportballs", "digits", "folder")

LR_SCHEDULES = ("constant", "cosine")
LOSS_WEIGHTINGS = ("uniform", "min_snr")
PRECISIONS = ("auto", "float32", "bfloat16")  # training autocast; auto: bfloat16 where the device has it natively
UNET_DTYPES = ("auto", "float32", "bfloat16", "float16")  # sampling precision of the UNet; auto: as PRECISIONS
ARCHITECTURES = ("mobilenet_v3_small", "shufflenet_v2_x0_5", "resnet18")  # torchvision's
CLASSIFIER_MODES = ("noisy", "clean")  # noisy: trained on x_t (robust); clean: on clean images
ROLES = ("robust", "nonrobust", "judge", "features")  # what a classifier is used as
GUIDES = ("robust", "nonrobust")
OBJECTIVES = ("log_prob", "logit")
FEATURE_SOURCES = ("inception", "features")  # FID's features: Inception-v3, or the feature network's
# none | adam (eq. 4, the paper's betas 0.9, 0.999) | adam<beta1>_<beta2> | ema<beta>: a cell's name says its betas
STABILISER_PATTERN = r"none|adam|adam0(?:\.[0-9]+)?_0(?:\.[0-9]+)?|ema0\.[0-9]+"
PAPER_BETAS = (0.9, 0.999)  # ADAM "with default parameters" (torch.optim.Adam's)
# The readings of three papers, by name (docs/stabilisers.md). nrCG omits the EMA's bias correction, which
# eq. 2's normalisation cancels anyway; Belardi et al.'s betas are theirs for class-conditional CIFAR-10
# with Adam-DPS (a 150-trial search), an example of their form, not a value tuned for SportBalls.
STABILISER_PRESETS = {
    "paper": "adam",                # Schneider et al. 2024: ADAM with default parameters
    "nrcg-ema0.9": "ema0.9",        # Vaeth et al. 2025 (nrCG): EMA of the gradient
    "nrcg-ema0.99": "ema0.99",
    "belardi-cifar10": "adam0_0.817",  # Belardi et al. 2026: Adam on the raw gradient, beta1 0, beta2 0.817
}

# The guided step (gradcheck.guidance): where the classifier looks, where the step lands, how long it is.
LOOKS = ("x_t", "x0_hat", "x0_detached")  # x_t; x0-hat with the gradient through the UNet; x0-hat detached
LANDS = ("mean", "x0")  # the mean of x_{t-1} (eq. 1), or x0-hat before the posterior step (MPGD)
STEP_RULES = ("eq2", "fixed", "dps")  # s sigma^2 g normalised to ||eps|| (eq. 2); s sigma^2 g; s g / |loss| (DPS)
# Step rules whose s is in other units than grid.scale's: a methods preset with one lists its own scales
OWN_SCALE_STEP_RULES = ("dps",)

# The paper's headline cell, Table 1's best (the non-robust guide on x0-hat with ADAM), and its accuracy there
HEADLINE = ("nonrobust", True, "adam")  # (classifier, x0-hat, stabiliser)
PAPER_HEADLINE_ACCURACY = 0.8594

SEED_STRIDE = 1_000_000  # sample i of sampling seed s uses generator seed s * SEED_STRIDE + i
REPLICATE_STRIDE = 1000  # replicate r trains and samples with every seed + REPLICATE_STRIDE * r


def config_key(key: str, **kwargs):
    """A dataclass field read from config key ``key`` (dotted), with the other ``field`` arguments."""
    return field(metadata={"config": key}, **kwargs)


def adam_name(beta1: float, beta2: float) -> str:
    """The stabiliser's name for ADAM with these betas: 'adam' for the paper's, else 'adam<beta1>_<beta2>'."""
    return "adam" if (beta1, beta2) == PAPER_BETAS else f"adam{beta1:g}_{beta2:g}"


def parse_stabiliser(name: str) -> tuple[str, tuple[float, ...]]:
    """'none' | 'adam' | 'adam<beta1>_<beta2>' (e.g. 'adam0_0.8') | 'ema<beta>' (e.g. 'ema0.99') -> (kind,
    its decays): ('none', ()), ('adam', (beta1, beta2)), ('ema', (beta,)). Betas lie in [0, 1) (an EMA's in
    (0, 1)), and each setting has one name: 'adam0.9_0.999' is 'adam', and '0.0' is written '0'."""
    if name == "none":
        return "none", ()
    if name == "adam":
        return "adam", PAPER_BETAS
    try:
        if name.startswith("adam"):
            beta1, beta2 = (float(b) for b in name[4:].split("_"))
            if 0 <= beta1 < 1 and 0 <= beta2 < 1:
                if name != adam_name(beta1, beta2):
                    raise ValueError(f"stabiliser {name!r} is written {adam_name(beta1, beta2)!r}")
                return "adam", (beta1, beta2)
        elif name.startswith("ema"):
            beta = float(name[3:])
            if 0 < beta < 1:
                return "ema", (beta,)
    except ValueError as exc:
        if "is written" in str(exc):
            raise
    raise ValueError(f"unknown stabiliser {name!r}; choose none, adam (the paper's betas), adam<beta1>_<beta2> with "
                     f"betas in [0, 1) (e.g. adam0_0.8), or ema<beta> with 0 < beta < 1 (e.g. ema0.9)")


def linear_beta_range(num_train_timesteps: int, scale_betas: bool) -> tuple[float, float]:
    """(beta_start, beta_end) of GradCheck's linear schedule: the DDPM paper's 1e-4 -> 0.02, times
    1000 / T with ``scale_betas``. :func:`gradcheck.ddpm.build_scheduler` builds its scheduler from it."""
    scale = 1000 / num_train_timesteps if scale_betas else 1.0
    if 0.02 * scale >= 1:
        raise ValueError(f"scale_betas needs T above 20: at T = {num_train_timesteps} the last beta would be "
                         f"{0.02 * scale:g} (a beta of 1 or more destroys the image in one step)")
    return 1e-4 * scale, 0.02 * scale


def _choose(name: str, value, allowed) -> None:
    if value not in allowed:
        raise ValueError(f"unknown {name} {value!r}; choose one of {', '.join(map(str, allowed))}")


def _positive(obj, *names: str) -> None:
    for name in names:
        if getattr(obj, name) <= 0:
            raise ValueError(f"{name} must be positive, got {getattr(obj, name)}")


# --- settings classes -------------------------------------------------------------------------


@dataclass(frozen=True)
class DataSettings:
    """The data set: SportBalls drawn here, or the digits or an image folder read in."""
    size: int = config_key("data.image_size", default=32)  # the paper: 64
    train_per_class: int = config_key("data.train_per_class", default=2000)
    val_per_class: int = config_key("data.val_per_class", default=250)
    seed: int = config_key("data.seed", default=0)
    classes: tuple[str, ...] = config_key("data.classes", default=CLASSES)  # the authors: baseball basketball volleyball soccer
    scale_range: tuple[float, float] = config_key("data.scale_range", default=SCALE_RANGE)  # the authors: about 0.15 0.40
    val_fraction: float = config_key("data.val_fraction", default=0.1)  # digits and folders: held-out share per class

    def __post_init__(self):
        _positive(self, "size", "train_per_class", "val_per_class")
        if not 0 < self.val_fraction < 1:
            raise ValueError(f"val_fraction must be between 0 and 1, got {self.val_fraction}")


@dataclass(frozen=True)
class UNetConfig:
    """diffusers' UNet2DModel, by level: 1.7M parameters by default (the paper's: 22.4M)."""
    block_out_channels: tuple[int, ...] = config_key("ddpm.block_out_channels", default=(32, 64, 96))
    layers_per_block: int = config_key("ddpm.layers_per_block", default=1)  # the paper: 2
    # One flag per resolution level, shallowest first; the paper puts attention in the three deepest.
    attention: tuple[bool, ...] = config_key("ddpm.attention", default=(False, False, False))
    # GroupNorm groups (diffusers' default 32). With 32 channels in 32 groups every channel is
    # normalised alone (instance norm), so the output layer cannot carry a per-image colour offset.
    norm_num_groups: int = config_key("ddpm.norm_num_groups", default=8)
    # Self-attention in the middle block, at the deepest level (diffusers' default: on). Without it
    # an x0-hat sampling step takes about 0.9x the time (benchmarks/sampling_speed.py), FID no worse.
    mid_attention: bool = config_key("ddpm.mid_attention", default=False)

    def __post_init__(self):
        _positive(self, "layers_per_block", "norm_num_groups")
        if len(self.attention) != len(self.block_out_channels):
            raise ValueError(
                f"attention has {len(self.attention)} flags but block_out_channels has "
                f"{len(self.block_out_channels)} levels; give one flag per level"
            )
        odd = [c for c in self.block_out_channels if c % self.norm_num_groups]
        if odd:
            raise ValueError(f"block_out_channels {list(self.block_out_channels)} has levels of {odd} channels, "
                             f"not divisible into norm_num_groups = {self.norm_num_groups} groups")

    def check_image_size(self, size: int, name: str = "the image size") -> None:
        """Each level but the last halves the image: the side must survive every halving."""
        levels = len(self.block_out_channels)
        if size % 2 ** (levels - 1):
            raise ValueError(f"block_out_channels has {levels} levels, which halve the image {levels - 1} times, "
                             f"but {name} ({size}) is not divisible by {2 ** (levels - 1)}")


@dataclass(frozen=True)
class DDPMTrainConfig:
    """The DDPM's noise schedule and training: the default fits about 11 minutes on 2 CPU cores."""
    unet: UNetConfig = field(default_factory=UNetConfig)
    num_train_timesteps: int = config_key("ddpm.timesteps", default=400)  # T, as the authors' released model
    # betas 1e-4 -> 0.02 times 1000 / T: any T spans T = 1000's noise levels
    scale_betas: bool = config_key("ddpm.scale_betas", default=True)
    steps: int = config_key("ddpm.steps", default=4600)
    batch_size: int = config_key("ddpm.batch_size", default=32)
    lr: float = config_key("ddpm.lr", default=1e-3)
    warmup_steps: int = config_key("ddpm.warmup_steps", default=100)  # linear warm-up (the authors: 500)
    lr_schedule: str = config_key("ddpm.lr_schedule", default="cosine")  # then decay to 0 (the authors)
    grad_clip: float | None = config_key("ddpm.grad_clip", default=1.0)  # max gradient norm (the authors: 1.0)
    loss_weighting: str = config_key("ddpm.loss_weighting", default="uniform")  # or min_snr: min(SNR, gamma) / SNR
    min_snr_gamma: float = config_key("ddpm.min_snr_gamma", default=5.0)
    # autocast of the UNet's forward: a step in 0.7x the time of float32 on a CPU with avx512_bf16, 16x
    # float32's without bfloat16 kernels (AVX2 only); auto picks (gradcheck.speed.resolve_precision)
    precision: str = config_key("ddpm.precision", default="auto")
    ema_decay: float = config_key("ddpm.ema_decay", default=0.995)  # 0: sample with the trained weights
    checkpoint_every: int = config_key("ddpm.checkpoint_every", default=100)
    # keep the EMA weights every this many steps (0: none), for quality over training
    snapshot_every: int = config_key("ddpm.snapshot_every", default=2300)
    seed: int = config_key("ddpm.seed", default=0)
    # single-threaded processes that split each batch and sum their gradients: they use a second core
    # without the collapse of a two-threaded job beside other work (gradcheck/data_parallel.py)
    processes: int = config_key("ddpm.processes", default=1)

    def __post_init__(self):
        _positive(self, "num_train_timesteps", "steps", "batch_size", "checkpoint_every", "processes")
        if self.batch_size % self.processes:
            raise ValueError(f"batch_size ({self.batch_size}) must divide among the {self.processes} processes")
        for name in ("warmup_steps", "snapshot_every"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be 0 or positive, got {getattr(self, name)}")
        _choose("lr_schedule", self.lr_schedule, LR_SCHEDULES)
        _choose("loss_weighting", self.loss_weighting, LOSS_WEIGHTINGS)
        _choose("precision", self.precision, PRECISIONS)
        if self.grad_clip is not None and not self.grad_clip > 0:
            raise ValueError(f"grad_clip must be positive or None, got {self.grad_clip}")
        if not 0 <= self.ema_decay < 1:
            raise ValueError(f"ema_decay must be in [0, 1), got {self.ema_decay}")
        if self.scale_betas:
            linear_beta_range(self.num_train_timesteps, True)


@dataclass(frozen=True)
class ClassifierTrainConfig:
    """One training loop for every classifier; the guides are the paper's MobileNetV3-small."""
    mode: str = "clean"  # "noisy" trains the robust classifier
    epochs: int = config_key("classifiers.epochs", default=12)
    batch_size: int = config_key("classifiers.batch_size", default=128)
    lr: float = config_key("classifiers.lr", default=2e-3)
    patience: int = config_key("classifiers.patience", default=3)  # early stopping, in epochs
    seed: int = 0
    architecture: str = "mobilenet_v3_small"

    def __post_init__(self):
        _choose("classifier mode", self.mode, CLASSIFIER_MODES)
        _choose("classifier architecture", self.architecture, ARCHITECTURES)
        _positive(self, "epochs", "batch_size", "patience")


@dataclass(frozen=True)
class GuidedStep:
    """One guided sampling step, the settings that tell the training-free guidance methods apart.

    ``look``: what the classifier sees (x_t; x0-hat through the UNet, so the gradient takes a UNet
    backward; x0-hat detached, MPGD's, which needs none). ``land``: what the step moves: the mean of
    x_{t-1}, or x0-hat before the posterior step (the mean then moves by the posterior's x0
    coefficient times the shift). ``step_rule``: the step's length. ``recurrence``: K passes of the
    step, re-noising x_{t-1} back to x_t between them (FreeDoM's and Universal Guidance's time travel).
    ``inner_steps``: gradient steps on x0 per pass, which share one step's length (Universal
    Guidance's backward guidance; MPGD takes one).
    """
    look: str = "x_t"
    land: str = "mean"
    step_rule: str = "eq2"
    recurrence: int = 1
    inner_steps: int = 1

    def __post_init__(self):
        _choose("look", self.look, LOOKS)
        _choose("land", self.land, LANDS)
        _choose("step_rule", self.step_rule, STEP_RULES)
        for name in ("recurrence", "inner_steps"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a whole number, 1 or more, got {value!r}")
        if self.land == "x0" and self.look == "x_t":
            raise ValueError("a step that lands on x0-hat must look at x0-hat (look x0_hat or x0_detached)")
        if self.inner_steps > 1 and self.land != "x0":
            raise ValueError("inner_steps above 1 optimise x0-hat: they need land x0")
        if self.step_rule == "dps" and self.land != "mean":
            raise ValueError("DPS's step (s g / |loss|) lands on x_{t-1}: it needs land mean")


# Named methods: the step each makes (the paper's follows GuidanceSettings.x0_hat and .normalise).
# Every one runs with the stabilisers (ADAM, EMA) on top, as the paper's do.
METHODS = {
    "paper": None,  # eq. 1-3: look x_t or x0-hat (x0_hat), land on the mean, eq. 2 unless normalise is off
    "mpgd": dict(look="x0_detached", land="x0"),  # He et al. 2024: no UNet backward
    "dps": dict(look="x0_hat", step_rule="dps"),  # Chung et al. 2023 with a classifier loss
    "freedom": dict(look="x0_hat", recurrence=2),  # Yu et al. 2023: time travel, K = 2
    "backward": dict(look="x0_detached", land="x0", inner_steps=4),  # Bansal et al. 2024's backward guidance
}


# The judge's and the FID feature network's architectures: each another family than the guides'.
JUDGE_ARCHITECTURE = "shufflenet_v2_x0_5"
FEATURES_ARCHITECTURE = "resnet18"


@dataclass(frozen=True)
class GuidanceSettings:
    """How a sampling step turns the classifier into a shift of the mean: the paper's reading.

    Where the paper states a setting the default is as it states it (eq. 1's log-probability,
    eq. 2's normalisation, ADAM with default parameters); where it is silent, as the authors' code
    (x0-hat clipped as diffusers' ``pred_original_sample``). docs/method.md gives the reasons.
    """
    scale: float = 0.0         # s; 0 samples unguided
    target: int = 0            # y, a class index
    x0_hat: bool = False       # classify x0_hat (eq. 3) instead of x_t
    stabiliser: str = "none"   # none | adam (eq. 4) | adam<beta1>_<beta2> | ema<beta>, on the raw gradient
    adam_eps: float = config_key("guidance.adam_eps", default=1e-8)  # the authors' code: 1e-4
    # ADAM's m_hat, v_hat and the EMA's 1 / (1 - beta^k); authors' code: off
    bias_correction: bool = config_key("guidance.bias_correction", default=True)
    # log_prob: log p(y | x_in) (eq. 1); logit: the raw target logit (authors' code)
    objective: str = config_key("guidance.objective", default="log_prob")
    # classify clip(x0_hat, -1, 1), diffusers' pred_original_sample (the authors' code, on diffusers)
    clip_x0: bool = config_key("guidance.clip_x0", default=True)
    normalise: bool = config_key("guidance.normalise", default=True)  # eq. 2; the authors' follow-up code: off
    method: str = "paper"      # a name of METHODS: the guided step
    recurrence: int | None = None   # K, instead of the method's
    inner_steps: int | None = None  # steps on x0 per pass, instead of the method's

    def __post_init__(self):
        parse_stabiliser(self.stabiliser)
        _choose("objective", self.objective, OBJECTIVES)
        _choose("method", self.method, METHODS)
        if not self.adam_eps > 0:
            raise ValueError(f"adam_eps must be positive, got {self.adam_eps}")
        if isinstance(self.scale, bool) or not isinstance(self.scale, (int, float)):
            raise ValueError(f"scale must be a number, got {self.scale!r}")
        if self.method != "paper" and not self.x0_hat:
            raise ValueError(f"method {self.method!r} classifies x0-hat: x0_hat must be true")
        self.step  # refuses a recurrence, inner step count or combination the step cannot take

    @property
    def step(self) -> GuidedStep:
        """The guided step this method makes, with its recurrence and inner steps as overridden."""
        if self.method == "paper":
            spec = dict(look="x0_hat" if self.x0_hat else "x_t", step_rule="eq2" if self.normalise else "fixed")
        else:
            spec = dict(METHODS[self.method])
            if not self.normalise and spec.get("step_rule", "eq2") == "eq2":
                spec["step_rule"] = "fixed"
        for name in ("recurrence", "inner_steps"):
            if getattr(self, name) is not None:
                spec[name] = getattr(self, name)
        return GuidedStep(**spec)

    @property
    def adam(self) -> bool:
        return parse_stabiliser(self.stabiliser)[0] == "adam"


@dataclass(frozen=True)
class SamplingSettings:
    """A grid cell's samples: how many, from which seeds, in what precision."""
    num_samples: int = config_key("sampling.num_samples", default=32)  # per seed (the paper: 64, one seed)
    batch_size: int = config_key("sampling.batch_size", default=96)  # float32 samples do not depend on it
    seeds: tuple[int, ...] = config_key("sampling.seeds", default=(0,))
    steps: int | None = config_key("sampling.steps", default=None)  # None ('all'): every one of the T
    judge_every: int = config_key("sampling.judge_every", default=10)  # the judge watches every 10th step
    unet_dtype: str = config_key("guidance.unet_dtype", default="auto")  # the classifier gradient stays float32

    def __post_init__(self):
        _positive(self, "num_samples", "batch_size", "judge_every")
        if self.steps is not None and self.steps <= 0:
            raise ValueError(f"steps must be positive or None (every step), got {self.steps}")
        _choose("unet_dtype", self.unet_dtype, UNET_DTYPES)


@dataclass(frozen=True)
class MetricsSettings:
    """The intervals and the instrument check."""
    n_boot: int = config_key("metrics.n_boot", default=1000)  # bootstrap replicates per interval
    confidence: float = config_key("metrics.confidence", default=0.95)
    # clean validation accuracy below which a classifier is unfit and the verdicts resting on it are marked
    fit_accuracy: float = config_key("metrics.fit_accuracy", default=0.9)

    def __post_init__(self):
        _positive(self, "n_boot")
        if not 0 < self.confidence < 1:
            raise ValueError(f"confidence must be between 0 and 1 (e.g. 0.95), got {self.confidence}")


@dataclass(frozen=True)
class MethodsStudySettings:
    """The methods study's defaults (configs/methods.yaml; gradcheck.plan builds its cells from the config)."""
    classifier: str = config_key("methods.classifier", default="nonrobust")  # the guide of every preset
    stabilisers: tuple[str, ...] = config_key("methods.stabilisers", default=("none", "adam"))
    steps: int | None = config_key("methods.steps", default=200)  # respaced, so that twice the steps fit T = 400
    num_samples: int = config_key("methods.num_samples", default=32)
    seeds: tuple[int, ...] = config_key("methods.seeds", default=(0,))


SETTINGS_CLASSES = (DataSettings, UNetConfig, DDPMTrainConfig, ClassifierTrainConfig, GuidanceSettings,
                    SamplingSettings, MetricsSettings, MethodsStudySettings)


def default(cls, name: str):
    """The default of field ``name`` of settings class ``cls`` (lists for tuples, as a CLI or YAML has them)."""
    spec = {f.name: f for f in dataclasses.fields(cls)}[name]
    value = spec.default if spec.default is not dataclasses.MISSING else spec.default_factory()
    return list(value) if isinstance(value, tuple) else value


# The library's defaults for every interval: the settings', written once (metrics.n_boot, metrics.confidence)
N_BOOT, CONFIDENCE = default(MetricsSettings, "n_boot"), default(MetricsSettings, "confidence")
# ... and for the judge's watch (sampling.judge_every): the Python API watches as the workflow does
JUDGE_EVERY = default(SamplingSettings, "judge_every")


def unet_config(cfg: dict) -> UNetConfig:
    """The config's UNet, refused with the ddpm.* key named (its messages start with the field)."""
    ddpm = cfg["ddpm"]
    try:
        unet = UNetConfig(tuple(ddpm["block_out_channels"]), ddpm["layers_per_block"], tuple(ddpm["attention"]),
                          ddpm["norm_num_groups"], ddpm["mid_attention"])
        unet.check_image_size(cfg["data"]["image_size"], "data.image_size")
    except ValueError as err:
        raise ValueError(f"config: ddpm.{err}") from None
    return unet

