"""Check functions for the course's exercises: your function against the package's own.

    from minidiff.course import exercises
    exercises.check_q_sample(my_q_sample)     # prints ✓, or a hint about what went wrong

Each check calls your function and minidiff's own on the same random inputs and compares the
answers. It prints one friendly line (and a hint if they differ) and returns True or False, so a
notebook never stops on a wrong answer; the hints name the most common slips. An exercise starts
as a stub whose body is `raise NotImplementedError(...)`: its check says the function is not
written yet (as it does for a body of `...` or `pass`, which returns None) and returns False.
"""

import math
from collections.abc import Callable

import numpy as np
import torch

from minidiff import diffusion, editing, samplers, world
from minidiff.schedules import make_alpha_bar
from minidiff.tokenizer import MAX_TOKENS, Tokenizer

ATOL = 1e-4


def _inputs(seed: int, b: int = 4) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x0 = torch.rand(b, 3, 32, 32, generator=g) * 2 - 1  # (B, 3, 32, 32) pictures in [-1, 1]
    eps = torch.randn(b, 3, 32, 32, generator=g)
    t = torch.randint(0, 1000, (b,), generator=g)  # (B,) timesteps
    return x0, eps, t


def _close(a, b) -> bool:
    a = torch.as_tensor(a, dtype=torch.float64)
    b = torch.as_tensor(b, dtype=torch.float64)
    return a.shape == b.shape and torch.allclose(a, b, atol=ATOL, rtol=1e-4)


def _verdict(ok: bool, what: str, hint: str = "") -> bool:
    if ok:
        print(f"✓ {what}: matches minidiff's own answer. Well done!")
    else:
        print(f"✗ {what}: not yet. {hint}")
    return ok


def _call(fn: Callable, what: str, *args):
    """fn(*args), or None after printing one line: the error and a hint, or "not written yet".

    A stub still raising NotImplementedError, or returning None (a body of `...` or `pass`), is
    "not written yet", said plainly rather than as an error.
    """
    try:
        out = fn(*args)
    except NotImplementedError:
        print(
            f"✗ {what}: not written yet — replace `raise NotImplementedError` with your code, "
            "then run this cell again."
        )
        return None
    except Exception as e:  # noqa: BLE001 -- the learner's code: report any error, never stop
        hint = ""
        if "size of tensor" in str(e) or "broadcast" in str(e):
            hint = (
                " Hint: one number per picture must have shape (B, 1, 1, 1) to multiply "
                "a (B, 3, 32, 32) batch, e.g. alpha_bar[t].reshape(-1, 1, 1, 1)."
            )
        print(f"✗ {what}: your function raised {type(e).__name__}: {e}.{hint}")
        return None
    if out is None:
        print(
            f"✗ {what}: not written yet — your function returned None. Write its body, ending "
            "with `return` and the answer, then run this cell again."
        )
    return out


def _mismatch(
    out, expected: torch.Tensor, slips: dict[str, torch.Tensor], general: str
) -> str | None:
    """None when out equals expected, else the hint to print: a named slip or the general one."""
    if not isinstance(out, torch.Tensor):
        return f"It should return a torch tensor, it returned {type(out).__name__}."
    if out.shape != expected.shape:
        return (
            f"It returned shape {tuple(out.shape)}, expected {tuple(expected.shape)}. "
            "One number per picture needs shape (B, 1, 1, 1) to multiply every pixel."
        )
    if _close(out, expected):
        return None
    for slip_hint, slip in slips.items():
        if _close(out, slip):
            return slip_hint
    return general


def _wrong_number(out, expected: float, slips: dict[str, float], general: str) -> str | None:
    """None when out is the number expected, else the hint to print: "return one number", a
    named slip (the value a common mistake gives), or the general one."""
    try:
        value = float(out)
    except (TypeError, ValueError):
        shape = getattr(out, "shape", None)
        return f"Return one number, got a {type(out).__name__}" + (
            f" of shape {tuple(shape)}." if shape is not None else "."
        )

    def close(a: float, b: float) -> bool:
        return math.isclose(a, b, rel_tol=1e-4, abs_tol=1e-6)

    if close(value, expected):
        return None
    return next((hint for hint, slip in slips.items() if close(value, slip)), general)


