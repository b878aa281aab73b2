"""Bring your own models: check and import a DDPM pipeline and classifier files instead of training them.

A brought DDPM is a diffusers ``DDPMPipeline`` directory (``save_pretrained``): a
``UNet2DModel`` predicting epsilon for RGB images of the data set's size, with a linear
beta schedule equal to GradCheck's own (:func:`gradcheck.ddpm.build_scheduler`), since the
robust classifier is trained on that schedule. :func:`check_ddpm_pipeline` reads JSON only,
so the workflow can call it while it parses, before any job runs.

A brought classifier is a file in one of two formats, told apart by content, not name:

(a) TorchScript (``torch.jit.save`` of a scripted or traced module) mapping float images
    (N, 3, S, S) in [-1, 1] to logits (N, C). Its classes are taken to be the data set's,
    in the data set's label order; only their number can be checked.
(b) GradCheck's own classifier file: a torchvision architecture name plus a state dict,
    the dict :func:`gradcheck.classifier.save_classifier` writes (kind, architecture,
    state_dict, classes, image_size, mode). Its class names and image size are checked.

Imported models are recorded by :func:`content_hash`, with the source they came from.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import shutil
import zipfile
from pathlib import Path

from .settings import ROLES, linear_beta_range

log = logging.getLogger(__name__)

PRETRAINED_JSON = "pretrained.json"  # in a brought DDPM directory, where a trained one has training.json
PRETRAINED_MODE = "pretrained"       # the mode of a brought classifier, in its file and its report
# Schedulers a DDPMScheduler can be built from (diffusers' DDPMScheduler._compatibles, less the EDM
# one, whose config has no betas). GradCheck samples ancestrally, so a brought directory with one of
# the others gets a DDPMScheduler of the same config in its copy.
DDPM_SCHEDULER = "DDPMScheduler"
COMPATIBLE_SCHEDULERS = (
    "DDPMScheduler", "DDIMScheduler", "PNDMScheduler", "LMSDiscreteScheduler", "EulerDiscreteScheduler",
    "HeunDiscreteScheduler", "EulerAncestralDiscreteScheduler", "DPMSolverMultistepScheduler",
    "DPMSolverSinglestepScheduler", "KDPM2DiscreteScheduler", "KDPM2AncestralDiscreteScheduler",
    "DEISMultistepScheduler", "UniPCMultistepScheduler", "DPMSolverSDEScheduler",
)
# Settings of the scheduler that change how samples are drawn but not the noise levels the
# classifiers see: a brought pipeline keeps its own, and the check reports where they differ.
SAMPLING_SETTINGS = {"variance_type": "fixed_small", "clip_sample": True, "clip_sample_range": 1.0,
                     "thresholding": False, "timestep_spacing": "leading", "steps_offset": 0}
BETA_RTOL = 1e-6
_CHUNK = 1 << 20


# --- hashing ----------------------------------------------------------------------------------


def _file_digest(path: Path) -> bytes:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            h.update(chunk)
    return h.digest()


def _files_below(root: Path) -> list[tuple[str, Path]]:
    """(relative POSIX path, path) of every file below ``root`` (links followed), sorted by the former."""
    found = []
    for directory, _, names in os.walk(root, followlinks=True):
        for name in names:
            path = Path(directory, name)
            if path.is_file():
                found.append((path.relative_to(root).as_posix(), path))
    return sorted(found)


def content_hash(path: str | os.PathLike) -> str:
    """``"sha256:<hex>"`` of a file's bytes, or of a directory's files.

    A directory's hash covers every file below it in sorted relative-path order: for each,
    the length of its relative POSIX path, the path and the SHA-256 of its bytes. Renaming,
    adding, removing or changing any file changes it; where the directory lies does not.
    """
    path = Path(path)
    if path.is_file():
        return "sha256:" + _file_digest(path).hex()
    if not path.is_dir():
        raise FileNotFoundError(f"cannot hash {path}: no such file or directory")
    h = hashlib.sha256()
    for rel, file in _files_below(path):
        name = rel.encode("utf-8")
        h.update(len(name).to_bytes(8, "big"))
        h.update(name)
        h.update(_file_digest(file))
    return "sha256:" + h.hexdigest()


# --- the DDPM -----------------------------------------------------------------------------------


def _read_json(pipeline: Path, rel: str) -> dict:
    path = pipeline / rel
    if not path.is_file():
        raise ValueError(f"DDPM pipeline {pipeline} has no {rel}; bring a directory written by "
                         f"diffusers' DDPMPipeline.save_pretrained (model_index.json, unet/, scheduler/)")
    try:
        obj = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"DDPM pipeline {pipeline}: {rel} is not readable JSON ({exc})") from None
    if not isinstance(obj, dict):
        raise ValueError(f"DDPM pipeline {pipeline}: {rel} holds {type(obj).__name__}, not a JSON object")
    return obj


def _component_class(index: dict, name: str) -> str | None:
    entry = index.get(name)
    if isinstance(entry, (list, tuple)) and len(entry) == 2 and isinstance(entry[1], str):
        return entry[1]
    return None


def check_ddpm_pipeline(path: str | os.PathLike, image_size: int, timesteps: int, scale_betas: bool) -> dict:
    """Check that ``path`` is a DDPM GradCheck can use with these settings, reading its JSON only.

    Raises ValueError naming the directory, the mismatch and the config key to change.
    Returns {"path", "sample_size", "timesteps", "scheduler", "scheduler_differences"}: the
    last, the sampling settings (variance type, clipping, ...) in which the pipeline differs
    from GradCheck's own DDPM, as {key: [pipeline's, GradCheck's]}; they are kept.
    """
    path = Path(path)
    if not path.is_dir():
        raise ValueError(f"DDPM pipeline {path} not found: no such directory")
    scheduler_class = _check_components(path)
    where = f"DDPM pipeline {path}"
    _check_unet_config(_read_json(path, "unet/config.json"), where, image_size)
    config = _read_json(path, "scheduler/scheduler_config.json")
    _check_schedule(config, where, timesteps, scale_betas)
    # GradCheck's DDPM has DDPMScheduler's defaults for these, which a config without the key gets too
    differences = {key: [config.get(key, ours), ours] for key, ours in SAMPLING_SETTINGS.items()
                   if config.get(key, ours) != ours}
    for key, (theirs, ours) in differences.items():
        log.warning("DDPM pipeline %s: scheduler %s is %r (GradCheck's DDPM: %r); kept", path, key, theirs, ours)
    return {"path": str(path), "sample_size": image_size, "timesteps": timesteps, "scheduler": scheduler_class,
            "scheduler_differences": differences}


def _check_components(path: Path) -> str:
    """model_index.json names an unconditional DDPMPipeline: a UNet2DModel and a compatible scheduler, whose
    class is returned."""
    index = _read_json(path, "model_index.json")
    components = sorted(k for k, v in index.items() if not k.startswith("_") and isinstance(v, (list, tuple)))
    extra = [c for c in components if c not in ("unet", "scheduler")]
    unet_class, scheduler_class = _component_class(index, "unet"), _component_class(index, "scheduler")
    if extra or unet_class != "UNet2DModel":
        raise ValueError(f"DDPM pipeline {path}: model_index.json has components {components} (unet: "
                         f"{unet_class}); GradCheck needs an unconditional pixel-space DDPM, a DDPMPipeline "
                         f"of a UNet2DModel unet and a scheduler")
    if scheduler_class not in COMPATIBLE_SCHEDULERS:
        raise ValueError(f"DDPM pipeline {path}: model_index.json's scheduler is {scheduler_class}, not one a "
                         f"DDPMScheduler can be built from ({', '.join(COMPATIBLE_SCHEDULERS)})")
    return scheduler_class


def _check_unet_config(unet: dict, where: str, image_size: int) -> None:
    """unet/config.json: an unconditional RGB UNet2DModel of the data's image size."""
    if unet.get("_class_name", "UNet2DModel") != "UNet2DModel":
        raise ValueError(f"{where}: unet/config.json is a {unet['_class_name']}, not a UNet2DModel")
    size = unet.get("sample_size")
    sizes = list(size) if isinstance(size, (list, tuple)) else [size, size]
    if len(sizes) != 2 or not all(isinstance(s, int) and not isinstance(s, bool) for s in sizes):
        raise ValueError(f"{where}: unet/config.json sample_size is {size!r}, not a size in pixels")
    if sizes != [image_size, image_size]:
        hint = f"; set data.image_size: {sizes[0]}" if sizes[0] == sizes[1] else " (GradCheck's images are square)"
        raise ValueError(f"{where}: its UNet makes {sizes[0]}x{sizes[1]} px images (unet/config.json "
                         f"sample_size) but data.image_size is {image_size}{hint}")
    for key in ("in_channels", "out_channels"):
        if unet.get(key, 3) != 3:
            raise ValueError(f"{where}: its UNet has {key} = {unet.get(key)} in unet/config.json; GradCheck "
                             f"data is RGB, so it needs 3 (an epsilon for each of 3 channels)")
    if unet.get("class_embed_type") is not None or unet.get("num_class_embeds") is not None:
        raise ValueError(f"{where}: its UNet is class-conditional (unet/config.json class_embed_type "
                         f"{unet.get('class_embed_type')!r}, num_class_embeds {unet.get('num_class_embeds')!r}); "
                         f"classifier guidance needs an unconditional one")


