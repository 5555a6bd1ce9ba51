"""The batched llama.cpp engine, on a tiny random-weight GGUF (fast) and on the real default models (realmodel)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("llama_cpp")

from overtonlite.backends.base import PROMPT_TOO_LONG, Generator, GenRequest, GroupResult  # noqa: E402
from overtonlite.backends.llamacpp import LlamaCppGenerator  # noqa: E402
from overtonlite.backends.llamacpp.native import physical_cores  # noqa: E402
from overtonlite.config import SamplingConfig, derive_seed  # noqa: E402
from overtonlite.errors import ModelLoadError, UsageError  # noqa: E402
from tests.tinymodel import CHATML_TEMPLATE, write_tiny_llama  # noqa: E402

SC = SamplingConfig(max_tokens=24)


def _gen(path: Path, **kw) -> LlamaCppGenerator:
    kw.setdefault("n_ctx", 512)
    kw.setdefault("n_threads", 1)  # robust on a busy machine; the tiny model needs no more
    return LlamaCppGenerator(path, **kw)


def _req(key: str, prompt: str, seeds=(1, 2, 3), sampling: SamplingConfig = SC) -> GenRequest:
    return GenRequest(key=key, prompt=prompt, seeds=tuple(seeds), sampling=sampling)


def _texts(results: list[GroupResult]) -> dict[str, list[str]]:
    return {r.key: [s.text for s in r.samples] for r in results}


@pytest.fixture(scope="module")
def tiny(tiny_gguf: Path):
    gen = _gen(tiny_gguf, max_seqs=8)
    yield gen
    gen.close()


@pytest.fixture(scope="module")
def tiny_chat_gguf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_llama(tmp_path_factory.mktemp("tinychat") / "chat.gguf", chat_template=CHATML_TEMPLATE)


def test_protocol_and_describe(tiny: LlamaCppGenerator) -> None:
    assert isinstance(tiny, Generator)
    d = tiny.describe()
    assert d["backend"] == "llama.cpp" and d["llama_cpp_python"]
    assert d["n_threads"] == 1 and d["n_ctx"] == 512 and d["max_seqs"] == 8
    assert d["model_path"].endswith(".gguf") and "system_info" in d
    assert d["omp_wait_policy"] == os.environ.get("OMP_WAIT_POLICY")  # what libgomp was loaded under
    assert "busy_cpus_at_load" in d


def test_physical_cores() -> None:
    n = physical_cores()
    assert 1 <= n <= (os.cpu_count() or 1)


def test_batching_groups_in_flight(tiny: LlamaCppGenerator) -> None:
    reqs = [_req(f"g{i}", f"Prompt {i}: tell me about the sea", seeds=(i, i + 10, i + 20)) for i in range(5)]
    before = dict(tiny.stats)
    hist0 = {b: list(v) for b, v in tiny.steps_by_batch.items()}
    got: list[int] = []
    results = list(tiny.generate(reqs, on_tokens=got.append))
    d = {k: v - before[k] for k, v in tiny.stats.items()}
    calls = d["decode_calls"]
    # the step statistics add up: every token is sampled in a generation-only or a mixed step, every prompt
    # token is evaluated in a mixed step or as a shared prefix, every decode call is one of the three
    assert d["gen_step_tokens"] + d["mixed_step_tokens"] == d["generated_tokens"] == sum(got)
    assert d["mixed_step_prompt_tokens"] + d["prefix_tokens_evaluated"] == d["prompt_tokens_evaluated"] > 0
    assert d["gen_steps"] + d["mixed_steps"] <= calls and d["gen_steps"] > 0 and d["mixed_steps"] > 0
    assert d["gen_step_tokens"] >= d["gen_steps"]  # at least one sequence per step
    assert 0 < d["gen_step_decode_us"] <= d["gen_step_us"] and d["mixed_step_us"] > 0
    # the same generation-only steps, by batch size: counts, tokens and time add up to the totals
    hist = {
        b: (v[0] - hist0.get(b, [0, 0])[0], v[1] - hist0.get(b, [0, 0])[1])
        for b, v in tiny.steps_by_batch.items()
    }
    assert (
        all(1 <= b <= tiny.max_seqs for b in hist) and max(hist) == tiny.max_seqs
    )  # 15 sequences, 8 at once
    assert sum(n for n, _ in hist.values()) == d["gen_steps"]
    assert sum(b * n for b, (n, _) in hist.items()) == d["gen_step_tokens"]
    assert sum(us for _, us in hist.values()) == d["gen_step_us"]
    assert sorted(r.key for r in results) == [f"g{i}" for i in range(5)]
    total = 0
    for r in results:
        assert r.error is None and len(r.samples) == 3 and r.prompt_tokens > 0
        assert [s.seed for s in r.samples] == list(reqs[int(r.key[1:])].seeds)
        assert len({s.text for s in r.samples}) == 3  # the N samples differ
        for s in r.samples:
            assert s.finish_reason in ("eos", "length", "stop") and s.max_tokens == 24
            assert 0 <= s.n_tokens <= 24
        total += sum(s.n_tokens for s in r.samples)
    assert tiny.kv.cells_used == (
        len(tiny.kv.prefix.tokens) if tiny.kv.prefix else 0
    )  # every reservation returned
    # 15 sequences, 8 at a time: far fewer decode calls than one per generated token per sequence
    assert calls <= 4 * 24
    assert sum(got) >= total


def test_seeds_reproducible(tiny_gguf: Path, tiny: LlamaCppGenerator) -> None:
    reqs = [_req("a", "Same prompt", seeds=(5, 6)), _req("b", "Another one", seeds=(7, 8))]
    first = _texts(list(tiny.generate(reqs)))
    second = _texts(list(tiny.generate(reqs)))
    assert first == second
    other = _texts(list(tiny.generate([_req("a", "Same prompt", seeds=(50, 60))])))
    assert other["a"] != first["a"]
    fresh = _gen(tiny_gguf, max_seqs=4)
    try:
        assert _texts(list(fresh.generate(reqs))) == first
    finally:
        fresh.close()


def _chain_distribution(gen: LlamaCppGenerator, row: np.ndarray, sc: SamplingConfig) -> dict[int, float]:
    """What llama.cpp's own chain (top_k -> top_p -> min_p -> temp) keeps of ``row``, as probabilities."""
    import ctypes

    ll = gen.native.ll
    chain = ll.llama_sampler_chain_init(ll.llama_sampler_chain_default_params())
    if sc.top_k > 0:
        ll.llama_sampler_chain_add(chain, ll.llama_sampler_init_top_k(sc.top_k))
    if sc.top_p < 1.0:
        ll.llama_sampler_chain_add(chain, ll.llama_sampler_init_top_p(sc.top_p, 1))
    if sc.min_p > 0:
        ll.llama_sampler_chain_add(chain, ll.llama_sampler_init_min_p(sc.min_p, 1))
    ll.llama_sampler_chain_add(chain, ll.llama_sampler_init_temp(sc.temperature))
    data = (ll.llama_token_data * row.size)(
        *[ll.llama_token_data(i, float(v), 0.0) for i, v in enumerate(row)]
    )
    arr = ll.llama_token_data_array(data, row.size, -1, False)
    ll.llama_sampler_apply(chain, ctypes.byref(arr))
    ll.llama_sampler_free(chain)
    kept = {
        int(arr.data[i].id): float(arr.data[i].logit) for i in range(arr.size) if arr.data[i].logit > -np.inf
    }
    top = max(kept.values())
    p = {t: np.exp(v - top) for t, v in kept.items()}
    total = sum(p.values())
    return {t: v / total for t, v in p.items()}


