"""Training data, lookups, config: the NLU contract holds before any training happens."""

from __future__ import annotations

import json
import re
import subprocess
from collections import Counter
from pathlib import Path

import pytest
import yaml

from bot.devtools.nlu_eval import read_examples
from bot.engine_process import engine_env
from bot.textnorm import fold
from tests.test_responses import CONTRACT_INTENTS

LANGS = ("az", "ru", "en")
MIN_EXAMPLES = 40
AZ_LETTERS = re.compile(r"[əğıöüşçƏĞÖÜŞÇİ]")


def training(root: Path, lang: str) -> list[tuple[str, str]]:
    return [p for f in sorted((root / "nlu_data" / lang).glob("*.yml")) for p in read_examples(f)]


@pytest.mark.parametrize("lang", LANGS)
def test_every_intent_has_enough_examples(root: Path, lang: str) -> None:
    counts = Counter(intent for _, intent in training(root, lang))
    for intent in CONTRACT_INTENTS:
        assert counts[intent] >= MIN_EXAMPLES, f"{lang}/{intent}: {counts[intent]}"


@pytest.mark.parametrize("lang", LANGS)
def test_no_duplicate_or_conflicting_examples(root: Path, lang: str) -> None:
    seen: dict[str, str] = {}
    for text, intent in training(root, lang):
        key = text.strip().lower()
        assert key not in seen or seen[key] == intent, f"{text!r}: {seen.get(key)} vs {intent}"
        seen[key] = intent


def test_azerbaijani_is_written_with_and_without_its_letters(root: Path) -> None:
    texts = [t for t, _ in training(root, "az")]
    with_letters = sum(bool(AZ_LETTERS.search(t)) for t in texts)
    share = with_letters / len(texts)
    assert 0.3 <= share <= 0.8, f"share with Azerbaijani letters: {share:.2f}"


def test_heldout_split_is_never_trained_on(root: Path) -> None:
    trained = {fold(t) for lang in LANGS for t, _ in training(root, lang)}
    for lang in LANGS:
        heldout = read_examples(root / "eval" / "heldout" / f"{lang}.yml")
        assert len(heldout) >= 180
        leaked = [t for t, _ in heldout if fold(t) in trained]
        assert not leaked, f"{lang}: held-out messages also in training: {leaked}"


def test_entity_annotations_are_valid_json(root: Path) -> None:
    for path in (root / "nlu_data").rglob("*.yml"):
        for match in re.finditer(r"\]\{([^}]*)\}", path.read_text(encoding="utf-8")):
            data = json.loads("{" + match.group(1) + "}")
            assert data["entity"] in {"city", "country", "document", "language"}, path


def test_lookups_and_synonyms_cover_the_entities(root: Path) -> None:
    lookups, synonyms = {}, {}
    for path in (root / "nlu_data" / "lookups").glob("*.yml"):
        for block in yaml.safe_load(path.read_text(encoding="utf-8"))["nlu"]:
            if "lookup" in block:
                lookups[block["lookup"]] = block["examples"]
            if "synonym" in block:
                synonyms[block["synonym"]] = synonyms.get(block["synonym"], "") + block["examples"]
    assert {"city", "country", "document"} <= set(lookups)

    def forms(value: str) -> set[str]:
        return {line.strip()[2:] for line in synonyms[value].splitlines() if line.strip()}

    assert {"Bakida", "Baku", "Баку", "Bakıda"} <= forms("Bakı")
    assert {"Gəncəyə", "Ganja"} <= forms("Gəncə")
    assert {"Türkiyədə", "Турцию"} <= forms("Turkey")
    assert {"pasportumu", "паспорт"} <= forms("passport")


def test_config_uses_folding_and_fallback(root: Path) -> None:
    config = yaml.safe_load((root / "config.yml").read_text(encoding="utf-8"))
    names = [c["name"] for c in config["pipeline"]]
    assert names[0] == "nlu_ext.folding_tokenizer.FoldingWhitespaceTokenizer"
    assert "FallbackClassifier" in names and "EntitySynonymMapper" in names
    assert config["pipeline"][names.index("FallbackClassifier")]["threshold"] > 0.2
    candidates = [
        yaml.safe_load(p.read_text(encoding="utf-8"))["pipeline"]
        for p in (root / "configs").glob("*.yml")
    ]
    assert config["pipeline"] in candidates, "config.yml must be one of the measured candidates"


def test_rasa_data_validate_is_clean(root: Path) -> None:
    """`rasa data validate` passes; warnings other than the NLG-served responses fail the test."""
    proc = subprocess.run(
        [
            str(root / ".venv-rasa" / "bin" / "rasa"), "data", "validate",
            "--data", "nlu_data", "--config", "config.yml", "--domain", "domain.yml",
        ],
        cwd=root, env=engine_env(), capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    # Responses are served by our /nlg endpoint, not listed in domain.yml, so rasa warns that
    # utter_* actions have no template; test_rules_use_declared_actions checks them instead.
    nlg_served = ("there is no matching response defined", "is not a valid utterance action")
    payload_only = [
        f"The intent '{i}' is listed in the domain file, but is not found in the NLU"
        for i in ("share_location", "start_screening", "stop_screening")
    ]  # sent by buttons and the Telegram adapter, never typed
    problems = [
        line
        for line in out.splitlines()
        if "UserWarning" in line and not any(n in line for n in (*nlg_served, *payload_only))
    ]
    assert not problems, "\n".join(problems)


def test_rules_use_declared_actions(root: Path) -> None:
    domain = yaml.safe_load((root / "domain.yml").read_text(encoding="utf-8"))
    declared = set(domain["actions"]) | set(domain.get("forms", {}))
    builtin = {"action_deactivate_loop", "action_listen", "action_restart"}
    rules = yaml.safe_load((root / "nlu_data" / "dialogue" / "rules.yml").read_text("utf-8"))
    for rule in rules["rules"]:
        for step in rule["steps"]:
            if "action" in step:
                assert step["action"] in declared | builtin, f"{rule['rule']}: {step['action']}"
            if "intent" in step:
                assert step["intent"] in set(domain["intents"]) | {"nlu_fallback"}
