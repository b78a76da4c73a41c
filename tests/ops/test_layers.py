"""The import rules of the README hold, and ``lint-imports`` catches a break of each one.

Each case copies the packages (their ``.py`` files) and ``pyproject.toml`` into a temporary
folder, adds one import the rules forbid, and runs ``lint-imports`` there: it must fail and
name the broken contract. The untouched copy passes every contract.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("portal_common", "services", "gateway", "deploy", "bench", "portal")
LIBRARY_BELOW = "The gateway and the services sit above the shared library"
GATEWAY_ALONE = "The gateway imports no service"
SERVICES_APART = "Services are independent of each other"
FEW_IMPORTERS = "Only the launcher, the benchmarks and the tests import services"
PORTAL_OUTSIDE = "The web portal reaches the system only through the gateway's public HTTP API"


def _lint_imports() -> str:
    """The ``lint-imports`` of the running interpreter's environment (a test extra)."""
    beside = Path(sys.executable).with_name("lint-imports")
    found = str(beside) if beside.exists() else shutil.which("lint-imports")
    assert found, "lint-imports is not installed: pip install -e '.[test]'"
    return found


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    for package in PACKAGES:
        for source in (ROOT / package).rglob("*.py"):
            target = tmp_path / source.relative_to(ROOT)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, target)
    shutil.copyfile(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def _run(tree: Path) -> subprocess.CompletedProcess:
    return subprocess.run([_lint_imports(), "--config", str(tree / "pyproject.toml"), "--no-cache"],
                          cwd=tree, capture_output=True, text=True, timeout=120)


def test_the_clean_tree_keeps_every_contract(tree):
    result = _run(tree)
    assert result.returncode == 0, result.stdout + result.stderr
    for contract in (LIBRARY_BELOW, GATEWAY_ALONE, SERVICES_APART, FEW_IMPORTERS, PORTAL_OUTSIDE):
        assert f"{contract} KEPT" in result.stdout, result.stdout


@pytest.mark.parametrize(("module", "offence", "contract"), [
    ("services/dossier/ops.py", "import services.router.schemas", SERVICES_APART),
    ("services/identity/ops.py", "from services.catalog import domain", SERVICES_APART),
    ("portal_common/ops.py", "import services.dossier.ops", LIBRARY_BELOW),
    ("portal_common/metrics.py", "import gateway.http.problems", LIBRARY_BELOW),
    ("gateway/routes/dossiers.py", "import services.dossier.domain.lifecycle", GATEWAY_ALONE),
    ("deploy/local.py", "import services.catalog.seed", FEW_IMPORTERS),
    ("portal/views/catalog.py", "import gateway.http.problems", PORTAL_OUTSIDE),
    ("portal/api.py", "from portal_common import config", PORTAL_OUTSIDE),
    ("portal/views/filing.py", "import services.dossier.domain.documents", PORTAL_OUTSIDE),
])
def test_a_forbidden_import_breaks_its_contract(tree, module, offence, contract):
    path = tree / module
    path.write_text(path.read_text() + f"\n{offence}  # the offence under test\n")
    result = _run(tree)
    assert result.returncode != 0, result.stdout
    assert f"{contract} BROKEN" in result.stdout, result.stdout
    assert offence.split()[1] in result.stdout, result.stdout  # the report names the offending import
