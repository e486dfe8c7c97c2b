"""The deployment files: docker-compose.yml, the Dockerfiles and the Kubernetes manifests.

No Docker engine is needed: the compose file is validated by ``docker-compose config`` when that
tool is installed (``make compose-tool``), its structure is checked with PyYAML, and the exact
argv of each compose service is run as a local process (controller, two trainer replicas, one
search) to prove the commands, flags and defaults in the file work together."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from nasrl.cli.local import LocalService

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
DEPLOY = ROOT / "deploy"
SERVICES = {"controller", "trainer", "search", "dashboard"}

_DEFAULTED = re.compile(r"\$\{(\w+):?-([^}]*)\}")


def with_defaults(text: str) -> str:
    """Compose's ``${VAR:-default}`` / ``${VAR-default}`` replaced by the default."""
    out = _DEFAULTED.sub(lambda m: m.group(2), text)
    assert "$" not in out.replace("$$", ""), f"variable without a default in {text!r}"
    return out.replace("$$", "$")


def compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(data, dict)
    return data


def service(name: str) -> dict[str, Any]:
    svc = compose()["services"][name]
    assert isinstance(svc, dict)
    return svc


def argv(name: str) -> list[str]:
    """A service's ``command``, which must be the exec (list) form, defaults substituted."""
    command = service(name)["command"]
    assert isinstance(command, list), f"{name}: use the list form of `command:`"
    return [with_defaults(str(a)) for a in command]


def environment(name: str) -> dict[str, str]:
    env = service(name).get("environment") or {}
    if isinstance(env, list):  # the KEY=VALUE list form
        env = dict(item.split("=", 1) for item in env)
    return {k: with_defaults(str(v)) for k, v in env.items()}


def set_flag(args: list[str], flag: str, value: str | None) -> list[str]:
    """``flag VALUE`` in ``args`` given a new value, or removed (with its value) when None."""
    out: list[str] = []
    i = 0
    while i < len(args):
        if args[i] == flag:
            if value is not None:
                out += [flag, value]
            i += 2
        elif args[i].startswith(flag + "="):
            if value is not None:
                out.append(f"{flag}={value}")
            i += 1
        else:
            out.append(args[i])
            i += 1
    return out


def flag_value(args: list[str], flag: str) -> str | None:
    for i, a in enumerate(args):
        if a == flag and i + 1 < len(args):
            return args[i + 1]
        if a.startswith(flag + "="):
            return a.split("=", 1)[1]
    return None


def healthcheck_argv(name: str) -> list[str]:
    test = service(name)["healthcheck"]["test"]
    assert isinstance(test, list) and test[0] in ("CMD", "CMD-SHELL"), test
    return test[1:] if test[0] == "CMD" else test[1].split()


