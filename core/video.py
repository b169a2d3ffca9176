"""Reading and writing videos (PyAV).

Decoded and encoded frame by frame (memory does not grow with length); the frame
timestamps (so frame count and rate), the rotation metadata and the audio streams (copied
packet by packet, not re-encoded) are kept; video is re-encoded with H.264. The caller
writes to a temporary file and renames it when complete
(:func:`~sganon.core.atomic.atomic_output`).
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from .errors import InputError
from .images import DEFAULT_MAX_PIXELS, check_pixels

VIDEO_EXTENSIONS = frozenset(
    {".mp4", ".mov", ".m4v", ".mkv", ".avi", ".webm", ".mpg", ".mpeg", ".wmv", ".flv", ".ts", ".3gp", ".mts", ".m2ts"}
)
#: Video containers written as MP4 instead (H.264 cannot go into them); the CLI says so.
MP4_INSTEAD = frozenset({".webm"})


def is_video(path: Path) -> bool:
    return path.suffix.lower() in VIDEO_EXTENSIONS


# ---------------------------------------------------------------------------- videos
@dataclass
class VideoInfo:
    """What a video's first stream says about itself."""

    width: int
    height: int
    fps: Fraction | None
    frames: int
    duration: float | None
    rotation: int
    audio_streams: int


def open_video(path: Path) -> Any:
    import av

    path = Path(path)
    try:
        if path.stat().st_size == 0:
            raise InputError(f"{path}: the file is empty")
        container = av.open(str(path))
    except av.FFmpegError as error:
        raise InputError(f"{path}: not a video FFmpeg can read: {error}") from error
    if not container.streams.video:
        container.close()
        raise InputError(f"{path}: has no video stream")
    return container


def probe_video(path: Path) -> VideoInfo:
    """Size, rate, frame count (decoded), duration, rotation and audio of a video."""
    container = open_video(path)
    try:
        stream = container.streams.video[0]
        frames = 0
        rotation = 0
        for frame in container.decode(stream):
            if frames == 0:
                rotation = int(round(frame.rotation or 0))
            frames += 1
        duration = float(stream.duration * stream.time_base) if stream.duration else None
        return VideoInfo(
            width=stream.codec_context.width,
            height=stream.codec_context.height,
            fps=stream.average_rate,
            frames=frames,
            duration=duration,
            rotation=rotation,
            audio_streams=len(container.streams.audio),
        )
    finally:
        container.close()


