"""The machine a report was measured on: CPU, cores, kernel, Python, package and tool versions."""

from __future__ import annotations

import contextlib
import importlib.metadata
import os
import platform
import re
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from benchmarks.loadgen import which


def _first_line(argv: Sequence[str]) -> str | None:
    try:
        r = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    lines = (r.stdout + r.stderr).strip().splitlines()
    return lines[0].strip() if lines else None


def package_version(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def _cpuinfo(key: str) -> str | None:
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith(key):
                return line.split(":", 1)[1].strip()
    return None


def tool_version(tool: str) -> str:
    """A one-line version string of wrk, hey or nginx ('not found' when missing)."""
    exe = which(tool)
    if exe is None:
        return f"{tool} not found"
    if tool == "nginx":
        return (_first_line([exe, "-v"]) or "nginx ?").replace("nginx version: ", "")
    if tool == "wrk":
        m = re.search(r"wrk (\S+)", _first_line([exe, "-v"]) or "")
        return f"wrk {m.group(1) if m else '?'}"
    # hey has no version flag: ask the package manager
    line = _first_line(["dpkg-query", "-W", "-f=${Version}", tool])
    return f"{tool} {line if line and 'no packages' not in line else '?'}"


def go_binary_version(path: str) -> str:
    line = _first_line(["go", "version", path])
    return line.rsplit(":", 1)[1].strip() if line and ":" in line else "?"


def summary(packages: Sequence[str], tools: Sequence[str]) -> dict[str, str]:
    virt = " (virtual machine)" if " hypervisor" in (_cpuinfo("flags") or "") else ""
    online = "?"
    with contextlib.suppress(OSError):
        online = Path("/sys/devices/system/cpu/online").read_text().strip()
    python = f"{platform.python_implementation()} {platform.python_version()} ({sys.executable})"
    return {
        "CPU": f"{_cpuinfo('model name') or platform.processor() or 'unknown CPU'}{virt}",
        "cores": f"{os.cpu_count()} (online: {online})",
        "kernel": f"{platform.system()} {platform.release()}",
        "python": python,
        "packages": ", ".join(f"{p} {package_version(p)}" for p in packages),
        "tools": ", ".join(tool_version(t) for t in tools),
    }
