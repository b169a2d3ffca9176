"""The anonymization pipeline for one image (design.md, "The data path (inference)").

detect (persons + faces, on a downscaled copy of large images) -> embed (surface maps,
only when the generator uses them) -> crop (SPEC §7.3-7.5) -> generate (batched) ->
paste back (§7.8) -> faces that no body covers, and persons too small for the
generator, go through a region path (a baseline at native resolution).

Order of overlapping people: persons are pasted largest mask first; in pass 1 a person's
own pixels are written only where no earlier (larger) person claimed them, so the
nearer, usually larger, person stays whole. Face/small-person regions are written last,
over everything.

>>> from sganon.core.pipeline import Anonymizer
>>> anonymizer = Anonymizer.from_names(generator="pixelate", detector=None)  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass, field
from typing import Any, Iterator

import numpy as np
import torch

from .boxes import PAPER_ASPECT, PAPER_MIN_AREA
from .components import build_component, component_class
from .crops import (
    PersonCrop,
    collate,
    dilate,
    dilation_radius,
    paste_back,
    prepare_person_crop,
    prepare_region_crop,
    resize_nearest,
)
from .errors import AnonymizationError, ConfigError, InputError, PresetError, SganonError, WeightsError
from .interfaces import Detector, Generator, SurfaceEmbedder
from .presets import PIPELINE, Preset, all_presets, get_preset
from .rle import decode_rle, encode_rle
from .structures import Box, Detection, SurfaceMap

#: The realistic preset used by default when its weights (and its embedder's) are imported.
REALISTIC_PRESET = "vsam.fba-configE"
#: The generator used when the realistic one is not available.
BASELINE_PRESET = "baseline.pixelate-16"
#: Face and small-person regions: pixelation with this many blocks across the region.
REGION_PIXELATE_BLOCKS = 8


@contextlib.contextmanager
def stage(name: str, timings: dict[str, float] | None = None) -> Iterator[None]:
    """Time a pipeline stage and turn unexpected errors into :class:`AnonymizationError`."""
    start = time.perf_counter()
    try:
        yield
    except SganonError:
        raise
    except Exception as error:  # any failure must stop the output of this image (fail closed)
        raise AnonymizationError(f"the {name} stage failed: {type(error).__name__}: {error}") from error
    finally:
        if timings is not None:
            timings[name] = timings.get(name, 0.0) + time.perf_counter() - start


@dataclass
class Detections:
    """Persons and faces of one image (image pixels)."""

    persons: list[Detection] = field(default_factory=list)
    faces: list[Detection] = field(default_factory=list)

    def to_json(self, image_height: int, image_width: int) -> dict[str, Any]:
        """``{"persons": [{box, score, mask (COCO RLE, image size), keypoints?}], "faces": [{box, score}]}``."""
        persons = []
        for person in self.persons:
            entry: dict[str, Any] = {
                "box": person.box.to_list(),
                "score": round(float(person.score), 4),
                "mask": encode_rle(person.mask_in_image(image_height, image_width)),
            }
            if person.keypoints is not None:
                entry["keypoints"] = np.round(person.keypoints.astype(float), 2).tolist()
            persons.append(entry)
        faces = [{"box": face.box.to_list(), "score": round(float(face.score), 4)} for face in self.faces]
        return {"persons": persons, "faces": faces}

    @classmethod
    def from_json(cls, data: dict[str, Any], image_height: int, image_width: int) -> "Detections":
        """Inverse of :meth:`to_json`; boxes are clipped to the image."""
        if not isinstance(data, dict):
            raise InputError(f"detections must be an object with persons/faces, got {type(data).__name__}")
        persons = []
        for entry in data.get("persons") or []:
            box = Box.from_list(entry["box"]).clip(image_height, image_width)
            if box.is_empty():
                continue
            mask = None
            if entry.get("mask") is not None:
                full = decode_rle(entry["mask"])
                if full.shape != (image_height, image_width):
                    raise InputError(
                        f"a person mask is {full.shape[0]}x{full.shape[1]} but the image is {image_height}x{image_width}"
                    )
                mask = full[box.y0 : box.y1, box.x0 : box.x1]
            keypoints = np.asarray(entry["keypoints"], np.float32) if entry.get("keypoints") else None
            persons.append(Detection(box, float(entry.get("score", 1.0)), mask, keypoints, "person"))
        faces = []
        for entry in data.get("faces") or []:
            box = Box.from_list(entry["box"]).clip(image_height, image_width)
            if not box.is_empty():
                faces.append(Detection(box, float(entry.get("score", 1.0)), label="face"))
        return cls(persons, faces)


@dataclass
class AnonymizedImage:
    """The result for one image.

    Attributes:
        image: uint8 ``[H, W, 3]`` RGB, the anonymized image.
        replaced: bool ``[H, W]``, every pixel that was changed or may have changed.
        detections: What was anonymized: person boxes cover their replaced region; face
            boxes are the replaced face regions.
        surfaces: Surface maps of the persons (empty when the generator uses none).
        timings: Seconds per stage (``detect``, ``embed``, ``generate``, ``paste``).
    """

    image: np.ndarray
    replaced: np.ndarray
    detections: Detections
    surfaces: list[SurfaceMap]
    timings: dict[str, float]


@dataclass
class GeneratorChoice:
    """Which generator (and embedder) a run uses, and what the user must be told."""

    generator: Generator
    label: str
    realistic: bool
    resolution: tuple[int, int] | None
    surface_channels: int
    vertices: bool
    embedder: SurfaceEmbedder | None
    notice: str = ""
    #: The person detector a pipeline preset brings (``None``: the caller chooses one).
    detector: Detector | None = None


def load_weighted_component(preset: Preset) -> Any:
    """Build a preset's component with its imported weights (``core/weights.py``)."""
    try:
        from .weights import load_preset_weights  # type: ignore[attr-defined]
    except ImportError as error:
        raise WeightsError(f"this installation cannot load weights ({error})") from error
    return load_preset_weights(preset.name)