@pytest.mark.parametrize(
    "sc",
    [
        SamplingConfig(temperature=0.5),
        SamplingConfig(temperature=1.3, top_k=40),
        SamplingConfig(temperature=0.7, top_p=0.8),
        SamplingConfig(temperature=0.9, min_p=0.05, top_k=100),
    ],
)
def test_vectorised_sampler_draws_from_llama_cpp_chain_distribution(tiny: LlamaCppGenerator, sc) -> None:
    from overtonlite.backends.llamacpp.fastsample import SeqRng, distribution, sample_step

    nm = tiny.native
    toks = tiny.tokenize("The quick brown fox")
    nm.clear()
    nm.decode([(t, i, 1, i == len(toks) - 1) for i, t in enumerate(toks)])
    logits, rows = nm.logits_rows([len(toks) - 1])
    row = logits[rows[0]].copy()
    nm.clear()
    ref = _chain_distribution(tiny, row, sc)
    cand, probs = distribution(row, sc)
    assert set(cand.tolist()) == set(ref)  # the same tokens survive top_k / top_p / min_p
    assert np.allclose(probs, [ref[int(t)] for t in cand], rtol=1e-4, atol=1e-7)
    # the draws follow those probabilities (one uniform per sequence and token, from the sample's own seed)
    draws = 20_000
    got = sample_step(row[None, :], [0] * draws, [sc] * draws, [SeqRng(sc, seed) for seed in range(draws)])
    freq = np.bincount(got, minlength=row.size)[cand] / draws
    assert 0.5 * np.abs(freq - probs).sum() < 0.03  # total variation; sampling noise is ~0.01 here


def test_two_thread_sampling_pass_is_bit_identical_and_draws_the_same_tokens() -> None:
    from overtonlite.backends.llamacpp.fastsample import PARALLEL_MIN, SeqRng, Workspace, sample_step

    rng = np.random.default_rng(5)
    rows, vocab = 9, 262_144 + 17  # Gemma-sized rows, odd sizes, a partial last block
    assert rows * vocab >= PARALLEL_MIN  # the two-thread session runs
    logits = (rng.standard_normal((rows, vocab)) * 4).astype(np.float32)
    inv_t = np.full((rows, 1), 2.0, dtype=np.float32)
    one, two = Workspace(threads=1), Workspace(threads=2)
    p1, s1 = one.tempered(logits.copy(), inv_t)
    p1, s1 = p1.copy(), s1.copy()
    p2, s2 = two.tempered(logits.copy(), inv_t)
    assert set(two.sessions) == {2} and set(one.sessions) == {1}
    assert np.array_equal(p1, p2) and np.array_equal(s1, s2)
    # the pass is softmax(logit * inv_t): normalised rows, and the float64 reference within float32 rounding
    x = logits.astype(np.float64) * 2.0
    ref = np.exp(x - x.max(axis=1, keepdims=True))
    ref /= ref.sum(axis=1, keepdims=True)
    assert np.allclose(p1, ref, rtol=1e-5, atol=1e-12)
    assert np.allclose(s1.sum(axis=1), 1.0, atol=1e-5)
    sc = SamplingConfig(temperature=0.5)
    seeds = list(range(rows))
    draw = [
        sample_step(logits.copy(), list(range(rows)), [sc] * rows, [SeqRng(sc, k) for k in seeds], ws)
        for ws in (None, one, two)
    ]
    assert draw[0] == draw[1] == draw[2]
    small = logits[:2, :1000].copy()  # a smaller step reuses the buffer, on one thread
    p3, _ = two.tempered(small, inv_t[:2])
    assert np.shares_memory(p3, two.buf)
    assert set(two.sessions) == {1, 2}
    two.close()
    one.close()


