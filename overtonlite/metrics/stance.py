"""Stance of an answer to a contested yes/no question: ``yes``, ``no``, ``both`` or ``other``.

The paper labels each sample with a GPT-4 judge (yes = answers the question in the positive, no = in the negative,
both = gives information from both sides, other = unrelated or no answer). overtonlite replaces the judge with a
small transparent model that runs on a CPU in microseconds:

**How it works.** The response is split into sentences, and every sentence gets an overlap score with the question
(share of the question's content-word stems it contains); the *verdict sentence* is the first of the first three
sentences that restates at least half of the question (else the first sentence), and the *claim sentences* are all
sentences that do. From these, :func:`stance_features` computes 34 named yes/no cues, each a plain regular
expression or count: the opening word ("Yes,", "No,"), hedges in the opening or verdict sentence ("there is no
definitive answer", "it depends", "debate", "mixed", "limited evidence"), negation in the verdict sentence beyond
any negation already in the question (a negated restatement such as "X does not cause Y"), "no evidence"
statements, positive-evidence statements, balance markers in the rest of the text ("however", "on the other hand",
"some ... others", "critics"), whether those balancing sentences are only caveats ("more research is needed",
"consult a doctor") or real counter-claims, polarity of the conclusion sentence, and whether the claim sentences
disagree with each other. Each label's score is a bias plus the sum of the weights of the active cues
(:data:`WEIGHTS`, a 34 x 3 table), and the highest score wins. The weights were fitted by L2-regularised
multinomial logistic regression on all 8,680 GPT-4-labelled answers of the authors' four ConflictingQA systems
(gpt-3.5-turbo and three URIAL-style Llama-2-7B systems) and are frozen here; ``benchmarks/stance_calibration.py``
refits them and validates the model leave-one-system-out. Rules come before the scores: a response of fewer than 3
words is yes / no / both when it is a bare "Yes." / "No." / "It depends.", else ``other`` (so is empty text);
refusals ("as an AI ...", "I cannot provide ...") that do not restate the question are ``other``.

**Agreement with GPT-4 on a system the model never saw** (fitted on the other three; accuracy / kappa):
gpt-3.5-turbo 81.9% / 0.702, llama-2-icl 65.7% / 0.404, llama-2-icl-gpt-3.5 74.2% / 0.526,
llama-2-icl-gpt-3.5-knn-prompt_similar 72.7% / 0.519. The issue's target (88%, kappa 0.80) is not reached. The
model labels too many answers "both" on the URIAL-style systems (+0.07 to +0.17); most errors are GPT-4 yes / no
answers called "both". Aggregate shares can be corrected for this confusion with
:mod:`overtonlite.metrics.stance_shares` (out-of-system confusion shipped in ``stance_confusion.json``).

**Embedding variant.** :func:`classify_stances` (batched) adds, when given the default sentence embedder
(all-MiniLM-L6-v2), one more input to the same logistic regression: ``embed(opening sentence) - embed(question)``
(384 numbers; subtracting the question takes most of the topic out). Weights are in ``stance_weights.npz``, fitted
on all four systems (see :mod:`overtonlite.metrics.stance_model`). Leave one system out it reaches 83.6% / 0.728,
65.9% / 0.418, 75.3% / 0.539 and 73.7% / 0.530 on the four systems (mean 74.6% against 73.6% for the cues alone):
about one point better, not a different class of model. It is opt-in; ``score`` uses the cue model.

Also here: :func:`stance_summary` (per-group "both" share, yes/no split, label distribution, entropy) and the
agreement statistics :func:`cohen_kappa` and :func:`confusion`.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence
from typing import Any

from overtonlite.metrics.stopwords import ENGLISH_STOPWORDS

__all__ = [
    "STANCE_LABELS",
    "FEATURES",
    "WEIGHTS",
    "BIAS",
    "classify_stance",
    "classify_stances",
    "stance_features",
    "stance_scores",
    "stance_summary",
    "cohen_kappa",
    "confusion",
]

STANCE_LABELS: tuple[str, ...] = ("yes", "no", "both", "other")
"""The four labels of the paper's stance judge, in a fixed order."""