def embedder_for(name: str) -> SurfaceEmbedder:
    """The embedder ``name``, with weights when a preset of it has them."""
    for preset in all_presets().values():
        if preset.kind == "embedder" and preset.component == name and preset.weights is not None:
            return load_weighted_component(preset)
    component_class("embedder", name)
    return build_component("embedder", name)


def build_generator(preset: Preset) -> tuple[Generator, dict[str, Any]]:
    cls = component_class("generator", preset.component)
    args = {**cls.default_args("paper"), **preset.args}
    if preset.weights is not None:
        return load_weighted_component(preset), args
    return build_component("generator", preset.component, **preset.args), args


def choose_generator(
    generator: str | None = None, preset: str | None = None, embedder: str | None = None
) -> GeneratorChoice:
    """Resolve ``--generator NAME`` / ``--preset NAME`` (or the default) to a ready generator.

    Default: the realistic :data:`REALISTIC_PRESET` when its weights and its embedder's
    are imported, else :data:`BASELINE_PRESET`, with a notice saying so. An explicit
    choice that cannot be loaded is an error (never a silent downgrade).
    """
    if generator and preset:
        raise ConfigError("give either --generator or --preset, not both")
    notice = ""
    if preset:
        chosen = get_preset(preset)
        if chosen.kind == PIPELINE:
            if embedder:
                raise ConfigError(f"pipeline preset {preset!r} brings its own embedder; drop --embedder")
            parts = chosen.parts
            choice = with_embedder(get_preset(parts["generator"]), None, "", get_preset(parts["embedder"]))
            choice.detector = load_weighted_component(get_preset(parts["detector"]))
            return choice
        if chosen.kind != "generator":
            raise PresetError(f"preset {preset!r} is a {chosen.kind}, not a generator or a pipeline")
    elif generator:
        cls = component_class("generator", generator)
        matches = [p for p in all_presets().values() if p.kind == "generator" and p.component == cls.name]
        weighted = [p for p in matches if p.weights is not None]
        if cls.ports(cls.default_args("paper")).get("trainable", False):
            if not weighted:
                raise WeightsError(f"generator {generator!r} needs trained weights and no preset provides them")
            chosen = weighted[0]
        else:
            chosen = Preset(name=cls.name, kind="generator", component=cls.name, origin="command line")
    else:
        try:
            return with_embedder(get_preset(REALISTIC_PRESET), embedder, "")
        except (SganonError, ImportError) as error:
            notice = (
                f"Using the baseline generator {BASELINE_PRESET!r} (pixelation), NOT the realistic generator "
                f"{REALISTIC_PRESET!r}: {error}. To anonymize with realistic people, import the weights of "
                f"{REALISTIC_PRESET!r} and of the DensePose-CSE embedder with `sganon weights import` "
                "(see docs/weights.md)."
            )
            chosen = get_preset(BASELINE_PRESET)
    return with_embedder(chosen, embedder, notice)