def load_docs(path: Path) -> list[dict[str, Any]]:
    docs = [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
    assert docs, f"{path} is empty"
    for d in docs:
        assert isinstance(d, dict) and {"apiVersion", "kind", "metadata"} <= d.keys(), path
    return docs


def dockerfile_cmd(path: Path) -> list[str]:
    cmds = [line for line in path.read_text().splitlines() if line.startswith("CMD ")]
    assert len(cmds) == 1, f"{path}: one exec-form CMD"
    cmd = json.loads(cmds[0][4:])
    assert isinstance(cmd, list)
    return [str(c) for c in cmd]


# --- docker-compose config -----------------------------------------------------------------


def test_compose_config_is_valid() -> None:
    tool = shutil.which("docker-compose")
    if tool is None:
        pytest.skip(
            "docker-compose is not installed: `make compose-tool` (as root) or "
            "`sudo apt-get install docker-compose` installs Debian's 1.29 to validate "
            "docker-compose.yml"
        )
    help_text = subprocess.run([tool, "--help"], capture_output=True, text=True).stdout
    # --profile is a global option from 1.28 on; 1.29's `config` prints every service anyway.
    profile = ["--profile", "search"] if "--profile" in help_text else []
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NASRL_", "COMPOSE_"))}
    result = subprocess.run(
        [tool, *profile, "-f", str(COMPOSE), "--project-directory", str(ROOT), "config"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert result.returncode == 0, result.stderr
    normalized = yaml.safe_load(result.stdout)
    assert set(normalized["services"]) == SERVICES
    # Defaults filled in, the commands still lists.
    trainer = normalized["services"]["trainer"]
    assert trainer["command"][-2:] == ["--slots", "1"]
    assert "ports" not in trainer
    assert normalized["services"]["search"]["profiles"] == ["search"]
    assert "controller-data" in normalized["volumes"]


# --- structure -------------------------------------------------------------------------------


def test_compose_structure() -> None:
    data = compose()
    assert set(data["services"]) == SERVICES
    controller, trainer, search = (service(n) for n in ("controller", "trainer", "search"))

    # controller: database on a named volume, published port, health check, log level.
    volumes = [str(v) for v in controller["volumes"]]
    assert any(v.split(":")[1] == "/data" and v.split(":")[0] in data["volumes"] for v in volumes)
    assert "50051:50051" in [str(p) for p in controller["ports"]]
    assert controller["build"]["dockerfile"] == "deploy/Dockerfile.controller"
    assert "NASRL_LOG_LEVEL" in controller["environment"]
    assert controller["restart"] == "unless-stopped"
    assert flag_value(argv("controller"), "--db") == "/data/nasrl.db"

    # trainer: scalable (no host port), read-only datasets, every GPU visible to each replica,
    # which claims one of them through locks in a volume all replicas share.
    assert "ports" not in trainer
    assert [str(p) for p in trainer["expose"]] == ["50052"]
    devices = trainer["deploy"]["resources"]["reservations"]["devices"]
    assert devices == [{"driver": "nvidia", "count": "all", "capabilities": ["gpu"]}]
    assert flag_value(argv("trainer"), "--device") == "cuda:any"
    lock_dir = flag_value(argv("trainer"), "--gpu-lock-dir")
    locks = [str(v) for v in trainer["volumes"] if str(v).endswith(f":{lock_dir}")]
    assert len(locks) == 1 and locks[0].split(":")[0] in data["volumes"]  # a named volume
    assert f"chown nasrl:nasrl /datasets {lock_dir}" in (DEPLOY / "Dockerfile.trainer").read_text()
    datasets = [str(v) for v in trainer["volumes"] if ":/datasets" in str(v)]
    assert len(datasets) == 1 and datasets[0].endswith(":ro")
    assert flag_value(argv("trainer"), "--data-dir") == "/datasets"
    assert "${NASRL_SLOTS:-1}" in trainer["command"]

    for name, port in (("controller", "50051"), ("trainer", "50052")):
        assert healthcheck_argv(name) == ["nasrl", "health", f"127.0.0.1:{port}"]
        assert flag_value(argv(name), "--host") == "0.0.0.0"
        assert flag_value(argv(name), "--port") == port

    # search: one-shot in its own profile, same image as the controller, waits for health.
    assert search["profiles"] == ["search"]
    assert search["image"] == controller["image"] and search["build"] == controller["build"]
    depends = search["depends_on"]
    assert set(depends) == {"controller", "trainer"}
    assert all(d["condition"] == "service_healthy" for d in depends.values())
    assert "./out:/out" in [str(v) for v in search["volumes"]]
    command = argv("search")
    assert command[:2] == ["nasrl", "search"]
    assert flag_value(command, "--controller") == "controller:50051"
    assert flag_value(command, "--trainers") == "dns:///trainer:50052"

    # Dockerfiles: non-root, ports, and the same argv as compose (compose may add flags).
    for name, port in (("controller", "50051"), ("trainer", "50052")):
        path = DEPLOY / f"Dockerfile.{name}"
        text = path.read_text()
        users = re.findall(r"^USER\s+(\S+)", text, re.M)
        assert users and users[-1].split(":")[0] not in ("root", "0"), f"{path}: non-root USER"
        assert re.search(rf"^EXPOSE\s+{port}\b", text, re.M)
        assert "python:3.11-slim" in text
        assert "pip install --no-deps --no-build-isolation --no-index ." in text
        cmd = dockerfile_cmd(path)
        assert argv(name)[: len(cmd)] == cmd, f"{path}: CMD differs from docker-compose.yml"
    assert "download.pytorch.org/whl/cpu" in (DEPLOY / "Dockerfile.controller").read_text()

    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".venv", ".git", "bench/results"} <= set(ignored)

    # Kubernetes: every manifest parses; trainers behind a headless Service with a GPU each.
    docs = {p.name: load_docs(p) for p in sorted((DEPLOY / "k8s").glob("*.yaml"))}
    assert {"controller.yaml", "trainer.yaml", "search-job.yaml", "dashboard.yaml"} <= set(docs)

    def find(file: str, kind: str) -> dict[str, Any]:
        found = [d for d in docs[file] if d["kind"] == kind]
        assert len(found) == 1, f"{file}: one {kind}"
        return found[0]

    trainer_svc = find("trainer.yaml", "Service")
    assert trainer_svc["metadata"]["name"] == "trainer"
    assert trainer_svc["spec"]["clusterIP"] == "None"
    assert [p["port"] for p in trainer_svc["spec"]["ports"]] == [50052]
    pod = find("trainer.yaml", "Deployment")["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert container["readinessProbe"]["grpc"] == {"port": 50052}  # native gRPC probes
    # liveness: the process answers (readiness is NOT_SERVING while draining or GPU-waiting)
    assert container["livenessProbe"]["grpc"] == {"port": 50052, "service": "liveness"}

    controller_dep = find("controller.yaml", "Deployment")
    assert controller_dep["spec"]["replicas"] == 1
    claim = find("controller.yaml", "PersistentVolumeClaim")["metadata"]["name"]
    cpod = controller_dep["spec"]["template"]["spec"]
    assert [v["persistentVolumeClaim"]["claimName"] for v in cpod["volumes"]] == [claim]
    assert cpod["containers"][0]["volumeMounts"][0]["mountPath"] == "/data"
    assert cpod["containers"][0]["readinessProbe"]["grpc"] == {"port": 50051}
    assert cpod["containers"][0]["livenessProbe"]["grpc"] == {"port": 50051, "service": "liveness"}
    assert find("controller.yaml", "Service")["metadata"]["name"] == "controller"

    job = find("search-job.yaml", "Job")["spec"]["template"]["spec"]
    job_cmd = job["containers"][0]["command"]
    assert job_cmd[:2] == ["nasrl", "search"]
    assert flag_value(job_cmd, "--trainers") == "dns:///trainer:50052"
    assert flag_value(job_cmd, "--controller") == "controller:50051"
    for spec in (pod, cpod, job):
        assert spec["securityContext"]["runAsNonRoot"] is True

    # dashboard: the controller's image, published port, reads the controller and trainers
    dashboard = service("dashboard")
    assert dashboard["image"] == controller["image"]
    assert "8080:8080" in [str(p) for p in dashboard["ports"]]
    command = argv("dashboard")
    assert command[:2] == ["nasrl", "dashboard"]
    assert flag_value(command, "--controller") == "controller:50051"
    assert flag_value(command, "--trainers") == "dns:///trainer:50052"
    assert flag_value(command, "--host") == "0.0.0.0" and flag_value(command, "--port") == "8080"
    assert dashboard["depends_on"]["controller"]["condition"] == "service_healthy"
    assert "/healthz" in " ".join(dashboard["healthcheck"]["test"])
    dash_dep = find("dashboard.yaml", "Deployment")["spec"]["template"]["spec"]
    (dash_container,) = dash_dep["containers"]
    assert dash_container["command"] == command
    assert dash_container["readinessProbe"]["httpGet"]["path"] == "/healthz"
    assert dash_dep["securityContext"]["runAsNonRoot"] is True
    assert [p["port"] for p in find("dashboard.yaml", "Service")["spec"]["ports"]] == [8080]


# --- the compose commands, run as local processes ---------------------------------------------


def local_service(name: str, tmp_path: Path) -> LocalService:
    """The compose service's argv as a LocalService on 127.0.0.1, port 0."""
    args = argv(name)
    assert args[:2] == ["python", "-m"], f"{name}: expected `python -m MODULE ...`"
    module, rest = args[2], args[3:]
    rest = set_flag(set_flag(rest, "--host", "127.0.0.1"), "--port", "0")
    if flag_value(rest, "--db") is not None:
        rest = set_flag(rest, "--db", str(tmp_path / "controller.db"))
    if flag_value(rest, "--device") is not None:  # no GPU here: the same trainer on the CPU
        rest = set_flag(rest, "--device", "cpu")
    if flag_value(rest, "--gpu-lock-dir") is not None:
        rest = set_flag(rest, "--gpu-lock-dir", str(tmp_path / "gpu-locks"))
    data_dir = flag_value(rest, "--data-dir")
    if data_dir is not None:
        rest = set_flag(rest, "--data-dir", host_folder(name, data_dir))
    return LocalService(module, rest, log_dir=tmp_path / "logs", env=environment(name))


def host_folder(name: str, target: str) -> str | None:
    """The host side of the bind mounted at ``target``, if that folder exists here."""
    for volume in service(name).get("volumes", []):
        parts = with_defaults(str(volume)).split(":")
        if len(parts) >= 2 and parts[1] == target:
            source = (ROOT / parts[0]).resolve()
            return str(source) if source.is_dir() else None
    return None


def search_argv(controller: str, trainers: list[str], tmp_path: Path) -> list[str]:
    args = argv("search")
    assert args[0] == "nasrl"
    args = [sys.executable, "-m", "nasrl.cli", *args[1:]]
    for flag, value in (
        ("--controller", controller),
        ("--trainers", ",".join(trainers)),
        ("--dataset", "digits"),
        ("--budget", "4"),
        ("--epochs", "1"),
        ("--plot", str(tmp_path / "search.png")),
        ("--export-best", str(tmp_path / "best.py")),
    ):
        assert flag_value(args, flag) is not None, f"search command lacks {flag}"
        args = set_flag(args, flag, value)
    return [*args, "--json"]


@pytest.fixture()
def services(tmp_path: Path) -> Iterator[list[LocalService]]:
    started: list[LocalService] = []
    try:
        for name in ("controller", "trainer", "trainer"):
            started.append(local_service(name, tmp_path).start(timeout=120))
        yield started
    finally:
        for svc in started:
            svc.stop(timeout=30)


def _last_json(stdout: str) -> dict[str, Any]:
    for line in reversed(stdout.strip().splitlines()):
        try:
            value = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(value, dict):
            return value
    raise AssertionError(f"no JSON object on stdout:\n{stdout[-2000:]}")


def test_compose_commands_run_locally(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    controller, *trainers = request.getfixturevalue("services")
    env = {**os.environ, **environment("search")}
    result = subprocess.run(
        search_argv(controller.target, [t.target for t in trainers], tmp_path),
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        cwd=tmp_path,
    )
    logs = "\n".join(
        f"--- {s.module} {s.target}\n{s.log()[-1500:]}" for s in (controller, *trainers)
    )
    assert result.returncode == 0, f"{result.stderr[-3000:]}\n{logs}"
    summary = _last_json(result.stdout)
    assert summary["evaluated"] == 4, summary
    for (
        trainer
    ) in trainers:  # both replicas got work (the servicer logs "training ARCH on DATASET")
        assert re.search(r"training .+ on digits", trainer.log()), (
            f"trainer {trainer.target} trained nothing:\n{logs}"
        )
    assert (tmp_path / "search.png").stat().st_size > 0
    assert (tmp_path / "best.py").stat().st_size > 0


def test_dashboard_command_runs_locally(tmp_path: Path) -> None:
    """The compose dashboard's argv, on port 0, against the compose controller run locally:
    it serves its health route and the controller's searches."""
    import urllib.request

    controller = local_service("controller", tmp_path).start(timeout=120)
    args = argv("dashboard")
    args = set_flag(set_flag(args, "--controller", controller.target), "--trainers", None)
    args = set_flag(set_flag(args, "--host", "127.0.0.1"), "--port", "0")
    env = {**os.environ, **environment("dashboard")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "nasrl.cli", *args[1:]],
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline()  # "nasrl dashboard on http://127.0.0.1:PORT/ ..."
        match = re.search(r"http://127\.0\.0\.1:(\d+)/", line)
        assert match, line
        url = f"http://127.0.0.1:{match.group(1)}"
        with urllib.request.urlopen(url + "/healthz", timeout=30) as r:
            assert r.read() == b"ok"
        with urllib.request.urlopen(url + "/api/searches", timeout=30) as r:
            assert json.loads(r.read()) == {"searches": []}
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        controller.stop(timeout=30)