_SCORED = ("yes", "no", "both")


def _rx(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern, re.IGNORECASE)


_NEG = _rx(r"\b(?:not|no|never|cannot|none|neither|nor|unlikely)\b|n't\b|n’t\b")
_STRONG_HEDGE = _rx(
    r"\bdepends?\b|\bdepending\b|\bvar(?:y|ies)\b|\bdebat|controvers|conflicting|\bmixed\b|\bongoing\b|\bcomplex\b"
    r"|subjective|personal (?:belief|preference|opinion|choice)|matter of (?:opinion|perspective|personal|debate)"
    r"|no (?:simple|definitive|clear|straightforward|one-size|single|easy|universal|definite|clear-cut)(?: \w+)? "
    r"(?:answer|yes)|not (?:a )?(?:simple|straightforward|clear-cut)|inconclusive|unclear|not (?:yet )?fully "
    r"understood|differing|different (?:opinions|views|perspectives|beliefs)|no (?:scientific )?consensus"
    r"|difficult to (?:say|determine|answer)|nuanced|\bboth\b|pros and cons|advantages and disadvantages"
    r"|benefits and (?:risks|drawbacks)"
)
_WEAK_HEDGE = _rx(
    r"\b(?:may|might|can|could|some|potential(?:ly)?|possibl[ey]|limited|generally|typically|usually|often"
    r"|sometimes|certain|necessarily|always|directly|completely|entirely|fully|inherently|solely|only|all|every"
    r"|in the same way|significant(?:ly)?|likely)\b"
)
_NO_EVIDENCE = _rx(
    r"\bno (?:\w+ ){0,3}(?:evidence|proof|link|data|studies)|\bnot (?:been )?(?:\w+ )?(?:supported|proven)"
    r"|lack of (?:\w+ ){0,2}evidence|\bno (?:specific |known |definitive )?cure\b|\bmyth\b|misconception"
    r"|\bdebunked\b|\bnot true\b|\bfalse\b"
)
_POS_EVIDENCE = _rx(
    r"\b(?:there is|is) (?:\w+ )?(?:evidence|research)|studies have (?:shown|found)"
    r"|research (?:has shown|shows|suggests|indicates)|(?:is|are) (?:widely |generally )?"
    r"(?:considered|recognized|known|accepted)"
)
_LIMITED_EVIDENCE = _rx(
    r"\b(?:limited|some|little|insufficient|mixed) (?:\w+ )?(?:evidence|research|studies)"
)
_BALANCE = _rx(
    r"\bhowever\b|on the other hand|\bnevertheless\b|\bnonetheless\b|\bon the flip side\b|\bconversely\b"
)
_WHILE = _rx(r"(?:^|\. )(?:while|although|though|whereas)\b")
_OTHERS = _rx(
    r"\bsome (?:\w+ ){0,2}(?:argue|believe|say|claim|suggest|think)|\bothers (?:argue|believe|say|may|claim|think"
    r"|point)|\bcritics\b|\bproponents\b|\bsupporters\b|\bopponents\b|\bskeptics\b|\badvocates\b"
)
_SOME_SHOW = _rx(r"\bsome (?:\w+ ){0,2}(?:studies|research|evidence|people|individuals|cases|experts)\b")
_MODAL = _rx(r"\b(?:may|can|could|might)\b")
_BUT = _rx(r"\bbut\b")
_CONCLUSION = _rx(
    r"^(?:in conclusion|overall|ultimately|in summary|therefore|so,|thus|to summarize|in short)"
)
_CAVEAT = _rx(
    r"more (?:research|studies) (?:is|are) needed|further research|important to (?:note|consult|remember|consider"
    r"|also|talk|discuss|be)|\bconsult\b|best to|recommended to|\bnote that\b|keep in mind|always (?:best|a good idea)"
)
_REFUSAL = _rx(
    r"\bas an ai\b|\bi (?:cannot|can't|am unable to|am not able to) (?:provide|answer|give)"
    r"|\bi don't have (?:personal )?(?:opinions|beliefs)|\bi'm sorry\b"
)
_OPEN_YES = _rx(r"(?:yes|absolutely|indeed|certainly|definitely)\b")
_OPEN_NO = _rx(r"no\b(?! (?:one|matter|single|longer))")
_OPEN_WHILE = _rx(r"(?:while|although|though|whereas)\b")
_SENT_SPLIT = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(“‘])")
_WORD = re.compile(r"[a-z0-9']+")
_EXTRA_STOP = frozenset("could would also really actually truly".split())

