import json

import pytest
from PIL import Image

from minidiff.cli import main


def test_generate_writes_a_grid_and_single_pictures(tiny_model_file, tmp_path, capsys):
    grid = tmp_path / "grid.png"
    main(
        [
            "generate",
            "a large red star in the top left",
            "--n",
            "4",
            "--steps",
            "3",
            "--weights",
            str(tiny_model_file),
            "--out",
            str(grid),
            "--out-dir",
            str(tmp_path / "one"),
            "--device",
            "cpu",
        ]
    )
    assert Image.open(grid).size[0] > 4 * 32
    assert sorted(p.name for p in (tmp_path / "one").iterdir()) == [f"00{i}.png" for i in range(4)]
    assert Image.open(tmp_path / "one" / "000.png").size == (32, 32)


def test_generate_reports_a_bad_prompt_in_one_line(tiny_model_file, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(
            [
                "generate",
                "a pruple star",
                "--weights",
                str(tiny_model_file),
                "--out",
                str(tmp_path / "g.png"),
            ]
        )
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("minidiff generate: error: unknown word 'pruple'")
    assert len(err.splitlines()) == 1
    assert not (tmp_path / "g.png").exists()


def test_a_negative_prompt_without_guidance_is_refused(tiny_model_file, tmp_path, capsys):
    """Guidance 1 (the default) uses no unconditional guess, so a negative prompt would do
    nothing: the command says so instead of drawing as if it had been heard."""
    with pytest.raises(SystemExit) as exit_info:
        main(
            [
                "generate",
                "a circle",
                "--negative",
                "red",
                "--weights",
                str(tiny_model_file),
                "--out",
                str(tmp_path / "g.png"),
            ]
        )
    assert exit_info.value.code == 2
    assert "--negative 'red' acts only through guidance" in capsys.readouterr().err
    assert not (tmp_path / "g.png").exists()
    main(
        [
            "generate",
            "a circle",
            "--negative",
            "red",
            "--guidance",
            "3",
            "--steps",
            "2",
            "--weights",
            str(tiny_model_file),
            "--out",
            str(tmp_path / "g.png"),
            "--device",
            "cpu",
        ]
    )
    assert (tmp_path / "g.png").exists()


def test_site_names_an_unknown_notebook_and_the_real_ones(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["site", "--out", str(tmp_path / "site"), "--only", "99_nothing"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "no notebook named 99_nothing; the notebooks are 00_start_here, 01_noise" in err
    assert not (tmp_path / "site").exists()


def test_dataset_exports_pictures_and_captions(tmp_path):
    main(["dataset", "--split", "test", "--n", "5", "--out", str(tmp_path)])
    lines = (tmp_path / "captions.jsonl").read_text().splitlines()
    assert len(lines) == 5
    first = json.loads(lines[0])
    assert {"caption", "colour", "shape", "size", "position"} <= set(first)
    assert len(list(tmp_path.glob("*.png"))) == 5


def test_info_prints_the_shape_table(capsys):
    main(["info", "--preset", "small"])
    out = capsys.readouterr().out
    assert "U-Net:" in out and "unet.mid" in out and "total" in out


def test_train_refuses_an_unknown_preset(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["train", "--preset", "huge", "--out", str(tmp_path / "run")])
    assert "unknown preset 'huge'" in capsys.readouterr().err


def test_the_commands_honour_minidiff_weights(tiny_model_file, tmp_path, monkeypatch, capsys):
    """$MINIDIFF_WEIGHTS points the command line at other weights, as it does the notebooks."""
    from minidiff.checkpoint import load_model
    from minidiff.model import count_parameters

    tiny, _ = load_model(tiny_model_file)
    monkeypatch.setenv("MINIDIFF_WEIGHTS", str(tiny_model_file))
    main(["info"])
    assert f"U-Net:        {count_parameters(tiny.unet):,} parameters" in capsys.readouterr().out
    monkeypatch.setenv("MINIDIFF_WEIGHTS", str(tmp_path / "missing.safetensors"))
    with pytest.raises(SystemExit):
        main(["generate", "a red circle", "--out", str(tmp_path / "g.png")])
    assert "missing.safetensors" in capsys.readouterr().err


def test_model_and_weights_together_are_refused(tiny_model_file, capsys):
    with pytest.raises(SystemExit):
        main(["generate", "a circle", "--model", "latent", "--weights", str(tiny_model_file)])
    assert "not both" in capsys.readouterr().err


def test_an_unknown_model_name_is_refused(capsys):
    with pytest.raises(SystemExit):
        main(["evaluate", "--model", "huge"])
    assert "invalid choice: 'huge'" in capsys.readouterr().err


def test_train_autoencoder_writes_its_file_and_reports_it(tmp_path, capsys, monkeypatch):
    import minidiff.train_autoencoder as tae
    from minidiff.autoencoder import AutoencoderConfig

    tiny = AutoencoderConfig(channels=(8, 8, 16))
    original = tae.train_autoencoder
    monkeypatch.setattr(
        tae, "train_autoencoder", lambda out, cfg, **kw: original(out, cfg, config=tiny, **kw)
    )
    main(["train-autoencoder", "--out", str(tmp_path / "ae"), "--steps", "2"])
    out = capsys.readouterr().out
    assert "autoencoder on 1000 test pictures" in out and "PSNR" in out
    main(
        [
            "evaluate-autoencoder",
            "--weights",
            str(tmp_path / "ae" / "autoencoder.safetensors"),
            "--n",
            "50",
            "--json",
            str(tmp_path / "r.json"),
        ]
    )
    assert "autoencoder on 50 test pictures" in capsys.readouterr().out
    assert (tmp_path / "r.json").exists()