def test_sampler_graph_is_a_valid_onnx_model_and_refuses_negative_fields() -> None:
    from overtonlite.backends.llamacpp import fastsample

    sess = fastsample.softmax_session(1)
    assert [i.name for i in sess.get_inputs()] == ["logits"]
    assert [o.name for o in sess.get_outputs()] == ["probs"]
    (probs,) = sess.run(None, {"logits": np.array([[0.0, np.log(3.0)]], np.float32)})
    assert np.allclose(probs, [[0.25, 0.75]])
    assert fastsample._varint(300) == bytes([0xAC, 0x02])
    with pytest.raises(ValueError):
        fastsample._field(1, -1)


def test_scaling_in_place_gives_the_bits_of_the_graph_with_a_mul_node() -> None:
    """Sampler version 2 first ran ``Softmax(Mul(logits, inv_t))`` as one graph; the rows are now scaled in numpy
    before a Softmax-only graph. Same float32 products, so the same probabilities, bit for bit (the sampler's
    version, which resumed runs check, stays 2)."""
    import onnxruntime as ort

    from overtonlite.backends.llamacpp import fastsample as fs

    f = fs._field
    mul = f(1, "logits") + f(1, "inv_t") + f(2, "scaled") + f(4, "Mul")
    softmax = f(1, "scaled") + f(2, "probs") + f(4, "Softmax") + f(5, f(1, "axis") + f(3, 1) + f(20, 2))
    graph = (
        f(1, mul)
        + f(1, softmax)
        + f(2, "g")
        + f(11, fs._tensor_info("logits", ["rows", "vocab"]))
        + f(11, fs._tensor_info("inv_t", ["rows", 1]))
        + f(12, fs._tensor_info("probs", ["rows", "vocab"]))
    )
    model = f(1, 8) + f(8, f(1, "") + f(2, 13)) + f(7, graph)
    old = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(11)
    logits = (rng.standard_normal((6, 50_000)) * 5).astype(np.float32)
    inv_t = np.array([[1 / 0.5], [1 / 0.7], [1.0], [1 / 1.3], [1 / 0.9], [1 / 0.35]], dtype=np.float32)
    (ref,) = old.run(None, {"logits": logits, "inv_t": inv_t})
    ws = fs.Workspace(threads=2)
    scaled = logits.copy()
    probs, _ = ws.tempered(scaled, inv_t)
    assert np.array_equal(probs, ref)
    assert np.array_equal(scaled, logits * inv_t)  # left scaled, as documented
    with pytest.raises(ValueError, match="in place"):
        ws.tempered(logits[:, ::2], inv_t)  # not contiguous: refused rather than scaled in a copy
    ws.close()


def test_penalty_of_many_rows_at_once_equals_row_by_row() -> None:
    from overtonlite.backends.llamacpp.fastsample import penalize_rows

    rng = np.random.default_rng(3)
    logits = (rng.standard_normal((5, 3000)) * 3).astype(np.float32)
    seens = [rng.choice(3000, size=n, replace=False) for n in (1, 40, 300)]
    rows = [4, 0, 2]
    together = logits.copy()
    penalize_rows(together, rows, seens, 1.3)
    apart = logits.copy()
    for row, seen in zip(rows, seens, strict=True):
        penalize_rows(apart, [row], [seen], 1.3)
    manual = logits.copy()
    for row, seen in zip(rows, seens, strict=True):
        for t in seen:
            v = manual[row, t]
            manual[row, t] = v * np.float32(1.3) if v <= 0 else v / np.float32(1.3)
    assert np.array_equal(together, apart) and np.array_equal(together, manual)
    assert np.array_equal(together[[1, 3]], logits[[1, 3]])  # rows without a penalty are untouched


@pytest.mark.parametrize("unified", [True, False])
def test_logits_rows_follow_llama_cpp_output_order(tiny_gguf: Path, unified: bool) -> None:
    from overtonlite.backends.llamacpp.native import NativeModel

    # unified=False: one stream per sequence, where llama.cpp cuts the batch into micro-batches and reorders
    nm = NativeModel(tiny_gguf, n_kv=1024, n_seq_max=4, n_batch=64, n_threads=1, unified=unified)
    ll = nm.ll
    try:
        toks = nm.tokenize("a b c d e f", add_special=True, parse_special=True)
        # three sequences' prompts in one batch, logits wanted at scattered entries
        entries = [(t, i, seq, (i + seq) % 3 == 0) for seq in (3, 1, 2) for i, t in enumerate(toks)]
        nm.decode(entries)
        wanted = [k for k, e in enumerate(entries) if e[3]]
        logits, rows = nm.logits_rows(wanted)
        assert rows == list(range(len(wanted)))
        for k, r in zip(wanted, rows, strict=True):
            ith = np.ctypeslib.as_array(ll.llama_get_logits_ith(nm.ctx, k), shape=(nm.n_vocab,))
            assert np.array_equal(logits[r], ith)
        view = nm._logits_view
        nm.decode([(toks[0], len(toks), 1, True)])
        again, rows = nm.logits_rows([0])
        assert rows == [0] and again.shape[0] == 1 and nm._logits_view is view  # the view is kept
    finally:
        nm.close()


