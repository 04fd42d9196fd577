"""Double-talk gate: caller audio that the agent's own echo explains is not caller speech.

A phone line returns part of what the gateway plays (hybrid and acoustic echo), typically 20 dB
or more below the original and up to a few hundred ms late. VAD alone hears that echo as the caller
speaking, and in the start boundary of an agent turn (where VAD decides) it would interrupt the
agent with its own voice. This gate is the classic Geigel comparison, per 20 ms frame: while the
agent is audible, caller audio quieter than the loudest agent audio of the last `tail` seconds by
more than `margin_db` is taken as echo. The VAD probability of chunks made only of such frames is
zeroed before segmentation; double talk (the caller at least nearly as loud as the echo source)
passes untouched. Detectors still receive the raw audio.

A fixed margin cannot serve every line: some hybrids return the agent only 6-12 dB down, and then
the echo is louder than the margin allows. So the gate also learns the line's echo path: every
second it correlates the caller line's frame levels with the agent's at lags of 0-300 ms over the
last 20 s of agent speech; when one lag explains the caller line well (the line is mostly echo), the
median level difference at that lag is the echo return loss, and a frame is echo as well when it is
no louder than the agent's level at that lag minus the return loss plus `echo_margin_db`. Caller
speech on top of the echo is louder than that and passes.
"""

from __future__ import annotations

from collections import deque

import numpy as np

from gateway.audio.frames import FRAME_SECONDS, Pcm

# Below this level (dBFS) the agent is not audible and nothing is gated.
AGENT_AUDIBLE_DB = -55.0
# Echo-path estimate: lags 0-300 ms, over the agent-active frames of the last 20 s (at least 0.8 s
# of them), every second.
MAX_LAG_FRAMES = 15
ESTIMATE_WINDOW = 20.0
ESTIMATE_EVERY = 50
ACTIVE_DB = -45.0
MIN_ACTIVE_FRAMES = 40


def frame_db(frame: Pcm) -> float:
    x = frame.astype(np.float32) / 32768.0
    return float(10.0 * np.log10(float(np.mean(x * x)) + 1e-10))


class EchoGate:
    def __init__(
        self,
        *,
        margin_db: float = 20.0,
        tail: float = 0.3,
        history: float = 1.0,
        echo_margin_db: float = 6.0,
        min_correlation: float = 0.6,
    ) -> None:
        self.margin_db = margin_db
        self.echo_margin_db = echo_margin_db
        self.min_correlation = min_correlation
        self._tail_frames = max(1, round(tail / FRAME_SECONDS))
        self._agent_db: deque[float] = deque(maxlen=self._tail_frames)
        # (frame end time, echo-explained) for the last `history` seconds
        self._frames: deque[tuple[float, bool]] = deque(maxlen=max(2, round(history / FRAME_SECONDS)))
        # frame levels for the echo-path estimate: the last ESTIMATE_WINDOW seconds
        n = round(ESTIMATE_WINDOW / FRAME_SECONDS) + MAX_LAG_FRAMES
        self._agent_levels: deque[float] = deque(maxlen=n)
        self._caller_levels: deque[float] = deque(maxlen=n)
        self._since_estimate = 0
        self._agent_heard = False
        self.echo_path: tuple[int, float] | None = None  # (lag in frames, return loss dB)

    def update(self, t_end: float, caller: Pcm, agent: Pcm) -> bool:
        """Record one frame; returns whether its caller audio is explained by echo."""
        agent_db, caller_db = frame_db(agent), frame_db(caller)
        self._agent_db.append(agent_db)
        self._agent_levels.append(agent_db)
        self._caller_levels.append(caller_db)
        self._since_estimate += 1
        self._agent_heard = self._agent_heard or agent_db > ACTIVE_DB
        if self._since_estimate >= ESTIMATE_EVERY:
            self._since_estimate = 0
            if self._agent_heard:  # nothing new to learn from a second without the agent
                self._estimate()
            self._agent_heard = False
        loudest = max(self._agent_db)
        explained = loudest > AGENT_AUDIBLE_DB and caller_db < loudest - self.margin_db
        if not explained and self.echo_path is not None:
            lag, loss = self.echo_path
            levels = self._agent_levels
            near = [levels[-1 - k] for k in range(max(0, lag - 1), lag + 2) if k < len(levels)]
            source = max(near, default=-100.0)
            explained = source > AGENT_AUDIBLE_DB and caller_db < source - loss + self.echo_margin_db
        self._frames.append((t_end, explained))
        return explained

    def _estimate(self) -> None:
        """Find the lag at which the agent's levels explain the caller line's, and its return loss
        (all lags at once: a masked correlation per row of a lagged view of the agent's levels)."""
        agent = np.asarray(self._agent_levels)
        if len(agent) <= MAX_LAG_FRAMES:
            return
        caller = np.asarray(self._caller_levels)[MAX_LAG_FRAMES:]
        # row `lag`: the agent's level `lag` frames before each caller frame
        lagged = np.lib.stride_tricks.sliding_window_view(agent, len(caller))[::-1]
        active = lagged > ACTIVE_DB
        n = active.sum(axis=1)
        if n.min() < MIN_ACTIVE_FRAMES:
            return
        a_mean = np.where(active, lagged, 0.0).sum(axis=1) / n
        c_mean = np.where(active, caller, 0.0).sum(axis=1) / n
        da = np.where(active, lagged - a_mean[:, None], 0.0)
        dc = np.where(active, caller - c_mean[:, None], 0.0)
        var_a, var_c = (da * da).sum(axis=1) / n, (dc * dc).sum(axis=1) / n
        usable = (var_a >= 1.0) & (var_c >= 1.0)
        if not usable.any():
            return
        r = np.where(usable, (da * dc).sum(axis=1) / n / np.sqrt(np.maximum(var_a * var_c, 1e-12)), -np.inf)
        lag = int(np.argmax(r))
        if r[lag] >= self.min_correlation:
            loss = float(np.median((lagged[lag] - caller)[active[lag]]))
            self.echo_path = (lag, loss)

    def explains(self, start: float, end: float) -> bool:
        """True when every frame overlapping [start, end) was echo-explained."""
        overlapping = [
            explained
            for frame_end, explained in self._frames
            if frame_end > start + 1e-9 and frame_end - FRAME_SECONDS < end - 1e-9
        ]
        return bool(overlapping) and all(overlapping)
