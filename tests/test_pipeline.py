"""Pipeline contracts (core/crops.py, core/anonymizer.py, core/assembly.py) with baseline generators and given detections."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sganon.core.crops import dilate, dilated_in_frame, dilation_radius, disk, paste_back, prepare_person_crop
from sganon.core.errors import AnonymizationError, ConfigError, InputError, WeightsError
from sganon.core.interfaces import Detector, Generator
from dataclasses import replace

from sganon.core.anonymizer import Anonymizer
from sganon.core.assembly import PipelineOptions, PipelineParts, assemble
from sganon.core.capabilities import GeneratorCapabilities
from sganon.core.detections import Detections
from sganon.core.registry import MODELS
from sganon.core.structures import Box, Detection


def smooth_image(height: int, width: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (height, width, 3), dtype=np.uint8)


def person(box: Box, seed: int = 0) -> Detection:
    """An elliptic person mask filling ``box``."""
    ys, xs = np.mgrid[0 : box.height, 0 : box.width]
    cy, cx = (box.height - 1) / 2, (box.width - 1) / 2
    mask = ((ys - cy) / max(box.height / 2, 1)) ** 2 + ((xs - cx) / max(box.width / 2, 1)) ** 2 <= 1
    return Detection(box, 0.9, mask)


def parts(detector=None, **names) -> PipelineParts:
    """Assembled parts without detectors (detections are given), or with ``detector``."""
    return replace(assemble(detector="none", face_detector="none", **names), detector=detector)


def anonymizer(generator: str = "pixelate", **options) -> Anonymizer:
    return Anonymizer(parts(generator=generator), PipelineOptions(**options))


@settings(max_examples=40, deadline=None)
@given(radius=st.integers(1, 45), seed=st.integers(0, 1000), density=st.sampled_from([0.97, 0.995, 0.5]))
def test_dilation_equals_a_disk_convolution(radius, seed, density):
    mask = torch.rand(40, 33, generator=torch.Generator().manual_seed(seed)) > density
    reference = F.conv2d(mask[None, None].float(), disk(radius)[None, None], padding=radius)[0, 0] > 0.5
    assert torch.equal(dilate(mask, radius), reference)
    assert not dilate(torch.zeros(5, 4, dtype=torch.bool), radius).any()


@settings(max_examples=40, deadline=None)
@given(x=st.integers(-10, 40), y=st.integers(-10, 30), radius=st.integers(0, 12), seed=st.integers(0, 1000))
def test_a_box_mask_dilated_in_the_frame_is_the_frame_dilation_of_it(x, y, radius, seed):
    """``dilated_in_frame`` (motion blobs, segmented people) = the mask pasted into the frame,
    dilated there (:func:`dilate`), and cut to the grown box inside the frame."""
    from sganon.core.structures import Box, Detection

    mask = torch.rand(9, 7, generator=torch.Generator().manual_seed(seed)).numpy() > 0.6
    box = Box(x, y, x + 7, y + 9)
    grown, local = dilated_in_frame(box, mask, radius, 30, 40)
    # In a frame with room for the growth, then cut to the real 30 x 40 frame.
    room = 60
    wide = Detection(box.shifted(room, room), 1.0, mask).mask_in_image(30 + 2 * room, 40 + 2 * room)
    if radius:
        wide = dilate(torch.from_numpy(wide), radius).numpy()
    expected = wide[room : room + 30, room : room + 40]
    found = Detection(grown, 1.0, local).mask_in_image(30, 40) if not grown.is_empty() else np.zeros((30, 40), bool)
    assert np.array_equal(found, expected)


def test_dilation_radius_follows_the_spec():
    assert dilation_radius(0) == 1
    assert dilation_radius(256 * 256) == 8
    assert dilation_radius(288 * 160) == 7


def test_native_crop_maps_back_to_exactly_the_source_box():
    image = smooth_image(90, 70)
    detection = person(Box(10, 20, 50, 85))
    crop = prepare_person_crop(image, detection, None, None, min_area=1)
    box = crop.crop.box
    assert crop.crop.size == (box.height, box.width)
    pixels = crop.image.permute(1, 2, 0).numpy()
    inside = box.clip(90, 70)
    local = pixels[inside.y0 - box.y0 : inside.y1 - box.y0, inside.x0 - box.x0 : inside.x1 - box.x0]
    assert np.array_equal(local, image[inside.y0 : inside.y1, inside.x0 : inside.x1].astype(np.float32) / 255 * 2 - 1)
    # Padding outside the image is -1 (zero uint8), as in §7.4.
    outside = np.ones((box.height, box.width), bool)
    outside[inside.y0 - box.y0 : inside.y1 - box.y0, inside.x0 - box.x0 : inside.x1 - box.x0] = False
    assert (pixels[outside] == -1).all()


RESIZED_CROP = prepare_person_crop(smooth_image(120, 100), person(Box(30, 10, 70, 110)), None, (288, 160)).crop


@settings(max_examples=30, deadline=None)
@given(y=st.floats(0, 288), x=st.floats(0, 160))
def test_resized_crop_coordinates_round_trip(y, x):
    crop = RESIZED_CROP
    sy, sx = crop.crop_to_source(y, x)
    back = crop.source_to_crop(sy, sx)
    assert back == pytest.approx((y, x), abs=1e-9)
    assert crop.box.y0 <= sy <= crop.box.y1 and crop.box.x0 <= sx <= crop.box.x1


def test_generator_masks_are_disjoint_and_cover_the_crop():
    image = smooth_image(120, 100)
    crop = prepare_person_crop(image, person(Box(30, 10, 70, 110)), None, (288, 160))
    surface = 1 - crop.mask - crop.border
    assert ((surface == 0) | (surface == 1)).all()
    assert surface.sum() > 0 and crop.border.sum() > 0
    assert crop.region[crop.person].all()


@st.composite
def scenes(draw):
    height, width = draw(st.integers(40, 96)), draw(st.integers(40, 96))
    persons = []
    for _ in range(draw(st.integers(0, 3))):
        x0, y0 = draw(st.integers(-10, width - 4)), draw(st.integers(-10, height - 4))
        w, h = draw(st.integers(4, 60)), draw(st.integers(4, 80))
        box = Box(x0, y0, x0 + w, y0 + h).clip(height, width)
        if not box.is_empty():
            persons.append(person(box))
    faces = []
    for _ in range(draw(st.integers(0, 2))):
        x0, y0 = draw(st.integers(0, width - 2)), draw(st.integers(0, height - 2))
        box = Box(x0, y0, x0 + draw(st.integers(2, 20)), y0 + draw(st.integers(2, 20))).clip(height, width)
        faces.append(Detection(box, 0.8, label="face"))
    return smooth_image(height, width, draw(st.integers(0, 99))), Detections(persons, faces)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scene=scenes(), generator=st.sampled_from(["pixelate", "blur", "mask-out"]), feather=st.sampled_from([0, 3]))
def test_pixels_outside_the_exported_regions_never_change(scene, generator, feather):
    image, detections = scene
    result = anonymizer(generator, feather=feather).anonymize(image, detections)
    assert result.image.shape == image.shape and result.image.dtype == np.uint8
    assert np.array_equal(result.image[~result.replaced], image[~result.replaced])
    inside_boxes = np.zeros(image.shape[:2], bool)
    for found in result.detections.persons + result.detections.faces:
        inside_boxes[found.box.y0 : found.box.y1, found.box.x0 : found.box.x1] = True
    assert not (result.replaced & ~inside_boxes).any(), "a replaced pixel lies outside every exported box"
    # Every person pixel and every face box is replaced (nothing skipped, however small).
    for given_person in detections.persons:
        assert result.replaced[given_person.mask_in_image(*image.shape[:2])].all()
    for face in detections.faces:
        assert result.replaced[face.box.y0 : face.box.y1, face.box.x0 : face.box.x1].all()


def test_persons_are_actually_changed_and_the_background_is_not():
    image = smooth_image(120, 100, seed=3)
    detections = Detections([person(Box(20, 10, 70, 110))])
    result = anonymizer("mask-out").anonymize(image, detections)
    inside = detections.persons[0].mask_in_image(120, 100)
    assert (result.image[inside] == 0).all()  # mask-out black
    assert np.array_equal(result.image[~result.replaced], image[~result.replaced])


def test_the_same_seed_gives_the_same_output_and_another_seed_differs():
    image = smooth_image(80, 80, seed=1)
    detections = Detections([person(Box(10, 5, 60, 78))])

    def make(seed: int):
        return Anonymizer(parts(preset="baseline.mask-noise"), PipelineOptions(seed=seed)).anonymize(image, detections)

    assert np.array_equal(make(1).image, make(1).image)
    assert not np.array_equal(make(1).image, make(2).image)


def test_larger_person_keeps_its_pixels_where_people_overlap():
    image = smooth_image(100, 100, seed=4)
    big = person(Box(10, 10, 80, 98))
    small = person(Box(40, 30, 75, 90))
    crops = [prepare_person_crop(image, d, None, None, min_area=1, index=i) for i, d in enumerate([big, small])]
    colours = [torch.full_like(c.image, value) for c, value in zip(crops, (-1.0, 1.0))]  # big black, small white
    out = paste_back(image, crops, colours)
    both = big.mask_in_image(100, 100) & small.mask_in_image(100, 100)
    assert both.any() and (out[both] == 0).all()


def test_detections_round_trip_through_json():
    detections = Detections([person(Box(5, 6, 30, 50))], [Detection(Box(1, 2, 9, 12), 0.7, label="face")])
    again = Detections.from_json(detections.to_json(60, 40), 60, 40)
    assert again.persons[0].box == Box(5, 6, 30, 50)
    assert np.array_equal(again.persons[0].full_mask(), detections.persons[0].full_mask())
    assert again.faces[0].box == Box(1, 2, 9, 12)
    with pytest.raises(InputError):
        Detections.from_json(detections.to_json(60, 40), 50, 40)  # mask of another image size


def test_large_images_are_detected_on_a_downscaled_copy():
    seen = []

    class RecordingDetector(Detector):
        labels = ("person",)

        def detect(self, image):
            seen.append(image.shape)
            h, w = image.shape[:2]
            return [person(Box(w // 4, h // 4, w // 2, h))]

    pipeline = Anonymizer(parts(RecordingDetector(), generator="mask-out"), PipelineOptions(detect_max_side=100))
    image = smooth_image(300, 400)
    result = pipeline.anonymize(image)
    height, width = seen[0][:2]
    assert (height - 1) * (width - 1) <= 100 * 100 * 2 / 3 and width / height == pytest.approx(400 / 300, rel=0.03)
    assert result.image.shape == image.shape
    # Found at a quarter to a half of the copy's width, so x 100..200 here (the exported box also
    # holds the dilation ring around the mask).
    exported = result.detections.persons[0]
    assert 90 <= exported.box.x0 <= 100 and 200 <= exported.box.x1 <= 210
    assert result.replaced.sum() > 0.9 * result.detections.persons[0].full_mask().sum()


def test_a_failing_stage_raises_an_anonymization_error():
    class BrokenDetector(Detector):
        labels = ("person",)

        def detect(self, image):
            raise RuntimeError("model exploded")

    with pytest.raises(AnonymizationError, match="detect stage failed"):
        Anonymizer(parts(BrokenDetector(), generator="pixelate")).anonymize(smooth_image(30, 30))


def test_bad_images_are_refused():
    with pytest.raises(InputError):
        anonymizer().anonymize(np.zeros((10, 10), np.uint8), Detections())
    with pytest.raises(InputError):
        anonymizer().anonymize(np.zeros((0, 10, 3), np.uint8), Detections())


class UntrainedGenerator(Generator):
    """A stand-in trainable generator with no preset and no weights (registered only in this test)."""

    name = "test-untrained"
    description = "test stand-in"

    @classmethod
    def capabilities(cls, args):
        return GeneratorCapabilities(resolution=(32, 16), realistic=True, trainable=True)

    def anonymize(self, batch, z=None, truncation=None, rng=None):
        return batch.image


def test_an_explicit_trainable_generator_without_weights_is_an_error_not_a_downgrade():
    MODELS.register_module(module=UntrainedGenerator)
    try:
        with pytest.raises(WeightsError, match="needs trained weights"):
            assemble(generator="test-untrained")
    finally:
        MODELS.module_dict.pop("UntrainedGenerator")


def test_the_default_says_when_the_realistic_generator_is_not_used():
    chosen = assemble(detector="none", face_detector="none")
    if chosen.realistic:
        assert chosen.notice == ""
    else:
        assert "NOT the realistic generator" in chosen.notice and "sganon weights import" in chosen.notice


class FixedSizeGenerator(Generator):
    """A stand-in generator of fixed resolution that takes the bones surface map (test only):
    it records its inputs and paints unknown pixels white."""

    name = "test-fixed-size"
    description = "test stand-in"
    seen: list = []

    def __init__(self) -> None:
        super().__init__()

    @classmethod
    def capabilities(cls, args):
        return GeneratorCapabilities(resolution=(64, 32), surface_channels=18, latent_size=4)

    def anonymize(self, batch, z=None, truncation=None, rng=None):
        FixedSizeGenerator.seen.append((batch, z))
        return torch.where(batch.mask > 0.5, batch.image, torch.ones_like(batch.image))


def test_fixed_resolution_generators_get_resized_crops_with_surface_maps():
    from tests.test_offline import standing_keypoints

    MODELS.register_module(module=FixedSizeGenerator)
    try:
        chosen = parts(generator="test-fixed-size", embedder="bones")
        image = smooth_image(200, 160, seed=8)
        mask = np.zeros((180, 100), bool)
        mask[5:178, 25:75] = True
        given = Detection(Box(30, 10, 130, 190), 0.9, mask, standing_keypoints(30, 10))
        FixedSizeGenerator.seen.clear()
        pipeline = Anonymizer(chosen, PipelineOptions(seed=3))
        result = pipeline.anonymize(image, Detections([given]), latent_keys=[42])
        batch, z = FixedSizeGenerator.seen[0]
        assert batch.image.shape == (1, 3, 64, 32) and batch.embedding.shape == (1, 18, 64, 32)
        surface = batch.surface_mask
        assert surface.sum() > 0 and (batch.embedding * (1 - surface)).abs().sum() == 0
        assert np.array_equal(result.image[~result.replaced], image[~result.replaced])
        person_pixels = given.mask_in_image(200, 160)
        assert result.replaced[person_pixels].all()
        interior = ~dilate(torch.from_numpy(~person_pixels), 6).numpy()  # away from the resampled edge
        assert interior.sum() > 1000 and (result.image[interior] == 255).all()
        # The same track key gives the same latent, another key another one.
        again = pipeline.latents(chosen.generator_caps.latent_size, [42, 43])
        assert torch.equal(again[0], z[0]) and not torch.equal(again[1], z[0])
    finally:
        MODELS.module_dict.pop("FixedSizeGenerator")


def test_the_realistic_path_wires_vsam_and_cse_together():
    """The vsam generator with cse surfaces and vertex ids (small random-weight models: this
    checks the wiring and the contracts, not the realism)."""
    from sganon.core.components import build_component, component_class
    torch.manual_seed(0)  # random weights: some draws give a surface with no valid pixel
    vsam = component_class("generator", "vsam")
    generator = build_component("generator", "vsam", "tiny").eval()
    embedder = build_component("embedder", "cse", "tiny")
    cse = component_class("embedder", "cse")
    chosen = PipelineParts(
        generator, "vsam (tiny, random)", vsam.capabilities(vsam.default_args("tiny")),
        build_component("generator", "pixelate"), embedder=embedder,
        embedder_caps=cse.capabilities(cse.default_args("tiny")),
    )
    image = smooth_image(200, 160, seed=2)
    mask = np.zeros((150, 80), bool)
    mask[10:140, 10:70] = True
    given = Detections([Detection(Box(40, 20, 120, 170), 0.9, mask)])
    first = Anonymizer(chosen, PipelineOptions(seed=1)).anonymize(image, given, latent_keys=[3])
    assert len(first.surfaces) == 1 and first.surfaces[0].vertices is not None
    assert first.replaced[given.persons[0].mask_in_image(200, 160)].all()
    assert np.array_equal(first.image[~first.replaced], image[~first.replaced])
    assert (first.image[first.replaced] != image[first.replaced]).any()
    # Under bf16 autocast (CPU) the same pixels are replaced and only the generated ones move.
    low = Anonymizer(chosen, PipelineOptions(seed=1, precision="bf16")).anonymize(image, given, latent_keys=[3])
    assert np.array_equal(low.replaced, first.replaced)
    assert np.array_equal(low.image[~low.replaced], image[~low.replaced])
    # DensePose ran in bf16, so a few pixels' embeddings land nearer another vertex; most do not.
    valid = first.surfaces[0].valid
    assert valid.any()
    assert (low.surfaces[0].vertices[valid] == first.surfaces[0].vertices[valid]).mean() > 0.9


def test_anonymize_many_generates_the_crops_of_several_frames_in_one_pass():
    """A fixed-size generator gets the crops of all frames in one batch; each frame's result is
    that of anonymize() on it alone (same latents by key, same regions)."""
    from sganon.core.anonymizer import FrameToAnonymize
    from sganon.core.components import build_component, component_class

    vsam = component_class("generator", "vsam")
    generator = build_component("generator", "vsam", "tiny").eval()
    calls = []
    original = generator.anonymize

    def counting(batch, *args, **kwargs):
        calls.append(batch.image.shape[0])
        return original(batch, *args, **kwargs)

    generator.anonymize = counting
    cse = component_class("embedder", "cse")
    chosen = PipelineParts(
        generator, "vsam (tiny, random)", vsam.capabilities(vsam.default_args("tiny")),
        build_component("generator", "pixelate"), embedder=build_component("embedder", "cse", "tiny"),
        embedder_caps=cse.capabilities(cse.default_args("tiny")),
    )
    pipeline = Anonymizer(chosen, PipelineOptions(seed=1, verify=False))
    frames = [smooth_image(200, 160, seed=s) for s in (3, 4, 5)]
    mask = np.zeros((150, 80), bool)
    mask[10:140, 10:70] = True
    given = Detections([Detection(Box(40, 20, 120, 170), 0.9, mask)])
    items = [FrameToAnonymize(frame, given, [7]) for frame in frames]
    together = pipeline.anonymize_many(items)
    assert calls == [3]
    for frame, result in zip(frames, together):
        alone = pipeline.anonymize(frame, given, [7])
        assert np.array_equal(alone.replaced, result.replaced)
        assert np.abs(alone.image.astype(int) - result.image.astype(int)).max() <= 1
        assert result.timings["generate"] >= 0


def test_precision_is_checked_and_the_vertex_search_ignores_autocast():
    from sganon.core.precision import model_autocast
    from sganon.plugins.cse.anonymize import closest_vertices

    with pytest.raises(ConfigError, match="precision"):
        PipelineOptions(precision="fp8")
    generator = torch.Generator().manual_seed(0)
    table = F.normalize(torch.randn(500, 16, generator=generator), dim=1)
    pixels = torch.randn(300, 16, generator=generator)
    expected = closest_vertices(pixels, table)
    with model_autocast("bf16", "cpu"):
        assert torch.equal(closest_vertices(pixels, table), expected)


def test_every_assembled_component_receives_the_requested_device():
    """The assembly moves each part to --device (checked on this CPU machine with the meta device)."""
    from sganon.core.assembly import to_device
    from sganon.core.components import build_component

    chosen = replace(
        assemble(generator="pixelate", detector="none", face_detector="none", visualize=True),
        detector=build_component("detector", "offline"),
        face_detector=build_component("detector", "offline-face"),
    )
    moved = to_device(chosen, "meta")
    for component in (moved.detector, moved.face_detector, moved.embedder):
        assert component.device == torch.device("meta")
    for module in (moved.generator, moved.region_generator):
        assert all(t.device.type == "meta" for t in [*module.parameters(), *module.buffers()])


class MarkerFaceDetector(Detector):
    """A face detector that finds the pure-white blocks of an image (by content, so it also
    works on the crops the verification pass hands it) and records the sizes it was shown."""

    labels = ("face",)

    def __init__(self) -> None:
        self.shapes: list[tuple[int, int]] = []

    def detect(self, image):
        from sganon.core.boxes import mask_bounds

        self.shapes.append(image.shape[:2])
        box = mask_bounds((image == 255).all(axis=2))
        return [] if box is None else [Detection(box, 0.9, label="face")]


def marked_image() -> np.ndarray:
    image = smooth_image(80, 90, seed=6)
    image[10:40, 20:44] = 255  # the "face"
    return image


def test_the_verification_pass_anonymizes_faces_the_given_detections_missed():
    """With given detections the face detector never saw the image: the verification pass
    scans the whole output, and a face it finds is anonymized by the region path, counted
    and exported."""
    image = marked_image()
    chosen = replace(assemble(generator="pixelate", detector="none", face_detector="none"), face_detector=MarkerFaceDetector())
    result = Anonymizer(chosen, PipelineOptions(verify=True)).anonymize(image, Detections([], []))
    assert result.refound >= 1 and result.replaced[10:40, 20:44].all()
    assert chosen.face_detector.shapes[0] == (80, 90)
    assert any(face.box.intersect(Box(20, 10, 44, 40)).area == 24 * 30 for face in result.detections.faces)
    assert np.array_equal(result.image[~result.replaced], image[~result.replaced])
    unverified = Anonymizer(chosen, PipelineOptions(verify=False)).anonymize(image, Detections([], []))
    assert unverified.refound == 0 and np.array_equal(unverified.image, image)


def test_after_its_own_scan_the_verification_pass_looks_near_what_was_replaced():
    """When the detectors ran on the image (no detections given), the first pass found the face;
    the verification pass then shows the detector only the neighbourhood of the replaced pixels."""
    image = np.concatenate([marked_image(), smooth_image(80, 400, seed=7)], axis=1)  # 80 x 490
    detector = MarkerFaceDetector()
    chosen = replace(assemble(generator="pixelate", detector="none", face_detector="none"), face_detector=detector)
    result = Anonymizer(chosen, PipelineOptions(verify=True)).anonymize(image)
    assert result.refound == 0 and result.replaced[10:40, 20:44].all()
    first, *verification = detector.shapes
    assert first == (80, 490) and verification and all(width < 490 for _, width in verification)


@settings(max_examples=60, deadline=None)
@given(st.integers(8, 120), st.integers(8, 120), st.data())
def test_the_verification_window_holds_every_replaced_pixel_with_a_margin(height, width, data):
    from sganon.core.anonymizer import verification_window

    replaced = np.zeros((height, width), bool)
    assert verification_window(replaced) is None
    y0, x0 = data.draw(st.integers(0, height - 1)), data.draw(st.integers(0, width - 1))
    y1, x1 = data.draw(st.integers(y0 + 1, height)), data.draw(st.integers(x0 + 1, width))
    replaced[y0:y1, x0:x1] = True
    window = verification_window(replaced, min_margin=4)
    assert window == window.clip(height, width)
    assert window.x0 <= max(0, x0 - 4) and window.y0 <= max(0, y0 - 4)
    assert window.x1 >= min(width, x1 + 4) and window.y1 >= min(height, y1 + 4)
    if window.area > 0.5 * height * width:
        assert window == Box(0, 0, width, height)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    boxes=st.lists(
        st.tuples(st.integers(0, 90), st.integers(0, 70), st.integers(12, 60), st.integers(12, 50)), min_size=1, max_size=4
    ),
    feather=st.integers(0, 3),
    # Not mask-noise: with crops generated one by one, its random draws follow the paste order;
    # all at once, crops of one size shared a draw (the same pixels only when such crops are adjacent).
    preset=st.sampled_from(["baseline.pixelate-8", "baseline.mask-black", "baseline.blur"]),
)
def test_generating_each_crop_as_it_is_made_changes_no_pixel(boxes, feather, preset):
    """Any-size generators take each person at full resolution, so :meth:`Anonymizer.anonymize`
    generates and pastes each crop before making the next one (issue 21: bounded memory on huge
    photos). The result is the one of making every crop first, generating all, pasting all."""
    rng = np.random.default_rng(len(boxes) * 7 + feather)
    image = rng.integers(0, 256, (120, 150, 3), dtype=np.uint8)
    persons = []
    for x, y, w, h in boxes:
        mask = np.zeros((h, w), bool)
        mask[h // 6 : h - h // 6, w // 5 : w - w // 5] = True
        persons.append(Detection(Box(x, y, x + w, y + h), 0.9, mask))
    parts = assemble(preset=preset, detector="none", face_detector="none", detections_given=True)
    anonymizer = Anonymizer(parts, PipelineOptions(feather=feather, verify=False))
    anonymizer.reseed("a")
    streamed = anonymizer.anonymize(image.copy(), Detections(persons))
    anonymizer.reseed("a")
    prepared = anonymizer.prepare(image.copy(), Detections(persons), None, True)
    generated = anonymizer.generate(parts.generator, 0, prepared.person_crops, prepared.person_keys)
    batched = anonymizer.finish(prepared, generated)
    assert np.array_equal(streamed.image, batched.image)
    assert np.array_equal(streamed.replaced, batched.replaced)
