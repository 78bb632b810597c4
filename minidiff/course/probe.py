"""Looking inside the model: the measurements behind the course's explorers
(minidiff.course.widgets).

Each function runs the model once, batched, and returns plain numpy arrays that a widget only has
to pick frames from:

    noised_pictures(image, "cosine", [0, 250, 500])    # x_t of one picture at several t
    denoiser_predictions(pipe, image, prompt, [100, 500, 900])   # x_t, eps, eps_hat, x0_hat
    attention_maps(pipe, "a red circle")               # where each word is looked at, every step
    interpolate_prompts(pipe, "a red circle", "a blue square", [0, 0.5, 1])
    word_similarity(pipe)                              # how alike two words read
    guidance_sweep(pipe, "a red star", [0, 1, 3])      # the same noise at several guidance scales
    adherence_and_diversity(judge, "a red star", pictures)

Pictures come back as uint8 (N, 32, 32, 3); the noise eps is shown as a picture too, with
EPS_RANGE standard deviations filling the grey scale so that true and predicted noise compare.
"""

import numpy as np
import torch
import torch.nn.functional as F

from minidiff import diffusion, pixels, samplers, world
from minidiff.pipeline import DEFAULT_GUIDANCE, DEFAULT_STEPS, Pipeline
from minidiff.schedules import make_alpha_bar

EPS_RANGE = 3.0  # eps = ±3 is shown as black / white: 99.7 % of standard normal noise fits


def pixel_model(pipe: Pipeline, what: str) -> None:
    """Refuse a latent model in a probe that works on pictures, in one sentence."""
    if pipe.latent:
        raise ValueError(
            f"{what} works on a pixel model; this is a latent model (load "
            "minidiff.load_pretrained() for the pixel one)"
        )


def _timestep_list(timesteps, T: int) -> list[int]:
    ts = [int(t) for t in timesteps]
    if not ts or min(ts) < 0 or max(ts) >= T:
        raise ValueError(
            f"timesteps must be a non-empty list of integers in 0..{T - 1}, got {list(timesteps)}"
        )
    return ts


def eps_picture(eps: torch.Tensor) -> np.ndarray:
    """Noise (N, 3, H, W) -> uint8 (N, H, W, 3): -EPS_RANGE black, 0 grey, +EPS_RANGE white."""
    return pixels.to_uint8(eps / EPS_RANGE)


def noised_pictures(
    image: np.ndarray, schedule: str, timesteps: list[int], seed: int = 0, T: int = 1000
) -> np.ndarray:
    """x_t of one picture at each t, all with the same noise -> uint8 (len(timesteps), 32, 32, 3).

    x_t = sqrt(ᾱ_t) x_0 + sqrt(1 - ᾱ_t) eps (see diffusion.q_sample) for the named schedule.
    """
    alpha_bar = make_alpha_bar(schedule, T)
    ts = _timestep_list(timesteps, T)
    x0 = pixels.picture_to_tensor(image).expand(len(ts), -1, -1, -1)  # (N, 3, 32, 32)
    eps = samplers.seeded_noise(seed, tuple(x0.shape[1:]))[0].expand_as(x0)  # one noise, every t
    return pixels.to_uint8(diffusion.q_sample(x0, torch.tensor(ts), alpha_bar, eps))


@torch.no_grad()
def denoiser_predictions(
    pipe: Pipeline, image: np.ndarray, prompt: str, timesteps: list[int], seed: int = 0
) -> dict[str, np.ndarray]:
    """What the network makes of one picture noised to each t, in one batched network call.

    Returns {"t": (N,) ints, "x_t", "eps", "eps_hat", "x0_hat": uint8 (N, 32, 32, 3) pictures,
    "eps_error": (N,) mean squared error of eps_hat}. The same noise eps is used at every t; the
    network sees the prompt without guidance (its plain conditional prediction).
    """
    pixel_model(pipe, "denoiser_predictions")
    ts = _timestep_list(timesteps, pipe.config.T)
    t = torch.tensor(ts, device=pipe.device)  # (N,)
    x0 = pixels.picture_to_tensor(image).to(pipe.device).expand(len(ts), -1, -1, -1)  # (N, 3, H, W)
    eps = pipe.noise(seed, 1)[0].expand_as(x0)  # the noise pipe.generate(..., seed) starts from
    x_t = diffusion.q_sample(x0, t, pipe.alpha_bar, eps)
    ids = pipe.tokenizer.encode(prompt).to(pipe.device).expand(len(ts), -1)  # (N, L)
    out = pipe.model(x_t, t, ids)
    ab_t = pipe.alpha_bar[t.cpu()]  # (N,)
    eps_hat, x0_hat = diffusion.split_prediction(out, x_t, ab_t, pipe.config.prediction)
    error = ((eps_hat - eps) ** 2).mean(dim=(1, 2, 3))  # (N,)
    return {
        "t": np.array(ts),
        "x_t": pixels.to_uint8(x_t),
        "eps": eps_picture(eps),
        "eps_hat": eps_picture(eps_hat),
        "x0_hat": pixels.to_uint8(x0_hat),
        "eps_error": error.double().cpu().numpy(),
    }


