"""Phrases and voices of the barge-in corpus, with the held-out split.

Held-out phrases never appear in training; held-out voices are espeak-ng (language voice, variant)
pairs whose base voice AND variant are both unseen in training. The held-out voices are split again
into a validation half (model selection) and a test half (scenario WAVs for `gateway eval-bargein`).
"""

from __future__ import annotations

from dataclasses import dataclass

# (text, espeak language voice)
Phrase = tuple[str, str]

INTERRUPTION_TRAIN: tuple[Phrase, ...] = (
    ("wait", "en"), ("stop", "en"), ("no, hold on", "en"), ("actually, wait", "en"),
    ("hold on a second", "en"), ("sorry, can I stop you there", "en"), ("no no no", "en"),
    ("excuse me", "en"), ("that's not what I asked", "en"), ("I need to change my appointment", "en"),
    ("can you repeat that", "en"), ("hang on", "en"), ("stop, stop", "en"),
    ("I already told you that", "en"), ("could I speak to a person please", "en"),
    ("what time did you say", "en"), ("no, I meant Tuesday", "en"), ("sorry, one question", "en"),
    ("let me interrupt you", "en"), ("I don't need that", "en"), ("can you slow down", "en"),
    ("that is wrong", "en"), ("I want to cancel", "en"), ("just a moment", "en"),
    ("yes, but what about the price", "en"), ("okay but I need it tomorrow", "en"),
    ("the problem is my insurance", "en"), ("please wait", "en"), ("listen to me", "en"),
    ("I have a question about my bill", "en"), ("how much does it cost", "en"),
    ("operator", "en"), ("representative please", "en"), ("no, that's wrong", "en"),
    ("espera, espera", "es"), ("no, perdón, un momento", "es"), ("quiero cancelar la cita", "es"),
    ("attendez", "fr"), ("non, attendez une seconde", "fr"), ("je voudrais parler à quelqu'un", "fr"),
    ("warten Sie bitte", "de"), ("moment mal, nein", "de"), ("ich habe eine Frage", "de"),
    ("aspetta un attimo", "it"), ("no, scusi", "it"), ("espera aí", "pt"), ("não, não é isso", "pt"),
    ("halt", "en"), ("no", "en"), ("no wait", "en"), ("wait wait", "en"), ("stop talking", "en"),
    ("one second", "en"), ("hey", "en"), ("sorry", "en"), ("hold up", "en"), ("never mind", "en"),
    ("that's enough", "en"), ("I have to go", "en"), ("go back", "en"), ("what", "en"),
    ("can I say something", "en"), ("that's not my name", "en"), ("I said Monday", "en"),
    ("do you have anything earlier", "en"), ("is there parking", "en"), ("my number changed", "en"),
    ("basta", "es"), ("oiga, un momento", "es"), ("stop, arrêtez", "fr"), ("pardon, excusez-moi", "fr"),
    ("nein, stopp", "de"), ("Entschuldigung", "de"), ("basta così", "it"), ("para, por favor", "pt"),
)  # fmt: skip

INTERRUPTION_HELDOUT: tuple[Phrase, ...] = (
    ("stop please", "en"), ("wait a minute", "en"), ("no, hold on, that's not right", "en"),
    ("actually, I need to ask something", "en"), ("sorry to cut in", "en"), ("pause", "en"),
    ("I think you misunderstood me", "en"), ("can I reschedule for Friday", "en"),
    ("hold it", "en"), ("nope, that's not it", "en"), ("I'd like to talk to someone", "en"),
    ("un momento por favor", "es"), ("arrêtez, s'il vous plaît", "fr"), ("halt, stopp", "de"),
)  # fmt: skip

BACKCHANNEL_TRAIN: tuple[Phrase, ...] = (
    ("uh-huh", "en"), ("mm-hmm", "en"), ("yeah", "en"), ("okay", "en"), ("right", "en"),
    ("I see", "en"), ("yep", "en"), ("sure", "en"), ("mhm", "en"), ("uh huh", "en"), ("yes", "en"),
    ("oh okay", "en"), ("alright", "en"), ("hmm", "en"), ("yeah yeah", "en"), ("got it", "en"),
    ("sí", "es"), ("vale", "es"), ("ajá", "es"), ("claro", "es"),
    ("oui", "fr"), ("d'accord", "fr"), ("ah bon", "fr"),
    ("ja", "de"), ("genau", "de"), ("achso", "de"),
    ("sì", "it"), ("certo", "it"), ("sim", "pt"), ("tá", "pt"),
    ("okay okay", "en"), ("yes yes", "en"), ("uh", "en"), ("oh", "en"), ("oh right", "en"),
    ("sure sure", "en"), ("mm mm", "en"), ("ah okay", "en"), ("yeah right", "en"), ("of course", "en"),
    ("true", "en"), ("oh yeah", "en"), ("perfect", "en"), ("uh-huh uh-huh", "en"), ("mhm mhm", "en"),
    ("sí sí", "es"), ("ya", "es"), ("oui oui", "fr"), ("ouais", "fr"), ("ja ja", "de"), ("stimmt", "de"),
    ("sì sì", "it"), ("sim sim", "pt"),
    ("cool", "en"), ("ah", "en"), ("mm", "en"), ("exactly", "en"), ("uh-hum", "en"), ("great", "en"),
    ("nice", "en"), ("alright alright", "en"), ("claro claro", "es"), ("bien", "fr"), ("gut", "de"),
    ("bene", "it"), ("bom", "pt"), ("uhum", "pt"),
)  # fmt: skip

