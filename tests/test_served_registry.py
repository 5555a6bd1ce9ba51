"""Served (endpoint) entries in models.toml: parsing, validation, and how the rest of the registry tooling
treats them (nothing to pull, listed as endpoint)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from overtonlite.errors import RegistryError, SourceError
from overtonlite.registry import load_registry

SERVED = """
default_pair = "served"
default_embedder = "srv-emb"

[models.srv-base]
family = "gemma3"
role = "base"
[models.srv-base.source]
kind = "endpoint"
base_urls = ["http://127.0.0.1:8001/v1", "http://127.0.0.1:8002/v1"]
model = "gemma-base"

[models.srv-chat]
family = "smollm2"
role = "chat"
context_length = 2048
stop = ["<|im_end|>"]
[models.srv-chat.source]
kind = "endpoint"
base_urls = ["http://127.0.0.1:8003/v1"]
model = "smol"
api_key_env = "MY_SERVER_KEY"
concurrency = 2
timeout = 30
retries = 1

[models.local-chat]
family = "x"
role = "chat"
format = "gguf"
context_length = 2048
licence = "MIT"
filename = "c.gguf"
[models.local-chat.source]
kind = "path"
path = "c.gguf"

[embedders.srv-emb]
family = "minilm"
[embedders.srv-emb.source]
kind = "endpoint"
base_urls = ["http://127.0.0.1:8004/v1"]
model = "emb"

[pairs.served]
base = "srv-base"
chat = "srv-chat"

[pairs.mixed]
base = "srv-base"
chat = "local-chat"
"""


def _write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "models.toml"
    p.write_text(textwrap.dedent(text), encoding="utf-8")
    return p


def test_served_entries_parse(tmp_path: Path) -> None:
    reg = load_registry(_write(tmp_path, SERVED))
    base, chat = reg.model("srv-base"), reg.model("srv-chat")
    assert base.served and base.file is None and base.format == "endpoint" and base.context_length == 0
    assert base.endpoint.base_urls == ("http://127.0.0.1:8001/v1", "http://127.0.0.1:8002/v1")
    assert base.endpoint.model == "gemma-base" and base.endpoint.api_key_env is None
    assert (base.endpoint.concurrency, base.endpoint.timeout, base.endpoint.retries) == (4, 600.0, 3)
    assert chat.endpoint.api_key_env == "MY_SERVER_KEY" and chat.endpoint.concurrency == 2
    assert chat.endpoint.timeout == 30.0 and chat.endpoint.retries == 1 and chat.stop == ("<|im_end|>",)
    assert chat.context_length == 2048
    assert not reg.model("local-chat").served
    emb = reg.embedder("srv-emb")
    assert emb.served and emb.files == () and emb.endpoint.model == "emb"
    assert reg.pair("mixed").base == "srv-base" and not reg.pair("served").same_family
    # the manifest form names the key's variable, never a key
    assert chat.endpoint.to_dict()["api_key_env"] == "MY_SERVER_KEY"


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ('model = "smol"', 'model = "smol"\nbase_url = "x"', "models.srv-chat.source.base_url: unknown key"),
        ('model = "smol"\n', "", "models.srv-chat.source.model: missing required key"),
        (
            'api_key_env = "MY_SERVER_KEY"',
            'api_key_env = "sk-abc123secret"',
            "models.srv-chat.source.api_key_env: expected the name of an environment variable (never a key)",
        ),
        (
            '["http://127.0.0.1:8003/v1"]',
            '["127.0.0.1:8003"]',
            "models.srv-chat.source.base_urls[0]: expected",
        ),
        (
            '["http://127.0.0.1:8003/v1"]',
            '["http://u:p@127.0.0.1:8003/v1"]',
            "models.srv-chat.source.base_urls[0]: credentials do not belong",
        ),
        ('["http://127.0.0.1:8003/v1"]', "[]", "models.srv-chat.source.base_urls: needs at least one URL"),
        ("concurrency = 2", "concurrency = 0", "models.srv-chat.source.concurrency: must be >= 1"),
        (
            'role = "chat"\ncontext_length',
            'role = "chat"\nsha256 = "' + "a" * 64 + '"\ncontext_length',
            "models.srv-chat.sha256: not used with an endpoint source",
        ),
        (
            'role = "chat"\ncontext_length',
            'role = "chat"\nfilename = "x.gguf"\ncontext_length',
            "models.srv-chat.filename: not used with an endpoint source",
        ),
        (
            'role = "chat"\ncontext_length',
            'role = "chat"\nsize = 12\ncontext_length',
            "models.srv-chat.size: not used with an endpoint source",
        ),
        (
            'family = "minilm"',
            'family = "minilm"\nfiles = []',
            "embedders.srv-emb.files: not used with an endpoint",
        ),
        (
            'role = "base"\n',
            'role = "base"\nformat = "gguf"\n',
            "models.srv-base.format: must be one of endpoint",
        ),
        ("timeout = 30", "timeout = -1", "models.srv-chat.source.timeout: must be positive"),
    ],
)
def test_served_entry_errors_name_the_key_path(tmp_path: Path, old: str, new: str, message: str) -> None:
    assert old in SERVED
    with pytest.raises(RegistryError) as err:
        load_registry(_write(tmp_path, SERVED.replace(old, new, 1)))
    assert message in str(err.value), str(err.value)


def test_served_entries_have_nothing_to_pull(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from overtonlite.sources import ensure_embedder, ensure_model, entry_files, model_sha256

    monkeypatch.setenv("OVERTONLITE_HOME", str(tmp_path / "home"))
    reg = load_registry(_write(tmp_path, SERVED))
    with pytest.raises(SourceError, match="served by an endpoint"):
        ensure_model(reg.model("srv-base"))
    with pytest.raises(SourceError, match="served by an endpoint"):
        ensure_embedder(reg.embedder("srv-emb"))
    assert entry_files(reg.model("srv-base"))[0] == [] and model_sha256(reg.model("srv-base")) is None


def test_models_list_and_info_show_served_entries(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import json

    from click.testing import CliRunner

    from overtonlite.cli import cli

    monkeypatch.setenv("OVERTONLITE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("OVERTONLITE_MODELS", str(_write(tmp_path, SERVED)))
    res = CliRunner().invoke(cli, ["models", "list", "--json"])
    assert res.exit_code == 0, res.output
    rows = {r["name"]: r for r in json.loads(res.output)["entries"]}
    assert rows["srv-base"]["source"] == "endpoint" and rows["srv-base"]["sha"] == "served"
    assert rows["srv-emb"]["source_detail"] == ["endpoint:emb@http://127.0.0.1:8004/v1"]
    res = CliRunner().invoke(cli, ["models", "info", "srv-chat", "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)["endpoint"]["base_urls"] == ["http://127.0.0.1:8003/v1"]
