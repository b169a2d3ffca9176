"""The anonymization of one image (design.md, "The data path (inference)").

detect (persons + faces, on a downscaled copy of large images) -> embed (surface maps,
only when the generator uses them) -> crop (SPEC §7.3-7.5) -> generate (batched) ->
paste back (§7.8) -> faces that no body covers, and persons too small for the
generator, go through a region path (a baseline at native resolution).

Order of overlapping people: persons are pasted largest mask first; in pass 1 a person's
own pixels are written only where no earlier (larger) person claimed them, so the
nearer, usually larger, person stays whole. Face/small-person regions are written last,
over everything.

>>> from sganon.core.anonymizer import Anonymizer
>>> anonymizer = Anonymizer.from_names(detector="none")  # registry.yaml defaults  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import time
from dataclasses import dataclass, field
from typing import Any, ContextManager, Iterator

import numpy as np
import torch

from .assembly import PipelineOptions, PipelineParts, assemble
from .boxes import (
    HEAD_ASPECT,
    PAPER_ASPECT,
    PAPER_MIN_AREA,
    PERSON_ASPECT,
    head_box,
    mask_bounds,
    merge_overlapping,
    union_box,
    whole_size,
)
from .crops import (
    PasteBack,
    PersonCrop,
    clipped,
    collate,
    dilate,
    dilation_radius,
    or_into,
    paste_back,
    place_in_box,
    prepare_person_crop,
    prepare_region_crop,
    to_uint8,
)
from .detections import Detections, downscaled, scale_detection, unrotate_detection
from .errors import AnonymizationError, SganonError
from .interfaces import Generator
from .precision import apply_tf32, model_autocast
from .structures import Box, Detection, SurfaceMap, check_rgb_image


#: At most this many rounds of the verification pass (each can anonymize several faces).
VERIFY_ROUNDS = 3


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


def item_seed(seed: int, item: str) -> int:
    """A 63-bit seed from ``(seed, item)``, stable across processes and machines (sha256;
    Python's ``hash`` of a string changes per process)."""
    digest = hashlib.sha256(f"{seed}\0{item}".encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") >> 1


@dataclass
class AnonymizedImage:
    """The result for one image.

    Attributes:
        image: uint8 ``[H, W, 3]`` RGB, the anonymized image.
        replaced: bool ``[H, W]``, every pixel that was changed or may have changed.
        detections: What was anonymized: person boxes cover their replaced region; face
            boxes are the replaced face regions.
        surfaces: Surface maps of the persons (empty when the generator uses none).
        timings: Seconds per stage (``detect``, ``embed``, ``crop``, ``generate``, ``paste``,
            ``faces``, ``verify``).
        refound: Faces the verification pass found in the output where nothing was replaced
            (they were anonymized too, and are among ``detections.faces``).
    """

    image: np.ndarray
    replaced: np.ndarray
    detections: Detections
    surfaces: list[SurfaceMap]
    timings: dict[str, float]
    refound: int = 0


@dataclass
class FrameToAnonymize:
    """One item of :meth:`Anonymizer.anonymize_many`: the arguments of :meth:`Anonymizer.anonymize`."""

    image: np.ndarray
    detections: Detections | None = None
    latent_keys: list[int] | None = None
    faces_scanned: bool = False


@dataclass
class PreparedImage:
    """One image between cropping and generation (:meth:`Anonymizer.prepare`).

    Attributes:
        image: uint8 ``[H, W, 3]`` RGB input.
        detections: Its detections (given or detected).
        persons: The persons in paste order.
        surfaces: Their surface maps (empty without an embedder).
        timings: Seconds per stage so far.
        faces_scanned: The face detector has seen this image (see :meth:`Anonymizer.anonymize`).
        person_crops: Crops for the generator, in paste order.
        person_keys: The latent key of each of ``person_crops`` (or ``None``).
        region_crops: Crops of persons too small for the generator (region generator).
        paste: With ``generate_each`` (:meth:`Anonymizer.prepare`): the paste-back that took
            each of ``person_crops`` as it was generated (their inputs are then dropped).
    """

    image: np.ndarray
    detections: Detections
    persons: list[Detection]
    surfaces: list[SurfaceMap]
    timings: dict[str, float]
    faces_scanned: bool
    person_crops: list[PersonCrop] = field(default_factory=list)
    person_keys: list[int | None] = field(default_factory=list)
    region_crops: list[PersonCrop] = field(default_factory=list)
    paste: PasteBack | None = None


def verification_window(
    replaced: np.ndarray, margin: float = 0.25, min_margin: int = 32, whole_above: float = 0.5
) -> Box | None:
    """Where the verification pass looks: the box of the ``replaced`` pixels (bool ``[H, W]``)
    grown by ``margin`` of its size on each side (at least ``min_margin`` pixels), so faces cut
    by a replaced region's edge are seen whole; the whole image when that box would cover more
    than ``whole_above`` of it; ``None`` when nothing was replaced."""
    bounds = mask_bounds(replaced)
    if bounds is None:
        return None
    height, width = replaced.shape
    dx = max(min_margin, math.ceil(bounds.width * margin))
    dy = max(min_margin, math.ceil(bounds.height * margin))
    window = Box(bounds.x0 - dx, bounds.y0 - dy, bounds.x1 + dx, bounds.y1 + dy).clip(height, width)
    if window.width * window.height > whole_above * height * width:
        return Box(0, 0, width, height)
    return window


class Anonymizer:
    """Anonymizes images: detection, surface maps, generation, paste-back.

    Args:
        parts: The components (see :func:`sganon.core.assembly.assemble`).
        options: How to run them.
    """

    def __init__(self, parts: PipelineParts, options: PipelineOptions | None = None) -> None:
        self.parts = parts
        self.options = options or PipelineOptions()
        self.device = torch.device(self.options.device)
        apply_tf32(self.options.precision, self.device)
        self.rng = torch.Generator().manual_seed(self.options.seed)

    def autocast(self) -> ContextManager[Any]:
        """The autocast context of model forwards at ``options.precision`` (none for fp32/tf32)."""
        return model_autocast(self.options.precision, self.device)

    def to_device(self, tensor: torch.Tensor) -> torch.Tensor:
        """``tensor`` on the pipeline's device; to a GPU from pinned memory, without a host sync."""
        if self.device.type != "cuda":
            return tensor.to(self.device)
        return tensor.pin_memory().to(self.device, non_blocking=True)

    def reseed(self, item: str) -> None:
        """Restart the random stream for one item (an image's or a video's name relative to
        its input root): its output then depends only on the options, the seed and that name,
        never on which items ran before it, in which order, or on which worker."""
        self.rng = torch.Generator().manual_seed(item_seed(self.options.seed, item))

    @classmethod
    def from_names(cls, options: PipelineOptions | None = None, **names: Any) -> "Anonymizer":
        """Assemble from component/preset names (see :func:`assemble`) and build."""
        options = options or PipelineOptions()
        return cls(assemble(**names, device=options.device), options)

    # ------------------------------------------------------------------ detection
    def detect(self, image: np.ndarray, timings: dict[str, float] | None = None) -> Detections:
        """Persons and faces of ``image`` (uint8 RGB), detected on a copy no larger than
        ``detect_max_side`` and mapped back to full resolution."""
        return self.detect_many([image], None if timings is None else [timings])[0]

    def detect_many(
        self, images: list[np.ndarray], timings: list[dict[str, float]] | None = None, turns: int = 0
    ) -> list[Detections]:
        """:meth:`detect` of several images (video frames): each detector gets them in one
        ``detect_batch`` call (one forward for detectors that batch); the ``detect`` time is
        divided evenly among ``timings`` (one dict per image). ``turns``: the detectors see
        the images turned by that many quarter turns counter-clockwise (``np.rot90``; a
        video's display rotation, so people stand upright for them); the detections are
        turned back."""
        smalls, factors = [], []
        for image in images:
            check_rgb_image(image)
            small, factor = self.detection_copy(image)
            smalls.append(np.ascontiguousarray(np.rot90(small, turns)) if turns % 4 else small)
            factors.append(factor)
        found: list[list[Detection]] = [[] for _ in images]
        start = time.perf_counter()
        with stage("detect"), self.autocast():
            for detector in (self.parts.detector, self.parts.face_detector):
                if detector is None:
                    continue
                per_image = detector.detect_batch(smalls)
                if len(per_image) != len(images):
                    raise AnonymizationError(f"the detector returned {len(per_image)} results for {len(images)} images")
                for i, detections in enumerate(per_image):
                    found[i] += detections
        for one in timings or []:
            one["detect"] = one.get("detect", 0.0) + (time.perf_counter() - start) / len(images)
        results = []
        for image, small, factor, detections in zip(images, smalls, factors, found):
            if turns % 4:
                turned_height, turned_width = small.shape[:2]
                height, width = (turned_width, turned_height) if turns % 2 else (turned_height, turned_width)
                detections = [unrotate_detection(d, turns, height, width) for d in detections]
            if factor < 1.0:
                height, width = image.shape[:2]
                detections = [scale_detection(d, factor, height, width) for d in detections]
            results.append(Detections(
                persons=[d for d in detections if d.label == "person"], faces=[d for d in detections if d.label == "face"]
            ))
        return results

    def detection_copy(self, image: np.ndarray) -> tuple[np.ndarray, float]:
        """``image`` downscaled to at most ``detect_max_side`` (or itself) and the scale factor."""
        return downscaled(image, self.options.detect_max_side)

    # ------------------------------------------------------------------ anonymization
    def anonymize(
        self,
        image: np.ndarray,
        detections: Detections | None = None,
        latent_keys: list[int] | None = None,
        faces_scanned: bool = False,
    ) -> AnonymizedImage:
        """Anonymize ``image`` (uint8 RGB ``[H, W, 3]``).

        Args:
            image: The image.
            detections: Detections to use instead of running the detectors.
            latent_keys: One integer per person (e.g. a video track id): the same key
                gives the same latent, so the same synthetic identity.
            faces_scanned: ``detections`` come from :meth:`detect` on this very image, so
                the face detector has seen all of it (always so when ``detections`` is
                ``None``): the verification pass then only looks near what was replaced.
        """
        if self.parts.generator_caps.resolution is None:
            # Any-size generators take each person at full resolution (on a 96 MP photo, hundreds of
            # MB of float inputs per person): each crop is generated as soon as it is made.
            prepared = self.prepare(image, detections, latent_keys, faces_scanned, generate_each=True)
            return self.finish(prepared, [])
        prepared = self.prepare(image, detections, latent_keys, faces_scanned)
        with stage("generate", prepared.timings):
            generated = self.generate(
                self.parts.generator, self.parts.generator_caps.latent_size, prepared.person_crops, prepared.person_keys
            )
        return self.finish(prepared, generated)

    def anonymize_many(self, items: list[FrameToAnonymize]) -> list[AnonymizedImage]:
        """:meth:`anonymize` of several images (video frames) with one generator pass over
        the crops of all of them, when the generator takes crops of one size (the realistic
        generators; ``batch_size`` crops per call). Any-size generators run per image, so
        their random draws keep the order of single-image calls. The ``generate`` time of a
        shared pass is divided among the images by their number of crops."""
        if len(items) == 1 or self.parts.generator_caps.resolution is None:
            return [self.anonymize(item.image, item.detections, item.latent_keys, item.faces_scanned) for item in items]
        prepared = [self.prepare(item.image, item.detections, item.latent_keys, item.faces_scanned) for item in items]
        crops = [crop for one in prepared for crop in one.person_crops]
        keys = [key for one in prepared for key in one.person_keys]
        start = time.perf_counter()
        with stage("generate"):
            generated = self.generate(self.parts.generator, self.parts.generator_caps.latent_size, crops, keys)
        seconds = time.perf_counter() - start
        results, first = [], 0
        for one in prepared:
            count = len(one.person_crops)
            one.timings["generate"] = seconds * count / max(1, len(crops))
            results.append(self.finish(one, generated[first : first + count]))
            first += count
        return results

    def prepare(
        self,
        image: np.ndarray,
        detections: Detections | None,
        latent_keys: list[int] | None,
        faces_scanned: bool,
        generate_each: bool = False,
    ) -> PreparedImage:
        """The stages before generation: detection (unless given), paste order, surface
        maps (``embed``) and the crops (``crop``). With ``generate_each``, each person's crop
        is also generated (``generate``) and pasted (``paste``, pass 1 of :class:`PasteBack`)
        before the next one is made: memory holds one crop's inputs and output, not every person's."""
        check_rgb_image(image)
        timings: dict[str, float] = {}
        faces_scanned = faces_scanned or detections is None
        if detections is None:
            detections = self.detect(image, timings)
        order = list(range(len(detections.persons)))
        if self.options.paste_order == "area":
            order.sort(key=lambda i: -int(detections.persons[i].full_mask().sum()))
        persons = [detections.persons[i] for i in order]
        keys = None if latent_keys is None else [latent_keys[i] for i in order]
        parts, caps = self.parts, self.parts.generator_caps
        surfaces: list[SurfaceMap] = []
        with stage("embed", timings), self.autocast():
            if parts.embedder is not None and persons:
                surfaces = parts.embedder.embed(image, persons)
                if len(surfaces) != len(persons):
                    raise AnonymizationError(f"the embedder returned {len(surfaces)} maps for {len(persons)} persons")
        prepared = PreparedImage(image, detections, persons, surfaces, timings, faces_scanned)
        aspect = PAPER_ASPECT if caps.resolution is None else caps.resolution[0] / caps.resolution[1]
        # The paper skips persons under 32x32; a generator of fixed resolution does here too,
        # and their region goes to the region generator. Any-size generators take them all.
        min_area = PAPER_MIN_AREA if caps.resolution is not None else 1
        for i, person in enumerate(persons):
            key = None if keys is None else keys[i]
            with stage("crop", timings):
                surface = surfaces[i] if surfaces and caps.surface_channels else None
                crop = prepare_person_crop(
                    image,
                    person,
                    surface,
                    caps.resolution,
                    caps.surface_channels,
                    aspect=aspect,
                    min_area=min_area,
                    index=i,
                    surface_at_crop=parts.embedder.surface_at_crop  # type: ignore[union-attr]
                    if parts.embedder_caps is not None and parts.embedder_caps.crop_surface
                    else None,
                )
                if crop is None:  # too small for the generator: anonymize its region anyway
                    prepared.region_crops.append(self.small_person_crop(image, person, i))
                    continue
            if generate_each:
                with stage("generate", timings):
                    [generated] = self.generate(parts.generator, caps.latent_size, [crop], [key])
                with stage("paste", timings):
                    prepared.paste = prepared.paste or PasteBack(image, self.options.feather)
                    prepared.paste.add(crop, generated)
                crop = crop.without_inputs()
            prepared.person_crops.append(crop)
            prepared.person_keys.append(key)
        return prepared

    def finish(self, prepared: PreparedImage, generated: list[torch.Tensor]) -> AnonymizedImage:
        """The stages after generation: paste-back, faces, the verification pass, export."""
        image, timings, person_crops = prepared.image, prepared.timings, prepared.person_crops
        region_crops = list(prepared.region_crops)
        height, width = image.shape[:2]
        with stage("paste", timings):
            if prepared.paste is not None:  # generated and pasted one by one (pass 1) in prepare
                out = prepared.paste.finish()
            else:
                out = paste_back(image, person_crops, generated, self.options.feather)
            # Regions stay box-local ((box, mask) inside the image): memory per person is its box,
            # not the image.
            replaced = np.zeros((height, width), dtype=bool)
            regions_by_person = {crop.index: crop.region_inside(height, width) for crop in person_crops}
            for region in regions_by_person.values():
                or_into(replaced, *region)
        exported_persons = []
        face_regions: list[Detection] = []
        with stage("faces", timings):
            for crop in region_crops:
                regions_by_person[crop.index] = crop.region_inside(height, width)
            covered = replaced.copy()
            for crop in region_crops:
                or_into(covered, *regions_by_person[crop.index])
            for face in merge_overlapping(prepared.detections.faces):
                # A face (nearly) inside a replaced body only gets its own uncovered pixels
                # (fail safe, no halo around a generated head); any other face gets the whole
                # head (its box grown by the margin, boxes.head_box), less what is already replaced.
                tight = face.box.clip(height, width)
                if tight.is_empty():
                    continue
                inside = covered[tight.y0 : tight.y1, tight.x0 : tight.x1].mean()
                head = head_box(tight, self.options.face_margin)
                grown = tight if inside >= 0.9 else head.clip(height, width)
                region = ~covered[grown.y0 : grown.y1, grown.x0 : grown.x1]
                if not region.any():
                    continue
                subject = whole_size(head, HEAD_ASPECT)
                region_crops.append(
                    prepare_region_crop(image, region, grown, index=-1 - len(face_regions), subject=subject)
                )
                face_regions.append(Detection(grown, face.score, label="face"))
            if region_crops:
                out = self.paste_regions(out, replaced, region_crops)
        refound = 0
        if self.options.verify and self.parts.face_detector is not None:
            with stage("verify", timings):
                out, refound = self.verify(out, replaced, face_regions, near_replaced_only=prepared.faces_scanned)
        for i, person in enumerate(prepared.persons):
            region = regions_by_person.get(i)
            box = union_box(person.box, None if region is None else region_bounds(*region))
            # The person's mask (the part inside the image) in the frame of ``box``.
            inside, local = clipped(person.box, person.full_mask(), height, width)
            mask = place_in_box(local, inside, box)
            exported_persons.append(Detection(box, person.score, mask, person.keypoints, "person"))
        detections = Detections(exported_persons, face_regions)
        return AnonymizedImage(out, replaced, detections, prepared.surfaces, timings, refound)

    def paste_regions(self, out: np.ndarray, replaced: np.ndarray, crops: list[PersonCrop]) -> np.ndarray:
        """Region-generator crops pasted into ``out``; their pixels are added to ``replaced`` (in place)."""
        results = self.generate(self.parts.region_generator, 0, crops, [None] * len(crops))
        out = paste_back(out, crops, results, 0, in_place=True)  # ``out`` is the output already
        height, width = out.shape[:2]
        for crop in crops:
            or_into(replaced, *crop.region_inside(height, width))
        return out

    def verify(
        self, out: np.ndarray, replaced: np.ndarray, face_regions: list[Detection], near_replaced_only: bool = False
    ) -> tuple[np.ndarray, int]:
        """The verification pass: faces the face detector finds in ``out`` where (almost)
        nothing was replaced are anonymized by the region path (their box grown by the face
        margin), until none is found or after :data:`VERIFY_ROUNDS` rounds.

        The detector scans the whole output, or with ``near_replaced_only`` (the first pass
        ran the same face detector on this image) only :func:`verification_window`, the
        neighbourhood of what was replaced: everywhere else the output's pixels are the
        input's, which the first pass scanned, and every face it found was replaced. What the
        pass then catches is what the changed pixels make detectable: faces cut by a replaced
        region's edge, faces a detector sees only in the new context.

        Returns:
            The image and how many faces were found again; ``replaced`` and ``face_regions``
            are updated in place.
        """
        from .audit import find_faces_left

        height, width = out.shape[:2]
        refound = 0
        for _ in range(VERIFY_ROUNDS):
            window = verification_window(replaced) if near_replaced_only else Box(0, 0, width, height)
            if window is None:  # nothing replaced: the output is the input the first pass scanned
                break
            view = (slice(window.y0, window.y1), slice(window.x0, window.x1))
            # The face detector sees the window at the first pass's scale (at most detect_max_side):
            # a 96 MP output is not scanned at full resolution.
            left = [
                Detection(face.box.shifted(window.x0, window.y0), face.score, label="face")
                for face in find_faces_left(
                    [self.parts.face_detector], np.ascontiguousarray(out[view]), replaced[view],
                    max_side=self.options.detect_max_side,
                )
            ]
            if not left:
                break
            crops = []
            for face in left:
                head = head_box(face.box.clip(height, width), max(self.options.face_margin, 0.2))
                grown = head.clip(height, width)
                region = np.ones((grown.height, grown.width), dtype=bool)
                subject = whole_size(head, HEAD_ASPECT)
                crops.append(prepare_region_crop(out, region, grown, index=-1 - len(face_regions), subject=subject))
                face_regions.append(Detection(grown, face.score, label="face"))
            out = self.paste_regions(out, replaced, crops)
            refound += len(left)
        return out, refound

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
        return prepare_region_crop(image, region, inside, index=index, subject=whole_size(box, PERSON_ASPECT))

    def latents(self, latent_size: int, keys: list[int | None]) -> torch.Tensor | None:
        """``[N, latent_size]`` latents: seeded by key where given, else drawn from the run's generator."""
        if not latent_size:
            return None
        rows = []
        for key in keys:
            source = self.rng if key is None else torch.Generator().manual_seed(self.options.seed * 1_000_003 + int(key))
            rows.append(torch.randn(int(latent_size), generator=source))
        return torch.stack(rows)

    @torch.no_grad()
    def generate(
        self, generator: Generator, latent_size: int, crops: list[PersonCrop], keys: list[int | None]
    ) -> list[torch.Tensor]:
        """Generator output per crop as uint8 levels ``[3, h, w]`` (§7.7: 0..255, what paste-back
        takes; a quarter of float32's memory); crops of one size are batched."""
        outputs: list[torch.Tensor | None] = [None] * len(crops)
        by_size: dict[tuple[int, int], list[int]] = {}
        for i, crop in enumerate(crops):
            by_size.setdefault(crop.crop.size, []).append(i)
        for indices in by_size.values():
            for start in range(0, len(indices), self.options.batch_size):
                chunk = indices[start : start + self.options.batch_size]
                batch = collate([crops[i] for i in chunk])
                batch.image, batch.mask, batch.border, batch.embedding = (
                    self.to_device(t) for t in (batch.image, batch.mask, batch.border, batch.embedding)
                )
                if batch.vertices is not None:
                    batch.vertices = self.to_device(batch.vertices)
                z = self.latents(latent_size, [keys[i] for i in chunk])
                with self.autocast():
                    result = generator.anonymize(
                        batch, z=None if z is None else self.to_device(z), truncation=self.options.truncation,
                        rng=self.rng,
                    )
                if tuple(result.shape) != tuple(batch.image.shape):
                    raise AnonymizationError(
                        f"the generator returned {tuple(result.shape)} for a batch of {tuple(batch.image.shape)}"
                    )
                result = result.float().cpu()  # one copy (and host sync) per batch, not per crop
                # Finite iff its extremes are (max and min propagate NaN): no image-sized temporary.
                if result.numel() and not torch.isfinite(torch.stack([result.amin(), result.amax()])).all():
                    raise AnonymizationError("the generator returned non-finite values")
                levels = to_uint8(result, in_place=True).to(torch.uint8)  # ``result`` is not used again
                for j, i in enumerate(chunk):
                    outputs[i] = levels[j]
        return [o for o in outputs if o is not None]


def region_bounds(box: Box, mask: np.ndarray) -> Box | None:
    """Image coordinates of the tight box of a box-local mask (``None`` when it is empty)."""
    local = mask_bounds(mask)
    if local is None:
        return None
    return local.shifted(box.x0, box.y0)
