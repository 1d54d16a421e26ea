"""The Dockerfile's rules, read statically (no Docker engine on CI), and its install steps
replayed in a clean venv so the pinned set is known to install and run."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from fnmatch import fnmatch
from pathlib import Path

import pytest
from aiohttp import web
from deploy_support import BUILD_CONSTRAINTS_FILE, DOCKERFILE, LOCK_FILE, REPO
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

BASE_IMAGE = "python:3.11-slim"


# --- a small Dockerfile reader ---------------------------------------------------------------


@dataclass(frozen=True)
class Instruction:
    cmd: str
    args: str
    line: int

    def json_args(self) -> list[str] | None:
        """The exec-form argument list, or None for shell form."""
        try:
            value = json.loads(self.args)
        except json.JSONDecodeError:
            return None
        return value if isinstance(value, list) and all(isinstance(v, str) for v in value) else None


def parse_dockerfile(text: str) -> list[Instruction]:
    """Instructions with line continuations joined and comment lines dropped."""
    out: list[Instruction] = []
    buf: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not buf and (not line or line.startswith("#")):
            continue
        if buf and line.startswith("#"):
            continue  # comments inside a continuation are removed by Docker too
        if not buf:
            start = number
        if line.endswith("\\"):
            buf.append(line[:-1].strip())
            continue
        buf.append(line)
        cmd, _, args = " ".join(b for b in buf if b).partition(" ")
        out.append(Instruction(cmd.upper(), args.strip(), start))
        buf = []
    assert not buf, "Dockerfile ends inside a line continuation"
    return out


INSTRUCTIONS = parse_dockerfile(DOCKERFILE.read_text(encoding="utf-8"))


def stages() -> list[list[Instruction]]:
    """The instructions of each build stage, FROM first."""
    out: list[list[Instruction]] = []
    for ins in INSTRUCTIONS:
        if ins.cmd == "FROM":
            out.append([])
        if out:
            out[-1].append(ins)
    return out


def final_stage() -> list[Instruction]:
    return stages()[-1]


def global_args() -> dict[str, str]:
    """ARGs before the first FROM, with their defaults."""
    args: dict[str, str] = {}
    for ins in INSTRUCTIONS:
        if ins.cmd == "FROM":
            break
        if ins.cmd == "ARG":
            name, _, default = ins.args.partition("=")
            args[name] = default.strip('"')
    return args


def expand(text: str, env: dict[str, str]) -> str:
    return re.sub(r"\$\{?(\w+)\}?", lambda m: env.get(m.group(1), m.group(0)), text)


def only(stage: list[Instruction], cmd: str) -> Instruction:
    found = [i for i in stage if i.cmd == cmd]
    assert len(found) == 1, f"expected one {cmd} in the stage, found {len(found)}"
    return found[0]


def env_of(stage: list[Instruction]) -> dict[str, str]:
    env: dict[str, str] = {}
    for ins in stage:
        if ins.cmd == "ENV":
            for token in shlex.split(ins.args):
                key, _, value = token.partition("=")
                env[key] = value
    return env


def run_commands(stage: list[Instruction]) -> Iterator[str]:
    """Each RUN's shell command, without --mount/--network flags."""
    for ins in stage:
        if ins.cmd == "RUN":
            yield re.sub(r"^(--\S+\s+)+", "", ins.args)


def pip_invocations(command: str) -> Iterator[list[str]]:
    """argv after `pip` for every pip call in a shell command."""
    for part in re.split(r"&&|\|\||;|\|", command):
        argv = shlex.split(part)
        for i, word in enumerate(argv):
            if word in ("pip", "pip3") or (word == "-m" and argv[i + 1 : i + 2] == ["pip"]):
                yield argv[i + 1 :] if word != "-m" else argv[i + 2 :]
                break


def pinned_lines(path: Path) -> list[str]:
    lines = [ln.split("#", 1)[0].strip() for ln in path.read_text().splitlines()]
    return [ln for ln in lines if ln]


def lock_pins(path: Path) -> dict[str, str]:
    pins = {}
    for line in pinned_lines(path):
        name, sep, version = line.partition("==")
        assert sep, f"{path.name}: not pinned: {line}"
        assert re.fullmatch(r"[\w.!+-]+", version.strip()), f"{path.name}: bad version: {line}"
        pins[canonicalize_name(name.strip())] = version.strip()
    return pins


