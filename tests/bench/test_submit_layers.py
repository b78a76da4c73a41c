"""``bench submit --layer filing`` stops services, so it must start the system it measures."""

from __future__ import annotations

import pytest

from bench import submit


def test_the_filing_layer_refuses_a_running_system_it_would_have_to_stop(capsys):
    with pytest.raises(SystemExit) as stopped:
        submit.main(["--layer", "filing", "--gateway-url", "http://127.0.0.1:9"])
    assert stopped.value.code == 2
    assert "--layer filing starts its own system" in capsys.readouterr().err


def test_an_unknown_layer_is_refused(capsys):
    with pytest.raises(SystemExit) as stopped:
        submit.main(["--layer", "router"])
    assert stopped.value.code == 2
    assert "invalid choice: 'router'" in capsys.readouterr().err