def test_batch_composition_does_not_change_samples(tiny_gguf: Path) -> None:
    # holds for the f32 tiny model; quantized models may round differently in other batch shapes (documented)
    target = _req("t", "The target prompt", seeds=(11, 12, 13))
    others = [_req(f"o{i}", f"Other prompt {i} with more words", seeds=(i, i + 1)) for i in range(6)]
    alone = _gen(tiny_gguf, max_seqs=3)
    mixed = _gen(tiny_gguf, max_seqs=16)
    try:
        a = _texts(list(alone.generate([target])))
        b = _texts(list(mixed.generate(others[:3] + [target] + others[3:])))
    finally:
        alone.close()
        mixed.close()
    assert a["t"] == b["t"]


def test_max_tokens_and_length(tiny: LlamaCppGenerator) -> None:
    sc = SamplingConfig(max_tokens=5)
    (res,) = tiny.generate([_req("m", "Count", seeds=range(6), sampling=sc)])
    assert len(res.samples) == 6
    for s in res.samples:
        assert s.max_tokens == 5 and s.n_tokens <= 5
        if s.finish_reason == "length":
            assert s.n_tokens == 5
    assert any(s.finish_reason == "length" for s in res.samples)


def test_stop_strings_across_tokens(tiny: LlamaCppGenerator) -> None:
    sc = SamplingConfig(max_tokens=40)
    (free,) = tiny.generate([_req("s", "Stop test prompt", seeds=(3,), sampling=sc)])
    text = free.samples[0].text
    # pick a 3-character printable stop that first occurs at k >= 3 (single-character tokens: it spans tokens)
    k = next(
        i
        for i in range(3, len(text) - 3)
        if text[i : i + 3].isascii() and text[i : i + 3].isprintable() and text.find(text[i : i + 3]) == i
    )
    stop = text[k : k + 3]
    (cut,) = tiny.generate(
        [_req("s", "Stop test prompt", seeds=(3,), sampling=sc.replace(stop=(stop, "NEVER")))]
    )
    s = cut.samples[0]
    assert s.finish_reason == "stop"
    assert s.text == text[:k]
    assert stop not in s.text
    assert 1 <= s.n_tokens < free.samples[0].n_tokens


def test_prompt_too_long_is_recorded(tiny_gguf: Path) -> None:
    gen = _gen(tiny_gguf, n_ctx=32, max_seqs=4)
    try:
        long_prompt = "word " * 40
        out = {r.key: r for r in gen.generate([_req("long", long_prompt), _req("ok", "short")])}
    finally:
        gen.close()
    assert out["long"].error == PROMPT_TOO_LONG and out["long"].samples == []
    assert out["long"].prompt_tokens > 31
    assert out["ok"].error is None and len(out["ok"].samples) == 3
    # generation stops at the per-sequence context: prompt + generated <= n_ctx
    for s in out["ok"].samples:
        assert out["ok"].prompt_tokens + s.n_tokens <= 32


def test_shared_prefix_evaluated_once(tiny_gguf: Path) -> None:
    preamble = "Here are some examples of helpful answers to questions. " * 6
    prompts = [preamble + f"Question {i}: what is {i}? Answer:" for i in range(4)]
    reqs = [_req(f"p{i}", p, seeds=(i, i + 1)) for i, p in enumerate(prompts)]
    reqs.insert(
        1, _req("dup", prompts[0], seeds=(9,))
    )  # an identical prompt must not hijack the cached prefix
    prompts.insert(1, prompts[0])
    shared = _gen(tiny_gguf, max_seqs=4, min_prefix=16)
    plain = _gen(tiny_gguf, max_seqs=4, min_prefix=10_000)
    try:
        with_prefix = list(shared.generate(reqs))
        without = list(plain.generate(reqs))
        n_full = sum(shared.count_tokens(p) for p in prompts)
        prefix_len = shared.stats["prefix_tokens_evaluated"]
        assert shared.stats["prompt_tokens_evaluated"] == sum(r.prompt_tokens_evaluated for r in with_prefix)
        assert plain.stats["prompt_tokens_evaluated"] == n_full
        assert shared.count_tokens(preamble) - 2 <= prefix_len < shared.count_tokens(prompts[0])
        # the prefix once, plus every prompt's own suffix
        assert shared.stats["prompt_tokens_evaluated"] == prefix_len + n_full - 5 * prefix_len
        # a second call reuses the cached prefix: no new prefix evaluation
        again = list(shared.generate(reqs[:2]))
        assert shared.stats["prefix_tokens_evaluated"] == prefix_len
        assert all(r.prompt_tokens_evaluated < r.prompt_tokens for r in again)
        assert shared.kv.cells_used == prefix_len  # only the cached prefix still holds KV cells
    finally:
        shared.close()
        plain.close()
    assert _texts(with_prefix) == _texts(without)