FEATURES: tuple[tuple[str, str], ...] = (
    ("open_yes", "response opens with Yes / Absolutely / Indeed / Certainly / Definitely"),
    ("open_no", "response opens with No (not 'No one', 'No matter', ...)"),
    ("open_yes_but", "opens with Yes and the first sentence has 'but' or 'however'"),
    ("open_hedge", "first sentence has a strong hedge (depends, debate, no definitive answer, mixed, ...)"),
    ("open_while", "response opens with While / Although / Though / Whereas"),
    ("v_neg", "verdict sentence has more negations than the question (negated restatement)"),
    ("v_hedge", "verdict sentence has a strong hedge"),
    ("v_weak", "verdict sentence has a weak hedge (may, can, some, generally, ...)"),
    ("v_neg_weak", "verdict sentence is negated and weakly hedged ('not necessarily', 'not always')"),
    ("v_noevid", "verdict sentence says there is no evidence / no cure / a myth"),
    ("v_posevid", "verdict sentence cites evidence or wide acceptance (and no 'no evidence')"),
    ("v_limevid", "verdict sentence speaks of limited / some / mixed evidence"),
    ("v_but", "verdict sentence contains 'but'"),
    ("v_neg_but", "verdict sentence is negated and contains 'but'"),
    ("ov_high", "verdict sentence restates at least half of the question"),
    ("ov_full", "verdict sentence restates the whole question"),
    ("rest_bal", "a later sentence has a balance marker (however, on the other hand, ...)"),
    ("rest_bal2", "later sentences have two or more balance markers"),
    ("rest_while", "a later sentence starts with While / Although"),
    ("others", "the text reports what some / others / critics / proponents argue"),
    ("someshow", "later sentences mention some studies / people / cases / experts"),
    ("rest_hedge", "a later sentence has a strong hedge"),
    ("rest_noevid", "a later sentence says there is no evidence / a myth"),
    ("rest_neg", "later sentences have two or more negations"),
    ("c_hedge", "the conclusion (or last) sentence has a strong hedge"),
    ("c_neg", "the conclusion (or last) sentence is negated"),
    ("short", "the response has at most two sentences"),
    ("claim_neg_any", "some sentence restating the question is negated"),
    ("claim_neg_later", "a negated restatement appears after the first restatement"),
    ("claim_pos_multi", "two or more non-negated restatements"),
    ("claim_last_neg", "the last of several restatements is negated"),
    ("claim_mixed", "restatements disagree: some negated, some not"),
    (
        "bal_caveat_only",
        "every balancing sentence is only a caveat (more research needed, consult, note that)",
    ),
    ("bal_counter", "a balancing sentence is negated or makes a hedged counter-claim (may / can / some ...)"),
)
"""(name, description) of every cue feature, in :data:`WEIGHTS` order."""