def _check_schedule(config: dict, where: str, timesteps: int, scale_betas: bool) -> None:
    """scheduler/scheduler_config.json: epsilon prediction on GradCheck's linear schedule of ``timesteps``."""
    rel = "scheduler/scheduler_config.json"
    prediction = config.get("prediction_type", "epsilon")
    if prediction != "epsilon":
        raise ValueError(f"{where}: its scheduler's prediction_type is {prediction!r} ({rel}); GradCheck's "
                         f"guidance needs a UNet that predicts the noise, 'epsilon'")
    schedule = config.get("beta_schedule", "linear")
    if schedule != "linear" or config.get("trained_betas") is not None:
        what = "trained_betas" if config.get("trained_betas") is not None else f"beta_schedule {schedule!r}"
        raise ValueError(f"{where}: its scheduler uses {what} ({rel}); GradCheck's classifiers are trained "
                         f"on the linear schedule, beta_schedule 'linear'")
    if config.get("rescale_betas_zero_snr"):
        raise ValueError(f"{where}: its scheduler sets rescale_betas_zero_snr ({rel}), which changes the "
                         f"noise levels from GradCheck's linear schedule")
    their_t = config.get("num_train_timesteps", 1000)
    if their_t != timesteps:
        raise ValueError(f"{where}: its scheduler has num_train_timesteps = {their_t} ({rel}) but "
                         f"ddpm.timesteps is {timesteps}; set ddpm.timesteps: {their_t}")
    start, end = linear_beta_range(timesteps, scale_betas)
    their = (float(config.get("beta_start", 1e-4)), float(config.get("beta_end", 0.02)))
    if not all(math.isclose(a, b, rel_tol=BETA_RTOL) for a, b in zip(their, (start, end))):
        message = (f"{where}: its scheduler's betas run from {their[0]:g} to {their[1]:g} ({rel} beta_start, "
                   f"beta_end) but GradCheck's schedule for ddpm.timesteps = {timesteps} and ddpm.scale_betas = "
                   f"{str(scale_betas).lower()} runs from {start:g} to {end:g}; the robust classifier is trained "
                   f"on GradCheck's schedule, so the pipeline must use the same one")
        try:
            other = linear_beta_range(timesteps, not scale_betas)
        except ValueError:
            other = None
        if other and all(math.isclose(a, b, rel_tol=BETA_RTOL) for a, b in zip(their, other)):
            message += f": set ddpm.scale_betas: {str(not scale_betas).lower()}"
        raise ValueError(message)


