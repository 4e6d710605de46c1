"""Linters: hadolint on the Dockerfile, checkov on the Dockerfile and the rendered overlays.

checkov's skipped checks are documented where they are skipped: `checkov.io/skipN`
annotations on the resources and `# checkov:skip=` comments in the Dockerfile, each with
its reason. hadolint needs no exceptions.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.deploy.manifests import BROKEN, DOCKERFILE, BrokenOverlay, run

# The broken Dockerfile: tini unpinned, and the image ends up running as root.
DOCKERFILE_MISTAKES = [
    ("tini=0.19.0-1+b3", "tini"),
    ('ENTRYPOINT ["/usr/bin/tini"', 'USER root\nENTRYPOINT ["/usr/bin/tini"'),
]
# Each broken manifest and the checkov check that must fail for it.
CAUGHT_BY_CHECKOV = {
    "missing-probe": "CKV_K8S_9",  # readiness probe
    "missing-memory-limit": "CKV_K8S_13",
    "privilege-escalation": "CKV_K8S_20",
}


def checkov(executable: str, files: list[Path], workdir: Path) -> dict[str, set[str]]:
    """Run checkov once over all files; return the failed check ids per file name.

    `--skip-download`: no network; the checks ship with the package.
    """
    args = [executable, "--skip-download", "--compact", "--quiet", "--output", "json"]
    args += ["--framework", "kubernetes", "dockerfile"]
    for path in files:
        args += ["--file", str(path)]
    result = run(args, cwd=workdir)
    assert result.returncode in (0, 1), f"checkov failed to run:\n{result.stderr[-3000:]}"
    reports: Any = json.loads(result.stdout) if result.stdout.strip() else []
    failed: dict[str, set[str]] = {path.name: set() for path in files}
    for report in reports if isinstance(reports, list) else [reports]:
        summary = report.get("summary", {})
        assert summary.get("parsing_errors") == 0, summary
        assert summary.get("passed", 0) + summary.get("failed", 0) > 0, f"checkov checked nothing: {summary}"
        for check in report.get("results", {}).get("failed_checks", []):
            failed[Path(check["file_path"]).name].add(check["check_id"])
    return failed


def hadolint(executable: str, dockerfile: Path) -> tuple[int, str]:
    result = run([executable, "--no-color", str(dockerfile)])
    return result.returncode, result.stdout + result.stderr


@pytest.fixture(scope="session")
def broken_dockerfile(tmp_path_factory: pytest.TempPathFactory) -> Path:
    text = DOCKERFILE.read_text()
    for old, new in DOCKERFILE_MISTAKES:
        assert old in text, f"the Dockerfile changed: update DOCKERFILE_MISTAKES ({old!r})"
        text = text.replace(old, new)
    path = tmp_path_factory.mktemp("broken-docker") / "Dockerfile"
    path.write_text(text)
    return path


def test_hadolint_passes(tool: Callable[[str], str]) -> None:
    code, output = hadolint(tool("hadolint"), DOCKERFILE)
    assert code == 0, output


def test_hadolint_catches_a_broken_dockerfile(tool: Callable[[str], str], broken_dockerfile: Path) -> None:
    code, output = hadolint(tool("hadolint"), broken_dockerfile)
    assert code != 0
    assert "DL3008" in output, output  # apt package not pinned
    assert "DL3002" in output, output  # last USER is root


def test_checkov_passes(tool: Callable[[str], str], rendered: dict[str, Path], tmp_path: Path) -> None:
    failed = checkov(tool("checkov"), [*rendered.values(), DOCKERFILE], tmp_path)
    assert failed == {name: set() for name in failed}


def test_checkov_catches_broken_manifests_and_dockerfile(
    tool: Callable[[str], str], broken: BrokenOverlay, broken_dockerfile: Path, tmp_path: Path
) -> None:
    files = [broken.make(variant, BROKEN[variant]) for variant in sorted(CAUGHT_BY_CHECKOV)]
    failed = checkov(tool("checkov"), [*files, broken_dockerfile], tmp_path)
    for variant, check in CAUGHT_BY_CHECKOV.items():
        assert check in failed[f"broken-{variant}.yaml"], (variant, failed)
    assert "CKV_DOCKER_8" in failed["Dockerfile"], failed  # last USER is root
