"""A word-level tokenizer: a prompt becomes a fixed-length row of integer ids.

Real systems split text into sub-word pieces (CLIP's tokenizer knows 49408 of them); the Shapes
world needs only the words its captions use, so here one word is one token:

    "a big red star"  ->  <start> a big red star <pad> <pad> ...  ->  [1, 2, 25, 13, 20, 0, 0, ...]

Every row starts with <start> (so the empty prompt "", the unconditional prompt of classifier-free
guidance, is still one real token) and is padded with <pad> (id 0) to MAX_TOKENS. Like CLIP's
77-token limit, a longer prompt is cut, with a warning that says what was dropped.
"""

import difflib
import warnings

import torch

from . import scenes
from .world import WORDS

SPECIALS = ("<pad>", "<start>")
VOCAB = SPECIALS + WORDS
# The words of each world a model can be trained on. The scenes world's list extends the one-object
# world's, in order, so every old word keeps its id (minidiff.scenes).
WORLD_VOCABS = {"shapes": VOCAB, "scenes": SPECIALS + scenes.WORDS}
MAX_TOKENS = 16  # including <start>
# What people type around words: read as a space (hyphens: "top-left") or left out (the end of a
# sentence, quotes, brackets). The comma is a word of the world's captions and stays one.
SPACED = "-/"
DROPPED = ".!?;:\"'()[]"


class UnknownWordError(ValueError):
    """A prompt uses a word the tokenizer does not know."""


class PromptTruncatedWarning(UserWarning):
    """A prompt was longer than the token limit and its end was dropped."""


def _join(words: list[str]) -> str:
    return " ".join(words).replace(" ,", ",")  # "red circle , top" -> "red circle, top"


class Tokenizer:
    def __init__(self, vocab: tuple[str, ...] = VOCAB, max_tokens: int = MAX_TOKENS):
        if tuple(vocab[:2]) != SPECIALS or len(set(vocab)) != len(vocab):
            raise ValueError(f"vocab must start with {SPECIALS} and hold each word once")
        if not isinstance(max_tokens, int) or max_tokens < 1:
            raise ValueError(
                f"max_tokens must be an integer >= 1 (room for <start>), got {max_tokens!r}"
            )
        self.vocab = tuple(vocab)
        self.max_tokens = max_tokens
        self.pad_id, self.start_id = 0, 1
        self.ids = {word: i for i, word in enumerate(self.vocab)}

    @classmethod
    def for_world(cls, world: str) -> "Tokenizer":
        """The tokenizer of a world's captions: "shapes" (one object) or "scenes" (several)."""
        if world not in WORLD_VOCABS:
            raise ValueError(f"unknown world {world!r}; choose one of {', '.join(WORLD_VOCABS)}")
        return cls(WORLD_VOCABS[world])

    def __len__(self) -> int:
        return len(self.vocab)

    def __repr__(self) -> str:
        return f"Tokenizer({len(self)} tokens, max_tokens={self.max_tokens})"

    def words(self, prompt: str) -> list[str]:
        """'A big star, top-left.' -> ['a', 'big', 'star', ',', 'top', 'left']: lower case, commas
        kept, hyphens read as spaces, other punctuation (. ! ? ; : quotes, brackets) left out."""
        if not isinstance(prompt, str):
            raise TypeError(f"a prompt must be a string, got {type(prompt).__name__}")
        text = prompt.lower().translate(str.maketrans(SPACED, " " * len(SPACED), DROPPED))
        return text.replace(",", " , ").split()

    def _row(self, prompt: str) -> list[int]:
        words = self.words(prompt)
        for word in words:
            if word not in self.ids or word in SPECIALS:
                raise UnknownWordError(self._unknown(word, prompt))
        room = self.max_tokens - 1  # <start> takes one place
        if len(words) > room:
            warnings.warn(
                PromptTruncatedWarning(
                    f"prompt is {len(words) + 1} tokens long but the limit is {self.max_tokens}; "
                    f"dropped: {_join(words[room:])!r}"
                ),
                stacklevel=3,
            )
            words = words[:room]
        ids = [self.start_id] + [self.ids[w] for w in words]
        return ids + [self.pad_id] * (self.max_tokens - len(ids))

    def _unknown(self, word: str, prompt: str) -> str:
        if word in SPECIALS:
            return f"{word!r} in prompt {prompt!r} is a special token, not a word for prompts"
        known = [w for w in self.vocab if w not in SPECIALS]
        close = difflib.get_close_matches(word, known, n=3)
        if close:
            return (
                f"unknown word {word!r} in prompt {prompt!r}; "
                f"closest known words: {', '.join(close)}"
            )
        return (
            f"unknown word {word!r} in prompt {prompt!r}; no known word is close, "
            f"the known words are: {' '.join(known)}"
        )

    def encode(self, prompt: str | list[str]) -> torch.Tensor:
        """One prompt or a list of B prompts -> LongTensor (B, max_tokens) (B = 1 for a string)."""
        prompts = [prompt] if isinstance(prompt, str) else prompt
        if not isinstance(prompts, (list, tuple)):
            raise TypeError(
                f"encode expects a string or a list of strings, got {type(prompt).__name__}"
            )
        for p in prompts:
            if not isinstance(p, str):
                raise TypeError(
                    f"encode expects a string or a list of strings, got a list "
                    f"holding {type(p).__name__} {p!r}"
                )
        rows = [self._row(p) for p in prompts]
        return torch.tensor(rows, dtype=torch.long).reshape(len(rows), self.max_tokens)

    def decode(self, ids) -> list[str]:
        """Ids (B, L) or (L,) -> B prompts, <start> and <pad> left out."""
        ids = torch.as_tensor(ids)
        if ids.ndim == 1:
            ids = ids[None]
        if ids.ndim != 2:
            raise ValueError(f"decode expects ids of shape (B, L) or (L,), got {tuple(ids.shape)}")
        if ids.numel() and (ids.min() < 0 or ids.max() >= len(self)):
            raise ValueError(f"token ids must lie in 0 .. {len(self) - 1}")
        return [
            _join([self.vocab[i] for i in row if i not in (self.pad_id, self.start_id)])
            for row in ids.tolist()
        ]