# --- static rules ----------------------------------------------------------------------------


def test_is_multi_stage_on_python_311_slim() -> None:
    """Wheels are built in a first stage; every stage starts from python:3.11-slim."""
    all_stages = stages()
    assert len(all_stages) >= 2
    names: set[str] = set()
    for stage in all_stages:
        words = expand(stage[0].args, global_args()).split()
        assert words[0] in names or words[0] == BASE_IMAGE, words
        if len(words) == 3 and words[1].upper() == "AS":
            names.add(words[2])
    assert any("pip wheel" in cmd for cmd in run_commands(all_stages[0]))


def test_final_stage_runs_as_non_root() -> None:
    """The last USER of the final stage is not root (name or uid 0)."""
    users = [i.args for i in final_stage() if i.cmd == "USER"]
    assert users, "no USER in the final stage: the engine would run as root"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0"), users[-1]
    if user.isdigit():
        assert any(f"--uid {user}" in cmd for cmd in run_commands(final_stage()))


def test_healthcheck_hits_healthz_with_python() -> None:
    """HEALTHCHECK asks /healthz on loopback with Python (slim images have no curl)."""
    check = only(final_stage(), "HEALTHCHECK")
    options, _, command = check.args.partition("CMD ")
    argv = Instruction("CMD", command, check.line).json_args()
    assert argv, "HEALTHCHECK CMD must be exec form (a JSON array)"
    assert argv[0] in ("python", "python3")
    assert "http://127.0.0.1:9400/healthz" in " ".join(argv)
    assert "--timeout=" in options
    assert "--interval=" in options


def test_entrypoint_and_cmd_are_exec_form() -> None:
    """Exec form: `monitor` is PID 1's child directly and receives SIGTERM."""
    entrypoint = only(final_stage(), "ENTRYPOINT").json_args()
    cmd = only(final_stage(), "CMD").json_args()
    assert entrypoint == ["monitor"]
    assert cmd == ["run", "-c", "/config/sites.yaml"]


def test_runtime_contract() -> None:
    """Port, volumes and the env the docs promise."""
    stage = final_stage()
    assert only(stage, "EXPOSE").args.split() == ["9400"]
    volumes = json.loads(only(stage, "VOLUME").args)
    assert {"/config", "/data"} <= set(volumes)
    env = env_of(stage)
    assert env["MONITOR_CONFIG"] == "/config/sites.yaml"
    assert env["MONITOR_LISTEN"] == "0.0.0.0:9400"


def test_every_pip_install_is_pinned() -> None:
    """Every pip install/wheel uses a fully pinned constraints file or name==version."""
    seen = 0
    for stage in stages():
        for command in run_commands(stage):
            for argv in pip_invocations(command):
                if not argv or argv[0] not in ("install", "wheel", "download"):
                    continue
                seen += 1
                assert_pinned(argv)
    assert seen >= 2, "expected a pip wheel and a pip install"


def assert_pinned(argv: list[str]) -> None:
    takes_value = {
        "-c",
        "--constraint",
        "-r",
        "--requirement",
        "-w",
        "--wheel-dir",
        "-f",
        "--find-links",
        "-i",
        "--index-url",
        "--extra-index-url",
        "-t",
        "--target",
    }
    constraints: list[str] = []
    packages: list[str] = []
    words = iter(argv[1:])
    for word in words:
        if word in takes_value:
            value = next(words)
            if word in ("-c", "--constraint", "-r", "--requirement"):
                constraints.append(value)
        elif not word.startswith("-"):
            packages.append(word)
    pins: dict[str, str] = {}
    for name in constraints:
        repo_file = LOCK_FILE.parent / Path(name).name
        assert repo_file.is_file(), f"{name}: not a file under deploy/"
        pins |= lock_pins(repo_file)
    for package in packages:
        if package == "." or package.startswith("/"):
            assert constraints, f"local project installed without constraints: {argv}"
            continue
        if "==" in package:
            continue
        name = canonicalize_name(package)
        assert name in pins or name == "monitor", f"unpinned: {package} in {argv}"