# -- 01 noise ------------------------------------------------------------------------------------
def check_q_sample(fn: Callable) -> bool:
    """fn(x0, t, alpha_bar, eps) -> x_t, for pictures x0 (B, 3, 32, 32) and timesteps t (B,)."""
    alpha_bar = make_alpha_bar("cosine", 1000)
    x0, eps, t = _inputs(1)
    what = "q_sample"
    out = _call(fn, what, x0, t, alpha_bar, eps)
    if out is None:
        return False
    ab = alpha_bar[t].float()[:, None, None, None]  # (B, 1, 1, 1)
    slips = {
        "Both coefficients need a square root: sqrt(ᾱ_t) and sqrt(1 - ᾱ_t).": ab * x0
        + (1 - ab) * eps,
        "The noise gets sqrt(1 - ᾱ_t), not sqrt(ᾱ_t) again: check the second term.": ab.sqrt() * x0
        + ab.sqrt() * eps,
        "The noise term needs its square root too: sqrt(1 - ᾱ_t) · eps.": ab.sqrt() * x0
        + (1 - ab) * eps,
        "The two coefficients are swapped: the picture gets sqrt(ᾱ_t), the noise sqrt(1 - ᾱ_t).": (
            1 - ab
        ).sqrt()
        * x0
        + ab.sqrt() * eps,
    }
    hint = _mismatch(
        out,
        diffusion.q_sample(x0, t, alpha_bar, eps),
        slips,
        "x_t = sqrt(ᾱ_t) · x0 + sqrt(1 - ᾱ_t) · eps, with ᾱ_t = alpha_bar[t] "
        "reshaped to (B, 1, 1, 1).",
    )
    return _verdict(hint is None, what, hint or "")


# -- 02 the denoiser -----------------------------------------------------------------------------
def check_x0_from_eps(fn: Callable) -> bool:
    """fn(x_t, eps_hat, ab_t) -> x0_hat, for one float ab_t = ᾱ_t."""
    what = "x0_from_eps"
    for seed, ab_t in ((2, 0.9), (3, 0.3), (4, 0.02)):
        x_t, eps_hat, _ = _inputs(seed)
        out = _call(fn, what, x_t, eps_hat, ab_t)
        if out is None:
            return False
        expected = diffusion.x0_from_eps(x_t, eps_hat, ab_t)
        a, s = ab_t**0.5, (1 - ab_t) ** 0.5
        slips = {
            "Subtract the noise, do not add it: x_t - sqrt(1 - ᾱ_t) · eps_hat.": (x_t + s * eps_hat)
            / a,
            "Divide by sqrt(ᾱ_t) at the end: x_t was made from sqrt(ᾱ_t) · x0.": x_t - s * eps_hat,
            "Use square roots: x_t holds sqrt(1 - ᾱ_t) · eps and sqrt(ᾱ_t) · x0.": (
                x_t - (1 - ab_t) * eps_hat
            )
            / ab_t,
        }
        hint = _mismatch(
            out, expected, slips, "Solve x_t = sqrt(ᾱ_t) x0 + sqrt(1 - ᾱ_t) eps for x0."
        )
        if hint:
            return _verdict(False, f"{what} at ᾱ_t = {ab_t}", hint)
    return _verdict(True, what)


# -- 03 training ---------------------------------------------------------------------------------
def check_v_from(fn: Callable) -> bool:
    """fn(x0, eps, ab_t) -> v, the training target of the shipped model, for one float ab_t."""
    what = "v_from"
    x0, eps, _ = _inputs(5)
    for ab_t in (0.95, 0.5, 0.05):
        out = _call(fn, what, x0, eps, ab_t)
        if out is None:
            return False
        a, s = ab_t**0.5, (1 - ab_t) ** 0.5
        slips = {
            "The signs are the wrong way round: v = sqrt(ᾱ_t) · eps - sqrt(1 - ᾱ_t) · x0.": s * x0
            - a * eps,
            "Each term needs a square root: sqrt(ᾱ_t) and sqrt(1 - ᾱ_t).": ab_t * eps
            - (1 - ab_t) * x0,
            "The coefficients are swapped: eps goes with sqrt(ᾱ_t), x0 with sqrt(1 - ᾱ_t).": s * eps
            - a * x0,
        }
        hint = _mismatch(
            out, diffusion.v_from(x0, eps, ab_t), slips, "v = sqrt(ᾱ_t) · eps - sqrt(1 - ᾱ_t) · x0."
        )
        if hint:
            return _verdict(False, f"{what} at ᾱ_t = {ab_t}", hint)
    return _verdict(True, what)


