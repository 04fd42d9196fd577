"""A small trigram language model (ARPA) from example phrases, for PocketSphinx.

Shared by the pocketsphinx STT backend (`stt.phrases`) and the barge-in lexical check
(`gateway/turns/lexical.py`), which lives below the backends in the import layers.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterable
from pathlib import Path


def write_phrase_lm(phrases: Iterable[str], path: Path) -> Path:
    """Write an ARPA trigram model of `phrases` (one sentence each, lower-cased) to `path`."""
    from pocketsphinx.lm import ArpaBoLM

    lm = ArpaBoLM(add_start=True, case="lower")
    text = "\n".join(re.sub(r"[^\w' ]+", " ", p) for p in phrases)
    lm.read_corpus(io.StringIO(text))
    lm.compute()
    with path.open("w") as f:
        lm.write(f)
    return path