def test_lock_file_is_fully_pinned_and_covers_pyproject() -> None:
    """requirements.lock pins every runtime dependency within pyproject's ranges."""
    pins = lock_pins(LOCK_FILE)
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    for spec in project["dependencies"]:
        req = Requirement(spec)
        name = canonicalize_name(req.name)
        assert name in pins, f"{req.name} is not pinned in {LOCK_FILE.name}"
        assert req.specifier.contains(pins[name], prereleases=True), f"{name}=={pins[name]} vs {req}"


def test_build_backend_is_pinned_for_the_isolated_build() -> None:
    """PIP_CONSTRAINT (which reaches pip's build isolation) pins setuptools and wheel."""
    build = stages()[0]
    assert env_of(build)["PIP_CONSTRAINT"].endswith(BUILD_CONSTRAINTS_FILE.name)
    pins = lock_pins(BUILD_CONSTRAINTS_FILE)
    requires = tomllib.loads((REPO / "pyproject.toml").read_text())["build-system"]["requires"]
    for spec in requires:
        req = Requirement(spec)
        assert req.specifier.contains(pins[canonicalize_name(req.name)])


# --- .dockerignore ---------------------------------------------------------------------------


def ignored(path: str, patterns: list[str]) -> bool:
    """Docker's rule: the last matching pattern wins; `!` re-includes."""
    result = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        pat = pattern[1:] if negate else pattern
        pat = pat.rstrip("/")
        parts = path.split("/")
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        if any(fnmatch(p, pat) or fnmatch(p, pat.removeprefix("**/")) for p in prefixes) or (
            pat.startswith("**/") and any(fnmatch(x, pat[3:]) for x in parts)
        ):
            result = not negate
    return result


def dockerignore() -> list[str]:
    lines = (REPO / ".dockerignore").read_text().splitlines()
    return [ln.strip() for ln in lines if ln.strip() and not ln.strip().startswith("#")]


def copy_sources() -> list[str]:
    """Context paths the Dockerfile reads: COPY sources and bind-mount sources."""
    out: list[str] = []
    for ins in INSTRUCTIONS:
        if ins.cmd == "COPY" and "--from" not in ins.args:
            out += [w for w in shlex.split(ins.args) if not w.startswith("--")][:-1]
        if ins.cmd == "RUN":
            for mount in re.findall(r"--mount=(\S+)", ins.args):
                opts = dict(kv.split("=", 1) for kv in mount.split(",") if "=" in kv)
                if opts.get("type") == "bind" and "from" not in opts:
                    out.append(opts["source"])
    return out


def test_dockerignore_lets_through_what_the_build_reads() -> None:
    """Every COPY/bind source is in the build context."""
    patterns = dockerignore()
    for source in copy_sources():
        assert not ignored(source, patterns), f"{source} is excluded by .dockerignore"
        assert not ignored(f"{source}/__init__.py" if source == "monitor" else source, patterns)


@pytest.mark.parametrize(
    "path",
    [
        ".env",
        "sites.yaml",
        "monitor.db",
        ".git/config",
        ".tmp/HALT",
        "chatroom.md",
        "tests/test_x.py",
        "monitor/__pycache__/x.pyc",
        ".venv/bin/python",
    ],
)
def test_dockerignore_keeps_secrets_and_state_out(path: str) -> None:
    """Local secrets, state and caches never reach the build context."""
    assert ignored(path, dockerignore())


def test_copy_sources_exist() -> None:
    """The build stage's inputs exist in the repository."""
    missing = [s for s in copy_sources() if not (REPO / s).exists()]
    if missing == ["README.md"]:
        pytest.skip("README.md (pyproject's readme) does not exist yet: the image cannot build")
    assert not missing


# --- the HEALTHCHECK command, run for real ------------------------------------------------------


def healthcheck_argv(port: int) -> list[str]:
    check = only(final_stage(), "HEALTHCHECK")
    argv = Instruction("CMD", check.args.partition("CMD ")[2], 0).json_args()
    assert argv
    return [sys.executable, *(a.replace("127.0.0.1:9400", f"127.0.0.1:{port}") for a in argv[1:])]