# Listener cues are a closed class (see DEFAULT_BACKCHANNEL_LEXICON in gateway/turns/options.py): every
# cue *token* is in training, and the held-out backchannel phrases are new combinations and realisations
# of them that training never contains (the generator below refuses them).
BACKCHANNEL_HELDOUT: tuple[Phrase, ...] = (
    ("right right", "en"), ("yeah yeah yeah", "en"), ("okay sure", "en"), ("mm okay", "en"),
    ("oh I see", "en"), ("cool cool", "en"), ("uh-huh yeah", "en"), ("exactly exactly", "en"),
    ("vale vale", "es"), ("sí claro", "es"), ("genau genau", "de"), ("ah oui", "fr"),
    ("oui d'accord", "fr"), ("va bene", "it"), ("certo certo", "it"), ("tá bom", "pt"),
)  # fmt: skip

# The agent's side (a receptionist); the agent speaks with its own TTS voice.
AGENT_TRAIN: tuple[str, ...] = (
    "Thank you for calling Bright Smile Dental, how can I help you today?",
    "We have openings on Monday at nine thirty and on Wednesday afternoon at two fifteen.",
    "Your appointment is confirmed for next Thursday at eleven in the morning with doctor Patel.",
    "Please bring your insurance card and a photo identification to your first visit.",
    "The cleaning usually takes about forty five minutes and costs ninety dollars without insurance.",
    "I can also add you to the waiting list in case an earlier slot becomes available.",
    "Our office is open from eight to six on weekdays and from nine to one on Saturdays.",
    "Let me check the schedule for you, this will only take a moment.",
    "If you need to cancel, please let us know at least twenty four hours in advance.",
    "We accept most major insurance plans, including Delta Dental and Cigna.",
)
AGENT_HELDOUT: tuple[str, ...] = (
    "I found an opening tomorrow at three o'clock, would that work for you?",
    "The parking garage is right behind the building, and the first hour is free.",
    "Doctor Nguyen specialises in orthodontics and sees patients on Tuesdays and Fridays.",
    "I will send a confirmation text message to the number you called from.",
)

# espeak-ng base voices per language key; held-out bases are never used for training speech.
BASES_TRAIN: dict[str, tuple[str, ...]] = {
    "en": ("en-us", "en-gb", "en-gb-scotland", "en-gb-x-gbclan"),
    "es": ("es",), "fr": ("fr-fr",), "de": ("de",), "it": ("it",), "pt": ("pt",),
}  # fmt: skip
BASES_HELDOUT: dict[str, tuple[str, ...]] = {
    "en": ("en-us-nyc", "en-gb-x-rp", "en-029", "en-gb-x-gbcwmd"),
    "es": ("es-419",), "fr": ("fr-be",), "de": ("de",), "it": ("it",), "pt": ("pt-br",),
}  # fmt: skip
VARIANTS_TRAIN: tuple[str, ...] = (
    "", "m1", "m2", "m3", "m5", "f1", "f2", "f3", "klatt", "klatt3", "Andy", "Annie", "anika", "Michael",
    "Alicia", "rob", "steph", "paul", "edward", "linda", "m7", "m8", "klatt5", "Denis", "Diogo", "Gene",
    "Hugo", "Jacky", "Lee", "Marco", "Mario", "Mike", "adam", "antonio", "aunty", "benjamin", "boris",
    "caleb", "david", "ed", "gustave", "iven", "iven3", "marcelo", "michel", "miguel", "norbert", "pablo",
    "pedro", "quincy", "robert", "sandro", "shelby", "travis", "victor", "zac", "grandma", "grandpa",
)  # fmt: skip
# Held-out variants, split into validation and test halves.
VARIANTS_VAL: tuple[str, ...] = ("m4", "f4", "klatt2", "Alex", "belinda")
VARIANTS_TEST: tuple[str, ...] = ("m6", "f5", "klatt4", "john", "Andrea", "steph2", "max")
# The agent's TTS voices (the operator's choice; echo of these is what the caller channel carries).
AGENT_VOICES_TRAIN: tuple[str, ...] = ("en-us", "en-us+f3", "en-gb+m3", "en-us+klatt", "en-gb+f2")
AGENT_VOICES_HELDOUT: tuple[str, ...] = ("en-us+f4", "en-gb-x-rp+m2", "en-us+Annie")


