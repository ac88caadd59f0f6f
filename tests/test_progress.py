"""The progress bar: redraws on a terminal, one clean line elsewhere, nothing when switched off."""

import io

from eeopt._progress import Progress, progress


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_terminal_redraws_in_place_and_ends_with_a_newline():
    out = _Terminal()
    with Progress(3, "work", file=out) as bar:
        for _ in range(3):
            bar.update(postfix="step")
    text = out.getvalue()
    assert text.startswith("\rwork: [")
    assert "\033[K" in text and text.endswith("\n")
    assert "3/3" in text.rsplit("\r", 1)[-1] and "step" in text


def test_a_log_file_gets_one_final_line_without_control_characters():
    out = io.StringIO()
    with Progress(5, "work", file=out) as bar:
        for _ in range(5):
            bar.update()
    text = out.getvalue()
    assert text.count("\n") == 1 and text.startswith("work: [")
    assert "\r" not in text and "\033" not in text and "5/5" in text


def test_verbose_false_writes_nothing_and_the_iterator_yields_everything():
    out = io.StringIO()
    with Progress(2, "work", verbose=False, file=out) as bar:
        bar.update(2)
    assert out.getvalue() == ""
    assert list(progress(range(4), "loop", verbose=False)) == [0, 1, 2, 3]