def prompt_tokens(pipe: Pipeline, prompt: str) -> tuple[list[str], list[int]]:
    """The tokens the model reads for a prompt and their ids, padding left out."""
    ids = pipe.tokenizer.encode(prompt)[0].tolist()
    ids = [i for i in ids if i != pipe.tokenizer.pad_id]
    return [pipe.tokenizer.vocab[i] for i in ids], ids


def attention_maps(
    pipe: Pipeline,
    prompt: str,
    steps: int = DEFAULT_STEPS,
    seed: int = 0,
    guidance_scale: float = DEFAULT_GUIDANCE,
) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Where the picture looks at each word, at every sampling step of pipe.generate(prompt).

    Returns (tokens, image, maps): the L tokens (<start> first), the final picture uint8
    (32, 32, 3), and maps float (steps, L, 32, 32): the cross-attention weights of the conditional
    branch, averaged over heads, each layer's map upsampled to 32 x 32 (bilinear), then averaged
    over the attention layers. At every pixel and step the weights over the L tokens sum to 1.
    """
    tokens, _ = prompt_tokens(pipe, prompt)
    size = pipe.picture_size
    layers = [layer for _, layer in pipe.model.unet.attention_layers()]
    calls: list[torch.Tensor] = []  # one (R, heads, H*W, L_max) per layer call, in call order

    def keep(layer, args, out):
        calls.append(layer.last_weights[0].cpu())  # row 0: the prompt (the null prompt follows)

    hooks = [layer.register_forward_hook(keep) for layer in layers]
    try:
        for layer in layers:
            layer.record = True
        image = pipe.generate(prompt, n=1, steps=steps, guidance_scale=guidance_scale, seed=seed)[0]
    finally:
        for layer, hook in zip(layers, hooks):
            layer.record = False
            layer.last_weights = None
            hook.remove()
    maps = []
    for weights in calls:
        side = round(weights.shape[1] ** 0.5)  # weights: (heads, H*W, L_max)
        m = weights.mean(0)[:, : len(tokens)].T.reshape(1, len(tokens), side, side)  # (1, L, h, w)
        maps.append(F.interpolate(m, size=size, mode="bilinear", align_corners=False))
    maps = (
        torch.cat(maps).reshape(steps, len(layers), len(tokens), size, size).mean(1)
    )  # (S, L, ...)
    return tokens, image, maps.double().numpy()


def interpolate_prompts(
    pipe: Pipeline,
    prompt_a: str,
    prompt_b: str,
    weights: list[float],
    seed: int = 0,
    steps: int = DEFAULT_STEPS,
    guidance_scale: float = DEFAULT_GUIDANCE,
) -> np.ndarray:
    """Pictures of a mix of two prompts, one per weight w -> uint8 (len(weights), 32, 32, 3).

    The text encoder's token vectors are mixed, context = (1 - w) context_a + w context_b, with the
    longer prompt's padding mask (the union of both), and sampled with DDIM (deterministic, so the
    mix alone changes the picture) from the same noise as pipe.generate(prompt_a, n=1, seed=seed,
    sampler="ddim"). When both prompts
    have the same number of tokens, w = 0 gives exactly that picture and w = 1 that of prompt_b;
    otherwise the shorter prompt's padding slots are read too.
    """
    pixel_model(pipe, "interpolate_prompts")
    weights = [float(w) for w in weights]
    if not weights or min(weights) < 0 or max(weights) > 1:
        raise ValueError(f"weights must be a non-empty list of numbers in [0, 1], got {weights}")
    diffusion.check_guidance_scale(guidance_scale)
    guided = diffusion.is_guided(guidance_scale)
    context, mask = pipe.encode([prompt_a, prompt_b], guided=guided)  # (2 or 4, L, D), (.., L)
    w = torch.tensor(weights, device=pipe.device, dtype=context.dtype)[:, None, None]  # (W, 1, 1)
    mixed = (1 - w) * context[0] + w * context[1]  # (W, L, D)
    mixed_mask = (mask[0] | mask[1]).expand(len(weights), -1)  # (W, L)
    if guided:  # the null prompt's rows follow, as the guided network call expects
        mixed = torch.cat([mixed, context[2:3].expand(len(weights), -1, -1)])
        mixed_mask = torch.cat([mixed_mask, mask[2:3].expand(len(weights), -1)])
    eps_fn = pipe.eps_fn(mixed, mixed_mask, float(guidance_scale))
    x_T = pipe.noise(seed, 1)[0].expand(len(weights), -1, -1, -1)  # (W, 3, 32, 32)
    x0, _ = samplers.sample(
        eps_fn,
        x_T,
        pipe.alpha_bar,
        samplers.make_timesteps(steps, pipe.config.T),
        samplers.SampleOptions(sampler="ddim"),
    )
    return pixels.to_uint8(x0)


def word_similarity(pipe: Pipeline, layer: str = "output") -> tuple[list[str], np.ndarray]:
    """(words, matrix): cosine similarity of the text encoder's vectors for every pair of words.

    layer "embedding": the token embedding table, the first thing the encoder does with a word;
    layer "output": the encoder's output vector of each word read alone (the prompt "big"), what
    the U-Net attends to. Synonyms such as "big" and "large" need not start alike; the layers
    above the table can learn to map them to the same meaning. <pad> and <start> are left out.
    """
    first = max(pipe.tokenizer.pad_id, pipe.tokenizer.start_id) + 1  # the specials come first
    words = list(pipe.tokenizer.vocab[first:])
    if layer == "embedding":
        vectors = pipe.model.text_encoder.token_embedding.weight.detach()[first:]  # (V, D)
    elif layer == "output":
        context, _ = pipe.encode(words, guided=False)  # (V, L, D): <start> word <pad> ...
        vectors = context[:, 1]  # (V, D) the word's own position
    else:
        raise ValueError(f"layer must be 'embedding' or 'output', got {layer!r}")
    unit = F.normalize(vectors.double(), dim=1)
    return words, (unit @ unit.T).cpu().numpy()


def guidance_sweep(
    pipe: Pipeline,
    prompt: str,
    scales: list[float],
    n: int = 8,
    seed: int = 0,
    steps: int = DEFAULT_STEPS,
    negative_prompt: str | None = None,
) -> np.ndarray:
    """n pictures at every guidance scale, from the same n noises -> uint8 (len(scales), n, 32,
    32, 3); row k holds pipe.generate(prompt, n, steps, scales[k], negative_prompt, seed,
    sampler="ddim"). DDIM, whatever the pipeline's default: its pictures do not depend on the
    batch they are drawn in, so every scale starts from, and keeps, the same noise.

    All scales run as one batch: one network call per step gives the conditional and the null (or
    negative) prediction for every picture, and each scale's pictures are guided with their own s.
    """
    pixel_model(pipe, "guidance_sweep")
    scales = [float(s) for s in scales]
    if not scales or isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"need at least one scale and n >= 1, got {scales} and n={n!r}")
    k = len(scales)
    per_row = torch.tensor(scales).repeat_interleave(n)  # (k*n,) one scale per picture
    p = pipe.prepare(
        prompt,
        k * n,
        steps=steps,
        guidance_scale=per_row,
        negative_prompt=negative_prompt,
        seed=seed,
        sampler="ddim",
    )
    x_T = pipe.noise(seed, n)[0].repeat(k, 1, 1, 1)  # (k*n, 3, 32, 32) the same n noises per scale
    x0, _ = samplers.sample(p.eps_fn, x_T, pipe.alpha_bar, p.timesteps, p.options)
    side = pipe.picture_size
    return pixels.to_uint8(x0).reshape(k, n, side, side, 3)


def adherence_and_diversity(judge, prompt: str, images: np.ndarray) -> dict[str, float]:
    """How well n pictures of one prompt follow it, as the judge reads them.

    "adherence": the fraction of pictures whose every named attribute is the one asked for;
    "diversity": the normalised entropy of the attributes the prompt leaves out, averaged (1: all
    values equally common, 0: always the same; nan when the prompt names every attribute).
    Both are minidiff.evaluate's measures, applied to these pictures.
    """
    from minidiff import evaluate

    prompts = [prompt] * len(images)
    judged = judge.predict(images)
    left_out = [a for a in world.ATTRIBUTES if a not in world.parse_prompt(prompt)]
    diversity = evaluate.diversity_scores(prompts, judged)[0]["mean"] if left_out else np.nan
    return {"adherence": evaluate.adherence(prompts, judged)["all"], "diversity": diversity}