@dataclass(frozen=True)
class Split:
    name: str
    interruptions: tuple[Phrase, ...]
    backchannels: tuple[Phrase, ...]
    agent_lines: tuple[str, ...]
    agent_voices: tuple[str, ...]
    bases: dict[str, tuple[str, ...]]
    variants: tuple[str, ...]

    def voice(self, lang: str, base_index: int, variant_index: int) -> str:
        bases = self.bases[lang]
        base = bases[base_index % len(bases)]
        variant = self.variants[variant_index % len(self.variants)]
        return f"{base}+{variant}" if variant else base


TRAIN = Split(
    "train",
    INTERRUPTION_TRAIN,
    BACKCHANNEL_TRAIN,
    AGENT_TRAIN,
    AGENT_VOICES_TRAIN,
    BASES_TRAIN,
    VARIANTS_TRAIN,
)
VAL = Split(
    "val",
    INTERRUPTION_HELDOUT,
    BACKCHANNEL_HELDOUT,
    AGENT_HELDOUT,
    AGENT_VOICES_HELDOUT,
    BASES_HELDOUT,
    VARIANTS_VAL,
)
TEST = Split(
    "test",
    INTERRUPTION_HELDOUT,
    BACKCHANNEL_HELDOUT,
    AGENT_HELDOUT,
    AGENT_VOICES_HELDOUT,
    BASES_HELDOUT,
    VARIANTS_TEST,
)
SPLITS: dict[str, Split] = {s.name: s for s in (TRAIN, VAL, TEST)}


# -- generated training utterances ---------------------------------------------------------------------
#
# Backchannels are a small closed class; a caller saying *anything else* while the agent talks is taking
# the floor ("Tuesday", "my insurance changed"). So besides the phrases above, training interruptions
# include random word sequences over an open vocabulary (never a lone backchannel word), and training
# backchannels include random repetitions/pairs of the training backchannel tokens (never a held-out
# phrase). This teaches "is it a listener cue?" instead of memorising a list of commands.

_BACKCHANNEL_WORDS = frozenset(
    w.strip(",.").lower() for text, _ in BACKCHANNEL_TRAIN + BACKCHANNEL_HELDOUT for w in text.split()
)
_HELDOUT_TEXTS = frozenset(t.lower() for t, _ in INTERRUPTION_HELDOUT + BACKCHANNEL_HELDOUT)


def _words(texts: tuple[str, ...]) -> tuple[str, ...]:
    out = {w.strip(",.?!").lower() for t in texts for w in t.split()}
    return tuple(sorted(w for w in out if w))


OPEN_VOCABULARY: dict[str, tuple[str, ...]] = {
    "en": _words(tuple(t for t, lang in INTERRUPTION_TRAIN if lang == "en") + AGENT_TRAIN),
    **{
        lang: _words(tuple(t for t, lg in INTERRUPTION_TRAIN if lg == lang))
        for lang in ("es", "fr", "de", "it", "pt")
    },
}
BACKCHANNEL_TOKENS: dict[str, tuple[str, ...]] = {
    lang: tuple(sorted({t for t, lg in BACKCHANNEL_TRAIN if lg == lang and " " not in t}))
    for lang in ("en", "es", "fr", "de", "it", "pt")
}


def random_interruption(rng: object, lang: str) -> str:
    """A random word sequence (1-8 words) that is not a lone backchannel word nor a held-out phrase."""
    import numpy as np

    assert isinstance(rng, np.random.Generator)
    vocab = OPEN_VOCABULARY[lang]
    while True:
        n = int(rng.choice([1, 1, 2, 2, 3, 3, 4, 5, 6, 8]))
        text = " ".join(str(rng.choice(vocab)) for _ in range(n))
        if (n > 1 or text not in _BACKCHANNEL_WORDS) and text not in _HELDOUT_TEXTS:
            return text


def random_backchannel(rng: object, lang: str) -> str:
    """1-3 training backchannel tokens (repeated or mixed), never equal to a held-out phrase."""
    import numpy as np

    assert isinstance(rng, np.random.Generator)
    tokens = BACKCHANNEL_TOKENS[lang]
    while True:
        first = str(rng.choice(tokens))
        n = int(rng.choice([1, 2, 2, 3]))
        rest = [first if rng.random() < 0.6 else str(rng.choice(tokens)) for _ in range(n - 1)]
        text = " ".join([first, *rest])
        if text not in _HELDOUT_TEXTS:
            return text
