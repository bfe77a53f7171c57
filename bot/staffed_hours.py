"""When hotline operators are at their desks (``STAFFED_HOURS``), so a person asking for a human
outside those hours is told so and gets the 24/7 numbers instead of waiting in silence.

Format: ``always``, ``never`` or ``Mon-Fri 09:00-18:00`` (several ranges separated by ``;``), in
the hotline's time zone ``STAFFED_TZ`` (default Asia/Baku, UTC+4 without daylight saving).
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

DAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
_RANGE = re.compile(
    r"^\s*(?P<d1>[a-z]{3})(?:-(?P<d2>[a-z]{3}))?\s+(?P<h1>\d{1,2}):(?P<m1>\d{2})-"
    r"(?P<h2>\d{1,2}):(?P<m2>\d{2})\s*$",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class StaffedHours:
    spec: str
    tz: dt.tzinfo
    ranges: tuple[tuple[frozenset[int], dt.time, dt.time], ...]
    always: bool = False

    @classmethod
    def parse(cls, spec: str = "Mon-Fri 09:00-18:00", tz: str = "Asia/Baku") -> StaffedHours:
        try:
            zone: dt.tzinfo = ZoneInfo(tz)
        except ZoneInfoNotFoundError:
            zone = dt.timezone(dt.timedelta(hours=4))
        text = spec.strip().lower()
        if text == "always":
            return cls(spec, zone, (), always=True)
        if text == "never":
            return cls(spec, zone, ())
        ranges = []
        for part in text.split(";"):
            m = _RANGE.match(part)
            if not m or m["d1"] not in DAYS or (m["d2"] and m["d2"] not in DAYS):
                raise ValueError(f"STAFFED_HOURS: cannot read {part.strip()!r}")
            first = DAYS.index(m["d1"])
            last = DAYS.index(m["d2"]) if m["d2"] else first
            days = (
                frozenset(range(first, last + 1))
                if first <= last
                else frozenset([*range(first, 7), *range(0, last + 1)])
            )
            start = dt.time(int(m["h1"]), int(m["m1"]))
            end = dt.time(int(m["h2"]), int(m["m2"]))
            ranges.append((days, start, end))
        return cls(spec, zone, tuple(ranges))

    def staffed(self, at: dt.datetime | None = None) -> bool:
        if self.always:
            return True
        local = (at or dt.datetime.now(dt.UTC)).astimezone(self.tz)
        now = local.time()
        return any(
            local.weekday() in days and start <= now < end for days, start, end in self.ranges
        )

    def describe(self) -> str:
        """The spec as shown to people, e.g. ``Mon-Fri 09:00-18:00 (Baku time)``."""
        return f"{self.spec} ({getattr(self.tz, 'key', 'UTC+4')})"