def test_suspend_frees_the_context_and_the_next_call_samples_like_a_fresh_generator(tiny_gguf: Path) -> None:
    preamble = "Here are some examples of helpful answers to questions. " * 6
    reqs = [
        GenRequest(f"p{i}", preamble + f"Question {i}? Answer:", (i, i + 1), SC, cohort=0) for i in range(3)
    ]
    used = _gen(tiny_gguf, max_seqs=4, min_prefix=16)
    fresh = _gen(tiny_gguf, max_seqs=4, min_prefix=16)
    try:
        first = _texts(list(used.generate(reqs)))
        assert used.kv.prefix is not None  # a cached prefix that suspending drops
        n_kv, n_ctx_seq, n_batch = used.native.n_kv, used.native.n_ctx_seq, used.native.n_batch
        used.suspend()
        assert used.native.ctx is None and used.native.mem is None
        assert used.kv.prefix is None and used.kv.cells_used == 0
        assert used.workspace.buf.size == 0
        used.suspend()  # idempotent
        again = _texts(list(used.generate(reqs)))  # a new context, made by generate
        assert (used.native.n_kv, used.native.n_ctx_seq, used.native.n_batch) == (n_kv, n_ctx_seq, n_batch)
        reference = _texts(list(fresh.generate(reqs)))
        it = used.generate(reqs)
        next(it)
        with pytest.raises(UsageError, match="while it is generating"):
            used.suspend()
        it.close()
    finally:
        used.close()
        fresh.close()
    assert first == again == reference
    with pytest.raises(UsageError, match="closed"):
        list(used.generate(reqs))


def test_group_larger_than_sequence_budget(tiny_gguf: Path) -> None:
    gen = _gen(tiny_gguf, max_seqs=2)
    try:
        (res,) = gen.generate([_req("big", "Many samples", seeds=range(5))])
        (ref,) = _gen(tiny_gguf, max_seqs=8).generate([_req("big", "Many samples", seeds=range(5))])
    finally:
        gen.close()
    assert [s.seed for s in res.samples] == list(range(5))
    assert [s.text for s in res.samples] == [s.text for s in ref.samples]


def test_greedy_and_early_close(tiny: LlamaCppGenerator) -> None:
    sc = SamplingConfig(temperature=0.0, max_tokens=12)
    (g,) = tiny.generate([_req("g", "Greedy", seeds=(1, 2), sampling=sc)])
    assert g.samples[0].text == g.samples[1].text  # greedy ignores the seed
    it = tiny.generate([_req(f"x{i}", f"Prompt {i}") for i in range(6)])
    next(it)
    with pytest.raises(UsageError):
        list(tiny.generate([_req("y", "second generate while the first is open")]))
    it.close()  # stop at a group boundary; the engine frees its sequences
    assert tiny.kv.cells_used == 0
    (again,) = tiny.generate([_req("g", "Greedy", seeds=(1, 2), sampling=sc)])
    assert [s.text for s in again.samples] == [s.text for s in g.samples]


def test_chat_template(tiny_chat_gguf: Path, tiny: LlamaCppGenerator) -> None:
    gen = _gen(tiny_chat_gguf, max_seqs=2)
    try:
        assert gen.has_chat_template()
        text = gen.render_chat(
            [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]
        )
        assert (
            text
            == "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
        )
        # control tokens are parsed as single tokens: BOS + <|im_start|> + "user\nHi" ...
        toks = gen.tokenize("<|im_start|>user")
        assert toks[1] == gen.tokenize("<|im_start|>")[1] and len(toks) < len("<|im_start|>user")
        assert gen.tokenize("<s>hi")[:2] != [gen.native.bos, gen.native.bos]  # no doubled BOS
        (res,) = gen.generate([_req("c", text, seeds=(1,))])
        assert res.error is None and len(res.samples) == 1
        with pytest.raises(UsageError):
            gen.render_chat([{"role": "user"}])
    finally:
        gen.close()
    assert not tiny.has_chat_template()
    with pytest.raises(UsageError):
        tiny.render_chat([{"role": "user", "content": "Hi"}])


def test_load_errors(tmp_path: Path, tiny_gguf: Path) -> None:
    with pytest.raises(ModelLoadError, match="not found"):
        LlamaCppGenerator(tmp_path / "missing.gguf")
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(tiny_gguf.read_bytes()[:5000])
    with pytest.raises(ModelLoadError) as info:
        LlamaCppGenerator(broken, n_threads=1)
    assert "\n" not in str(info.value)
    # a well-formed GGUF that llama.cpp cannot build a model from (no tensors at all)
    import gguf

    empty = tmp_path / "empty.gguf"
    writer = gguf.GGUFWriter(str(empty), "llama")
    writer.add_block_count(1)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    with pytest.raises(ModelLoadError, match="cannot load model"):
        LlamaCppGenerator(empty, n_threads=1)
    junk = tmp_path / "junk.gguf"
    junk.write_bytes(b"not a gguf file at all")
    with pytest.raises(ModelLoadError):
        LlamaCppGenerator(junk, n_threads=1)


# -- real default models ------------------------------------------------------------------------------------------
REAL_SC = SamplingConfig(max_tokens=32)