def with_embedder(
    preset: Preset, embedder: str | None, notice: str, embedder_preset: Preset | None = None
) -> GeneratorChoice:
    """Build ``preset``'s generator with the embedder it needs (``embedder_preset`` wins over names)."""
    component, args = build_generator(preset)
    ports = type(component).ports(args)
    resolution = ports.get("resolution")
    channels = int(ports.get("surface_channels") or 0)
    surface = None
    if channels > 0:
        name = embedder_preset.component if embedder_preset else embedder or preset.expects_embedder
        if not name:
            raise ConfigError(f"generator {preset.name!r} uses a surface map; choose an embedder with --embedder")
        surface = load_weighted_component(embedder_preset) if embedder_preset else embedder_for(name)
        produced = type(surface).ports(type(surface).default_args("paper")).get("surface_channels")
        if produced is not None and int(produced) != channels:
            raise ConfigError(
                f"embedder {name!r} gives {produced} surface channels but generator {preset.name!r} expects {channels}"
            )
    elif embedder:
        surface = embedder_for(embedder)
    component.eval()
    return GeneratorChoice(
        generator=component,
        label=f"{preset.name} ({preset.component})" if preset.name != preset.component else preset.name,
        realistic=bool(ports.get("realistic", False)),
        resolution=None if resolution is None else (int(resolution[0]), int(resolution[1])),
        surface_channels=channels,
        vertices=bool(ports.get("vertices", False)),
        embedder=surface,
        notice=notice,
    )


def scale_detection(detection: Detection, factor: float, image_height: int, image_width: int) -> Detection:
    """A detection found on an image scaled by ``factor``, mapped back to the full image."""
    box = detection.box
    full = Box(
        math.floor(box.x0 / factor), math.floor(box.y0 / factor), math.ceil(box.x1 / factor), math.ceil(box.y1 / factor)
    ).clip(image_height, image_width)
    mask = None
    if detection.mask is not None:
        mask = resize_nearest(detection.mask.astype(np.uint8), (full.height, full.width)).astype(bool)
    keypoints = None
    if detection.keypoints is not None:
        keypoints = detection.keypoints.copy()
        keypoints[:, :2] /= factor
    return Detection(full, detection.score, mask, keypoints, detection.label)


def grow_box(box: Box, fraction: float, image_height: int, image_width: int) -> Box:
    """``box`` grown by ``fraction`` of its size on each side, clipped to the image."""
    dx, dy = math.ceil(box.width * fraction), math.ceil(box.height * fraction)
    return Box(box.x0 - dx, box.y0 - dy, box.x1 + dx, box.y1 + dy).clip(image_height, image_width)


def merge_overlapping(faces: list[Detection], iou: float = 0.3) -> list[Detection]:
    """Faces with overlapping boxes merged into their union (video windows repeat faces)."""
    merged: list[Detection] = []
    for face in sorted(faces, key=lambda f: -f.score):
        for i, other in enumerate(merged):
            inter = face.box.intersect(other.box).area
            if inter and inter / (face.box.area + other.box.area - inter) > iou:
                merged[i] = Detection(union_box(other.box, face.box), other.score, label="face")
                break
        else:
            merged.append(face)
    return merged


