"""Lawyers' questions: retrieve the matching provision and cite it, or say nothing matched."""

from __future__ import annotations

from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.executor import CollectingDispatcher

from actions import context
from actions.context import language_of, pick
from bot.legal_search import BM25Index

_cache: dict[tuple[str, str], BM25Index] = {}


def provision_document(p: Any, lang: str) -> str:
    """What a provision is searched by: article, act, title, summary and keywords."""
    texts = p.texts
    return " ".join(
        [p.article]
        + [pick(texts.get(k), lang) for k in ("act", "summary")]
        # Titles and keywords say what the provision is about: weigh them like BM25F fields.
        + [pick(texts.get("title"), lang)] * 2
        + [pick(texts.get("keywords"), lang)] * 2
    )


def build_index(provisions: list[Any], lang: str) -> BM25Index:
    """The index the action searches: one per language, article numbers as a bonus signal."""
    return BM25Index(
        {p.id: provision_document(p, lang) for p in provisions},
        articles={p.id: p.article for p in provisions},
    )


async def search(question: str, lang: str, k: int = 3) -> list[tuple[Any, float]]:
    """Top provisions for ``question`` in ``lang``; the index is rebuilt when the data changes."""
    provisions = await context.get().repo.provisions()
    version = "|".join(f"{p.id}:{p.checked}" for p in provisions)
    key = (lang, version)
    if key not in _cache:
        # Drop only indexes of an older knowledge version; keep the other languages' indexes.
        for stale in [k for k in _cache if k[1] != version]:
            del _cache[stale]
        _cache[key] = build_index(provisions, lang)
    by_id = {p.id: p for p in provisions}
    return [(by_id[h.id], h.score) for h in _cache[key].search(question, k=k)]


def heading(p: Any, lang: str) -> str:
    """ "Criminal Code, article 144-1" — or just the act when the article number is unknown."""
    act = pick(p.texts.get("act"), lang)
    if not p.article or p.article == "—":
        return act
    return context.get().renderer.render("text_article", lang, {"act": act, "article": p.article})[
        "text"
    ]


class ActionLegalAnswer(Action):
    """Answer with article, law, a short summary and the source; flag unverified provisions."""

    def name(self) -> str:
        return "action_legal_answer"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[dict[str, Any]]:
        ctx = context.get()
        lang = language_of(tracker)
        question = tracker.latest_message.get("text") or ""
        hits = await search(question, lang)
        if not hits:
            out = ctx.renderer.render("utter_legal_no_match", lang)
            dispatcher.utter_message(text=out["text"], buttons=out["buttons"])
            return []
        best = hits[0][0]
        unverified = ctx.renderer.render("text_unverified", lang)["text"]
        also = ", ".join(f"{pick(p.texts.get('act'), lang)} {p.article}" for p, _ in hits[1:])
        out = ctx.renderer.render(
            "utter_legal_answer",
            lang,
            {
                "heading": heading(best, lang),
                "title": pick(best.texts.get("title"), lang),
                "summary": pick(best.texts.get("summary"), lang),
                "source": best.source,
                "checked": str(best.checked),
                "unverified": "" if best.verified else f"\n{unverified}",
                "also": also or "—",
            },
        )
        dispatcher.utter_message(text=out["text"], buttons=out["buttons"])
        return []
