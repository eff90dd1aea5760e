"""The README's local story, run exactly as printed.

Every ```` ```console ```` block of README.md is part of one session: ``make up`` is
started as the README says (in its own process group, as a user's first terminal),
then each ``$ COMMAND`` line of the blocks is run in order with ``bash -c`` from the
repository, ``.venv/bin`` first on the PATH (as the README tells the user to set it),
and what it prints is compared with the lines printed under it, so the README cannot
drift from what zeroserve does.

Before comparing, both sides are normalised for what varies from run to run and
nothing else: the random suffix of pod names, ages, durations, the user's log and
token paths, the sandbox mode `zeroserve up` picked for this machine (its first
line; as root on Linux it makes pod sandboxes, else plain processes), and runs of spaces (column widths follow the longest name). A command
whose line ends with the comment ``# (counts vary)`` shows figures that depend on
timing (replicas under a load, a rollout's percentages): its digits are compared as
"some number". A command whose line ends with ``&`` runs in the background (stopped
at the end). Each command must exit 0; one shown failing ends with ``# exit N``.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
VENV_BIN = ROOT / ".venv" / "bin"


@dataclass
class Step:
    """One ``$ COMMAND`` line of a console block and the lines printed under it."""

    command: str
    expected: list[str] = field(default_factory=list)
    line: int = 0

    @property
    def background(self) -> bool:
        return self.command.rstrip().endswith("&")

    @property
    def counts_vary(self) -> bool:
        return self.command.rstrip().endswith("# (counts vary)")

    @property
    def exit_code(self) -> int:
        m = re.search(r"# exit (\d+)\s*$", self.command)
        return int(m.group(1)) if m else 0


def console_steps(text: str) -> list[Step]:
    """The steps of every ```` ```console ```` block, in order."""
    steps: list[Step] = []
    inside = False
    for number, line in enumerate(text.splitlines(), 1):
        if not inside:
            inside = line.strip() == "```console"
            continue
        if line.strip() == "```":
            inside = False
        elif line.startswith("$ "):
            steps.append(Step(line[2:], line=number))
        elif steps:
            steps[-1].expected.append(line)
        else:
            raise AssertionError(f"README.md:{number}: output before any `$ ` command")
    return steps


_POD = re.compile(r"(-deployment-)[a-z0-9]{5}\b")
_AGE = re.compile(r"\b\d+(?:s|m|h|d)(?:\d+[smh])?$")
_DURATION = re.compile(r"\b\d+(?:\.\d+)?(?:ms|s)\b")
_LOGS = re.compile(r"logs in \S+?(?=[ ,)]|$)")
_TOKEN = re.compile(r"\S*/control-(\d+)\.json")
_PAGE_TOKEN = re.compile(r"#token=[\w-]+")
_MODE = re.compile(r"^zeroserve up: replicas run .*")


def normalise(lines: list[str], counts_vary: bool = False) -> list[str]:
    """Lines as compared: what varies between runs replaced by a stand-in."""
    out: list[str] = []
    for line in lines:
        # the first line of `zeroserve up` says which sandbox mode this machine gets
        # (root on Linux: pod sandboxes); both are in the README
        line = _MODE.sub("zeroserve up: replicas run (the sandbox mode)", line)
        line = _POD.sub(r"\1<id>", line)
        line = _TOKEN.sub(r"TOKEN-FILE-\1", line)
        line = _PAGE_TOKEN.sub("#token=TOKEN", line)
        line = _LOGS.sub("logs in LOGS", line)
        line = _AGE.sub("AGE", line.rstrip())
        line = _DURATION.sub("DURATION", line)
        if counts_vary:
            line = re.sub(r"\d+", "N", line)
        line = " ".join(line.split())
        if line:
            out.append(line)
    return out


def test_console_blocks_parse_and_normalise() -> None:
    """The parser and the normaliser on a table the size of the README's."""
    text = "\n".join(
        [
            "```console",
            "$ zeroserve get pods",
            "NAME                                   READY   STATUS    RESTARTS   AGE",
            "helloworld-go-00001-deployment-gy54h   2/2     Running   0          5s",
            "$ hey -z 1s http://x >/dev/null &",
            "```",
            "```",
            "$ not run: a plain block",
            "```",
            "```console",
            "$ zeroserve get revisions r   # (counts vary)",
            "r   8   8",
            "$ false   # exit 1",
            "```",
        ]
    )
    steps = console_steps(text)
    assert [s.command for s in steps] == [
        "zeroserve get pods",
        "hey -z 1s http://x >/dev/null &",
        "zeroserve get revisions r   # (counts vary)",
        "false   # exit 1",
    ]
    assert [s.background for s in steps] == [False, True, False, False]
    assert [s.exit_code for s in steps] == [0, 0, 0, 1]
    assert normalise(steps[0].expected) == normalise(
        [
            "NAME                                   READY   STATUS    RESTARTS   AGE",
            "helloworld-go-00001-deployment-abc12   2/2     Running   0          1m12s",
        ]
    )
    assert normalise(["r 8 8"], counts_vary=True) == normalise(["r 10 9"], counts_vary=True)
    assert normalise(["r 8 8"]) != normalise(["r 10 9"])
    assert normalise(["logs in /tmp/zeroserve-abc (local gateway)"]) == [
        "logs in LOGS (local gateway)"
    ]