# Fitted by benchmarks/stance_calibration.py --fit on all four GPT-4-labelled systems; columns: yes, no, both.
WEIGHTS: dict[str, tuple[float, float, float]] = {
    "open_yes": (1.73, -1.38, -0.35),
    "open_no": (-0.93, 1.36, -0.44),
    "open_yes_but": (-0.40, -0.25, 0.65),
    "open_hedge": (-0.59, -0.15, 0.73),
    "open_while": (-0.38, -0.02, 0.40),
    "v_neg": (-1.30, 1.38, -0.08),
    "v_hedge": (-0.15, -0.27, 0.42),
    "v_weak": (-0.20, -0.27, 0.47),
    "v_neg_weak": (0.22, -0.13, -0.08),
    "v_noevid": (-0.59, 0.51, 0.07),
    "v_posevid": (0.18, -0.07, -0.11),
    "v_limevid": (-0.12, -0.01, 0.13),
    "v_but": (-0.66, 0.36, 0.30),
    "v_neg_but": (0.32, -0.61, 0.29),
    "ov_high": (0.41, -0.25, -0.17),
    "ov_full": (0.30, -0.06, -0.24),
    "rest_bal": (-0.57, -0.15, 0.72),
    "rest_bal2": (-0.03, -0.15, 0.18),
    "rest_while": (-0.35, 0.31, 0.04),
    "others": (-0.04, -0.71, 0.76),
    "someshow": (-0.31, 0.01, 0.30),
    "rest_hedge": (0.05, -0.14, 0.09),
    "rest_noevid": (-0.84, 0.79, 0.05),
    "rest_neg": (-0.23, 0.24, -0.01),
    "c_hedge": (-0.43, -0.01, 0.44),
    "c_neg": (-0.21, 0.18, 0.03),
    "short": (-0.23, 0.34, -0.11),
    "claim_neg_any": (-0.66, 0.46, 0.20),
    "claim_neg_later": (0.11, -0.06, -0.04),
    "claim_pos_multi": (0.06, -0.15, 0.08),
    "claim_last_neg": (-0.05, -0.01, 0.06),
    "claim_mixed": (0.03, -0.05, 0.02),
    "bal_caveat_only": (0.59, -0.67, 0.07),
    "bal_counter": (-0.17, -0.09, 0.26),
}
BIAS: tuple[float, float, float] = (0.51, -0.43, -0.08)


