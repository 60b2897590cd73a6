"""`digitnet predict` is quick: a command imports only what it uses (cli/__init__.py looks
each command's module up when the command is), never the training, plotting, web or
compiled-engine code."""

HEAVY = ["digitnet.cli.train", "digitnet.cli.serve", "digitnet.cli.show", "digitnet.cli.descend", "matplotlib",
         "starlette", "uvicorn", "tqdm", "numba", "scipy", "digitnet.nn.compiled",
         # the training loop, the engines and the evaluation (imported with the package, before
         # its names were looked up when first used), and numpy.ma (np.median's NaN check)
         "digitnet.training.train", "digitnet.training.engines", "digitnet.tasks.evaluate", "numpy.ma"]


def test_predict_imports_only_what_it_uses(tmp_path, modules_after):
    from PIL import Image

    import digitnet as dn

    model = tmp_path / "m.safetensors"
    dn.save_model(model, dn.Network.create((784, 10)))
    picture = tmp_path / "one.png"
    ink = Image.new("L", (28, 28), 255)
    ink.paste(0, (13, 5, 16, 23))
    ink.save(picture)
    loaded = modules_after(
        "from click.testing import CliRunner\nfrom digitnet.cli import main\n"
        f"r = CliRunner().invoke(main, ['predict', {str(model)!r}, {str(picture)!r}])\n"
        "assert r.exit_code == 0 and r.output.startswith(" + repr(str(picture)) + "), r.output")
    assert "digitnet.cli.predict" in loaded
    assert sorted(loaded & set(HEAVY)) == []


def test_help_still_lists_every_command(modules_after):
    loaded = modules_after(
        "from click.testing import CliRunner\nfrom digitnet.cli import main\n"
        "r = CliRunner().invoke(main, ['--help'])\n"
        "assert all(f'  {c} ' in r.output for c in "
        "('config', 'descend', 'evaluate', 'export', 'predict', 'serve', 'show', 'train')), r.output")
    assert "digitnet.cli.train" in loaded  # listing the commands reads their help
