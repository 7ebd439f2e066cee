"""Deployment files: compose.yaml has the services of CONTRACTS §6, and the Procfile matches.

The image and the lock files: production installs the runtime lock only, and both locks are
hash-pinned, free of URLs, in step with pyproject.toml and with each other.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
SERVICES = {
    "postgres",
    "redis",
    "migrate",
    "web",
    "worker-hashing",
    "worker",
    "worker-files",
    "beat",
    "flower",
}


def compose() -> dict[str, Any]:  # Any: YAML
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "compose.yaml").read_text())
    return loaded


def test_compose_has_the_contract_services_with_healthchecks() -> None:
    services = compose()["services"]
    assert set(services) == SERVICES
    for name, service in services.items():
        if name != "migrate":
            assert "healthcheck" in service, name
    assert services["migrate"]["restart"] == "no"
    for name in ("web", "worker-hashing", "worker", "worker-files", "beat"):
        assert services[name]["depends_on"]["migrate"] == {
            "condition": "service_completed_successfully"
        }
        assert services[name]["depends_on"]["redis"] == {"condition": "service_healthy"}
    assert services["migrate"]["depends_on"]["postgres"] == {"condition": "service_healthy"}
    assert services["flower"]["profiles"] == ["ops"]
    assert services["beat"]["deploy"]["replicas"] == 1
    images = {services[n].get("image") for n in SERVICES - {"postgres", "redis"}}
    assert images == {"confide:latest"}  # one image for every Confide service
    assert "-Q" in services["worker-hashing"]["command"]
    assert "hashing" in services["worker-hashing"]["command"]
    files = services["worker-files"]["command"]
    assert files[files.index("-Q") + 1] == "files"  # stripping alone (CONTRACTS §6)


def test_compose_redis_has_a_password_aof_and_noeviction() -> None:
    command = " ".join(compose()["services"]["redis"]["command"])
    assert "--requirepass" in command
    assert "--appendonly yes" in command
    assert "--maxmemory-policy noeviction" in command


def test_flower_is_bound_to_localhost_with_basic_auth() -> None:
    flower = compose()["services"]["flower"]
    assert all(p.startswith("127.0.0.1:") for p in flower["ports"])
    assert any("--basic-auth" in part for part in flower["command"])


def test_procfile_lists_the_same_processes() -> None:
    names = {
        line.split(":", 1)[0]
        for line in (ROOT / "Procfile").read_text().splitlines()
        if line and not line.startswith("#")
    }
    assert names == {"web", "worker-hashing", "worker", "worker-files", "beat", "flower"}


def test_docker_compose_config_accepts_the_file_where_docker_exists() -> None:
    docker = shutil.which("docker")
    if (
        docker is None
        or subprocess.run(
            [docker, "compose", "version"], capture_output=True, check=False, timeout=30
        ).returncode
        != 0
    ):
        return  # no Docker compose here: the structure tests above still ran
    result = subprocess.run(
        [docker, "compose", "-f", str(ROOT / "compose.yaml"), "config", "--quiet"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=ROOT,
        env={
            "REDIS_PASSWORD": "x",
            "POSTGRES_PASSWORD": "y",
            "FLOWER_BASIC_AUTH": "a:b",
            "PATH": "/usr/bin:/bin",
        },
    )
    assert result.returncode == 0, result.stderr


def test_alert_rules_use_metrics_that_exist() -> None:
    rules = yaml.safe_load((ROOT / "deploy" / "prometheus" / "alerts.yml").read_text())
    exported = {
        "celery_queue_length",
        "celery_worker_up",
        "celery_active_worker_count",
        "celery_task_succeeded_total",
        "celery_task_failed_total",
        "celery_task_retried_total",
        "celery_task_runtime_seconds",
        "confide_threads_awaiting_reply",
        "confide_threads_nearing_deadline",
        "confide_threads_overdue",
        "confide_outbox_pending",
        "confide_outbox_oldest_age_seconds",
        "confide_outbox_dead_letters",
        "confide_escalation_last_success_timestamp_seconds",
        "confide_digest_last_success_timestamp_seconds",
        "confide_beat_last_tick_timestamp_seconds",
        "confide_login_rate_limited_total",
    }
    names = set()
    for group in rules["groups"]:
        for rule in group["rules"]:
            assert {"alert", "expr", "labels", "annotations"} <= set(rule), rule
            used = {
                m
                for m in __import__("re").findall(r"[a-z_]+", rule["expr"])
                if m.startswith(("celery_", "confide_"))
            }
            assert used and used <= exported, (rule["alert"], used - exported)
            names.add(rule["alert"])
    assert {
        "ConfideNoWorkerUp",
        "ConfideTaskFailing",
        "ConfideQueueBacklog",
        "ConfideBeatStale",
        "ConfideThreadsOverdue",
    } <= names


def test_compose_names_its_proxy_so_reporters_do_not_share_one_bucket() -> None:
    """Finding 2 of issue 12: the pinned gateway is the trusted proxy, inside the pinned subnet."""
    import ipaddress

    from confide.settings import _networks

    config = compose()
    env = config["x-confide"]["environment"]
    assert env["CONFIDE_TRUST_PROXY"] == "1"
    trusted = _networks(env, "CONFIDE_TRUSTED_PROXIES")
    (pool,) = config["networks"]["default"]["ipam"]["config"]
    subnet = ipaddress.ip_network(pool["subnet"])
    gateway = ipaddress.ip_address(pool["gateway"])
    assert trusted and all(net.subnet_of(subnet) for net in trusted)  # type: ignore[arg-type]
    assert any(gateway in net for net in trusted)
    assert "CONFIDE_PER_CLIENT_LIMITS" not in env  # per-client limits on: the proxy must be named


def dockerfile() -> list[tuple[str, str]]:
    """The Dockerfile's instructions as (KEYWORD, arguments), continuation lines joined."""
    text = re.sub(r"\\\n", " ", (ROOT / "Dockerfile").read_text())
    lines = [line.strip() for line in text.splitlines()]
    return [
        (word.upper(), rest.strip())
        for word, _, rest in (line.partition(" ") for line in lines if line and line[0] != "#")
    ]