def bring_ddpm(source: str | os.PathLike, out: str | os.PathLike, image_size: int, timesteps: int,
               scale_betas: bool) -> dict:
    """Check ``source``, prove it loads, and copy it whole-or-not-at-all to ``out``.

    ``out`` gets ``pretrained.json``: {"source", "sha256" (of the source, before this file was
    added), "sample_size", "timesteps", "parameters", ...}, which is returned. A scheduler other
    than a DDPMScheduler is replaced in the copy by a DDPMScheduler of the same config, and a
    sample_size [S, S] by S.
    ``gradcheck.ddpm.load_pipeline(out)`` loads the result like a trained DDPM.
    """
    from diffusers import DDPMScheduler

    from .atomic import atomic_dir, write_json
    from .checkpoint import CheckpointError
    from .ddpm import load_pipeline
    from .device import describe

    source, out = Path(source).absolute(), Path(out).absolute()
    summary = check_ddpm_pipeline(source, image_size, timesteps, scale_betas)
    if out.resolve() == source.resolve() or source.resolve() in out.resolve().parents:
        raise ValueError(f"bring-ddpm: the copy {out} must not lie inside the pipeline {source}")
    try:
        unet, _ = load_pipeline(source)
    except CheckpointError as exc:
        raise ValueError(str(exc)) from exc
    record = {"source": str(source), "sha256": content_hash(source), "sample_size": image_size,
              "timesteps": timesteps, "scale_betas": scale_betas,
              "parameters": sum(p.numel() for p in unet.parameters()), "scheduler": summary["scheduler"],
              "scheduler_differences": summary["scheduler_differences"], "device": describe(unet.device)}
    del unet
    with atomic_dir(out) as tmp:
        shutil.copytree(source, tmp, dirs_exist_ok=True)
        (tmp / PRETRAINED_JSON).unlink(missing_ok=True)  # a copy of a brought copy: recorded anew below
        unet_config = json.loads((tmp / "unet" / "config.json").read_text())
        if isinstance(unet_config.get("sample_size"), list):  # [S, S]: GradCheck's code reads one side
            write_json(tmp / "unet" / "config.json", {**unet_config, "sample_size": image_size})
        if summary["scheduler"] != DDPM_SCHEDULER:
            config = json.loads((tmp / "scheduler" / "scheduler_config.json").read_text())
            shutil.rmtree(tmp / "scheduler")
            DDPMScheduler.from_config(config).save_pretrained(tmp / "scheduler")
            index = json.loads((tmp / "model_index.json").read_text())
            index["scheduler"] = ["diffusers", DDPM_SCHEDULER]
            write_json(tmp / "model_index.json", index)
            record["scheduler_converted_from"] = summary["scheduler"]
            try:
                load_pipeline(tmp)
            except CheckpointError as exc:
                raise ValueError(f"DDPM pipeline {source} with a DDPMScheduler does not load: {exc}") from exc
        write_json(tmp / PRETRAINED_JSON, record)
    log.info("brought the DDPM %s (%.2fM parameters, %s) to %s", source, record["parameters"] / 1e6,
             record["sha256"], out)
    return record