# -- 04 sampling ---------------------------------------------------------------------------------
def check_ddim_step(fn: Callable) -> bool:
    """fn(x_t, eps_hat, ab_t, ab_prev) -> x_prev, one deterministic DDIM step (eta = 0)."""
    what = "ddim_step"
    for seed, ab_t, ab_prev in ((6, 0.1, 0.4), (7, 0.6, 0.9), (8, 0.95, 1.0)):
        x_t, eps_hat, _ = _inputs(seed)
        out = _call(fn, what, x_t, eps_hat, ab_t, ab_prev)
        if out is None:
            return False
        expected, x0_hat = samplers.ddim_step(x_t, eps_hat, ab_t, ab_prev)
        slips = {
            "That is x0_hat itself; the step should land at ᾱ_prev: "
            "sqrt(ᾱ_prev) · x0_hat + sqrt(1 - ᾱ_prev) · eps_hat.": x0_hat,
            "Re-noise with the *new* noise level: sqrt(1 - ᾱ_prev), not sqrt(1 - ᾱ_t).": ab_prev
            ** 0.5
            * x0_hat
            + (1 - ab_t) ** 0.5 * eps_hat,
            "Square roots, please: sqrt(ᾱ_prev) and sqrt(1 - ᾱ_prev).": ab_prev * x0_hat
            + (1 - ab_prev) * eps_hat,
        }
        hint = _mismatch(
            out,
            expected,
            slips,
            "First x0_hat = (x_t - sqrt(1 - ᾱ_t) eps_hat) / sqrt(ᾱ_t), then "
            "x_prev = sqrt(ᾱ_prev) x0_hat + sqrt(1 - ᾱ_prev) eps_hat.",
        )
        if hint:
            return _verdict(False, f"{what} from ᾱ = {ab_t} to {ab_prev}", hint)
    return _verdict(True, what)


# -- 05 words to vectors -------------------------------------------------------------------------
def check_tokenize(fn: Callable) -> bool:
    """fn(prompt) -> a list of MAX_TOKENS ints: <start>, one id per word, then <pad> ids."""
    what = "tokenize"
    tokenizer = Tokenizer()
    prompts = ["a red circle", "a big blue star in the top left", "square, top, tiny"]
    prompts += [world.example("train", i).caption for i in range(5)]
    for prompt in prompts:
        out = _call(fn, what, prompt)
        if out is None:
            return False
        expected = tokenizer.encode(prompt)[0].tolist()
        try:
            got = [int(i) for i in (out.tolist() if hasattr(out, "tolist") else out)]
        except (TypeError, ValueError):
            return _verdict(
                False, what, f"return a list of {MAX_TOKENS} ints, got {type(out).__name__}"
            )
        if got == expected:
            continue
        words = [tokenizer.ids[w] for w in tokenizer.words(prompt)]
        if got[: len(words)] == words:
            hint = "Every row starts with the <start> token (id 1) before the words."
        elif got == expected[: len(got)]:
            hint = f"Pad the row with <pad> (id 0) up to {MAX_TOKENS} tokens."
        elif len(got) != MAX_TOKENS:
            hint = f"The row should be exactly {MAX_TOKENS} ids long, it is {len(got)}."
        else:
            hint = (
                "Split with tokenizer.words(prompt) (it keeps commas as words) and look "
                "each word up in tokenizer.ids."
            )
        return _verdict(False, f"{what}({prompt!r})", f"got {got}, expected {expected}. {hint}")
    return _verdict(True, what)


# -- 06 guidance ---------------------------------------------------------------------------------
def check_guidance(fn: Callable) -> bool:
    """fn(eps_cond, eps_uncond, guidance_scale) -> the guided noise guess."""
    what = "guidance"
    eps_cond, eps_uncond, _ = _inputs(9)
    for scale in (0.0, 1.0, 3.0, 7.5):
        out = _call(fn, what, eps_cond, eps_uncond, scale)
        if out is None:
            return False
        slips = {
            "Start from the *unconditional* guess and move towards the conditional one: "
            "eps_uncond + s · (eps_cond - eps_uncond).": eps_cond + scale * (eps_uncond - eps_cond),
            "Scale the *difference* (eps_cond - eps_uncond), not the conditional guess alone.": (
                eps_uncond + scale * eps_cond
            ),
        }
        hint = _mismatch(
            out,
            diffusion.guided_eps(eps_cond, eps_uncond, scale),
            slips,
            "eps_hat = eps_uncond + s · (eps_cond - eps_uncond).",
        )
        if hint:
            return _verdict(False, f"{what} at scale {scale}", hint)
    return _verdict(True, what)