@pytest.mark.realmodel
def test_real_base_same_seed_identical_and_samples_differ(default_base_path: Path) -> None:
    seeds = tuple(derive_seed(0, "oe-1", i) for i in range(4))
    reqs = [_req("a", "The best way to learn a new language is", seeds=seeds, sampling=REAL_SC)]
    gen = LlamaCppGenerator(default_base_path, n_ctx=512, max_seqs=8, n_threads=1)
    try:
        first = _texts(list(gen.generate(reqs)))
        second = _texts(list(gen.generate(reqs)))
    finally:
        gen.close()
    assert first == second
    assert len(set(first["a"])) == 4
    assert all(t.strip() for t in first["a"])


@pytest.mark.realmodel
def test_real_chat_template_applied(default_chat_path: Path) -> None:
    gen = LlamaCppGenerator(default_chat_path, n_ctx=512, max_seqs=4, n_threads=1)
    try:
        assert gen.has_chat_template()
        prompt = gen.render_chat([{"role": "user", "content": "What is the capital of France?"}])
        assert "<|im_start|>user\nWhat is the capital of France?<|im_end|>" in prompt
        assert prompt.endswith("<|im_start|>assistant\n")
        sc = SamplingConfig(max_tokens=32, temperature=0.0)
        (res,) = gen.generate([_req("c", prompt, seeds=(1, 2), sampling=sc)])
        (res2,) = gen.generate([_req("c", prompt, seeds=(1, 2), sampling=sc)])
    finally:
        gen.close()
    answer = res.samples[0].text
    assert "Paris" in answer
    assert "<|im_start|>" not in answer
    assert [s.text for s in res.samples] == [s.text for s in res2.samples]


def test_llama_logging_silenced(tiny_gguf: Path, capfd: pytest.CaptureFixture[str]) -> None:
    gen = _gen(tiny_gguf, max_seqs=2)
    try:
        list(gen.generate([_req("q", "Quiet please", seeds=(1,))]))
    finally:
        gen.close()
    err = capfd.readouterr().err
    assert "llama" not in err and "ggml" not in err


def test_penalty_matches_llama_penalties_sampler(tiny_gguf: Path) -> None:
    """The engine's in-place penalty + vectorised sampler keep the distribution of llama.cpp's penalties ->
    temp chain over the whole context, step after step (greedy path, so both sides see the same context)."""
    import ctypes

    from overtonlite.backends.llamacpp.fastsample import distribution, penalize_rows
    from overtonlite.backends.llamacpp.native import NativeModel

    sc = SamplingConfig(temperature=0.7, repetition_penalty=1.3)
    nm = NativeModel(tiny_gguf, n_kv=512, n_seq_max=1, n_batch=512, n_threads=1)
    ll = nm.ll
    try:
        toks = nm.tokenize("the the the and and is is of of", add_special=True, parse_special=True)
        chain = ll.llama_sampler_chain_init(ll.llama_sampler_chain_default_params())
        ll.llama_sampler_chain_add(
            chain, ll.llama_sampler_init_penalties(nm.n_vocab, 512, sc.repetition_penalty, 0.0, 0.0)
        )
        ll.llama_sampler_chain_add(chain, ll.llama_sampler_init_temp(sc.temperature))
        for t in toks:
            ll.llama_sampler_accept(chain, t)
        context = list(toks)
        nm.decode([(t, i, 0, i == len(toks) - 1) for i, t in enumerate(toks)])
        idx = len(toks) - 1
        for _ in range(12):
            logits, rows = nm.logits_rows([idx])
            row = logits[rows[0]]
            data = (ll.llama_token_data * nm.n_vocab)(
                *[ll.llama_token_data(i, float(v), 0.0) for i, v in enumerate(row)]
            )
            arr = ll.llama_token_data_array(data, nm.n_vocab, -1, False)
            ll.llama_sampler_apply(chain, ctypes.byref(arr))
            ref = np.array([arr.data[i].logit for i in range(nm.n_vocab)], dtype=np.float64)
            ref = np.exp(ref - ref.max())
            ref /= ref.sum()
            seen = np.fromiter(dict.fromkeys(context), dtype=np.int64)
            penalize_rows(logits, rows, [seen], sc.repetition_penalty)
            cand, probs = distribution(row, sc)
            ours = np.zeros(nm.n_vocab)
            ours[cand] = probs
            assert np.allclose(ours, ref, rtol=1e-4, atol=1e-9)
            tok = int(np.argmax(ours))
            ll.llama_sampler_accept(chain, tok)
            context.append(tok)
            nm.decode([(tok, len(context) - 1, 0, True)])
            idx = 0
        ll.llama_sampler_free(chain)
    finally:
        nm.close()


def test_prompt_longer_than_the_batch_with_nothing_else_in_flight(tiny_gguf: Path) -> None:
    """A prompt fed over several decode steps while no sequence is generating: the steps that only feed the prompt
    produce no logits to sample, and must not fail (a long URIAL + hint prompt alone in a cohort did)."""
    gen = _gen(tiny_gguf, max_seqs=4, n_batch=16)
    try:
        long_prompt = " ".join(f"word{i}" for i in range(60))
        results = list(gen.generate([_req("long", long_prompt, seeds=(1, 2))]))
    finally:
        gen.close()
    assert results[0].error is None and len(results[0].samples) == 2
    assert results[0].prompt_tokens > 16
    assert all(s.n_tokens > 0 for s in results[0].samples)


