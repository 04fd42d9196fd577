"""Cut streamed LLM text into sentences, so TTS can start on the first one at once."""

from __future__ import annotations

import re

# A sentence ends at . ! ? (or a run of them) followed by white space; abbreviations such as
# "Dr." or "St." and numbers such as "3.30" do not end one.
_END = re.compile(r"(?<=[.!?])[\"')\]]*\s+")
_ABBREVIATIONS = frozenset({"dr.", "mr.", "mrs.", "ms.", "st.", "no.", "e.g.", "i.e.", "etc.", "vs."})
# Very long clauses are cut at a comma or semicolon so the first audio is not held back.
MAX_CHARS = 160


class SentenceSplitter:
    def __init__(self) -> None:
        self._pending = ""

    def push(self, text: str) -> list[str]:
        """Add streamed text; returns the sentences it completed."""
        self._pending += text
        out: list[str] = []
        start = 0
        for match in _END.finditer(self._pending):
            candidate = self._pending[start : match.start()].strip()
            last_word = candidate.rsplit(" ", 1)[-1].lower()
            if last_word in _ABBREVIATIONS:
                continue
            if candidate:
                out.append(candidate)
            start = match.end()
        self._pending = self._pending[start:]
        if len(self._pending) > MAX_CHARS:
            cut = max(self._pending.rfind(", ", 0, MAX_CHARS), self._pending.rfind("; ", 0, MAX_CHARS))
            if cut > 0:
                out.append(self._pending[: cut + 1].strip())
                self._pending = self._pending[cut + 2 :]
        return out

    def flush(self) -> list[str]:
        rest, self._pending = self._pending.strip(), ""
        return [rest] if rest else []