# -- 00 start here -------------------------------------------------------------------------------
def check_describe(fn: Callable) -> bool:
    """fn(colour, shape, size, position) -> a prompt the model reads as exactly those four."""
    what = "describe"
    tokenizer = Tokenizer()
    rng = np.random.default_rng(0)
    for _ in range(8):
        attrs = {
            name: str(values[rng.integers(len(values))])
            for name, values in world.ATTRIBUTES.items()
        }
        prompt = _call(fn, what, *attrs.values())
        if prompt is None:
            return False
        if not isinstance(prompt, str):
            return _verdict(False, what, f"return a string, got {type(prompt).__name__}")
        try:
            ids = tokenizer.encode(prompt)
            read = world.parse_prompt(prompt)
        except ValueError as e:
            return _verdict(False, what, str(e))
        if read != attrs:
            return _verdict(
                False,
                what,
                f"{prompt!r} reads as {read}, wanted {attrs}. "
                "Position words: 'in the top left', 'at the top', 'on the left', "
                "'in the center'...",
            )
        if int((ids != 0).sum()) >= MAX_TOKENS:
            return _verdict(False, what, f"{prompt!r} is too long for {MAX_TOKENS} tokens")
    return _verdict(True, what)


# -- 10 the real thing ---------------------------------------------------------------------------
def _stand_in_eps(x_t: torch.Tensor, t) -> torch.Tensor:
    """A fixed, deterministic stand-in for the network's noise guess; t may be an int or a 0-d
    tensor, as a scheduler's timesteps are."""
    t = round(float(t))
    return torch.tanh(x_t) * (0.5 + t / 2000) + 0.1 * torch.sin(3 * x_t)


def _slipped_loop(scheduler, x_T: torch.Tensor, steps: int, slip: str) -> torch.Tensor:
    """diffusers' loop with one common slip, to recognise it in a learner's answer."""
    from diffusers.utils import logging

    verbosity = logging.get_verbosity()
    logging.set_verbosity_error()  # diffusers warns about the missing scale_model_input
    try:
        scheduler.set_timesteps(steps)
        x = x_T if slip == "no init_noise_sigma" else x_T * scheduler.init_noise_sigma
        for t in scheduler.timesteps:
            x_in = x if slip == "no scale_model_input" else scheduler.scale_model_input(x, t)
            eps_hat = _stand_in_eps(x_in, t)
            x = scheduler.step(eps_hat, t, x_in if slip == "step from x_in" else x).prev_sample
    finally:
        logging.set_verbosity(verbosity)
    return x