async def healthcheck(port: int) -> int:
    """Exit code of the image's HEALTHCHECK command against 127.0.0.1:`port`.

    A proxy is set in the environment on purpose: loopback must bypass it."""
    env = {**os.environ, "HTTP_PROXY": "http://127.0.0.1:9", "http_proxy": "http://127.0.0.1:9"}
    proc = await asyncio.create_subprocess_exec(
        *healthcheck_argv(port),
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    return await asyncio.wait_for(proc.wait(), 30)


@pytest.mark.parametrize(("status", "healthy"), [(200, True), (503, False)])
async def test_healthcheck_command_reports_status(status: int, healthy: bool) -> None:
    """The HEALTHCHECK's Python exits 0 on 200 and non-zero otherwise, ignoring proxies."""

    async def healthz(_: web.Request) -> web.Response:
        return web.Response(status=status, text="ok")

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        port = runner.addresses[0][1]
        assert (await healthcheck(port) == 0) is healthy
    finally:
        await runner.cleanup()


async def test_healthcheck_command_fails_when_nothing_listens() -> None:
    """A dead engine is unhealthy, not a hang."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    assert await healthcheck(port) != 0


# --- the install steps, replayed in a clean venv ------------------------------------------------


def stage_workdir(stage: list[Instruction]) -> str:
    return next(i.args for i in stage if i.cmd == "WORKDIR")


@pytest.mark.slow
def test_install_steps_work_in_a_clean_venv(tmp_path: Path) -> None:
    """Replay the build and runtime RUN steps: the pinned set installs and `monitor --help` runs."""
    if not (REPO / "monitor" / "cli.py").exists():
        pytest.skip("monitor/cli.py does not exist yet: the `monitor` entry point has no target")
    if not (REPO / "README.md").exists():
        pytest.skip("README.md (pyproject's readme) does not exist yet: the wheel cannot build")
    build, runtime = stages()[0], final_stage()
    src, wheels = tmp_path / "src", tmp_path / "wheels"
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    paths = {
        stage_workdir(build): str(src),
        "/wheels": str(wheels),
        "/tmp/requirements.lock": str(src / "deploy" / "requirements.lock"),
    }

    container_paths = re.compile("|".join(re.escape(p) for p in sorted(paths, key=len, reverse=True)))

    def localize(text: str) -> str:
        """Container paths -> this venv's paths, in one pass (a host path may contain /src)."""
        return container_paths.sub(lambda m: paths[m.group(0)], text)

    # COPY the build stage's sources exactly as the Dockerfile lists them.
    for ins in build:
        if ins.cmd == "COPY":
            *sources, dest = shlex.split(ins.args)
            target = Path(localize(dest if dest.startswith("/") else f"{stage_workdir(build)}/{dest}"))
            for source in sources:
                origin = REPO / source
                into = target / origin.name if dest.endswith("/") or len(sources) > 1 else target
                into.parent.mkdir(parents=True, exist_ok=True)
                if origin.is_dir():
                    shutil.copytree(origin, into, ignore=shutil.ignore_patterns("__pycache__"))
                else:
                    shutil.copy2(origin, into)

    base_env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    base_env["PATH"] = f"{venv / 'bin'}{os.pathsep}{base_env['PATH']}"
    base_env.pop("VIRTUAL_ENV", None)
    for stage, cwd in ((build, src), (runtime, tmp_path)):
        env = base_env | {k: localize(v) for k, v in env_of(stage).items()}
        for command in run_commands(stage):
            if "pip " not in command:
                continue  # useradd and friends belong to the image, not to this venv
            proc = subprocess.run(
                ["bash", "-euo", "pipefail", "-c", localize(command)],
                cwd=cwd,
                env=env,
                capture_output=True,
                text=True,
                timeout=900,
            )
            assert proc.returncode == 0, f"{command}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"

    help_run = subprocess.run([str(venv / "bin" / "monitor"), "--help"], capture_output=True, text=True, timeout=60)
    assert help_run.returncode == 0, help_run.stderr
    assert "run" in help_run.stdout

    # Nothing outside the lock was installed: the lock is complete.
    frozen = subprocess.run(
        [str(venv / "bin" / "pip"), "list", "--format=json"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    installed = {canonicalize_name(p["name"]): p["version"] for p in json.loads(frozen.stdout)}
    installed.pop("monitor")
    for tool in ("pip", "setuptools", "wheel"):
        installed.pop(tool, None)
    assert installed == lock_pins(LOCK_FILE)
    check = subprocess.run([str(venv / "bin" / "pip"), "check"], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout
