"""Turn-handling options: the names and defaults follow LiveKit's TurnHandlingOptions.

These are plain frozen dataclasses so the TurnEngine stays free of parsing concerns; the YAML
layer (`gateway.config`) validates operator input and builds them. Where a default differs from
the reference it says so in a comment.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

TurnDetection = Literal["vad", "stt", "model"]
InterruptionMode = Literal["vad", "adaptive"]
EndpointingMode = Literal["fixed", "dynamic"]

# Words that are pure listener cues; a transcript made only of these never becomes a user turn
# through the end-of-turn boundary rule. Lower-case, punctuation stripped.
DEFAULT_BACKCHANNEL_LEXICON: tuple[str, ...] = (
    "uh-huh", "uh", "huh", "mm-hmm", "mhm", "mm", "hmm", "mmhmm", "uhhuh", "yeah", "yep", "yes",
    "okay", "ok", "right", "sure", "alright", "i see", "got it", "cool", "nice", "great",
    "si", "sí", "ja", "oui", "d'accord", "genau", "vale", "claro", "certo", "ah", "oh",
)  # fmt: skip


@dataclass(frozen=True)
class VadOptions:
    """Silero VAD segmentation, as LiveKit's `silero.VAD.load()` parameters."""

    activation_threshold: float = 0.5
    # The reference uses activation - 0.15 for the end of speech.
    deactivation_threshold: float | None = None
    min_speech_duration: float = 0.05
    # The reference defaults to 0.55 s; the engine counts endpointing from the last voiced chunk
    # (not from this detection), so a shorter silence only makes overlap verdicts come sooner.
    min_silence_duration: float = 0.3
    prefix_padding_duration: float = 0.5
    sample_rate: int = 8000

    @property
    def end_threshold(self) -> float:
        if self.deactivation_threshold is not None:
            return self.deactivation_threshold
        return max(0.01, self.activation_threshold - 0.15)


@dataclass(frozen=True)
class BackchannelBoundary:
    """Cooldown around each agent turn: (start, end) seconds; see `InterruptionOptions`."""

    start: float = 1.0
    end: float = 3.5


@dataclass(frozen=True)
class LexicalCheckOptions:
    """Lexical evidence for adaptive barge-in (`gateway/turns/lexical.py`): while an overlap is open and
    the barge-in probability reaches `lean`, the caller's words since the onset are decoded off the
    frame path; only cue words veto an interruption, a command word confirms one (and decides as soon
    as it is heard), anything else leaves the decision to the acoustic model."""

    enabled: bool = False
    # Barge-in probability at which a decode is asked (below `threshold`, so a verdict can be ready
    # when the model crosses it).
    lean: float = 0.3
    # A held interruption (the model said yes, the verdict is not in) is decided at the latest this
    # long after the overlap's onset: a slow decode never holds it longer.
    max_delay: float = 0.6
    # A cue verdict vetoes for this long after the audio it covered; the caller still speaking after
    # that needs a new decode (asked every `recheck` seconds of new audio) to stay vetoed.
    veto_span: float = 0.5
    # A cue verdict vetoes only probabilities below this (1.0: every probability).
    veto_below: float = 1.0
    recheck: float = 0.3
    # Audio before the VAD onset included in the decode.
    preroll: float = 0.2
    # Decodes per overlap at most.
    max_checks: int = 6
    # Seconds after the onset at which every overlap is decoded once whatever the model says; only a
    # command word in it counts (an early decision for commands the model is unsure of). None: off.
    command_probe: float | None = None
    # Words that confirm an interruption (matched per word, lower case).
    commands: tuple[str, ...] = (
        "wait", "stop", "hold", "hang", "pause", "no", "nope", "sorry", "actually", "excuse", "listen",
        "hey", "cancel",
    )  # fmt: skip


@dataclass(frozen=True)
class InterruptionOptions:
    enabled: bool = True
    mode: InterruptionMode = "adaptive"
    # vad mode: voiced seconds of caller speech needed to interrupt.
    min_duration: float = 0.5
    # transcript words needed to interrupt, counted per user utterance (the reference counts the
    # agent turn's cumulative transcript). Needs an STT; ignored (with a config warning) without.
    min_words: int = 0
    # adaptive mode: barge-in probability at or above which the agent yields.
    threshold: float = 0.5
    # None disables the cooldown entirely.
    backchannel_boundary: BackchannelBoundary | None = field(default_factory=BackchannelBoundary)
    # Reference default 2.0 s; the course chapter recommends 0.6 s for a receptionist.
    false_interruption_timeout: float = 2.0
    resume_false_interruption: bool = True
    # How long the barge-in detector may take to answer before the call falls back to VAD mode.
    detector_timeout: float = 0.7
    # How often the detector is asked during an open overlap (<= 0.1 s).
    detector_interval: float = 0.1
    backchannel_lexicon: tuple[str, ...] = DEFAULT_BACKCHANNEL_LEXICON
    # A caller pause shorter than this (from the last voiced audio) keeps an overlap open, so
    # "actually, wait" or "no, hold on" is judged as one attempt, not as a backchannel first.
    overlap_max_pause: float = 0.6
    # Which barge-in detector adaptive mode uses: "auto" (the bundled ONNX model when present,
    # else "heuristic"), "onnx", "heuristic", or a "module:factory" import path.
    detector: str = "auto"
    # Lexical evidence for adaptive mode (decoded caller words): see LexicalCheckOptions.
    lexical_check: LexicalCheckOptions = field(default_factory=LexicalCheckOptions)


@dataclass(frozen=True)
class EndpointingOptions:
    mode: EndpointingMode = "fixed"
    # dynamic mode: weight of the newest observed pause in the moving average.
    dynamic_alpha: float = 0.3


@dataclass(frozen=True)
class TurnHandlingOptions:
    turn_detection: TurnDetection = "vad"
    min_endpointing_delay: float = 0.5
    max_endpointing_delay: float = 3.0
    # Calls without an STT (the end-of-turn model then hears the audio only, and is less sure) may use
    # their own range; None keeps min/max_endpointing_delay for them.
    audio_only_min_endpointing_delay: float | None = None
    audio_only_max_endpointing_delay: float | None = None
    # The early floor (turn_detection "model"): an end-of-turn probability at or above
    # `early_floor_threshold` commits after `early_floor_delay` of silence (from the end of the last
    # voiced audio) instead of the min..max wait; lower probabilities keep the min..max rule, so a
    # hesitation still waits up to max. None: no early floor. Calls without an STT use
    # `audio_only_early_floor_threshold` when set (the audio-only probability is calibrated apart).
    early_floor_threshold: float | None = None
    audio_only_early_floor_threshold: float | None = None
    early_floor_delay: float = 0.25
    endpointing: EndpointingOptions = field(default_factory=EndpointingOptions)
    # End-of-turn detector for turn_detection "model": "auto", "onnx", "heuristic", "module:factory".
    turn_detector: str = "auto"
    interruption: InterruptionOptions = field(default_factory=InterruptionOptions)
    vad: VadOptions = field(default_factory=VadOptions)