def check_diffusers_loop(fn: Callable) -> bool:
    """fn(scheduler, eps_fn, x_T, steps) -> x0: diffusers' sampling loop, for a fresh diffusers
    scheduler, a noise-guess function eps_fn(x, t) and starting noise x_T (B, 3, 32, 32)."""
    from minidiff import diffusers_bridge
    from minidiff.model import ModelConfig
    from minidiff.text_encoder import TextEncoderConfig

    what, steps = "diffusers_loop", 10
    config = ModelConfig(text=TextEncoderConfig(vocab_size=len(Tokenizer())), prediction="eps")

    def fresh(kind: str):
        return diffusers_bridge.diffusers_scheduler(config, kind)

    _, x_T, _ = _inputs(10)
    for kind in ("euler", "dpm"):  # Euler works on a rescaled x, DPM-Solver++ on x_t itself
        scheduler = fresh(kind)
        name = f"{what} with diffusers' {type(scheduler).__name__}"
        out = _call(fn, what, scheduler, _stand_in_eps, x_T, steps)
        if out is None:
            return False
        if hasattr(out, "prev_sample"):
            return _verdict(
                False,
                name,
                "scheduler.step(...) returns an object; the next x is "
                "its .prev_sample, and the loop returns the last one.",
            )
        if len(scheduler.timesteps) != steps:
            return _verdict(
                False,
                name,
                f"Call scheduler.set_timesteps(steps) first: the "
                f"scheduler walked {len(scheduler.timesteps)} timesteps, not {steps}.",
            )
        expected = diffusers_bridge.diffusers_loop(fresh(kind), _stand_in_eps, x_T, steps)
        if _mismatch(out, expected, {}, "") is None:
            continue
        slips = {
            "Start from x_T * scheduler.init_noise_sigma: Euler works on a rescaled x, whose "
            "noise is far larger than 1 at the first step.": _slipped_loop(
                fresh(kind), x_T, steps, "no init_noise_sigma"
            ),
            "Show the network scheduler.scale_model_input(x, t), not x itself: it turns the "
            "scheduler's rescaled x back into the x_t the network was trained on.": _slipped_loop(
                fresh(kind), x_T, steps, "no scale_model_input"
            ),
            "Give scheduler.step the x the scheduler keeps (x), not the network's input x_in.": (
                _slipped_loop(fresh(kind), x_T, steps, "step from x_in")
            ),
        }
        hint = _mismatch(
            out,
            expected,
            slips,
            "scheduler.set_timesteps(steps); x = x_T * scheduler.init_noise_sigma; "
            "then for each t in scheduler.timesteps: eps_hat = "
            "eps_fn(scheduler.scale_model_input(x, t), t) and "
            "x = scheduler.step(eps_hat, t, x).prev_sample.",
        )
        return _verdict(False, name, hint)
    return _verdict(True, what)


# -- 07 latent diffusion -------------------------------------------------------------------------
def check_scale_factor(fn: Callable) -> bool:
    """fn(latents (N, 4, 8, 8)) -> the number that gives the latents unit variance."""
    what = "scale_factor"
    g = torch.Generator().manual_seed(7)
    for spread in (0.3, 2.0):
        latents = spread * torch.randn(64, 4, 8, 8, generator=g) + 0.1
        out = _call(fn, what, latents)
        if out is None:
            return False
        slips = {
            "That is the standard deviation itself; the factor divides by it: "
            "1 / latents.std().": latents.std().item(),
            "That is 1 / variance; take the square root, the standard deviation.": 1.0
            / latents.var().item(),
        }
        hint = _wrong_number(
            out,
            1.0 / latents.std().item(),
            slips,
            "Multiply the latents by 1 / (their standard deviation) to give "
            "them a standard deviation of 1.",
        )
        if hint:
            return _verdict(False, what, hint)
    return _verdict(True, what)


# -- 08 editing ----------------------------------------------------------------------------------
def check_paste_known(fn: Callable) -> bool:
    """fn(x, known_t, keep) -> x with the kept region replaced by known_t (keep: 1 = keep)."""
    what = "paste_known"
    x, known_t, _ = _inputs(11)
    g = torch.Generator().manual_seed(12)
    keep = (torch.rand(1, 1, 32, 32, generator=g) > 0.5).float()  # (1, 1, 32, 32)
    out = _call(fn, what, x, known_t, keep)
    if out is None:
        return False
    slips = {
        "The mask is the wrong way round: keep = 1 where the known picture stays.": keep * x
        + (1 - keep) * known_t,
        "Outside the kept region the sampler's own picture x must stay: "
        "keep · known_t + (1 - keep) · x.": keep * known_t,
    }
    hint = _mismatch(
        out, editing.paste_known(x, known_t, keep), slips, "keep · known_t + (1 - keep) · x."
    )
    return _verdict(hint is None, what, hint or "")


# -- 09 measuring and bias -----------------------------------------------------------------------
def check_normalised_entropy(fn: Callable) -> bool:
    """fn(values (N,) ints in 0..k-1, k) -> H / log k of their frequencies."""
    from minidiff.evaluate import normalised_entropy

    what = "normalised_entropy"
    rng = np.random.default_rng(3)
    cases = [
        (rng.integers(0, 9, 48), 9),
        (np.zeros(20, int), 6),
        (np.arange(6).repeat(4), 6),
        (rng.choice(4, 40, p=[0.7, 0.1, 0.1, 0.1]), 4),
    ]
    for values, k in cases:
        out = _call(fn, what, values, k)
        if out is None:
            return False
        counts = np.bincount(values, minlength=k)
        p = counts[counts > 0] / len(values)
        slips = {
            "Divide by log k, so that k equally common values give 1.": float(
                -(p * np.log(p)).sum()
            ),
            "Use the frequencies (counts / N), not the counts, as probabilities.": float(
                -(counts[counts > 0] * np.log(counts[counts > 0])).sum() / np.log(k)
            ),
        }
        hint = _wrong_number(
            out,
            normalised_entropy(values, k),
            slips,
            "H = -sum p log p over the values that occur, then divide by log k.",
        )
        if hint:
            return _verdict(False, f"{what} of {k} values", hint)
    return _verdict(True, what)


