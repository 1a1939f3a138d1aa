"""mmdyt.utils.progress: quiet_logs moves prints, warnings and logging
stream handlers (mmengine's MMLogger too, created before or inside the block)
and stderr to the log file and restores them; ProgressBar draws in place on a
terminal and one line elsewhere (ProgressHook: tests/test_engine)."""
import io
import logging
import sys
import warnings

import pytest

from mmdyt.utils.progress import (ProgressBar, console, format_seconds,
                                  quiet_logs)


class _Tty(io.StringIO):

    def isatty(self):
        return True


def test_quiet_logs_moves_all_console_output_to_the_file(tmp_path, capsys):
    from mmengine.logging import MMLogger
    before = MMLogger.get_instance('mmdyt_test_before')
    log = tmp_path / 'demo.log'
    with quiet_logs(str(log)) as terminal:
        assert console() is terminal
        print('printed inside')
        before.info('logged by a logger made before')
        inside = MMLogger.get_instance('mmdyt_test_inside')
        inside.info('logged by a logger made inside')
        # where Python's default warnings display writes (pytest records
        # warnings itself, so warnings.warn would not reach it here)
        sys.stderr.write(
            warnings.formatwarning('a warning inside', UserWarning, 'f.py', 1))
        console().write('for the terminal\n')
    out = capsys.readouterr()
    text = log.read_text()
    for line in ('printed inside', 'logged by a logger made before',
                 'logged by a logger made inside', 'a warning inside'):
        assert line in text
        assert line not in out.out and line not in out.err
    assert out.out == 'for the terminal\n'
    # restored: both loggers print to the terminal again, stdout is back
    assert sys.stdout is not None and console() is sys.stdout
    before.info('after, before-logger')
    inside.info('after, inside-logger')
    print('after, print')
    out = capsys.readouterr().out
    assert 'after, before-logger' in out and 'after, inside-logger' in out
    assert 'after, print' in out
    assert 'after' not in log.read_text()


def test_quiet_logs_restores_on_error_and_verbose_streams(tmp_path, capsys):
    handler = logging.StreamHandler(sys.stdout)
    logger = logging.getLogger('mmdyt_test_plain')
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        stdout = sys.stdout
        with pytest.raises(RuntimeError):
            with quiet_logs(str(tmp_path / 'a.log')):
                assert handler.stream is not stdout
                raise RuntimeError('boom')
        assert sys.stdout is stdout and handler.stream is stdout
        with quiet_logs(str(tmp_path / 'b.log'), verbose=True):
            print('streamed')
            logger.info('streamed log')
        out = capsys.readouterr().out
        assert 'streamed' in out and 'streamed log' in out
        assert not (tmp_path / 'b.log').exists()
    finally:
        logger.removeHandler(handler)


def test_bar_live_redraws_in_place_and_ends_with_one_line():
    stream = _Tty()
    bar = ProgressBar(
        4, '[1/3] DyT seed 1/3', stream=stream, min_interval=0.0, width=8)
    assert bar.live
    bar.update(1, epoch='1/2', loss='0.700')
    assert bar.render().startswith('[1/3] DyT seed 1/3  |##......|  25%')
    assert 'epoch 1/2  loss 0.700' in bar.render()
    bar.update(3, epoch='2/2')
    assert '|########| 100%' in bar.render()
    assert 'epoch 2/2  loss 0.700' in bar.render()  # loss kept
    seconds = bar.close()
    text = stream.getvalue()
    assert text.count('\r') >= 3 and text.endswith('\n')
    assert text.count('\n') == 1
    last = text.rsplit('\r', 1)[-1]
    assert last.startswith('[1/3] DyT seed 1/3  done in 0:00')
    assert seconds == bar.elapsed >= 0
    assert bar.close() == seconds  # idempotent, no second line
    assert stream.getvalue().count('\n') == 1


def test_bar_not_a_terminal_prints_only_the_final_line():
    stream = io.StringIO()
    with ProgressBar(3, 'stage', stream=stream) as bar:
        assert not bar.live
        bar.update(2)
        assert stream.getvalue() == ''
    assert stream.getvalue().startswith('stage  done in 0:00')
    assert stream.getvalue().count('\n') == 1
    stream = io.StringIO()
    with pytest.raises(KeyError):
        with ProgressBar(3, 'stage', stream=stream):
            raise KeyError('x')
    assert 'FAILED after' in stream.getvalue()
    with pytest.raises(ValueError, match='total must be > 0'):
        ProgressBar(0)


def test_eta_and_format_seconds(monkeypatch):
    import mmdyt.utils.progress as progress
    now = [100.0]
    monkeypatch.setattr(progress.time, 'perf_counter', lambda: now[0])
    bar = ProgressBar(10, 'x', stream=io.StringIO())
    assert bar.eta() is None
    now[0] = 104.0
    bar.update(2)
    assert bar.eta() == pytest.approx(16.0)  # 2 s per step, 8 left
    assert '0:04<0:16' in bar.render()
    assert format_seconds(75.2) == '1:15'
    assert format_seconds(3725) == '1:02:05'
