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