# -- 11 scenes -----------------------------------------------------------------------------------
def check_compose(fn: Callable) -> bool:
    """fn(eps_null, eps_parts (a list), weight) -> Composable Diffusion's AND:
    eps_null + weight * sum_i (eps_parts[i] - eps_null)."""
    what = "compose"
    g = torch.Generator().manual_seed(21)
    eps_null = torch.randn(4, 3, 48, 48, generator=g)
    parts = [torch.randn(4, 3, 48, 48, generator=g) for _ in range(2)]
    out = _call(fn, what, eps_null, parts, 3.0)
    if out is None:
        return False
    slips = {
        "Each part pulls away from the unconditional prediction: sum the differences "
        "eps_i - eps_null, not the predictions themselves.": eps_null + 3.0 * sum(parts),
        "Start from the unconditional prediction eps_null, then add the weighted pulls.": 3.0
        * sum(e - eps_null for e in parts),
        "Weight every part's pull, then add them all: one weight times the sum of the "
        "differences.": eps_null + 3.0 * (parts[0] - eps_null) + (parts[1] - eps_null),
    }
    hint = _mismatch(
        out,
        diffusion.composed_eps(eps_null, parts, 3.0),
        slips,
        "eps_null + weight · Σ_i (eps_i − eps_null): with one part, classifier-free guidance.",
    )
    return _verdict(hint is None, what, hint or "")


# -- 12 fewer steps ------------------------------------------------------------------------------
def check_flow_euler(fn: Callable) -> bool:
    """fn(x_t, u_hat, sigma_t, sigma_prev) -> the flow model's Euler step, x_prev =
    x_t + (sigma_prev - sigma_t) · u_hat, for two numbers sigma_t > sigma_prev."""
    what = "flow_euler"
    g = torch.Generator().manual_seed(12)
    x_t, u = torch.randn(4, 4, 8, 8, generator=g), torch.randn(4, 4, 8, 8, generator=g)
    sigma_t, sigma_prev = 0.75, 0.5
    out = _call(fn, what, x_t, u, sigma_t, sigma_prev)
    if out is None:
        return False
    flow = make_alpha_bar("flow", 4)  # σ = 0.25, 0.5, 0.75, 1: the step from t = 2 to t = 1
    expected, _, _ = samplers.flow_euler_step(x_t, u, flow[2], flow[1])
    slips = {
        "The step goes towards the picture, where σ falls: move by (sigma_prev - sigma_t) · u, "
        "a negative multiple of the velocity.": x_t + (sigma_t - sigma_prev) * u,
        "Start from where the sampler is, x_t, and add the move.": (sigma_prev - sigma_t) * u,
        "Euler's method moves along the velocity for the length of the step in σ, not all of "
        "the way.": x_t - u,
    }
    hint = _mismatch(
        out,
        expected,
        slips,
        "x_prev = x_t + (σ_prev − σ_t) · u: the velocity is dx/dσ, and the step is Δσ long.",
    )
    return _verdict(hint is None, what, hint or "")


