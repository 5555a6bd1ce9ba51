"""Check overtonlite's metrics against the paper authors' released data (validation only).

    python benchmarks/reference_check.py --data ../shared/reference [--out check.json] [--calibrate]
        [--embedder NAME] [--no-cache]

Prints a markdown report: per LIMA-OE system the Jaccard (authors' definition and --lowercase) and mean words
against the paper-protocol numbers; stance accuracy and Cohen's kappa against the GPT-4 labels; the coverage
Spearman rho against the GPT-4 missing-information scores; similarity to llama-2-chat sample 0 of every system
against the self-baseline (cosine, BERTScore-style F1 on MiniLM token states, Jaccard) with the ordering of
paper-protocol §3.6; the cross-prompt relevance distribution behind the default quality threshold; wall times.
``--calibrate`` also runs the coverage threshold grid and prints the constants for overtonlite/metrics/coverage.py.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from overtonlite.metrics import coverage as cov_mod  # noqa: E402
from overtonlite.metrics import lexical  # noqa: E402
from overtonlite.metrics.sentences import split_sentences  # noqa: E402
from overtonlite.paper import BERTSCORE_TO_CHAT as PAPER_BERTSCORE  # noqa: E402
from overtonlite.paper import JACCARD_TO_CHAT as PAPER_JACCARD_TO_REF  # noqa: E402
from overtonlite.paper import LEXICAL as PAPER_LEXICAL  # noqa: E402
from overtonlite.scoring.inputs import clean_text  # noqa: E402


def spearman(x: list[float], y: list[float]) -> float:
    try:
        from overtonlite.metrics.stats import spearman as sp

        return float(sp(x, y))
    except ImportError:

        def ranks(v: list[float]) -> np.ndarray:
            a = np.asarray(v, float)
            order = a.argsort(kind="mergesort")
            r = np.empty(len(a))
            r[order] = np.arange(len(a))
            for val in np.unique(a):  # average ties
                m = a == val
                r[m] = r[m].mean()
            return r

        return float(np.corrcoef(ranks(x), ranks(y))[0, 1])


def jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def open_embedder(name: str | None, cache: bool):
    from overtonlite.backends.onnx import open_default_embedder

    return open_default_embedder(name, cache=cache)


def lexical_section(responses: list[dict], summary) -> tuple[list[str], dict]:
    rows = [
        "| system | Jaccard (authors') | paper | Jaccard (--lowercase) | paper | mean words | paper |",
        "|---|---|---|---|---|---|---|",
    ]
    out = {}
    for system in dict.fromkeys(r["system"] for r in responses):
        groups = [[clean_text(t) for t in r["samples"]] for r in responses if r["system"] == system]
        j = summary.systems[system]["sets"]["all"]["jaccard"]["mean"]
        jl = float(
            np.mean(
                [v for g in groups if (v := lexical.mean_pairwise_jaccard(g, lowercase=True)) is not None]
            )
        )
        words = summary.systems[system]["sets"]["all"]["words_mean"]["mean"]
        p = PAPER_LEXICAL.get(system)
        out[system] = {"jaccard": j, "jaccard_lowercase": jl, "words_mean": words, "paper": p}
        ps = [f"{v:.4f}" if p else "–" for v in (p or (0, 0, 0))[:2]]
        rows.append(
            f"| {system} | {j:.4f} | {ps[0]} | {jl:.4f} | {ps[1]} | {words:.0f} | {p[2] if p else '–'} |"
        )
    paper_sys = [s for s in PAPER_LEXICAL if s in out]
    rank_ok = sorted(paper_sys, key=lambda s: out[s]["jaccard"]) == sorted(
        paper_sys, key=lambda s: PAPER_LEXICAL[s][0]
    )
    max_dev = max(abs(out[s]["jaccard"] - PAPER_LEXICAL[s][0]) for s in paper_sys)
    max_dev_l = max(abs(out[s]["jaccard_lowercase"] - PAPER_LEXICAL[s][1]) for s in paper_sys)
    rows.append(f"\nmax |Δ| authors' {max_dev:.4f}, lowercase {max_dev_l:.4f}; identical ranking: {rank_ok}")
    return rows, {
        "systems": out,
        "max_dev": max_dev,
        "max_dev_lowercase": max_dev_l,
        "ranking_identical": rank_ok,
    }


def stance_section(data: Path) -> tuple[list[str], dict]:
    from overtonlite.metrics import stance

    prompts = {r["id"]: r["prompt"] for r in jsonl(data / "conflictingqa" / "prompts.jsonl")}
    recs = jsonl(data / "conflictingqa" / "stance-calibration.jsonl")
    t = time.perf_counter()
    pred = [stance.classify_stance(prompts[r["prompt_id"]], r["response"]) for r in recs]
    secs = time.perf_counter() - t
    gold = [r["stance"] for r in recs]
    acc = float(np.mean([a == b for a, b in zip(pred, gold, strict=True)]))
    kappa = float(stance.cohen_kappa(pred, gold))
    both = float(np.mean([p == "both" for p in pred]))
    rows = [
        f"stance on {len(recs)} GPT-3.5 responses vs GPT-4 labels: accuracy {acc:.3f}, Cohen's κ {kappa:.3f}, "
        f"'both' rate {both:.3f} (GPT-4 {np.mean([g == 'both' for g in gold]):.3f}); {secs:.1f}s"
    ]
    return rows, {"n": len(recs), "accuracy": acc, "kappa": kappa, "both_rate": both, "seconds": secs}


def coverage_section(data: Path, emb, calibrate: bool) -> tuple[list[str], dict]:
    recs = jsonl(data / "lima-oe" / "judge-missing-calibration.jsonl")
    refs = [clean_text(r["reference"]) for r in recs]
    alts = [clean_text(r["alternative"]) for r in recs]
    y = [int(r["score"]) for r in recs]
    sents = {t: split_sentences(t) for t in set(refs + alts)}
    uniq = list(dict.fromkeys(s for v in sents.values() for s in v))
    vec = dict(zip(uniq, emb.embed(uniq), strict=True))

    def sv(t: str) -> np.ndarray:
        return np.stack([vec[s] for s in sents[t]]) if sents[t] else np.zeros((0, emb.dim))

    best = [cov_mod.best_match(sv(a), sv(r)) for a, r in zip(alts, refs, strict=True)]

    def cov_at(tau: float) -> list[float]:
        return [float((b >= tau - 1e-12).mean()) if b.size else 0.0 for b in best]

    out: dict = {}
    rows: list[str] = []
    if calibrate:
        grid = {
            round(float(t), 3): spearman([1 - c for c in cov_at(t)], y)
            for t in np.arange(0.30, 0.8001, 0.025)
        }
        tau = max(grid, key=lambda t: grid[t])
        cuts = cov_mod.calibrate_cuts(cov_at(tau), y)
        out["grid"], out["calibrated_tau"], out["calibrated_cuts"] = grid, tau, cuts
        rows.append(f"calibration grid (tau: rho) {json.dumps(grid)}")
        rows.append(f"calibrated tau {tau}, cuts {tuple(round(c, 4) for c in cuts)}")
    cal = getattr(emb, "calibration", None)  # the embedder's registry calibration, else the module defaults
    tau_used = cal.coverage_tau if cal else cov_mod.DEFAULT_TAU
    cuts_used = tuple(cal.missing_cuts) if cal else cov_mod.MISSING_CUTS
    cov = cov_at(tau_used)
    rho = spearman([1 - c for c in cov], y)
    proxy = [cov_mod.missing_proxy(c, cuts_used) for c in cov]
    rho_p = spearman(proxy, y)
    dist = [float(np.mean([p == k for p in proxy])) for k in range(1, 6)]
    rows.append(
        f"coverage (tau {tau_used}) vs GPT-4 missing score on {len(recs)} pairs: Spearman ρ(1−coverage) "
        f"{rho:.3f}, ρ(proxy) {rho_p:.3f}; proxy mean {np.mean(proxy):.2f} (GPT-4 {np.mean(y):.2f}), "
        f"share ≤2 {np.mean([p <= 2 for p in proxy]):.3f} (GPT-4 {np.mean([s <= 2 for s in y]):.3f}), "
        f"distribution {[round(d, 3) for d in dist]}"
    )
    out.update(
        {
            "tau": tau_used,
            "missing_cuts": list(cuts_used),
            "rho": rho,
            "rho_proxy": rho_p,
            "proxy_mean": float(np.mean(proxy)),
            "gpt4_mean": float(np.mean(y)),
            "proxy_distribution": dist,
        }
    )
    held_rows, out["heldout"] = proxy_heldout(
        cov_at(tau_used), [len(a.split()) for a in alts], y, [int(r["prompt_id"]) for r in recs]
    )
    rows += ["", *held_rows]
    return rows, out


def proxy_heldout(
    cov: list[float], alt_words: list[int], y: list[int], pids: list[int], k: int = 5
) -> tuple[list[str], dict]:
    """Missing-information proxies validated on held-out prompts (fold = prompt id mod k, everything refitted on the
    other folds): coverage alone (cut points refitted) and the length-adjusted coverage (beta and cut points
    refitted). Only llama-2-base alternatives carry GPT-4 judgments, so no system can be held out."""
    c, w, t, p = (np.asarray(v, dtype=float) for v in (cov, alt_words, y, pids))
    out: dict = {}
    rows = [
        "| proxy (prompts held out, 5 folds) | ρ continuous | ρ 1–5 | share ≤ 2 | GPT-4 | per-fold error of share ≤ 2 |",
        "|---|---|---|---|---|---|",
    ]
    for name in ("coverage", "length-adjusted coverage"):
        cont, proxy, errs = np.zeros(len(t)), np.zeros(len(t)), []
        for f in range(k):
            te, tr = p % k == f, p % k != f
            if name == "coverage":
                beta = 0.0
            else:
                a = np.column_stack([np.ones(int(tr.sum())), c[tr], np.log1p(w[tr])])
                coef = np.linalg.lstsq(a, t[tr], rcond=None)[0]
                beta = float(coef[2] / -coef[1])
            adj = c - beta * np.log1p(w)
            cuts = cov_mod.calibrate_cuts(adj[tr], t[tr])
            cont[te] = adj[te]
            proxy[te] = [cov_mod.missing_proxy(v, cuts) for v in adj[te]]
            errs.append(float(np.mean(proxy[te] <= 2) - np.mean(t[te] <= 2)))
        res = {
            "rho": spearman(list(-cont), list(t)),
            "rho_proxy": spearman(list(proxy), list(t)),
            "share_le2": float(np.mean(proxy <= 2)),
            "gpt4_share_le2": float(np.mean(t <= 2)),
            "fold_errors": errs,
        }
        out[name] = res
        rows.append(
            f"| {name} | {res['rho']:.3f} | {res['rho_proxy']:.3f} | {res['share_le2']:.3f} | "
            f"{res['gpt4_share_le2']:.3f} | {', '.join(f'{e:+.2f}' for e in errs)} |"
        )
    return rows, out


def similarity_section(summary) -> tuple[list[str], dict]:
    rows = [
        "| system (vs llama-2-chat s0) | cosine | F1 raw | F1 rescaled | Jaccard | coverage | paper BERTScore F1 |"
        " paper Jaccard |",
        "|---|---|---|---|---|---|---|---|",
    ]
    out = {}
    every = {s: e["sets"]["all"] for s, e in summary.systems.items()}  # the "all" set of summary.json
    order = sorted(every, key=lambda s: -(every[s]["bertscore_f1_to_ref"]["mean"] or 0))
    for s in order:
        m = every[s]
        vals = {
            k: m[k]["mean"]
            for k in (
                "cosine_to_ref",
                "bertscore_f1_to_ref",
                "bertscore_f1_to_ref_rescaled",
                "jaccard_to_ref",
                "coverage",
            )
        }
        out[s] = vals
        name = f"**{s} (self, s1–s4)**" if s == "llama-2-chat" else s
        pb, pj = PAPER_BERTSCORE.get(s), PAPER_JACCARD_TO_REF.get(s)
        rows.append(
            f"| {name} | {vals['cosine_to_ref']:.4f} | {vals['bertscore_f1_to_ref']:.4f} | "
            f"{vals['bertscore_f1_to_ref_rescaled']:.4f} | {vals['jaccard_to_ref']:.4f} | "
            f"{vals['coverage']:.3f} | {pb if pb else '–'} | {pj if pj else '–'} |"
        )
    common = [s for s in PAPER_BERTSCORE if s in out]
    rho_f1 = spearman([out[s]["bertscore_f1_to_ref"] for s in common], [PAPER_BERTSCORE[s] for s in common])
    rho_cos = spearman([out[s]["cosine_to_ref"] for s in common], [PAPER_BERTSCORE[s] for s in common])
    common_j = [s for s in PAPER_JACCARD_TO_REF if s in out]
    rho_j = spearman(
        [out[s]["jaccard_to_ref"] for s in common_j], [PAPER_JACCARD_TO_REF[s] for s in common_j]
    )
    rows.append(
        f"\nrank agreement with the paper over {len(common)} systems: Spearman ρ F1 {rho_f1:.3f}, cosine "
        f"{rho_cos:.3f} (vs paper BERTScore); Jaccard {rho_j:.3f} over {len(common_j)} systems (vs paper "
        f"Jaccard)"
    )
    return rows, {
        "systems": out,
        "rho_f1_vs_paper": rho_f1,
        "rho_cos_vs_paper": rho_cos,
        "rho_jaccard_vs_paper": rho_j,
    }


def relevance_section(data: Path, emb, responses: list[dict]) -> tuple[list[str], dict]:
    prompts = {r["id"]: r["prompt"] for r in jsonl(data / "lima-oe" / "prompts.jsonl")}
    pids = sorted(prompts)
    q = dict(zip(pids, emb.embed([prompts[p] for p in pids]), strict=True))
    own, cross = [], []
    rng = np.random.default_rng(0)
    for r in responses:
        texts = [t for t in (clean_text(x) for x in r["samples"]) if t]
        if not texts:
            continue
        v = emb.embed(texts)
        own += list(v @ q[r["prompt_id"]])
        others = [p for p in pids if p != r["prompt_id"]]
        for p in rng.choice(others, size=3, replace=False):
            cross += list(v @ q[int(p)])
    p95 = float(np.quantile(cross, 0.95))
    rows = [
        f"relevance cos(query, answer): own prompt median {np.median(own):.3f}, cross-prompt median "
        f"{np.median(cross):.3f}, cross-prompt 95th percentile {p95:.3f} (the default quality threshold); "
        f"share of answers below it {np.mean(np.asarray(own) < p95):.3f}"
    ]
    return rows, {
        "own_median": float(np.median(own)),
        "cross_median": float(np.median(cross)),
        "cross_p95": p95,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared" / "reference")
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--embedder", default=None)
    ap.add_argument("--calibrate", action="store_true")
    ap.add_argument("--no-cache", action="store_true", help="do not use the on-disk embedding cache")
    ap.add_argument("--skip-stance", action="store_true")
    args = ap.parse_args(argv)
    from overtonlite.scoring import score_input

    data: Path = args.data
    responses_path = data / "lima-oe" / "responses.jsonl"
    responses = jsonl(responses_path)
    emb = open_embedder(args.embedder, cache=not args.no_cache)
    report: dict = {"embedder": emb.describe(), "wall": {}}
    lines = [f"## Reference check ({emb.name})", ""]
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        summary = score_input(responses_path, out=tmp, reference_system="llama-2-chat", embedder=emb)
        report["wall"]["score_lima_oe_with_reference"] = time.perf_counter() - t
        report["wall"]["score_timings"] = summary.timings
    rows, report["lexical"] = lexical_section(responses, summary)
    lines += ["### Lexical diversity and length (LIMA-OE)", "", *rows, ""]
    if not args.skip_stance:
        rows, report["stance"] = stance_section(data)
        lines += ["### Stance (ConflictingQA)", "", *rows, ""]
    t = time.perf_counter()
    rows, report["coverage"] = coverage_section(data, emb, args.calibrate)
    report["wall"]["coverage_calibration"] = time.perf_counter() - t
    lines += ["### Coverage vs GPT-4 missing information (LIMA-OE)", "", *rows, ""]
    rows, report["similarity"] = similarity_section(summary)
    bs = summary.settings.get("bertscore") or {}
    lines += [
        "### Similarity to llama-2-chat sample 0 (LIMA-OE)",
        "",
        f"F1 = BERTScore-style F1 (MiniLM token states); rescaling baseline {bs.get('baseline', 0):.4f} "
        f"({bs.get('baseline_source')}).",
        "",
        *rows,
        "",
    ]
    rows, report["relevance"] = relevance_section(data, emb, responses)
    lines += ["### Relevance (quality proxy)", "", *rows, ""]
    w = report["wall"]
    lines += [
        "### Wall times",
        "",
        f"score (11 systems, 2,750 responses, with reference): "
        f"{w['score_lima_oe_with_reference']:.1f}s ({', '.join(f'{k} {v:.1f}s' for k, v in w['score_timings'].items())})",
    ]
    print("\n".join(lines))
    if args.out:
        args.out.write_text(json.dumps(report, indent=2, default=float) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