class VideoTranscoder:
    """Streams a video: yields its frames as RGB arrays and writes anonymized ones back.

    Use as a context manager; :meth:`frames` yields ``(index, rgb)`` for the frames whose
    time lies in ``[start, end)`` and keeps audio packets of that span (shifted like the
    video so both start at 0); :meth:`write` encodes one anonymized frame (in order).

    Args:
        source: Input video.
        destination: Output file (written in place; callers use :func:`atomic_output`).
        start: Seconds to start at (0: the beginning).
        end: Seconds to stop at (``None``: the end).
        crf: H.264 quality (lower is better; 18 is visually lossless).
        max_pixels: Largest frame (width x height) decoded; larger videos fail before decoding.

    ``start`` and ``end`` are measured from the video stream's first timestamp; frame
    indices are absolute (counted from the stream's first frame, whatever the span). With
    ``start > 0`` and a constant frame rate, decoding begins at the key frame before
    ``start`` (a seek) and indices come from the timestamps (``time * rate``).
    Odd-sized video is written 4:2:0 with one edge row/column repeated to an even size.
    Subtitle, data and further video streams are not copied (:attr:`notices` says so);
    audio streams are copied with their language tags.

    Threads: :meth:`frames` may run on one thread (a decoder) while :meth:`write` runs on
    another (an encoder): every call into the output container holds :attr:`lock`, and the
    source frames waiting for their anonymized version sit in a deque.
    """

    def __init__(
        self,
        source: Path,
        destination: Path,
        start: float = 0.0,
        end: float | None = None,
        crf: int = 18,
        max_pixels: int = DEFAULT_MAX_PIXELS,
    ) -> None:
        if not (start >= 0) or (end is not None and not (end > start)):
            raise InputError(f"the time span must satisfy 0 <= start < end, got start={start} end={end}")
        self.source = Path(source)
        self.destination = Path(destination)
        self.start = start
        self.end = end
        self.crf = crf
        self.max_pixels = max_pixels
        self.origin = 0.0  # seconds of the video stream's first timestamp
        self.input: Any = None
        self.output: Any = None
        self.video_out: Any = None
        self.audio_map: dict[int, Any] = {}
        self.pending: deque[Any] = deque()  # decoded source frames not yet written
        self.early_audio: list[Any] = []  # audio packets read before the first frame
        self.frames_written = 0
        self.lock = threading.Lock()
        self.notices: list[str] = []
        self.seeked = False  # whether frames() started at a key frame instead of frame 0
        self.rotation = 0  # the display rotation (degrees, counter-clockwise), known from the first frame on

    def __enter__(self) -> "VideoTranscoder":
        self.input = open_video(self.source)
        stream = self.input.streams.video[0]
        check_pixels(self.source, stream.codec_context.width, stream.codec_context.height, self.max_pixels)
        if stream.start_time is not None and stream.time_base is not None:
            self.origin = float(stream.start_time * stream.time_base)
        dropped = [s for s in self.input.streams if s.type != "audio" and s.index != stream.index]
        if dropped:
            kinds = ", ".join(f"{s.type} #{s.index}" for s in dropped)
            # Subtitles and data tracks may hold names or positions: they are not anonymized, so not copied.
            self.notices.append(f"{self.source}: stream(s) not copied: {kinds} (only the first video and the audio)")
        return self

    def __exit__(self, *exc: Any) -> None:
        try:
            if exc[0] is None and self.output is not None:
                self.flush()
        finally:
            if self.output is not None:
                self.output.close()
            if self.input is not None:
                self.input.close()

    def open_output(self, first: Any) -> None:
        import av

        stream = self.input.streams.video[0]
        container_format = None if self.destination.suffix else "mp4"
        self.output = av.open(str(self.destination), mode="w", format=container_format)
        rate = stream.average_rate or stream.guessed_rate or Fraction(25)
        # 4:2:0 (what players expect) needs an even size: odd sizes get an edge row/column repeated.
        width, height = first.width + first.width % 2, first.height + first.height % 2
        self.video_out = self.output.add_stream("libx264", rate=rate)
        self.video_out.width, self.video_out.height, self.video_out.pix_fmt = width, height, "yuv420p"
        self.video_out.time_base = stream.time_base
        self.video_out.codec_context.time_base = stream.time_base
        self.video_out.options = {"crf": str(self.crf)}
        rotation = first.rotation or 0
        if rotation:
            self.video_out.set_display_rotation(rotation)
        self.rotation = int(round(rotation))
        for audio in self.input.streams.audio:
            copied = self.output.add_stream_from_template(audio)
            language = audio.metadata.get("language")
            if language:
                copied.metadata["language"] = language
            self.audio_map[audio.index] = copied

    @property
    def upright_turns(self) -> int:
        """Quarter turns (``np.rot90``) that bring a decoded frame upright as players show it
        (a phone's portrait video is stored sideways with a display rotation of -90 or 90);
        known once :meth:`frames` has yielded a frame."""
        return round(self.rotation / 90) % 4

    def in_span(self, seconds: float) -> bool:
        """Whether a timestamp is in ``[start, end)``; without a start, negative timestamps
        (e.g. AAC priming packets) belong to the beginning."""
        seconds -= self.origin
        if self.start > 0 and seconds < self.start - 1e-9:
            return False
        return self.end is None or seconds < self.end - 1e-9

    def offset(self, time_base: Fraction) -> int:
        """Timestamp shift of the output (in ``time_base`` units): a span starts at 0."""
        return int(round((self.origin + self.start) / time_base)) if self.start else 0

    def can_seek(self, video: Any) -> bool:
        """Seek only where timestamps give frame numbers: a start, a known time base and a
        constant frame rate (the average rate equals the stream's base rate)."""
        rate = video.average_rate
        return bool(self.start > 0 and video.time_base and rate and rate == video.base_rate)

    def frames(self) -> Iterator[tuple[int, np.ndarray]]:
        """Decoded frames in the time span as ``(absolute index, uint8 RGB [H, W, 3])``."""
        import av

        video = self.input.streams.video[0]
        video.thread_type = "AUTO"
        streams = [video, *self.input.streams.audio]
        rate = video.average_rate
        decoded = 0  # frames decoded since the (seek) position
        last = -1  # absolute index of the last frame decoded
        try:
            if self.can_seek(video):
                self.input.seek(int((self.origin + self.start) / video.time_base), stream=video, backward=True)
                self.seeked = True
            for packet in self.input.demux(streams):
                if packet.stream.type == "audio":
                    self.pending_audio(packet)
                    continue
                for frame in packet.decode():
                    if self.seeked:
                        index = self.index_from_time(frame, rate, last)
                        seconds = float(frame.pts * frame.time_base)
                    else:
                        index = decoded
                        seconds = (
                            float(frame.pts * frame.time_base)
                            if frame.pts is not None
                            else self.origin + index / float(rate or 25)
                        )
                    decoded += 1
                    last = index
                    if not self.in_span(seconds):
                        continue
                    if self.output is None:
                        self.open_output(frame)
                        with self.lock:
                            self.mux_pending_audio()
                    self.pending.append(frame)
                    yield index, frame.to_ndarray(format="rgb24")
        except av.FFmpegError as error:
            raise InputError(f"{self.source}: the video is corrupt: {error}") from error
        if self.output is None:
            raise InputError(f"{self.source}: no video frames in the requested span")
        announced = video.frames  # from the container's header; 0 when it does not say
        if announced and last + 1 < announced and (self.end is None or (last + 1) / float(rate or 25) < self.end):
            raise InputError(
                f"{self.source}: the video stops after frame {last} but its header announces {announced} frames "
                "(truncated?); nothing was written for it"
            )

    def index_from_time(self, frame: Any, rate: Fraction, last: int) -> int:
        """The absolute frame number of a frame decoded after a seek: its time times the rate."""
        if frame.pts is None:
            raise InputError(f"{self.source}: frames without timestamps; cannot start at --start by seeking")
        seconds = float(frame.pts * frame.time_base) - self.origin
        index = int(round(seconds * float(rate)))
        if last < 0 and seconds > self.start + 1e-9:
            raise InputError(f"{self.source}: seeking to {self.start}s landed after it ({seconds:.3f}s)")
        if index <= last or abs(seconds * float(rate) - index) > 0.01:
            raise InputError(
                f"{self.source}: frame times are not on the grid of its {rate} fps rate; "
                "cannot number frames after a seek"
            )
        return index

    def write(self, rgb: np.ndarray) -> None:
        """Encode the anonymized version of the oldest frame not yet written."""
        import av

        source = self.pending.popleft()
        height, width = rgb.shape[:2]
        if height % 2 or width % 2:
            rgb = np.pad(rgb, ((0, height % 2), (0, width % 2), (0, 0)), mode="edge")
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
        frame.pts = None if source.pts is None else source.pts - self.offset(source.time_base)
        frame.time_base = source.time_base
        with self.lock:
            for packet in self.video_out.encode(frame):
                self.output.mux(packet)
        self.frames_written += 1

    def pending_audio(self, packet: Any) -> None:
        if packet.dts is None:  # flush packets carry no data
            return
        seconds = float(packet.pts * packet.time_base) if packet.pts is not None else 0.0
        if not self.in_span(seconds):
            return
        if self.output is None:
            self.early_audio.append(packet)
            return
        with self.lock:
            self.mux_audio(packet)

    def mux_pending_audio(self) -> None:
        early, self.early_audio = self.early_audio, []
        for packet in early:
            self.mux_audio(packet)

    def mux_audio(self, packet: Any) -> None:
        shift = self.offset(packet.time_base)
        if packet.pts is not None:
            packet.pts -= shift
        packet.dts -= shift
        packet.stream = self.audio_map[packet.stream.index]
        self.output.mux(packet)

    def flush(self) -> None:
        if self.pending:
            raise InputError(f"{len(self.pending)} frames were read but not written")
        with self.lock:
            for packet in self.video_out.encode(None):
                self.output.mux(packet)