# -- 13 teach it a new word ----------------------------------------------------------------------
def check_lora_forward(fn: Callable) -> bool:
    """fn(x, weight, bias, A, B, scale) -> a LoRA layer's output, x Wᵀ + b + scale · (x Aᵀ) Bᵀ,
    compared with what peft's own LoRA layer computes for the same weights."""
    from peft import LoraConfig, get_peft_model

    what = "lora_forward"
    g = torch.Generator().manual_seed(13)
    base = torch.nn.Sequential()
    base.add_module("proj", torch.nn.Linear(16, 8))
    model = get_peft_model(base, LoraConfig(r=2, lora_alpha=3, target_modules=["proj"]))
    layer = model.base_model.model.proj
    with torch.no_grad():
        for p in (layer.lora_A["default"].weight, layer.lora_B["default"].weight):
            p.copy_(torch.randn(p.shape, generator=g))
    x = torch.randn(5, 16, generator=g)
    weight, bias = layer.base_layer.weight.detach(), layer.base_layer.bias.detach()
    A, B = layer.lora_A["default"].weight.detach(), layer.lora_B["default"].weight.detach()
    scale = layer.scaling["default"]  # lora_alpha / r = 1.5
    out = _call(fn, what, x, weight, bias, A, B, scale)
    if out is None:
        return False
    with torch.no_grad():
        expected = model(x)
    delta = (x @ A.T) @ B.T  # the low-rank part, before its scale
    slips = {
        "Multiply the low-rank part by `scale` (lora_alpha / r).": x @ weight.T + bias + delta,
        "Keep the frozen layer: add the low-rank part to x Wᵀ + b, not instead of it.": (
            scale * delta
        ),
        "Keep the bias b of the frozen layer.": x @ weight.T + scale * delta,
    }
    hint = _mismatch(
        out,
        expected,
        slips,
        "A maps the input down to r numbers (x Aᵀ), B maps them back up ((x Aᵀ) Bᵀ); the output is "
        "x Wᵀ + b + scale · (x Aᵀ) Bᵀ.",
    )
    return _verdict(hint is None, what, hint or "")


# -- 14 GANs against diffusion -------------------------------------------------------------------
def check_hinge_loss(fn: Callable) -> bool:
    """fn(real, fake) -> the discriminator's hinge loss on its scores of real and generated
    pictures, mean(max(0, 1 - real)) + mean(max(0, 1 + fake)), compared with minidiff.gan's."""
    from minidiff.gan import d_hinge_loss

    what = "hinge_loss"
    g = torch.Generator().manual_seed(14)
    real, fake = 2 * torch.randn(16, generator=g), 2 * torch.randn(16, generator=g) - 0.5
    out = _call(fn, what, real, fake)
    if out is None:
        return False
    expected = d_hinge_loss(real, fake)
    relu = torch.nn.functional.relu
    slips = {
        "Clip at the margin: max(0, 1 - real), so a real picture scored above 1 adds nothing.": (
            (1 - real).mean() + (1 + fake).mean()
        ),
        "Real pictures should score high: the real term is max(0, 1 - real), not 1 + real.": (
            relu(1 + real).mean() + relu(1 - fake).mean()
        ),
        "Average over the pictures (mean), do not add them up.": (
            relu(1 - real).sum() + relu(1 + fake).sum()
        ),
    }
    hint = _mismatch(
        torch.as_tensor(out) if isinstance(out, (int, float)) else out,
        expected,
        slips,
        "D wants real scores above +1 and generated ones below -1; each side costs how far it "
        "falls short of its margin, averaged: mean(max(0, 1 - real)) + mean(max(0, 1 + fake)).",
    )
    return _verdict(hint is None, what, hint or "")


# -- 15 telling fakes from real ------------------------------------------------------------------
def check_roc_auc(fn: Callable) -> bool:
    """fn(real, fake) -> the area under the ROC curve of a detector's scores: the chance that a
    generated picture scores above a real one, ties counting half; compared with
    minidiff.detector's."""
    from minidiff.detector import roc_auc

    what = "area_under_roc"
    rng = np.random.default_rng(15)
    real = np.round(rng.normal(0, 1, 40), 1)  # rounded, so that some scores tie
    fake = np.round(rng.normal(0.8, 1, 30), 1)
    out = _call(fn, what, real, fake)
    if out is None:
        return False
    pairs = fake[:, None] - real[None, :]  # (30, 40): every generated picture against every real
    hint = _wrong_number(
        out,
        roc_auc(real, fake),
        {
            "Count a tie as half a win: (wins + ties / 2) / pairs.": float((pairs > 0).mean()),
            "Generated pictures should score above real ones: count fake > real.": (
                float((pairs < 0).mean() + (pairs == 0).mean() / 2)
            ),
        },
        "Compare every generated picture's score with every real one's: the AUC is the share of "
        "pairs in which the generated one scores higher, a tie counting half.",
    )
    return _verdict(hint is None, what, hint or "")