def _stem(word: str) -> str:
    for suffix in ("ing", "es", "s", "ed", "ly"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 4:
            return word[: -len(suffix)]
    return word


def _stems(text: str) -> set[str]:
    return {
        _stem(w)
        for w in _WORD.findall(text.lower().replace("’", "'"))
        if len(w) > 2 and w not in ENGLISH_STOPWORDS and w not in _EXTRA_STOP
    }


def _sentences(text: str) -> list[str]:
    out: list[str] = []
    for para in text.split("\n"):
        out.extend(p.strip() for p in _SENT_SPLIT.split(para) if p.strip())
    return out


def _check(question: object, response: object) -> tuple[str, str]:
    if not isinstance(question, str) or not isinstance(response, str):
        raise TypeError("question and response must be str")
    return question, response.strip()


def stance_features(question: str, response: str) -> dict[str, bool]:
    """The named cue features of :data:`FEATURES` for one response (all ``False`` for an empty response)."""
    question, text = _check(question, response)
    sents = _sentences(text) or [""]
    first = sents[0]
    q_stems = _stems(question)
    q_neg = len(_NEG.findall(question))

    def overlap(s: str) -> float:
        return len(q_stems & _stems(s)) / max(1, len(q_stems))

    def negated(s: str) -> bool:
        return len(_NEG.findall(s)) > q_neg

    overlaps = [overlap(s) for s in sents]
    verdict_i = next((i for i in range(min(3, len(sents))) if overlaps[i] >= 0.5), 0)
    verdict, ov = sents[verdict_i], overlaps[verdict_i]
    conclusions = [s for s in sents if _CONCLUSION.search(s)]
    concl = conclusions[-1] if conclusions else sents[-1]
    rest_sents = sents[1:]
    rest = " ".join(rest_sents)
    claims = [s for s, o in zip(sents, overlaps, strict=True) if o >= 0.5]
    neg_claims = [s for s in claims if negated(s)]
    balancing = [s for s in rest_sents if _BALANCE.search(s)]

    f: dict[str, bool] = {}
    f["open_yes"] = bool(_OPEN_YES.match(text))
    f["open_no"] = bool(_OPEN_NO.match(text))
    f["open_yes_but"] = f["open_yes"] and bool(_BUT.search(first) or _BALANCE.search(first))
    f["open_hedge"] = bool(_STRONG_HEDGE.search(first))
    f["open_while"] = bool(_OPEN_WHILE.match(text))
    f["v_neg"] = negated(verdict)
    f["v_hedge"] = bool(_STRONG_HEDGE.search(verdict))
    f["v_weak"] = bool(_WEAK_HEDGE.search(verdict))
    f["v_neg_weak"] = f["v_neg"] and f["v_weak"]
    f["v_noevid"] = bool(_NO_EVIDENCE.search(verdict))
    f["v_posevid"] = bool(_POS_EVIDENCE.search(verdict)) and not f["v_noevid"]
    f["v_limevid"] = bool(_LIMITED_EVIDENCE.search(verdict))
    f["v_but"] = bool(_BUT.search(verdict))
    f["v_neg_but"] = f["v_neg"] and f["v_but"]
    f["ov_high"] = ov >= 0.5
    f["ov_full"] = ov >= 0.99
    f["rest_bal"] = bool(_BALANCE.search(rest))
    f["rest_bal2"] = len(_BALANCE.findall(rest)) >= 2
    f["rest_while"] = bool(_WHILE.search(rest))
    f["others"] = bool(_OTHERS.search(text))
    f["someshow"] = bool(_SOME_SHOW.search(rest))
    f["rest_hedge"] = bool(_STRONG_HEDGE.search(rest))
    f["rest_noevid"] = bool(_NO_EVIDENCE.search(rest))
    f["rest_neg"] = len(_NEG.findall(rest)) >= 2
    f["c_hedge"] = bool(_STRONG_HEDGE.search(concl)) and len(sents) > 1
    f["c_neg"] = negated(concl) and len(sents) > 1
    f["short"] = len(sents) <= 2
    f["claim_neg_any"] = bool(neg_claims)
    f["claim_neg_later"] = any(s is not claims[0] for s in neg_claims)
    f["claim_pos_multi"] = len(claims) - len(neg_claims) >= 2
    f["claim_last_neg"] = len(claims) > 1 and negated(claims[-1])
    f["claim_mixed"] = bool(neg_claims) and len(neg_claims) < len(claims)
    f["bal_caveat_only"] = bool(balancing) and all(_CAVEAT.search(s) for s in balancing)
    f["bal_counter"] = any(negated(s) or _SOME_SHOW.search(s) or _MODAL.search(s) for s in balancing)
    if not text:
        f = dict.fromkeys(f, False)
    return f


def _short_label(text: str) -> str:
    """Label of a response of fewer than 3 words: a bare Yes / No / hedge, else ``other``."""
    if _OPEN_YES.match(text):
        return "yes"
    if _OPEN_NO.match(text):
        return "no"
    if _STRONG_HEDGE.search(text):
        return "both"
    return "other"


def _is_refusal(question: str, text: str) -> bool:
    if _REFUSAL.search(text):
        q_stems = _stems(question)
        restated = any(len(q_stems & _stems(s)) / max(1, len(q_stems)) >= 0.5 for s in _sentences(text)[:3])
        return not restated
    return False


def stance_scores(question: str, response: str) -> dict[str, float]:
    """Linear scores of the three scored labels (yes, no, both): bias + the weights of the active cues."""
    feats = stance_features(question, response)
    scores = list(BIAS)
    for name, on in feats.items():
        if on:
            w = WEIGHTS.get(name)
            if w is not None:
                for i in range(3):
                    scores[i] += w[i]
    return dict(zip(_SCORED, scores, strict=True))


def classify_stance(question: str, response: str) -> str:
    """Label one response to a yes/no question: ``"yes"``, ``"no"``, ``"both"`` or ``"other"``.

    A response of fewer than 3 words is ``yes`` / ``no`` when it opens with Yes / No (e.g. a base model's bare
    "No."), ``both`` for a bare hedge ("It depends."), else ``other`` (also for empty text). Refusals that do not
    restate the question are ``other``. Everything else gets the best-scoring of yes / no / both (see the module
    docstring). Raises ``TypeError`` for non-string input.
    """
    question, text = _check(question, response)
    if len(text.split()) < 3:
        return _short_label(text)
    if _is_refusal(question, text):
        return "other"
    scores = stance_scores(question, text)
    return max(_SCORED, key=lambda lab: scores[lab])


def classify_stances(
    questions: Sequence[str], responses: Sequence[str], *, embedder: Any = None
) -> list[str]:
    """Label many responses; ``questions[i]`` is the question ``responses[i]`` answers.

    Without ``embedder`` this is :func:`classify_stance` on each pair. With the default sentence embedder
    (all-MiniLM-L6-v2, anything with ``embed(texts)``), the embedding variant of
    :mod:`overtonlite.metrics.stance_model` is used, texts embedded in one batch; an embedder of another model
    falls back to cue-only. Raises ``TypeError`` for non-strings, ``ValueError`` for unequal lengths.
    """
    from overtonlite.metrics.stance_model import classify_stances as _impl

    return _impl(questions, responses, embedder=embedder)


def stance_summary(labels: Sequence[str]) -> dict:
    """Per-group stance aggregates of the paper's E3.

    Returns ``{"both_share", "yes_no_split", "distribution", "entropy_bits"}``: the share of ``both`` labels,
    whether the group has at least one ``yes`` *and* one ``no`` (distributional pluralism), the share of each of
    :data:`STANCE_LABELS` (all four keys always present), and the Shannon entropy of the labels in bits.
    An empty group gives ``both_share=None``, ``yes_no_split=False``, all shares ``None`` and ``entropy_bits=None``.
    Raises ``ValueError`` for a label outside :data:`STANCE_LABELS`.
    """
    labels = list(labels)
    bad = sorted({lab for lab in labels if lab not in STANCE_LABELS}, key=str)
    if bad:
        raise ValueError(f"unknown stance label(s) {bad}; expected one of {list(STANCE_LABELS)}")
    counts = Counter(labels)
    n = len(labels)
    if n == 0:
        return {
            "both_share": None,
            "yes_no_split": False,
            "distribution": dict.fromkeys(STANCE_LABELS, None),
            "entropy_bits": None,
        }
    dist = {lab: counts[lab] / n for lab in STANCE_LABELS}
    entropy = -math.fsum(p * math.log2(p) for p in dist.values() if p > 0)
    return {
        "both_share": dist["both"],
        "yes_no_split": counts["yes"] > 0 and counts["no"] > 0,
        "distribution": dist,
        "entropy_bits": max(entropy, 0.0),
    }


def confusion(a: Sequence[str], b: Sequence[str]) -> dict[str, dict[str, int]]:
    """Confusion counts ``{label_a: {label_b: count}}`` over all labels seen in either sequence.

    Rows are the labels of ``a`` (e.g. the reference judge), columns those of ``b``. :data:`STANCE_LABELS` come
    first in their fixed order, any other label after them, sorted. Raises ``ValueError`` on unequal lengths.
    """
    if len(a) != len(b):
        raise ValueError(f"sequences differ in length: {len(a)} != {len(b)}")
    seen = set(a) | set(b)
    labels = [lab for lab in STANCE_LABELS if lab in seen] + sorted(seen - set(STANCE_LABELS), key=str)
    table = {r: dict.fromkeys(labels, 0) for r in labels}
    for x, y in zip(a, b, strict=True):
        table[x][y] += 1
    return table


def cohen_kappa(a: Sequence[str], b: Sequence[str]) -> float:
    """Cohen's kappa between two label sequences: (p_o - p_e) / (1 - p_e).

    p_o is the observed agreement and p_e the agreement expected from the two marginal distributions.
    p_e == 1 happens only when both raters give one and the same label to every item; the formula is then 0/0
    and this returns 1.0 (perfect agreement). Raises ``ValueError`` on unequal lengths or empty input.
    """
    if len(a) != len(b):
        raise ValueError(f"sequences differ in length: {len(a)} != {len(b)}")
    n = len(a)
    if n == 0:
        raise ValueError("cohen_kappa needs at least one pair of labels")
    p_o = sum(x == y for x, y in zip(a, b, strict=True)) / n
    ca, cb = Counter(a), Counter(b)
    p_e = math.fsum(ca[lab] * cb[lab] for lab in ca) / (n * n)
    if p_e >= 1.0:
        return 1.0
    return (p_o - p_e) / (1.0 - p_e)
