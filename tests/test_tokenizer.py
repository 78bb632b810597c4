import warnings

import pytest
import torch

from minidiff import world
from minidiff.tokenizer import (
    MAX_TOKENS,
    VOCAB,
    PromptTruncatedWarning,
    Tokenizer,
    UnknownWordError,
)

tok = Tokenizer()
CAPTIONS = [world._describe(split, i, 0)[2] for split in world.SPLITS for i in range(1000)]


def test_vocab():
    assert VOCAB[:2] == ("<pad>", "<start>") and (tok.pad_id, tok.start_id) == (0, 1)
    assert len(tok) == len(VOCAB) == len(set(VOCAB)) == 32
    assert tok.max_tokens == MAX_TOKENS == 16


def test_vocab_covers_every_caption_word_and_uses_all_of_it():
    phrases = list(world.TEMPLATES) + list(world.PHRASES.values()) + list(world.POSITIONS)
    used = {w for text in CAPTIONS + phrases for w in tok.words(text)}
    assert used <= set(VOCAB)
    assert used == set(VOCAB) - {"<pad>", "<start>"}


def test_encode_shapes_and_layout():
    ids = tok.encode("a big red star")
    assert ids.shape == (1, 16) and ids.dtype == torch.long
    assert ids[0, :5].tolist() == [1] + [VOCAB.index(w) for w in ("a", "big", "red", "star")]
    assert (ids[0, 5:] == 0).all()
    batch = tok.encode(["a red circle", "star, top, large", "A RED CIRCLE"])
    assert batch.shape == (3, 16) and (batch[:, 0] == 1).all()
    assert torch.equal(batch[0], batch[2])
    assert tok.encode([]).shape == (0, 16)


def test_empty_prompt_is_just_start():
    for prompt in ("", "   "):
        assert tok.encode(prompt)[0].tolist() == [1] + [0] * 15


def test_commas_are_tokens():
    assert tok.words("Red circle, top left,large") == [
        "red",
        "circle",
        ",",
        "top",
        "left",
        ",",
        "large",
    ]


def test_captions_round_trip_and_fit():
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no caption may be truncated
        ids = tok.encode(CAPTIONS)
    assert tok.decode(ids) == CAPTIONS
    assert tok.decode(ids[0]) == CAPTIONS[:1]


def test_unknown_word_names_it_and_the_closest_words():
    with pytest.raises(UnknownWordError) as error:
        tok.encode("a pruple star")
    assert str(error.value) == (
        "unknown word 'pruple' in prompt 'a pruple star'; closest known words: purple"
    )
    assert isinstance(error.value, ValueError)
    with pytest.raises(UnknownWordError, match="'dog'.*known words are: .* circle"):
        tok.encode(["a red circle", "a dog"])
    with pytest.raises(UnknownWordError, match="special token"):
        tok.encode("<start> red")


def test_long_prompt_is_cut_with_a_warning():
    prompt = "a big red star that is big and big and big and big and big in the top left"
    with pytest.warns(PromptTruncatedWarning) as record:
        ids = tok.encode(prompt)
    assert str(record[0].message) == (
        "prompt is 20 tokens long but the limit is 16; dropped: 'in the top left'"
    )
    assert tok.decode(ids) == ["a big red star that is big and big and big and big and big"]
    with pytest.warns(PromptTruncatedWarning, match="dropped: 'star, top'"):
        Tokenizer(max_tokens=3).encode("red big star, top")


def test_type_errors():
    for bad in (3, None, ["a red star", 3], b"a red star"):
        with pytest.raises(TypeError, match="string"):
            tok.encode(bad)
    with pytest.raises(ValueError, match="max_tokens"):
        Tokenizer(max_tokens=0)
    with pytest.raises(ValueError, match="0 .. 31"):
        tok.decode(torch.tensor([[1, 99]]))


@pytest.mark.parametrize(
    "typed",
    [
        "a red circle.",
        "A red circle!",
        '"a red circle"',
        "a red circle?",
        "(a red circle)",
        "a red circle;",
    ],
)
def test_punctuation_people_type_is_read_not_refused(typed):
    tok = Tokenizer()
    assert tok.encode(typed).tolist() == tok.encode("a red circle").tolist()


def test_a_hyphen_reads_as_a_space():
    tok = Tokenizer()
    assert tok.encode("a star, top-left").tolist() == tok.encode("a star, top left").tolist()


def test_an_unknown_word_is_named_without_the_punctuation_around_it():
    with pytest.raises(
        UnknownWordError, match=r"unknown word 'pruple' in prompt 'a pruple star\.'"
    ):
        Tokenizer().encode("a pruple star.")
