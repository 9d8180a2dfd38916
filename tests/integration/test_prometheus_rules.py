"""deploy/prometheus/alerts.yml through Prometheus's own checker: `promtool check rules` (and
`check config` for the compose stack's prometheus.yml), and `promtool test rules` with
alerts.test.yml, which feeds series and says which alerts fire when.

promtool comes from Debian's `prometheus` package (.ci/run installs it). Outside CI a machine
without it skips these tests; with CI=true a missing promtool fails them."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "deploy" / "prometheus"


@pytest.fixture(scope="module")
def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        message = "promtool is not installed (Debian: apt-get install prometheus)"
        if os.environ.get("CI") == "true":
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    return found


def run(promtool: str, *args: str, cwd: Path = RULES) -> subprocess.CompletedProcess:
    return subprocess.run([promtool, *args], cwd=cwd, capture_output=True, text=True, timeout=120)


def test_the_rules_and_the_config_pass_promtools_checks(promtool: str) -> None:
    checked = run(promtool, "check", "rules", "alerts.yml")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    rules = [r for g in yaml.safe_load((RULES / "alerts.yml").read_text())["groups"] for r in g["rules"]]
    assert f"SUCCESS: {len(rules)} rules found" in checked.stdout
    for rule in rules:  # what an on-call person reads: a severity, a summary and a description
        assert rule["labels"]["severity"] in {"critical", "warning", "info"}, rule["alert"]
        assert rule["annotations"]["summary"] and rule["annotations"]["description"], rule["alert"]
    config = run(promtool, "check", "config", "prometheus.yml")
    assert config.returncode == 0, config.stdout + config.stderr


def test_rule_unit_tests_show_alerts_firing_on_given_series(promtool: str) -> None:
    tested = run(promtool, "test", "rules", "alerts.test.yml")
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "SUCCESS" in tested.stdout
    firing = {
        case["alertname"]
        for test in yaml.safe_load((RULES / "alerts.test.yml").read_text())["tests"]
        for case in test["alert_rule_test"]
        if case["exp_alerts"]
    }
    assert len(firing) >= 2, firing  # at least two rules proven to fire, not only to stay quiet


def test_a_broken_rule_fails_its_unit_test(promtool: str, tmp_path: Path) -> None:
    """The unit tests can fail: with the revoked-token rule's threshold moved, promtool reports
    the alert the test expects as missing."""
    rules = (RULES / "alerts.yml").read_text()
    broken = rules.replace('max(vkcp_vk_tokens{state="REVOKED"}) > 0', 'max(vkcp_vk_tokens{state="REVOKED"}) > 1')
    assert broken != rules
    (tmp_path / "alerts.yml").write_text(broken)
    shutil.copy(RULES / "alerts.test.yml", tmp_path / "alerts.test.yml")
    tested = run(promtool, "test", "rules", "alerts.test.yml", cwd=tmp_path)
    assert tested.returncode != 0
    assert "VkcpVkTokenRevoked" in tested.stdout + tested.stderr
