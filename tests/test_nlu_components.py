"""Our custom NLU components, run inside the engine's own Python (rasa 3.6 on 3.10)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from bot.engine_process import engine_env

SCRIPT = r"""
import json
from rasa.shared.nlu.training_data.message import Message
from nlu_ext.folding_tokenizer import FoldingWhitespaceTokenizer
from nlu_ext.emergency_priority import EmergencyPriority
from nlu_ext.bare_city import BareCityAnswer

tok = FoldingWhitespaceTokenizer(FoldingWhitespaceTokenizer.get_default_config())
msg = Message(data={"text": "İŞDƏN çıxa bilmirəm, Şəhərdə"})
tokens = tok.tokenize(msg, "text")
out = {"tokens": [t.text for t in tokens], "spans": [[t.start, t.end] for t in tokens]}

prio = EmergencyPriority({"intent": "emergency", "threshold": 0.25})
def classify(ranking):
    m = Message(data={"text": "x", "intent": ranking[0], "intent_ranking": ranking})
    prio.process([m])
    return m.get("intent")
out["promoted"] = classify([
    {"name": "nlu_fallback", "confidence": 0.35},
    {"name": "request_help", "confidence": 0.33},
    {"name": "emergency", "confidence": 0.30},
])
out["kept"] = classify([
    {"name": "ask_rights", "confidence": 0.80},
    {"name": "emergency", "confidence": 0.10},
])
bare = BareCityAnswer(BareCityAnswer.get_default_config())
def city_answer(text, city, other=()):
    start = text.index(city)
    entities = [{"entity": "city", "value": city, "start": start, "end": start + len(city)}]
    entities += [{"entity": e, "value": "x", "start": 0, "end": 1} for e in other]
    m = Message(data={"text": text, "intent": {"name": "affirm", "confidence": 1.0},
                      "entities": entities})
    bare.process([m])
    return m.get("intent")["name"]
out["bare"] = [city_answer(t, c) for t, c in [
    ("Гянджа", "Гянджа"), ("в Гяндже.", "Гяндже"), ("Gəncə", "Gəncə"), ("in Ganja please", "Ganja"),
    ("Gence sheherinde", "Gence"),
]]
out["not_bare"] = [city_answer(t, c, o) for t, c, o in [
    ("shelter in Baku", "Baku", ()), ("Baku passport", "Baku", ("document",)),
    ("я в Баку и меня бьют", "Баку", ()),
]]
print(json.dumps(out))
"""


def run_in_engine(root: Path) -> dict:
    proc = subprocess.run(
        [str(root / ".venv-rasa" / "bin" / "python"), "-c", SCRIPT],
        cwd=root, env=engine_env(), capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_components(root: Path) -> None:
    out = run_in_engine(root)
    assert out["tokens"] == ["isden", "cixa", "bilmirem", "seherde"]
    text = "İŞDƏN çıxa bilmirəm, Şəhərdə"
    assert [text[a:b] for a, b in out["spans"]] == ["İŞDƏN", "çıxa", "bilmirəm", "Şəhərdə"]
    assert out["promoted"] == {"name": "emergency", "confidence": 0.30}
    assert out["kept"]["name"] == "ask_rights"
    # Only a city (and filler words) is an answer to "which city?"; anything more keeps its intent.
    assert out["bare"] == ["nlu_fallback"] * 5
    assert out["not_bare"] == ["affirm"] * 3
