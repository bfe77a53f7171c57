"""deploy/ agrees with the code: every variable it sets is one the code reads, the files parse,
the wiring between them matches (ports, upstreams, URLs), and the engines' endpoints file is
accepted by Rasa's own endpoint reader — against the real PostgreSQL and Redis when available.

Why a test: deploy files are read by nobody's CI but this one; a renamed variable or a port
changed in one place only would surface on the day of a production deploy.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from bot.config import ROOT
from bot.engine_process import PRODUCTION_ENDPOINTS, RASA_BIN, engine_env, production_env
from bot.telegram.app import WEBHOOK_PATH

DEPLOY = ROOT / "deploy"
# Read by Python, Rasa or TensorFlow themselves, not by our code.
RUNTIME_VARS = {
    "HOME",
    "PATH",
    "PYTHONUNBUFFERED",
    "RASA_TELEMETRY_ENABLED",
    "TF_CPP_MIN_LOG_LEVEL",
}
SECRETS = {"SECRET_KEY", "TELEGRAM_BOT_TOKEN", "TELEGRAM_WEBHOOK_SECRET", "RASA_TOKEN"}


def code_reads() -> set[str]:
    """Every environment variable our code reads (``env.get("X"`` / ``os.environ["X"]``)."""
    pattern = re.compile(r"(?:env|environ)(?:\.get\(|\[)\s*\"([A-Z][A-Z0-9_]*)\"")
    names: set[str] = set()
    for package in ("bot", "actions"):
        for path in (ROOT / package).rglob("*.py"):
            names |= set(pattern.findall(path.read_text()))
    return names


def env_file(path: Path) -> dict[str, str]:
    values = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, _, value = line.partition("=")
            values[name.strip()] = value.strip()
    return values


def unit_file(path: Path) -> list[tuple[str, str, str]]:
    """A systemd unit as (section, key, value) rows (keys may repeat, unlike INI)."""
    rows, section = [], ""
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        key, _, value = line.partition("=")
        rows.append((section, key.strip(), value.strip()))
    return rows


def nginx_blocks(text: str) -> list:
    """nginx.conf as nested lists: a directive is a list of words, a block ends in a list."""
    tokens = re.findall(r'"[^"]*"|[{};]|[^\s{};"]+', re.sub(r"#[^\n]*", "", text))
    stack: list[list] = [[]]
    words: list = []
    for token in tokens:
        if token == "{":
            block: list = []
            stack[-1].append([*words, block])
            stack.append(block)
            words = []
        elif token == "}":
            stack.pop()
        elif token == ";":
            stack[-1].append(words)
            words = []
        else:
            words.append(token)
    return stack[0]


def compose() -> dict:
    return yaml.safe_load((DEPLOY / "compose.yaml").read_text())


def substitute(value: str) -> str:
    """Compose's ${VAR:?} / ${VAR:-default} with made-up values, to parse the URLs."""
    return re.sub(r"\$\{([A-Z_]+)(?::[-?]([^}]*))?\}", lambda m: m.group(2) or "x1", value)


def test_every_variable_deploy_sets_is_read_by_the_code() -> None:
    known = code_reads()
    services = compose()["services"]
    ours = {name: s for name, s in services.items() if s.get("image", "").startswith("ctip")}
    assert set(ours) == {"engine1", "engine2", "bot1", "bot2", "bot3"}
    set_by_deploy = {name for s in ours.values() for name in s["environment"]}
    set_by_deploy |= set(env_file(DEPLOY / "bot.env.example"))
    set_by_deploy |= set(env_file(DEPLOY / "engine.env.example"))
    for unit in (DEPLOY / "systemd").glob("*.service"):
        for _section, key, value in unit_file(unit):
            if key == "Environment":
                set_by_deploy.add(value.partition("=")[0])
    unknown = set_by_deploy - known - RUNTIME_VARS
    assert not unknown, f"deploy/ sets variables no code reads: {sorted(unknown)}"
    readme = (ROOT / "README.md").read_text()
    undocumented = {v for v in set_by_deploy - RUNTIME_VARS if f"`{v}`" not in readme}
    assert not undocumented, f"not in README's configuration table: {sorted(undocumented)}"


def test_compose_wiring() -> None:
    doc = compose()
    services = doc["services"]
    for name, service in services.items():
        for dependency in service.get("depends_on") or []:
            assert dependency in services, f"{name} depends on unknown {dependency}"
        if name != "lb":
            assert "ports" not in service, f"only the balancer publishes ports, not {name}"
    bots = [services[f"bot{i}"] for i in (1, 2, 3)]
    engines = [services["engine1"], services["engine2"]]
    assert all(b["command"] == ["ctip", "serve"] for b in bots)
    assert all(e["command"] == ["ctip", "engine"] for e in engines)
    bot_env = {k: substitute(str(v)) for k, v in bots[0]["environment"].items()}
    engine_env_ = {k: substitute(str(v)) for k, v in engines[0]["environment"].items()}
    # The engines' URLs are what `ctip engine` accepts.
    derived = production_env(
        engine_env_["TRACKER_STORE_URL"], engine_env_["LOCK_STORE_URL"], engine_env_["BOT_URL"]
    )
    assert derived["CTIP_ENGINE_LOCK_HOST"] == "redis"
    # One tracker store, one Redis for everyone; replicas erase from the store engines write.
    assert bot_env["TRACKER_STORE_URL"] == engine_env_["TRACKER_STORE_URL"]
    assert bot_env["REDIS_URL"] == engine_env_["LOCK_STORE_URL"]
    assert bot_env["DATABASE_URL"].startswith("postgresql://")
    assert bot_env["TELEGRAM_WEBHOOK_URL"].endswith(WEBHOOK_PATH)
    assert bot_env["TELEGRAM_WEBHOOK_URL"].startswith("https://")  # Telegram requires TLS
    assert engine_env_["ENGINE_HOST"] == bot_env["BOT_HOST"] == "0.0.0.0"  # container network
    # Each replica its own spool volume, mounted where its default spool lies (var/spool under
    # the editable install in the image's WORKDIR): a recreated container still answers them.
    mounts = [volume.split(":") for b in bots for volume in b["volumes"]]
    assert len(mounts) == 3 and len({name for name, _ in mounts}) == 3
    assert all(name in doc["volumes"] for name, _ in mounts)
    workdir = re.search(r"^WORKDIR (\S+)$", (DEPLOY / "Dockerfile").read_text(), re.M)
    assert workdir and {path for _, path in mounts} == {f"{workdir[1]}/var/spool"}
    # Every ${VAR} compose needs is in the example .env.
    needed = set(re.findall(r"\$\{([A-Z_]+)", (DEPLOY / "compose.yaml").read_text()))
    assert needed <= set(env_file(DEPLOY / "compose.env.example"))


def test_nginx_matches_compose_and_keeps_internal_paths_internal() -> None:
    conf = nginx_blocks((DEPLOY / "nginx.conf").read_text())
    http = next(d[-1] for d in conf if d[0] == "http")
    upstreams = {
        d[1]: [x[1] for x in d[-1] if x[0] == "server"] for d in http if d[0] == "upstream"
    }
    services = compose()["services"]
    bot_port = services["bot1"]["environment"]["BOT_PORT"]
    engine_port = services["engine1"]["environment"]["ENGINE_PORT"]
    assert upstreams["ctip_bots"] == [f"bot{i}:{bot_port}" for i in (1, 2, 3)]
    assert upstreams["ctip_engines"] == [f"engine{i}:{engine_port}" for i in (1, 2)]
    servers = {}
    for block in (d[-1] for d in http if d[0] == "server"):
        listen = next(d[1] for d in block if d[0] == "listen")
        servers[listen] = {
            " ".join(d[1:-1]): {x[0]: x[1:] for x in d[-1]} for d in block if d[0] == "location"
        }
    public = servers["443"]
    proxied = {where for where, body in public.items() if "proxy_pass" in body}
    assert proxied == {f"= {WEBHOOK_PATH}", "/console/"}  # not /nlg, /webhook, /metrics
    assert public["/"]["return"] == ["404"]
    assert public["/console/"]["proxy_buffering"] == ["off"]  # the live views' SSE
    # The internal listeners are where the engines and replicas are told to go.
    bot_url = services["engine1"]["environment"]["BOT_URL"]
    rasa_url = services["bot1"]["environment"]["RASA_URL"]
    assert bot_url == "http://lb:8000" and servers["8000"]["/"]["proxy_pass"] == [
        "http://ctip_bots"
    ]
    assert rasa_url == "http://lb:5000"
    assert servers["5000"]["/"]["proxy_pass"] == ["http://ctip_engines"]
    assert "lb" in services and services["lb"]["ports"] == ["80:80", "443:443"]


def test_systemd_units_and_their_environment_files(tmp_path: Path) -> None:
    for role, port_var, command in (
        ("bot", "BOT_PORT", "serve"),
        ("engine", "ENGINE_PORT", "engine"),
    ):
        rows = unit_file(DEPLOY / "systemd" / f"ctip-{role}@.service")
        values = {(section, key): value for section, key, value in rows}
        assert values[("Service", "ExecStart")] == f"/opt/ctip/.venv/bin/ctip {command}"
        assert values[("Service", "EnvironmentFile")] == f"/etc/ctip/{role}.env"
        assert ("Service", "Environment", f"{port_var}=%i") in rows
        example = env_file(DEPLOY / f"{role}.env.example")
        # An EnvironmentFile value overrides Environment=: the port must come from the instance.
        assert port_var not in example
        for name, value in example.items():
            if name in SECRETS or "://" in value and "@" in value:
                assert "CHANGE-ME" in value, f"{role}.env.example: {name} must be a placeholder"
        verify = shutil.which("systemd-analyze")
        if verify is None:
            continue
        # systemd's own parser, with the paths pointed at this checkout.
        text = (DEPLOY / "systemd" / f"ctip-{role}@.service").read_text()
        text = text.replace(f"/etc/ctip/{role}.env", str(DEPLOY / f"{role}.env.example"))
        text = text.replace("/opt/ctip", str(ROOT)).replace("=ctip\n", "=root\n")
        (tmp_path / f"ctip-{role}@.service").write_text(text)
        result = subprocess.run(
            [verify, "verify", "--man=no", f"./ctip-{role}@8080.service"],
            cwd=tmp_path, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        problems = [line for line in result.stderr.splitlines() if f"ctip-{role}@" in line]
        assert result.returncode == 0 and not problems, result.stderr


def test_dockerfile_copies_what_exists() -> None:
    text = (DEPLOY / "Dockerfile").read_text()
    for line in text.splitlines():
        if line.startswith("COPY") and "--from" not in line:
            *sources, _ = line.split()[1:]
            for source in sources:
                assert (ROOT / source).exists(), f"deploy/Dockerfile copies missing {source}"


def test_production_env_from_urls() -> None:
    env = production_env(
        "postgresql+asyncpg://ctip:p%40ss@db.internal:5433/ctip?sslmode=require",
        "redis://:s%3Acret@cache.internal:6380/2",
        "http://lb:8000/",
    )
    assert env["CTIP_ENGINE_TRACKER_URL"] == (
        "postgresql://ctip:p%40ss@db.internal:5433/ctip?sslmode=require"
    )  # the engine's own driver, the query kept
    assert (env["CTIP_ENGINE_LOCK_HOST"], env["CTIP_ENGINE_LOCK_PORT"]) == (
        "cache.internal",
        "6380",
    )
    assert (env["CTIP_ENGINE_LOCK_DB"], env["CTIP_ENGINE_LOCK_PASSWORD"]) == ("2", "s:cret")
    assert env["CTIP_ENGINE_BOT_URL"] == "http://lb:8000"
    bad = [
        ("sqlite:///x.db", "redis://r", "http://b"),
        ("postgresql://u@h/d", "http://r", "http://b"),
        ("postgresql://u@h/d", "redis://r/zero", "http://b"),
        ("postgresql://u@h/d", "redis://r", "lb:8000"),
    ]
    for urls in bad:
        with pytest.raises(ValueError):
            production_env(*urls)


READ_ENDPOINTS = """
import json, sys
from rasa.core.utils import AvailableEndpoints
e = AvailableEndpoints.read_endpoints(sys.argv[1])
out = {
    "nlg": e.nlg.url, "action": e.action.url,
    "tracker": [e.tracker_store.type, e.tracker_store.url, e.tracker_store.kwargs],
    "lock": [e.lock_store.type, e.lock_store.url, e.lock_store.kwargs],
}
if sys.argv[2] == "connect":
    from rasa.core.lock_store import LockStore
    from rasa.core.tracker_store import TrackerStore
    from rasa.shared.core.domain import Domain
    lock = LockStore.create(e.lock_store)
    out["lock_ping"] = bool(lock.red.ping())
    out["lock_class"] = type(lock).__name__
    out["tracker_class"] = type(TrackerStore.create(e.tracker_store, Domain.empty())).__name__
print("ENDPOINTS " + json.dumps(out))
"""


def test_engine_endpoints_accepted_by_rasa() -> None:
    """Rasa's reader, in the engine's venv, on deploy/endpoints.yml with ctip engine's env;
    with TEST_POSTGRES_URL and TEST_REDIS_URL it also builds the stores, connected for real."""
    if not RASA_BIN.exists():
        pytest.skip("the engine's venv is missing (make setup)")
    pg, redis = os.environ.get("TEST_POSTGRES_URL"), os.environ.get("TEST_REDIS_URL")
    connect = bool(pg and redis)
    derived = production_env(
        pg or "postgresql://ctip:made-up@127.0.0.1:5432/ctip",
        redis or "redis://:made-up@127.0.0.1:6379/0",
        "http://127.0.0.1:8000",
    )
    python = RASA_BIN.parent / "python"
    result = subprocess.run(
        [str(python), "-W", "ignore", "-c", READ_ENDPOINTS, str(PRODUCTION_ENDPOINTS),
         "connect" if connect else "read"],
        env={**engine_env(), **derived}, capture_output=True, text=True, timeout=300, cwd=ROOT,
    )  # fmt: skip
    line = next((x for x in result.stdout.splitlines() if x.startswith("ENDPOINTS ")), None)
    assert line, result.stderr[-3000:]
    got = json.loads(line.removeprefix("ENDPOINTS "))
    assert "${" not in line  # every reference was filled (a quoted one would not be)
    assert got["nlg"] == "http://127.0.0.1:8000/nlg"
    assert got["action"] == "http://127.0.0.1:8000/webhook"
    assert got["tracker"][:2] == ["SQL", derived["CTIP_ENGINE_TRACKER_URL"]]
    assert got["lock"][:2] == [
        "engine_ext.lock_store.AtomicRedisLockStore",  # not Rasa's redis store: it races
        derived["CTIP_ENGINE_LOCK_HOST"],
    ]
    assert got["lock"][2]["db"] == derived["CTIP_ENGINE_LOCK_DB"]
    if connect:
        assert got["lock_ping"] and got["lock_class"] == "AtomicRedisLockStore"
        assert got["tracker_class"] in ("SQLTrackerStore", "AwaitableTrackerStore")
