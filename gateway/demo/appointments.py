"""A small appointment service for the dental demo: `gateway appointments --port 8090`.

    POST /availability {"date": "tuesday"}  -> {"date": "Tuesday", "slots": ["Tuesday at nine", ...],
                                               "options": [{"day": "Tuesday", "time": "nine"}, ...]}
    POST /book {"name": "John Smith", "date": "tuesday", "time": "9"}
                                            -> {"ok": true, "day": "Tuesday", "time": "nine", "name": ...,
                                                "reference": "BSD-0001"}

In memory and deterministic: a fixed weekly schedule, the first `limit` free slots from the asked
day on (so "Tuesday" offers Tuesday at nine, Tuesday at eleven and Wednesday at two), and a booked
slot is no longer offered. Days are weekday names, times hour words ("nine") or digits ("9",
"9:00", "9 am", "2 pm").
"""

from __future__ import annotations

import argparse
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from aiohttp import web

DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
HOURS = {
    "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6,
    "seven": 7, "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12,
}  # fmt: skip
HOUR_WORDS = {v: k for k, v in HOURS.items()}
DEFAULT_SCHEDULE: dict[str, tuple[int, ...]] = {
    "Monday": (10,),
    "Tuesday": (9, 11),
    "Wednesday": (2,),
    "Thursday": (10, 3),
    "Friday": (9,),
}


def parse_day(text: str) -> str | None:
    t = text.strip().lower()
    for day in DAYS:
        if t and (t == day.lower() or (len(t) >= 3 and day.lower().startswith(t))):
            return day
    return None


def parse_hour(text: str) -> int | None:
    t = text.strip().lower().replace(".", "")
    m = re.fullmatch(r"(\d{1,2})(?::00)?\s*(am|pm|o'clock)?", t)
    if m:
        hour = int(m.group(1))
        if m.group(2) == "pm" and hour < 12:
            hour += 12
        hour = hour - 12 if hour > 12 else hour
        return hour if 1 <= hour <= 12 else None
    word = t.removesuffix(" o'clock").removesuffix(" am").removesuffix(" pm").strip()
    return HOURS.get(word)


@dataclass
class AppointmentBook:
    schedule: dict[str, tuple[int, ...]] = field(default_factory=lambda: dict(DEFAULT_SCHEDULE))
    limit: int = 3
    booked: dict[tuple[str, int], str] = field(default_factory=dict)

    def free(self, day: str) -> list[tuple[str, int]]:
        start = DAYS.index(day)
        out: list[tuple[str, int]] = []
        for k in range(7):
            d = DAYS[(start + k) % 7]
            out.extend((d, h) for h in self.schedule.get(d, ()) if (d, h) not in self.booked)
        return out[: self.limit]

    def availability(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        day = parse_day(str(body.get("date", "")))
        if day is None:
            return 400, {"error": "Please give a weekday, for example Tuesday."}
        slots = self.free(day)
        return 200, {
            "date": day,
            "slots": [f"{d} at {HOUR_WORDS[h]}" for d, h in slots],
            "options": [{"day": d, "time": HOUR_WORDS[h]} for d, h in slots],
        }

    def book(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        name = " ".join(str(body.get("name", "")).split())
        day = parse_day(str(body.get("date", "")))
        hour = parse_hour(str(body.get("time", "")))
        if not name or day is None or hour is None:
            return 400, {"error": "A booking needs a name, a weekday and a time."}
        if hour not in self.schedule.get(day, ()):
            return 200, {"ok": False, "error": f"we have nothing on {day} at {HOUR_WORDS[hour]}."}
        if (day, hour) in self.booked:
            return 200, {"ok": False, "error": f"{day} at {HOUR_WORDS[hour]} was just taken."}
        self.booked[(day, hour)] = name
        reference = f"BSD-{len(self.booked):04d}"
        return 200, {"ok": True, "name": name, "day": day, "time": HOUR_WORDS[hour], "reference": reference}


def make_app(book: AppointmentBook | None = None) -> web.Application:
    from aiohttp import web

    store = book or AppointmentBook()

    async def body(request: web.Request) -> dict[str, Any]:
        try:
            data = await request.json()
        except ValueError:
            return {}
        return data if isinstance(data, dict) else {}

    async def availability(request: web.Request) -> web.Response:
        status, data = store.availability(await body(request))
        return web.json_response(data, status=status)

    async def book_slot(request: web.Request) -> web.Response:
        status, data = store.book(await body(request))
        return web.json_response(data, status=status)

    app = web.Application()
    app.router.add_post("/availability", availability)
    app.router.add_post("/book", book_slot)
    return app


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "appointments",
        help="run the demo appointment service (dental agent's tools)",
        description="Demo appointment service: POST /availability {date}, POST /book {name, date, time}",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8090)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from aiohttp import web

    web.run_app(make_app(), host=args.host, port=args.port, print=None)
    return 0