def test_image_installs_the_runtime_lock_only_and_not_editable() -> None:
    """Production carries no pytest, playwright or schemathesis: never requirements/dev.txt."""
    steps = dockerfile()
    assert "dev.txt" not in (ROOT / "Dockerfile").read_text()
    assert ("COPY", "requirements/main.txt /tmp/main.txt") in steps
    installs = [
        command.strip()
        for word, args in steps
        if word == "RUN"
        for command in args.split("&&")
        if "pip install" in command
    ]
    assert any("--require-hashes -r /tmp/main.txt" in r for r in installs), installs
    lists = {f for r in installs for f in re.findall(r"\s(?:-r|--requirement)[ =](\S+)", r)}
    assert lists == {"/tmp/main.txt"}, installs
    assert not any(re.search(r"\s(-e|--editable)\s", f" {r} ") for r in installs), installs
    assert any("--no-deps" in r and ".whl" in r for r in installs), installs  # Confide's wheel
    final = steps[max(i for i, (word, _) in enumerate(steps) if word == "FROM") :]
    copies = [args.split() for word, args in final if word == "COPY"]
    assert ["."] not in [c[:1] for c in copies], copies  # no source tree, tests or var/ in it
    for folder in ("templates/", "migrations/", "translations/"):
        assert [folder, folder] in copies, folder
    assert ("USER", "confide") in final
    assert ("EXPOSE", "8080") in final
    assert ("CMD", '["python", "-m", "webapp"]') in final


LOCKS = ("main", "dev")


def pins(lock: str) -> dict[str, str]:
    text = (ROOT / "requirements" / f"{lock}.txt").read_text()
    return {
        canonicalize_name(name): version
        for name, version in re.findall(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)", text, re.M)
    }


def test_lock_files_are_hash_pinned_without_urls() -> None:
    for lock in LOCKS:
        text = (ROOT / "requirements" / f"{lock}.txt").read_text()
        command = text.split("\n", 6)[4]  # the header names the exact pip-compile command
        assert command.startswith("#    pip-compile --allow-unsafe"), (lock, command)
        assert ("--constraint=requirements/main.txt" in command) == (lock == "dev"), command
        body = [line for line in text.splitlines() if line and not line.lstrip().startswith("#")]
        assert not [line for line in body if "://" in line or line.startswith("-")], lock
        assert body, lock
        for line, following in zip(body, [*body[1:], ""], strict=True):
            if not line.startswith(" "):  # a requirement, with its hashes on the next lines
                assert re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*==\S+ \\", line), (lock, line)
                assert following.startswith("    --hash=sha256:"), (lock, line)


def test_runtime_lock_holds_production_and_the_dev_lock_the_rest() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]

    def names(specs: list[str]) -> set[str]:
        return {canonicalize_name(Requirement(spec).name) for spec in specs}

    extras = project["optional-dependencies"]
    runtime = names(project["dependencies"] + extras["ops"])
    development = names(extras["dev"] + extras["embedded"])
    main, dev = pins("main"), pins("dev")
    assert runtime <= set(main), runtime - set(main)
    assert development <= set(dev), development - set(dev)
    assert not development & set(main), development & set(main)  # pytest, playwright, ...
    assert {
        name: (main[name], dev[name]) for name in set(main) & set(dev) if main[name] != dev[name]
    } == {}