# What only a first `make up` (or one after a source changed) prints before zeroserve's
# own lines: the installs, and the hot path's build or why there is none.
FIRST_RUN = re.compile(
    r"installing (zeroserve|the compile extra) into |compiling the hot path with mypyc "
    r"|compiled \d+ modules into |zeroserve\.compiled: |make: the hot path is not compiled"
)


def _readme_env(home: Path) -> dict[str, str]:
    env = dict(os.environ)
    # curl draws its progress meter on stderr when its output is not a terminal, as
    # here; in the user's terminal it prints the body alone
    (home / ".curlrc").write_text("no-progress-meter\n")
    env["CURL_HOME"] = str(home)
    # the run's logs go where the README says, under the state directory: the test's
    # own, not the user's (~/.local/state/zeroserve/logs keeps the user's last 5 runs)
    env["XDG_STATE_HOME"] = str(home / "state")
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
    # what the README's user has: no test-run overrides of zeroserve's own settings,
    # and no outer make's flags (`make test` runs this test; the user's `make up` is
    # a make of its own)
    for name in list(env):
        if name.startswith(("ZEROSERVE_", "PYTEST_")) or name in (
            "MAKEFLAGS",
            "MAKELEVEL",
            "MFLAGS",
        ):
            del env[name]
    return env


def _wait_for_banner(up: subprocess.Popen[str], printed: list[str], deadline: float) -> None:
    assert up.stdout is not None
    while time.monotonic() < deadline:
        line = up.stdout.readline()
        if not line:
            raise AssertionError("make up exited before it was up:\n" + "".join(printed))
        printed.append(line)
        if line.startswith("Ctrl-C to stop."):
            return
    raise AssertionError("make up was not up in time:\n" + "".join(printed))


def _stop(proc: subprocess.Popen[str] | subprocess.Popen[bytes], sig: int = signal.SIGINT) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, sig)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


@pytest.mark.process
@pytest.mark.timeout(600)
def test_readme_local_story_as_printed(tmp_path: Path) -> None:
    missing = [tool for tool in ("curl", "hey", "make") if shutil.which(tool) is None]
    if missing:
        pytest.skip(
            f"the README's story calls {', '.join(missing)}, not installed here "
            "(apt-get install curl hey make; .ci/run installs them)"
        )
    text = README.read_text()
    steps = console_steps(text)
    assert steps, "README.md has no console blocks"
    first = steps[0]
    assert first.command.split("#")[0].strip() == "make up", (
        f"README.md:{first.line}: the story starts with `make up`, not {first.command!r}"
    )
    env = _readme_env(tmp_path)
    up = subprocess.Popen(
        ["make", "up"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    background: list[subprocess.Popen[bytes]] = []
    printed: list[str] = []
    try:
        _wait_for_banner(up, printed, time.monotonic() + 180)
        # a fresh clone's first `make up` installs and compiles the hot path first, and
        # says so (the README says it too); a second run goes straight to zeroserve
        shown = [line for line in printed if not FIRST_RUN.match(line)]
        assert normalise(shown) == normalise(first.expected), (
            f"README.md:{first.line}: $ make up\nprinted:\n" + "".join(shown)
        )
        for step in steps[1:]:
            where = f"README.md:{step.line}: $ {step.command}"
            if step.background:
                background.append(
                    subprocess.Popen(
                        ["bash", "-c", step.command.rstrip().removesuffix("&")],
                        cwd=ROOT,
                        env=env,
                        stdout=subprocess.DEVNULL,
                        stderr=subprocess.DEVNULL,
                        start_new_session=True,
                    )
                )
                continue
            done = subprocess.run(
                ["bash", "-c", step.command],
                cwd=ROOT,
                env=env,
                capture_output=True,
                text=True,
                timeout=240,
                check=False,
            )
            got = (done.stdout + done.stderr).splitlines()
            assert done.returncode == step.exit_code, (
                f"{where}\nexit {done.returncode}, expected {step.exit_code}\n" + "\n".join(got)
            )
            assert normalise(got, step.counts_vary) == normalise(step.expected, step.counts_vary), (
                f"{where}\nprinted:\n" + "\n".join(got)
            )
    finally:
        for proc in background:
            _stop(proc, signal.SIGTERM)
        _stop(up)


def _anchor(title: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to dashes."""
    return re.sub(r"[^\w\- ]", "", title.lower()).replace(" ", "-")


def test_contents_lists_every_section() -> None:
    """The README's Contents is its headings after the quickstart, in order, linked."""
    text = README.read_text()
    _, _, body = text.partition("## Contents\n")
    assert body, "README.md has no '## Contents'"
    listed = re.findall(r"^ *- \[(.+)\]\(#(.+)\)$", body.split("\n## ", 1)[0], re.M)
    headings = re.findall(r"^#{2,3} (.+)$", "## " + body.split("\n## ", 1)[1], re.M)
    assert [title for title, _ in listed] == headings
    assert [anchor for _, anchor in listed] == [_anchor(title) for title in headings]