# ---------------------------------------------------------------------------------------------- KV layouts
def test_stream_sizing() -> None:
    from overtonlite.backends.llamacpp import stream_budget, stream_bytes, stream_cells

    assert stream_cells(512) == 512 and stream_cells(513) == 768 and stream_cells(2048) == 2048
    # SmolLM2-135M: 30 layers x 3 KV heads x (64 + 64) dims x 2 bytes = 23,040 bytes a cell, 47 MB a 2,048-cell stream
    smollm = {"general.architecture": "llama", "llama.block_count": 30, "llama.attention.head_count": 9,
              "llama.attention.head_count_kv": 3, "llama.embedding_length": 576}  # fmt: skip
    assert stream_bytes(smollm, 2048, 512) == 23040 * 2048
    # gemma-3-270m: 18 layers x 1 KV head x (256 + 256) x 2 = 18,432 a cell; 15 of 18 layers keep only their
    # 512-token window + a 512-token batch, so 1,024 cells of a 2,048-cell stream
    gemma = {"general.architecture": "gemma3", "gemma3.block_count": 18, "gemma3.attention.head_count": 4,
             "gemma3.attention.head_count_kv": 1, "gemma3.attention.key_length": 256,
             "gemma3.attention.value_length": 256, "gemma3.embedding_length": 640,
             "gemma3.attention.sliding_window": 512}  # fmt: skip
    assert stream_bytes(gemma, 2048, 512) == 1024 * (3 * 2048 + 15 * 1024)
    assert stream_bytes(gemma, 512, 512) == 18432 * 512  # a stream no longer than window + batch: no saving
    assert stream_bytes({}, 2048, 512) == 0
    assert stream_budget(23040 * 2048, 24 << 30) == 16  # (16 + 1) streams fit the 1 GiB cap, (32 + 1) do not
    assert stream_budget(stream_bytes(gemma, 2048, 512), 24 << 30) == 32
    assert stream_budget(23040 * 512, 24 << 30) == 32  # short contexts: more streams in the same bytes
    # an eighth of a small machine's memory is the tighter limit
    assert stream_budget(23040 * 2048, 2 << 30) == 4 and stream_budget(23040 * 2048, 4 << 30) == 8
    assert stream_budget(0, 24 << 30) == stream_budget(23040 * 2048, 0) == 8


def test_kv_layout_is_described_and_part_of_the_settings(tiny_gguf: Path) -> None:
    with pytest.raises(UsageError, match="kv_layout"):
        _gen(tiny_gguf, kv_layout="paged")
    streams = _gen(tiny_gguf, n_ctx=300, max_seqs=3, kv_layout="streams")
    # the default layout, whatever max_tokens
    unified = _gen(tiny_gguf, n_ctx=300, max_seqs=3, max_tokens=512)
    try:
        d = streams.describe()
        assert d["kv_layout"] == "streams" and d["kv_unified"] is False and d["n_ctx_seq"] == 512
        assert streams.n_kv == 512 * 4  # a stream per sample sequence, and one for the prefix cache
        assert streams.schedule_settings()["kv_layout"] == "streams"
        assert unified.describe()["kv_layout"] == "unified"
        assert "kv_layout" not in unified.schedule_settings()  # unified runs keep the keys they always had
    finally:
        streams.close()
        unified.close()


def test_streams_layout_samples_what_the_unified_cache_samples(tiny_gguf: Path) -> None:
    """The f32 tiny model computes the same floats in both layouts, so the texts must match exactly; the run is
    built so that every streams mechanic is exercised: a cached prefix copied and cut back to the shared part,
    siblings copied from the evaluated prompt, and samples moved down to close the gaps finished ones leave."""
    preamble = "Here are some examples of helpful answers to questions. " * 4
    reqs = [
        _req(f"p{i}", preamble + f"Question {i}: what is {i}? Answer:", seeds=(i, i + 1, i + 2),
             sampling=SamplingConfig(max_tokens=6 + 7 * (i % 4)))
        for i in range(7)
    ]  # fmt: skip
    # a later call shares only the preamble with the cached prefix (which also holds "Question "): the copy of the
    # prefix stream is cut back to the shared part
    later = [
        _req("other", preamble + "Tell me a story.", seeds=(5, 6), sampling=SamplingConfig(max_tokens=20))
    ]
    streams = _gen(tiny_gguf, max_seqs=7, min_prefix=16, kv_layout="streams")
    unified = _gen(tiny_gguf, max_seqs=7, min_prefix=16, kv_layout="unified")
    cuts: list[tuple[int, int]] = []
    seq_rm = streams.native.seq_rm

    def spy(seq: int, p0: int = -1) -> None:
        if p0 >= 0:
            cuts.append((seq, p0))
        seq_rm(seq, p0)

    streams.native.seq_rm = spy  # type: ignore[method-assign]
    try:
        a = _texts(list(streams.generate(reqs)))
        b = _texts(list(unified.generate(reqs)))
        assert streams.stats["stream_moves"] > 0 and unified.stats["stream_moves"] == 0
        assert streams.stats["prefix_tokens_evaluated"] == unified.stats["prefix_tokens_evaluated"] > 0
        cached = streams.stats["prefix_tokens_evaluated"]
        a |= _texts(list(streams.generate(later)))
        b |= _texts(list(unified.generate(later)))
        assert streams.stats["prefix_tokens_evaluated"] == cached  # reused, not evaluated again
        assert cuts and all(0 < p0 < cached for _, p0 in cuts)
        assert streams.stats["prompt_tokens_evaluated"] == unified.stats["prompt_tokens_evaluated"]
    finally:
        streams.close()
        unified.close()
    assert a == b
    assert all(len(v) == 3 for k, v in a.items() if k != "other") and len(a["other"]) == 2


