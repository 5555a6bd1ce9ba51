"""The ONNX embedder: fast checks of its plumbing, and the real all-MiniLM-L6-v2 on a few texts."""

from __future__ import annotations

import numpy as np
import pytest

from overtonlite.backends.base import Embedder
from overtonlite.backends.onnx import OnnxEmbedder, physical_cores, text_key
from overtonlite.errors import ModelLoadError


def test_physical_cores_positive():
    assert physical_cores() >= 1


def test_text_key_depends_on_model_and_text():
    assert text_key("m", "a") == text_key("m", "a")
    assert text_key("m", "a") != text_key("m2", "a")
    assert text_key("m", "a") != text_key("m", "b")
    assert len(text_key("m", "")) == 64


def test_missing_files_is_a_clear_error(tmp_path):
    (tmp_path / "model.onnx").write_bytes(b"")
    with pytest.raises(ModelLoadError, match="tokenizer.json"):
        OnnxEmbedder(tmp_path, name="x")


TEXTS = [
    "The kettle boiled while we argued about the weather.",
    "Water in the pot was bubbling as we debated whether it would rain.",
    "Quarterly revenue rose by four percent.",
    "",
    "Ünïcödé: 東京は晴れ — émojis 🙂",
]


@pytest.fixture(scope="module")
def emb(minilm_dir, tmp_path_factory):
    return OnnxEmbedder(minilm_dir, name="all-minilm-l6-v2", cache_dir=tmp_path_factory.mktemp("embcache"))


@pytest.mark.realmodel
def test_real_embedder_vectors(emb):
    assert isinstance(emb, Embedder)
    v = emb.embed(TEXTS)
    assert v.shape == (5, 384) and v.dtype == np.float32
    assert np.allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-4)
    sims = v @ v.T
    assert sims[0, 1] > 0.5 > sims[0, 2]  # paraphrase closer than an unrelated sentence
    assert emb.embed([]).shape == (0, 384)


@pytest.mark.realmodel
def test_real_embedder_matches_fastembed(emb, minilm_dir):
    from fastembed import TextEmbedding

    ref = np.stack(
        list(
            TextEmbedding(f"overtonlite-local/{emb.name}", specific_model_path=str(minilm_dir)).embed(
                TEXTS[:3]
            )
        )
    )
    assert np.allclose(emb.embed(TEXTS[:3]), ref, atol=1e-5)


@pytest.mark.realmodel
def test_real_token_states_same_pass(emb):
    vecs, toks = emb.embed_with_tokens(TEXTS)
    counts = emb.count_tokens(TEXTS)
    assert [t.shape[0] for t in toks] == counts  # CLS/SEP/padding removed
    assert toks[3].shape == (0, 384)  # the empty text has no content tokens
    assert np.allclose(vecs, emb.embed(TEXTS), atol=1e-6)


@pytest.mark.realmodel
def test_real_cache_never_embeds_twice(emb, minilm_dir):
    before = emb.n_embedded
    emb.embed(TEXTS)
    emb.embed_with_tokens(TEXTS[:2])
    assert emb.n_embedded == before
    # a fresh embedder on the same cache folder reads the disk cache
    again = OnnxEmbedder(minilm_dir, name="all-minilm-l6-v2", cache_dir=emb.cache_dir)
    v, toks = again.embed_with_tokens(TEXTS)
    assert again.n_embedded == 0
    assert np.allclose(v, emb.embed(TEXTS))
    assert [t.shape for t in toks] == [t.shape for t in emb.embed_with_tokens(TEXTS)[1]]


@pytest.mark.realmodel
def test_real_truncation_and_batching_order_independent(minilm_dir):
    e = OnnxEmbedder(minilm_dir, name="all-minilm-l6-v2", max_length=16, batch_size=2)
    long = "word " * 500
    v, toks = e.embed_with_tokens([long, "short text", TEXTS[0]])
    assert toks[0].shape[0] == 14  # 16 minus CLS and SEP
    assert e.count_tokens([long]) == [500]  # counting does not truncate
    e2 = OnnxEmbedder(minilm_dir, name="all-minilm-l6-v2", max_length=16, batch_size=32)
    assert np.allclose(e2.embed([TEXTS[0], "short text", long]), v[::-1], atol=1e-5)


@pytest.mark.realmodel
def test_real_counts_noted_while_embedding_equal_the_untruncated_tokenizer(minilm_dir):
    texts = [
        "word " * 500,  # truncated at 16: counted from the encoding and its overflowing pieces
        "a text that names [SEP] and [CLS] literally, " * 6,
        "short text",
        "x",
        TEXTS[0],
    ]
    e = OnnxEmbedder(minilm_dir, name="all-minilm-l6-v2", max_length=16, batch_size=2)
    e.embed(texts[:4])
    noted = dict(e._counts)
    assert len(noted) == 4  # the embedded texts, without a second tokenization
    ref = OnnxEmbedder(minilm_dir, name="all-minilm-l6-v2", max_length=16)
    expected = ref.count_tokens(texts)  # nothing embedded: the untruncated tokenizer counts every text
    assert e.count_tokens(texts) == expected
    assert expected[0] == 500 and expected[2:4] == [2, 1]


@pytest.mark.realmodel
def test_real_direct_loader_matches_fastembed_loader(minilm_dir, monkeypatch):
    fe = OnnxEmbedder(minilm_dir, name="all-minilm-l6-v2")

    def no_fastembed(self):
        raise ImportError("fastembed")

    direct = OnnxEmbedder(minilm_dir, name="all-minilm-l6-v2")
    monkeypatch.setattr(OnnxEmbedder, "_load_fastembed", no_fastembed)
    v_direct = direct.embed(TEXTS)
    assert direct.describe()["loader"] == "onnxruntime"
    monkeypatch.undo()
    assert fe.describe()["loader"] == "fastembed"
    assert np.allclose(fe.embed(TEXTS), v_direct, atol=1e-5)


@pytest.mark.realmodel
def test_real_disk_cache_loads_only_requested_texts(minilm_dir, tmp_path):
    cache = tmp_path / "embcache"
    first = OnnxEmbedder(minilm_dir, name="all-minilm-l6-v2", cache_dir=cache)
    first.embed(TEXTS[:3])  # a vector-only shard
    first.embed_with_tokens(TEXTS[3:])  # a shard with token states
    shards = sorted(p.name for p in next(cache.iterdir()).glob("*.npz"))
    assert len(shards) == 2 and sum(n.endswith(".t.npz") for n in shards) == 1

    again = OnnxEmbedder(minilm_dir, name="all-minilm-l6-v2", cache_dir=cache)
    assert np.allclose(again.embed([TEXTS[1]]), first.embed([TEXTS[1]]))
    assert again.n_embedded == 0 and len(again._vecs) == 1  # only the text asked for is read into memory
    _, toks = again.embed_with_tokens([TEXTS[4]])
    assert again.n_embedded == 0 and toks[0].shape[0] == first.count_tokens([TEXTS[4]])[0]
    # the vector-only shard cannot give token states: that text is embedded again, once
    again.embed_with_tokens([TEXTS[0]])
    assert again.n_embedded == 1

    # a broken shard is skipped and its texts are embedded again
    for shard in next(cache.iterdir()).glob("*.npz"):
        shard.write_bytes(b"not a zip")
    broken = OnnxEmbedder(minilm_dir, name="all-minilm-l6-v2", cache_dir=cache)
    broken.embed(TEXTS[:2])
    assert broken.n_embedded == 2
