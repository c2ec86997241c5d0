"""The [request] section and the [backend] streaming keys: validation, defaults, the echo
keeps ${VAR} literally, files relative to the scenario, and `run` accepts (ignores) them."""

import json
import subprocess
import sys
import textwrap

import pytest

from simrouter.config import Scenario, load_scenario, scenario_from_dict
from simrouter.errors import ConfigError


def load(section, **extra):
    return scenario_from_dict({"request": section, **extra})


def test_default_is_todays_protocol_and_echo_is_small():
    r = Scenario().request
    assert (r.protocol, r.effective_path, r.effective_method, r.effective_stream) == ("simrouter", "/submit", "POST", False)
    assert Scenario().to_dict()["request"] == {"protocol": "simrouter"}


def test_openai_defaults():
    r = load({"protocol": "openai-completions", "model": "m"}).request
    assert (r.effective_path, r.effective_stream) == ("/v1/completions", True)


@pytest.mark.parametrize(
    "section, field, text",
    [
        ({"protocol": "openai"}, "request.protocol", "expected one of 'simrouter', 'openai-chat'"),
        ({"protocl": "http"}, "request.protocl", "did you mean 'protocol'"),
        ({"protocol": "openai-chat"}, "request.model", "needs a model"),
        ({"protocol": "http", "model": "m"}, "request.model", "only the openai-chat and openai-completions"),
        ({"protocol": "simrouter", "stream": True}, "request.stream", "only the openai"),
        ({"protocol": "openai-chat", "model": "m", "max_tokens": 0}, "request.max_tokens", ">= 1"),
        ({"protocol": "openai-chat", "model": "m", "body": "{}"}, "request.body", "only the http protocol"),
        ({"protocol": "openai-chat", "model": "m", "method": "GET"}, "request.method", 'only protocol = "http"'),
        ({"protocol": "http", "method": "GE T"}, "request.method", "expected an HTTP method"),
        ({"protocol": "http", "path": "v1/x"}, "request.path", "starting with /"),
        ({"protocol": "http", "body": '{"p": {promt}}'}, "request.body", "placeholders {user}, {seq}, {prompt}"),
        ({"protocol": "http", "headers": {"Bad Name": "x"}}, "request.headers.Bad Name", "header name"),
        ({"protocol": "http", "headers": {"Content-Length": "1"}}, "request.headers.Content-Length", "set by the client"),
        ({"protocol": "http", "headers": {"A": "${NOT CLOSED"}}, "request.headers.A", "malformed environment reference"),
        ({"protocol": "http", "headers": "Authorization: x"}, "request.headers", "expected a table"),
        ({"protocol": "http", "headers": {"A": 1}}, "request.headers.A", "expected a string"),
        ({"protocol": "http", "prompts": "/nonexistent/p.jsonl"}, "request.prompts", "cannot read"),
    ],
)
def test_request_errors_name_the_field(section, field, text):
    with pytest.raises(ConfigError) as info:
        load(section)
    assert info.value.field == field and text in info.value.message


def test_echo_keeps_env_references_and_round_trips(monkeypatch):
    monkeypatch.setenv("G_CFG_SECRET", "sk-do-not-echo")
    section = {"protocol": "openai-chat", "model": "m", "headers": {"Authorization": "Bearer ${G_CFG_SECRET}"}, "path": "/v1/chat/completions?key=${G_CFG_SECRET}"}
    scenario = load(section)
    dumped = json.dumps(scenario.to_dict())
    assert "${G_CFG_SECRET}" in dumped and "sk-do-not-echo" not in dumped
    assert scenario_from_dict(scenario.to_dict()) == scenario
    assert scenario.replace(["request.max_tokens=9"]).request.max_tokens == 9


def test_prompts_file_relative_to_scenario_and_line_errors(tmp_path):
    (tmp_path / "p.jsonl").write_text('"one"\n\n{"messages": []}\n')
    (tmp_path / "s.toml").write_text('[request]\nprotocol = "openai-chat"\nmodel = "m"\nprompts = "p.jsonl"\n')
    scenario = load_scenario(tmp_path / "s.toml")
    assert scenario.request.prompts == str(tmp_path / "p.jsonl")
    (tmp_path / "p.jsonl").write_text('"one"\n[1]\n')
    with pytest.raises(ConfigError, match=r"line 2: expected a JSON string"):
        load_scenario(tmp_path / "s.toml")
    (tmp_path / "p.jsonl").write_text("not json\n")
    with pytest.raises(ConfigError, match=r"line 1 is not JSON"):
        load_scenario(tmp_path / "s.toml")


def test_backend_streaming_keys_validate_and_default_echo_is_unchanged():
    scenario = scenario_from_dict(
        {
            "backend": {
                "ttft": {"dist": "lognormal", "median": 0.2, "sigma": 0.5},
                "tpot": {"dist": "constant", "value": 0.02},
                "output_tokens": {"dist": "gamma", "mean": 100, "cv": 0.5},
                "failures": {"stream_cut": 0.1, "stream_error": 0.05},
            }
        }
    )
    assert scenario_from_dict(scenario.to_dict()) == scenario
    default = Scenario().to_dict()["backend"]
    assert not {"ttft", "tpot", "output_tokens"} & set(default) and not {"stream_cut", "stream_error"} & set(default["failures"])
    with pytest.raises(ConfigError) as info:
        scenario_from_dict({"backend": {"failures": {"stream_cut": 2}}})
    assert info.value.field == "backend.failures.stream_cut"


def test_run_accepts_the_request_section(tmp_path):
    path = tmp_path / "s.toml"
    path.write_text(
        textwrap.dedent(
            """
            duration = 2
            [workload]
            users = 2
            requests_per_user = 5
            [request]
            protocol = "openai-chat"
            model = "m"
            headers = { Authorization = "Bearer ${G_RUN_UNSET_VARIABLE}" }
            """
        )
    )
    out = tmp_path / "r.json"
    done = subprocess.run([sys.executable, "-m", "simrouter", "run", str(path), "--json", str(out)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert json.loads(out.read_text())["config"]["request"]["headers"] == {"Authorization": "Bearer ${G_RUN_UNSET_VARIABLE}"}
