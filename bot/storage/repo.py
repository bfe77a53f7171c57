"""Queries the actions need: knowledge lookups and the records the assistant keeps."""

from __future__ import annotations

import math
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import async_sessionmaker

from bot.storage.cases import CaseStore
from bot.storage.models import (
    Escalation,
    KbCity,
    KbContact,
    KbOrganisation,
    KbProvision,
    KbRight,
    Screening,
)
from bot.storage.transient import retried


def haversine_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance; good enough to rank shelters by city."""
    r = 6371.0
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * r * math.asin(math.sqrt(a))


@dataclass(frozen=True)
class Nearby:
    organisation: KbOrganisation
    city: str
    km: float


class Repository:
    """All database access of the actions, behind one object (easy to point at another DB).

    Each method is one repeatable transaction, retried through a database restart
    (``retried``); a record that must outlast a longer outage goes through ``actions.records``.
    A retried ``record_screening`` whose commit landed just before the connection broke is
    stored twice: a rare extra row in the statistics, against losing a person's result.
    """

    def __init__(self, sessions: async_sessionmaker) -> None:
        self.sessions = sessions

    @retried
    async def contacts(self, need: str | None = None) -> list[KbContact]:
        async with self.sessions() as s:
            rows = list((await s.scalars(select(KbContact))).all())
        if need is None:
            return rows
        return [c for c in rows if need in (c.needs or [])]

    @retried
    async def cities(self) -> list[KbCity]:
        async with self.sessions() as s:
            return list((await s.scalars(select(KbCity))).all())

    @retried
    async def organisations(self, need: str | None = None) -> list[KbOrganisation]:
        async with self.sessions() as s:
            rows = list((await s.scalars(select(KbOrganisation))).all())
        if need is None:
            return rows
        return [o for o in rows if need in (o.needs or []) or (need == "shelter" and o.shelter)]

    async def nearest(self, need: str, lat: float, lon: float) -> list[Nearby]:
        """Organisations for ``need`` ordered by distance from the nearest city they serve."""
        cities = {c.name: c for c in await self.cities()}
        found: list[Nearby] = []
        for org in await self.organisations(need):
            best: tuple[float, str] | None = None
            points = [(org.lat, org.lon, (org.cities or ["?"])[0])] if org.lat is not None else []
            points += [(cities[n].lat, cities[n].lon, n) for n in org.cities or [] if n in cities]
            for plat, plon, name in points:
                km = haversine_km(lat, lon, plat, plon)
                if best is None or km < best[0]:
                    best = (km, name)
            if best is not None:
                found.append(Nearby(org, best[1], best[0]))
        # Nearest first; at equal distance (same city) confirmed organisations before unconfirmed.
        return sorted(
            found, key=lambda n: (round(n.km), not n.organisation.verified, n.organisation.id)
        )

    @retried
    async def rights(self) -> list[KbRight]:
        async with self.sessions() as s:
            return list((await s.scalars(select(KbRight).order_by(KbRight.position))).all())

    @retried
    async def provisions(self) -> list[KbProvision]:
        async with self.sessions() as s:
            return list((await s.scalars(select(KbProvision).order_by(KbProvision.id))).all())

    @retried
    async def record_escalation(
        self,
        user_key: str,
        reason: str,
        priority: str,
        language: str,
        *,
        transcript: list[tuple[str, str]] | None = None,
        risk_flags: list[str] | None = None,
    ) -> Escalation:
        """Queue a request for a human, or return (priority raised) the one already open."""
        return await CaseStore(self.sessions).open_case(
            user_key, reason, priority, language,
            transcript=transcript or (), risk_flags=risk_flags or (),
        )  # fmt: skip

    @retried
    async def record_screening(
        self, user_key: str, answers: dict, score: int, risk: str, completed: bool
    ) -> Screening:
        async with self.sessions() as s:
            row = Screening(
                user_key=user_key, answers=answers, score=score, risk=risk, completed=completed
            )
            s.add(row)
            await s.commit()
            return row