def bounding_box(mask: np.ndarray) -> Box | None:
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(mask.any(axis=0))
    return Box(int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1)


def union_box(a: Box, b: Box | None) -> Box:
    if b is None:
        return a
    return Box(min(a.x0, b.x0), min(a.y0, b.y0), max(a.x1, b.x1), max(a.y1, b.y1))


class Anonymizer:
    """Anonymizes images: detection, surface maps, generation, paste-back.

    Args:
        choice: The generator (and embedder) to use, see :func:`choose_generator`.
        detector: Person detector (may also report faces), or ``None`` (detections given).
        face_detector: Face detector, or ``None``.
        region_generator: Generator for faces without a body and persons below the
            minimum size (works at any resolution); default pixelation.
        batch_size: Crops per generator call.
        truncation: Truncation ``t`` passed to the generator (``None``: its default).
        seed: Seed of latents and random fills (same seed, same output).
        feather: Soft-edge width in pixels at paste-back (0: hard edge).
        detect_max_side: Images larger than this are detected on a downscaled copy.
        face_margin: Face regions are the face box grown by this fraction on each side.
        device: Torch device of the generator.
    """

    def __init__(
        self,
        choice: GeneratorChoice,
        detector: Detector | None,
        face_detector: Detector | None = None,
        region_generator: Generator | None = None,
        batch_size: int = 8,
        truncation: float | None = None,
        seed: int = 0,
        feather: int = 0,
        detect_max_side: int = 1920,
        face_margin: float = 0.2,
        device: str = "cpu",
    ) -> None:
        if batch_size < 1:
            raise ConfigError(f"batch size must be >= 1, got {batch_size}")
        if truncation is not None and not 0.0 <= truncation <= 1.0:
            raise ConfigError(f"truncation must be in [0, 1], got {truncation}")
        self.choice = choice
        self.detector = detector
        self.face_detector = face_detector
        self.region_generator = region_generator or build_component(
            "generator", "pixelate", blocks=REGION_PIXELATE_BLOCKS
        )
        self.batch_size = batch_size
        self.truncation = truncation
        self.seed = seed
        self.feather = feather
        self.detect_max_side = detect_max_side
        self.face_margin = face_margin
        self.device = torch.device(device)
        self.choice.generator.to(self.device)
        self.rng = torch.Generator().manual_seed(seed)

    @classmethod
    def from_names(
        cls,
        generator: str | None = None,
        preset: str | None = None,
        embedder: str | None = None,
        detector: str | None = "offline",
        face_detector: str | None = "offline-face",
        **options: Any,
    ) -> "Anonymizer":
        """Build from component/preset names (``None`` detector: detections must be given)."""
        choice = choose_generator(generator, preset, embedder)
        person = build_component("detector", detector) if detector else None
        faces = build_component("detector", face_detector) if face_detector else None
        return cls(choice, person, faces, **options)

    # ------------------------------------------------------------------ detection
    def detect(self, image: np.ndarray, timings: dict[str, float] | None = None) -> Detections:
        """Persons and faces of ``image`` (uint8 RGB), detected on a copy no larger than
        ``detect_max_side`` and mapped back to full resolution."""
        check_image(image)
        height, width = image.shape[:2]
        factor = min(1.0, self.detect_max_side / max(height, width))
        small = image
        if factor < 1.0:
            from PIL import Image

            size = (max(1, round(width * factor)), max(1, round(height * factor)))
            small = np.asarray(Image.fromarray(image).resize(size, Image.Resampling.BILINEAR, reducing_gap=3.0))
            factor = small.shape[1] / width
        found: list[Detection] = []
        with stage("detect", timings):
            if self.detector is not None:
                found += self.detector.detect(small)
            if self.face_detector is not None:
                found += self.face_detector.detect(small)
        if factor < 1.0:
            found = [scale_detection(d, factor, height, width) for d in found]
        return Detections(
            persons=[d for d in found if d.label == "person"], faces=[d for d in found if d.label == "face"]
        )

    # ------------------------------------------------------------------ anonymization
    def anonymize(
        self,
        image: np.ndarray,
        detections: Detections | None = None,
        latent_keys: list[int] | None = None,
    ) -> AnonymizedImage:
        """Anonymize ``image`` (uint8 RGB ``[H, W, 3]``).

        Args:
            image: The image.
            detections: Detections to use instead of running the detectors.
            latent_keys: One integer per person (e.g. a video track id): the same key
                gives the same latent, so the same synthetic identity.
        """
        check_image(image)
        timings: dict[str, float] = {}
        if detections is None:
            detections = self.detect(image, timings)
        height, width = image.shape[:2]
        order = sorted(range(len(detections.persons)), key=lambda i: -int(detections.persons[i].full_mask().sum()))
        persons = [detections.persons[i] for i in order]
        keys = None if latent_keys is None else [latent_keys[i] for i in order]
        choice = self.choice
        surfaces: list[SurfaceMap] = []
        with stage("embed", timings):
            if choice.embedder is not None and persons:
                surfaces = choice.embedder.embed(image, persons)
                if len(surfaces) != len(persons):
                    raise AnonymizationError(f"the embedder returned {len(surfaces)} maps for {len(persons)} persons")
        person_crops: list[PersonCrop] = []
        region_crops: list[PersonCrop] = []
        person_keys: list[int | None] = []
        with stage("crop", timings):
            aspect = PAPER_ASPECT if choice.resolution is None else choice.resolution[0] / choice.resolution[1]
            # The paper skips persons under 32x32; a generator of fixed resolution does here too,
            # and their region goes to the region generator. Any-size generators take them all.
            min_area = PAPER_MIN_AREA if choice.resolution is not None else 1
            for i, person in enumerate(persons):
                surface = surfaces[i] if surfaces and choice.surface_channels else None
                crop = prepare_person_crop(
                    image,
                    person,
                    surface,
                    choice.resolution,
                    choice.surface_channels,
                    aspect=aspect,
                    min_area=min_area,
                    index=i,
                    surface_at_crop=getattr(choice.embedder, "surface_at_crop", None),
                )
                if crop is None:  # too small for the generator: anonymize its region anyway
                    region_crops.append(self.small_person_crop(image, person, i))
                else:
                    person_crops.append(crop)
                    person_keys.append(None if keys is None else keys[i])
        with stage("generate", timings):
            generated = self.generate(choice.generator, person_crops, person_keys)
        with stage("paste", timings):
            out = paste_back(image, person_crops, generated, self.feather)
            replaced = np.zeros((height, width), dtype=bool)
            person_regions = [crop.region_in_image(height, width) for crop in person_crops]
            for region in person_regions:
                replaced |= region
        exported_persons = []
        regions_by_person: dict[int, np.ndarray] = {crop.index: r for crop, r in zip(person_crops, person_regions)}
        face_regions: list[Detection] = []
        with stage("faces", timings):
            for crop in region_crops:
                regions_by_person[crop.index] = crop.region_in_image(height, width)
            covered = replaced.copy()
            for crop in region_crops:
                covered |= regions_by_person[crop.index]
            for face in merge_overlapping(detections.faces):
                # A face (nearly) inside a replaced body only gets its own uncovered pixels
                # (fail safe, no halo around a generated head); any other face gets its box grown
                # by the margin, less what is already replaced.
                tight = face.box.clip(height, width)
                if tight.is_empty():
                    continue
                inside = covered[tight.y0 : tight.y1, tight.x0 : tight.x1].mean()
                grown = tight if inside >= 0.9 else grow_box(tight, self.face_margin, height, width)
                region = ~covered[grown.y0 : grown.y1, grown.x0 : grown.x1]
                if not region.any():
                    continue
                region_crops.append(prepare_region_crop(image, region, grown, index=-1 - len(face_regions)))
                face_regions.append(Detection(grown, face.score, label="face"))
            if region_crops:
                results = self.generate(self.region_generator, region_crops, [None] * len(region_crops))
                out = paste_back(out, region_crops, results, 0)
                for crop in region_crops:
                    replaced |= crop.region_in_image(height, width)
        for i, person in enumerate(persons):
            region = regions_by_person.get(i)
            box = union_box(person.box, None if region is None else bounding_box(region))
            mask = person.mask_in_image(height, width)[box.y0 : box.y1, box.x0 : box.x1]
            exported_persons.append(Detection(box, person.score, mask, person.keypoints, "person"))
        return AnonymizedImage(out, replaced, Detections(exported_persons, face_regions), surfaces, timings)

    def small_person_crop(self, image: np.ndarray, person: Detection, index: int) -> PersonCrop:
        """Region crop of a person too small for the generator: its mask dilated as in §7.5."""
        height, width = image.shape[:2]
        mask = torch.from_numpy(person.full_mask())
        radius = dilation_radius(int(mask.sum()))
        box = Box(person.box.x0 - radius, person.box.y0 - radius, person.box.x1 + radius, person.box.y1 + radius)
        padded = torch.nn.functional.pad(mask, (radius, radius, radius, radius))
        region = dilate(padded, radius).numpy()
        inside = box.clip(height, width)
        region = region[inside.y0 - box.y0 : inside.y1 - box.y0, inside.x0 - box.x0 : inside.x1 - box.x0]
        return prepare_region_crop(image, region, inside, index=index)

    def latents(self, generator: Generator, keys: list[int | None]) -> torch.Tensor | None:
        """``[N, z]`` latents: seeded by key where given, else drawn from the run's generator."""
        channels = getattr(generator, "z_channels", None)
        if not channels:
            return None
        rows = []
        for key in keys:
            source = self.rng if key is None else torch.Generator().manual_seed(self.seed * 1_000_003 + int(key))
            rows.append(torch.randn(int(channels), generator=source))
        return torch.stack(rows)

    @torch.no_grad()
    def generate(self, generator: Generator, crops: list[PersonCrop], keys: list[int | None]) -> list[torch.Tensor]:
        """Generator output ``[3, h, w]`` per crop; crops of one size are batched."""
        outputs: list[torch.Tensor | None] = [None] * len(crops)
        by_size: dict[tuple[int, int], list[int]] = {}
        for i, crop in enumerate(crops):
            by_size.setdefault(crop.crop.size, []).append(i)
        for indices in by_size.values():
            for start in range(0, len(indices), self.batch_size):
                chunk = indices[start : start + self.batch_size]
                batch = collate([crops[i] for i in chunk])
                batch.image, batch.mask, batch.border, batch.embedding = (
                    t.to(self.device) for t in (batch.image, batch.mask, batch.border, batch.embedding)
                )
                if batch.vertices is not None:
                    batch.vertices = batch.vertices.to(self.device)
                z = self.latents(generator, [keys[i] for i in chunk])
                result = generator.anonymize(
                    batch, z=None if z is None else z.to(self.device), truncation=self.truncation, rng=self.rng
                )
                if tuple(result.shape) != tuple(batch.image.shape):
                    raise AnonymizationError(
                        f"the generator returned {tuple(result.shape)} for a batch of {tuple(batch.image.shape)}"
                    )
                if not torch.isfinite(result).all():
                    raise AnonymizationError("the generator returned non-finite values")
                for j, i in enumerate(chunk):
                    outputs[i] = result[j].cpu()
        return [o for o in outputs if o is not None]


def check_image(image: np.ndarray) -> None:
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise InputError("the pipeline takes uint8 RGB images [H, W, 3]")
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise InputError(f"the image is empty ({image.shape[0]}x{image.shape[1]})")
