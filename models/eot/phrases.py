"""What callers say in the end-of-turn corpus: turns made of parts joined by hesitation pauses.

A *turn* is a list of parts spoken by one voice; every part but the last is an unfinished fragment
(the caller pauses 0.5–1.8 s, then goes on), the last part finishes the turn. A turn of one part
is a complete turn ("I'd like Tuesday at three.", "yes", "no thanks").

Phrases are split: the templates of `TRAIN` and `EXTRA` (a second training split, mostly complete
turns: short answers, one-word turns, questions) never appear in `HELDOUT` (used for validation and the
benchmark); slot fillers (days, times, digits, names) are shared, as they would be in real calls.
Voices come from the barge-in recipe's split (`models.bargein.phrases`), English only: training
bases and variants never speak held-out audio, and the held-out variants are split again into
validation and test halves.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from models.bargein.phrases import BASES_HELDOUT, BASES_TRAIN, VARIANTS_TEST, VARIANTS_TRAIN, VARIANTS_VAL

DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday")
TIMES = (
    "three", "ten thirty", "nine in the morning", "two fifteen", "four o'clock", "noon", "eleven",
    "half past one", "quarter to five", "eight thirty",
)  # fmt: skip
MONTHS = (
    "January", "February", "March", "April", "May", "June", "July", "August", "September",
    "October", "November", "December",
)  # fmt: skip
ORDINALS = (
    "first", "second", "third", "fourth", "fifth", "ninth", "twelfth", "fifteenth", "twentieth",
    "twenty first", "twenty third", "thirtieth",
)  # fmt: skip
YEARS = (
    "nineteen eighty two",
    "nineteen seventy five",
    "two thousand one",
    "nineteen ninety",
    "nineteen sixty",
)
NAMES = ("Smith", "Garcia", "Patel", "Nguyen", "Johnson", "Miller", "Okafor", "Kowalski", "Chen", "Brown")
FIRST = ("John", "Maria", "Ahmed", "Linda", "Sam", "Priya", "David", "Grace")
DIGITS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
FILLERS = ("um", "uh", "um", "uh", "let me see", "hmm", "er")
TREATMENTS = ("a cleaning", "a checkup", "a filling", "my crown", "a consultation", "an x-ray")


@dataclass(frozen=True)
class Part:
    text: str
    final: bool  # the turn is finished after this part


Turn = tuple[Part, ...]


@dataclass(frozen=True)
class Templates:
    """Sentence frames of one split. `{day}`-style slots are filled from the shared lists."""

    complete: tuple[str, ...]  # whole turns
    short: tuple[str, ...]  # short answers
    # (unfinished fragment, continuation) pairs
    hesitations: tuple[tuple[str, str], ...]
    number_intros: tuple[str, ...]  # "my number is"
    date_intros: tuple[str, ...]  # "my date of birth is"
    short_prob: float = 0.4  # share of complete turns drawn from `short`


TRAIN_TEMPLATES = Templates(
    complete=(
        "I'd like {day} at {time}.",
        "Can I come in on {day}?",
        "My name is {first} {name}.",
        "I need to book {treatment}.",
        "Do you have anything on {day} afternoon?",
        "That works for me.",
        "I'd like to cancel my appointment.",
        "Is doctor {name} available on {day}?",
        "What time do you open on {day}?",
        "I'm calling about my bill.",
        "How much is {treatment}?",
        "Yes, {day} at {time} is perfect.",
        "I have a toothache.",
        "Could you send me a reminder?",
        "My insurance is with Delta Dental.",
        "I'll take the {time} slot.",
        "Can you repeat that please?",
        "I want to move my appointment to {day}.",
        "My number is {digits7}.",
        "I was born on {month} {ordinal}.",
        "It's {first} {name}.",
        "Where are you located?",
        "Do you take new patients?",
    ),
    short=(
        "yes",
        "no",
        "no thanks",
        "yes please",
        "okay",
        "sure",
        "that's right",
        "correct",
        "thank you",
        "perfect",
        "sounds good",
        "not really",
        "maybe",
        "{day}",
        "{time}",
        "{day} please",
        "bye",
        "that's all",
        "great, thanks",
        "no, that's it",
    ),
    hesitations=(
        ("I'd like to book an appointment for", "{day}."),
        ("I was thinking maybe", "{day}?"),
        ("could I come in on", "{day} at {time}?"),
        ("I need to see the doctor about", "{treatment}."),
        ("my name is", "{first} {name}."),
        ("the appointment is for my", "daughter."),
        ("I want to change my", "appointment to {day}."),
        ("is there anything available on", "{day}?"),
        ("I'd prefer the", "morning if possible."),
        ("I'm calling because", "I lost a filling."),
        ("I have a question about", "my insurance."),
        ("and then I also need", "{treatment}."),
        ("it's been hurting since", "{day}."),
        ("we could do", "{time} on {day}."),
        ("my last visit was in", "{month}."),
        ("I think it was with doctor", "{name}."),
        ("can you tell me if", "you take Cigna?"),
        ("the best time for me would be", "{day} at {time}."),
        ("I'd like to", "reschedule."),
        ("so if I come at", "{time}, is that okay?"),
        ("my email is", "{first} at gmail dot com."),
        ("I'm free on", "{day} and {day2}."),
        ("I'd like to come in", "some time next week."),
        ("the thing is", "my tooth is still sensitive."),
        ("do you have anything", "earlier?"),
        ("I was wondering whether", "you could fit me in today."),
        ("it's for", "a cleaning and a checkup."),
        ("my husband and", "I both need appointments."),
        ("I think the", "insurance changed last month."),
        ("the pain is on the", "left side."),
        ("can I bring", "my son along?"),
        ("my address is twenty", "two Elm Street."),
        ("I usually work until", "five."),
        ("I could come before", "work, around eight."),
        ("I'm a new patient and", "I need a checkup."),
        ("we moved here from", "Chicago."),
        ("it was supposed to be on", "{day}."),
        ("I'd like an appointment with", "doctor {name}."),
        ("the card says", "{month} {ordinal}."),
        ("I can't remember if", "it was {day} or {day2}."),
        ("is it possible to", "pay by card?"),
        ("I got a message from", "your office."),
        ("we need to", "move it to {day}."),
        ("my son has", "a loose tooth."),
        ("I'll be coming from", "work."),
        ("that would be", "great, thanks."),
        ("maybe around", "{time}?"),
        ("it hurts when", "I drink something cold."),
        ("could you check whether", "doctor {name} is in?"),
        ("I have", "two questions."),
        ("I'm looking for", "a dentist near downtown."),
        ("how long does", "{treatment} take?"),
    ),
    number_intros=("my number is", "you can reach me at", "my phone number is", "call me back on"),
    date_intros=("my date of birth is", "I was born on", "the date was"),
)

HELDOUT_TEMPLATES = Templates(
    complete=(
        "Could you put me down for {day} at {time}?",
        "I'd rather come on {day}.",
        "This is {first} {name}.",
        "I'm looking to schedule {treatment}.",
        "Are you open on {day}?",
        "That's fine with me.",
        "Please cancel my visit on {day}.",
        "Does doctor {name} work on {day}?",
        "The number is {digits7}.",
        "My birthday is {month} {ordinal}.",
        "I'll be there at {time}.",
    ),
    short=("yeah", "no, thank you", "all right", "exactly", "fine", "{day} works", "yes, that's me", "nope"),
    hesitations=(
        ("could you put me down for", "{day} at {time}?"),
        ("I'll need an appointment with", "doctor {name}."),
        ("my daughter needs", "{treatment}."),
        ("the earliest I can do is", "{day}."),
        ("I'm not sure if", "I can make it."),
        ("I was hoping to get in on", "{day} morning."),
        ("I'm calling to ask about", "the cost of {treatment}."),
        ("it started hurting after", "my last cleaning."),
        ("the appointment was booked under", "{first} {name}."),
        ("would it be possible to", "come in earlier?"),
    ),
    number_intros=("the best number to reach me is", "my cell is", "you can call me on"),
    date_intros=("my birthday is", "the date of birth is"),
)

EXTRA_SHORT = (
        "yep", "uh huh", "definitely", "absolutely", "of course", "right", "got it", "I see", "good",
        "not at all", "no problem", "that's correct", "I think so", "I don't think so", "probably",
        "never mind", "nothing else", "that's everything", "wonderful", "lovely", "cheers",
        "goodbye", "hello?", "sorry?", "pardon?", "what?", "really?", "why?", "how much?", "when?",
        "which one?", "me?", "right now?", "the morning", "after lunch", "next week", "{first}",
        "{name}", "{month} {ordinal}", "{time} please", "{day} is good", "yes I do", "no I don't",
        "yes it is", "just me", "both", "whichever", "that'll do", "brilliant", "great", "oh, okay",
        "ah, right", "mhm", "ok then", "sure thing", "no, sorry", "yes, {day}", "{day}?", "{time}?",
        "twice", "today", "tomorrow", "this week", "with {first}", "the {ordinal}",
    )  # fmt: skip

# More training turns (the corpus's "extra" split, added to "train"): the complete turns the first
# recipe had too few of — one-word and short answers, questions, short statements — plus a few more
# fragments so that "new phrase" does not mean "finished". None of these is a held-out phrase.
EXTRA_TEMPLATES = Templates(
    complete=(
        "Is that okay?",
        "What do I need to bring?",
        "How long will it take?",
        "Can I pay by card?",
        "Is there parking?",
        "Who am I speaking with?",
        "When is my next appointment?",
        "What's the address?",
        "Can you hear me?",
        "Is the doctor in today?",
        "Could I speak to someone?",
        "Do I need a referral?",
        "Are you still there?",
        "Can you spell that?",
        "Is {day} available?",
        "Any time on {day}?",
        "Is {time} too early?",
        "How about {day}?",
        "What about {time}?",
        "Would {day} at {time} work?",
        "Should I come early?",
        "Do you do weekends?",
        "Is it covered by insurance?",
        "I'll see you then.",
        "That's all I needed.",
        "Thanks for your help.",
        "I'll call back later.",
        "My tooth broke.",
        "{day} is good for me.",
        "Let's do {time}.",
        "Put me in for {day}.",
        "I can't make it on {day}.",
        "I'm running late.",
        "The pain is really bad.",
        "We'll take it.",
        "I prefer mornings.",
        "Afternoons are better.",
        "Just a cleaning.",
        "It's urgent.",
        "Not today.",
        "I'd like the earliest slot.",
        "I already have an account.",
        "My son needs {treatment}.",
        "It's {month} {ordinal}.",
    ),
    short=EXTRA_SHORT,
    hesitations=(
        ("I'm hoping to", "see someone this week."),
        ("what I need is", "{treatment}."),
        ("could we maybe", "make it {time}?"),
        ("do you think", "{day} is possible?"),
        ("I'd like to ask", "about the bill."),
        ("actually, can I", "change that to {day}?"),
        ("the problem is", "I work late."),
        ("how about", "{day} at {time}?"),
        ("is it okay if", "I come a bit late?"),
        ("my wife said", "she called yesterday."),
        ("could you tell me", "what time you close?"),
        ("it's about", "my appointment on {day}."),
        ("I wanted to", "confirm my booking."),
        ("and", "{day} too."),
        ("or maybe", "{day2}?"),
        ("with", "doctor {name}."),
        ("on", "{day}."),
        ("at", "{time}."),
    ),
    number_intros=("my number is", "you can reach me at", "my phone number is", "call me back on"),
    date_intros=("my date of birth is", "I was born on", "the date was"),
    short_prob=0.55,
)


def _fill(rng: np.random.Generator, template: str) -> str:
    days = rng.choice(len(DAYS), size=2, replace=False)
    slots = {
        "day": DAYS[days[0]],
        "day2": DAYS[days[1]],
        "time": TIMES[int(rng.integers(len(TIMES)))],
        "month": MONTHS[int(rng.integers(len(MONTHS)))],
        "ordinal": ORDINALS[int(rng.integers(len(ORDINALS)))],
        "name": NAMES[int(rng.integers(len(NAMES)))],
        "first": FIRST[int(rng.integers(len(FIRST)))],
        "treatment": TREATMENTS[int(rng.integers(len(TREATMENTS)))],
        "digits7": " ".join(DIGITS[int(d)] for d in rng.integers(0, 10, size=7)),
    }
    return template.format(**slots)


def _digits(rng: np.random.Generator, n: int) -> str:
    return " ".join(DIGITS[int(d)] for d in rng.integers(0, 10, size=n))


def _finish(text: str, rng: np.random.Generator) -> str:
    """A complete part ends in '.' or '?' (already there) or, for short answers, sometimes nothing."""
    return text if text[-1] in ".?!" else text + ("." if rng.random() < 0.7 else "")


def complete_turn(rng: np.random.Generator, t: Templates) -> Turn:
    pool = t.complete if rng.random() < 1.0 - t.short_prob else t.short
    return (Part(_finish(_fill(rng, pool[int(rng.integers(len(pool)))]), rng), True),)


def hesitation_turn(rng: np.random.Generator, t: Templates) -> Turn:
    head, tail = t.hesitations[int(rng.integers(len(t.hesitations)))]
    head = _fill(rng, head)
    if rng.random() < 0.3:  # a filler at the end of the fragment: "... for, um"
        head = f"{head}, {FILLERS[int(rng.integers(len(FILLERS)))]}"
    return (Part(head, False), Part(_finish(_fill(rng, tail), rng), True))


def cut_turn(rng: np.random.Generator, t: Templates) -> Turn:
    """A complete sentence broken at a word boundary: "I'd like Tuesday at ... three."."""
    text = _fill(rng, t.complete[int(rng.integers(len(t.complete)))]).rstrip(".?!")
    words = text.split()
    if len(words) < 3:
        return complete_turn(rng, t)
    k = int(rng.integers(1, len(words)))
    return (Part(" ".join(words[:k]).rstrip(","), False), Part(_finish(" ".join(words[k:]), rng), True))


def filler_turn(rng: np.random.Generator, t: Templates) -> Turn:
    """A filler on its own, then the turn: "um ... I need a cleaning"."""
    filler = FILLERS[int(rng.integers(len(FILLERS)))]
    rest = complete_turn(rng, t)[0]
    if rng.random() < 0.5:
        filler = f"{'so' if rng.random() < 0.5 else 'well'}, {filler}"
    return (Part(filler, False), rest)


def number_turn(rng: np.random.Generator, t: Templates) -> Turn:
    """A phone number read in groups (3-3-4 or 3-4), pausing between groups."""
    intro = t.number_intros[int(rng.integers(len(t.number_intros)))]
    groups = [3, 3, 4] if rng.random() < 0.5 else [3, 4]
    texts = [_digits(rng, n) for n in groups]
    parts: list[Part] = []
    if rng.random() < 0.35:  # pause after the intro too
        parts.append(Part(intro, False))
    else:
        texts[0] = f"{intro} {texts[0]}"
    # Sometimes only the last boundary carries a pause (the rest is read in one go).
    if len(texts) == 3 and rng.random() < 0.3:
        texts = [f"{texts[0]}, {texts[1]}", texts[2]]
    parts += [Part(text, False) for text in texts[:-1]]
    parts.append(Part(texts[-1] + ".", True))
    return tuple(parts)


def date_turn(rng: np.random.Generator, t: Templates) -> Turn:
    intro = t.date_intros[int(rng.integers(len(t.date_intros)))]
    month = MONTHS[int(rng.integers(len(MONTHS)))]
    ordinal = ORDINALS[int(rng.integers(len(ORDINALS)))]
    year = YEARS[int(rng.integers(len(YEARS)))]
    if rng.random() < 0.5:
        return (Part(f"{intro} {month}", False), Part(f"{ordinal}, {year}.", True))
    return (Part(f"{intro} {month} {ordinal}", False), Part(f"{year}.", True))


# Self-corrections ("on Tuesday, no, Wednesday"): a frame said with one slot value, then the caller
# corrects it. Frames per split (training frames never appear in the held-out set); each frame's slot
# kind gives the corrected value. Two shapes: the marker ends the first part ("... Tuesday, no," pause
# "Wednesday.": the words say it is unfinished) or starts the second ("... Tuesday" pause "no,
# Wednesday.": the first part sounds finished, the pause before a correction is short).
CORRECTION_FRAMES: dict[str, tuple[tuple[str, str], ...]] = {
    "train": (
        ("I'd like {x}", "day"),
        ("can I come in on {x}", "day"),
        ("put me down for {x}", "time"),
        ("I was born in {x}", "month"),
        ("the appointment is at {x}", "time"),
        ("my last name is {x}", "name"),
        ("it was on {x}", "day"),
        ("I'd prefer {x}", "time"),
        ("it's for {x}", "treatment"),
        ("my first name is {x}", "first"),
    ),
    "heldout": (
        ("could you book me for {x}", "day"),
        ("I'll be there at {x}", "time"),
        ("the booking is under {x}", "name"),
        ("my birthday is in {x}", "month"),
        ("I need {x}", "treatment"),
        ("let's say {x}", "day"),
    ),
}
CORRECTION_ENDS = ("no", "sorry", "I mean", "no, wait", "actually", "oh no, sorry")
CORRECTION_STARTS = ("no", "sorry, I mean", "actually", "no no", "wait, no")
_SLOT_VALUES = {
    "day": DAYS,
    "time": TIMES,
    "month": MONTHS,
    "name": NAMES,
    "first": FIRST,
    "treatment": TREATMENTS,
}


def correction_turn(rng: np.random.Generator, t: Templates) -> Turn:
    """A self-correction: "can I come in on Tuesday, no," ... "Wednesday." (see CORRECTION_FRAMES)."""
    frames = CORRECTION_FRAMES["heldout" if t is HELDOUT_TEMPLATES else "train"]
    frame, kind = frames[int(rng.integers(len(frames)))]
    values = _SLOT_VALUES[kind]
    a, b = rng.choice(len(values), size=2, replace=False)
    first, second = frame.format(x=values[int(a)]), values[int(b)]
    if rng.random() < 0.5:
        marker = CORRECTION_ENDS[int(rng.integers(len(CORRECTION_ENDS)))]
        return (Part(f"{first}, {marker}", False), Part(_finish(second, rng), True))
    marker = CORRECTION_STARTS[int(rng.integers(len(CORRECTION_STARTS)))]
    return (Part(first, False), Part(_finish(f"{marker}, {second}", rng), True))


# The last family has weight 0 in every recipe so far: appended with no weight, it leaves every
# earlier draw of `draw_turn` unchanged (the committed model's corpus and the benchmark's calls).
FAMILIES: dict[str, tuple[float, Callable[[np.random.Generator, Templates], Turn]]] = {
    "complete": (0.35, complete_turn),
    "hesitation": (0.20, hesitation_turn),
    "cut": (0.12, cut_turn),
    "filler": (0.08, filler_turn),
    "number": (0.15, number_turn),
    "date": (0.10, date_turn),
    "correction": (0.0, correction_turn),
}


# Family weights of the "extra" split: mostly complete turns (the benchmark's slow answers).
EXTRA_WEIGHTS = {
    "complete": 0.55, "hesitation": 0.15, "cut": 0.10, "filler": 0.08, "number": 0.06, "date": 0.06,
}  # fmt: skip


def draw_turn(
    rng: np.random.Generator, t: Templates, weights_of: dict[str, float] | None = None
) -> tuple[str, Turn]:
    names = list(FAMILIES)
    weights = np.array([(weights_of or {}).get(n, FAMILIES[n][0]) for n in names])
    name = names[int(rng.choice(len(names), p=weights / weights.sum()))]
    return name, FAMILIES[name][1](rng, t)


# Voices of other languages reading the English turns, for training only: accented speech with
# the intonation systems of their languages (espeak-ng's tunes and intonation groups differ per
# language), so the model does not learn one English melody. Note: `cy` and `nb` use intonation
# group 4, as the held-out `en-gb-x-gbcwmd` does (the model card reports that base separately).
ACCENT_BASES: tuple[str, ...] = ("cy", "nb", "da", "fr-fr", "it", "es", "de", "pl", "nl", "sv")


@dataclass(frozen=True)
class VoiceSplit:
    bases: tuple[str, ...]
    variants: tuple[str, ...]
    accents: tuple[str, ...] = ()
    accent_prob: float = 0.0

    def draw(self, rng: np.random.Generator) -> str:
        bases = self.accents if self.accents and rng.random() < self.accent_prob else self.bases
        base = bases[int(rng.integers(len(bases)))]
        variant = self.variants[int(rng.integers(len(self.variants)))]
        return f"{base}+{variant}" if variant else base


# The extra split also reads English with more intonation systems (Portuguese and Romanian
# tunes, Malay's: a comma does not raise the pitch, ...).
EXTRA_ACCENTS: tuple[str, ...] = (*ACCENT_BASES, "pt", "af", "ro", "hu", "fi", "ms", "ga")

VOICES: dict[str, VoiceSplit] = {
    "train": VoiceSplit(BASES_TRAIN["en"], VARIANTS_TRAIN, ACCENT_BASES, 0.35),
    "extra": VoiceSplit(BASES_TRAIN["en"], VARIANTS_TRAIN, EXTRA_ACCENTS, 0.45),
    "val": VoiceSplit(BASES_HELDOUT["en"], VARIANTS_VAL),
    "test": VoiceSplit(BASES_HELDOUT["en"], VARIANTS_TEST),
}
FAMILY_WEIGHTS: dict[str, dict[str, float]] = {"extra": EXTRA_WEIGHTS}
TEMPLATES: dict[str, Templates] = {
    "train": TRAIN_TEMPLATES,
    "extra": EXTRA_TEMPLATES,
    "val": HELDOUT_TEMPLATES,
    "test": HELDOUT_TEMPLATES,
}