# --- classifiers --------------------------------------------------------------------------------


def classifier_format(path: str | os.PathLike) -> str:
    """'torchscript' if ``path`` is a TorchScript archive (a zip with */constants.pkl or */code/),
    else 'gradcheck' (whether it really is one, loading tells)."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"classifier {path} not found")
    if zipfile.is_zipfile(path):
        try:
            with zipfile.ZipFile(path) as archive:
                names = archive.namelist()
        except (OSError, zipfile.BadZipFile):
            names = []
        if any(n.endswith("/constants.pkl") or "/code/" in n for n in names):
            return "torchscript"
    return "gradcheck"


def _names(classes) -> str:
    classes = [str(c) for c in classes]
    shown = classes if len(classes) <= 5 else [*classes[:2], "...", classes[-1]]
    return f"({', '.join(shown)})"


def _load_brought(path: Path):
    """(model in eval mode on the CPU, format, TorchScript bytes or None, the GradCheck file's dict or None)."""
    from .checkpoint import load_torch
    from .classifier import load_classifier, load_torchscript
    from .errors import CheckpointError

    fmt = classifier_format(path)
    if fmt == "gradcheck":
        try:
            state = load_torch(path, "classifier")
        except CheckpointError as exc:
            try:  # a TorchScript archive this package did not recognise by its entries
                raw = path.read_bytes()
                return load_torchscript(raw), "torchscript", raw, None
            except Exception:
                pass
            raise ValueError(f"classifier {path} is neither TorchScript (torch.jit.save of a scripted or traced "
                             f"module) nor a GradCheck classifier file (the dict gradcheck.classifier."
                             f"save_classifier writes: kind, architecture, state_dict, classes, image_size, "
                             f"mode): {exc}") from None
        missing = [k for k in ("classes", "image_size") if k not in state]
        if "state_dict" not in state and "torchscript" not in state:
            missing.append("state_dict")
        if missing:
            raise ValueError(f"classifier {path} is a GradCheck classifier file without {', '.join(missing)}")
        try:
            model, _ = load_classifier(path)
        except CheckpointError as exc:
            raise ValueError(str(exc)) from None
        return model, fmt, None, state
    raw = path.read_bytes()
    try:
        model = load_torchscript(raw)
    except Exception as exc:
        raise ValueError(f"classifier {path} is a TorchScript archive that does not load: {exc}") from None
    return model, fmt, raw, None


def _check(path, classes, image_size: int, role: str):
    import torch

    from .classifier import pooled_feature_extractor

    path = Path(path)
    if role not in ROLES:
        raise ValueError(f"unknown classifier role {role!r}; choose one of {', '.join(ROLES)}")
    classes = [str(c) for c in classes]
    model, fmt, raw, state = _load_brought(path)
    architecture = state.get("architecture", "mobilenet_v3_small") if state is not None else model.original_name
    if state is not None:
        theirs = [str(c) for c in state["classes"]]
        if theirs != classes:
            raise ValueError(f"classifier {path} knows the classes {_names(theirs)} but the data set has "
                             f"{_names(classes)}: a GradCheck classifier file must name the data set's classes "
                             f"in its label order")
        if int(state["image_size"]) != image_size:
            raise ValueError(f"classifier {path} was trained on {state['image_size']} px images but the data "
                             f"set's are {image_size} px (data.image_size)")
    x = torch.zeros(2, 3, image_size, image_size)
    try:
        with torch.no_grad():
            logits = model(x)
    except Exception as exc:
        raise ValueError(f"classifier {path} fails on a batch of 2 RGB images of {image_size}x{image_size} px "
                         f"(float, in [-1, 1]): {exc}") from None
    if not isinstance(logits, torch.Tensor):
        raise ValueError(f"classifier {path} returns {type(logits).__name__}, not a tensor of logits (N, C)")
    if logits.dim() != 2 or logits.shape[0] != 2:
        raise ValueError(f"classifier {path} maps 2 images to an output of shape {tuple(logits.shape)}; "
                         f"GradCheck needs logits of shape (2, {len(classes)})")
    if logits.shape[1] != len(classes):
        raise ValueError(f"classifier {path} gives {logits.shape[1]} logits but the data set has "
                         f"{len(classes)} classes {_names(classes)}")
    if not logits.is_floating_point() or not torch.isfinite(logits).all():
        raise ValueError(f"classifier {path} gives logits that are not finite floats ({logits.dtype}) on "
                         f"all-zero images")
    info = {"path": str(path), "format": fmt, "role": role, "classes": len(classes), "image_size": image_size,
            "architecture": architecture, "parameters": sum(p.numel() for p in model.parameters())}
    if role == "features":
        try:
            body, width = pooled_feature_extractor(model)
            with torch.no_grad():
                features = body(x)
            if tuple(features.shape) != (2, width) or not torch.isfinite(features).all():
                raise TypeError(f"pooled features of shape {tuple(features.shape)}, expected (2, {width})")
        except Exception as exc:
            raise ValueError(f"feature network {path}: FID and KID use its pooled features, which GradCheck finds in "
                             f"torchvision's MobileNetV3, ShuffleNetV2 and ResNet only ({exc}); bring it in format "
                             f"(b), a torchvision architecture name plus a state dict (as gradcheck.classifier."
                             f"save_classifier writes)") from None
        info["features"] = width
    return model, info, raw, state


def check_classifier_file(path: str | os.PathLike, classes, image_size: int, role: str) -> dict:
    """Check a brought classifier against the data set's ``classes`` (names in label order) and size.

    Loads it, runs it on ``torch.zeros(2, 3, image_size, image_size)`` and checks for (2, C)
    finite logits, C = len(classes); a GradCheck file must also name the same classes in the
    same order and the same image size; the FID feature network (role 'features') must have pooled
    features. Raises ValueError naming the file and the mismatch. Returns {"format", "classes" (their
    number), "image_size", "architecture", "parameters", "role", "path"} (+ "features" for role 'features').
    """
    return _check(path, classes, image_size, role)[1]


def bring_classifier(source: str | os.PathLike, out: str | os.PathLike, report: str | os.PathLike,
                     data_path: str | os.PathLike, role: str, timesteps: int, scale_betas: bool,
                     device="cpu") -> dict:
    """Check a brought classifier against the data set, evaluate it, and save it as a GradCheck file.

    ``out`` is loaded by :func:`gradcheck.classifier.load_classifier` like a trained classifier
    (a TorchScript one is kept inside it, its archive's bytes as a uint8 tensor). ``report``
    gets the keys a train-classifier report has for figure-classifiers (mode 'pretrained',
    clean_accuracy, noisy_accuracy, best_epoch None, epochs_run 0, parameters) and source,
    sha256, format, device. Returns the report.
    """
    import torch

    from .atomic import atomic_path, write_json
    from .checkpoint import CheckpointError
    from .classifier import TORCHSCRIPT, evaluate, load_classifier
    from .data import images_to_tensor, load_dataset
    from .ddpm import build_scheduler
    from .device import describe

    source = Path(source).absolute()
    data = load_dataset(data_path)
    classes = [str(c) for c in data["classes"]]
    size = int(data["size"])
    model, info, raw, state = _check(source, classes, size, role)
    sha = content_hash(source)
    device = torch.device(device)
    model = model.to(device).eval()
    metrics = evaluate(model, images_to_tensor(data["val_images"]),
                       torch.as_tensor(data["val_labels"], dtype=torch.long), build_scheduler(timesteps, scale_betas))
    origin = {"source": str(source), "sha256": sha, "format": info["format"], "role": role}
    if raw is not None:
        saved = {"kind": "classifier", "architecture": TORCHSCRIPT,
                 TORCHSCRIPT: torch.frombuffer(bytearray(raw), dtype=torch.uint8),
                 "classes": classes, "image_size": size, "mode": PRETRAINED_MODE, "origin": origin}
    else:
        origin["mode"] = state.get("mode")  # what it was trained as
        saved = {**state, "architecture": state.get("architecture", "mobilenet_v3_small"),
                 "mode": PRETRAINED_MODE, "origin": origin}
    with atomic_path(out) as tmp:
        torch.save(saved, tmp)
        try:  # prove the file loads as every command will load it, before it replaces anything
            load_classifier(tmp)
        except CheckpointError as exc:
            raise ValueError(f"classifier {source} saved to {out} does not load back: {exc}") from exc
    result = {"mode": PRETRAINED_MODE, "role": role, "architecture": info["architecture"], **metrics,
              "best_epoch": None, "epochs_run": 0, "parameters": info["parameters"], "source": str(source),
              "sha256": sha, "format": info["format"], "classes": classes, "image_size": size,
              "timesteps": timesteps, "scale_betas": scale_betas, "device": describe(device)}
    write_json(report, result)
    log.info("brought the %s classifier %s (%s, %s): clean accuracy %.4f, noisy accuracy %.4f", role, source,
             info["format"], sha, metrics["clean_accuracy"], metrics["noisy_accuracy"])
    return result


# --- the run record -----------------------------------------------------------------------------


def model_record(path: str | os.PathLike) -> dict:
    """{"path", "sha256", "origin": "brought" | "trained", and for a brought one "source",
    "source_sha256"}: a DDPM directory is brought if it has pretrained.json, a classifier
    file if it holds mode 'pretrained'. ``sha256`` is the hash of the model as used."""
    path = Path(path)
    if not path.exists():
        raise ValueError(f"model {path} not found")
    record = {"path": str(path), "sha256": content_hash(path), "origin": "trained"}
    if path.is_dir():
        marker = path / PRETRAINED_JSON
        if marker.is_file():
            brought = json.loads(marker.read_text())
            record |= {"origin": "brought", "source": brought.get("source"), "source_sha256": brought.get("sha256")}
        return record
    from .checkpoint import load_torch
    from .errors import CheckpointError

    try:
        state = load_torch(path, "classifier")
    except CheckpointError as exc:
        raise ValueError(f"model {path} is neither a DDPM directory nor a classifier file: {exc}") from None
    if state.get("mode") == PRETRAINED_MODE:
        origin = state.get("origin") or {}
        record |= {"origin": "brought", "source": origin.get("source"), "source_sha256": origin.get("sha256")}
    return record