def test_a_samples_seen_tokens_array_grows_with_it() -> None:
    from overtonlite.backends.llamacpp.sched import Slot

    slot = Slot(job=None, index=0, seq=1, rng=None, text=None, pos=0)  # type: ignore[arg-type]
    slot.seen = dict.fromkeys([5, 9, 5, 2])
    slot.add_seen(7)  # before the array exists
    assert slot.seen_array().tolist() == [5, 9, 2, 7]
    rng = np.random.default_rng(0)
    for tok in rng.integers(0, 500, size=400).tolist():  # repeats, and past the buffer's first size
        slot.add_seen(tok)
    assert slot.seen_array().tolist() == list(slot.seen)


# -- packing the unified cache's cells (schedule 2) ----------------------------------------------------------------
def _pos_range(nm, seq: int) -> tuple[int, int]:
    return nm.ll.llama_memory_seq_pos_min(nm.mem, seq), nm.ll.llama_memory_seq_pos_max(nm.mem, seq)


def test_pack_cells_moves_the_cells_and_keeps_the_values(tiny_gguf: Path) -> None:
    """A cached prefix (sequence 0), a group of three sharing its prompt and part of the prefix, and a lone
    sequence that finished: after packing, every sequence holds the same positions and the next decode gives the
    same logits (to float rounding: attention now runs over other cells) as without packing."""
    from overtonlite.backends.llamacpp.native import NativeModel
    from overtonlite.backends.llamacpp.sched import pack_cells

    nm = NativeModel(tiny_gguf, n_kv=2048, n_seq_max=6, n_batch=64, n_threads=1, unified=True)
    try:
        toks = nm.tokenize(
            "one two three four five six seven eight nine ten", add_special=True, parse_special=True
        )
        prefix, prompt = 6, len(toks)

        def build() -> None:
            nm.clear()
            nm.decode([(t, i, 0, False) for i, t in enumerate(toks[:prefix])])  # the cached prefix
            nm.seq_cp(0, 1, 0, prefix)
            nm.decode(
                [(t, i, 1, False) for i, t in enumerate(toks) if i >= prefix]
            )  # the group's own prompt part
            for seq in (2, 3):
                nm.seq_cp(1, seq, -1, -1)
            for start in range(0, 300, 50):  # a long sample, later finished
                nm.decode([(toks[0], i, 5, False) for i in range(start, start + 50)])
            for step in range(40):  # the three answers, interleaved with each other's cells
                nm.decode([(toks[(step + seq) % prompt], prompt + step, seq, False) for seq in (1, 2, 3)])
            nm.seq_rm(5)

        def next_logits() -> np.ndarray:
            nm.decode([(toks[seq], prompt + 40, seq, True) for seq in (1, 2, 3)])
            logits, rows = nm.logits_rows([0, 1, 2])
            return np.array(logits[rows])

        build()
        before = {seq: _pos_range(nm, seq) for seq in range(4)}
        plain = next_logits()
        build()
        pack_cells(nm, [([1, 2, 3], prompt, prefix)])
        assert {seq: _pos_range(nm, seq) for seq in range(4)} == before
        packed = next_logits()
        assert packed.shape == plain.shape and np.isfinite(packed).all()
        np.testing.assert_allclose(packed, plain, rtol=0, atol=1e-3 * float(np.abs(plain).max()))
        assert not np.allclose(packed[0], packed[1])  # the siblings' own answers came back, not copies of one
        # the prefix part is shared with sequence 0 again: removing the group leaves the prefix's positions
        for seq in (1, 2, 3):
            nm.seq_rm(seq)
        assert _pos_range(nm, 0) == (0, prefix - 1)
    finally:
        nm.close()


def test_packing_is_deterministic_and_counted(tiny_gguf: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With thresholds that make the scheduler pack after almost every finished sample, every group still
    completes, the texts are reproducible (exact resume needs that), schedule 1 never packs, and the schedule is
    part of the engine settings."""
    from overtonlite.backends.llamacpp import sched

    monkeypatch.setattr(sched, "PACK_RATIO", 1)
    monkeypatch.setattr(sched, "PACK_MIN_CELLS", 0)
    reqs = [_req(f"g{i}", f"Prompt {i}: tell me about the sea", seeds=(i, i + 10, i + 20)) for i in range(5)]
    runs = []
    for schedule in (2, 2, 1):
        gen = _gen(tiny_gguf, max_seqs=8, schedule=schedule)
        try:
            runs.append((_texts(list(gen.generate(reqs))), dict(gen.stats), gen.schedule_settings()))
        finally:
            gen.close()
    (texts, stats, settings), (again, _, _), (_, old_stats, old_settings) = runs
    assert stats["packs"] > 0 and stats["packed_cells"] > 0 and old_stats["packs"] == 0
    assert texts == again and sorted(texts) == [f"g{i}" for i in range(5)]
    assert all(len(v) == 3 for v in texts.values())
    assert settings["schedule"] == 2 and old_settings["schedule"] == 1
    with pytest.raises(UsageError, match="schedule must be one of 1, 2"):
        _gen(tiny_gguf, schedule=7)
